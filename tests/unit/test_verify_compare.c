/*
 * The decisions of --verify (verify_compare.h): the server's UIDs and
 * sizes against the index, the index against what the file holds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "verify_compare.h"

/* A digest that names its entry: every byte n. */
static void
digest_of(uint8_t d[VERIFY_DIGEST_LEN], int n)
{
	memset(d, n, VERIFY_DIGEST_LEN);
}

static struct verify_indexed
ixe(uint32_t uid, uint64_t offset, uint64_t length, enum verify_at at)
{
	struct verify_indexed e = { .uid = uid, .size = length + 10,
	    .offset = offset, .length = length, .at = at };

	digest_of(e.digest, (int)uid);
	return e;
}

static struct verify_found
fnd(uint64_t offset, uint64_t length, int digest)
{
	struct verify_found f = { .offset = offset, .length = length,
	    .from_line = true };

	digest_of(f.digest, digest);
	return f;
}

/* The file's gaps: LF only where the test says. */
static uint64_t lf_from, lf_to;

static bool
only_lf(uint64_t offset, uint64_t len, void *arg)
{
	(void)arg;
	return offset >= lf_from && offset + len <= lf_to;
}

static void
expect_problem(const struct verify_problems *l, size_t i,
    enum verify_kind kind, uint32_t uid, uint64_t offset)
{
	char text[256];

	if (i >= l->n)
		fail_msg("problem %zu missing (%zu found)", i, l->n);
	if (l->v[i].kind != kind || l->v[i].uid != uid ||
	    l->v[i].offset != offset)
		fail_msg("problem %zu: %s UID %u offset %llu, expected %s UID "
		    "%u offset %llu (%s)", i, verify_kind_name(l->v[i].kind),
		    l->v[i].uid, (unsigned long long)l->v[i].offset,
		    verify_kind_name(kind), uid, (unsigned long long)offset,
		    verify_problem_text(&l->v[i], text, sizeof text));
}

/* Three entries, [0,100) [100,150) [150,230); file holds them whole. */
static void
three(struct verify_indexed ix[3])
{
	ix[0] = ixe(1, 0, 100, VERIFY_AT_INTACT);
	ix[1] = ixe(2, 100, 50, VERIFY_AT_INTACT);
	ix[2] = ixe(3, 150, 80, VERIFY_AT_INTACT);
}

