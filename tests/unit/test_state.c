/*
 * State store: round trips with hostile names, corrupt files reported as
 * file:line, permissions and the atomic replace.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
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

#include "log.h"
#include "mirror/state.h"

static char tmpdir[64];

static void
write_file(const char *dir, const char *name, const char *data)
{
	char path[PATH_MAX];
	FILE *fp;

	if (mkdir(dir, 0700) == -1)
		assert_int_equal(errno, EEXIST);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	/* A fresh file: truncating one in place makes ext4 flush it. */
	if (unlink(path) == -1)
		assert_int_equal(errno, ENOENT);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(data, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static const char *const odd_names[] = {
	"INBOX",
	"",
	"-",
	"with\ttab",
	"with\nnewline and\r\n crlf",
	"100%",
	"%41 not an escape",
	"caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac",
	"\x01\x02\x7f\x80\xff",
	" leading and trailing ",
	"Archive/2023/../..",
	"mailbox\tuidvalidity=1\tlast_uid=2",
};

static void
test_round_trip(void **state)
{
	struct account_state st, got;
	struct mailbox_state *mb;
	char dir[PATH_MAX], file[64], *error = NULL;
	size_t i, n = sizeof odd_names / sizeof odd_names[0];

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "rt");
	memset(&st, 0, sizeof st);
	for (i = 0; i < n; i++) {
		mb = state_get(&st, odd_names[i]);
		assert_non_null(mb);
		assert_string_equal(mb->name, odd_names[i]);
		mb->uidvalidity = (uint32_t)(i + 1) * 1000003u;
		mb->last_uid = i == 0 ? UINT32_MAX : (uint32_t)i;
		mb->uidnext = (uint32_t)i + 1;
		mb->messages = (uint32_t)i * 7;
		mb->mbox_size = i == 0 ? (uint64_t)INT64_MAX :
		    (uint64_t)i << 33;
		if (i % 3 != 0) {
			/* Odd but safe: spaces, '%', '-', 8-bit bytes. */
			snprintf(file, sizeof file, "d %zu/100%%/-/caf\xc3\xa9"
			    "/...x.mbox", i);
			mb->file = strdup(file);
		}
	}
	/* state_get finds, it does not add twice. */
	assert_ptr_equal(state_get(&st, "100%"), state_find(&st, "100%"));
	assert_int_equal(st.n_mailboxes, n);
	assert_null(state_find(&st, "absent"));
	st.last_attempt = 1793523903;
	st.last_success = 1793520000;
	st.next_attempt = 1793524803;
	st.failures = 3;
	state_set_error(&st, "login failed:\tbad\npassword 100%", "auth",
	    1793523904);
	assert_int_equal(st.last_error_time, 1793523904);

	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_null(error);
	memset(&got, 0, sizeof got);
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_null(error);

	assert_int_equal(got.n_mailboxes, n);
	for (i = 0; i < n; i++) {
		mb = state_find(&got, odd_names[i]);
		assert_non_null(mb);
		assert_int_equal(mb->uidvalidity, st.mailboxes[i].uidvalidity);
		assert_int_equal(mb->last_uid, st.mailboxes[i].last_uid);
		assert_int_equal(mb->uidnext, st.mailboxes[i].uidnext);
		assert_int_equal(mb->messages, st.mailboxes[i].messages);
		assert_true(mb->mbox_size == st.mailboxes[i].mbox_size);
		if (st.mailboxes[i].file == NULL)
			assert_null(mb->file);
		else
			assert_string_equal(mb->file, st.mailboxes[i].file);
	}
	assert_int_equal(got.last_attempt, st.last_attempt);
	assert_int_equal(got.last_success, st.last_success);
	assert_int_equal(got.last_error_time, st.last_error_time);
	assert_int_equal(got.next_attempt, st.next_attempt);
	assert_int_equal(got.failures, 3);
	assert_string_equal(got.last_error, st.last_error);
	assert_string_equal(got.last_error_kind, "auth");

	/* A cleared error and an empty one are not the same. */
	state_set_error(&st, NULL, NULL, 0);
	assert_null(st.last_error);
	assert_string_equal(st.last_error_kind, "");
	assert_int_equal(state_save(dir, &st, &error), 0);
	/* Loading replaces what got held. */
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_null(got.last_error);
	assert_int_equal(got.n_mailboxes, n);
	state_set_error(&st, "", NULL, 5);
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_non_null(got.last_error);
	assert_string_equal(got.last_error, "");

	state_clear(&got);
	assert_int_equal(got.n_mailboxes, 0);
	assert_null(got.mailboxes);
	state_clear(&st);
}

static void
test_missing_is_empty(void **state)
{
	struct account_state st;
	char dir[PATH_MAX], *error = NULL;

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "missing");
	memset(&st, 0, sizeof st);
	assert_non_null(state_get(&st, "stale"));
	assert_int_equal(state_load(dir, &st, &error), 0);
	assert_null(error);
	assert_int_equal(st.n_mailboxes, 0);
	assert_null(st.last_error);
	assert_int_equal(st.last_attempt, 0);
	/* Loading created nothing. */
	assert_int_equal(access(dir, F_OK), -1);
	state_clear(&st);
}

static const char header[] = "mboxmirror-state 1\n";
static const char account[] = "account\tlast_attempt=1\tlast_success=2\t"
    "last_error_time=3\tnext_attempt=4\tfailures=5\tlast_error=-\n";
