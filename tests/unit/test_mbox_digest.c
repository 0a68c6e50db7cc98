/*
 * The mbox entry descriptions behind the message index: the writer's
 * mbox_last_entry() against the file's bytes (SHA-256 of the entry after
 * its From_ line), the standalone mbox_digest_* against the writer under
 * every kind of chunking, Message-ID hashes, and the entry scanner against
 * what the writer wrote, foreign bytes included.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/crypto.h>

#include "testdir.h"

#include "mbox/mbox.h"

#define DATE_SUN_NOV_1	((time_t)1793523903)

static char tmpdir[64];

struct sample {
	const char *name;
	const char *s;
	size_t len;
};

#define S(name, lit) { name, lit, sizeof(lit) - 1 }
static const struct sample samples[] = {
	S("plain", "Return-Path: <a@example.org>\r\nMessage-ID: <one@x>\r\n"
	    "Subject: hi\r\n\r\nbody\r\n"),
	S("crlf and from lines", "Subject: q\r\n\r\nFrom me\r\n>From you\r\n"
	    "\r\nFrom again\r\n>>From deep\r\nFromage\r\n"),
	S("no final lf", "Subject: cut\n\nno newline at the end"),
	S("empty", ""),
	S("folded message-id", "message-id:\r\n  <folded@example.org> "
	    "(comment)\r\nSubject: f\r\n\r\nx\r\n"),
	S("lone cr", "Subject: cr\r\n\r\na\rb\r\r\nc\r"),
	S("ends in empty lines", "Subject: e\n\nbody\n\n\n"),
	S("header only", "Subject: only\r\n"),
	S("from at start", "From nobody\nSubject: x\n\nFrom inside\n"),
};

static void
sha256(const void *data, size_t len, uint8_t out[MBOX_DIGEST_LEN])
{
	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out),
	    0);
}

/* The digest and Message-ID hash of raw bytes, fed in pieces of step
 * bytes (0: all at once; the pieces' lengths cycle when step is odd). */
static void
digest_of(const struct sample *m, size_t step, uint8_t out[MBOX_DIGEST_LEN],
    uint64_t *mid_r)
{
	struct mbox_digest *d;
	size_t off = 0, n;

	assert_int_equal(mbox_digest_new(&d), 0);
	while (off < m->len) {
		n = step == 0 ? m->len : step + off % 3;
		if (n > m->len - off)
			n = m->len - off;
		assert_int_equal(mbox_digest_write(d, m->s + off, n), 0);
		off += n;
	}
	assert_int_equal(mbox_digest_end(d, out, mid_r), 0);
	mbox_digest_free(&d);
	assert_null(d);
}

/* Writes every sample (chunked by 3) into a new mbox; entries into v. */
static void
write_samples(const char *path, const char *prefix,
    struct mbox_entry *v)
{
	char rec[PATH_MAX + 16], *error = NULL;
	struct mbox *mb;
	size_t n = sizeof samples / sizeof samples[0];
	int fd;

	if (prefix != NULL) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, prefix, strlen(prefix)),
		    (ssize_t)strlen(prefix));
		close(fd);
	}
	snprintf(rec, sizeof rec, "%s.record", path);
	assert_true(mbox_open(path, rec, prefix != NULL ? MBOX_SIZE_UNKNOWN :
	    0, &mb, &error) == MBOX_OPEN_OK);
	for (size_t i = 0; i < n; i++) {
		const struct sample *m = &samples[i];

		assert_int_equal(mbox_msg_begin(mb, DATE_SUN_NOV_1), 0);
		for (size_t off = 0; off < m->len; off += 3)
			assert_int_equal(mbox_msg_write(mb, m->s + off,
			    m->len - off < 3 ? m->len - off : 3), 0);
		assert_int_equal(mbox_msg_end(mb), 0);
		v[i] = *mbox_last_entry(mb);
	}
	assert_int_equal(mbox_commit(mb, NULL), 0);
	mbox_close(&mb);
}

static size_t
line_len(const unsigned char *p, size_t len)
{
	const unsigned char *lf = memchr(p, '\n', len);

	assert_non_null(lf);
	return (size_t)(lf - p) + 1;
}

