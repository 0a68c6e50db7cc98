/*
 * verify_compare: the decisions of --verify, pure (no I/O): a mailbox's
 * server listing (UID, RFC822.SIZE) against its index (which UIDs the
 * mirror lacks, holds twice or holds with another size), and its index
 * against the entries its mbox file holds (in place, moved, changed, lost
 * to a truncation; copies and bytes no entry accounts for).  What is wrong
 * comes out as problem records; verify.c prints them.
 */
#ifndef MM_VERIFY_COMPARE_H
#define MM_VERIFY_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VERIFY_DIGEST_LEN 32

enum verify_kind {
	/* Against the server */
	VERIFY_MISSING,		/* listed (UID <= the last committed), not
				 * in the mirror */
	VERIFY_GIVEN_UP,	/* ...and the sync gave it up (the state's
				 * skipped list): known, not corruption */
	VERIFY_DUPLICATE_UID,	/* indexed more than once; offset: the
				 * second */
	VERIFY_SIZE,		/* a: the server's RFC822.SIZE, b: the
				 * index's */
	VERIFY_COUNT,		/* entries without a UID (rebuilt): a of
				 * them, b listed UIDs no recorded UID
				 * accounts for */
	VERIFY_UIDVALIDITY,	/* a: the server's, b: the state's */
	VERIFY_DEEP_DIFFERS,	/* the server's bytes, encoded as the writer
				 * does, differ from what was written */
	VERIFY_DEEP_UNMATCHED,	/* index without UIDs: the entry at offset
				 * matches no message of the server */
	/* Against the file */
	VERIFY_CHANGED,		/* at its offset, its bytes differ */
	VERIFY_NO_ENTRY,	/* no From_ line at its offset */
	VERIFY_REMOVED,		/* gone: other entries' bytes are there */
	VERIFY_MOVED,		/* intact, shift bytes from its offset;
				 * uid..uid_last, a: how many */
	VERIFY_LOST,		/* the file ends before it does */
	VERIFY_DUPLICATE_ENTRY,	/* another copy of it at offset */
	VERIFY_FOREIGN,		/* length bytes at offset in no entry */
	VERIFY_TAIL,		/* length bytes after the last entry */
	VERIFY_SHORT,		/* the file: a bytes, its last entry's end
				 * (as committed, shifted as it moved): b */
};

struct verify_problem {
	enum verify_kind kind;
	uint32_t uid;		/* 0: none (the mailbox, or unknown) */
	uint32_t uid_last;	/* VERIFY_MOVED: the last of the run */
	uint64_t offset, length;	/* in the mbox, where it applies */
	int64_t shift;		/* VERIFY_MOVED */
	uint64_t a, b;		/* figures, see the kind */
};

struct verify_problems {
	struct verify_problem *v;
	size_t n, cap;
};

/* Appends p; 0, or -1 when out of memory. */
int verify_problems_add(struct verify_problems *l,
    const struct verify_problem *p);
void verify_problems_free(struct verify_problems *l);

/* The kind as one word for JSON ("missing", "moved"...). */
const char *verify_kind_name(enum verify_kind kind);
/* What is wrong, in words, without the account, the mailbox or the UID
 * (the caller prefixes them): into buf, cut to fit size (> 0); buf. */
const char *verify_problem_text(const struct verify_problem *p, char *buf,
    size_t size);

/*
 * Whether a refused EXAMINE says the mailbox is gone from the server (then
 * counted, its mirror kept): NO with [NONEXISTENT], or NO without a
 * response code (servers that say so in words only).  NO with any other
 * code ([UNAVAILABLE], [NOPERM]...) or BAD: it could not be looked at.
 */
bool verify_refusal_gone(bool no, const char *code);

/* One message the server listed. */
struct verify_listed {
	uint32_t uid;
	uint64_t size;		/* RFC822.SIZE */
};

/* Where the bytes at an indexed entry's recorded place stand (verify.c
 * reads them). */
enum verify_at {
	VERIFY_AT_INTACT,	/* From_ line, then bytes of its digest */
	VERIFY_AT_DIFFERS,	/* a From_ line, other bytes */
	VERIFY_AT_NO_FROM,	/* no From_ line there */
	VERIFY_AT_PAST_END,	/* the file ends before the entry */
};

/* One entry of the index, as the comparisons need it. */
struct verify_indexed {
	uint32_t uid;		/* 0: unknown (a rebuilt index) */
	/* Of an earlier UIDVALIDITY, kept when a changed one was matched by
	 * content (mirror/remap.h): deleted on the server, checked in the
	 * file only; uid is 0. */
	bool earlier;
	uint64_t size;		/* RFC822.SIZE recorded */
	uint64_t offset, length;
	uint8_t digest[VERIFY_DIGEST_LEN];
	enum verify_at at;
	/* The digest of what the file holds for it (at its place, or where
	 * verify_compare_local() found it); for --deep, which compares the
	 * server's bytes with the file's. */
	bool has_file_digest;
	uint8_t file_digest[VERIFY_DIGEST_LEN];
};