static const char mailbox[] = "mailbox\tINBOX\tINBOX.mbox\tuidvalidity=1\t"
    "last_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\n";

static void
expect_corrupt(const char *content, int line, const char *what)
{
	struct account_state st;
	char dir[PATH_MAX], want[PATH_MAX + 32], *error = NULL;

	testdir_path(dir, sizeof dir, tmpdir, "corrupt");
	write_file(dir, "state", content);
	memset(&st, 0, sizeof st);
	assert_non_null(state_get(&st, "kept"));
	assert_int_equal(state_load(dir, &st, &error), -1);
	assert_non_null(error);
	snprintf(want, sizeof want, "%s/state:%d: ", dir, line);
	if (strncmp(error, want, strlen(want)) != 0 ||
	    (what != NULL && strstr(error, what) == NULL))
		fail_msg("error \"%s\", want \"%s%s\"", error, want,
		    what != NULL ? what : "");
	free(error);
	/* A failed load leaves the state as it was. */
	assert_int_equal(st.n_mailboxes, 1);
	assert_string_equal(st.mailboxes[0].name, "kept");
	state_clear(&st);
}


/* Whether the state file state_save() wrote in dir holds text. */
static bool
saved_state_has(const char *dir, const char *text)
{
	char path[PATH_MAX + 8];
	unsigned char *data;
	size_t len;
	bool has;

	snprintf(path, sizeof path, "%s/state", dir);
	assert_non_null(data = testdir_read(path, &len));
	data[len] = '\0';
	has = strstr((const char *)data, text) != NULL;
	free(data);
	return has;
}

/* Each of the n ends, after a mailbox line's mandatory fields, makes the
 * state corrupt at that line. */
static void
expect_mailbox_ends_corrupt(const char *const *ends, size_t n)
{
	char buf[1024];

	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "%s%smailbox\tINBOX\tINBOX.mbox\t"
		    "uidvalidity=1\tlast_uid=2\tuidnext=3\tmessages=4\t"
		    "mbox_size=5\t%s\nend\n", header, account, ends[i]);
		expect_corrupt(buf, 3, "mailbox line");
	}
}

static void
test_corrupt(void **state)
{
	char buf[1024];

	(void)state;
	/* The good file first, so the failures below are the edits. */
	{
		struct account_state st;
		char dir[PATH_MAX], *error = NULL;

		testdir_path(dir, sizeof dir, tmpdir, "good");
		snprintf(buf, sizeof buf, "%s%s%send\n", header, account,
		    mailbox);
		write_file(dir, "state", buf);
		memset(&st, 0, sizeof st);
		assert_int_equal(state_load(dir, &st, &error), 0);
		assert_int_equal(st.n_mailboxes, 1);
		assert_int_equal(st.mailboxes[0].mbox_size, 5);
		assert_int_equal(st.failures, 5);
		state_clear(&st);
	}

	expect_corrupt("", 1, "empty");
	expect_corrupt("hello\n", 1, "not an mboxmirror state file");
	expect_corrupt("mboxmirror-state 2\nwhatever\n", 1, "version 2");
	expect_corrupt("mboxmirror-state x\n", 1, "bad version");
	expect_corrupt("mboxmirror-state 1", 1, "no newline");
	snprintf(buf, sizeof buf, "%s%s%s", header, account, mailbox);
	expect_corrupt(buf, 4, "no end line");
	snprintf(buf, sizeof buf, "%s%send\nmailbox\n", header, account);
	expect_corrupt(buf, 4, "after the end");
	snprintf(buf, sizeof buf, "%s%s%s", header, account, "mailbox\tIN");
	expect_corrupt(buf, 3, "no newline");
	snprintf(buf, sizeof buf, "%s%s%send\n", header, account, account);
	expect_corrupt(buf, 3, "second account");
	snprintf(buf, sizeof buf, "%s%s%send\n", header, mailbox, mailbox);
	expect_corrupt(buf, 3, "twice");
	snprintf(buf, sizeof buf, "%sgarbage\t\x01\xff\nend\n", header);
	expect_corrupt(buf, 2, "unknown line");
	snprintf(buf, sizeof buf, "%smailbox\tINBOX\tf\tuidvalidity=1\n"
	    "end\n", header);
	expect_corrupt(buf, 2, "fields");
	snprintf(buf, sizeof buf, "%smailbox\tINBOX\tf\tuidvalidity=4294967296"
	    "\tlast_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\nend\n", header);
	expect_corrupt(buf, 2, "bad number");
	snprintf(buf, sizeof buf, "%smailbox\tINBOX\tf\tuidvalidity=-1"
	    "\tlast_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\nend\n", header);
	expect_corrupt(buf, 2, "bad number");
	snprintf(buf, sizeof buf, "%smailbox\tINBOX\tf\tlast_uid=2"
	    "\tuidvalidity=1\tuidnext=3\tmessages=4\tmbox_size=5\nend\n",
	    header);
	expect_corrupt(buf, 2, "unexpected field");
	snprintf(buf, sizeof buf, "%smailbox\tIN%%4\tf\tuidvalidity=1"
	    "\tlast_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\nend\n", header);
	expect_corrupt(buf, 2, "bad mailbox name");
	snprintf(buf, sizeof buf, "%smailbox\tIN%%00X\tf\tuidvalidity=1"
	    "\tlast_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\nend\n", header);
	expect_corrupt(buf, 2, "bad mailbox name");
	snprintf(buf, sizeof buf, "%smailbox\t-\tf\tuidvalidity=1"
	    "\tlast_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\nend\n", header);
	expect_corrupt(buf, 2, "bad mailbox name");
	snprintf(buf, sizeof buf, "%smailbox\tIN BOX\tf\tuidvalidity=1"
	    "\tlast_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\nend\n", header);
	expect_corrupt(buf, 2, "bad mailbox name");
	snprintf(buf, sizeof buf, "%saccount\tlast_attempt=1x\tlast_success=2"
	    "\tlast_error_time=3\tnext_attempt=4\tfailures=5\tlast_error=-\n"
	    "end\n", header);
	expect_corrupt(buf, 2, "bad time");
	snprintf(buf, sizeof buf, "%saccount\tlast_attempt=1\tlast_success=2"
	    "\tlast_error_time=3\tnext_attempt=4\tfailures=99999999999\t"
	    "last_error=-\nend\n", header);
	expect_corrupt(buf, 2, "failure count");
	snprintf(buf, sizeof buf, "%saccount\tlast_attempt=1\tlast_success=2"
	    "\tlast_error_time=3\tnext_attempt=4\tfailures=5\tlast_error=x"
	    "\tlast_error_kind=Net-work\nend\n", header);
	expect_corrupt(buf, 2, "bad last_error_kind");
	snprintf(buf, sizeof buf, "%saccount\tlast_attempt=1\tlast_success=2"
	    "\tlast_error_time=3\tnext_attempt=4\tfailures=5\tlast_error=x"
	    "\tlast_error_kind=tls\textra=1\nend\n", header);
	expect_corrupt(buf, 2, "wrong number of fields");
	/* More fields than any line may have: never read past them (the
	 * optional trailing fields are looked for from the end). */
	snprintf(buf, sizeof buf, "%smailbox\tINBOX\tf.mbox\tuidvalidity=1"
	    "\tlast_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\thole=0:0"
	    "\tskipped=0:-\tx\tx\tx\tx\tx\tx\tremapped=2-3\tx\tx\tx"
	    "\nend\n", header);
	expect_corrupt(buf, 2, "too many fields");
	snprintf(buf, sizeof buf, "%s%s%s%s%s", header, mailbox, mailbox,
	    "end\n", "");
	expect_corrupt(buf, 3, NULL);
}

