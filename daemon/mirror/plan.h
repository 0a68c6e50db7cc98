/*
 * mirror/plan: the decisions that keep a mirror exact, as pure functions
 * (no I/O, no event loop), so each rule is tested on arrays alone.
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

#endif
