/*
 * daemon: daemon_run() against tests/fakes/imapd_mem on the in-memory
 * transport, on the loop it makes (imapd_wrap.h).  The test watches each
 * pass of that loop and, once what it waits for has happened, sends the
 * process the signal the daemon serves (SIGHUP to reload, SIGTERM to stop).
 * The mbox files, the state files, the log and the service manager
 * notifications are checked.
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testdir.h"
#include <ftw.h>

#include "../fakes/imapd_wrap.h"
#include "capture.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "mirror/state.h"

#define MSG1 "Subject: one\r\n\r\nFirst body\r\n"
#define MSG2 "Subject: two\r\n\r\nSecond body\r\n"
#define MSG3 "Subject: three\r\n\r\nThird body\r\n"

#define GENERAL "[general]\nstate_dir = %s/state\ntimeout = 30s\n" \
    "max_connections = 1\n"
#define ACCOUNT "host = imap.example.org\ntls = none\nallow_plaintext = yes\n" \
    "user = user\nidle = no\n"

static struct imapd srv;
static char dir[64];
static char path[128];		/* the config file */
static void (*step)(void);	/* what the test does after a loop pass */
static unsigned stage;
/* The service manager's end: a thread keeps reading, as the manager does
 * (a full socket would block the daemon's sends). */
static int notify_fd = -1;
static pthread_t reader;
static atomic_bool reader_stop;
static pthread_mutex_t notified_lock = PTHREAD_MUTEX_INITIALIZER;
static char notified[65536];	/* the datagrams, "\n"-separated */

/* "good" mirrors INBOX, "bad" has the wrong password. */
static void
write_config(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fchmod(fileno(f), 0600), 0);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void
write_first_config(void)
{
	char text[1024];

	snprintf(text, sizeof text, GENERAL
	    "[good]\n" ACCOUNT "password = s3cret\ninterval = 1h\n"
	    "output = %s/good\nmailboxes = INBOX\n"
	    "[bad]\n" ACCOUNT "auth = login\npassword = wrong\n"
	    "output = %s/bad\n", dir, dir, dir);
	write_config(text);
}

static bool
logged(const char *text)
{
	return strstr(capture_log(), text) != NULL;
}

/* Reads what is waiting; false when nothing was. */
static bool
read_notification(void)
{
	char buf[4096];
	ssize_t n;
	size_t len;

	if ((n = recv(notify_fd, buf, sizeof buf - 1, MSG_DONTWAIT)) <= 0)
		return false;
	buf[n] = '\0';
	pthread_mutex_lock(&notified_lock);
	len = strlen(notified);
	snprintf(notified + len, sizeof notified - len, "%s\n", buf);
	pthread_mutex_unlock(&notified_lock);
	return true;
}

static void *
read_notifications(void *arg)
{
	struct pollfd pfd = { .fd = notify_fd, .events = POLLIN };

	(void)arg;
	while (!atomic_load(&reader_stop))
		if (poll(&pfd, 1, 20) > 0)
			(void)read_notification();
	return NULL;
}

static bool
was_notified(const char *text)
{
	bool found;

	pthread_mutex_lock(&notified_lock);
	found = strstr(notified, text) != NULL;
	pthread_mutex_unlock(&notified_lock);
	return found;
}

static void
each_pass(void)
{
	if (step != NULL)
		step();
}

/* Runs the daemon on the config file; returns its exit status. */
static int
run_daemon(void)
{
	struct config *cfg = NULL;
	struct shard none = { 0, 0 };

	assert_int_equal(config_load(path, &cfg), 0);
	return daemon_run(cfg, path, NULL, 0, &none);
}

static int
setup(void **state)
{
	(void)state;
	assert_int_equal(testdir_make(dir, sizeof dir, "mm-daemon"), 0);
	snprintf(path, sizeof path, "%s/mm.ini", dir);
	write_first_config();
	capture_log_begin(LOGL_INFO);
	imapd_wrap_start(&srv, each_pass);
	imapd_add_message(imapd_add_mailbox(&srv, "INBOX"), MSG1);
	imapd_add_message(&srv.boxes[0], MSG2);
	imapd_add_message(imapd_add_mailbox(&srv, "Work"), MSG3);
	step = NULL;
	stage = 0;
	notified[0] = '\0';
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (notify_fd != -1)
		close(notify_fd);
	notify_fd = -1;
	capture_log_end();
	testdir_remove(dir);
	return 0;
}

/* How many messages ("From " lines) the mbox at rel under dir holds; 0
 * when there is none. */
static unsigned
entries(const char *rel)
{
	char file[192];
	char *text;
	unsigned n = 0;

	snprintf(file, sizeof file, "%s/%s", dir, rel);
	if ((text = capture_file(file)) == NULL)
		return 0;
	for (const char *p = text; (p = strstr(p, "From ")) != NULL; p++)
		if (p == text || p[-1] == '\n')
			n++;
	free(text);
	return n;
}

/* The next sync of account as its state file says. */
static time_t
next_attempt(const char *account)
{
	char state_dir[128], *adir, *error = NULL;
	struct account_state st = { 0 };
	time_t when;

	snprintf(state_dir, sizeof state_dir, "%s/state", dir);
	assert_non_null(adir = state_account_dir(state_dir, account));
	if (state_load(adir, &st, &error) != 0)
		fail_msg("%s", error);
	when = st.next_attempt;
	state_clear(&st);
	free(adir);
	return when;
}

/* The service manager's socket, as systemd passes it, read by a thread;
 * a watchdog asked for every 100 ms. */
