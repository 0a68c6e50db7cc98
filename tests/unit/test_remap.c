/*
 * mirror/remap: matching the server's messages to the mirror's after a
 * UIDVALIDITY change (unique keys, ambiguous ones told apart by digests,
 * messages the server holds twice, repeated UIDs, a server listing very
 * many), and the rule that decides whether the match is good enough.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mirror/remap.h"

/* Digests: a byte repeated. */
static uint8_t digests[8][REMAP_DIGEST_LEN];

static void
init_digests(void)
{
	for (size_t i = 0; i < 8; i++)
		memset(digests[i], (int)(i + 1), REMAP_DIGEST_LEN);
}

static struct remap_local
loc(uint64_t size, int64_t date, uint64_t mid, int digest)
{
	return (struct remap_local){ size, date, mid, digests[digest] };
}

static struct remap_server
srv(uint32_t uid, uint64_t size, int64_t date, uint64_t mid)
{
	struct remap_server s;

	memset(&s, 0, sizeof s);
	s.uid = uid;
	s.size = size;
	s.internaldate = date;
	s.message_id_hash = mid;
	return s;
}

static void
give_digest(struct remap_server *s, int digest)
{
	s->has_digest = true;
	memcpy(s->digest, digests[digest], REMAP_DIGEST_LEN);
}

static void
test_unique_keys_match_by_key(void **state)
{
	struct remap_local l[] = { loc(100, 1000, 11, 0), loc(200, 2000, 22, 1),
	    loc(300, 3000, 33, 2) };
	struct remap_server s[] = { srv(1, 200, 2000, 22), srv(2, 100, 1000,
	    11), srv(3, 999, 3000, 33), srv(4, 300, 3000, 33) };
	struct remap_counts c;

	(void)state;
	assert_int_equal(remap_match(l, 3, s, 4, false, &c), 0);
	assert_int_equal(s[0].how, REMAP_BY_KEY);
	assert_int_equal(s[0].local, 1);
	assert_int_equal(s[1].how, REMAP_BY_KEY);
	assert_int_equal(s[1].local, 0);
	assert_int_equal(s[2].how, REMAP_NONE);	/* another size: new */
	assert_int_equal(s[3].how, REMAP_BY_KEY);
	assert_int_equal(s[3].local, 2);
	assert_int_equal(c.server, 4);
	assert_int_equal(c.matched, 3);
	assert_int_equal(c.need_digest, 0);
	assert_int_equal(remap_accept(&c), REMAP_GOOD);
}

/* Each part of the key counts: a date a second off or another
 * Message-ID is another message. */
