/*
 * mbox/mbox: appends messages to an mboxrd file (DESIGN.md section 4) with the
 * locks mail readers honour, and the append side of the commit protocol
 * (DESIGN.md section 5): a batch of messages is appended through a buffer,
 * made durable with mbox_commit(), and on any failure the file is truncated
 * back to its last committed size.  A record of its appends, kept beside the
 * caller's state, tells a crash leftover of ours (cut) from mail another
 * program appended (kept) when the file is opened again.
 *
 * Format written for each message:
 *  - "From <sender> <asctime UTC date>\n", sender from the first Return-Path
 *    header (angle brackets stripped; missing or "<>": MAILER-DAEMON);
 *  - the message with CRLF turned into LF (a lone CR or LF stays), one more
 *    '>' before every line matching ^>*From ;
 *  - an LF if the message does not end in one (an empty message stays
 *    empty, so reading the entry back gives the empty message again);
 *  - one empty line.
 * The output does not depend on how the message bytes were chunked, and
 * memory does not grow with the message size: only the header is held (at
 * most MBOX_MAX_HEADER_HOLD bytes) to find Return-Path.
 *
 * For the index of the mbox (mirror/msgindex.h), each entry written is
 * described by a struct mbox_entry: where it is, its digest and the hash of
 * its Message-ID.  The same digest comes from raw message bytes without a
 * file (mbox_digest_*) and from an mbox file's bytes (mbox_scan_*).
 */
#ifndef MM_MBOX_H
#define MM_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Header bytes held to find Return-Path before the From_ line is written. */
#define MBOX_MAX_HEADER_HOLD (256 * 1024)
/* Output buffered before it is written (pwrite(2)). */
#define MBOX_WRITE_BUFFER (256 * 1024)
/* Longest sender written in a From_ line; a longer one is cut. */
#define MBOX_MAX_SENDER 512
/* Room for any From_ line, NUL included. */
#define MBOX_FROM_LINE_MAX (MBOX_MAX_SENDER + 64)
/* A dotlock whose mtime is older than this is stale and removed. */
#define MBOX_DOTLOCK_STALE_SECS 300
/* How long mbox_open() waits for other lock holders by default. */
#define MBOX_LOCK_WAIT_MSEC_DEFAULT 10000
/* committed_size for a file with no known committed size: never truncate,
 * append at its end (mbox_open() returns MBOX_OPEN_OK). */
#define MBOX_SIZE_UNKNOWN UINT64_MAX

/* SHA-256. */
#define MBOX_DIGEST_LEN 32

struct mbox;

/*
 * One entry of the file.  offset: where its From_ line starts; length: the
 * whole entry, From_ line and the empty line that ends it included (the
 * next entry starts at offset + length; the LFs written before the first
 * entry after bytes of another program are not part of it).  digest: the
 * SHA-256 of the entry's bytes after its From_ line (the quoted message,
 * its last LF, the empty line).  message_id_hash: mbox_message_id_hash()
 * of the first Message-ID header in the message's header (at most
 * MBOX_MAX_HEADER_HOLD bytes of it looked at); 0: none.
 */
struct mbox_entry {
	uint64_t offset;
	uint64_t length;
	uint8_t digest[MBOX_DIGEST_LEN];
	uint64_t message_id_hash;
};

enum mbox_open_result {
	MBOX_OPEN_FAILED = -1,
	MBOX_OPEN_OK = 0,
	MBOX_OPEN_TRUNCATED,	/* longer than committed: crash leftover cut */
	MBOX_OPEN_SHORTER,	/* shorter than committed: someone changed it */
	MBOX_OPEN_CHANGED,	/* longer, by another program's bytes */
};

