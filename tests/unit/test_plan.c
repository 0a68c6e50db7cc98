/*
 * mirror/plan: the commit point over every shape of arrival a server can
 * cause (in order, out of order, a UID left out, one not asked for, one
 * given up, UID 2^32-1), the count of a hole's tries, which mailboxes
 * and UIDs are fetched, when to commit, how batches are cut and paced,
 * what is retried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mirror/plan.h"

#define MAXN 64

struct point {
	size_t k, contig;
};

/* The commit point for todo (0-terminated), the UIDs given up or committed
 * before (0-terminated) and the arrivals (0-terminated, each entry 10 bytes
 * long). */
static struct point
point(const uint32_t *todo, const uint32_t *done, const uint32_t *arrived)
{
	bool resolved[MAXN] = { false };
	struct plan_arrival arr[MAXN];
	size_t n_todo = 0, n_arr = 0, pos;
	struct point p;

	while (todo[n_todo] != 0)
		n_todo++;
	for (size_t i = 0; done[i] != 0; i++) {
		assert_true(plan_uid_find(todo, n_todo, done[i], &pos));
		resolved[pos] = true;
	}
	for (; arrived[n_arr] != 0; n_arr++) {
		arr[n_arr].uid = arrived[n_arr];
		arr[n_arr].end = 10 * (n_arr + 1);
	}
	p.k = plan_commit_point(todo, n_todo, resolved, arr, n_arr, &p.contig);
	return p;
}

#define UIDS(...) ((const uint32_t[]){ __VA_ARGS__, 0 })
#define NONE ((const uint32_t[]){ 0 })

static void
test_in_order_commits_all(void **state)
{
	struct point p = point(UIDS(1, 2, 3, 4), NONE, UIDS(1, 2, 3, 4));

	(void)state;
	assert_int_equal(p.k, 4);
	assert_int_equal(p.contig, 4);
}

static void
test_nothing_arrived(void **state)
{
	struct point p = point(UIDS(5, 6), NONE, NONE);

	(void)state;
	assert_int_equal(p.k, 0);
	assert_int_equal(p.contig, 0);
	p = point(UIDS(5, 6), UIDS(5), NONE);
	assert_int_equal(p.k, 0);
	assert_int_equal(p.contig, 1);
}

static void
test_uid_left_out_stops_before_it(void **state)
{
	/* 3 never came: 1 and 2 commit, 4 and 5 may not. */
	struct point p = point(UIDS(1, 2, 3, 4, 5), NONE, UIDS(1, 2, 4, 5));

	(void)state;
	assert_int_equal(p.k, 2);
	assert_int_equal(p.contig, 2);
}

static void
test_first_uid_left_out_commits_nothing(void **state)
{
	struct point p = point(UIDS(7, 8, 9), NONE, UIDS(8, 9));

	(void)state;
	assert_int_equal(p.k, 0);
	assert_int_equal(p.contig, 0);
}

static void
test_out_of_order_commits_where_whole(void **state)
{
	/* 2 before 1: nothing until 1 is in; then both. */
	struct point p = point(UIDS(1, 2, 3), NONE, UIDS(2, 1, 3));

	(void)state;
	assert_int_equal(p.k, 3);
	assert_int_equal(p.contig, 3);
	p = point(UIDS(1, 2, 3), NONE, UIDS(2));
	assert_int_equal(p.k, 0);
	assert_int_equal(p.contig, 0);
	/* 3 before 2 with 2 missing: only 1. */
	p = point(UIDS(1, 2, 3, 4), NONE, UIDS(1, 3, 4));
	assert_int_equal(p.k, 1);
	assert_int_equal(p.contig, 1);
}

static void
test_completion_out_of_order_batches(void **state)
{
	/* The second batch (4..6) came whole before the first (1..3) was
	 * done: a commit can cover no more than 1..2 until 3 arrives. */
	struct point p = point(UIDS(1, 2, 3, 4, 5, 6), NONE,
	    UIDS(1, 2, 4, 5, 6));

	(void)state;
	assert_int_equal(p.k, 2);
	assert_int_equal(p.contig, 2);
	p = point(UIDS(1, 2, 3, 4, 5, 6), NONE, UIDS(1, 2, 4, 5, 6, 3));
	assert_int_equal(p.k, 6);
	assert_int_equal(p.contig, 6);
}

