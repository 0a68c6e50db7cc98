/*
 * list: --list against tests/fakes/imapd_mem on the in-memory transport.
 * list_run() makes its own loop: the server joins it (imapd_wrap.h).  The
 * table goes to stdout and warnings to the log, both captured (capture.h).
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
#include <ev.h>

#include "../fakes/imapd_wrap.h"
#include "capture.h"
#include "config.h"
#include "imap/session.h"
#include "list.h"
#include "log.h"
#include "testdir.h"

static struct imapd srv;

static char dir[64];
static struct config *cfg;
static char *out;		/* what list_run printed */

/* Runs list_run with its stdout in out; returns its result. */
static int
run(char *const *names, size_t n)
{
	int rc;

	capture_stdout_begin();
	rc = list_run(cfg, names, n);
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
	char text[1024];

	(void)state;
	assert_int_equal(testdir_make(dir, sizeof dir, "mm-list"), 0);
	snprintf(text, sizeof text,
	    "[general]\nstate_dir = %s/state\ntimeout = 30s\n"
	    "[all]\nhost = imap.example.org\ntls = none\n"
	    "allow_plaintext = yes\nuser = user\npassword = s3cret\n"
	    "output = %s/all\nexclude = Trash, Junk*\n"
	    "[some]\nhost = imap.example.org\ntls = none\n"
	    "allow_plaintext = yes\nuser = user\npassword = s3cret\n"
	    "output = %s/some\nmailboxes = INBOX, Work/*, Nothing\n",
	    dir, dir, dir);
	assert_int_equal(config_load_string("t.ini", text, &cfg), 0);
	capture_log_begin(LOGL_INFO);
	imapd_wrap_start(&srv, NULL);
	imapd_add_message(imapd_add_mailbox(&srv, "Work/Reports"), "a");
	imapd_add_message(&srv.boxes[0], "b");
	imapd_add_message(imapd_add_mailbox(&srv, "INBOX"), "c");
	imapd_add_message(&srv.boxes[1], "d");
	imapd_add_message(&srv.boxes[1], "e");
	imapd_add_message(imapd_add_mailbox(&srv, "Trash"), "f");
	imapd_add_mailbox(&srv, "Work")->flags = "\\Noselect \\HasChildren";
	return 0;
}

static int
teardown(void **state)
{
	char path[128];

	(void)state;
	/* Listing writes nothing: no state, no output directory. */
	snprintf(path, sizeof path, "%s/state", dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof path, "%s/all", dir);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(imapd_count(&srv, "EXAMINE"), 0);
	assert_int_equal(imapd_count(&srv, "FETCH"), 0);
	config_free(&cfg);
	free(out);
	out = NULL;
	capture_log_end();
	rmdir(dir);
	return 0;
}

/* A row of the table: the columns are as wide as the longest mailbox
 * name ("Work/Reports") and file ("Work/Reports.mbox"). */
static void
expect_row(const char *name, const char *count, const char *file,
    const char *verdict)
{
	char want[256];

	snprintf(want, sizeof want, "  %-12s %8s  %-17s  %s\n", name, count,
	    file, verdict);
	expect_out(want);
}

/* Both accounts: every mailbox with its count, its file and why it is
 * (not) mirrored, INBOX first; patterns matching nothing are warned
 * about. */
static void
test_table(void **state)
{
	char *some;

	(void)state;
	assert_int_equal(run(NULL, 0), 0);
	expect_out("account all (imap.example.org:143): 4 mailboxes, files "
	    "under ");
	expect_out("  mailbox      messages  file               mirrored?\n"
	    "  INBOX ");
	assert_non_null(some = strstr(out, "account some "));
	expect_row("INBOX", "3", "INBOX.mbox", "mirrored (mailboxes \"*\")");
	expect_row("Trash", "1", "Trash.mbox", "excluded by \"Trash\"");
	expect_row("Work", "-", "-", "not selectable (holds only other "
	    "mailboxes)");
	expect_row("Work/Reports", "2", "Work/Reports.mbox",
	    "mirrored (mailboxes \"*\")");
	expect_row("INBOX", "3", "INBOX.mbox",
	    "mirrored (mailboxes \"INBOX\")");
	expect_row("Trash", "1", "Trash.mbox",
	    "skipped: matches no pattern in mailboxes");
	expect_row("Work/Reports", "2", "Work/Reports.mbox",
	    "mirrored (mailboxes \"Work/*\")");
	/* INBOX first, then by name. */
	assert_true(strstr(out, "  INBOX ") < strstr(out, "  Trash "));
	assert_true(strstr(out, "  Trash ") < strstr(out, "  Work "));
	assert_true(strstr(some, "2 of 4 mirrored\n") != NULL);
	assert_true(strstr(out, "2 of 4 mirrored\n") < some);
	expect_log("account all: exclude pattern \"Junk*\" matches no "
	    "mailbox");
	expect_log("account some: mailboxes pattern \"Nothing\" matches no "
	    "mailbox");
	assert_null(strstr(capture_log(), "\"Trash\" matches"));
	/* Without LIST-STATUS, one STATUS per selectable mailbox. */
	assert_int_equal(imapd_count(&srv, "\nSTATUS "), 6);
	assert_int_equal(srv.logouts, 2);
}

/* With LIST-STATUS the counts come with the LIST; -a picks accounts. */
static void
test_list_status_and_selection(void **state)
{
	char *names[] = { "some" };

	(void)state;
	srv.caps = "IMAP4rev1 AUTH=PLAIN SASL-IR LIST-STATUS";
	assert_int_equal(run(names, 1), 0);
	assert_null(strstr(out, "account all"));
	expect_out("account some ");
	expect_row("INBOX", "3", "INBOX.mbox",
	    "mirrored (mailboxes \"INBOX\")");
	assert_int_equal(imapd_count(&srv, "RETURN (STATUS (MESSAGES))"), 1);
	assert_int_equal(imapd_count(&srv, "\nSTATUS "), 0);
}

/* A refused STATUS shows "-"; the listing still succeeds. */
static void
test_status_refused(void **state)
{
	char *names[] = { "all" };

	(void)state;
	srv.status_no = true;
	assert_int_equal(run(names, 1), 0);
	expect_row("INBOX", "-", "INBOX.mbox", "mirrored (mailboxes \"*\")");
}

/* A refused LIST or login fails the account (exit 1), said in the log,
 * and the other accounts are still listed. */
static void
test_failures(void **state)
{
	(void)state;
	srv.list_no = true;
	assert_int_equal(run(NULL, 0), 1);
	expect_log("error: account all: LIST failed: LIST is not for you");
	expect_log("error: account some: LIST failed");
	assert_null(strstr(out, "mirrored"));

	srv.list_no = false;
	srv.auth_no = true;
	capture_log_clear();
	assert_int_equal(run(NULL, 0), 1);
	expect_log("error: account all: ");
	expect_log("AUTHENTICATIONFAILED");
	expect_log("error: account some: ");
	assert_int_equal(imapd_count(&srv, "LIST"), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_status_and_selection,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