/* The file field is a path under the output directory: a tampered one
 * that would leave it (or is no mbox) makes the state corrupt. */
static void
test_file_escapes(void **state)
{
	static const char *const bad[] = {
		"",				/* empty (written "" by hand) */
		"/etc/x.mbox",			/* absolute */
		"%2Fetc%2Fx.mbox",		/* the same, escaped */
		"../../etc/x.mbox",
		"%2E%2E/%2E%2E/etc/x.mbox",
		"a/../../x.mbox",
		"a/./x.mbox",
		"./x.mbox",
		"a//x.mbox",
		"a/",
		"..",
		".",
		"a/..",
		"INBOX",			/* not an mbox */
		"INBOX.mbo",
		"INBOX.mbox/",
		"INBOX.mbox.lock",
		"a%0Ab.mbox",			/* control bytes */
		"a%09b.mbox",
		"a%7Fb.mbox",
		"a%1Fb.mbox",
		"a%00b.mbox",			/* NUL */
	};
	static const char *const good[] = {
		"INBOX.mbox",
		"a/b/c.mbox",
		"...mbox",
		"%25/%25.mbox",			/* names_mbox_path's empty */
		"..a/b...mbox",
		"caf%C3%A9/%E6%97%A5.mbox",
		"%FF.mbox",
	};
	struct account_state st;
	char buf[1024], *error;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(buf, sizeof buf, "%s%smailbox\tINBOX\t%s\t"
		    "uidvalidity=1\tlast_uid=2\tuidnext=3\tmessages=4\t"
		    "mbox_size=5\nend\n", header, account, bad[i]);
		expect_corrupt(buf, 3, i == sizeof bad / sizeof bad[0] - 1 ?
		    "bad file name" : "file is not a relative .mbox path");
	}
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		snprintf(buf, sizeof buf, "%s%smailbox\tINBOX\t%s\t"
		    "uidvalidity=1\tlast_uid=2\tuidnext=3\tmessages=4\t"
		    "mbox_size=5\nend\n", header, account, good[i]);
		memset(&st, 0, sizeof st);
		error = NULL;
		if (state_parse(buf, strlen(buf), "good", &st, &error) != 0)
			fail_msg("%s: %s", good[i], error);
		assert_int_equal(st.n_mailboxes, 1);
		assert_non_null(st.mailboxes[0].file);
		state_clear(&st);
	}
	/* "-" is no file yet. */
	snprintf(buf, sizeof buf, "%s%smailbox\tINBOX\t-\tuidvalidity=1\t"
	    "last_uid=2\tuidnext=3\tmessages=4\tmbox_size=5\nend\n", header,
	    account);
	memset(&st, 0, sizeof st);
	assert_int_equal(state_parse(buf, strlen(buf), "x", &st, &error), 0);
	assert_int_equal(st.n_mailboxes, 1);
	assert_null(st.mailboxes[0].file);
	state_clear(&st);
}

/* state_parse reads exactly len bytes, needs no NUL after them, names the
 * file as told, and leaves the state alone when it fails. */