static void
test_not_asked_stops_the_commit(void **state)
{
	/* 9 was never listed: nothing after it commits, nothing before it is
	 * lost. */
	struct point p = point(UIDS(1, 2, 3), NONE, UIDS(1, 9, 2, 3));

	(void)state;
	assert_int_equal(p.k, 1);
	assert_int_equal(p.contig, 1);
}

static void
test_given_up_uid_is_passed(void **state)
{
	/* 3 was given up: 4 and 5 may follow 2. */
	struct point p = point(UIDS(1, 2, 3, 4, 5), UIDS(3), UIDS(1, 2, 4, 5));

	(void)state;
	assert_int_equal(p.k, 4);
	assert_int_equal(p.contig, 5);
	/* Resolved before the arrivals: committed earlier. */
	p = point(UIDS(1, 2, 3, 4), UIDS(1, 2), UIDS(3, 4));
	assert_int_equal(p.k, 2);
	assert_int_equal(p.contig, 4);
}

static void
test_highest_uid(void **state)
{
	struct point p = point(UIDS(4294967294u, 4294967295u), NONE,
	    UIDS(4294967294u, 4294967295u));

	(void)state;
	assert_int_equal(p.k, 2);
	assert_int_equal(p.contig, 2);
	p = point(UIDS(1, 4294967295u), NONE, UIDS(4294967295u));
	assert_int_equal(p.k, 0);
}

static void
test_resolved_prefix_beyond_arrivals(void **state)
{
	/* Everything after the arrivals was given up: contig reaches the
	 * end, so the state may pass the given-up UIDs. */
	struct point p = point(UIDS(1, 2, 3), UIDS(2, 3), UIDS(1));

	(void)state;
	assert_int_equal(p.k, 1);
	assert_int_equal(p.contig, 3);
}

static void
test_uid_find(void **state)
{
	const uint32_t v[] = { 2, 4, 8 };
	size_t pos;

	(void)state;
	assert_true(plan_uid_find(v, 3, 4, &pos));
	assert_int_equal(pos, 1);
	assert_false(plan_uid_find(v, 3, 5, &pos));
	assert_int_equal(pos, 2);
	assert_false(plan_uid_find(v, 3, 9, &pos));
	assert_int_equal(pos, 3);
	assert_false(plan_uid_find(v, 0, 1, &pos));
	assert_int_equal(pos, 0);
}

static void
test_hole_tries(void **state)
{
	(void)state;
	/* A new hole: its first try. */
	assert_int_equal(plan_hole_tries(0, 0, 7, false), 1);
	assert_int_equal(plan_hole_tries(5, 2, 7, false), 1);
	/* The same hole in the next sync: one more. */
	assert_int_equal(plan_hole_tries(7, 1, 7, false), 2);
	/* ... but once a sync, however often the sync meets it. */
	assert_int_equal(plan_hole_tries(7, 2, 7, true), 2);
	assert_true(plan_hole_tries(7, PLAN_HOLE_TRIES_MAX - 1, 7, false) >=
	    PLAN_HOLE_TRIES_MAX);
}

static const struct plan_status STATUS_5 = { true, 9, 6, 5 };

static void
test_mailbox_step(void **state)
{
	struct plan_known k = { true, 9, 6, 5, 0, 0, 0 };
	struct plan_status st = STATUS_5;

	(void)state;
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_UNCHANGED);
	/* A hole is asked for again with nothing new. */
	k.hole_uid = 3;
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_OPEN);
	k.hole_uid = 0;
	st.uidnext = 8;
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_OPEN);
	st.messages = 0;
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_EMPTY);
	/* Another mailbox under the same name: opened, empty or not. */
	st.uidvalidity = 10;
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_OPEN);
	st = STATUS_5;
	st.uidnext = 9;
	k.last_uid = UINT32_MAX;
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_UNCHANGED);
	/* Never mirrored, or no STATUS: open. */
	k.known = false;
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_OPEN);
	k.known = true;
	st.has_status = false;
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_OPEN);
	/* A sync that never completed recorded no UIDNEXT. */
	st = STATUS_5;
	k = (struct plan_known){ true, 9, 0, 5, 0, 0, 0 };
	assert_int_equal(plan_mailbox_step(&st, &k), PLAN_MBX_OPEN);
}

