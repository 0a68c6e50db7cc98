/*
 * mirror/plan: the sync engine's decisions as pure functions (no I/O, no
 * event loop), so each rule is tested on arrays alone: what may be
 * committed, which mailboxes and UIDs are fetched, how batches are cut and
 * sized, what is retried, how loud progress is.
 *
 * A mailbox's fetch works on "todo": the UIDs the server listed as new,
 * ascending and distinct.  Bodies arrive in the order the server sends
 * them and are appended in that order; the state then records one number,
 * the highest UID below which every listed UID is in the mbox (or was given
 * up).  So a commit may cover only a prefix of what was appended: one whose
 * messages are exactly the UIDs of a prefix of todo, never past a UID that
 * was listed but not (yet) delivered.
 */
#ifndef MM_MIRROR_PLAN_H
#define MM_MIRROR_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mirror/error.h"

/* A message appended since the last commit: its UID and where its entry
 * ends in the mbox. */
struct plan_arrival {
	uint32_t uid;
	uint64_t end;
};

/*
 * The commit point.  todo[0..n_todo) ascending; resolved[i] is true where
 * todo[i] needs nothing more (committed earlier, or given up); arr[0..n_arr)
 * the messages appended since the last commit, in file order.  resolved is
 * scratch: the function marks in it the UIDs of the arrivals it commits
 * (the caller passes a copy when it must keep the original).
 *
 * Returns k, the number of arrivals that may be committed: the longest
 * prefix arr[0..k) after which every UID of todo up to the highest one in
 * arr[0..k) is resolved, and every UID of arr[0..k) is in todo.  *contig_r
 * is then the length of todo's resolved prefix: the state's last UID may
 * become todo[*contig_r - 1].
 */
size_t plan_commit_point(const uint32_t *todo, size_t n_todo,
    bool *resolved, const struct plan_arrival *arr, size_t n_arr,
    size_t *contig_r);

/* Index of uid in v[0..n) (ascending), or where it would go; true if
 * found. */
bool plan_uid_find(const uint32_t *v, size_t n, uint32_t uid, size_t *pos_r);

/*
 * A UID listed but not delivered where the fetch of it has ended (the
 * server answered without it, sent NIL, refused, or the connection was
 * lost): a "hole".  The state keeps the current hole and how many syncs
 * have met it, counted once per sync.  Returns the new try count for uid,
 * given the recorded hole (hole_uid, hole_tries) and whether this sync has
 * counted uid already; after HOLE_TRIES_MAX the hole is given up (skipped)
 * so that one message the server can never deliver does not stop the
 * mailbox for good.
 */
#define PLAN_HOLE_TRIES_MAX 3
unsigned plan_hole_tries(uint32_t hole_uid, unsigned hole_tries,
    uint32_t uid, bool counted_this_sync);

/* Which mailboxes to open */

/* What STATUS said of a mailbox (has_status false: nothing usable). */
struct plan_status {
	bool has_status;
	uint32_t uidvalidity, uidnext, messages;
};

/* What the state holds of it (known false: nothing). */
struct plan_known {
	bool known;
	uint32_t uidvalidity, uidnext, last_uid, hole_uid;
	uint32_t newest_skipped;	/* the UID given up last, or 0 */
	uint32_t newest_remapped;	/* the highest UID a remap found in
					 * the mirror above last_uid, or 0 */
};

enum plan_mailbox_step {
	PLAN_MBX_OPEN,		/* EXAMINE it */
	PLAN_MBX_UNCHANGED,	/* nothing new since the last complete sync */
	PLAN_MBX_EMPTY,		/* empty now, same mailbox: only record
				 * STATUS's UIDNEXT */
};

/*
 * Whether a mailbox needs opening this run.  Without a usable STATUS there
 * is no telling what changed: open.  A hole is asked for again even with
 * nothing new; nothing can come after UID 2^32-1.
 */
enum plan_mailbox_step plan_mailbox_step(const struct plan_status *st,
    const struct plan_known *known);

/*
 * Which UIDs to fetch: the fetch asks for every UID after the returned base
 * (the state's last UID when it is of the same mailbox, or of one STATUS
 * could not tell, else 0).  *direct_r: whether the bodies go out with the
 * EXAMINE in one round trip, true for a mailbox mirrored before with at
 * most direct_max new UIDs by STATUS and no UID given up or remapped (in
 * the mirror already, mirror/remap.h) past the base: an open range would
 * ask for it again.
 */
#define PLAN_DIRECT_FETCH_MAX 100
uint32_t plan_fetch_base(const struct plan_status *st,
    const struct plan_known *known, bool *direct_r);

/*
 * A UID the size query listed joins the ones to fetch: newer than the
 * state's last UID ("n:*" returns the last message even when it is old)
 * and not given up (skipped[0..n_skipped), any order).
 */
bool plan_uid_listed(uint32_t uid, uint32_t last_uid, const uint32_t *skipped,
    size_t n_skipped);

/*
 * Sorts the UIDs to fetch uids[0..n) ascending, sizes[] and done[] moved
 * alongside, each UID kept once (the first entry the server sent for it
 * counts).  One sort however the server ordered them: inserting each in
 * place would be quadratic in what a hostile server sends.  Returns the
 * new count, or (size_t)-1 when out of memory (the arrays unchanged).
 */
size_t plan_todo_sort(uint32_t *uids, uint64_t *sizes, bool *done, size_t n);

/*
 * Bodies a direct fetch delivered that the size query did not list (new
 * mail meanwhile): only those that follow hi without a gap may join the
 * UIDs to fetch, one after a gap could hide a UID that came in neither
 * answer.  got[0..n) ascending.  Returns k: hi+1 .. hi+k are all in got.
 */
