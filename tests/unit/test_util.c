/*
 * util: strict decimal numbers, FNV-1a, strict UTF-8, and directories made
 * durably (every directory made is followed by an fsync of its parent).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testdir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/nameindex.h"
#include "util/num.h"
#include "util/utf8.h"

static char tmpdir[PATH_MAX];

static void
test_num(void **state)
{
	static const struct {
		const char *text;
		uint64_t max;
		int rc;
		uint64_t value;
	} t[] = {
		{ "0", 10, 0, 0 },
		{ "007", 10, 0, 7 },
		{ "10", 10, 0, 10 },
		{ "11", 10, -1, 0 },
		{ "4294967295", UINT32_MAX, 0, UINT32_MAX },
		{ "4294967296", UINT32_MAX, -1, 0 },
		{ "18446744073709551615", UINT64_MAX, 0, UINT64_MAX },
		{ "18446744073709551616", UINT64_MAX, -1, 0 },
		{ "99999999999999999999999", UINT64_MAX, -1, 0 },
		/* What strtoul(3) would take. */
		{ "", UINT64_MAX, -1, 0 },
		{ " 1", UINT64_MAX, -1, 0 },
		{ "1 ", UINT64_MAX, -1, 0 },
		{ "+1", UINT64_MAX, -1, 0 },
		{ "-1", UINT64_MAX, -1, 0 },
		{ "0x10", UINT64_MAX, -1, 0 },
		{ "1a", UINT64_MAX, -1, 0 },
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		v = 12345;
		assert_int_equal(num_parse_u64(t[i].text, t[i].max, &v),
		    t[i].rc);
		assert_true(v == (t[i].rc == 0 ? t[i].value : 12345));
	}
	/* Only the len bytes count. */
	assert_int_equal(num_parse_u64n("123x", 3, UINT64_MAX, &v), 0);
	assert_true(v == 123);
	assert_int_equal(num_parse_u64n("123", 0, UINT64_MAX, &v), -1);
	assert_int_equal(num_parse_u64n("12\0003", 4, UINT64_MAX, &v), -1);
}

/* The published FNV-1a 64 test vectors; file names on disk depend on
 * them. */
