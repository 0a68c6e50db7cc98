/*
 * Layout: the walk below output never goes through a symlink (also one
 * swapped in during the walk), every directory change is fsynced before the
 * call returns, and names a folding file system would merge get files of
 * their own.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testdir.h"

#include "mirror/layout.h"

static char tmpdir[64];
static int dir_seq;

/* What the fsync hook saw: the inode of each directory synced, in order. */
#define MAX_SYNCS 16
static ino_t synced[MAX_SYNCS];
static int n_synced;
static int fail_sync_at = -1;		/* this call fails with EIO */
static int act_at = -1;			/* after this call, run act */
static void (*act)(void);

static int
hook_fsync(int fd)
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
	if (i == act_at)
		act();
	return 0;
}

static const struct layout_sys_ops hook_ops = {
	.fsync = hook_fsync,
};

static int
setup(void **state)
{
	(void)state;
	n_synced = 0;
	fail_sync_at = act_at = -1;
	layout_set_sys_ops(&hook_ops);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	layout_set_sys_ops(NULL);
	return 0;
}

static void fmt(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* snprintf that must not cut. */
static void
fmt(char *buf, size_t size, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, size, f, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < size);
}

/* error is set and says what. */
static void
assert_error_has(const char *error, const char *what)
{
	assert_non_null(error);
	if (strstr(error, what) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", error, what);
}

static void
fresh_dir(char *buf, size_t size, const char *name)
{
	fmt(buf, size, "%s/%d-%s", tmpdir, ++dir_seq, name);
	assert_int_equal(mkdir(buf, 0700), 0);
}

static ino_t
ino_of(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	fmt(path, sizeof path, "%s/%s", dir, rel);
	assert_int_equal(lstat(path, &st), 0);
	return st.st_ino;
}

static bool
exists(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	fmt(path, sizeof path, "%s/%s", dir, rel);
	return lstat(path, &st) == 0;
}

static void
touch(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	int fd;

	fmt(path, sizeof path, "%s/%s", dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

static int
count_entries(const char *dir)
{
	char cmd[PATH_MAX + 32];
	FILE *p;
	int n = -1;

	fmt(cmd, sizeof cmd, "find '%s' -mindepth 1 | wc -l", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

/* Parents made 0700, each one's parent fsynced; a new file's directory
 * fsynced once it is opened, an old file's not. */
static void
test_parents_made_and_synced(void **state)
{
	char out[PATH_MAX], path[PATH_MAX];
	struct layout_file *lf;
	char *error = NULL;
	struct stat st;
	int fd;

	(void)state;
	fresh_dir(out, sizeof out, "parents");
	assert_int_equal(layout_file_open(out, "a/b/c.mbox", &lf, &error), 0);
	assert_null(error);
	fmt(path, sizeof path, "%s/a/b/c.mbox", out);
	assert_string_equal(layout_file_path(lf), path);
	fmt(path, sizeof path, "%s/a/b", out);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* mkdir a: out synced; mkdir a/b: a synced; before the return. */
	assert_int_equal(n_synced, 2);
	assert_true(synced[0] == ino_of(out, "."));
	assert_true(synced[1] == ino_of(out, "a"));

	fd = open(layout_file_path(lf), O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(layout_file_opened(lf, &error), 0);
	assert_int_equal(n_synced, 3);
	assert_true(synced[2] == ino_of(out, "a/b"));
	/* Once is enough. */
	assert_int_equal(layout_file_opened(lf, &error), 0);
	assert_int_equal(n_synced, 3);
	layout_file_free(&lf);
	assert_null(lf);

	/* All there already: nothing to make durable. */
	assert_int_equal(layout_file_open(out, "a/b/c.mbox", &lf, &error), 0);
	assert_int_equal(layout_file_opened(lf, &error), 0);
	assert_int_equal(n_synced, 3);
	layout_file_free(&lf);

	/* A file directly in output: output is its directory. */
	assert_int_equal(layout_file_open(out, "INBOX.mbox", &lf, &error), 0);
	touch(out, "INBOX.mbox");
	assert_int_equal(layout_file_opened(lf, &error), 0);
	assert_int_equal(n_synced, 4);
	assert_true(synced[3] == ino_of(out, "."));
	layout_file_free(&lf);
}

/* A failed fsync fails the call, saying what it was about. */
static void
test_sync_failures(void **state)
{
	char out[PATH_MAX];
	struct layout_file *lf;
	char *error = NULL;

	(void)state;
	fresh_dir(out, sizeof out, "syncfail");
	fail_sync_at = 0;
	assert_int_equal(layout_file_open(out, "a/x.mbox", &lf, &error), -1);
	assert_null(lf);
	assert_error_has(error, "/a");
	assert_error_has(error, strerror(EIO));
	free(error);

	n_synced = 0;
	fail_sync_at = 0;
	assert_int_equal(layout_file_open(out, "a/x.mbox", &lf, &error), 0);
	assert_int_equal(n_synced, 0);		/* a exists now */
	touch(out, "a/x.mbox");
	assert_int_equal(layout_file_opened(lf, &error), -1);
	assert_error_has(error, "a/x.mbox");
	free(error);
	layout_file_free(&lf);
}

/* A symlink where a directory should be: refused, nothing made through it. */
static void
test_symlink_parent_refused(void **state)
{
	char out[PATH_MAX], elsewhere[PATH_MAX], link[PATH_MAX + 8];
	struct layout_file *lf;
	char *error = NULL, *to;

	(void)state;
	fresh_dir(out, sizeof out, "symout");
	fresh_dir(elsewhere, sizeof elsewhere, "symelsewhere");
	fmt(link, sizeof link, "%s/a", out);
	assert_int_equal(symlink(elsewhere, link), 0);

	assert_int_equal(layout_file_open(out, "a/b/x.mbox", &lf, &error), -1);
	assert_null(lf);
	assert_error_has(error, link);
	assert_error_has(error, "symlink");
	free(error);
	assert_int_equal(count_entries(elsewhere), 0);

	/* Deeper down too. */
	assert_int_equal(unlink(link), 0);
	assert_int_equal(mkdir(link, 0700), 0);
	fmt(link, sizeof link, "%s/a/b", out);
	assert_int_equal(symlink(elsewhere, link), 0);
	assert_int_equal(layout_file_open(out, "a/b/c/x.mbox", &lf, &error),
	    -1);
	free(error);
	assert_int_equal(count_entries(elsewhere), 0);

	/* And nothing is moved aside through one. */
	touch(elsewhere, "x.mbox");
	assert_int_equal(layout_keep_aside(out, "a/b/x.mbox", "t", &to,
	    &error), -1);
	free(error);
	assert_true(exists(elsewhere, "x.mbox"));
	assert_int_equal(count_entries(elsewhere), 1);
}

static char swap_out[PATH_MAX], swap_elsewhere[PATH_MAX];

/* Puts a symlink to elsewhere in the place of out/a, as an attacker racing
 * the walk would. */
static void
swap_in_symlink(void)
{
	char a[PATH_MAX + 8], moved[PATH_MAX + 16];

	fmt(a, sizeof a, "%s/a", swap_out);
	fmt(moved, sizeof moved, "%s/moved", swap_out);
	assert_int_equal(rename(a, moved), 0);
	assert_int_equal(symlink(swap_elsewhere, a), 0);
}

/*
 * out/a swapped for a symlink to a tree that has a "b" as well, right after
 * the walk made out/a/b: the walk goes on in the directory it holds, never
 * through the symlink, and the path, which no longer leads there, is
 * refused.
 */
static void
test_swapped_parent_refused(void **state)
{
	char b[PATH_MAX + 8];
	struct layout_file *lf;
	char *error = NULL;

	(void)state;
	fresh_dir(swap_out, sizeof swap_out, "swapout");
	fresh_dir(swap_elsewhere, sizeof swap_elsewhere, "swapelsewhere");
	fmt(b, sizeof b, "%s/b", swap_elsewhere);
	assert_int_equal(mkdir(b, 0700), 0);
	act_at = 1;		/* the fsync of out/a after mkdir out/a/b */
	act = swap_in_symlink;
	assert_int_equal(layout_file_open(swap_out, "a/b/c/x.mbox", &lf,
	    &error), -1);
	assert_null(lf);
	assert_int_equal(count_entries(swap_elsewhere), 1);	/* b alone */
	assert_true(exists(swap_out, "moved/b/c"));
	assert_error_has(error, "replaced");
	free(error);
}

/* A file or a FIFO in the way of a directory. */
static void
test_not_a_directory(void **state)
{
	char out[PATH_MAX], fifo[PATH_MAX + 8];
	struct layout_file *lf;
	char *error = NULL, *to;

	(void)state;
	fresh_dir(out, sizeof out, "notdir");
	touch(out, "Archive");
	assert_int_equal(layout_file_open(out, "Archive/2023.mbox", &lf,
	    &error), -1);
	assert_error_has(error, "/Archive");
	assert_error_has(error, strerror(ENOTDIR));
	free(error);
	assert_int_equal(layout_keep_aside(out, "Archive/2023.mbox", "t", &to,
	    &error), -1);
	assert_error_has(error, "/Archive");
	free(error);

	fmt(fifo, sizeof fifo, "%s/Fifo", out);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(layout_file_open(out, "Fifo/x.mbox", &lf, &error),
	    -1);
	assert_error_has(error, fifo);
	free(error);
	assert_int_equal(n_synced, 0);
}

/* Paths that names_mbox_path() never makes are refused, not resolved. */
static void
test_bad_paths(void **state)
{
	static const char *const bad[] = {
		"../x.mbox", "a/../../x.mbox", "/abs.mbox", "a//b.mbox",
		"./x.mbox", "a/./b.mbox", "a/..", "", "a/",
	};
	char out[PATH_MAX];
	struct layout_file *lf;
	char *error = NULL, *to;

	(void)state;
	fresh_dir(out, sizeof out, "bad");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(layout_file_open(out, bad[i], &lf, &error),
		    -1);
		assert_error_has(error, "not a path below");
		free(error);
		assert_int_equal(layout_keep_aside(out, bad[i], "t", &to,
		    &error), -1);
		free(error);
	}
	assert_int_equal(count_entries(out), 0);
}

/* Renamed in its directory, never over a file, and the directory fsynced
 * after the rename, before the return. */
static void
test_keep_aside(void **state)
{
	char out[PATH_MAX], want[PATH_MAX + 32];
	char *error = NULL, *to;

	(void)state;
	fresh_dir(out, sizeof out, "aside");
	fmt(want, sizeof want, "%s/d", out);
	assert_int_equal(mkdir(want, 0700), 0);
	touch(out, "d/x.mbox");
	assert_int_equal(layout_keep_aside(out, "d/x.mbox", "uidvalidity-7",
	    &to, &error), 0);
	fmt(want, sizeof want, "%s/d/x.uidvalidity-7.mbox", out);
	assert_string_equal(to, want);
	free(to);
	assert_false(exists(out, "d/x.mbox"));
	assert_true(exists(out, "d/x.uidvalidity-7.mbox"));
	assert_int_equal(n_synced, 1);
	assert_true(synced[0] == ino_of(out, "d"));

	/* Again: the first name is taken, the old file stays. */
	touch(out, "d/x.mbox");
	assert_int_equal(layout_keep_aside(out, "d/x.mbox", "uidvalidity-7",
	    &to, &error), 0);
	fmt(want, sizeof want, "%s/d/x.uidvalidity-7-2.mbox", out);
	assert_string_equal(to, want);
	free(to);
	assert_true(exists(out, "d/x.uidvalidity-7.mbox"));
	assert_int_equal(n_synced, 2);

	/* Nothing to move: no file, or no directory (none is made). */
	assert_int_equal(layout_keep_aside(out, "d/x.mbox", "t", &to, &error),
	    0);
	assert_null(to);
	assert_int_equal(layout_keep_aside(out, "e/f/x.mbox", "t", &to,
	    &error), 0);
	assert_null(to);
	assert_null(error);
	assert_false(exists(out, "e"));
	assert_int_equal(n_synced, 2);

	/* The fsync fails: so does the call. */
	touch(out, "d/x.mbox");
	fail_sync_at = 2;
	assert_int_equal(layout_keep_aside(out, "d/x.mbox", "t", &to, &error),
	    -1);
	assert_error_has(error, "d/x.mbox");
	assert_error_has(error, strerror(EIO));
	free(error);
}

/* A mirror below output is found; empty files, other names, symlinks and
 * a missing output are not a mirror. */
static void
test_find_mbox(void **state)
{
	char out[PATH_MAX], path[PATH_MAX + 32], *rel, *error;

	(void)state;
	fresh_dir(out, sizeof out, "find");
	fmt(path, sizeof path, "%s/none", out);
	assert_int_equal(layout_find_mbox(path, &rel, &error), 0);
	assert_null(rel);
	assert_int_equal(layout_find_mbox(out, &rel, &error), 0);

	fmt(path, sizeof path, "%s/INBOX.mbox", out);
	assert_int_equal(close(open(path, O_WRONLY | O_CREAT, 0600)), 0);
	touch(out, "notes.txt");
	touch(out, "x.mbox.lock");
	fmt(path, sizeof path, "%s/d", out);
	assert_int_equal(mkdir(path, 0700), 0);
	fmt(path, sizeof path, "%s/d/e", out);
	assert_int_equal(mkdir(path, 0700), 0);
	fmt(path, sizeof path, "%s/elsewhere", tmpdir);
	(void)mkdir(path, 0700);
	touch(tmpdir, "elsewhere/y.mbox");
	fmt(path, sizeof path, "%s/link", out);
	assert_int_equal(symlink("../elsewhere", path), 0);
	fmt(path, sizeof path, "%s/link.mbox", out);
	assert_int_equal(symlink("../elsewhere/y.mbox", path), 0);
	assert_int_equal(layout_find_mbox(out, &rel, &error), 0);
	assert_null(error);

	touch(out, "d/e/2023.mbox");
	assert_int_equal(layout_find_mbox(out, &rel, &error), 1);
	assert_string_equal(rel, "d/e/2023.mbox");
	free(rel);
	/* No fsync: it only looks. */
	assert_int_equal(n_synced, 0);
}

/* output and its missing parents: 0700, each parent fsynced. */
static void
test_make_output(void **state)
{
	char top[PATH_MAX], out[PATH_MAX + 16], mid[PATH_MAX + 16];
	struct stat st;

	(void)state;
	fresh_dir(top, sizeof top, "output");
	fmt(out, sizeof out, "%s/o1/o2/", top);
	assert_int_equal(layout_make_output(out), 0);
	fmt(mid, sizeof mid, "%s/o1", top);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(n_synced, 2);
	assert_true(synced[0] == ino_of(top, "."));
	assert_true(synced[1] == ino_of(mid, "."));
	assert_int_equal(layout_make_output(out), 0);
	assert_int_equal(n_synced, 2);

	fmt(out, sizeof out, "%s/o3", top);
	fail_sync_at = 2;
	assert_int_equal(layout_make_output(out), -1);
	assert_int_equal(errno, EIO);
}

static void
test_same_file(void **state)
{
	static const struct {
		const char *a, *b;
		bool same;
	} t[] = {
		{ "Work.mbox", "work.mbox", true },
		{ "WORK/x.mbox", "work/X.mbox", true },
		{ "Work.mbox", "Work.2.mbox", false },
		{ "Work.mbox", "Wor.mbox", false },
		{ "Caf\xc3\xa9.mbox", "Cafe\xcc\x81.mbox", true },	/* NFC, NFD */
		{ "CAF\xc3\x89.mbox", "cafe\xcc\x81.mbox", true },
		{ "Caf\xc3\xa9.mbox", "Cafe.mbox", false },
		{ "\xc3\x85ngstr\xc3\xb6m", "A\xcc\x8angstro\xcc\x88m", true },
		{ "\xce\xa3\xce\xbf\xcf\x86\xce\xaf\xce\xb1",	/* Σοφία */
		  "\xcf\x83\xce\xbf\xcf\x86\xce\xb9\xcc\x81\xce\xb1", true },
		{ "\xd0\x9f\xd0\xa0\xd0\x98\xd0\x92\xd0\x95\xd0\xa2", /* ПРИВЕТ */
		  "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", true },
		{ "Vi\xe1\xbb\x86t", "vie\xcc\xa3\xcc\x82t", true },	/* Việt */
		{ "%C3%A9.mbox", "%c3%a9.mbox", true },
		/* Not UTF-8: each byte only equals itself. */
		{ "\xc3.mbox", "\xc3.mbox", true },
		{ "\xc3.mbox", "\xe3.mbox", false },
		{ "\xc0\x81", "A", false },
		{ "", "", true },
		{ "a", "", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (layout_same_file(t[i].a, t[i].b) != t[i].same ||
		    layout_same_file(t[i].b, t[i].a) != t[i].same)
			fail_msg("case %zu: \"%s\" \"%s\" should%s be the same",
			    i, t[i].a, t[i].b, t[i].same ? "" : " not");
	}
}

static void
test_unique_file(void **state)
{
	struct mailbox_state mbs[] = {
		{ .name = "Work", .file = "Work.mbox" },
		{ .name = "x", .file = "Caf\xc3\xa9.mbox" },
		{ .name = "new" },
		{ .name = "y", .file = "a/b.2.mbox" },
		{ .name = "z", .file = "A/B.mbox" },
	};
	struct account_state st = { .mailboxes = mbs, .n_mailboxes = 5 };
	char *f;

	(void)state;
	assert_int_equal(layout_unique_file(&st, &mbs[2], "work.mbox", &f), 0);
	assert_string_equal(f, "work.2.mbox");
	free(f);
	assert_int_equal(layout_unique_file(&st, &mbs[2], "Cafe\xcc\x81.mbox",
	    &f), 0);
	assert_string_equal(f, "Cafe\xcc\x81.2.mbox");
	free(f);
	/* b.2 is taken (by case) as well: on to 3. */
	assert_int_equal(layout_unique_file(&st, &mbs[2], "a/b.mbox", &f), 0);
	assert_string_equal(f, "a/b.3.mbox");
	free(f);
	/* A mailbox keeps its own file. */
	assert_int_equal(layout_unique_file(&st, &mbs[0], "Work.mbox", &f), 0);
	assert_string_equal(f, "Work.mbox");
	free(f);
	assert_int_equal(layout_unique_file(&st, &mbs[2], "Other.mbox", &f),
	    0);
	assert_string_equal(f, "Other.mbox");
	free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parents_made_and_synced,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_failures, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_symlink_parent_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_swapped_parent_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_directory, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_paths, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_keep_aside, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_make_output, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_find_mbox, setup,
		    teardown),
		cmocka_unit_test(test_same_file),
		cmocka_unit_test(test_unique_file),
	};
	int rc;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_layout.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	testdir_remove(tmpdir);
	return rc;
}