static void
test_writer_entries_match_file(void **state)
{
	struct mbox_entry v[sizeof samples / sizeof samples[0]];
	size_t n = sizeof samples / sizeof samples[0], len, from;
	uint8_t d[MBOX_DIGEST_LEN];
	char path[PATH_MAX];
	unsigned char *f;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "entries.mbox");
	write_samples(path, NULL, v);
	f = testdir_read(path, &len);
	assert_int_equal(v[0].offset, 0);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n)
			assert_int_equal(v[i].offset + v[i].length,
			    v[i + 1].offset);
		else
			assert_int_equal(v[i].offset + v[i].length, len);
		assert_memory_equal(f + v[i].offset, "From ", 5);
		from = line_len(f + v[i].offset, v[i].length);
		sha256(f + v[i].offset + from, v[i].length - from, d);
		assert_memory_equal(d, v[i].digest, MBOX_DIGEST_LEN);
		/* Every entry ends in an empty line. */
		assert_memory_equal(f + v[i].offset + v[i].length - 2, "\n\n",
		    2);
	}
	free(f);
}

static void
test_digest_matches_writer(void **state)
{
	struct mbox_entry v[sizeof samples / sizeof samples[0]];
	static const size_t steps[] = { 0, 1, 2, 5, 7, 64 };
	size_t n = sizeof samples / sizeof samples[0];
	uint8_t d[MBOX_DIGEST_LEN];
	char path[PATH_MAX];
	uint64_t mid;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "digest.mbox");
	write_samples(path, NULL, v);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
			digest_of(&samples[i], steps[k], d, &mid);
			if (memcmp(d, v[i].digest, MBOX_DIGEST_LEN) != 0)
				fail_msg("%s: step %zu: digest differs",
				    samples[i].name, steps[k]);
			assert_true(mid == v[i].message_id_hash);
		}
	}
	/* Different messages, different digests. */
	assert_memory_not_equal(v[0].digest, v[1].digest, MBOX_DIGEST_LEN);
	/* CRLF and LF give the same entry, hence the same digest. */
	{
		const struct sample a = S("a", "S: x\r\n\r\nb\r\n");
		const struct sample b = S("b", "S: x\n\nb\n");
		uint8_t da[MBOX_DIGEST_LEN], db[MBOX_DIGEST_LEN];

		digest_of(&a, 1, da, NULL);
		digest_of(&b, 0, db, NULL);
		assert_memory_equal(da, db, MBOX_DIGEST_LEN);
	}
	/* The empty message: its entry after the From_ line is one LF. */
	{
		uint8_t want[MBOX_DIGEST_LEN];

		sha256("\n", 1, want);
		assert_memory_equal(v[3].digest, want, MBOX_DIGEST_LEN);
	}
}

static void
test_message_id_hash(void **state)
{
	struct mbox_entry v[sizeof samples / sizeof samples[0]];
	char path[PATH_MAX];
	uint64_t one, folded;

	(void)state;
	one = mbox_message_id_hash("<one@x>", 7);
	assert_true(one != 0);
	assert_true(mbox_message_id_hash(" \t<one@x>\r\n", 11) == one);
	assert_true(mbox_message_id_hash("<one@x> (a comment)", 19) == one);
	assert_true(mbox_message_id_hash("<two@x>", 7) != one);
	assert_true(mbox_message_id_hash("", 0) == 0);
	assert_true(mbox_message_id_hash("  \r\n ", 5) == 0);
	folded = mbox_message_id_hash("<folded@example.org>", 20);

	testdir_path(path, sizeof path, tmpdir, "mid.mbox");
	write_samples(path, NULL, v);
	assert_true(v[0].message_id_hash == one);
	/* Name in any case, value folded onto the next line. */
	assert_true(v[4].message_id_hash == folded);
	assert_true(v[1].message_id_hash == 0);
	assert_true(v[3].message_id_hash == 0);
}

static void
check_scan(const char *path, const struct mbox_entry *v, size_t n,
    uint64_t skipped)
{
	struct mbox_scan *s;
	struct mbox_scan_entry e;
	struct stat st;
	char *error = NULL;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(mbox_scan_open(path, (uint64_t)st.st_size, &s,
	    &error), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(mbox_scan_next(s, &e, &error), 1);
		assert_int_equal(e.skipped, i == 0 ? skipped : 0);
		assert_int_equal(e.entry.offset, v[i].offset);
		assert_int_equal(e.entry.length, v[i].length);
		assert_memory_equal(e.entry.digest, v[i].digest,
		    MBOX_DIGEST_LEN);
		assert_true(e.entry.message_id_hash == v[i].message_id_hash);
		assert_true(e.date == DATE_SUN_NOV_1);
	}
	assert_int_equal(mbox_scan_next(s, &e, &error), 0);
	mbox_scan_close(&s);
	assert_null(s);
}

