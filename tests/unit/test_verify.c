/*
 * verify: --verify against tests/fakes/imapd_mem on the in-memory
 * transport, after a --once made the mirror (both make their own loop:
 * imapd_wrap.h).  What the server may do to a check: bodies as quoted
 * strings or with the UID after them, a body it does not deliver, a size
 * query refused, messages it lost.  The report goes to stdout, notes to
 * the log, both captured.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>

#include "../fakes/imapd_wrap.h"
#include "capture.h"
#include "config.h"
#include "log.h"
#include "mbox/mbox.h"
#include "mirror/state.h"
#include "run.h"
#include "testdir.h"
#include "util/utf8.h"
#include "verify.h"

#define MSG1 "Subject: one\r\n\r\nFrom the start\r\n"
#define MSG2 "Subject: two\r\n\r\nsecond\r\n"
#define MSG3 "Subject: three\r\n\r\nthird, no final line end"

static struct imapd srv;
static char dir[64];
static struct config *cfg;
static char *out;

static int
verify(bool deep, bool json)
{
	int rc;

	capture_stdout_begin();
	rc = verify_run(cfg, NULL, 0, deep, json);
	free(out);
	out = capture_stdout_end();
	return rc;
}

static void
expect_out(const char *want)
{
	expect_in(out, want, "stdout");
}

static int
setup(void **state)
{
	char text[512];
	int rc;

	(void)state;
	assert_int_equal(testdir_make(dir, sizeof dir, "mm-verify"), 0);
	snprintf(text, sizeof text,
	    "[general]\nstate_dir = %s/state\ntimeout = 30s\n"
	    "[acct]\nhost = imap.example.org\ntls = none\n"
	    "allow_plaintext = yes\nuser = user\npassword = s3cret\n"
	    "output = %s/out\n", dir, dir);
	assert_int_equal(config_load_string("t.ini", text, &cfg), 0);
	capture_log_begin(LOGL_INFO);
	imapd_wrap_start(&srv, NULL);
	imapd_add_message(imapd_add_mailbox(&srv, "INBOX"), MSG1);
	imapd_add_message(&srv.boxes[0], MSG2);
	imapd_add_message(&srv.boxes[0], MSG3);
	imapd_add_message(imapd_add_mailbox(&srv, "Work"), MSG2);
	/* A body a quoted string can carry (no CR, no LF). */
	imapd_add_message(imapd_add_mailbox(&srv, "Flat"), "Subject: flat");
	capture_stdout_begin();
	rc = run_once(cfg, NULL, 0);
	free(capture_stdout_end());
	assert_int_equal(rc, 0);
	capture_log_clear();
	srv.log[0] = '\0';
	srv.examines = srv.body_fetches = srv.logouts = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	free(out);
	out = NULL;
	capture_log_end();
	testdir_remove(dir);
	return 0;
}

static void
test_whole(void **state)
{
	(void)state;
	assert_int_equal(verify(false, false), 0);
	assert_string_equal(out, "account acct: whole: 3 mailboxes, 5 messages "
	    "in the mirror\n");
	assert_int_equal(srv.examines, 3);
	/* Runs of two indexed UIDs (VERIFY_SIZES_CHUNK in this test):
	 * INBOX's 1 2 3 in two queries, the others in one. */
	assert_int_equal(imapd_count(&srv, "UID FETCH 1:* (UID RFC822.SIZE)"),
	    2);
	assert_int_equal(imapd_count(&srv, "UID FETCH 1:2 (UID RFC822.SIZE)"),
	    1);
	assert_int_equal(imapd_count(&srv, "UID FETCH 3:* (UID RFC822.SIZE)"),
	    1);
	assert_int_equal(srv.body_fetches, 0);
	assert_int_equal(srv.logouts, 1);
}

/* Every way a body may come is hashed the same. */
static void
test_deep_body_shapes(void **state)
{
	(void)state;
	if (verify(true, false) != 0)
		fail_msg("%s%s", out, capture_log());
	expect_out("account acct: whole: 3 mailboxes, 5 messages in the "
	    "mirror, 5 compared with the server's bytes\n");
	expect_log("account acct: --deep: downloading 5 messages again");
	assert_int_equal(imapd_count(&srv, "(UID BODY.PEEK[])"), 3);

	srv.uid_after_body = true;
	assert_int_equal(verify(true, false), 0);
	expect_out("5 compared with the server's bytes\n");

	/* Quoted strings: only Flat's body can be one; the others are not
	 * on the server for this run (counted, kept). */
	srv.uid_after_body = false;
	srv.string_bodies = true;
	srv.boxes[0].examine_no = srv.boxes[1].examine_no = true;
	if (verify(true, false) != 0)
		fail_msg("%s%s", out, capture_log());
	expect_out("whole: 3 mailboxes, 5 messages in the mirror, 2 mailboxes "
	    "not on the server any more (kept), 1 compared with the server's "
	    "bytes\n");
}

