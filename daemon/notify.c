#include "notify.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/num.h"

static int	 parse_socket(const char *name);
static uint64_t	 parse_watchdog(const char *usec, const char *pid);
static int	 send_datagram(const char *msg, size_t len);
static int	 send_failed(const char *what, int error);
static size_t	 put_status(char *buf, size_t size, const char *text);

static struct {
	bool enabled;
	bool failure_logged;
	struct sockaddr_un addr;
	socklen_t addrlen;
	char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
	uint64_t watchdog_usec;
} notify;

int
notify_init(void)
{
	const char *sock, *usec, *pid;

	memset(&notify, 0, sizeof notify);
	sock = getenv("NOTIFY_SOCKET");
	usec = getenv("WATCHDOG_USEC");
	pid = getenv("WATCHDOG_PID");
	if (sock != NULL && parse_socket(sock) == 0) {
		notify.enabled = true;
		notify.watchdog_usec = parse_watchdog(usec, pid);
		log_debug("notify: socket %s, watchdog %" PRIu64 " us",
		    notify.name, notify.watchdog_usec);
	}
	/* getenv() results die here; everything needed has been copied. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return notify.enabled ? 1 : 0;
}

static int
parse_socket(const char *name)
{
	size_t len = strlen(name);

	/*
	 * The manager hands out either a path or an abstract name; a relative
	 * path would depend on our cwd and is not something it sends.
	 */
	if (name[0] != '/' && name[0] != '@') {
		log_debug("notify: ignoring NOTIFY_SOCKET \"%s\": neither a path "
		    "nor an abstract name", name);
		return -1;
	}
	if (len < 2 || len > sizeof notify.addr.sun_path ||
	    (name[0] == '/' && len == sizeof notify.addr.sun_path)) {
		log_debug("notify: ignoring NOTIFY_SOCKET of length %zu", len);
		return -1;
	}
	notify.addr.sun_family = AF_UNIX;
	memcpy(notify.addr.sun_path, name, len);
	if (name[0] == '@') {
		/* Abstract: a leading NUL, and the length counts no final NUL. */
		notify.addr.sun_path[0] = '\0';
		notify.addrlen = (socklen_t)(offsetof(struct sockaddr_un,
		    sun_path) + len);
	} else
		notify.addrlen = (socklen_t)(offsetof(struct sockaddr_un,
		    sun_path) + len + 1);
	memcpy(notify.name, name, len + 1);
	return 0;
}

static uint64_t
parse_watchdog(const char *usec, const char *pid)
{
	uint64_t value, owner;

	if (usec == NULL)
		return 0;
	if (num_parse_u64(usec, UINT64_MAX, &value) == -1 || value == 0) {
		log_debug("notify: ignoring WATCHDOG_USEC \"%s\"", usec);
		return 0;
	}
	if (pid != NULL) {
		if (num_parse_u64(pid, UINT64_MAX, &owner) == -1 || owner == 0) {
			log_debug("notify: ignoring WATCHDOG_PID \"%s\"", pid);
			return 0;
		}
		if (owner != (uint64_t)getpid()) {
			log_debug("notify: the watchdog is for PID %" PRIu64
			    ", not us", owner);
			return 0;
		}
	}
	return value;
}

bool
notify_enabled(void)
{
	return notify.enabled;
}

uint64_t
notify_watchdog_usec(void)
{
	return notify.enabled ? notify.watchdog_usec : 0;
}

static int
send_failed(const char *what, int error)
{
	if (!notify.failure_logged) {
		notify.failure_logged = true;
		log_debug("notify: %s %s: %s (further failures not logged)",
		    what, notify.name, strerror(error));
	}
	return -1;
}

static int
send_datagram(const char *msg, size_t len)
{
	struct iovec iov;
	struct msghdr mh;
	ssize_t n;
	int fd, error;

	if (!notify.enabled)
		return 0;
	/*
	 * A socket per message: notifications are rare (start, reload, stop,
	 * a watchdog ping every few tens of seconds), and no descriptor is
	 * kept open for children or a restarted manager to trip over.
	 */
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return send_failed("socket for", errno);
	memset(&iov, 0, sizeof iov);
	iov.iov_base = (void *)(uintptr_t)msg;
	iov.iov_len = len;
	memset(&mh, 0, sizeof mh);
	mh.msg_name = &notify.addr;
	mh.msg_namelen = notify.addrlen;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	/* Never wait: a manager that reads nothing would stall the loop (and
	 * with it SIGTERM); a notification lost is not fatal. */
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	error = errno;
	close(fd);
	if (n == -1)
		return send_failed("cannot send to", error);
	if ((size_t)n != len)
		return send_failed("short datagram to", EMSGSIZE);
	return 1;
}

/*
 * Writes "STATUS=<text>" into buf (NUL-terminated) and returns its length.
 * A newline would start a new assignment, so every control character
 * becomes a space; a cut never splits a UTF-8 sequence.
 */
static size_t
put_status(char *buf, size_t size, const char *text)
{
	static const char key[] = "STATUS=";
	size_t len, room;

	if (size < sizeof key)
		return 0;
	memcpy(buf, key, sizeof key);
	room = size - sizeof key;
	if (room > NOTIFY_STATUS_MAX)
		room = NOTIFY_STATUS_MAX;
	len = strlen(text);
	if (len > room) {
		len = room;
		while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		buf[sizeof key - 1 + i] = (c < 0x20 || c == 0x7f) ? ' ' :
		    (char)c;
	}
	buf[sizeof key - 1 + len] = '\0';
	return sizeof key - 1 + len;
}

int
notify_send(const char *fmt, ...)
{
	char msg[NOTIFY_MSG_MAX];
	va_list ap;
	int n;

	if (!notify.enabled)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return send_failed("cannot format a message for", errno);
	if ((size_t)n >= sizeof msg)
		return send_failed("message too long for", EMSGSIZE);
	return send_datagram(msg, (size_t)n);
}

int
notify_ready(const char *status)
{
	static const char ready[] = "READY=1\n";
	char msg[NOTIFY_MSG_MAX];
	size_t len = sizeof ready - 1;

	if (!notify.enabled)
		return 0;
	memcpy(msg, ready, len);
	if (status != NULL)
		len += put_status(msg + len, sizeof msg - len, status);
	else
		len--;		/* no trailing newline */
	return send_datagram(msg, len);
}

int
notify_status(const char *fmt, ...)
{
	char text[NOTIFY_MSG_MAX], msg[NOTIFY_MSG_MAX];
	va_list ap;
	size_t len;

	if (!notify.enabled)
		return 0;
	va_start(ap, fmt);
	/* Truncation is fine: put_status() cuts much shorter anyway. */
	if (vsnprintf(text, sizeof text, fmt, ap) < 0)
		text[0] = '\0';
	va_end(ap);
	len = put_status(msg, sizeof msg, text);
	return send_datagram(msg, len);
}

int
notify_reloading(void)
{
	struct timespec ts;
	uint64_t now;

	if (!notify.enabled)
		return 0;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return notify_send("RELOADING=1");
	now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	return notify_send("RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now);
}

int
notify_stopping(void)
{
	return notify_send("STOPPING=1");
}

int
notify_watchdog(void)
{
	return notify_send("WATCHDOG=1");
}