static void
test_parse_buffer(void **state)
{
	struct account_state st;
	char buf[1024], *copy, *error = NULL;
	size_t len;

	(void)state;
	len = (size_t)snprintf(buf, sizeof buf, "%s%s%send\n", header, account,
	    mailbox);
	/* An exact-size copy: ASan catches a read past its end. */
	copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, buf, len);
	memset(&st, 0, sizeof st);
	assert_non_null(state_get(&st, "replaced"));
	assert_int_equal(state_parse(copy, len, "mem", &st, &error), 0);
	assert_null(error);
	assert_int_equal(st.n_mailboxes, 1);
	assert_string_equal(st.mailboxes[0].name, "INBOX");
	assert_string_equal(st.mailboxes[0].file, "INBOX.mbox");
	/* The buffer is not changed. */
	assert_memory_equal(copy, buf, len);
	/* One byte short: the end line has no newline. */
	assert_int_equal(state_parse(copy, len - 1, "mem", &st, &error), -1);
	assert_non_null(error);
	assert_string_equal(error, "mem:4: line cut short (no newline)");
	free(error);
	assert_int_equal(st.n_mailboxes, 1);
	assert_string_equal(st.mailboxes[0].name, "INBOX");
	state_clear(&st);
	free(copy);
}

/* Random garbage and random damage to a good file: never a crash. */
static void
test_garbage(void **state)
{
	struct account_state st;
	char dir[PATH_MAX], good[1024], buf[1024], *error;
	uint64_t x = 88172645463325252ULL;
	size_t len, i, k;
	int r;

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "garbage");
	snprintf(good, sizeof good, "%s%s%send\n", header, account, mailbox);
	len = strlen(good);
	for (k = 0; k < 2000; k++) {
		memcpy(buf, good, len + 1);
		for (i = 0; i < 1 + k % 4; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[x % len] = (char)(x >> 32 & 0xff);
		}
		/* A NUL cuts the file short, which is damage too. */
		write_file(dir, "state", buf);
		memset(&st, 0, sizeof st);
		error = NULL;
		r = state_load(dir, &st, &error);
		if (r == -1) {
			assert_non_null(error);
			assert_non_null(strstr(error, "/state:"));
			assert_int_equal(st.n_mailboxes, 0);
		} else
			assert_null(error);
		free(error);
		state_clear(&st);
	}
}

static void
test_permissions_and_atomic_replace(void **state)
{
	struct account_state st, got;
	char base[128], dir[256], path[512], *error = NULL;
	struct dirent *de;
	struct stat sb;
	mode_t old;
	DIR *d;
	int n;

	(void)state;
	testdir_path(base, sizeof base, tmpdir, "perm");
	snprintf(dir, sizeof dir, "%s/a/b/account", base);
	memset(&st, 0, sizeof st);
	assert_non_null(state_get(&st, "INBOX"));

	old = umask(0);
	assert_int_equal(state_save(dir, &st, &error), 0);
	umask(old);
	assert_null(error);
	assert_int_equal(stat(base, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	snprintf(path, sizeof path, "%s/state", dir);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);

	/* A stale temp file from a crash is replaced, and none is left. */
	write_file(dir, "state.tmp", "half a state");
	assert_non_null(state_get(&st, "Sent"));
	assert_int_equal(state_save(dir, &st, &error), 0);
	d = opendir(dir);
	assert_non_null(d);
	n = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		assert_string_equal(de->d_name, "state");
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
	memset(&got, 0, sizeof got);
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_int_equal(got.n_mailboxes, 2);
	state_clear(&got);

	/* Even a symlink in the temp file's place is just removed. */
	snprintf(path, sizeof path, "%s/state.tmp", dir);
	assert_int_equal(symlink("/nonexistent", path), 0);
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_int_equal(lstat(path, &sb), -1);
	assert_int_equal(access("/nonexistent", F_OK), -1);

	/* A rename that fails: an error, and no temp file left. */
	snprintf(dir, sizeof dir, "%s/blocked", base);
	snprintf(path, sizeof path, "%s/state", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	write_file(path, "keep", "x");
	assert_int_equal(state_save(dir, &st, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, "rename"));
	free(error);
	error = NULL;
	snprintf(path, sizeof path, "%s/state.tmp", dir);
	assert_int_equal(lstat(path, &sb), -1);
	state_clear(&st);

	/* A file where the directory should be: an error naming it. */
	snprintf(path, sizeof path, "%s/file", base);
	write_file(base, "file", "x");
	snprintf(dir, sizeof dir, "%s/file/sub", base);
	assert_int_equal(state_save(dir, &st, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, dir));
	free(error);
}

static void
test_account_dir(void **state)
{
	static const struct {
		const char	*account;
		const char	*want;
	} cases[] = {
		{ "personal", "/s/personal" },
		{ "", "/s/%00" },
		{ ".", "/s/%2E" },
		{ "..", "/s/%2E." },
		{ ".hidden", "/s/%2Ehidden" },
		{ "a/b", "/s/a%2Fb" },
		{ "../../etc", "/s/%2E.%2F..%2Fetc" },
		{ "100%", "/s/100%25" },
		{ "with space\ttab\n", "/s/with%20space%09tab%0A" },
		{ "caf\xc3\xa9", "/s/caf%C3%A9" },
	};
	size_t i;
	char *dir;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dir = state_account_dir("/s", cases[i].account);
		assert_non_null(dir);
		assert_string_equal(dir, cases[i].want);
		assert_null(strchr(dir + 3, '/'));
		free(dir);
	}
}

/* A server that echoes the password in its NO reply: the state file (which
 * --status prints) never holds it, as the log would not. */
static void
test_error_redacted(void **state)
{
	struct account_state st, got;
	char dir[PATH_MAX], *error = NULL;

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "redacted");
	memset(&st, 0, sizeof st);
	memset(&got, 0, sizeof got);
	assert_int_equal(log_set_secret("acct", "Pa55-w0rd"), 0);
	state_set_error(&st, "account acct: login failed: [AUTHENTICATIONFAILED]"
	    " bad password Pa55-w0rd for acct", "auth", 7);
	assert_string_equal(st.last_error, "account acct: login failed: "
	    "[AUTHENTICATIONFAILED] bad password ******** for acct");
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_false(saved_state_has(dir, "Pa55"));
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_string_equal(got.last_error, st.last_error);
	log_clear_secrets();
	state_clear(&got);
	state_clear(&st);
}