/*
 * Opens (creating 0600, parents not included) path for appending: refuses
 * symlinks and anything but a regular file with one link, takes an fcntl
 * write lock and a "<path>.lock" dotlock (waiting up to the lock wait,
 * MBOX_LOCK_WAIT_MSEC_DEFAULT unless changed, for other holders; a dotlock
 * older than MBOX_DOTLOCK_STALE_SECS is removed; one that is not a regular
 * file is an error at once, neither waited for nor removed), then compares
 * the size with committed_size, the size the caller recorded with its
 * last commit.
 *
 * Telling our crash leftover from mail another program appended.  marker
 * is the path of a small file (outside the output directory: the caller's
 * state directory) where this writer records its appends to path:
 *  - before the first byte past the committed size is written, durably:
 *    "open" (a run is appending), with where its bytes end, updated (not
 *    synced) after every write;
 *  - at mbox_close(): "done", with the committed size (the file's end).
 * The record names the file (path, device, inode); one about another file
 * counts as none.  When the file is longer than committed_size:
 *  - no record, or "done" at or before committed_size: nothing past
 *    committed_size is ours; it is another program's (a reader appended a
 *    message, or rewrote the file to store flags): left alone, appends go at
 *    its end (MBOX_OPEN_CHANGED; the caller records the new size and warns;
 *    nothing is lost);
 *  - "open" (a run of ours was killed or lost power), "done" past
 *    committed_size (the caller did not record our last commits), or a
 *    record that cannot be read: the bytes from committed_size are ours, and
 *    exactly once (DESIGN.md section 5) wants them gone: the file is
 *    truncated back to committed_size (MBOX_OPEN_TRUNCATED).  What lies
 *    past the end the record names was appended by another program after
 *    ours; when the tail does not start like an entry of ours (up to two
 *    LFs, then "From ") or the record is unreadable, all of it may be.
 *    Those bytes are first copied, durably, to a new
 *    "<path>.cut-<unix time>[-<k>]" (mbox_cut_path() names it), never lost.
 *    After a power cut the unsynced end may be older than our last write:
 *    then some of our own bytes are saved aside too, which costs a
 *    duplicate in that file, never in the mbox.
 * When the file is shorter: it is left alone and appends go at its end
 * (MBOX_OPEN_SHORTER; the caller records the new size and warns; nothing
 * is lost).  MBOX_SIZE_UNKNOWN: appends go at its end (MBOX_OPEN_OK).
 * When appending after bytes this writer did not commit (SHORTER, CHANGED,
 * unknown), the first message is preceded by the LFs needed to end the file
 * in an empty line, so it still starts an entry of its own.
 *
 * The fcntl lock is an open-file-description lock where the system has them
 * (it conflicts with classic fcntl locks of mail readers, and with a second
 * mbox_open() in the same process).  No file is ever opened in a way that
 * could block (a FIFO's open(2) waits for a writer).  Returns
 * MBOX_OPEN_FAILED with a malloc'ed *error_r naming the file on failure
 * (*mbox_r is then NULL).
 */
enum mbox_open_result mbox_open(const char *path, const char *marker,
    uint64_t committed_size, struct mbox **mbox_r, char **error_r);
/* The file mbox_open() saved a cut tail to (see above), or NULL. */
const char *mbox_cut_path(const struct mbox *mbox);

/*
 * One message: begin, its raw bytes as they come (any chunking), end.
 * 0 or -1 (mbox_error() says why).  After a failed write everything since
 * the last commit has been truncated away: every call but mbox_rollback()
 * and mbox_close() fails until mbox_rollback() is called.  Calling them out
 * of order (write outside a message, begin twice) fails too.
 */
int mbox_msg_begin(struct mbox *mbox, time_t internaldate);
int mbox_msg_write(struct mbox *mbox, const void *data, size_t len);
int mbox_msg_end(struct mbox *mbox);

/* The entry the last successful mbox_msg_end() completed (zeroed before
 * the first).  Valid until the next mbox_msg_end() or mbox_close(). */
const struct mbox_entry *mbox_last_entry(const struct mbox *mbox);

/* Writes out the buffer and fdatasyncs (once): everything appended is
 * durable.  *size_r (may be NULL) is the new committed size.  Fails while a
 * message is open.  On failure truncates back to the last committed size.
 * 0 or -1. */
int mbox_commit(struct mbox *mbox, uint64_t *size_r);
/* Drops everything appended since the last commit (truncates back), also a
 * message in progress, and clears a failed state.  0, or -1 if the file
 * could not be truncated. */
int mbox_rollback(struct mbox *mbox);
/* The size the file will have once everything appended so far is written:
 * taken after mbox_msg_end(), where the next entry begins. */
uint64_t mbox_appended_size(const struct mbox *mbox);
/*
 * Commits what was appended up to size (a value mbox_appended_size() gave
 * between two messages, or the committed size) and drops everything after
 * it, a message in progress too: the rest is truncated away, and the file is
 * fdatasync'ed.  For keeping the part of a batch that may be recorded when
 * the rest may not.  *size_r (may be NULL) is the new committed size.  0 or
 * -1; on failure everything since the last commit is truncated away.
 */
int mbox_commit_upto(struct mbox *mbox, uint64_t size, uint64_t *size_r);
/* Size as last committed (after open: the size it started appending at). */
uint64_t mbox_committed_size(const struct mbox *mbox);
/* Rolls back anything uncommitted, records "done" at the committed size in
 * the append record (if this run appended; not after a failed truncation,
 * which leaves "open"), releases the locks and closes; NULLs *mbox.
 * Returns 0, or -1 with a malloc'ed *error_r (error_r may be NULL) if
 * truncating, recording, unlocking or closing failed. */