static void
test_fetch_base(void **state)
{
	struct plan_known k = { true, 9, 6, 5, 0, 0, 0 };
	struct plan_status st = { true, 9, 50, 40 };
	bool direct;

	(void)state;
	/* A few new: from the last UID, bodies with the EXAMINE. */
	assert_int_equal(plan_fetch_base(&st, &k, &direct), 5);
	assert_true(direct);
	st.uidnext = 5 + PLAN_DIRECT_FETCH_MAX + 1;
	assert_int_equal(plan_fetch_base(&st, &k, &direct), 5);
	assert_true(direct);
	st.uidnext++;
	assert_int_equal(plan_fetch_base(&st, &k, &direct), 5);
	assert_false(direct);
	/* A UID given up past the base: no open range. */
	st.uidnext = 50;
	k.newest_skipped = 7;
	assert_int_equal(plan_fetch_base(&st, &k, &direct), 5);
	assert_false(direct);
	k.newest_skipped = 4;
	plan_fetch_base(&st, &k, &direct);
	assert_true(direct);
	/* ...or one a remap found in the mirror already. */
	k.newest_remapped = 9;
	assert_int_equal(plan_fetch_base(&st, &k, &direct), 5);
	assert_false(direct);
	k.newest_remapped = 0;
	/* Another UIDVALIDITY, or never mirrored: all of it, sizes first. */
	st.uidvalidity = 10;
	assert_int_equal(plan_fetch_base(&st, &k, &direct), 0);
	assert_false(direct);
	k.known = false;
	assert_int_equal(plan_fetch_base(&st, &k, &direct), 0);
	assert_false(direct);
	/* No STATUS: trust the state (EXAMINE tells), but no direct. */
	k.known = true;
	st.has_status = false;
	assert_int_equal(plan_fetch_base(&st, &k, &direct), 5);
	assert_false(direct);
}

static void
test_uid_listed(void **state)
{
	const uint32_t skipped[] = { 12, 9 };

	(void)state;
	assert_false(plan_uid_listed(5, 5, NULL, 0));
	assert_false(plan_uid_listed(4, 5, NULL, 0));
	assert_true(plan_uid_listed(6, 5, NULL, 0));
	assert_false(plan_uid_listed(9, 5, skipped, 2));
	assert_true(plan_uid_listed(10, 5, skipped, 2));
}

static void
test_todo_sort(void **state)
{
	uint32_t uids[] = { 7, 3, 9, 3, 1, 7 };
	uint64_t sizes[] = { 70, 30, 90, 31, 10, 71 };
	bool done[] = { false, true, false, false, false, true };
	size_t n;

	(void)state;
	n = plan_todo_sort(uids, sizes, done, 6);
	assert_int_equal(n, 4);
	assert_int_equal(uids[0], 1);
	assert_int_equal(uids[1], 3);
	assert_int_equal(uids[2], 7);
	assert_int_equal(uids[3], 9);
	/* The first entry of a repeated UID counts. */
	assert_int_equal(sizes[1], 30);
	assert_true(done[1]);
	assert_int_equal(sizes[2], 70);
	assert_false(done[2]);
	assert_int_equal(plan_todo_sort(uids, sizes, done, 0), 0);
}

static void
test_gapless_after(void **state)
{
	const uint32_t got[] = { 2, 5, 6, 7, 9 };
	const uint32_t top[] = { 4294967294u, 4294967295u };

	(void)state;
	assert_int_equal(plan_gapless_after(got, 5, 4), 3);
	assert_int_equal(plan_gapless_after(got, 5, 1), 1);
	/* A gap right after hi: nothing. */
	assert_int_equal(plan_gapless_after(got, 5, 2), 0);
	assert_int_equal(plan_gapless_after(got, 5, 9), 0);
	assert_int_equal(plan_gapless_after(got, 0, 0), 0);
	assert_int_equal(plan_gapless_after(top, 2, 4294967293u), 2);
	assert_int_equal(plan_gapless_after(top, 2, 4294967295u), 0);
}