/* One entry the file holds: from a From_ line to the next (or the end),
 * digest as defined for the index; from_line false for bytes before the
 * first From_ line. */
struct verify_found {
	uint64_t offset, length;
	uint8_t digest[VERIFY_DIGEST_LEN];
	bool from_line;
};

/*
 * The size queries of a mailbox, so that the server's answers to each stay
 * within what a session takes for progress (imap/session.c counts at most
 * UNTAGGED_PROGRESS_MAX untagged responses in a row): the UIDs of the n
 * indexed entries (UID 0 left out), sorted and taken once, cut into runs
 * of chunk; *ends_r (malloc'ed, *n_r of them, at least 1) gets the last
 * UID of each query, 0 for the last one ("*").  Query k asks
 * ends[k - 1] + 1 (1 for the first) up to ends[k].  Up to chunk UIDs: one
 * query, "1:*".  0, or -1 when out of memory.
 */
int verify_size_ranges(const struct verify_indexed *ix, size_t n,
    size_t chunk, uint32_t **ends_r, size_t *n_r);

struct verify_server_counts {
	size_t listed;		/* UIDs up to the last committed */
	size_t in_mirror;	/* ...of them found in the index */
	size_t given_up;	/* ...given up by the sync */
	size_t deleted;		/* indexed, no longer on the server */
	size_t newer;		/* listed after the last committed UID */
	bool uids_unknown;	/* the index has no UIDs: counts compared */
};

/*
 * The server's list (sorted here by UID) against the n indexed entries:
 * every UID the server lists up to last_uid must be indexed once with its
 * size (VERIFY_MISSING, VERIFY_DUPLICATE_UID, VERIFY_SIZE), or be one of
 * the UIDs the sync gave up (skipped, ascending; VERIFY_GIVEN_UP).
 * Indexed UIDs the server no longer lists are counted (deleted), and so
 * are listed UIDs after last_uid (newer): neither is a problem.  Entries
 * with UID 0 (a rebuilt index) may be any of the listed UIDs no recorded
 * UID accounts for: those are then counted, not missing, and
 * VERIFY_COUNT (last) says when there are more of them than such
 * entries.  Problems in UID order.  0, or -1 when out of memory.
 */
int verify_compare_server(struct verify_listed *listed, size_t nlisted,
    const struct verify_indexed *ix, size_t nix, uint32_t last_uid,
    const uint32_t *skipped, size_t nskipped, struct verify_problems *out,
    struct verify_server_counts *counts_r);

/* Whether the len bytes at offset are all LF (the separator the writer
 * puts before its first entry after another program's bytes). */
typedef bool verify_only_lf_fn(uint64_t offset, uint64_t len, void *arg);

/*
 * The index (sorted here by offset; every entry ends at or before
 * committed) against the entries the file holds (found, in file order,
 * covering it from 0 to its end, file_size).  Each indexed entry is intact
 * in place, or found intact elsewhere (VERIFY_MOVED, runs of one shift
 * told once), or: past the file's end (VERIFY_LOST), overlaid by entries
 * moved there (VERIFY_REMOVED), without a From_ line (VERIFY_NO_ENTRY),
 * with other bytes (VERIFY_CHANGED).  A found entry that repeats an
 * indexed one is VERIFY_DUPLICATE_ENTRY; bytes before the committed end
 * that no entry accounts for, and that are not only LFs, are
 * VERIFY_FOREIGN; then VERIFY_TAIL or VERIFY_SHORT when the file does not
 * end at committed (moved by as much as the last indexed entry moved).
 * An entry found intact elsewhere gets its digest as file_digest.
 * Problems in file order.  0, or -1 when out of memory.
 */
int verify_compare_local(struct verify_indexed *ix, size_t nix,
    const struct verify_found *found, size_t nfound, uint64_t committed,
    uint64_t file_size, verify_only_lf_fn *only_lf, void *arg,
    struct verify_problems *out);

/*
 * A tail a sync appended (it holds the lock, or committed it since): its
 * VERIFY_TAIL dropped from l, and the VERIFY_DUPLICATE_ENTRY at or after
 * where the tail starts (a message the server holds twice, appended
 * again); the other problems keep their order.
 */
void verify_drop_tail(struct verify_problems *l);

/*
 * --deep with an index without UIDs: each indexed entry's digest (of the
 * file's bytes, file_digest, where known) must be one of the server's
 * (digests of every message listed up to the last committed UID, nserver
 * of them; sorted here); VERIFY_DEEP_UNMATCHED for each that is not.
 * 0, or -1 when out of memory.
 */
int verify_compare_digests(const struct verify_indexed *ix, size_t nix,
    uint8_t (*server)[VERIFY_DIGEST_LEN], size_t nserver,
    struct verify_problems *out);

#endif
