/*
 * imap/writer: builds tagged IMAP commands with correctly chosen argument
 * forms (atom, quoted string, literal), modified UTF-7 mailbox names
 * (RFC 3501 5.1.3) and UID sequence sets.  Pure: no I/O.
 */
#ifndef MM_IMAP_WRITER_H
#define MM_IMAP_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the server accepts, from its capabilities. */
enum imap_literal_mode {
	IMAP_LITERAL_SYNC,	/* {n}: wait for "+" before the bytes */
	IMAP_LITERAL_PLUS,	/* LITERAL+: {n+} for any size */
	IMAP_LITERAL_MINUS,	/* LITERAL-: {n+} up to 4096 bytes, else {n} */
};

#define IMAP_TAG_MAX 16

/*
 * A command being built: "TAG VERB args...\r\n".  A synchronising literal
 * splits it into parts: the client sends part 0, waits for a continuation
 * request, sends part 1, and so on.
 */
struct imap_cmd {
	char tag[IMAP_TAG_MAX];
	char *data;		/* all bytes of the command */
	size_t len, cap;
	size_t *splits;		/* offsets where the client must wait for "+" */
	size_t nsplits;
	bool failed;		/* allocation failed or value not encodable */
};

/* Hands out unique tags "A1", "A2", ... per connection. */
struct imap_tagger {
	unsigned next;
};

/* Starts "TAG VERB"; verb may hold several words ("UID FETCH"). */
void imap_cmd_init(struct imap_cmd *cmd, struct imap_tagger *tagger,
    const char *verb);
void imap_cmd_free(struct imap_cmd *cmd);
/* " atom", written as given (caller guarantees it is a valid atom/token). */
void imap_cmd_add_atom(struct imap_cmd *cmd, const char *atom);
/* " " plus printf output, raw (for "(UID RFC822.SIZE)" and similar). */
void imap_cmd_add_raw(struct imap_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* " value" as an astring: atom when safe, quoted when possible, literal when
 * it holds CR, LF, NUL, 8-bit bytes or is longer than 1024 bytes. */
void imap_cmd_add_string(struct imap_cmd *cmd, const char *value, size_t len,
    enum imap_literal_mode mode);
/* " name" for a UTF-8 mailbox name, encoded to modified UTF-7 (or sent as
 * UTF-8 when utf8 is true: UTF8=ACCEPT enabled). */
void imap_cmd_add_mailbox(struct imap_cmd *cmd, const char *utf8_name,
    bool utf8, enum imap_literal_mode mode);
/* Appends CRLF; returns 0, or -1 if anything failed on the way. */
int imap_cmd_finish(struct imap_cmd *cmd);

/* Modified UTF-7 <-> UTF-8.  Return a malloc'ed NUL-terminated string, or
 * NULL for invalid input (bad base64, unterminated shift, non-minimal
 * encoding, invalid UTF-16/UTF-8, NUL). */
char *imap_utf7_decode(const char *mutf7, size_t len);
char *imap_utf7_encode(const char *utf8, size_t len);

/* Writes a compact sequence set ("1:5,9,12:*") for the sorted, distinct uids;
 * a trailing range to UINT32_MAX is written as "n:*".  Returns the length it
 * needs (like snprintf). */
size_t imap_seqset_format(char *buf, size_t size, const uint32_t *uids,
    size_t n);

#endif