/* A server that changed a message (same UID, other bytes): --deep says
 * so; the size differs too, which the listing already tells. */
static void
test_deep_server_differs(void **state)
{
	(void)state;
	srv.boxes[0].msgs[1].body = "Subject: two\r\n\r\nSECOND\r\n";
	assert_int_equal(verify(true, false), 1);
	expect_out("account acct: mailbox INBOX: UID 2: the server's message "
	    "differs from the mirror's entry at offset ");
	expect_out("account acct: PROBLEMS: ");
}

/* What the server cannot answer leaves the check incomplete (2). */
static void
test_server_cannot_answer(void **state)
{
	(void)state;
	srv.nil_uid = 2;
	assert_int_equal(verify(true, false), 2);
	expect_out("INCOMPLETE: 3 mailboxes, 5 messages in the mirror, 4 "
	    "compared with the server's bytes, some mailboxes not checked "
	    "against the server\n");
	expect_log("account acct: mailbox INBOX: not checked against the "
	    "server: --deep: the server did not deliver 1 of 3 messages");

	srv.nil_uid = 0;
	srv.sizes_no = true;
	assert_int_equal(verify(false, true), 2);
	expect_out("\"server_error\": \"UID FETCH failed: ");
	expect_out("\"whole\": false, \"exit_status\": 2}\n");
}

/* A message the server no longer has is counted, not a problem; one it
 * lists that the mirror lacks is. */
static void
test_missing_and_deleted(void **state)
{
	(void)state;
	/* UID 1 expunged on the server. */
	srv.boxes[0].msgs[0] = srv.boxes[0].msgs[1];
	srv.boxes[0].msgs[1] = srv.boxes[0].msgs[2];
	srv.boxes[0].n_msgs = 2;
	assert_int_equal(verify(false, false), 0);
	expect_out("account acct: whole: 3 mailboxes, 5 messages in the "
	    "mirror, 1 deleted on the server (kept)\n");

	/* Work's UID 1 has another size on the server now (a server's
	 * repair, or a mirror that holds something else), and a new message
	 * came: one problem, one message counted as not synced yet. */
	srv.boxes[1].msgs[0].body = MSG1;
	imapd_add_message(&srv.boxes[1], MSG3);
	assert_int_equal(verify(false, true), 1);
	expect_out("{\"kind\": \"size\", \"uid\": 1, \"offset\": 0, ");
	expect_out("\"listed\": 1, \"deleted_on_server\": 0, "
	    "\"new_on_server\": 1");
}

/* Appends len bytes of data to every index of the account. */
static void
append_to_indexes(const void *data, size_t len)
{
	char path[512];
	struct dirent *d;
	DIR *dp;
	int fd, n = 0;

	snprintf(path, sizeof path, "%s/state/acct", dir);
	assert_non_null(dp = opendir(path));
	while ((d = readdir(dp)) != NULL) {
		if (strncmp(d->d_name, "index-", 6) != 0)
			continue;
		snprintf(path, sizeof path, "%s/state/acct/%s", dir,
		    d->d_name);
		assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
		assert_int_equal(write(fd, data, len), (ssize_t)len);
		assert_int_equal(close(fd), 0);
		n++;
	}
	closedir(dp);
	assert_int_equal(n, 3);
}

/* A sync that died while appending index records leaves a torn record
 * past the committed end; the next sync cuts it.  Nothing is wrong with
 * the mirror meanwhile. */
static void
test_torn_index_tail(void **state)
{
	unsigned char rec[84];

	(void)state;
	append_to_indexes("\x01\x02\x03", 3);
	if (verify(false, false) != 0)
		fail_msg("%s%s", out, capture_log());
	expect_out("account acct: whole: 3 mailboxes, 5 messages in the "
	    "mirror\n");

	/* Completed to a whole record that fails its check, last in the
	 * file (no keywords: bytes 40 and 41 of it are 0). */
	memset(rec, 0x5a, sizeof rec);
	rec[40 - 3] = rec[41 - 3] = 0;
	append_to_indexes(rec, sizeof rec - 3);
	if (verify(false, false) != 0)
		fail_msg("%s%s", out, capture_log());
}