static void
test_every_part_of_the_key_counts(void **state)
{
	struct remap_local l[] = { loc(100, 1000, 11, 0) };
	struct remap_server s[] = { srv(1, 100, 1001, 11), srv(2, 100, 1000,
	    12), srv(3, 101, 1000, 11) };
	struct remap_counts c;

	(void)state;
	assert_int_equal(remap_match(l, 1, s, 3, false, &c), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(s[i].how, REMAP_NONE);
	assert_int_equal(c.matched, 0);
	assert_int_equal(remap_accept(&c), REMAP_POOR);
}

static void
test_no_message_id_needs_the_digest(void **state)
{
	struct remap_local l[] = { loc(100, 1000, 0, 0), loc(100, 1000, 0,
	    1) };
	struct remap_server s[] = { srv(7, 100, 1000, 0), srv(9, 100, 1000,
	    0) };
	struct remap_counts c;

	(void)state;
	assert_int_equal(remap_match(l, 2, s, 2, false, &c), 0);
	assert_int_equal(s[0].how, REMAP_NEED_DIGEST);
	assert_int_equal(s[1].how, REMAP_NEED_DIGEST);
	assert_int_equal(c.need_digest, 2);
	assert_int_equal(remap_accept(&c), REMAP_DIGESTS);
	/* Crossed over: UID 7 is the second local one, UID 9 the first. */
	give_digest(&s[0], 1);
	give_digest(&s[1], 0);
	assert_int_equal(remap_match(l, 2, s, 2, true, &c), 0);
	assert_int_equal(s[0].how, REMAP_BY_DIGEST);
	assert_int_equal(s[0].local, 1);
	assert_int_equal(s[1].how, REMAP_BY_DIGEST);
	assert_int_equal(s[1].local, 0);
	assert_int_equal(c.matched, 2);
	assert_int_equal(c.need_digest, 0);
	assert_int_equal(remap_accept(&c), REMAP_GOOD);
}

/* Even alone on both sides, a key without Message-ID is not proof. */
static void
test_lone_key_without_message_id_is_checked(void **state)
{
	struct remap_local l[] = { loc(100, 1000, 0, 0) };
	struct remap_server s[] = { srv(1, 100, 1000, 0) };
	struct remap_counts c;

	(void)state;
	assert_int_equal(remap_match(l, 1, s, 1, false, &c), 0);
	assert_int_equal(s[0].how, REMAP_NEED_DIGEST);
	give_digest(&s[0], 3);	/* another body */
	assert_int_equal(remap_match(l, 1, s, 1, true, &c), 0);
	assert_int_equal(s[0].how, REMAP_NONE);
	assert_int_equal(c.matched, 0);
}

/* A digest that never came: final leaves the message unmatched. */
static void
test_final_without_digest_is_unmatched(void **state)
{
	struct remap_local l[] = { loc(5, 5, 5, 0), loc(5, 5, 5, 1) };
	struct remap_server s[] = { srv(1, 5, 5, 5), srv(2, 5, 5, 5) };
	struct remap_counts c;

	(void)state;
	give_digest(&s[1], 1);
	assert_int_equal(remap_match(l, 2, s, 2, true, &c), 0);
	assert_int_equal(s[0].how, REMAP_NONE);
	assert_int_equal(s[1].how, REMAP_BY_DIGEST);
	assert_int_equal(s[1].local, 1);
	assert_int_equal(c.need_digest, 0);
	assert_int_equal(c.matched, 1);
}

/* The server holds one message twice, the mirror once: one copy
 * matches, the other is fetched (the mirror then holds both, as the
 * server does); a local message is never matched twice. */
static void
test_server_duplicate_matches_once(void **state)
{
	struct remap_local l[] = { loc(100, 1000, 11, 0), loc(50, 10, 1, 1) };
	struct remap_server s[] = { srv(1, 100, 1000, 11), srv(2, 100, 1000,
	    11), srv(3, 50, 10, 1) };
	struct remap_counts c;

	(void)state;
	assert_int_equal(remap_match(l, 2, s, 3, false, &c), 0);
	assert_int_equal(s[0].how, REMAP_NEED_DIGEST);
	assert_int_equal(s[1].how, REMAP_NEED_DIGEST);
	assert_int_equal(s[2].how, REMAP_BY_KEY);
	give_digest(&s[0], 0);
	give_digest(&s[1], 0);
	assert_int_equal(remap_match(l, 2, s, 3, true, &c), 0);
	assert_int_equal(s[0].how, REMAP_BY_DIGEST);
	assert_int_equal(s[0].local, 0);
	assert_int_equal(s[1].how, REMAP_NONE);
	assert_int_equal(c.matched, 2);
	assert_int_equal(remap_last_uid(s, 3), 1);
}

/* The mirror holds a message twice (two local records, same bytes), the
 * server once: the server's copy matches one of them. */
static void
test_local_duplicate(void **state)
{
	struct remap_local l[] = { loc(100, 1000, 11, 0), loc(100, 1000, 11,
	    0) };
	struct remap_server s[] = { srv(4, 100, 1000, 11) };
	struct remap_counts c;

	(void)state;
	assert_int_equal(remap_match(l, 2, s, 1, false, &c), 0);
	assert_int_equal(s[0].how, REMAP_NEED_DIGEST);
	give_digest(&s[0], 0);
	assert_int_equal(remap_match(l, 2, s, 1, true, &c), 0);
	assert_int_equal(s[0].how, REMAP_BY_DIGEST);
	assert_true(s[0].local == 0 || s[0].local == 1);
	assert_int_equal(c.matched, 1);
}

/* A message listed without its size or date is never taken for one in
 * the mirror (and so stops the state's last UID before it). */
static void
test_incomplete_never_matches(void **state)
{
	struct remap_local l[] = { loc(100, 1000, 11, 0), loc(0, 0, 0, 1) };
	struct remap_server s[] = { srv(1, 100, 1000, 11), srv(2, 0, 0, 0),
	    srv(3, 100, 1000, 11) };
	struct remap_counts c;

	(void)state;
	s[1].incomplete = true;
	s[2].incomplete = true;
	assert_int_equal(remap_match(l, 2, s, 3, true, &c), 0);
	assert_int_equal(s[0].how, REMAP_BY_KEY);
	assert_int_equal(s[1].how, REMAP_NONE);
	assert_int_equal(s[2].how, REMAP_NONE);
	assert_int_equal(c.server, 3);
	assert_int_equal(c.matched, 1);
	assert_int_equal(remap_last_uid(s, 3), 1);
}

static void
test_repeated_uids_first_counts(void **state)
{
	struct remap_server s[] = { srv(5, 1, 1, 1), srv(3, 2, 2, 2), srv(5, 9,
	    9, 9), srv(3, 8, 8, 8), srv(1, 3, 3, 3), srv(5, 7, 7, 7) };
	size_t n;

	(void)state;
	n = remap_server_sort(s, 6);
	assert_int_equal(n, 3);
	assert_int_equal(s[0].uid, 1);
	assert_int_equal(s[1].uid, 3);
	assert_int_equal(s[1].size, 2);
	assert_int_equal(s[2].uid, 5);
	assert_int_equal(s[2].size, 1);
	assert_int_equal(remap_server_sort(s, 0), 0);
}

/* A server listing 200,000 messages that all claim one mirrored key
 * without Message-ID: all need a digest (fetched, streamed), at most one
 * can match, and the work stays O(n log n): a quadratic pairing would not
 * finish within the test's timeout. */
static void
test_hostile_many_same_key(void **state)
{
	size_t n = 200000;
	struct remap_server *s = calloc(n, sizeof *s);
	struct remap_local l[] = { loc(10, 10, 0, 2) };
	struct remap_counts c;

	(void)state;
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		s[i] = srv((uint32_t)(n - i), 10, 10, 0);
		give_digest(&s[i], 2);
	}
	assert_int_equal(remap_server_sort(s, n), n);
	assert_int_equal(remap_match(l, 1, s, n, true, &c), 0);
	assert_int_equal(c.matched, 1);
	assert_int_equal(c.server, n);
	assert_int_equal(remap_accept(&c), REMAP_POOR);
	free(s);
}