int mbox_close_checked(struct mbox **mbox, char **error_r);
/* mbox_close_checked() for callers that have nothing to do on failure. */
void mbox_close(struct mbox **mbox);
/* The last error (e.g. "write /x/INBOX.mbox: No space left on device"), or
 * "" if none. */
const char *mbox_error(const struct mbox *mbox);

/*
 * The From_ line for a message: "From <sender> <asctime UTC>\n" into buf,
 * NUL-terminated, like "From alice@example.org Sat Nov  1 09:05:03 2026\n"
 * (asctime pads a one-digit day with a space).  sender is the Return-Path
 * address (NULL, "" or "<>": MAILER-DAEMON; surrounding angle brackets are
 * stripped); spaces and control characters in it become '_' and it is cut
 * at MBOX_MAX_SENDER bytes, so the line stays parseable.  Returns the
 * length of the whole line; if that is >= size, the line was cut (like
 * snprintf).  MBOX_FROM_LINE_MAX is always enough.
 */
size_t mbox_from_line(char *buf, size_t size, const char *sender,
    time_t internaldate);

/*
 * The hash of a Message-ID header's value (unfolded; surrounding
 * whitespace is trimmed, and of a value with '<' only the id from '<' to
 * the next '>' counts): FNV-1a 64 of those bytes, never 0.  0: an empty
 * value.  The writer applies it to the header it holds; a caller that
 * fetched BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] passes the value.
 */
uint64_t mbox_message_id_hash(const void *value, size_t len);
/* The message_id_hash of an entry whose message has this header (its first
 * Message-ID, the value cut where the writer cuts it); 0: none. */
uint64_t mbox_header_message_id_hash(const void *header, size_t len);

/*
 * The digest an entry written from a message would have, from the raw
 * message bytes (as a server sends them, any chunking), without a file:
 * the writer's encoding, hashed.  Each call 0, or -1 (out of memory, or
 * GnuTLS failed).  mbox_digest_end() fills digest and (when not NULL)
 * *message_id_hash_r; after it the digest takes a new message.
 */
struct mbox_digest;
int mbox_digest_new(struct mbox_digest **digest_r);
int mbox_digest_write(struct mbox_digest *d, const void *data, size_t len);
int mbox_digest_end(struct mbox_digest *d, uint8_t digest[MBOX_DIGEST_LEN],
    uint64_t *message_id_hash_r);
void mbox_digest_free(struct mbox_digest **d);

/*
 * Reading the entries of an mbox file, first to last, up to size bytes
 * (read-only, no lock taken: the caller holds the mbox open or knows no
 * one writes).  An entry starts at every line "From " at offset 0 or after
 * an empty line (mboxrd quotes every other "From " line) and ends where the
 * next one starts, or at size.  Bytes before the first entry belong to
 * none (struct mbox_scan_entry.skipped counts them).
 */
struct mbox_scan;
struct mbox_scan_entry {
	struct mbox_entry entry;
	uint64_t skipped;	/* bytes before it that are in no entry */
	time_t date;		/* of its From_ line; 0: unreadable */
	/* The message's size as a server counts it, from the entry: quoting
	 * undone, each LF counted as CRLF, the empty line left out. */
	uint64_t message_size;
};
/* 0, or -1 with a malloc'ed *error_r naming the file. */
int mbox_scan_open(const char *path, uint64_t size, struct mbox_scan **scan_r,
    char **error_r);
/* 1: *entry_r is the next entry; 0: no more (entry_r->skipped then counts
 * a file with no entry at all); -1: with a malloc'ed *error_r. */
int mbox_scan_next(struct mbox_scan *scan, struct mbox_scan_entry *entry_r,
    char **error_r);
void mbox_scan_close(struct mbox_scan **scan);

/* Changes how long mbox_open() waits for the locks (process-wide). */
void mbox_set_lock_wait(unsigned int msec);
unsigned int mbox_lock_wait(void);

/*
 * Whether another process holds path's lock now: a write-conflicting fcntl
 * lock, or a dotlock (a regular file) that is not stale.  Neither waits,
 * blocks nor locks, so a caller on an event loop can wait on a timer instead
 * of in mbox_open(); a mbox or dotlock that is not a regular file is not
 * "locked": mbox_open() reports it.
 */
bool mbox_locked_elsewhere(const char *path);

/*
 * The system calls behind writing, syncing and truncating the mbox (not
 * its lock or append record), replaceable so tests can inject failures.  NULL restores the real ones.  Not for use
 * outside tests.
 */
struct mbox_sys_ops {
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	int (*fdatasync)(int fd);
	int (*ftruncate)(int fd, off_t len);
};
void mbox_set_sys_ops(const struct mbox_sys_ops *ops);

#endif
