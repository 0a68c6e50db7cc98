/*
 * run: --once and --probe against tests/fakes/imapd_mem on the in-memory
 * transport, on the loop each makes (imapd_wrap.h).  What they print on
 * stdout, their exit status, the log and the mbox files are checked.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testdir.h"
#include <ftw.h>

#include "../fakes/imapd_wrap.h"
#include "capture.h"
#include "config.h"
#include "log.h"
#include "run.h"

#define MSG1 "Subject: one\r\n\r\nFirst body\r\n"
#define MSG2 "Subject: two\r\n\r\nSecond body\r\n"

static struct imapd srv;
static char dir[64];
static struct config *cfg;
static char *out;		/* what the mode printed */
static char *big;		/* a message body over 1 KiB or 1 MiB */
static bool stop_at_first_body;
static bool stopped;

/* "one" mirrors INBOX, "two" every mailbox, "bad" has the wrong password;
 * extra goes into [general]. */
static void
configure(const char *general, const char *one_tls)
{
	char text[2048];
	const char *common = "host = imap.example.org\nallow_plaintext = yes\n"
	    "user = user\n";

	snprintf(text, sizeof text,
	    "[general]\nstate_dir = %s/state\ntimeout = 30s\n%s"
	    "[one]\n%stls = %s\npassword = s3cret\noutput = %s/one\n"
	    "mailboxes = INBOX\n"
	    "[two]\n%stls = none\npassword = s3cret\noutput = %s/two\n"
	    "[bad]\n%stls = none\nauth = login\npassword = wrong\n"
	    "output = %s/bad\n",
	    dir, general, common, one_tls, dir, common, dir, common, dir);
	config_free(&cfg);
	assert_int_equal(config_load_string("t.ini", text, &cfg), 0);
}

/* SIGTERM once the first body was asked for: run_once's own handler
 * stops it. */
static void
each_pass(void)
{
	if (stop_at_first_body && !stopped && srv.body_fetches > 0) {
		stopped = true;
		raise(SIGTERM);
	}
}

/* Runs run_once with its stdout in out; returns its exit status. */
static int
once(char *const *names, size_t n)
{
	int rc;

	capture_stdout_begin();
	rc = run_once(cfg, names, n);
	free(out);
	out = capture_stdout_end();
	return rc;
}

static int
probe(const char *name)
{
	int rc;

	capture_stdout_begin();
	rc = run_probe(cfg, name);
	free(out);
	out = capture_stdout_end();
	return rc;
}

static void
expect_out(const char *want)
{
	expect_in(out, want, "stdout");
}

/* The mbox at rel under dir, or NULL when there is none. */
static char *
mbox(const char *rel)
{
	char path[128];

	snprintf(path, sizeof path, "%s/%s", dir, rel);
	return capture_file(path);
}

/* How many messages ("From " lines) the mbox at rel holds. */
static unsigned
entries(const char *rel)
{
	char *text = mbox(rel);
	unsigned n = 0;

	assert_non_null(text);
	for (const char *p = text; (p = strstr(p, "From ")) != NULL; p++)
		if (p == text || p[-1] == '\n')
			n++;
	free(text);
	return n;
}

static int
setup(void **state)
{
	(void)state;
	assert_int_equal(testdir_make(dir, sizeof dir, "mm-run"), 0);
	configure("max_connections = 1\n", "none");
	capture_log_begin(LOGL_INFO);
	imapd_wrap_start(&srv, each_pass);
	imapd_add_message(imapd_add_mailbox(&srv, "INBOX"), MSG1);
	imapd_add_message(&srv.boxes[0], MSG2);
	imapd_add_mailbox(&srv, "Work");
	stop_at_first_body = stopped = false;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	free(out);
	out = NULL;
	free(big);
	big = NULL;
	capture_log_end();
	testdir_remove(dir);
	return 0;
}

/* A message of about size bytes in Work. */
static void
add_big(size_t size)
{
	static const char head[] = "Subject: big\r\n\r\n";
	static const char line[] = "0123456789abcdef0123456789abcdef0123456789"
	    "abcdef0123456789abcdef\r\n";
	size_t len = sizeof head - 1;

	assert_non_null(big = malloc(size + sizeof line));
	memcpy(big, head, len);
	while (len < size) {
		memcpy(big + len, line, sizeof line - 1);
		len += sizeof line - 1;
	}
	big[len] = '\0';
	imapd_add_message(&srv.boxes[1], big);
}

/* Every account once, in config order, one at a time (max_connections 1):
 * a summary line each, the failing one's saying why; exit status 1. */