/* Many distinct messages, half of them in the mirror: the sort-merge
 * pairs each with its own. */
static void
test_many_half_matched(void **state)
{
	size_t n = 100000, nl = n / 2;
	struct remap_server *s = calloc(n, sizeof *s);
	struct remap_local *l = calloc(nl, sizeof *l);
	struct remap_counts c;

	(void)state;
	assert_non_null(s);
	assert_non_null(l);
	for (size_t i = 0; i < nl; i++)
		l[i] = loc(1000 + 2 * i, (int64_t)i, 7 * i + 1, 0);
	for (size_t i = 0; i < n; i++)
		s[i] = srv((uint32_t)i + 1, 1000 + i, (int64_t)(i / 2),
		    7 * (i / 2) + 1);
	assert_int_equal(remap_match(l, nl, s, n, true, &c), 0);
	assert_int_equal(c.matched, nl);
	for (size_t i = 0; i < n; i += 2) {
		assert_int_equal(s[i].how, REMAP_BY_KEY);
		assert_int_equal(s[i].local, i / 2);
		assert_int_equal(s[i + 1].how, REMAP_NONE);
	}
	assert_int_equal(remap_accept(&c), REMAP_GOOD);
	assert_int_equal(remap_last_uid(s, n), 1);
	free(s);
	free(l);
}

static void
test_accept_rule(void **state)
{
	static const struct {
		struct remap_counts c;
		enum remap_verdict v;
	} t[] = {
		{ { 0, 0, 0 }, REMAP_POOR },	/* recreated empty */
		{ { 1, 1, 0 }, REMAP_GOOD },
		{ { 2, 1, 0 }, REMAP_GOOD },	/* exactly half */
		{ { 3, 1, 0 }, REMAP_POOR },
		{ { 100, 49, 0 }, REMAP_POOR },
		{ { 100, 50, 0 }, REMAP_GOOD },
		{ { 20100, 20000, 0 }, REMAP_GOOD },
		{ { 100, 40, 10 }, REMAP_DIGESTS },	/* half in reach */
		{ { 100, 40, 9 }, REMAP_POOR },	/* could not */
		{ { 10, 0, 10 }, REMAP_DIGESTS },
		{ { SIZE_MAX, SIZE_MAX / 2, 0 }, REMAP_POOR },
		{ { SIZE_MAX, SIZE_MAX / 2 + 1, 0 }, REMAP_GOOD },
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof *t; i++)
		assert_int_equal(remap_accept(&t[i].c), t[i].v);
}