static void
test_local_whole(void **state)
{
	struct verify_indexed ix[3];
	struct verify_found f[3] = { fnd(0, 100, 1), fnd(100, 50, 2),
		fnd(150, 80, 3) };
	struct verify_problems out = { 0 };

	(void)state;
	three(ix);
	assert_int_equal(verify_compare_local(ix, 3, f, 3, 230, 230, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 0);
	/* An empty file and an empty index are whole too. */
	assert_int_equal(verify_compare_local(NULL, 0, NULL, 0, 0, 0, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 0);
	verify_problems_free(&out);
}

static void
test_local_changed_byte(void **state)
{
	struct verify_indexed ix[3];
	struct verify_found f[3] = { fnd(0, 100, 1), fnd(100, 50, 99),
		fnd(150, 80, 3) };
	struct verify_problems out = { 0 };

	(void)state;
	three(ix);
	ix[1].at = VERIFY_AT_DIFFERS;
	assert_int_equal(verify_compare_local(ix, 3, f, 3, 230, 230, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 1);
	expect_problem(&out, 0, VERIFY_CHANGED, 2, 100);
	verify_problems_free(&out);

	/* Its From_ line broken: no entry there (the scan sees one long
	 * entry from 0). */
	struct verify_found g[2] = { fnd(0, 150, 77), fnd(150, 80, 3) };
	ix[1].at = VERIFY_AT_NO_FROM;
	assert_int_equal(verify_compare_local(ix, 3, g, 2, 230, 230, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 1);
	expect_problem(&out, 0, VERIFY_NO_ENTRY, 2, 100);
	verify_problems_free(&out);
}

static void
test_local_truncated(void **state)
{
	struct verify_indexed ix[3];
	struct verify_found f[3] = { fnd(0, 100, 1), fnd(100, 50, 2),
		fnd(150, 30, 42) };
	struct verify_problems out = { 0 };

	(void)state;
	three(ix);
	ix[2].at = VERIFY_AT_PAST_END;
	assert_int_equal(verify_compare_local(ix, 3, f, 3, 230, 180, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 2);
	expect_problem(&out, 0, VERIFY_LOST, 3, 150);
	expect_problem(&out, 1, VERIFY_SHORT, 0, 180);
	assert_int_equal(out.v[1].a, 180);
	assert_int_equal(out.v[1].b, 230);
	verify_problems_free(&out);
}

static void
test_local_removed(void **state)
{
	struct verify_indexed ix[4];
	/* Entry 2 cut out: 3 and 4 sit 50 bytes earlier. */
	struct verify_found f[3] = { fnd(0, 100, 1), fnd(100, 80, 3),
		fnd(180, 20, 4) };
	struct verify_problems out = { 0 };
	char text[256];

	(void)state;
	three(ix);
	ix[3] = ixe(4, 230, 20, VERIFY_AT_PAST_END);
	ix[1].at = VERIFY_AT_DIFFERS;
	ix[2].at = VERIFY_AT_DIFFERS;
	assert_int_equal(verify_compare_local(ix, 4, f, 3, 250, 200, only_lf,
	    NULL, &out), 0);
	/* Removed, then one line for the run of two moved, no SHORT: the
	 * move explains the size. */
	assert_int_equal(out.n, 2);
	expect_problem(&out, 0, VERIFY_REMOVED, 2, 100);
	expect_problem(&out, 1, VERIFY_MOVED, 3, 150);
	assert_int_equal(out.v[1].uid_last, 4);
	assert_int_equal(out.v[1].a, 2);
	assert_int_equal(out.v[1].shift, -50);
	assert_non_null(strstr(verify_problem_text(&out.v[1], text,
	    sizeof text), "to UID 4: 2 entries"));
	verify_problems_free(&out);
}

static void
test_local_duplicated(void **state)
{
	struct verify_indexed ix[3];
	/* A copy of entry 2 right after it: 3 moved by +50. */
	struct verify_found f[4] = { fnd(0, 100, 1), fnd(100, 50, 2),
		fnd(150, 50, 2), fnd(200, 80, 3) };
	struct verify_problems out = { 0 };

	(void)state;
	three(ix);
	ix[2].at = VERIFY_AT_DIFFERS;
	assert_int_equal(verify_compare_local(ix, 3, f, 4, 230, 280, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 2);
	expect_problem(&out, 0, VERIFY_MOVED, 3, 150);
	expect_problem(&out, 1, VERIFY_DUPLICATE_ENTRY, 2, 150);
	verify_problems_free(&out);

	/* The copy at the end: nothing moved, a duplicate, no tail line. */
	struct verify_found g[4] = { fnd(0, 100, 1), fnd(100, 50, 2),
		fnd(150, 80, 3), fnd(230, 50, 2) };
	three(ix);
	assert_int_equal(verify_compare_local(ix, 3, g, 4, 230, 280, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 2);
	expect_problem(&out, 0, VERIFY_DUPLICATE_ENTRY, 2, 230);
	expect_problem(&out, 1, VERIFY_TAIL, 0, 230);
	assert_int_equal(out.v[1].length, 50);
	verify_problems_free(&out);
}

static void
test_local_foreign(void **state)
{
	struct verify_indexed ix[2];
	/* Another program's 5 bytes after entry 1, then the writer's LF,
	 * then entry 2 (indexed where it was written: 106). */
	struct verify_found f[2] = { fnd(0, 106, 50), fnd(106, 40, 2) };
	struct verify_problems out = { 0 };

	(void)state;
	ix[0] = ixe(1, 0, 100, VERIFY_AT_INTACT);
	ix[1] = ixe(2, 106, 40, VERIFY_AT_INTACT);
	lf_from = 105;
	lf_to = 106;
	assert_int_equal(verify_compare_local(ix, 2, f, 2, 146, 146, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 1);
	expect_problem(&out, 0, VERIFY_FOREIGN, 0, 100);
	assert_int_equal(out.v[0].length, 6);
	verify_problems_free(&out);

	/* Only the writer's LFs between the two: nothing to say. */
	lf_from = 100;
	assert_int_equal(verify_compare_local(ix, 2, f, 2, 146, 146, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 0);
	verify_problems_free(&out);
	lf_from = lf_to = 0;
}

static void
test_local_uncommitted_tail(void **state)
{
	struct verify_indexed ix[3];
	struct verify_found f[4] = { fnd(0, 100, 1), fnd(100, 50, 2),
		fnd(150, 80, 3), fnd(230, 70, 9) };
	struct verify_problems out = { 0 };

	(void)state;
	three(ix);
	assert_int_equal(verify_compare_local(ix, 3, f, 4, 230, 300, only_lf,
	    NULL, &out), 0);
	assert_int_equal(out.n, 1);
	expect_problem(&out, 0, VERIFY_TAIL, 0, 230);
	assert_int_equal(out.v[0].length, 70);
	verify_problems_free(&out);
}

static void
test_server_whole(void **state)
{
	struct verify_indexed ix[3];
	struct verify_listed l[4] = { { 3, 90 }, { 1, 110 }, { 2, 60 },
		{ 7, 5 } };
	struct verify_server_counts c;
	struct verify_problems out = { 0 };

	(void)state;
	three(ix);
	assert_int_equal(verify_compare_server(l, 4, ix, 3, 3, NULL, 0, &out,
	    &c), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(c.listed, 3);
	assert_int_equal(c.in_mirror, 3);
	assert_int_equal(c.newer, 1);
	assert_int_equal(c.deleted, 0);
	assert_false(c.uids_unknown);
	/* The server lists nothing: every indexed message was deleted there. */
	assert_int_equal(verify_compare_server(NULL, 0, ix, 3, 3, NULL, 0, &out,
	    &c), 0);
	assert_int_equal(out.n, 0);
	assert_int_equal(c.deleted, 3);
	/* Nothing on either side. */
	assert_int_equal(verify_compare_server(NULL, 0, NULL, 0, 0, NULL, 0,
	    &out, &c), 0);
	assert_int_equal(out.n, 0);
	verify_problems_free(&out);
}

static void
test_server_problems(void **state)
{
	struct verify_indexed ix[4];
	/* 2 deleted on the server; 4 and 5 missing, 5 given up; 3's size
	 * differs; 1 indexed twice. */
	struct verify_listed l[4] = { { 1, 110 }, { 3, 91 }, { 4, 1 },
		{ 5, 1 } };
	uint32_t skipped[] = { 5 };
	struct verify_server_counts c;
	struct verify_problems out = { 0 };

	(void)state;
	three(ix);
	ix[3] = ixe(1, 230, 100, VERIFY_AT_INTACT);
	assert_int_equal(verify_compare_server(l, 4, ix, 4, 5, skipped, 1,
	    &out, &c), 0);
	assert_int_equal(out.n, 4);
	expect_problem(&out, 0, VERIFY_DUPLICATE_UID, 1, 230);
	expect_problem(&out, 1, VERIFY_SIZE, 3, 150);
	assert_int_equal(out.v[1].a, 91);
	assert_int_equal(out.v[1].b, 90);
	expect_problem(&out, 2, VERIFY_MISSING, 4, 0);
	expect_problem(&out, 3, VERIFY_GIVEN_UP, 5, 0);
	assert_int_equal(c.deleted, 1);
	assert_int_equal(c.given_up, 1);
	assert_int_equal(c.listed, 4);
	assert_int_equal(c.in_mirror, 2);
	verify_problems_free(&out);
}

/* Entries of an earlier UIDVALIDITY (kept by a remap): deleted on the
 * server, neither missing nor unknown, and --deep leaves them alone. */
static void
test_server_earlier_uidvalidity(void **state)
{
	struct verify_indexed ix[4];
	struct verify_listed l[3] = { { 1, 110 }, { 2, 60 }, { 3, 90 } };
	uint8_t server[3][VERIFY_DIGEST_LEN];
	struct verify_server_counts c;
	struct verify_problems out = { 0 };

	(void)state;
	ix[0] = ixe(0, 0, 40, VERIFY_AT_INTACT);
	ix[0].earlier = true;
	three(ix + 1);
	assert_int_equal(verify_compare_server(l, 3, ix, 4, 3, NULL, 0, &out,
	    &c), 0);
	assert_int_equal(out.n, 0);
	assert_false(c.uids_unknown);
	assert_int_equal(c.in_mirror, 3);
	assert_int_equal(c.deleted, 1);
	for (int i = 0; i < 3; i++)
		digest_of(server[i], i + 1);
	assert_int_equal(verify_compare_digests(ix, 4, server, 3, &out), 0);
	assert_int_equal(out.n, 0);
	ix[0].earlier = false;
	assert_int_equal(verify_compare_digests(ix, 4, server, 3, &out), 0);
	assert_int_equal(out.n, 1);
	verify_problems_free(&out);
}

static void
test_server_rebuilt_index(void **state)
{
	struct verify_indexed ix[3];
	struct verify_listed l[4] = { { 1, 1 }, { 2, 1 }, { 3, 1 }, { 9, 1 } };
	uint32_t skipped[] = { 2 };
	struct verify_server_counts c;
	struct verify_problems out = { 0 };
	char text[256];

	(void)state;
	ix[0] = ixe(0, 0, 100, VERIFY_AT_INTACT);
	ix[1] = ixe(0, 100, 50, VERIFY_AT_INTACT);
	/* 1 and 3 it must hold (2 given up, 9 new): two entries will do. */
	assert_int_equal(verify_compare_server(l, 4, ix, 2, 3, skipped, 1,
	    &out, &c), 0);
	assert_int_equal(out.n, 1);
	expect_problem(&out, 0, VERIFY_GIVEN_UP, 2, 0);
	assert_true(c.uids_unknown);
	assert_int_equal(c.newer, 1);
	assert_int_equal(c.given_up, 1);
	assert_int_equal(c.in_mirror, 2);
	assert_int_equal(c.deleted, 0);
	verify_problems_free(&out);
	/* One entry is not enough for three. */
	assert_int_equal(verify_compare_server(l, 4, ix, 1, 3, NULL, 0,
	    &out, &c), 0);
	assert_int_equal(out.n, 1);
	expect_problem(&out, 0, VERIFY_COUNT, 0, 0);
	assert_int_equal(out.v[0].a, 1);
	assert_int_equal(out.v[0].b, 3);
	assert_string_equal(verify_problem_text(&out.v[0], text, sizeof text),
	    "3 messages on the server that no recorded UID accounts for, but "
	    "only 1 entry without a recorded UID (a rebuilt index): 2 missing");
	verify_problems_free(&out);
	/* Rebuilt entries, then recorded ones (the next syncs): UIDs 2 and 3
	 * compare as usual; UID 1 is one of the two without a UID, the other
	 * was deleted on the server. */
	ix[2] = ixe(3, 150, 80, VERIFY_AT_INTACT);
	ix[2].size = 7;
	assert_int_equal(verify_compare_server(l, 4, ix, 3, 3, skipped, 1,
	    &out, &c), 0);
	assert_int_equal(out.n, 2);
	expect_problem(&out, 0, VERIFY_GIVEN_UP, 2, 0);
	expect_problem(&out, 1, VERIFY_SIZE, 3, 150);
	assert_int_equal(c.in_mirror, 2);
	assert_int_equal(c.deleted, 1);
	verify_problems_free(&out);
}

static void
test_digests(void **state)
{
	struct verify_indexed ix[3];
	uint8_t server[2][VERIFY_DIGEST_LEN];
	struct verify_problems out = { 0 };

	(void)state;
	three(ix);
	digest_of(server[0], 3);
	digest_of(server[1], 1);
	assert_int_equal(verify_compare_digests(ix, 3, server, 2, &out), 0);
	assert_int_equal(out.n, 1);
	expect_problem(&out, 0, VERIFY_DEEP_UNMATCHED, 2, 100);
	verify_problems_free(&out);
	/* The file's bytes count, not the index's record: entry 2's are the
	 * server's, entry 1's no longer are. */
	ix[1].has_file_digest = ix[0].has_file_digest = true;
	digest_of(ix[1].file_digest, 3);
	digest_of(ix[0].file_digest, 42);
	assert_int_equal(verify_compare_digests(ix, 3, server, 2, &out), 0);
	assert_int_equal(out.n, 1);
	expect_problem(&out, 0, VERIFY_DEEP_UNMATCHED, 1, 0);
	verify_problems_free(&out);
}

static void
test_texts(void **state)
{
	char buf[256];

	(void)state;
	/* Every kind has a name and words. */
	for (int k = VERIFY_MISSING; k <= VERIFY_SHORT; k++) {
		struct verify_problem p = { .kind = (enum verify_kind)k,
		    .uid = 4, .uid_last = 4, .offset = 7, .length = 9 };

		assert_string_not_equal(verify_kind_name(p.kind), "?");
		assert_true(strlen(verify_problem_text(&p, buf,
		    sizeof buf)) > 10);
	}
	struct verify_problem p = { .kind = VERIFY_FOREIGN, .offset = 1234,
	    .length = 1 };
	assert_string_equal(verify_problem_text(&p, buf, sizeof buf),
	    "1 byte at offset 1234 belong to no entry (added by another "
	    "program?)");
	/* Cut to fit. */
	assert_int_equal(strlen(verify_problem_text(&p, buf, 8)), 7);
}

/*
 * 100,000 entries with the same bytes (one message delivered over and
 * over), all moved by a byte put before them: each indexed entry takes the
 * next copy in file order, in time linear in the entries.
 */
static void
test_local_many_copies_moved(void **state)
{
	const size_t n = 100000;
	struct verify_indexed *ix = calloc(n, sizeof *ix);
	struct verify_found *found = calloc(n + 1, sizeof *found);
	struct verify_problems out = { 0 };
	clock_t start;
	double secs;

	(void)state;
	assert_non_null(ix);
	assert_non_null(found);
	found[0] = fnd(0, 1, 0);
	found[0].from_line = false;
	for (size_t i = 0; i < n; i++) {
		ix[i] = ixe((uint32_t)i + 1, i * 100, 100, VERIFY_AT_NO_FROM);
		digest_of(ix[i].digest, 7);
		found[i + 1] = fnd(1 + i * 100, 100, 7);
	}
	lf_from = lf_to = 0;
	start = clock();
	assert_int_equal(verify_compare_local(ix, n, found, n + 1, n * 100,
	    n * 100 + 1, only_lf, NULL, &out), 0);
	secs = (double)(clock() - start) / CLOCKS_PER_SEC;
	expect_problem(&out, 0, VERIFY_MOVED, 1, 0);
	assert_int_equal(out.v[0].uid_last, n);
	assert_int_equal(out.v[0].a, n);
	expect_problem(&out, 1, VERIFY_FOREIGN, 0, 0);
	assert_int_equal(out.n, 2);
	if (secs > 3.0)
		fail_msg("%.1f s of CPU for %zu entries", secs, n);
	verify_problems_free(&out);
	free(ix);
	free(found);
}

static void
test_refusal_gone(void **state)
{
	(void)state;
	assert_true(verify_refusal_gone(true, "NONEXISTENT"));
	assert_true(verify_refusal_gone(true, "nonexistent"));
	assert_true(verify_refusal_gone(true, NULL));
	assert_false(verify_refusal_gone(true, "UNAVAILABLE"));
	assert_false(verify_refusal_gone(true, "NOPERM"));
	assert_false(verify_refusal_gone(true, "SERVERBUG"));
	assert_false(verify_refusal_gone(false, NULL));
	assert_false(verify_refusal_gone(false, "NONEXISTENT"));
}

/* A sync's tail: gone from the problems with the copies in it, nothing
 * else. */
static void
test_drop_tail(void **state)
{
	struct verify_problem v[] = {
		{ .kind = VERIFY_CHANGED, .uid = 1, .offset = 0 },
		{ .kind = VERIFY_DUPLICATE_ENTRY, .uid = 1, .offset = 100 },
		{ .kind = VERIFY_FOREIGN, .offset = 150 },
		{ .kind = VERIFY_DUPLICATE_ENTRY, .uid = 2, .offset = 230 },
		{ .kind = VERIFY_TAIL, .offset = 230 },
		{ .kind = VERIFY_DUPLICATE_ENTRY, .uid = 1, .offset = 300 },
	};
	struct verify_problems l = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		assert_int_equal(verify_problems_add(&l, &v[i]), 0);
	verify_drop_tail(&l);
	assert_int_equal(l.n, 3);
	expect_problem(&l, 0, VERIFY_CHANGED, 1, 0);
	expect_problem(&l, 1, VERIFY_DUPLICATE_ENTRY, 1, 100);
	expect_problem(&l, 2, VERIFY_FOREIGN, 0, 150);
	verify_problems_free(&l);
}

/* A state that claims the largest size a state may hold (a damaged one),
 * with entries moved by a byte: the end is worked out without overflow. */
static void
test_local_huge_committed(void **state)
{
	struct verify_indexed ix[3];
	struct verify_found f[4] = { fnd(0, 1, 0), fnd(1, 100, 1),
		fnd(101, 50, 2), fnd(151, 80, 3) };
	struct verify_problems out = { 0 };

	(void)state;
	f[0].from_line = false;
	three(ix);
	ix[0].at = ix[1].at = ix[2].at = VERIFY_AT_NO_FROM;
	lf_from = lf_to = 0;
	assert_int_equal(verify_compare_local(ix, 3, f, 4, INT64_MAX, 231,
	    only_lf, NULL, &out), 0);
	expect_problem(&out, 0, VERIFY_MOVED, 1, 0);
	expect_problem(&out, 1, VERIFY_FOREIGN, 0, 0);
	expect_problem(&out, 2, VERIFY_SHORT, 0, 231);
	assert_int_equal(out.v[2].b, (uint64_t)INT64_MAX + 1);
	assert_int_equal(out.n, 3);
	verify_problems_free(&out);
}

/* The size queries: runs of chunk indexed UIDs, the last one open. */
static void
test_size_ranges(void **state)
{
	struct verify_indexed ix[7];
	static const uint32_t uids[7] = { 9, 3, 0, 5, 5, 12, 40 };
	uint32_t *ends;
	size_t n;

	(void)state;
	for (size_t i = 0; i < 7; i++)
		ix[i] = ixe(uids[i], i * 100, 100, VERIFY_AT_INTACT);
	/* 3 5 9 12 40: 1:5, 6:12, 13:* */
	assert_int_equal(verify_size_ranges(ix, 7, 2, &ends, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ends[0], 5);
	assert_int_equal(ends[1], 12);
	assert_int_equal(ends[2], 0);
	free(ends);
	/* Five UIDs in runs of 5: one query, 1:*. */
	assert_int_equal(verify_size_ranges(ix, 7, 5, &ends, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ends[0], 0);
	free(ends);
	/* Runs of 4: 1:12, 13:*. */
	assert_int_equal(verify_size_ranges(ix, 7, 4, &ends, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ends[0], 12);
	assert_int_equal(ends[1], 0);
	free(ends);
	/* No index: 1:*. */
	assert_int_equal(verify_size_ranges(NULL, 0, 4, &ends, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ends[0], 0);
	free(ends);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_local_whole),
		cmocka_unit_test(test_local_changed_byte),
		cmocka_unit_test(test_local_truncated),
		cmocka_unit_test(test_local_removed),
		cmocka_unit_test(test_local_duplicated),
		cmocka_unit_test(test_local_foreign),
		cmocka_unit_test(test_local_uncommitted_tail),
		cmocka_unit_test(test_local_many_copies_moved),
		cmocka_unit_test(test_refusal_gone),
		cmocka_unit_test(test_size_ranges),
		cmocka_unit_test(test_drop_tail),
		cmocka_unit_test(test_local_huge_committed),
		cmocka_unit_test(test_server_whole),
		cmocka_unit_test(test_server_problems),
		cmocka_unit_test(test_server_earlier_uidvalidity),
		cmocka_unit_test(test_server_rebuilt_index),
		cmocka_unit_test(test_digests),
		cmocka_unit_test(test_texts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
