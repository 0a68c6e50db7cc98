/*
 * mirror/state: what has been mirrored, per account, kept in
 * <state_dir>/<account>/state: per mailbox its UIDVALIDITY, the highest UID
 * mirrored, the UIDNEXT seen and the mbox size that goes with them; and the
 * account's last outcome for --status.  Saved atomically (temp file, fsync,
 * rename, fsync of the directory), so it never claims a message that is not
 * durably in its mbox.  The file format is internal and versioned.
 */
#ifndef MM_MIRROR_STATE_H
#define MM_MIRROR_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct mailbox_state {
	char *name;		/* the server's name, as sent (raw) */
	char *file;		/* mbox path relative to the account's output
				 * (a names_mbox_path() result), or NULL */
	uint32_t uidvalidity;
	uint32_t last_uid;	/* highest UID appended and committed */
	uint32_t uidnext;	/* UIDNEXT when last synced (0: unknown) */
	uint32_t messages;	/* messages mirrored into file */
	uint64_t mbox_size;	/* committed size of file */
	/* A UID listed but not delivered (0: none), and how many syncs met
	 * it (mirror/plan.h). */
	uint32_t hole_uid;
	uint32_t hole_tries;
	/* UIDs given up after PLAN_HOLE_TRIES_MAX syncs, ascending, at most
	 * STATE_SKIPPED_MAX of them (the newest); skipped_total counts all. */
	uint32_t *skipped;
	size_t n_skipped;
	uint32_t skipped_total;
	/* UIDs above last_uid already in file: messages a remap after a
	 * UIDVALIDITY change found there (mirror/remap.h), which the fetch
	 * leaves out.  Ascending, disjoint ranges; those at or below last_uid
	 * mean nothing more and are not saved.  A mailbox mirrored afresh has
	 * none. */
	struct state_range *remapped;
	size_t n_remapped;
	/* Syncs in a row whose remap to UIDVALIDITY remap_refused_uidvalidity
	 * the server refused (0: none; mirror/remap.h gives up at
	 * REMAP_REFUSED_MAX). */
	uint32_t remap_refused_uidvalidity;
	uint32_t remap_refused;
};

struct state_range {
	uint32_t lo, hi;	/* lo <= hi */
};

#define STATE_SKIPPED_MAX 100

struct account_state {
	struct mailbox_state *mailboxes;
	size_t n_mailboxes;
	time_t last_attempt;
	time_t last_success;
	time_t last_error_time;
	char *last_error;	/* NULL when the last attempt succeeded */
	char last_error_kind[16];	/* one word ("network"...), or "" */
	time_t next_attempt;
	unsigned failures;	/* consecutive */
};

/* The account's state directory "<state_dir>/<account>" (malloc'ed); the
 * account name is escaped so it stays one path component. */
char *state_account_dir(const char *state_dir, const char *account);

/* Loads "<dir>/state", replacing *state (zeroed or a valid state: its old
 * contents are freed); a missing file gives an empty state (0).  -1 and
 * *error_r (malloc'ed, "FILE:LINE: what" for a corrupt file, also for a file
 * of an unknown future version) with *state untouched.  The file is parsed
 * by state_parse(). */
int state_load(const char *dir, struct account_state *state,
    char **error_r);
/* Parses the len bytes at buf (a state file's contents; no NUL needed) as
 * state_load() does, name standing for the file in errors.  Every mailbox's
 * file is NULL ("-") or a path that stays inside the output directory:
 * relative, no empty, "." or ".." component, no control byte, ending in
 * ".mbox"; anything else is a corrupt state.  0, or -1 with *state
 * untouched and *error_r as for state_load(). */
int state_parse(const char *buf, size_t len, const char *name,
    struct account_state *state, char **error_r);
/* Creates dir (0700, parents too, each new one's parent fsynced) if
 * needed; atomic replace: writes
 * "state.tmp" (0600, O_EXCL after removing a stale one), fsyncs, renames it
 * over "state" and fsyncs dir.  One writer per dir at a time.  0, or -1 and
 * a malloc'ed *error_r naming the file and the failing step; on failure the
 * previous state file is untouched and no temp file is left. */
int state_save(const char *dir, const struct account_state *state,
    char **error_r);
void state_clear(struct account_state *state);

struct mailbox_state *state_find(struct account_state *state,
    const char *name);
/* Finds or adds (zeroed, name copied). NULL on allocation failure.  Adding
 * moves the array: pointers from earlier state_find/state_get calls are then
 * stale. */
struct mailbox_state *state_get(struct account_state *state,
    const char *name);