static void
test_fnv1a64(void **state)
{
	(void)state;
	assert_true(hash_fnv1a64("", 0) == 0xcbf29ce484222325ULL);
	assert_true(hash_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
	assert_true(hash_fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
	/* Length, not NUL, ends the input. */
	assert_true(hash_fnv1a64("a\0", 2) != hash_fnv1a64("a", 1));
}

static void
test_utf8_decode(void **state)
{
	static const struct {
		const char *s;
		size_t len, n;
		uint32_t cp;
	} t[] = {
		{ "A", 1, 1, 'A' },
		{ "\0", 1, 1, 0 },
		{ "\xc2\x80", 2, 2, 0x80 },
		{ "\xdf\xbf", 2, 2, 0x7ff },
		{ "\xe0\xa0\x80", 3, 3, 0x800 },
		{ "\xed\x9f\xbf", 3, 3, 0xd7ff },
		{ "\xee\x80\x80", 3, 3, 0xe000 },
		{ "\xef\xbf\xbf", 3, 3, 0xffff },
		{ "\xf0\x90\x80\x80", 4, 4, 0x10000 },
		{ "\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff },
		{ "\xc3\xa9x", 3, 2, 0xe9 },
		/* Not strict UTF-8. */
		{ "", 0, 0, 0 },
		{ "\x80", 1, 0, 0 },			/* continuation */
		{ "\xc0\x80", 2, 0, 0 },		/* overlong NUL */
		{ "\xc1\xbf", 2, 0, 0 },		/* overlong */
		{ "\xe0\x9f\xbf", 3, 0, 0 },		/* overlong */
		{ "\xf0\x8f\xbf\xbf", 4, 0, 0 },	/* overlong */
		{ "\xed\xa0\x80", 3, 0, 0 },		/* surrogate */
		{ "\xed\xbf\xbf", 3, 0, 0 },		/* surrogate */
		{ "\xf4\x90\x80\x80", 4, 0, 0 },	/* above U+10FFFF */
		{ "\xf5\x80\x80\x80", 4, 0, 0 },
		{ "\xff", 1, 0, 0 },
		{ "\xc3", 1, 0, 0 },			/* truncated */
		{ "\xe2\x82", 2, 0, 0 },
		{ "\xe2\x82\xac", 2, 0, 0 },		/* cut by len */
		{ "\xe2\x28\xac", 3, 0, 0 },		/* bad continuation */
	};
	uint32_t cp;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cp = 0xdeadbeef;
		n = utf8_decode((const unsigned char *)t[i].s, t[i].len, &cp);
		if (n != t[i].n)
			fail_msg("case %zu: length %zu, not %zu", i, n,
			    t[i].n);
		assert_true(cp == (n > 0 ? t[i].cp : 0xdeadbeef));
	}
	assert_true(utf8_valid("", 0));
	assert_true(utf8_valid("Caf\xc3\xa9 \xe2\x82\xac", 9));
	assert_false(utf8_valid("Caf\xc3", 4));
	assert_false(utf8_valid("\xed\xa0\x80", 3));
}

/* Every code point that is not a surrogate survives encode then decode. */
static void
test_utf8_round_trip(void **state)
{
	char buf[4];
	uint32_t cp, back;
	size_t n;

	(void)state;
	for (cp = 0; cp <= 0x10ffff; cp++) {
		if (cp == 0xd800)
			cp = 0xe000;
		n = utf8_encode(cp, buf);
		assert_true(n == (cp < 0x80 ? 1u : cp < 0x800 ? 2u :
		    cp < 0x10000 ? 3u : 4u));
		assert_int_equal(utf8_decode((unsigned char *)buf, n, &back),
		    n);
		assert_true(back == cp);
	}
}

/* What the fsync stand-in saw: the inode of each directory synced. */
#define MAX_SYNCS 16
static ino_t synced[MAX_SYNCS];
static int n_synced, fail_sync_at;

static int
record_fsync(int fd)
{
	struct stat st;
	int i = n_synced;

	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_true(n_synced < MAX_SYNCS);
	synced[n_synced++] = st.st_ino;
	if (i == fail_sync_at) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static ino_t
ino_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

static void
test_mkdirs(void **state)
{
	char top[PATH_MAX + 8], path[PATH_MAX + 32], mid[PATH_MAX + 32];
	struct stat st;
	mode_t old;

	(void)state;
	n_synced = 0;
	fail_sync_at = -1;
	snprintf(top, sizeof top, "%s/mk", tmpdir);
	assert_int_equal(mkdir(top, 0700), 0);
	snprintf(path, sizeof path, "%s//a/b/", top);
	snprintf(mid, sizeof mid, "%s/a", top);
	old = umask(022);
	assert_int_equal(fs_mkdirs(path, 0750, record_fsync), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	/* Each new directory's parent, in order; nothing for top. */
	assert_int_equal(n_synced, 2);
	assert_true(synced[0] == ino_of(top));
	assert_true(synced[1] == ino_of(mid));

	/* Nothing new, nothing synced. */
	assert_int_equal(fs_mkdirs(path, 0700, record_fsync), 0);
	assert_int_equal(n_synced, 2);

	/* A failed sync fails the call, before the next directory. */
	snprintf(path, sizeof path, "%s/c/d", top);
	fail_sync_at = 2;
	assert_int_equal(fs_mkdirs(path, 0700, record_fsync), -1);
	assert_int_equal(errno, EIO);
	assert_int_equal(n_synced, 3);
	assert_int_equal(stat(path, &st), -1);

	/* A file in the way. */
	snprintf(path, sizeof path, "%s/f", top);
	assert_int_equal(close(open(path, O_WRONLY | O_CREAT, 0600)), 0);
	snprintf(path, sizeof path, "%s/f/g", top);
	assert_int_equal(fs_mkdirs(path, 0700, record_fsync), -1);
	assert_int_equal(errno, ENOTDIR);

	errno = 0;
	assert_int_equal(fs_mkdirs("", 0700, record_fsync), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_sync_parent(void **state)
{
	char path[PATH_MAX + 32];

	(void)state;
	n_synced = 0;
	fail_sync_at = -1;
	snprintf(path, sizeof path, "%s/not-there-yet", tmpdir);
	assert_int_equal(fs_sync_parent(path, record_fsync), 0);
	assert_int_equal(fs_sync_parent("/etc", record_fsync), 0);
	assert_int_equal(fs_sync_dir(tmpdir, record_fsync), 0);
	assert_int_equal(n_synced, 3);
	assert_true(synced[0] == ino_of(tmpdir));
	assert_true(synced[1] == ino_of("/"));
	assert_true(synced[2] == ino_of(tmpdir));
	snprintf(path, sizeof path, "%s/no/such/file", tmpdir);
	assert_int_equal(fs_sync_parent(path, record_fsync), -1);
	assert_int_equal(errno, ENOENT);
	fail_sync_at = 3;
	assert_int_equal(fs_sync_dir(tmpdir, record_fsync), -1);
	assert_int_equal(errno, EIO);
}

/* Whole writes: at the file offset, at a given one, never at a negative
 * one; a bad descriptor is an error. */
static void
test_write_all(void **state)
{
	char path[PATH_MAX + 16], *data;
	size_t len;
	int fd;

	(void)state;
	snprintf(path, sizeof path, "%s/whole", tmpdir);
	assert_true((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	assert_int_equal(fs_write_all(fd, "hello, ", 7), 0);
	assert_int_equal(fs_write_all(fd, "world", 5), 0);
	assert_int_equal(fs_pwrite_all(fd, "W", 1, 7), 0);
	assert_int_equal(fs_pwrite_all(fd, "!", 1, 12), 0);
	assert_int_equal(fs_pwrite_all(fd, "x", 1, -1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(close(fd), 0);
	assert_non_null(data = (char *)testdir_read(path, &len));
	assert_int_equal(len, 13);
	assert_memory_equal(data, "hello, World!", 13);
	free(data);
	assert_int_equal(fs_write_all(-1, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(fs_pwrite_all(-1, "x", 1, 0), -1);
	assert_int_equal(errno, EBADF);
}

static char index_names[1000][16];

static const char *
index_name(size_t i, void *arg)
{
	(void)arg;
	return index_names[i];
}

/* Every name added is found at its position, through every growth of the
 * slots; names that differ by a byte or a length are not confused. */
static void
test_nameindex(void **state)
{
	struct nameindex x;
	size_t i, n = sizeof index_names / sizeof *index_names;

	(void)state;
	nameindex_init(&x, index_name, NULL);
	assert_true(nameindex_find(&x, "a", 1) == SIZE_MAX);
	for (i = 0; i < n; i++) {
		snprintf(index_names[i], sizeof index_names[i], "box%zu", i);
		assert_int_equal(nameindex_add(&x, i), 0);
		assert_true(nameindex_find(&x, index_names[i],
		    strlen(index_names[i])) == i);
	}
	assert_true(x.n_slots >= 2 * n);
	for (i = 0; i < n; i++)
		assert_true(nameindex_find(&x, index_names[i],
		    strlen(index_names[i])) == i);
	assert_true(nameindex_find(&x, "box1", 3) == SIZE_MAX);
	assert_true(nameindex_find(&x, "box10000", 8) == SIZE_MAX);
	assert_true(nameindex_find(&x, "box1\0", 5) == SIZE_MAX);
	nameindex_free(&x);
	assert_true(nameindex_find(&x, "box1", 4) == SIZE_MAX);
}

/* s as json_string() writes it. */
static char *
json_of(const char *s)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	assert_non_null(out = open_memstream(&text, &len));
	json_string(out, s);
	assert_int_equal(fclose(out), 0);
	return text;
}

/* A JSON document must be UTF-8: a name from a server that is not (a
 * mailbox name that is no modified UTF-7 is shown as its raw bytes) gets
 * U+FFFD for each byte that is no character; C1 controls are escaped. */
static void
test_json_string(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "plain", "\"plain\"" },
		{ "a\"b\\c", "\"a\\\"b\\\\c\"" },
		{ "tab\there\x1b[2J", "\"tab\\u0009here\\u001b[2J\"" },
		{ "caf\xc3\xa9 \xe2\x82\xac", "\"caf\xc3\xa9 \xe2\x82\xac\"" },
		{ "bad\xff\xfe", "\"bad\\ufffd\\ufffd\"" },
		{ "cut\xe2\x82", "\"cut\\ufffd\\ufffd\"" },
		{ "over\xc0\xaf", "\"over\\ufffd\\ufffd\"" },
		{ "csi\xc2\x9b" "1m", "\"csi\\u009b1m\"" },
		{ "del\x7f", "\"del\\u007f\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *got = json_of(cases[i].in);

		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: %s, expected %s", i, got,
			    cases[i].want);
		free(got);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_num),
		cmocka_unit_test(test_fnv1a64),
		cmocka_unit_test(test_utf8_decode),
		cmocka_unit_test(test_utf8_round_trip),
		cmocka_unit_test(test_mkdirs),
		cmocka_unit_test(test_sync_parent),
		cmocka_unit_test(test_write_all),
		cmocka_unit_test(test_nameindex),
		cmocka_unit_test(test_json_string),
	};
	int rc;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_util.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	testdir_remove(tmpdir);
	return rc;
}