static void
test_direct_commit_point(void **state)
{
	struct plan_arrival arr[] = { { 11, 1 }, { 13, 2 }, { 12, 3 },
	    { 15, 4 } };
	uint32_t last;

	(void)state;
	/* 11, then 13 before 12: both once 12 is in; 15 after a gap not. */
	assert_int_equal(plan_direct_commit_point(10, arr, 4, &last), 3);
	assert_int_equal(last, 13);
	assert_int_equal(plan_direct_commit_point(10, arr + 1, 3, &last), 0);
	assert_int_equal(last, 10);
	assert_int_equal(plan_direct_commit_point(10, arr, 0, &last), 0);
	assert_int_equal(last, 10);
}

static void
test_commit_can_wait(void **state)
{
	(void)state;
	assert_true(plan_commit_can_wait(true, 1000, 0.2));
	/* The last batch: commit now. */
	assert_false(plan_commit_can_wait(false, 1000, 0.2));
	/* A second since the last commit, or much uncommitted: now. */
	assert_false(plan_commit_can_wait(true, 1000, PLAN_COMMIT_INTERVAL));
	assert_false(plan_commit_can_wait(true, PLAN_COMMIT_MAX_BYTES, 0.2));
	assert_true(plan_commit_can_wait(true, PLAN_COMMIT_MAX_BYTES - 1, 0));
}

static void
test_commit_due(void **state)
{
	(void)state;
	assert_false(plan_commit_due(0.5, 10));
	assert_true(plan_commit_due(PLAN_COMMIT_EVERY, PLAN_COMMIT_EVERY));
	/* A try that could commit nothing waits as long again. */
	assert_false(plan_commit_due(10, 1.0));
	assert_true(plan_commit_due(10, 2.5));
}

static void
test_batch_cut(void **state)
{
	const uint64_t sizes[] = { 10, 20, 30, 100, 5 };
	struct plan_batch_cap cap = { 3, 60 };

	(void)state;
	assert_int_equal(plan_batch_cut(sizes, 5, &cap), 3);
	cap.bytes = 59;
	assert_int_equal(plan_batch_cut(sizes, 5, &cap), 2);
	cap.messages = 1;
	assert_int_equal(plan_batch_cut(sizes, 5, &cap), 1);
	/* A message over the byte cap goes alone, never none. */
	cap = (struct plan_batch_cap){ 10, 50 };
	assert_int_equal(plan_batch_cut(sizes + 3, 2, &cap), 1);
	assert_int_equal(plan_batch_cut(sizes, 0, &cap), 0);
	/* Unknown sizes (0): the count decides. */
	assert_int_equal(plan_batch_cut((const uint64_t[]){ 0, 0, 0, 0 }, 4,
	    &(struct plan_batch_cap){ 3, 1 }), 3);
}

static const struct plan_pace PACE = {
	.first = { 100, 1 << 20 },
	.min = { 10, 64 << 10 },
	.max = { 2000, 32 << 20 },
	.target_secs = 2.0,
	.growth = 4,
};

static void
test_pace_first_batch_small(void **state)
{
	struct plan_batch_cap c = plan_batch_pace(&PACE, NULL, 0, 0, 0);

	(void)state;
	assert_int_equal(c.messages, 100);
	assert_int_equal(c.bytes, 1 << 20);
	/* Whatever was measured elsewhere: a mailbox starts small. */
	c = plan_batch_pace(&PACE, NULL, 100 << 20, 5000, 1.0);
	assert_int_equal(c.messages, 100);
	assert_int_equal(c.bytes, 1 << 20);
}

static void
test_pace_grows_while_link_keeps_up(void **state)
{
	struct plan_batch_cap c = PACE.first, prev;
	unsigned steps = 0;

	(void)state;
	/* A fast link (100 MB/s): each batch comes in a fraction of the
	 * target, so the cap grows, by at most the growth factor, up to the
	 * hard caps and no further. */
	do {
		prev = c;
		c = plan_batch_pace(&PACE, &prev, prev.bytes, prev.messages,
		    (double)prev.bytes / 100e6);
		assert_true(c.bytes >= prev.bytes);
		assert_true(c.bytes <= prev.bytes * PACE.growth);
		assert_true(c.messages <= prev.messages * PACE.growth);
		assert_true(c.bytes <= PACE.max.bytes);
		assert_true(c.messages <= PACE.max.messages);
	} while (++steps < 20 && (c.bytes != prev.bytes ||
	    c.messages != prev.messages));
	assert_true(steps > 1);
	assert_int_equal(c.bytes, PACE.max.bytes);
	assert_int_equal(c.messages, PACE.max.messages);
	/* Instant (loopback) counts as fast; still no jump past growth. */
	c = plan_batch_pace(&PACE, &PACE.first, 1 << 20, 100, 0);
	assert_int_equal(c.bytes, 4 << 20);
	assert_int_equal(c.messages, 400);
}

