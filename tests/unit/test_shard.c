/*
 * shard: the K/N syntax, and the mapping of names to shards: every name in
 * exactly one shard, spread evenly, unchanged by other names, moving only
 * to the new shard when N grows, and equal to a fixed table forever.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "shard.h"

#define NAMES 3000

static void
name_of(unsigned i, char *buf, size_t size)
{
	snprintf(buf, size, "account-%u@example.org", i);
}

static void
test_parse(void **state)
{
	static const char *const bad[] = { "", "3", "/3", "0/", "1/0",
		"3/3", "4/3", "-1/3", "+0/3", "0/3 ", " 0/3", "0 /3", "0/0x3",
		"0/65537", "0/3/4", "a/b", "99999999999999999999/3" };
	struct shard s = { 7, 9 };
	const char *problem = NULL;

	assert_int_equal(shard_parse("0/3", &s, &problem), 0);
	assert_int_equal(s.k, 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(shard_parse("2/3", &s, &problem), 0);
	assert_int_equal(s.k, 2);
	assert_int_equal(shard_parse("0/1", &s, &problem), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(shard_parse("65535/65536", &s, &problem), 0);
	assert_int_equal(s.k, 65535);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct shard t = { 5, 6 };

		problem = NULL;
		if (shard_parse(bad[i], &t, &problem) != -1)
			fail_msg("\"%s\" was taken", bad[i]);
		assert_non_null(problem);
		/* Untouched on failure. */
		assert_int_equal(t.k, 5);
		assert_int_equal(t.n, 6);
	}
	assert_int_equal(shard_parse("3/3", &s, &problem), -1);
	assert_non_null(strstr(problem, "from 0"));
}

static void
test_format(void **state)
{
	struct shard s = { 1, 4 }, none = { 0, 0 };
	char buf[24];

	assert_string_equal(shard_format(&s, buf, sizeof buf), "1/4");
	assert_string_equal(shard_format(&none, buf, sizeof buf), "none");
}

/* Every name is taken by exactly one of the n shards, and each shard gets
 * its share (within 15 % for 3000 names). */
static void
test_partition(void **state)
{
	char name[64];

	for (unsigned n = 1; n <= 12; n++) {
		unsigned count[12] = { 0 };

		for (unsigned i = 0; i < NAMES; i++) {
			unsigned takers = 0;

			name_of(i, name, sizeof name);
			for (unsigned k = 0; k < n; k++) {
				struct shard s = { k, n };

				if (shard_takes(&s, name)) {
					takers++;
					count[k]++;
				}
			}
			if (takers != 1)
				fail_msg("%s is taken by %u of %u shards", name,
				    takers, n);
			assert_true(shard_of(name, n) < n);
		}
		for (unsigned k = 0; k < n; k++)
			if (count[k] * n < NAMES * 85 / 100 ||
			    count[k] * n > NAMES * 115 / 100)
				fail_msg("shard %u/%u has %u of %u names", k, n,
				    count[k], NAMES);
	}
}

/* Not sharded: every name. */
static void
test_unsharded(void **state)
{
	struct shard none = { 0, 0 };

	assert_true(shard_takes(&none, "personal"));
	assert_true(shard_takes(&none, ""));
	assert_int_equal(shard_of("personal", 1), 0);
}

/* From N to N + 1 shards, a name stays or moves to the new shard N, and
 * about 1/(N + 1) of them move. */
static void
test_growing_moves_few(void **state)
{
	char name[64];

	for (unsigned n = 1; n < 16; n++) {
		unsigned moved = 0;

		for (unsigned i = 0; i < NAMES; i++) {
			unsigned before, after;

			name_of(i, name, sizeof name);
			before = shard_of(name, n);
			after = shard_of(name, n + 1);
			if (before == after)
				continue;
			if (after != n)
				fail_msg("%s moved from %u/%u to %u/%u", name,
				    before, n, after, n + 1);
			moved++;
		}
		if (moved * (n + 1) < NAMES * 80 / 100 ||
		    moved * (n + 1) > NAMES * 120 / 100)
			fail_msg("%u of %u names moved from %u to %u shards",
			    moved, NAMES, n, n + 1);
	}
}

/*
 * The mapping is a contract: a new version must put every account where
 * the last one did.  The table was computed with the published
 * floating-point jump hash (Lamping and Veach) over FNV-1a 64 in Python,
 * independently of shard.c, which agrees on every entry.
 */
static void
test_fixed_table(void **state)
{
	static const struct {
		const char *name;
		unsigned shard[4];	/* of 2, 3, 7, 100 */
	} table[] = {
		{ "personal", { 0, 0, 0, 85 } },
		{ "work", { 0, 0, 0, 36 } },
		{ "alice@example.org", { 1, 1, 5, 20 } },
		{ "bob", { 0, 2, 2, 12 } },
		{ "INBOX", { 0, 0, 6, 52 } },
		{ "carol.smith", { 1, 2, 2, 90 } },
		{ "dave", { 0, 0, 0, 72 } },
		{ "erin", { 1, 2, 6, 92 } },
		{ "frank", { 1, 2, 2, 2 } },
		{ "grace", { 0, 0, 4, 45 } },
		{ "h\xc3\xa9lo\xc3\xafse", { 1, 1, 4, 51 } },
		{ "a", { 1, 2, 2, 31 } },
		{ "user0001", { 1, 2, 3, 56 } },
		{ "user0002", { 0, 0, 0, 69 } },
		{ "user0999", { 1, 2, 2, 84 } },
	};
	static const unsigned counts[4] = { 2, 3, 7, 100 };

	for (size_t i = 0; i < sizeof table / sizeof *table; i++)
		for (size_t j = 0; j < 4; j++)
			if (shard_of(table[i].name, counts[j]) !=
			    table[i].shard[j])
				fail_msg("%s: shard %u of %u, was %u",
				    table[i].name, shard_of(table[i].name,
				    counts[j]), counts[j], table[i].shard[j]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_partition),
		cmocka_unit_test(test_unsharded),
		cmocka_unit_test(test_growing_moves_few),
		cmocka_unit_test(test_fixed_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