static void
test_scan_finds_written_entries(void **state)
{
	struct mbox_entry v[sizeof samples / sizeof samples[0]];
	size_t n = sizeof samples / sizeof samples[0];
	struct mbox_scan *s;
	struct mbox_scan_entry e;
	char path[PATH_MAX], *error = NULL;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "scan.mbox");
	write_samples(path, NULL, v);
	check_scan(path, v, n, 0);

	/* The size as a server counts it: LF as CRLF, quoting undone. */
	assert_int_equal(mbox_scan_open(path, v[0].offset + v[0].length +
	    v[1].length, &s, &error), 0);
	assert_int_equal(mbox_scan_next(s, &e, &error), 1);
	assert_int_equal(e.message_size, samples[0].len);
	assert_int_equal(mbox_scan_next(s, &e, &error), 1);
	assert_int_equal(e.message_size, samples[1].len);
	/* Stops at the size given. */
	assert_int_equal(mbox_scan_next(s, &e, &error), 0);
	mbox_scan_close(&s);
}

static void
test_scan_foreign_bytes(void **state)
{
	struct mbox_entry v[sizeof samples / sizeof samples[0]];
	size_t n = sizeof samples / sizeof samples[0];
	static const char foreign[] = "some junk\nFrom not an entry\nend";
	char path[PATH_MAX], *error = NULL;
	struct mbox_scan *s;
	struct mbox_scan_entry e;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "foreign.mbox");
	write_samples(path, foreign, v);
	/* The writer padded with two LFs, which belong to no entry. */
	assert_int_equal(v[0].offset, sizeof foreign - 1 + 2);
	check_scan(path, v, n, sizeof foreign - 1 + 2);

	/* A file with no entry at all. */
	testdir_path(path, sizeof path, tmpdir, "none.mbox");
	{
		int fd = open(path, O_WRONLY | O_CREAT, 0600);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, foreign, sizeof foreign - 1),
		    (ssize_t)(sizeof foreign - 1));
		close(fd);
	}
	assert_int_equal(mbox_scan_open(path, sizeof foreign - 1, &s,
	    &error), 0);
	assert_int_equal(mbox_scan_next(s, &e, &error), 0);
	assert_int_equal(e.skipped, sizeof foreign - 1);
	mbox_scan_close(&s);

	/* A size past the end is an error, not a hang. */
	assert_int_equal(mbox_scan_open(path, 1000, &s, &error), 0);
	assert_int_equal(mbox_scan_next(s, &e, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, path));
	free(error);
	mbox_scan_close(&s);

	/* No such file. */
	error = NULL;
	testdir_path(path, sizeof path, tmpdir, "missing.mbox");
	assert_int_equal(mbox_scan_open(path, 0, &s, &error), -1);
	assert_null(s);
	assert_non_null(error);
	free(error);
}

/* Another program's From_ line longer than the bytes kept of it: its date
 * still comes from its end, and nothing past what was read is looked at. */
static void
test_scan_long_from_line(void **state)
{
	static const char date[] = " Sun Nov  1 09:05:03 2026\n";
	char path[PATH_MAX], *error = NULL, *line;
	struct mbox_scan *s;
	struct mbox_scan_entry e;
	size_t n = 3000;
	int fd;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "long-from.mbox");
	line = malloc(n + sizeof date + 32);
	assert_non_null(line);
	memcpy(line, "From ", 5);
	memset(line + 5, 'x', n - 5);
	memcpy(line + n, date, sizeof date);
	strcat(line, "Subject: s\n\nbody\n\n");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	close(fd);
	assert_int_equal(mbox_scan_open(path, strlen(line), &s, &error), 0);
	assert_int_equal(mbox_scan_next(s, &e, &error), 1);
	assert_int_equal(e.entry.offset, 0);
	assert_int_equal(e.entry.length, strlen(line));
	assert_int_equal(e.date, DATE_SUN_NOV_1);
	assert_int_equal(mbox_scan_next(s, &e, &error), 0);
	mbox_scan_close(&s);
	free(line);
}

static int
group_setup(void **state)
{
	(void)state;
	return testdir_make(tmpdir, sizeof tmpdir, "test_mbox_digest");
}

static int
group_teardown(void **state)
{
	(void)state;
	testdir_remove(tmpdir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writer_entries_match_file),
		cmocka_unit_test(test_digest_matches_writer),
		cmocka_unit_test(test_message_id_hash),
		cmocka_unit_test(test_scan_finds_written_entries),
		cmocka_unit_test(test_scan_foreign_bytes),
		cmocka_unit_test(test_scan_long_from_line),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
