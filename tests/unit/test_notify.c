/*
 * test_notify: the sd_notify datagrams, checked byte for byte on a socket of
 * our own (a path and an abstract name), and the environment parsing.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
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

#include "notify.h"

struct listener {
	int fd;
	char dir[64];
	char name[128];		/* the NOTIFY_SOCKET value */
};

static unsigned abstract_seq;

static void
listener_bind(struct listener *l, bool abstract)
{
	struct sockaddr_un sun;
	socklen_t len;

	memset(l, 0, sizeof *l);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	if (abstract) {
		snprintf(l->name, sizeof l->name, "@mboxmirror-test-%ld-%u",
		    (long)getpid(), abstract_seq++);
		memcpy(sun.sun_path + 1, l->name + 1, strlen(l->name) - 1);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    strlen(l->name));
	} else {
		strcpy(l->dir, "/tmp/mm-notify-XXXXXX");
		assert_non_null(mkdtemp(l->dir));
		snprintf(l->name, sizeof l->name, "%s/notify", l->dir);
		strcpy(sun.sun_path, l->name);
		len = (socklen_t)sizeof sun;
	}
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sun, len), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", l->name, 1), 0);
}

static void
listener_close(struct listener *l)
{
	close(l->fd);
	if (l->dir[0] != '\0') {
		unlink(l->name);
		rmdir(l->dir);
	}
}