static void
listen_as_manager(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/notify", dir);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(notify_fd >= 0);
	assert_int_equal(bind(notify_fd, (struct sockaddr *)&sun, sizeof sun),
	    0);
	atomic_store(&reader_stop, false);
	assert_int_equal(pthread_create(&reader, NULL, read_notifications,
	    NULL), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", sun.sun_path, 1), 0);
	assert_int_equal(setenv("WATCHDOG_USEC", "100000", 1), 0);
	assert_int_equal(unsetenv("WATCHDOG_PID"), 0);
}

/* Both accounts have had their first sync (and the watchdog a ping). */
static void
stop_after_first_syncs(void)
{
	if (stage == 0 && logged("account good: 2 new messages") &&
	    logged("retrying in") && was_notified("WATCHDOG=1")) {
		stage = 1;
		raise(SIGTERM);
	}
}

/* Both accounts sync soon after the start; the good one's mail lands in its
 * mbox and its next sync is an interval away, the bad one backs off
 * (slowly: authentication) and says so; the state files say when each is
 * due; the service manager hears ready, the status, watchdog pings and
 * stopping; SIGTERM stops it with status 0. */
static void
test_sync_backoff_stop(void **state)
{
	time_t t0, t1, when;
	const char *retry;
	double delay;

	(void)state;
	listen_as_manager();
	step = stop_after_first_syncs;
	t0 = time(NULL);
	assert_int_equal(run_daemon(), 0);
	t1 = time(NULL);
	atomic_store(&reader_stop, true);
	assert_int_equal(pthread_join(reader, NULL), 0);
	while (read_notification())
		continue;
	assert_int_equal(stage, 1);
	expect_log("info: mboxmirror ");
	expect_log(" running: 2 accounts\n");
	expect_log("info: account good: 2 new messages (57 bytes) in ");
	expect_log("(failure 1, authentication: backing off slowly so the "
	    "server does not lock the account)\n");
	expect_log("info: stopping on signal 15\n");
	expect_log("info: stopped\n");
	assert_int_equal(entries("good/INBOX.mbox"), 2);
	assert_int_equal(entries("good/Work.mbox"), 0);
	assert_int_equal(entries("bad/INBOX.mbox"), 0);
	assert_int_equal(imapd_count(&srv, "LOGIN user wrong"), 1);

	/* Interval 1h, spread by 5%. */
	when = next_attempt("good");
	assert_true(when >= t0 + 3420 && when <= t1 + 3780);
	retry = strstr(capture_log(), "; retrying in ");
	assert_non_null(retry);
	delay = strtod(retry + strlen("; retrying in "), NULL);
	assert_true(delay > 0);
	when = next_attempt("bad");
	assert_true(when >= t0 + (time_t)delay - 1 &&
	    when <= t1 + (time_t)delay + 1);

	expect_in(notified, "READY=1", "the notifications");
	expect_in(notified, "STATUS=2 accounts: 1 ok, 1 failing, 0 syncing, "
	    "0 on push\n", "the notifications");
	expect_in(notified, "STATUS=2 accounts: 0 ok, 0 failing, 1 syncing",
	    "the notifications");
	expect_in(notified, "WATCHDOG=1\n", "the notifications");
	expect_in(notified, "STOPPING=1\n", "the notifications");
}

static void
write_broken_config(void)
{
	write_config("[general]\nno_such_key = 1\n");
}

/* good now mirrors Work too (changed), bad is gone, third is new. */
static void
write_second_config(void)
{
	char text[1024];

	snprintf(text, sizeof text, GENERAL
	    "[good]\n" ACCOUNT "password = s3cret\ninterval = 1h\n"
	    "output = %s/good\nmailboxes = INBOX, Work\n"
	    "[third]\n" ACCOUNT "password = s3cret\ninterval = 1h\n"
	    "output = %s/third\nmailboxes = Work\n", dir, dir, dir);
	write_config(text);
}

static void
reload_steps(void)
{
	switch (stage) {
	case 0:
		if (logged("account good: 2 new messages") &&
		    logged("retrying in")) {
			write_broken_config();
			stage = 1;
			raise(SIGHUP);
		}
		return;
	case 1:
		if (logged("keeping the running one")) {
			write_second_config();
			stage = 2;
			raise(SIGHUP);
		}
		return;
	case 2:
		if (logged("account good: 1 new message ") &&
		    logged("account third: 1 new message ")) {
			stage = 3;
			raise(SIGTERM);
		}
		return;
	}
}

/* SIGHUP: a broken file is refused and everything runs on; a good one
 * stops the removed account, restarts the changed one (which then fetches
 * only what it did not have) and starts the new one. */
static void
test_reload(void **state)
{
	(void)state;
	step = reload_steps;
	assert_int_equal(run_daemon(), 0);
	assert_int_equal(stage, 3);
	expect_log("info: reloading ");
	expect_log("error: the new configuration has errors; keeping the "
	    "running one\n");
	expect_log("info: account bad: removed, stopping\n");
	expect_log("info: account good: changed, restarting\n");
	expect_log("info: configuration reloaded: 1 added, 1 removed, 1 "
	    "changed\n");
	assert_int_equal(entries("good/INBOX.mbox"), 2);
	assert_int_equal(entries("good/Work.mbox"), 1);
	assert_int_equal(entries("third/Work.mbox"), 1);
	assert_int_equal(entries("third/INBOX.mbox"), 0);
	/* The removed account was not tried again. */
	assert_int_equal(imapd_count(&srv, "LOGIN user wrong"), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync_backoff_stop, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