static void
test_pace_slow_link(void **state)
{
	struct plan_batch_cap big = PACE.max, c;

	(void)state;
	/* 100 kB/s, 10 messages/s: two seconds' worth. */
	c = plan_batch_pace(&PACE, &big, 500000, 50, 5.0);
	assert_int_equal(c.bytes, 200000);
	assert_int_equal(c.messages, 20);
	/* A crawl: the floors, never 0. */
	c = plan_batch_pace(&PACE, &big, 10, 1, 100.0);
	assert_int_equal(c.bytes, PACE.min.bytes);
	assert_int_equal(c.messages, PACE.min.messages);
	/* Nothing measured: as before. */
	c = plan_batch_pace(&PACE, &big, 0, 0, 3.0);
	assert_int_equal(c.bytes, big.bytes);
	assert_int_equal(c.messages, big.messages);
}

static void
test_pace_never_zero_nor_over_caps(void **state)
{
	const struct plan_pace zero = { { 0, 0 }, { 0, 0 }, { 5, 1000 }, 2.0,
	    0 };
	struct plan_batch_cap c, huge = { (size_t)-1, UINT64_MAX };

	(void)state;
	c = plan_batch_pace(&zero, NULL, 0, 0, 0);
	assert_true(c.messages >= 1 && c.bytes >= 1);
	c = plan_batch_pace(&zero, &c, 1, 1, 1e9);
	assert_true(c.messages >= 1 && c.bytes >= 1);
	c = plan_batch_pace(&PACE, &huge, UINT64_MAX, (size_t)-1, 1e-9);
	assert_int_equal(c.bytes, PACE.max.bytes);
	assert_int_equal(c.messages, PACE.max.messages);
	c = plan_batch_pace(&zero, &huge, 0, 0, 0);
	assert_int_equal(c.bytes, 1000);
	assert_int_equal(c.messages, 5);
}

static void
test_refusal_transient(void **state)
{
	(void)state;
	assert_true(plan_refusal_transient("UNAVAILABLE"));
	assert_true(plan_refusal_transient("inuse"));
	assert_true(plan_refusal_transient("LIMIT"));
	assert_true(plan_refusal_transient("OVERQUOTA"));
	assert_false(plan_refusal_transient("SERVERBUG"));
	assert_false(plan_refusal_transient(NULL));
}

static void
test_may_reconnect(void **state)
{
	(void)state;
	assert_true(plan_may_reconnect(true, 0, 3, MIRROR_ERR_NETWORK));
	assert_true(plan_may_reconnect(true, 2, 3, MIRROR_ERR_TIMEOUT));
	assert_true(plan_may_reconnect(true, 0, 3, MIRROR_ERR_SERVER));
	assert_true(plan_may_reconnect(true, 0, 3, MIRROR_ERR_TLS));
	/* Nothing delivered on it, too often, or garbage: no. */
	assert_false(plan_may_reconnect(false, 0, 3, MIRROR_ERR_NETWORK));
	assert_false(plan_may_reconnect(true, 3, 3, MIRROR_ERR_NETWORK));
	assert_false(plan_may_reconnect(true, 0, 3, MIRROR_ERR_PROTOCOL));
	assert_false(plan_may_reconnect(true, 0, 3, MIRROR_ERR_LOCAL));
	assert_false(plan_may_reconnect(true, 0, 3, MIRROR_ERR_AUTH));
}

static void
test_progress_loud(void **state)
{
	(void)state;
	assert_true(plan_progress_loud(true, 1, 10));
	assert_false(plan_progress_loud(false, 5, 1000));
	assert_true(plan_progress_loud(false, PLAN_LOUD_MESSAGES, 0));
	assert_true(plan_progress_loud(false, 1, PLAN_LOUD_BYTES));
}