/* What a sync does to a file while --verify looks at it: done just before
 * --verify starts reading the file at path's entries (once). */
static void (*before_scan)(const char *path);

int __real_mbox_scan_open(const char *path, uint64_t size,
    struct mbox_scan **scan_r, char **error_r);
int __wrap_mbox_scan_open(const char *path, uint64_t size,
    struct mbox_scan **scan_r, char **error_r);

int
__wrap_mbox_scan_open(const char *path, uint64_t size,
    struct mbox_scan **scan_r, char **error_r)
{
	void (*f)(const char *) = before_scan;
	size_t len = strlen(path);

	if (f != NULL && len >= 10 && strcmp(path + len - 10,
	    "INBOX.mbox") == 0) {
		before_scan = NULL;
		f(path);
	}
	return __real_mbox_scan_open(path, size, scan_r, error_r);
}

/* ...done just after --verify looked whether a sync is running (once). */
static void (*after_lock_check)(const char *path);

int __real_state_daemon_running_in(const char *dir, long *pid_r);
int __wrap_state_daemon_running_in(const char *dir, long *pid_r);

int
__wrap_state_daemon_running_in(const char *sdir, long *pid_r)
{
	void (*f)(const char *) = after_lock_check;
	int r = __real_state_daemon_running_in(sdir, pid_r);
	char path[300];

	if (f != NULL) {
		after_lock_check = NULL;
		snprintf(path, sizeof path, "%s/out/INBOX.mbox", dir);
		f(path);
	}
	return r;
}

/* The state's mailbox of INBOX.mbox, loaded into st. */
static struct mailbox_state *
inbox_state(struct account_state *st, char *sdir, size_t size)
{
	char *error = NULL;

	snprintf(sdir, size, "%s/state/acct", dir);
	memset(st, 0, sizeof *st);
	if (state_load(sdir, st, &error) != 0)
		fail_msg("%s", error);
	for (size_t i = 0; i < st->n_mailboxes; i++)
		if (st->mailboxes[i].file != NULL &&
		    strcmp(st->mailboxes[i].file, "INBOX.mbox") == 0)
			return &st->mailboxes[i];
	fail_msg("no INBOX in the state");
	return NULL;
}

