/*
 * mirror/plan: the commit point over every shape of arrival a server can
 * cause (in order, out of order, a UID left out, one not asked for, one
 * given up, UID 2^32-1), and the count of a hole's tries.
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