/* Records the last error, its kind (one lower-case word, cut to fit; NULL
 * or "" for none) and its time; error NULL clears both (success).  The copy
 * kept has every secret registered with the log masked (log_redact), so a
 * secret a server echoed never reaches the state file. */
void state_set_error(struct account_state *state, const char *error,
    const char *kind, time_t when);
/* Records uid as given up (kept ascending, the oldest dropped past
 * STATE_SKIPPED_MAX).  0, or -1 on allocation failure. */
int state_add_skipped(struct mailbox_state *mb, uint32_t uid);
bool state_is_skipped(const struct mailbox_state *mb, uint32_t uid);
/* Replaces mb's remapped UIDs by uids[0..n) (ascending, distinct), kept as
 * ranges.  0, or -1 on allocation failure (mb unchanged). */
int state_set_remapped(struct mailbox_state *mb, const uint32_t *uids,
    size_t n);
/* Whether uid is one of mb's remapped UIDs above its last_uid. */
bool state_is_remapped(const struct mailbox_state *mb, uint32_t uid);
/* The highest remapped UID above last_uid, or 0. */
uint32_t state_newest_remapped(const struct mailbox_state *mb);

/*
 * The account's run lock, so that one process at a time syncs it (say the
 * daemon and a --once) and writes its state: creates dir (0700, parents
 * too) and "<dir>/lock" (0600) if needed, takes an exclusive flock(2) on it
 * without waiting and writes this process's pid into it.  The lock belongs
 * to the open file: a second state_lock() conflicts even in the same
 * process.  Returns 0 with *fd_r, to hold for as long as the state may be
 * written (state_unlock() releases it); 1 when another holds it, *fd_r -1
 * and *holder_r the pid it wrote (0 if unknown); -1 with a malloc'ed
 * *error_r naming the file.  Never blocks.
 */
int state_lock(const char *dir, int *fd_r, long *holder_r, char **error_r);
/* Releases a lock state_lock() took (fd -1: nothing to do); sets *fd -1. */
void state_unlock(int *fd);

/*
 * Records when the account's next sync is due (for --status) in
 * "<dir>/state" and changes nothing else there: under the account lock
 * (state_lock()), loaded and saved as state_save() does.  0 when written;
 * 1 when nothing was written because the state is not this process's to
 * write now (another holds the lock) or cannot be locked or read (the next
 * sync reports why); -1 with a malloc'ed *error_r when saving failed.
 */
int state_set_next_attempt(const char *dir, time_t when, char **error_r);

/*
 * The daemon's own lock, so that --status can tell whether a daemon runs on
 * this state directory and a second daemon does not start beside it:
 * state_lock() on state_daemon_dir() ("<state_dir>/.daemon"; malloc'ed or
 * NULL), held for the daemon's life.
 */
char *state_daemon_dir(const char *state_dir);
/* The lock directory of the daemon of shard k of n: state_daemon_dir()
 * when n is 0 (not sharded), else "<state_dir>/.daemon/shard-K-of-N", so
 * the daemons of several shards can share a state directory.  malloc'ed,
 * or NULL. */
char *state_shard_daemon_dir(const char *state_dir, unsigned k, unsigned n);
/* Whether the daemon of shard k of n (n 0: the unsharded one) runs,
 * looking without creating anything: 1 if it holds its lock (*pid_r its
 * pid, 0 if not written yet), 0 if none does, -1 if it cannot tell. */
int state_shard_daemon_running(const char *state_dir, unsigned k,
    unsigned n, long *pid_r);
/* state_shard_daemon_running() for the daemon whose lock directory is
 * dir. */
int state_daemon_running_in(const char *dir, long *pid_r);
/*
 * Whether a daemon of another layout runs on state_dir, for a daemon of n
 * shards (0: not sharded): the unsharded daemon, or the daemon of a shard
 * of another count.  Beside each other they would both take some accounts
 * and leave others to none.  A lock directory whose lock is the one
 * ignore_fd holds (this process's own, -1: none) is passed over.  1 with
 * *who_r (malloc'ed: "shard K/M", or "the daemon that is not sharded")
 * and *pid_r (0 if not written yet), 0 if none runs, -1 if it cannot tell.
 */
int state_daemon_other_layout(const char *state_dir, unsigned n,
    int ignore_fd, char **who_r, long *pid_r);

/*
 * Where the mbox writer keeps the record of its appends to file (the mbox
 * path relative to the account's output; see mbox_open()):
 * "<dir>/append-<16 hex digits of a 64-bit FNV-1a hash of file>".  The
 * record names its mbox: two files whose names hash alike (unlikely by
 * chance) can only overwrite each other's record, never be mistaken for
 * each other.  malloc'ed, or NULL.
 */
char *state_append_record(const char *dir, const char *file);

#endif