static void
test_last_uid(void **state)
{
	struct remap_server s[] = { srv(2, 0, 0, 0), srv(3, 0, 0, 0), srv(8, 0,
	    0, 0), srv(9, 0, 0, 0) };

	(void)state;
	for (size_t i = 0; i < 4; i++)
		s[i].how = REMAP_BY_KEY;
	assert_int_equal(remap_last_uid(s, 4), 9);
	s[2].how = REMAP_NONE;	/* UID 8 new: the state stops at 3 */
	assert_int_equal(remap_last_uid(s, 4), 3);
	s[0].how = REMAP_NEED_DIGEST;
	assert_int_equal(remap_last_uid(s, 4), 0);
	assert_int_equal(remap_last_uid(s, 0), 0);
}

/* The listing may leave out what was expunged meanwhile, not what arrived
 * and went again, and nothing a bogus EXPUNGE or a shrinking EXISTS
 * claims. */
static void
test_census(void **state)
{
	struct remap_census c;

	(void)state;
	remap_census_start(&c, 6);
	assert_int_equal(c.examined, 6);
	remap_census_expunge(&c, 3);		/* one of EXAMINE's */
	assert_int_equal(c.examined, 5);
	assert_int_equal(c.exists, 5);
	remap_census_exists(&c, 6);		/* one arrives, number 6 */
	assert_int_equal(c.most, 6);
	remap_census_expunge(&c, 6);		/* and goes */
	assert_int_equal(c.examined, 5);
	assert_int_equal(c.exists, 5);
	remap_census_expunge(&c, 9);		/* no such message */
	remap_census_expunge(&c, 0);
	assert_int_equal(c.examined, 5);
	assert_int_equal(c.exists, 5);
	remap_census_exists(&c, 2);		/* shrinks: says nothing */
	assert_int_equal(c.examined, 5);
	assert_int_equal(c.exists, 5);
	remap_census_exists(&c, 8);
	assert_int_equal(c.most, 8);
	remap_census_expunge(&c, 1);		/* EXAMINE's again */
	assert_int_equal(c.examined, 4);
	assert_int_equal(c.exists, 7);
	assert_int_equal(c.most, 8);
	/* Everything expunged: no EXPUNGE goes below zero. */
	remap_census_start(&c, 1);
	remap_census_expunge(&c, 1);
	remap_census_expunge(&c, 1);
	assert_int_equal(c.examined, 0);
	assert_int_equal(c.exists, 0);
}

/* Refused remaps counted per UIDVALIDITY, given up at the third. */
static void
test_refused_count(void **state)
{
	uint32_t n;

	(void)state;
	n = remap_refused_count(0, 0, 4712);
	assert_int_equal(n, 1);
	assert_false(remap_give_up(n));
	n = remap_refused_count(4712, n, 4712);
	assert_int_equal(n, 2);
	assert_false(remap_give_up(n));
	n = remap_refused_count(4712, n, 4712);
	assert_int_equal(n, REMAP_REFUSED_MAX);
	assert_true(remap_give_up(n));
	/* Never past the bound, whatever the state said. */
	assert_int_equal(remap_refused_count(4712, UINT32_MAX, 4712),
	    REMAP_REFUSED_MAX);
	/* Another change of UIDVALIDITY starts again. */
	assert_int_equal(remap_refused_count(4712, 2, 4713), 1);
	assert_int_equal(remap_refused_count(4712, 0, 4712), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unique_keys_match_by_key),
		cmocka_unit_test(test_every_part_of_the_key_counts),
		cmocka_unit_test(test_no_message_id_needs_the_digest),
		cmocka_unit_test(test_lone_key_without_message_id_is_checked),
		cmocka_unit_test(test_final_without_digest_is_unmatched),
		cmocka_unit_test(test_server_duplicate_matches_once),
		cmocka_unit_test(test_local_duplicate),
		cmocka_unit_test(test_incomplete_never_matches),
		cmocka_unit_test(test_repeated_uids_first_counts),
		cmocka_unit_test(test_hostile_many_same_key),
		cmocka_unit_test(test_many_half_matched),
		cmocka_unit_test(test_accept_rule),
		cmocka_unit_test(test_last_uid),
		cmocka_unit_test(test_census),
		cmocka_unit_test(test_refused_count),
	};

	init_digests();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