/* The next datagram, NUL-terminated; the sender has already queued it. */
static ssize_t
listener_recv(struct listener *l, char *buf, size_t size)
{
	ssize_t n;

	n = recv(l->fd, buf, size - 1, MSG_DONTWAIT);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static void
expect_datagram(struct listener *l, const char *want)
{
	char buf[NOTIFY_MSG_MAX + 1];
	ssize_t n;

	n = listener_recv(l, buf, sizeof buf);
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_string_equal(buf, want);
}

static void
expect_nothing(struct listener *l)
{
	char buf[64];

	assert_int_equal(listener_recv(l, buf, sizeof buf), -1);
	assert_int_equal(errno, EAGAIN);
}

static int
setup(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	log_set_sink(NULL, NULL);
	log_set_level(LOGL_INFO);
	return 0;
}

static void
check_all_messages(bool abstract)
{
	struct listener l;

	listener_bind(&l, abstract);
	assert_int_equal(notify_init(), 1);
	assert_true(notify_enabled());

	assert_int_equal(notify_ready(NULL), 1);
	expect_datagram(&l, "READY=1");
	assert_int_equal(notify_ready("mirroring 2 accounts"), 1);
	expect_datagram(&l, "READY=1\nSTATUS=mirroring 2 accounts");
	assert_int_equal(notify_status("%u of %u synced", 1u, 2u), 1);
	expect_datagram(&l, "STATUS=1 of 2 synced");
	assert_int_equal(notify_watchdog(), 1);
	expect_datagram(&l, "WATCHDOG=1");
	assert_int_equal(notify_stopping(), 1);
	expect_datagram(&l, "STOPPING=1");
	assert_int_equal(notify_send("ERRNO=%d\nSTATUS=%s", 5, "x"), 1);
	expect_datagram(&l, "ERRNO=5\nSTATUS=x");
	expect_nothing(&l);
	listener_close(&l);
}

static void
test_path_socket(void **state)
{
	check_all_messages(false);
}

static void
test_abstract_socket(void **state)
{
	check_all_messages(true);
}

/* A manager that reads nothing: sends fail at once (the queue is full)
 * instead of blocking the loop; an alarm guards against a hang. */
static void
test_unread_socket_never_blocks(void **state)
{
	struct listener l;
	int sent = 0, failed = 0;

	(void)state;
	listener_bind(&l, true);
	assert_int_equal(notify_init(), 1);
	alarm(10);
	for (int i = 0; i < 200; i++) {
		if (notify_status("flood %d", i) == 1)
			sent++;
		else
			failed++;
	}
	alarm(0);
	assert_true(sent > 0);
	assert_true(failed > 0);
	listener_close(&l);
}

static void
test_reloading(void **state)
{
	struct listener l;
	struct timespec ts;
	char buf[256], *end;
	const char *prefix = "RELOADING=1\nMONOTONIC_USEC=";
	uint64_t before, after, sent;

	listener_bind(&l, true);
	assert_int_equal(notify_init(), 1);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	before = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	assert_int_equal(notify_reloading(), 1);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	after = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;

	assert_true(listener_recv(&l, buf, sizeof buf) > 0);
	assert_memory_equal(buf, prefix, strlen(prefix));
	errno = 0;
	sent = strtoull(buf + strlen(prefix), &end, 10);
	assert_int_equal(errno, 0);
	assert_true(end != buf + strlen(prefix));
	assert_int_equal(*end, '\0');	/* exactly two lines, no extra */
	assert_true(sent >= before && sent <= after);
	listener_close(&l);
}

static void
test_status_sanitised(void **state)
{
	struct listener l;
	char buf[NOTIFY_MSG_MAX + 1], text[700];
	ssize_t n;

	listener_bind(&l, false);
	assert_int_equal(notify_init(), 1);

	assert_int_equal(notify_status("a\nREADY=1\r\tb%s", "\x7f" "c"), 1);
	expect_datagram(&l, "STATUS=a READY=1  b c");
	assert_int_equal(notify_ready("one\ntwo"), 1);
	expect_datagram(&l, "READY=1\nSTATUS=one two");

	/* 'x' then 2-byte sequences: byte 512 is a continuation byte. */
	text[0] = 'x';
	for (size_t i = 1; i + 1 < sizeof text - 1; i += 2) {
		text[i] = (char)0xc3;
		text[i + 1] = (char)0xa9;
	}
	text[sizeof text - 1] = '\0';
	assert_int_equal(notify_status("%s", text), 1);
	n = listener_recv(&l, buf, sizeof buf);
	assert_int_equal(n, (ssize_t)(strlen("STATUS=") + NOTIFY_STATUS_MAX - 1));
	assert_memory_equal(buf + strlen("STATUS="), text,
	    NOTIFY_STATUS_MAX - 1);
	assert_int_equal((unsigned char)buf[n - 1], 0xa9);
	listener_close(&l);
}

static void
test_unset_is_noop(void **state)
{
	assert_int_equal(notify_init(), 0);
	assert_false(notify_enabled());
	assert_int_equal(notify_ready("x"), 0);
	assert_int_equal(notify_status("y"), 0);
	assert_int_equal(notify_reloading(), 0);
	assert_int_equal(notify_stopping(), 0);
	assert_int_equal(notify_watchdog(), 0);
	assert_int_equal(notify_send("READY=1"), 0);
	assert_int_equal(notify_watchdog_usec(), 0);
}

static void
test_bad_socket_values(void **state)
{
	static const char *const bad[] = {
		"", "@", "relative/notify", "notify", "vsock:2:1234",
	};
	char longpath[160];

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_int_equal(setenv("NOTIFY_SOCKET", bad[i], 1), 0);
		assert_int_equal(notify_init(), 0);
		assert_false(notify_enabled());
		assert_int_equal(notify_ready(NULL), 0);
	}
	/* A path needs room for its NUL; an abstract name does not. */
	memset(longpath, 'a', sizeof longpath);
	longpath[0] = '/';
	longpath[sizeof(((struct sockaddr_un *)0)->sun_path)] = '\0';
	assert_int_equal(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	assert_int_equal(notify_init(), 0);
	longpath[0] = '@';
	assert_int_equal(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	assert_int_equal(notify_init(), 1);
	longpath[sizeof(((struct sockaddr_un *)0)->sun_path)] = 'a';
	longpath[sizeof(((struct sockaddr_un *)0)->sun_path) + 1] = '\0';
	assert_int_equal(setenv("NOTIFY_SOCKET", longpath, 1), 0);
	assert_int_equal(notify_init(), 0);
}

static void
test_environment_removed(void **state)
{
	struct listener l;

	listener_bind(&l, true);
	assert_int_equal(setenv("WATCHDOG_USEC", "1000000", 1), 0);
	assert_int_equal(setenv("WATCHDOG_PID", "1", 1), 0);
	assert_int_equal(notify_init(), 1);
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_null(getenv("WATCHDOG_USEC"));
	assert_null(getenv("WATCHDOG_PID"));
	/* The settings read survive the removal. */
	assert_int_equal(notify_watchdog(), 1);
	expect_datagram(&l, "WATCHDOG=1");
	listener_close(&l);
}

static uint64_t
watchdog_with(const char *usec, const char *pid)
{
	struct listener l;
	uint64_t v;

	listener_bind(&l, true);
	if (usec != NULL)
		assert_int_equal(setenv("WATCHDOG_USEC", usec, 1), 0);
	if (pid != NULL)
		assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
	assert_int_equal(notify_init(), 1);
	v = notify_watchdog_usec();
	listener_close(&l);
	return v;
}

static void
test_watchdog_usec(void **state)
{
	static const char *const bad_usec[] = {
		"", "0", "-5", " 5", "+5", "5x", "5 ", "abc",
		"99999999999999999999999",
	};
	static const char *const bad_pid[] = { "", "0", "x", "-1", "1 " };
	char me[32], other[32];

	snprintf(me, sizeof me, "%ld", (long)getpid());
	snprintf(other, sizeof other, "%ld", (long)getpid() + 1);

	assert_int_equal(watchdog_with(NULL, NULL), 0);
	assert_int_equal(watchdog_with("120000000", NULL), 120000000);
	assert_int_equal(watchdog_with("120000000", me), 120000000);
	assert_int_equal(watchdog_with("120000000", other), 0);
	assert_int_equal(watchdog_with(NULL, me), 0);
	for (size_t i = 0; i < sizeof bad_usec / sizeof *bad_usec; i++)
		assert_int_equal(watchdog_with(bad_usec[i], me), 0);
	for (size_t i = 0; i < sizeof bad_pid / sizeof *bad_pid; i++)
		assert_int_equal(watchdog_with("1000000", bad_pid[i]), 0);

	/* No socket to ping: no watchdog either. */
	assert_int_equal(setenv("WATCHDOG_USEC", "1000000", 1), 0);
	assert_int_equal(notify_init(), 0);
	assert_int_equal(notify_watchdog_usec(), 0);
}

static unsigned debug_lines;
static char last_line[LOG_LINE_MAX];

static void
count_sink(enum log_level level, const char *line, void *arg)
{
	if (strncmp(line, "notify: ", 8) != 0)
		return;
	assert_int_equal(level, LOGL_DEBUG);
	debug_lines++;
	snprintf(last_line, sizeof last_line, "%s", line);
}

static void
test_send_failure_logged_once(void **state)
{
	struct listener l;
	char big[NOTIFY_MSG_MAX + 16];

	listener_bind(&l, false);
	assert_int_equal(notify_init(), 1);
	/* The manager went away: nobody listens on the path any more. */
	listener_close(&l);

	debug_lines = 0;
	log_set_level(LOGL_DEBUG);
	log_set_sink(count_sink, NULL);
	assert_int_equal(notify_ready("x"), -1);
	assert_int_equal(debug_lines, 1);
	assert_non_null(strstr(last_line, l.name));
	assert_int_equal(notify_watchdog(), -1);
	assert_int_equal(notify_status("y"), -1);
	assert_int_equal(debug_lines, 1);

	/* Too long for one datagram: refused, not cut. */
	listener_bind(&l, false);
	assert_int_equal(notify_init(), 1);
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(notify_send("X=%s", big), -1);
	expect_nothing(&l);
	assert_int_equal(notify_send("X=%s", "fits"), 1);
	expect_datagram(&l, "X=fits");
	listener_close(&l);
	log_set_sink(NULL, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_path_socket, setup),
		cmocka_unit_test_setup(test_abstract_socket, setup),
		cmocka_unit_test_setup(test_reloading, setup),
		cmocka_unit_test_setup(test_status_sanitised, setup),
		cmocka_unit_test_setup(test_unset_is_noop, setup),
		cmocka_unit_test_setup(test_bad_socket_values, setup),
		cmocka_unit_test_setup(test_environment_removed, setup),
		cmocka_unit_test_setup(test_watchdog_usec, setup),
		cmocka_unit_test_setup(test_send_failure_logged_once, setup),
		cmocka_unit_test_setup(test_unread_socket_never_blocks, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