static void
append_file(const char *path, const char *text)
{
	int fd;

	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, text, strlen(text)),
	    (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

#define LEFTOVER "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: x\n"

/* A sync starting cuts a crash's leftover tail back to the committed
 * size, just as --verify reads the file. */
static void
cut_to_committed(const char *path)
{
	struct account_state st;
	char sdir[300];
	struct mailbox_state *ms = inbox_state(&st, sdir, sizeof sdir);

	assert_int_equal(truncate(path, (off_t)ms->mbox_size), 0);
	state_clear(&st);
}

/* A sync (--once) that appends and commits while --verify reads the
 * file. */
static void
append_and_commit_text(const char *path, const char *text)
{
	struct account_state st;
	char sdir[300], *error = NULL;
	struct mailbox_state *ms = inbox_state(&st, sdir, sizeof sdir);
	struct stat sb;

	append_file(path, text);
	assert_int_equal(stat(path, &sb), 0);
	ms->mbox_size = (uint64_t)sb.st_size;
	if (state_save(sdir, &st, &error) != 0)
		fail_msg("%s", error);
	state_clear(&st);
}

static void
append_and_commit(const char *path)
{
	append_and_commit_text(path, "\n" LEFTOVER);
}

/* ...and one that appends a message the server holds twice (the same
 * bytes as INBOX's first entry). */
static void
append_copy_and_commit(const char *path)
{
	char buf[4096], *second;
	ssize_t n;
	int fd;

	assert_true((fd = open(path, O_RDONLY)) >= 0);
	assert_true((n = read(fd, buf, sizeof buf - 1)) > 0);
	assert_int_equal(close(fd), 0);
	buf[n] = '\0';
	assert_non_null(second = strstr(buf, "\n\nFrom "));
	second[2] = '\0';
	append_and_commit_text(path, buf);
}

/* A sync at work while --verify reads: what it does to the file is no
 * problem of the mirror's. */
static void
test_sync_meanwhile(void **state)
{
	char path[300];

	(void)state;
	snprintf(path, sizeof path, "%s/out/INBOX.mbox", dir);
	append_file(path, "\n" LEFTOVER);
	assert_int_equal(verify(false, false), 1);
	expect_out("account acct: mailbox INBOX: ");
	expect_out(" after the last entry (offset ");

	before_scan = cut_to_committed;
	if (verify(false, false) != 0)
		fail_msg("%s%s", out, capture_log());
	assert_null(before_scan);
	expect_out("account acct: whole: ");

	after_lock_check = append_and_commit;
	if (verify(false, false) != 0)
		fail_msg("%s%s", out, capture_log());
	assert_null(after_lock_check);
}

/* A sync that appends a second copy of a message while --verify reads:
 * no copy of the mirror's, no tail of another program's. */
static void
test_sync_appends_copy(void **state)
{
	(void)state;
	after_lock_check = append_copy_and_commit;
	if (verify(false, false) != 0)
		fail_msg("%s%s", out, capture_log());
	assert_null(after_lock_check);
}

/* An EXAMINE refused for a while (or for a reason other than the mailbox
 * being gone) leaves the mailbox unchecked: never "whole". */
static void
test_examine_refused(void **state)
{
	(void)state;
	srv.boxes[0].examine_refusal = "NO [UNAVAILABLE] try again later";
	assert_int_equal(verify(false, false), 2);
	expect_out("account acct: INCOMPLETE: 3 mailboxes, 5 messages in the "
	    "mirror, some mailboxes not checked against the server\n");
	expect_log("account acct: mailbox INBOX: not checked against the "
	    "server: EXAMINE failed: ");

	srv.boxes[0].examine_refusal = "BAD [CLIENTBUG] what?";
	assert_int_equal(verify(false, false), 2);

	/* Gone: counted, kept, not a problem. */
	srv.boxes[0].examine_refusal = "NO [NONEXISTENT] no such mailbox";
	assert_int_equal(verify(false, false), 0);
	expect_out("1 mailbox not on the server any more (kept)\n");
	srv.boxes[0].examine_refusal = "NO Mailbox does not exist";
	assert_int_equal(verify(false, false), 0);
}

/* A server that answers EXAMINE without UIDVALIDITY gives nothing to
 * compare the UIDs with: not checked, no problem of the mirror's. */
static void
test_no_uidvalidity(void **state)
{
	(void)state;
	srv.boxes[0].no_uidvalidity = true;
	assert_int_equal(verify(false, false), 2);
	expect_out("account acct: INCOMPLETE: 3 mailboxes, 5 messages in the "
	    "mirror, some mailboxes not checked against the server\n");
	expect_log("account acct: mailbox INBOX: not checked against the "
	    "server: EXAMINE gave no UIDVALIDITY");
}

/* A mailbox name of raw bytes from the server (no modified UTF-7: Latin-1,
 * and 0x9b, CSI in an 8-bit locale): the report stays printable and the
 * JSON document UTF-8.  (Work renamed so in the state; gone from the
 * server, as the fake cannot open such a name.) */
static void
test_hostile_mailbox_name(void **state)
{
	struct account_state st;
	char sdir[300], *error = NULL;
	struct mailbox_state *ms;

	(void)state;
	snprintf(sdir, sizeof sdir, "%s/state/acct", dir);
	memset(&st, 0, sizeof st);
	if (state_load(sdir, &st, &error) != 0)
		fail_msg("%s", error);
	assert_non_null(ms = state_find(&st, "Work"));
	free(ms->name);
	assert_non_null(ms->name = strdup("Caf\xe9\x9b" "2J\xc2\x9b" "1m"));
	if (state_save(sdir, &st, &error) != 0)
		fail_msg("%s", error);
	state_clear(&st);

	assert_int_equal(verify(false, false), 0);
	expect_out("account acct: whole: 3 mailboxes, 5 messages");
	assert_true(utf8_valid(out, strlen(out)));
	expect_log("account acct: mailbox Caf??2J??1m: not on the server");
	assert_int_equal(verify(false, true), 0);
	assert_true(utf8_valid(out, strlen(out)));
	expect_out("{\"mailbox\": \"Caf??2J??1m\"");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_body_shapes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deep_server_differs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_cannot_answer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_deleted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_torn_index_tail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sync_meanwhile, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sync_appends_copy, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_examine_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_uidvalidity, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hostile_mailbox_name,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