/*
 * A UID not delivered and the UIDs given up: saved, read back, kept
 * ascending and bounded; a file without them (an older one) still reads.
 */
static void
test_holes_and_given_up(void **state)
{
	struct account_state st, got;
	struct mailbox_state *mb;
	char dir[PATH_MAX], *error = NULL;

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "holes");
	memset(&st, 0, sizeof st);
	memset(&got, 0, sizeof got);
	mb = state_get(&st, "INBOX");
	mb->file = strdup("INBOX.mbox");
	mb->uidvalidity = 7;
	mb->hole_uid = 12;
	mb->hole_tries = 2;
	assert_int_equal(state_add_skipped(mb, 9), 0);
	assert_int_equal(state_add_skipped(mb, 4), 0);
	assert_int_equal(state_add_skipped(mb, 9), 0);	/* once */
	assert_int_equal(mb->n_skipped, 2);
	assert_int_equal(mb->skipped_total, 2);
	assert_true(state_is_skipped(mb, 4));
	assert_false(state_is_skipped(mb, 5));
	assert_non_null(state_get(&st, "Other"));
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_int_equal(state_load(dir, &got, &error), 0);
	mb = state_find(&got, "INBOX");
	assert_non_null(mb);
	assert_int_equal(mb->hole_uid, 12);
	assert_int_equal(mb->hole_tries, 2);
	assert_int_equal(mb->n_skipped, 2);
	assert_int_equal(mb->skipped[0], 4);
	assert_int_equal(mb->skipped[1], 9);
	assert_int_equal(mb->skipped_total, 2);
	mb = state_find(&got, "Other");
	assert_int_equal(mb->hole_uid, 0);
	assert_int_equal(mb->n_skipped, 0);
	state_clear(&got);

	/* Past STATE_SKIPPED_MAX the oldest go; the total counts all. */
	mb = state_find(&st, "INBOX");
	for (uint32_t uid = 100; uid < 100 + STATE_SKIPPED_MAX; uid++)
		assert_int_equal(state_add_skipped(mb, uid), 0);
	assert_int_equal(mb->n_skipped, STATE_SKIPPED_MAX);
	assert_int_equal(mb->skipped_total, STATE_SKIPPED_MAX + 2);
	assert_int_equal(mb->skipped[0], 100);
	assert_int_equal(state_add_skipped(mb, 1), 0);	/* older than all */
	assert_int_equal(mb->skipped[0], 100);
	assert_int_equal(mb->skipped_total, STATE_SKIPPED_MAX + 3);
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_int_equal(state_load(dir, &got, &error), 0);
	mb = state_find(&got, "INBOX");
	assert_int_equal(mb->n_skipped, STATE_SKIPPED_MAX);
	assert_int_equal(mb->skipped_total, STATE_SKIPPED_MAX + 3);
	assert_int_equal(mb->skipped[STATE_SKIPPED_MAX - 1],
	    99 + STATE_SKIPPED_MAX);
	state_clear(&got);
	state_clear(&st);

	/* Malformed hole and given-up fields are a corrupt state. */
	static const char *const bad[] = {
		"hole=1\tskipped=-", "hole=x:1\tskipped=-",
		"hole=1:2\tskipped=3:5,4",
		"hole=1:2\tskipped=1:4,5", "hole=1:2\tskipped=2:4,",
		"hole=1:2\tskipped=2:0", "skipped=-\thole=1:2",
		"hole=1:2\tskipped=99999999999:4",
	};
	expect_mailbox_ends_corrupt(bad, sizeof bad / sizeof *bad);
}

/*
 * UIDs a remap found in the mirror above last_uid: kept as ranges, saved
 * only above last_uid, read back; with or without hole and skipped
 * fields; malformed lists are a corrupt state.
 */
