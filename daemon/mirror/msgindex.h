/*
 * mirror/msgindex: the index of one mailbox's mbox, kept in the account's
 * state directory as "index-<16 hex>" (the FNV-1a of the mbox's path
 * relative to the output directory, like the append record): for every
 * message the sync appended, its UID and UIDVALIDITY, where its entry is
 * (offset, length, as struct mbox_entry), RFC822.SIZE, INTERNALDATE with
 * its zone, the flags and keywords it had when fetched, the hash of its
 * Message-ID and the SHA-256 of the entry after its From_ line.
 *
 * The file (little-endian throughout):
 *   header: "mmindex1", u32 version (1), u32 record size (84),
 *           u32 name length, u32 check (FNV-1a 64 of the header with the
 *           check zeroed, low 32 bits), the mbox path (relative, not NUL
 *           terminated);
 *   records in the order of their entries in the mbox, each:
 *     u32 uid, u32 uidvalidity, u64 offset, u64 length,
 *     u32 size (RFC822.SIZE; UINT32_MAX: that or more), i64 internaldate,
 *     i16 tz_minutes, u16 flags, u16 keywords length, u16 check (FNV-1a
 *     64 of the record with the check zeroed and its keywords, low 16
 *     bits), u64 message_id_hash, 32 bytes digest,
 *     then the keywords (space-separated, no NUL).
 *
 * It is written under the commit protocol (DESIGN.md section 5): records
 * are appended and fdatasync'ed after the mbox is durable and before the
 * state records the new size, so the index is never ahead of a durable
 * mbox; records past the size the state records are crash leftovers and
 * are cut when the index is opened again.  A mirror made before the index
 * existed has none: it is rebuilt from the mbox, and a rebuilt record
 * cannot know the UID, UIDVALIDITY, flags and keywords (0, NULL;
 * MSGINDEX_REBUILT set), and its size and INTERNALDATE come from the entry
 * (LFs counted as CRLF; the From_ line's date, zone unknown).
 */
#ifndef MM_MIRROR_MSGINDEX_H
#define MM_MIRROR_MSGINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "mbox/mbox.h"

#define MSGINDEX_DIGEST_LEN MBOX_DIGEST_LEN

#define MSGINDEX_SEEN		0x0001
#define MSGINDEX_ANSWERED	0x0002
#define MSGINDEX_FLAGGED	0x0004
#define MSGINDEX_DELETED	0x0008
#define MSGINDEX_DRAFT		0x0010
/* Rebuilt from the mbox: uid, uidvalidity, flags and keywords unknown. */
#define MSGINDEX_REBUILT	0x8000

/* Bytes of one record before its keywords. */
#define MSGINDEX_RECORD_SIZE	84
/* Keyword bytes kept per message; more are cut at a space. */
#define MSGINDEX_KEYWORDS_MAX	4096

struct msgindex_entry {
	uint32_t uid;		/* 0: unknown (rebuilt) */
	uint32_t uidvalidity;	/* the UIDVALIDITY uid belongs to; 0: unknown */
	uint64_t offset, length;	/* as struct mbox_entry */
	uint64_t size;		/* RFC822.SIZE (rebuilt: from the entry) */
	int64_t internaldate;	/* UTC seconds */
	int16_t tz_minutes;	/* INTERNALDATE's zone, minutes east of UTC */
	uint16_t flags;		/* MSGINDEX_*; \Recent never */
	uint64_t message_id_hash;
	uint8_t digest[MSGINDEX_DIGEST_LEN];
	char *keywords;		/* NULL, or space-separated ("$Forwarded x") */
};

struct msgindex;

struct msgindex_list {
	struct msgindex_entry *v;
	size_t n;
};

/* "<account_state_dir>/index-<16 hex>" for the mbox at file (relative to
 * the output directory); malloc'ed, NULL when out of memory. */
char *msgindex_path(const char *account_state_dir, const char *file);

