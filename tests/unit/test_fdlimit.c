/*
 * test_fdlimit: the descriptors a configuration needs (the arithmetic the
 * daemon refuses to start on), and raising the soft RLIMIT_NOFILE.
 */
#include <sys/resource.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fdlimit.h"

/* Each part by itself, and the total as their sum. */
static void
test_needed_parts(void **state)
{
	struct fdlimit_need n;

	(void)state;
	n = fdlimit_needed(0, 16);
	assert_int_equal(n.push, 0);
	assert_int_equal(n.sessions, 16 * FDLIMIT_PER_SESSION);
	assert_int_equal(n.base, FDLIMIT_BASE);
	assert_int_equal(n.margin, FDLIMIT_MARGIN_MIN +
	    (16 * FDLIMIT_PER_SESSION + FDLIMIT_BASE) / 10);
	assert_int_equal(n.total, n.push + n.sessions + n.base + n.margin);

	/* max_connections 0 counts as 1, as in the scheduler. */
	assert_int_equal(fdlimit_needed(0, 0).sessions, FDLIMIT_PER_SESSION);
	assert_int_equal(fdlimit_needed(0, 0).total,
	    fdlimit_needed(0, 1).total);
}

/* The figures the README gives: 1,000 push accounts and 16 sessions do not
 * fit the usual soft limit of 1024 but fit 4096; 10,000 need more. */
static void
test_needed_at_scale(void **state)
{
	struct fdlimit_need n;

	(void)state;
	n = fdlimit_needed(1000, 16);
	assert_int_equal(n.push, 1000 * FDLIMIT_PER_PUSH);
	assert_int_equal(n.total, 1000 + 192 + 24 + 64 + 121);
	assert_true(n.total > 1024);
	assert_true(n.total <= 4096);
	n = fdlimit_needed(10000, 16);
	assert_true(n.total > 10000);
	assert_int_equal(n.total, 10000 + 192 + 24 + 64 + 1021);
	/* No overflow at absurd sizes. */
	n = fdlimit_needed(4000000000u, 4000000000u);
	assert_true(n.total > 4000000000ul);
}

/* More of anything never needs fewer descriptors. */
static void
test_needed_monotonic(void **state)
{
	(void)state;
	for (unsigned push = 0; push < 3000; push += 7)
		for (unsigned conn = 1; conn < 70; conn += 3) {
			unsigned long t = fdlimit_needed(push, conn).total;

			assert_true(fdlimit_needed(push + 1, conn).total >= t);
			assert_true(fdlimit_needed(push, conn + 1).total > t);
		}
}

/* A soft limit below the hard one comes up to it; at the hard limit
 * nothing changes. */
static void
test_raise(void **state)
{
	struct rlimit rl;
	unsigned long before, after;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max > 64) {
		rl.rlim_cur = 64;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	assert_int_equal(fdlimit_raise(&before, &after), 0);
	assert_int_equal(before, rl.rlim_max > 64 ? 64 : rl.rlim_cur);
	assert_int_equal(after, rl.rlim_max);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(rl.rlim_cur, rl.rlim_max);

	assert_int_equal(fdlimit_raise(&before, &after), 0);
	assert_int_equal(before, after);
	assert_int_equal(after, rl.rlim_max);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_needed_parts),
		cmocka_unit_test(test_needed_at_scale),
		cmocka_unit_test(test_needed_monotonic),
		cmocka_unit_test(test_raise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
