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

#include "../fakes/imapd_wrap.h"
#include "../fakes/transport_mem.h"
#include "capture.h"
#include "config.h"
#include "log.h"
#include "run.h"
#include "testdir.h"
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
	snprintf(dir, sizeof dir, "/tmp/mm-verify-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(text, sizeof text,
	    "[general]\nstate_dir = %s/state\ntimeout = 30s\n"
	    "[acct]\nhost = imap.example.org\ntls = none\n"
	    "allow_plaintext = yes\nuser = user\npassword = s3cret\n"
	    "output = %s/out\n", dir, dir);
	assert_int_equal(config_load_string("t.ini", text, &cfg), 0);
	capture_log_begin(LOGL_INFO);
	transport_mem_reset();
	imapd_init(&srv, NULL);
	imapd_wrap_serve(&srv, NULL);
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
	assert_int_equal(imapd_count(&srv, "UID FETCH 1:* (UID RFC822.SIZE)"),
	    3);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