/*
 * Opens the index at path of the mbox file (relative name, as in the
 * header) at mbox_path, whose committed size is committed_size, for
 * appending.  Records that end past committed_size are cut (durably), and
 * so is anything after the records that reach it (an append the state
 * never counted on: a record there that fails its check is not
 * corruption).  An index whose records do not reach committed_size (the
 * mbox has bytes past them: another program's, or records were lost) is
 * checked against the mbox first (msgindex_check(); *rebuilt_r, when not
 * NULL, then counts the records rebuilt).  A missing index, or one naming
 * another mbox, is made anew: empty, or, when committed_size > 0, rebuilt
 * from the mbox's first committed_size bytes (*rebuilt_r, when not NULL,
 * then counts the records: the caller says so).
 * An index that cannot be read (bad header, a record that fails its check
 * before the committed end) is renamed to "<path>.corrupt-<unix time>" and
 * rebuilt the same way (*corrupt_r, when not NULL, then holds that name,
 * malloc'ed).  0, or -1 with a malloc'ed *error_r naming the file.
 */
int msgindex_open(const char *path, const char *file, const char *mbox_path,
    uint64_t committed_size, struct msgindex **ix_r, char **error_r);
int msgindex_open_ex(const char *path, const char *file,
    const char *mbox_path, uint64_t committed_size, struct msgindex **ix_r,
    size_t *rebuilt_r, char **corrupt_r, char **error_r);
/*
 * Checks the index at path against the first committed bytes of the mbox
 * at mbox_path (the whole of it is read), for an mbox another program may
 * have changed: the index is rewritten with a record for every entry the
 * mbox holds, in its order; an entry whose bytes (length and digest) a
 * record of the index had keeps that record (UID, flags and all) at its
 * offset now, the others are rebuilt records (*rebuilt_r, when not NULL,
 * counts them).  A missing or unreadable index gives a rebuilt one; an
 * unreadable record ends what is taken from it.  0, or -1 with a
 * malloc'ed *error_r.
 */
int msgindex_check(const char *path, const char *file, const char *mbox_path,
    uint64_t committed, size_t *rebuilt_r, char **error_r);
/* Buffers one record (e->keywords copied).  0, or -1 when out of memory
 * or when e is not after the last record (its offset before where that one
 * ended). */
int msgindex_add(struct msgindex *ix, const struct msgindex_entry *e);
/* Drops what msgindex_add() buffered since the last commit. */
void msgindex_discard(struct msgindex *ix);
/* Appends the buffered records and fdatasyncs.  0, or -1 with a malloc'ed
 * *error_r (the file is cut back to what was committed before). */
int msgindex_commit(struct msgindex *ix, char **error_r);
/* Records committed so far (after open: those kept). */
size_t msgindex_count(const struct msgindex *ix);
/* Drops anything uncommitted, closes, frees; NULLs *ix. */
void msgindex_close(struct msgindex **ix);

/*
 * Readers (never modify anything).  Loads every record of the index at
 * path; file, when not NULL, must be the mbox its header names.  A last
 * record cut short or failing its check at the end of the file (an append
 * torn by a crash, or one a sync is writing now) is left out; records past
 * the state's mbox size are the caller's to leave out.  Returns 0 loaded,
 * 1 no index file (l empty), -1 with a malloc'ed *error_r ("PATH: record
 * K: what" for a bad record).
 */
int msgindex_load(const char *path, const char *file, struct msgindex_list *l,
    char **error_r);
/* The records a rebuild gives for the first size bytes of the mbox at
 * mbox_path (see above).  0, or -1 with a malloc'ed *error_r. */
int msgindex_rebuild(const char *mbox_path, uint64_t size,
    struct msgindex_list *l, char **error_r);
void msgindex_list_free(struct msgindex_list *l);

/* Replaces the index at path with one of file holding v[0..n), atomically
 * (a temporary file, fsync, rename, fsync of the directory).  0, or -1
 * with a malloc'ed *error_r. */
int msgindex_rewrite(const char *path, const char *file,
    const struct msgindex_entry *v, size_t n, char **error_r);

/*
 * The index at from (of an mbox just moved aside) becomes to's, the index
 * of the mbox now at to_file: rewritten under the new name, then from is
 * removed.  Records after the first that cannot be read (a torn append)
 * are left out; an index whose header cannot be read is removed (the kept
 * file can be indexed again from its bytes).  Nothing at from: 0.  0, or
 * -1 with a malloc'ed *error_r.
 */
int msgindex_move(const char *from, const char *to, const char *to_file,
    char **error_r);

/* The MSGINDEX_* bit of a system flag ("\Seen", any case); 0 for \Recent
 * and anything else. */
uint16_t msgindex_flag_bit(const char *flag);

#endif
