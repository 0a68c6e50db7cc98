/*
 * restore_int: what the three parts of --restore share (see restore.h):
 * restore.c, the session and its state machine; restore_source.c, the
 * mirrored mailboxes, their indexes and each message read back from its
 * mbox; restore_journal.c, the journal file.  Internal to them.
 */
#ifndef MM_RESTORE_INT_H
#define MM_RESTORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "config.h"
#include "imap/session.h"
#include "mbox/decode.h"
#include "mirror/msgindex.h"
#include "mirror/names.h"
#include "mirror/restore_plan.h"
#include "restore.h"

/* APPENDs in flight at most, and the journal's "sending" records written
 * (and synced) ahead of them at once. */
#define APPEND_WINDOW 32
/* Raw mbox bytes read per piece while decoding. */
#define READ_CHUNK (64 * 1024)
#define PROGRESS_SECS 5.0
/* Target messages looked up per FETCH: as many as a sync's batch, far
 * below the untagged responses in a row the session takes for progress
 * (imap/session.c), however big the mailbox. */
#define SCAN_BATCH 2000
/* Mailboxes of the target; a server listing more is not believed (as a
 * sync and --list take it). */
#define LISTED_MAX 100000

enum rstate {
	RS_CONNECTING,
	RS_LISTING,
	RS_CREATING,
	RS_EXAMINING,
	RS_SCANNING,
	RS_APPENDING,
	RS_LOGOUT,
	RS_DONE,
};

struct rmsg {
	struct msgindex_entry e;
	enum restore_mark mark;		/* in the journal at the start */
	enum restore_action action;
};

struct rbox {
	struct restorer *r;
	char *raw;		/* the source server's name */
	char *display;		/* UTF-8, for people */
	char *file;		/* relative to the source output */
	char *mbox_path;
	uint64_t mbox_size;	/* committed, as the source's state says */
	uint64_t box_hash;	/* names it in the journal */
	char src_delim;
	char *target;		/* the name on the target; NULL: none */
	bool exists;		/* on the target */
	uint32_t target_messages;	/* EXISTS of its EXAMINE */
	uint32_t scan_next;	/* the first message not looked up yet */
	uint32_t scan_left;	/* answers the FETCH in flight may still give */
	struct rmsg *msgs;	/* loaded while its turn lasts */
	size_t n;		/* messages (also when msgs is freed) */
	bool rebuilt;		/* its index was rebuilt from the mbox */
	int fd;
	/* Outcome. */
	size_t n_upload, n_done, n_present, n_sent, n_ok, n_failed;
	uint64_t upload_bytes, ok_bytes;
	size_t next;		/* the next message to consider */
	bool failed;		/* as a whole (create, examine) */
};

/* One APPEND: the literal's reader and the done callback's argument. */
struct append {
	struct append *next, **prevp;	/* the restorer's list of them */
	struct restorer *r;
	struct rbox *b;
	struct rmsg *m;
	uint64_t literal_len;
	bool drop_added;
	struct mbox_decoder dec;
	uint64_t raw_pos;	/* entry bytes read */
	bool ended;		/* mbox_decode_end() called */
	unsigned char *pend;	/* decoded bytes not yet handed out */
	size_t pend_len, pend_off, pend_cap;
};

struct restorer {
	struct ev_loop *loop;
	const struct config *config;
	const struct account *src, *dst;
	const struct restore_options *o;
	char *src_dir;		/* the source account's state */
	enum rstate state;
	struct session *s;
	struct rbox *boxes;
	size_t n_boxes, cur;
	bool advancing;		/* in next_box() */
	bool advance_again;	/* box_done() asked for the next meanwhile */
	char target_delim;
	bool have_delim;
	struct names_patterns patterns;	/* --mailbox */
	struct restore_present present;
	char **listed;		/* the target's selectable mailboxes */
	size_t n_listed, cap_listed;
	/* The journal. */
	char *journal_path;
	int journal_fd;
	size_t journal_keep;	/* bytes up to its last whole line */
	bool journal_dirty;	/* "done" records not synced yet */
	struct restore_journal journal;
	int lock_fd;
	unsigned pending;	/* CREATE/APPEND answers awaited */
	struct append *appends;	/* queued, not answered (freed at the end
				 * if the session ends first) */
	/* Progress. */
	ev_timer progress;
	ev_tstamp started, box_started;
	uint64_t todo_bytes, sent_bytes, box_sent_bytes;
	size_t todo_msgs, sent_msgs;
	bool failed;		/* something is not on the target */
	bool aborted;		/* the session ended in error */
	unsigned char *raw;	/* READ_CHUNK */
};

/* restore_source.c */

/* Reads the source account's state and the selected mailboxes' indexes
 * (each freed again once counted: see restore_source_box_load()), in
 * reading order.  0, or -1 (said). */
int restore_source_load(struct restorer *r);
/* Loads b's messages from its index (or one rebuilt from the mbox), those
 * within the committed size.  0, or -1 (said). */
int restore_source_box_load(struct restorer *r, struct rbox *b);
void restore_source_box_free(struct rbox *b);
/* Opens b's mbox read-only.  0, or -1 (said). */
int restore_source_open(struct restorer *r, struct rbox *b);
/* Checks that a's entry starts like one and sets the literal's length
 * from a first decode of it.  0, or -1 (said). */
int restore_source_measure(struct restorer *r, struct rbox *b,
    struct append *a);
/* session_body_fn: the literal of an APPEND, decoded as it is sent. */
ssize_t restore_source_body(void *arg, void *buf, size_t size);
/* A new APPEND of m (in r's list until freed), or NULL. */
struct append *restore_append_new(struct restorer *r, struct rbox *b,
    struct rmsg *m);
void restore_append_free(struct append *a);
/* Whether every --mailbox pattern matched a mailbox (else said). */
bool restore_source_patterns_matched(const struct restorer *r);

/* restore_journal.c */

/* Reads the journal of this restore from dst_dir, if any (a last line cut
 * short is left for restore_jfile_open() to cut).  0, or -1 (said). */
int restore_jfile_load(struct restorer *r, const char *dst_dir);
/* Opens it for appending (created 0600 with its header).  0, or -1. */
int restore_jfile_open(struct restorer *r);
/* fdatasync.  0, or -1 (said). */
int restore_jfile_sync(struct restorer *r);
/* Appends the record of m in b (not synced).  0, or -1 (said). */
int restore_jfile_mark(struct restorer *r, const struct rbox *b,
    const struct rmsg *m, enum restore_mark mark, uint32_t uidvalidity,
    uint32_t uid);

#endif
