/*
 * imap/writer: builds tagged IMAP commands with correctly chosen argument
 * forms (atom, quoted string, literal), modified UTF-7 mailbox names
 * (RFC 3501 5.1.3), UID sequence sets and the SASL GS2 header.  Pure: no
 * I/O.
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
/* A string longer than this is sent as a literal, never quoted. */
#define IMAP_QUOTED_MAX 1024
/* LITERAL- (RFC 7888): the largest non-synchronising literal allowed. */
#define IMAP_LITERAL_MINUS_MAX 4096
/* A command that would grow past this many bytes is marked failed. */
#define IMAP_CMD_MAX (4 * 1024 * 1024)

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

/* Hands out unique tags "A1", "A2", ... per connection (zero-initialise
 * it; the counter skips 0 when it wraps). */
struct imap_tagger {
	unsigned next;
};

/*
 * Every imap_cmd_* builder below appends to cmd; once one fails (allocation,
 * IMAP_CMD_MAX, a value that cannot be encoded) cmd->failed is set, later
 * calls do nothing and imap_cmd_finish() returns -1.  cmd must still be
 * freed with imap_cmd_free().
 */

/* Starts "TAG VERB" with the tagger's next tag; verb may hold several words
 * ("UID FETCH").  A verb holding control or 8-bit bytes fails the command. */
void imap_cmd_init(struct imap_cmd *cmd, struct imap_tagger *tagger,
    const char *verb);
/* Frees the buffers and zeroes cmd (safe on a zeroed or freed cmd). */
void imap_cmd_free(struct imap_cmd *cmd);
/* " atom", written as given: the caller guarantees it is a valid atom or
 * token ("BODY.PEEK[]").  Empty, control (CR, LF, NUL...) or 8-bit bytes
 * fail the command, so nothing can break the line. */
void imap_cmd_add_atom(struct imap_cmd *cmd, const char *atom);
/* " " plus printf output, raw (for "(UID RFC822.SIZE)" and similar).  CR,
 * LF or NUL in the output fail the command. */
void imap_cmd_add_raw(struct imap_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * " value" as an astring (RFC 3501/9051):
 *  - only ASTRING-CHARs (no SP, CTL, '(', ')', '{', '%', '*', '"', '\\'):
 *    an atom;
 *  - empty: "";
 *  - CR, LF, 8-bit bytes or more than IMAP_QUOTED_MAX bytes: a literal,
 *    "{n+}" under LITERAL+, under LITERAL- when n <= IMAP_LITERAL_MINUS_MAX,
 *    else a synchronising "{n}" after which the command is split;
 *  - otherwise a quoted string, '"' and '\\' escaped.
 * A NUL cannot be sent in a string at all (only in literal8): the command
 * fails.
 */
void imap_cmd_add_string(struct imap_cmd *cmd, const char *value, size_t len,
    enum imap_literal_mode mode);
/* " name" for a UTF-8 mailbox name: "INBOX" in any case is sent as INBOX;
 * otherwise encoded to modified UTF-7 (or sent as UTF-8 when utf8 is true:
 * UTF8=ACCEPT enabled) and written as imap_cmd_add_string() does.  Invalid
 * UTF-8 fails the command.  A name exactly as the server sent it (possibly
 * not decodable) is sent with imap_cmd_add_string() instead. */
void imap_cmd_add_mailbox(struct imap_cmd *cmd, const char *utf8_name,
    bool utf8, enum imap_literal_mode mode);
/* Appends CRLF; returns 0, or -1 if anything failed on the way. */
int imap_cmd_finish(struct imap_cmd *cmd);

/* The parts to send: part 0 first, then after each continuation request the
 * next one (nsplits + 1 parts in all).  imap_cmd_part() returns a pointer
 * into cmd->data and its length in *len_r; valid until cmd changes. */
size_t imap_cmd_nparts(const struct imap_cmd *cmd);
const char *imap_cmd_part(const struct imap_cmd *cmd, size_t i,
    size_t *len_r);

/*
 * Modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8.  Return a malloc'ed
 * NUL-terminated string, or NULL for invalid input or allocation failure.
 * Encoding: printable ASCII but '&' stands for itself, '&' is "&-",
 * everything else (controls included) is UTF-16 in base64 with ',' for '/'
 * between '&' and '-'; it fails on invalid UTF-8 (overlong forms,
 * surrogates, above U+10FFFF, truncated sequences) and on NUL.
 * Decoding accepts only what the encoder produces, so it is one-to-one: it
 * fails on 8-bit bytes, NUL and other controls outside a shift, an
 * unterminated shift, characters outside the base64 set, non-zero or
 * surplus padding bits, a shift encoding printable ASCII, a shift directly
 * after another, lone or reversed surrogates and U+0000.
 */
char *imap_utf7_decode(const char *mutf7, size_t len);
char *imap_utf7_encode(const char *utf8, size_t len);

/* The GS2 header that starts a SASL OAUTHBEARER message (RFC 7628 3.1,
 * RFC 5801 4): "n,a=<authzid>,", with ',' written "=2C" and '=' "=3D" in
 * authzid so that they cannot end the field.  malloc'ed, or NULL when out of
 * memory. */
char *imap_sasl_gs2_header(const char *authzid);

/* Writes a compact sequence set ("1:5,9,12:*") for the sorted, distinct,
 * non-zero uids; UINT32_MAX is written as "*" (so a trailing range to it is
 * "n:*").  Like snprintf: returns the length needed without the NUL, writes
 * at most size bytes, always NUL-terminated when size > 0.  n == 0 gives
 * "".  Unsorted input still gives a valid (if longer) set. */
size_t imap_seqset_format(char *buf, size_t size, const uint32_t *uids,
    size_t n);

#endif