static void
test_remapped(void **state)
{
	static const uint32_t uids[] = { 5, 6, 7, 9, 12, 13 };
	struct account_state st, got;
	struct mailbox_state *mb;
	char dir[PATH_MAX], *error = NULL;

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "remapped");
	memset(&st, 0, sizeof st);
	memset(&got, 0, sizeof got);
	mb = state_get(&st, "INBOX");
	mb->file = strdup("INBOX.mbox");
	mb->uidvalidity = 7;
	mb->last_uid = 3;
	assert_int_equal(state_set_remapped(mb, uids, 6), 0);
	assert_int_equal(mb->n_remapped, 3);
	assert_true(state_is_remapped(mb, 5));
	assert_true(state_is_remapped(mb, 7));
	assert_false(state_is_remapped(mb, 8));
	assert_true(state_is_remapped(mb, 13));
	assert_false(state_is_remapped(mb, 14));
	assert_false(state_is_remapped(mb, 3));
	assert_int_equal(state_newest_remapped(mb), 13);
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_true(saved_state_has(dir, "\tremapped=5-7,9,12-13\n"));
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_non_null(mb = state_find(&got, "INBOX"));
	assert_true(state_is_remapped(mb, 6));
	assert_true(state_is_remapped(mb, 9));
	assert_false(state_is_remapped(mb, 10));
	state_clear(&got);

	/* The fetch went past some: only what is above last_uid is saved. */
	mb = state_find(&st, "INBOX");
	mb->last_uid = 6;
	assert_int_equal(state_add_skipped(mb, 8), 0);
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_true(saved_state_has(dir, "\tskipped=1:8\tremapped=7,9,12-13\n"));
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_non_null(mb = state_find(&got, "INBOX"));
	assert_true(state_is_skipped(mb, 8));
	assert_true(state_is_remapped(mb, 7));
	assert_false(state_is_remapped(mb, 6));
	state_clear(&got);
	/* Past them all: nothing saved. */
	mb = state_find(&st, "INBOX");
	mb->last_uid = 13;
	assert_int_equal(state_newest_remapped(mb), 0);
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_false(saved_state_has(dir, "remapped"));
	state_clear(&st);

	static const char *const bad[] = {
		"remapped=", "remapped=0", "remapped=5,5", "remapped=5,4",
		"remapped=4-6,6", "remapped=4-6,7", "remapped=6-4",
		"remapped=1,", "remapped=x", "remapped=1-", "remapped=-1",
		"remapped=99999999999", "remapped=1\thole=1:2\tskipped=-",
		"hole=1:2\tremapped=3",
	};
	expect_mailbox_ends_corrupt(bad, sizeof bad / sizeof *bad);
}

/*
 * Refused remaps counted per mailbox: saved only while there is a count,
 * after any remapped list, read back; malformed or misplaced fields are a
 * corrupt state.
 */
static void
test_remap_refused(void **state)
{
	static const uint32_t uids[] = { 5 };
	struct account_state st, got;
	struct mailbox_state *mb;
	char dir[PATH_MAX], *error = NULL;

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "remap_refused");
	memset(&st, 0, sizeof st);
	memset(&got, 0, sizeof got);
	mb = state_get(&st, "INBOX");
	mb->file = strdup("INBOX.mbox");
	mb->uidvalidity = 7;
	mb->last_uid = 3;
	mb->remap_refused_uidvalidity = 4712;
	mb->remap_refused = 2;
	assert_int_equal(state_set_remapped(mb, uids, 1), 0);
	assert_int_equal(state_add_skipped(mb, 2), 0);
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_true(saved_state_has(dir, "\tskipped=1:2\tremapped=5"
	    "\tremap_refused=4712:2\n"));
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_non_null(mb = state_find(&got, "INBOX"));
	assert_int_equal(mb->remap_refused_uidvalidity, 4712);
	assert_int_equal(mb->remap_refused, 2);
	assert_true(state_is_remapped(mb, 5));
	assert_true(state_is_skipped(mb, 2));
	state_clear(&got);
	/* Alone on the line, too; and none when the count is cleared. */
	mb = state_find(&st, "INBOX");
	assert_int_equal(state_set_remapped(mb, NULL, 0), 0);
	mb->n_skipped = mb->skipped_total = 0;
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_non_null(mb = state_find(&got, "INBOX"));
	assert_int_equal(mb->remap_refused, 2);
	state_clear(&got);
	mb = state_find(&st, "INBOX");
	mb->remap_refused = 0;
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_false(saved_state_has(dir, "remap_refused"));
	state_clear(&st);

	static const char *const bad[] = {
		"remap_refused=", "remap_refused=4712", "remap_refused=0:1",
		"remap_refused=4712:0", "remap_refused=4712:x",
		"remap_refused=:1", "remap_refused=4712:1:1",
		"remap_refused=99999999999:1", "remap_refused=1:-1",
		"remap_refused=1:1\tremapped=3",
		"remap_refused=1:1\tremap_refused=1:1",
		"remap_refused=1:1\thole=1:2\tskipped=-",
	};
	expect_mailbox_ends_corrupt(bad, sizeof bad / sizeof *bad);
}

/*
 * The account lock: taken once, refused to a second open of it (flock
 * locks belong to the open file, so one process shows the conflict) with
 * the holder's pid, free again once released.  The directory is created
 * 0700, the lock file 0600; a FIFO in its place is an error, not a hang.
 */