static void
test_new_estimate(void **state)
{
	struct plan_known k = { true, 9, 6, 5, 0, 0, 0 };
	struct plan_status st = { true, 9, 106, 300 };

	(void)state;
	/* Mirrored before: at most the UIDs after the last one. */
	assert_int_equal(plan_new_estimate(&st, &k), 100);
	st.messages = 40;
	assert_int_equal(plan_new_estimate(&st, &k), 40);
	/* Never mirrored: all of it; unchanged: none. */
	k.known = false;
	assert_int_equal(plan_new_estimate(&st, &k), 40);
	k = (struct plan_known){ true, 9, 106, 105, 0, 0, 0 };
	assert_int_equal(plan_new_estimate(&st, &k), 0);
	st.has_status = false;
	assert_int_equal(plan_new_estimate(&st, &k), 0);
}

/* New mail on the push connection is fetched there only for INBOX as a
 * full sync left it; anything else is a full sync's. */
static void
test_push_mailbox(void **state)
{
	struct plan_known k = { .known = true, .uidvalidity = 7,
	    .uidnext = 11, .last_uid = 10 };
	struct plan_known unknown = { 0 };
	struct plan_known hole = k, full = k, empty = k;

	(void)state;
	assert_int_equal(plan_push_mailbox(true, &k, 7), PLAN_PUSH_FETCH);
	/* Mirrored before while empty: the fetch starts at UID 1. */
	empty.last_uid = 0;
	assert_int_equal(plan_push_mailbox(true, &empty, 7), PLAN_PUSH_FETCH);
	/* Not among the account's mailboxes (patterns, exclude). */
	assert_int_equal(plan_push_mailbox(false, &k, 7), PLAN_PUSH_FULL_SYNC);
	/* Never mirrored: the first sync is a full one. */
	assert_int_equal(plan_push_mailbox(true, &unknown, 7),
	    PLAN_PUSH_FULL_SYNC);
	/* UIDVALIDITY changed, or the server sent none. */
	assert_int_equal(plan_push_mailbox(true, &k, 8), PLAN_PUSH_FULL_SYNC);
	assert_int_equal(plan_push_mailbox(true, &k, 0), PLAN_PUSH_FULL_SYNC);
	/* A message to ask again: counted once a full sync, not a push. */
	hole.hole_uid = 12;
	assert_int_equal(plan_push_mailbox(true, &hole, 7),
	    PLAN_PUSH_FULL_SYNC);
	/* Nothing can come after the last UID there is. */
	full.last_uid = UINT32_MAX;
	assert_int_equal(plan_push_mailbox(true, &full, 7),
	    PLAN_PUSH_FULL_SYNC);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order_commits_all),
		cmocka_unit_test(test_nothing_arrived),
		cmocka_unit_test(test_uid_left_out_stops_before_it),
		cmocka_unit_test(test_first_uid_left_out_commits_nothing),
		cmocka_unit_test(test_out_of_order_commits_where_whole),
		cmocka_unit_test(test_completion_out_of_order_batches),
		cmocka_unit_test(test_not_asked_stops_the_commit),
		cmocka_unit_test(test_given_up_uid_is_passed),
		cmocka_unit_test(test_highest_uid),
		cmocka_unit_test(test_resolved_prefix_beyond_arrivals),
		cmocka_unit_test(test_uid_find),
		cmocka_unit_test(test_hole_tries),
		cmocka_unit_test(test_mailbox_step),
		cmocka_unit_test(test_fetch_base),
		cmocka_unit_test(test_uid_listed),
		cmocka_unit_test(test_todo_sort),
		cmocka_unit_test(test_gapless_after),
		cmocka_unit_test(test_direct_commit_point),
		cmocka_unit_test(test_commit_can_wait),
		cmocka_unit_test(test_commit_due),
		cmocka_unit_test(test_batch_cut),
		cmocka_unit_test(test_pace_first_batch_small),
		cmocka_unit_test(test_pace_grows_while_link_keeps_up),
		cmocka_unit_test(test_pace_slow_link),
		cmocka_unit_test(test_pace_never_zero_nor_over_caps),
		cmocka_unit_test(test_refusal_transient),
		cmocka_unit_test(test_may_reconnect),
		cmocka_unit_test(test_progress_loud),
		cmocka_unit_test(test_new_estimate),
		cmocka_unit_test(test_push_mailbox),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