uint32_t plan_gapless_after(const uint32_t *got, size_t n, uint32_t hi);

/*
 * The commit point of a direct fetch whose size list is not in yet: only
 * arrivals whose UIDs follow last with no gap at all can be trusted.
 * Returns k, the arrivals arr[0..k) that may be committed; *last_r the
 * state's last UID after them.
 */
size_t plan_direct_commit_point(uint32_t last, const struct plan_arrival *arr,
    size_t n, uint32_t *last_r);

/* When to commit */

/*
 * Each commit costs an fdatasync, which flushes the disk's cache whatever
 * its size (some 20 ms here): while more batches follow, a batch's commit
 * may join a later one's, unless the last commit is PLAN_COMMIT_INTERVAL
 * seconds old or PLAN_COMMIT_MAX_BYTES are uncommitted, so that a mailbox
 * of big messages does not pay a flush per message.  A crash costs at most
 * that much fetched again.
 */
#define PLAN_COMMIT_INTERVAL 1.0
#define PLAN_COMMIT_MAX_BYTES (256ULL * 1024 * 1024)
bool plan_commit_can_wait(bool more_coming, uint64_t uncommitted_bytes,
    double since_commit);

/*
 * ...and in the middle of a batch, whatever its size, a commit is due
 * PLAN_COMMIT_EVERY seconds after the last one and after the last try (a
 * try commits nothing while a message before the last one appended is
 * still to come): a slow link should cost seconds of fetching after a
 * crash, not a batch.
 */
#define PLAN_COMMIT_EVERY 2.0
bool plan_commit_due(double since_commit, double since_try);

/* How batches are formed */

/* A batch's limits: at most this many messages and bytes. */
struct plan_batch_cap {
	size_t messages;
	uint64_t bytes;
};

/*
 * The UIDs of the next batch from the sizes list sizes[0..n_avail): as
 * many as fit in cap, at least one (a message bigger than cap.bytes goes
 * alone), none only when n_avail is 0.
 */
size_t plan_batch_cut(const uint64_t *sizes, size_t n_avail,
    const struct plan_batch_cap *cap);

/*
 * Batches sized by time: each should take about target_secs of transfer,
 * so that on a slow link a batch (one UID FETCH, refused or cut as a whole)
 * stays a few seconds of work, while a fast link gets big batches (fewer
 * round trips, fewer commits).
 */
struct plan_pace {
	struct plan_batch_cap first;	/* before anything is measured */
	struct plan_batch_cap min, max;	/* max: the hard caps */
	double target_secs;
	unsigned growth;		/* at most this factor per batch */
};

/*
 * The next batch's cap, from prev (NULL: the first batch of a mailbox) and
 * what came since the previous batch was asked (bytes and messages in
 * secs).  Per dimension: the measured rate times target_secs, grown at
 * most growth-fold from prev (the link has to keep up to earn more),
 * shrunk at once on a slow link, within [min, max].  An empty sample
 * keeps prev; secs <= 0 with a non-empty sample counts as fast.
 */
struct plan_batch_cap plan_batch_pace(const struct plan_pace *pace,
    const struct plan_batch_cap *prev, uint64_t bytes, size_t messages,
    double secs);

/* What is retried */

/*
 * Response codes of a NO that says "not now" (RFC 5530), not "not this
 * message": such a refusal counts no try against the message.  code may
 * be NULL.
 */
bool plan_refusal_transient(const char *code);

/*
 * Whether a new connection may go on after this one ended with error: it
 * got somewhere (delivered something, as a server that serves only so many
 * messages a session does, or a message it never delivers was given up),
 * not too often (reconnects so far below max), and the end was the link or
 * the server (network, timeout, server, TLS: a TLS error on a connection
 * that delivered mail is the link failing, its certificate was checked
 * before), not garbage: a server that sends that is not asked again.
 */
bool plan_may_reconnect(bool got_somewhere, unsigned reconnects, unsigned max,
    enum mirror_error error);

/* Push */

/*
 * New mail announced on the push connection (INBOX examined there, with
 * watched_uidvalidity): whether it is fetched on that connection
 * (PLAN_PUSH_FETCH: EXAMINE and UID FETCH of what is above the state's last
 * UID, no new login) or left to a full sync on a connection of its own.
 * Only INBOX as a full sync left it: selected by the account's patterns
 * (selected), known to the state with the same UIDVALIDITY and no message
 * waiting to be delivered again (a hole counts a try per sync; push runs
 * would use those up in seconds).  Anything else is a full sync's to sort
 * out: a changed UIDVALIDITY, a first mirror, a hole.
 */
enum plan_push {
	PLAN_PUSH_FETCH,
	PLAN_PUSH_FULL_SYNC,
};
enum plan_push plan_push_mailbox(bool selected, const struct plan_known *known,
    uint32_t watched_uidvalidity);

/* Progress */

/*
 * Whether a mailbox's progress lines are worth "info": a first sync, or an
 * incremental one as big as PLAN_LOUD_MESSAGES or PLAN_LOUD_BYTES; a small
 * incremental one reports at "debug".
 */
#define PLAN_LOUD_MESSAGES 1000
#define PLAN_LOUD_BYTES (64ULL * 1024 * 1024)
bool plan_progress_loud(bool first_sync, size_t messages, uint64_t bytes);

/* About how many new messages a mailbox holds, by STATUS and the state,
 * for an account's ETA: at most its MESSAGES, and for a mailbox mirrored
 * before at most the UIDs between its last UID and UIDNEXT. */
uint32_t plan_new_estimate(const struct plan_status *st,
    const struct plan_known *known);

#endif