static void
test_lock(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 8], *error = NULL;
	struct stat st;
	long holder = -1;
	int fd = -1, fd2 = -1;

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "locked/account");
	assert_int_equal(state_lock(dir, &fd, &holder, &error), 0);
	assert_null(error);
	assert_true(fd >= 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(path, sizeof path, "%s/lock", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

	assert_int_equal(state_lock(dir, &fd2, &holder, &error), 1);
	assert_null(error);
	assert_int_equal(fd2, -1);
	assert_int_equal(holder, (long)getpid());
	/* Seen held without writing (--verify). */
	holder = -1;
	assert_int_equal(state_daemon_running_in(dir, &holder), 1);
	assert_int_equal(holder, (long)getpid());
	/* Refused without touching the state. */
	snprintf(path, sizeof path, "%s/state", dir);
	assert_int_equal(access(path, F_OK), -1);

	state_unlock(&fd);
	assert_int_equal(fd, -1);
	state_unlock(&fd);
	assert_int_equal(state_daemon_running_in(dir, &holder), 0);
	assert_int_equal(holder, 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(state_lock(dir, &fd2, &holder, &error), 0);
	assert_true(fd2 >= 0);
	state_unlock(&fd2);

	/* Not a regular file. */
	testdir_path(dir, sizeof dir, tmpdir, "fifo-lock");
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof path, "%s/lock", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(20);
	assert_int_equal(state_lock(dir, &fd, &holder, &error), -1);
	alarm(0);
	assert_non_null(error);
	assert_non_null(strstr(error, path));
	assert_int_equal(fd, -1);
	free(error);
}

/*
 * The next attempt is written under the account lock and changes nothing
 * else: refused (1, file untouched) while another holds the lock, left
 * alone (1) when the state is corrupt, written (0) otherwise, a missing
 * state included.
 */
static void
test_set_next_attempt(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 8], *error = NULL;
	struct account_state st = { 0 }, got = { 0 };
	struct mailbox_state *mb;
	struct stat before, after;
	long holder;
	int fd = -1;

	(void)state;
	testdir_path(dir, sizeof dir, tmpdir, "next");
	assert_int_equal(state_set_next_attempt(dir, 1700000000, &error), 0);
	assert_null(error);
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_int_equal(got.next_attempt, 1700000000);
	assert_int_equal(got.n_mailboxes, 0);
	state_clear(&got);

	mb = state_get(&st, "INBOX");
	assert_non_null(mb);
	mb->uidvalidity = 7;
	mb->last_uid = 42;
	mb->mbox_size = 4096;
	st.last_success = 1690000000;
	st.failures = 2;
	state_set_error(&st, "login failed", "auth", 1690000100);
	assert_int_equal(state_save(dir, &st, &error), 0);
	assert_int_equal(state_set_next_attempt(dir, 1700000900, &error), 0);
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_int_equal(got.next_attempt, 1700000900);
	assert_int_equal(got.last_success, 1690000000);
	assert_int_equal(got.failures, 2);
	assert_string_equal(got.last_error, "login failed");
	assert_int_equal(got.n_mailboxes, 1);
	assert_int_equal(got.mailboxes[0].last_uid, 42);
	assert_int_equal(got.mailboxes[0].mbox_size, 4096);
	state_clear(&got);

	/* Held by another: the state is not this caller's to write. */
	snprintf(path, sizeof path, "%s/state", dir);
	assert_int_equal(state_lock(dir, &fd, &holder, &error), 0);
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(state_set_next_attempt(dir, 1800000000, &error), 1);
	assert_null(error);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	state_unlock(&fd);
	assert_int_equal(state_load(dir, &got, &error), 0);
	assert_int_equal(got.next_attempt, 1700000900);
	state_clear(&got);
	/* The lock is free again afterwards. */
	assert_int_equal(state_lock(dir, &fd, &holder, &error), 0);
	state_unlock(&fd);

	/* Corrupt: left for the next sync to report. */
	write_file(dir, "state", "mboxmirror-state 1\ngarbage\n");
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(state_set_next_attempt(dir, 1800000000, &error), 1);
	assert_null(error);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	state_clear(&st);
}

/* Starts with prefix and names what. */
static void
expect_error_text(char *error, const char *prefix, const char *what)
{
	assert_non_null(error);
	if (strncmp(error, prefix, strlen(prefix)) != 0 ||
	    strstr(error, what) == NULL)
		fail_msg("error \"%s\", want \"%s...%s\"", error, prefix, what);
	free(error);
}

/* Whatever is in the way, each call fails naming the file and the step,
 * and a state saved before is still the one loaded. */
static void
test_io_errors(void **state)
{
	struct account_state st, loaded;
	char dir[PATH_MAX], path[PATH_MAX + 16], sub[PATH_MAX + 32];
	char *error = NULL;
	long holder;
	int fd = -1;

	(void)state;
	memset(&st, 0, sizeof st);
	memset(&loaded, 0, sizeof loaded);
	st.failures = 3;

	/* A file where a directory should be. */
	testdir_path(dir, sizeof dir, tmpdir, "file");
	write_file(tmpdir, strrchr(dir, '/') + 1, "x");
	snprintf(sub, sizeof sub, "%s/acct", dir);
	assert_int_equal(state_save(sub, &st, &error), -1);
	expect_error_text(error, "mkdir ", sub);
	assert_int_equal(state_lock(sub, &fd, &holder, &error), -1);
	expect_error_text(error, "mkdir ", sub);
	assert_int_equal(fd, -1);

	/* A saved state, then a directory where the temp file goes. */
	testdir_path(dir, sizeof dir, tmpdir, "tmp-dir");
	assert_int_equal(state_save(dir, &st, &error), 0);
	snprintf(path, sizeof path, "%s/state.tmp", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	write_file(path, "keep", "x");
	st.failures = 4;
	assert_int_equal(state_save(dir, &st, &error), -1);
	expect_error_text(error, "unlink ", path);
	assert_int_equal(state_load(dir, &loaded, &error), 0);
	assert_int_equal(loaded.failures, 3);
	state_clear(&loaded);

	/* A directory where the state goes: the rename fails, and no temp
	 * file is left. */
	testdir_path(dir, sizeof dir, tmpdir, "state-dir");
	snprintf(path, sizeof path, "%s/state", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	write_file(path, "keep", "x");
	assert_int_equal(state_save(dir, &st, &error), -1);
	expect_error_text(error, "rename ", path);
	snprintf(sub, sizeof sub, "%s/state.tmp", dir);
	assert_int_equal(access(sub, F_OK), -1);
	/* ...which cannot be read either. */
	loaded.failures = 9;
	assert_int_equal(state_load(dir, &loaded, &error), -1);
	expect_error_text(error, "read ", path);
	assert_int_equal(loaded.failures, 9);

	/* A symlink is not followed. */
	testdir_path(dir, sizeof dir, tmpdir, "state-link");
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof path, "%s/state", dir);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_int_equal(state_load(dir, &loaded, &error), -1);
	expect_error_text(error, "open ", path);

	/* A directory where the lock goes. */
	testdir_path(dir, sizeof dir, tmpdir, "lock-dir");
	snprintf(path, sizeof path, "%s/lock", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(state_lock(dir, &fd, &holder, &error), -1);
	expect_error_text(error, "open ", path);
	assert_int_equal(fd, -1);
}

/*
 * Daemons of other layouts on one state directory: for N shards, the
 * unsharded daemon and those of another count are seen while they hold
 * their locks, those of the same count are not; a lock the caller holds
 * (ignore_fd) is passed over; stale directories and other names too.
 */
static void
test_daemon_other_layout(void **state)
{
	char sd[PATH_MAX], *dir, *who = NULL, *error = NULL;
	long holder = 0, pid = -1;
	int fd02 = -1, fd12 = -1, fd = -1;

	(void)state;
	testdir_path(sd, sizeof sd, tmpdir, "layouts");
	/* Nothing there yet. */
	assert_int_equal(state_daemon_other_layout(sd, 2, -1, &who, &pid), 0);
	assert_null(who);
	assert_non_null(dir = state_shard_daemon_dir(sd, 0, 2));
	assert_int_equal(state_lock(dir, &fd02, &holder, &error), 0);
	free(dir);
	assert_non_null(dir = state_shard_daemon_dir(sd, 1, 2));
	assert_int_equal(state_lock(dir, &fd12, &holder, &error), 0);
	free(dir);
	/* Each shard's daemon is looked for in its own directory. */
	assert_int_equal(state_shard_daemon_running(sd, 1, 2, &pid), 1);
	assert_int_equal(state_shard_daemon_running(sd, 0, 0, &pid), 0);
	assert_int_equal(pid, 0);
	assert_int_equal(state_shard_daemon_running(sd, 1, 3, &pid), 0);
	/* A stale directory of 3 shards, and names that are none. */
	assert_non_null(dir = state_shard_daemon_dir(sd, 2, 3));
	assert_int_equal(state_lock(dir, &fd, &holder, &error), 0);
	state_unlock(&fd);
	free(dir);
	assert_non_null(dir = state_shard_daemon_dir(sd, 0, 0));
	for (size_t i = 0; i < 3; i++) {
		static const char *const junk[] = { "shard-x-of-3",
		    "shard-0-of-3x", "shard-0-of-" };
		char path[PATH_MAX + 32];

		snprintf(path, sizeof path, "%s/%s", dir, junk[i]);
		assert_int_equal(mkdir(path, 0700), 0);
	}

	assert_int_equal(state_daemon_other_layout(sd, 2, -1, &who, &pid), 0);
	assert_null(who);
	assert_int_equal(state_daemon_other_layout(sd, 3, -1, &who, &pid), 1);
	assert_non_null(who);
	assert_non_null(strstr(who, "/2"));
	assert_int_equal(pid, (long)getpid());
	free(who);
	who = NULL;
	assert_int_equal(state_daemon_other_layout(sd, 0, -1, &who, &pid), 1);
	free(who);
	who = NULL;
	/* Its own lock does not count: 1/2 alone is left. */
	state_unlock(&fd12);
	assert_int_equal(state_daemon_other_layout(sd, 3, fd02, &who, &pid), 0);
	assert_null(who);
	assert_int_equal(state_daemon_other_layout(sd, 3, -1, &who, &pid), 1);
	free(who);
	who = NULL;

	/* The unsharded daemon, seen by a sharded one. */
	state_unlock(&fd02);
	assert_int_equal(state_lock(dir, &fd, &holder, &error), 0);
	assert_int_equal(state_daemon_other_layout(sd, 0, -1, &who, &pid), 0);
	assert_int_equal(state_daemon_other_layout(sd, 2, -1, &who, &pid), 1);
	assert_string_equal(who, "the daemon that is not sharded");
	free(who);
	who = NULL;
	assert_int_equal(state_daemon_other_layout(sd, 2, fd, &who, &pid), 0);
	state_unlock(&fd);
	assert_int_equal(state_daemon_other_layout(sd, 2, -1, &who, &pid), 0);
	free(dir);
}

static int
group_setup(void **state)
{
	(void)state;
	return testdir_make(tmpdir, sizeof tmpdir, "test_state");
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
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_missing_is_empty),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_file_escapes),
		cmocka_unit_test(test_parse_buffer),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_permissions_and_atomic_replace),
		cmocka_unit_test(test_account_dir),
		cmocka_unit_test(test_error_redacted),
		cmocka_unit_test(test_holes_and_given_up),
		cmocka_unit_test(test_remapped),
		cmocka_unit_test(test_remap_refused),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_daemon_other_layout),
		cmocka_unit_test(test_set_next_attempt),
		cmocka_unit_test(test_io_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