static void
test_once_every_account(void **state)
{
	const char *one, *two, *bad;
	const char *first, *second, *third;

	(void)state;
	add_big(2000);
	assert_int_equal(once(NULL, 0), 1);
	one = strstr(out, "one: ok: 1 mailbox checked, 1 opened, 2 messages "
	    "(57 B) added in ");
	two = strstr(out, "two: ok: 2 mailboxes checked, 2 opened, 3 messages "
	    "(2.1 KiB) added in ");
	bad = strstr(out, "bad: FAILED (authentication failed): 0 mailboxes "
	    "checked, 0 messages (0 B) added in ");
	if (one == NULL || two == NULL || bad == NULL)
		fail_msg("summary lines missing in:\n%s", out);
	assert_true(one < two && two < bad);
	expect_log("error: ");
	expect_log("AUTHENTICATIONFAILED");
	assert_int_equal(entries("one/INBOX.mbox"), 2);
	assert_int_equal(entries("two/INBOX.mbox"), 2);
	assert_int_equal(entries("two/Work.mbox"), 1);
	assert_null(mbox("bad/INBOX.mbox"));
	/* One connection at a time: each logs in after the one before it
	 * logged out. */
	assert_int_equal(srv.connections, 3);
	assert_int_equal(imapd_count(&srv, "AUTHENTICATE"), 2);
	first = strstr(srv.log, "AUTHENTICATE");
	second = strstr(first + 1, "AUTHENTICATE");
	third = strstr(srv.log, "LOGIN user");
	assert_non_null(third);
	assert_true(strstr(first, "LOGOUT") < second);
	assert_true(strstr(second, "LOGOUT") < third);
	assert_int_equal(srv.logouts, 2);
}

/* All succeed: 0; a second run adds nothing and says so. */
static void
test_once_again_adds_nothing(void **state)
{
	char *names[] = { "one", "two" };

	(void)state;
	assert_int_equal(once(names, 2), 0);
	expect_out("one: ok: 1 mailbox checked, 1 opened, 2 messages (");
	assert_null(strstr(out, "bad:"));
	assert_int_equal(once(names, 2), 0);
	expect_out("one: ok: 1 mailbox checked, ");
	expect_out(" 0 messages (0 B) added in ");
	assert_int_equal(entries("one/INBOX.mbox"), 2);
	assert_int_equal(srv.connections, 4);
}

/* -q (warnings only): nothing printed for a success, the failure still;
 * only the selected accounts connect; a selection of none does nothing. */
static void
test_once_quiet_and_selected(void **state)
{
	char *names[] = { "two", "bad" };
	char *nobody[] = { "nobody" };

	(void)state;
	log_set_level(LOGL_WARNING);
	assert_int_equal(once(names, 2), 1);
	assert_null(strstr(out, "ok:"));
	expect_out("bad: FAILED (authentication failed): ");
	assert_int_equal(srv.connections, 2);
	assert_null(mbox("one/INBOX.mbox"));
	assert_int_equal(entries("two/INBOX.mbox"), 2);

	assert_int_equal(once(nobody, 1), 0);
	assert_string_equal(out, "");
	assert_int_equal(srv.connections, 2);
}

/* Sizes over a MiB are said in MiB. */
static void
test_once_mib(void **state)
{
	char *names[] = { "two" };

	(void)state;
	add_big(1536 * 1024);
	assert_int_equal(once(names, 1), 0);
	expect_out("two: ok: 2 mailboxes checked, 2 opened, 3 messages (1.5 "
	    "MiB) added in ");
	assert_int_equal(entries("two/Work.mbox"), 1);
}

/* SIGTERM stops the run: the running sync is given up, the queued ones
 * never start, no success is printed, exit status 1. */
static void
test_once_signal(void **state)
{
	(void)state;
	srv.stall_after = 1;
	stop_at_first_body = true;
	assert_int_equal(once(NULL, 0), 1);
	assert_true(stopped);
	expect_log("warning: stopping on signal 15; uncommitted work is rolled "
	    "back");
	assert_null(strstr(out, "ok:"));
	assert_int_equal(srv.connections, 1);
}

/* --probe: the greeting and each capability list, then login and logout. */
static void
test_probe(void **state)
{
	(void)state;
	assert_int_equal(probe("one"), 0);
	expect_out("server: imap.example.org:143 (none)\n");
	expect_out("greeting: ");
	expect_out("imapd_mem ready\n");
	expect_out("capabilities before TLS:\n  IMAP4REV1\n  AUTH=PLAIN\n"
	    "  SASL-IR\n");
	expect_out("capabilities after login:\n  IMAP4REV1\n");
	expect_out("login: ok\nlogout: ok\n");
	assert_int_equal(srv.logouts, 1);
	assert_int_equal(imapd_count(&srv, "EXAMINE"), 0);
}

/* With STARTTLS: the handshake's outcome and the capabilities after it. */
static void
test_probe_starttls(void **state)
{
	(void)state;
	configure("", "starttls");
	srv.caps = "IMAP4rev1 STARTTLS AUTH=PLAIN SASL-IR";
	assert_int_equal(probe("one"), 0);
	expect_out("(starttls)\n");
	expect_out("  STARTTLS\n");
	expect_out("TLS: ");
	expect_out("capabilities after TLS:\n");
	expect_out("login: ok\n");
	assert_int_equal(imapd_count(&srv, "STARTTLS"), 1);
}

/* A refused login or an unknown account: exit status 1, said in the log. */
static void
test_probe_failures(void **state)
{
	(void)state;
	assert_int_equal(probe("bad"), 1);
	expect_log("error: account bad: authentication failed: ");
	assert_null(strstr(out, "login: ok"));
	expect_out("capabilities before TLS:\n");

	assert_int_equal(probe("nobody"), 1);
	expect_log("error: no account named nobody");
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_once_every_account, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_once_again_adds_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_once_quiet_and_selected,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_once_mib, setup, teardown),
		cmocka_unit_test_setup_teardown(test_once_signal, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe_starttls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_probe_failures, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
