/*
 * mbox/mbox: appends messages to an mboxrd file (DESIGN.md section 4) with the
 * locks mail readers honour, and the append side of the commit protocol
 * (DESIGN.md section 5): a batch of messages is appended through a buffer,
 * made durable with mbox_commit(), and on any failure the file is truncated
 * back to its last committed size.
 */
#ifndef MM_MBOX_H
#define MM_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Header bytes held to find Return-Path before the From_ line is written. */
#define MBOX_MAX_HEADER_HOLD (256 * 1024)

struct mbox;

enum mbox_open_result {
	MBOX_OPEN_FAILED = -1,
	MBOX_OPEN_OK = 0,
	MBOX_OPEN_TRUNCATED,	/* longer than committed: crash leftover cut */
	MBOX_OPEN_SHORTER,	/* shorter than committed: someone changed it */
};

/*
 * Opens (creating 0600, parents not included) path for appending: refuses
 * symlinks and anything but a regular file with one link, takes an fcntl
 * write lock and a "<path>.lock" dotlock (waiting up to a few seconds for
 * other holders), then compares the size with committed_size:
 *  - longer: truncates back to committed_size (MBOX_OPEN_TRUNCATED);
 *  - shorter: leaves it alone and appends at its end (MBOX_OPEN_SHORTER;
 *    the caller warns; nothing is lost);
 * Returns MBOX_OPEN_FAILED with a malloc'ed *error_r on failure.
 */
enum mbox_open_result mbox_open(const char *path, uint64_t committed_size,
    struct mbox **mbox_r, char **error_r);

/* One message: begin, its raw bytes as they come (any chunking; CRLF is
 * turned into LF, ^>*From lines are quoted, Return-Path is found), end. */
int mbox_msg_begin(struct mbox *mbox, time_t internaldate);
int mbox_msg_write(struct mbox *mbox, const void *data, size_t len);
int mbox_msg_end(struct mbox *mbox);

/* Writes out the buffer and fdatasyncs: everything appended is durable.
 * *size_r is the new committed size.  On failure truncates back to the last
 * committed size. 0 or -1. */
int mbox_commit(struct mbox *mbox, uint64_t *size_r);
/* Drops everything appended since the last commit (truncates back). */
int mbox_rollback(struct mbox *mbox);
/* Size as last committed (after open: the size it started appending at). */
uint64_t mbox_committed_size(const struct mbox *mbox);
/* Rolls back anything uncommitted, releases the locks and closes. */
void mbox_close(struct mbox **mbox);
/* The last error (e.g. "write /x/INBOX.mbox: No space left on device"). */
const char *mbox_error(const struct mbox *mbox);

/*
 * The From_ line for a message: "From <sender> <asctime UTC>\n" into buf.
 * sender is the Return-Path address (NULL or "<>": MAILER-DAEMON); spaces and
 * control characters in it are replaced so the line stays parseable.
 */
size_t mbox_from_line(char *buf, size_t size, const char *sender,
    time_t internaldate);

#endif
