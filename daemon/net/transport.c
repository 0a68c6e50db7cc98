/*
 * The socket transport behind struct transport_ops (see transport.h):
 * resolving, connecting, the write queue, timeouts and events, and GnuTLS
 * stacked on the socket through push/pull.  Over 900 lines, and one file,
 * because plain and TLS I/O share one state machine, one set of buffers
 * (the write queue, the read-ahead GnuTLS pulls from) and one timer; what
 * TLS needs besides moving bytes (trust anchors, the certificate and pin
 * check, failure messages, resumption) is in tls.c.
 */
#include "net/transport.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "log.h"
#include "net/resolve.h"
#include "net/tls.h"

#define TLS_RECORD_MAX	16384
#define TLS_RECORD_OVERHEAD 2048	/* header, MAC/tag, padding: at most */
/*
 * GnuTLS pulls a record header, then its body: two recv() calls per record,
 * and servers send records of a few KB.  Reading the socket in blocks this
 * large and handing GnuTLS slices cuts the system calls of a bulk fetch
 * twentyfold (169,000 recv() calls for 342 MB before).
 */
#define TLS_PULL_BLOCK	(128 * 1024)
/* Handshake steps run in a row on what the read-ahead block holds. */
#define HANDSHAKE_RETRIES	64
/*
 * While this much more input is certain, the socket does not report
 * readable for less (SO_RCVLOWAT): a bulk literal then costs one wake-up
 * per 64 KiB instead of one per packet.  It matches the session's progress
 * rule, which counts 64 KiB as progress, so no stall is detected later.
 */
#define RECV_LOWAT	(64 * 1024)
#define EVENT_NONE	(-1)

enum transport_state {
	TS_IDLE,		/* never connected */
	TS_RESOLVING,
	TS_CONNECTING,
	TS_HANDSHAKE,
	TS_OPEN,
	TS_CLOSED,		/* after an error, EOF, timeout or close */
};

struct sock_transport {
	struct transport base;		/* first: the operations */
	struct ev_loop *loop;
	transport_cb *cb;
	void *arg;

	char *host;
	uint16_t port;
	bool implicit_tls;
	char *ca_file;
	bool has_pin;
	uint8_t pin[TLS_PIN_LEN];
	unsigned timeout;
	char *log_prefix;
	char *peer;		/* "host:port" for messages */
	char *cache_key;	/* TLS session cache key */

	enum transport_state state;
	unsigned gen;		/* changes whenever the connection does */
	unsigned depth;		/* callbacks in progress */
	bool free_pending;
	int pending_event;	/* delivered from the idle watcher */
	bool kick_readable;	/* raise READABLE from the idle watcher */
	bool eof_seen;		/* TLS close_notify behind returned data */

	int fd;
	ev_io io;
	int io_events;
	ev_timer timer;
	ev_idle kick;

	struct resolve *resolve;
	struct addrinfo *addrs;
	struct addrinfo *next_addr;
	int last_errno;
	bool last_timed_out;

	gnutls_certificate_credentials_t cred;
	gnutls_session_t session;
	bool tls_up;
	bool resumed;
	bool starttls;
	int hs_events;
	bool read_wants_write;
	bool write_wants_read;
	size_t tls_send_len;	/* size of a send that returned E_AGAIN */
	int tls_io_errno;	/* the socket error behind a push/pull error */
	unsigned char *pull;	/* ciphertext read ahead for GnuTLS */
	size_t pull_off;
	size_t pull_len;
	int lowat;		/* SO_RCVLOWAT set on fd (0: the default) */
	uint64_t expect;	/* input still certain to come, as promised */
	bool drained;		/* a short recv(): the socket is empty */
	struct tls_check check;	/* of the server's certificate */
	bool hs_heard;		/* the server has sent handshake bytes */
	char plain[64];		/* its first line, if it was plain text */

	char *wbuf;
	size_t wcap;
	size_t woff;
	size_t wlen;

	enum transport_error_kind kind;	/* of error */
	char error[512];
	char desc[128];
};

static struct transport *sock_new(struct ev_loop *,
		    const struct transport_params *, transport_cb *, void *);
static void	sock_free(struct transport *);
static int	sock_connect(struct transport *);
static int	sock_start_tls(struct transport *);
static ssize_t	sock_read(struct transport *, void *, size_t);
static int	sock_write(struct transport *, const void *, size_t);
static size_t	sock_queued(const struct transport *);
static void	sock_expect(struct transport *, uint64_t);
static void	sock_set_timeout(struct transport *, unsigned);
static void	sock_close(struct transport *);
static bool	sock_is_tls(const struct transport *);
static bool	sock_peer_is_local(const struct transport *);
static bool	sock_tls_resumed(const struct transport *);
static const char *sock_description(const struct transport *);
static const char *sock_error(const struct transport *);
static enum transport_error_kind sock_error_kind(const struct transport *);
static bool	transport_emit(struct sock_transport *, enum transport_event);
static void	transport_fail(struct sock_transport *, enum transport_event,
		    enum transport_error_kind, const char *, ...)
		    MM_PRINTF(4, 5);
static void	transport_teardown(struct sock_transport *);
static void	transport_update_io(struct sock_transport *);
static void	transport_try_next(struct sock_transport *);
static void	transport_handshake(struct sock_transport *);
static void	transport_emit_readable(struct sock_transport *);
static void	transport_io_cb(struct ev_loop *, ev_io *, int);
static void	transport_timer_cb(struct ev_loop *, ev_timer *, int);
static void	transport_kick_cb(struct ev_loop *, ev_idle *, int);

/* The socket transport behind the operations' struct transport. */
static struct sock_transport *
sock(struct transport *base)
{
	return (struct sock_transport *)base;
}

static const struct sock_transport *
csock(const struct transport *base)
{
	return (const struct sock_transport *)base;
}

static const char *
transport_prefix(const struct sock_transport *t)
{
	return t->log_prefix != NULL ? t->log_prefix : "transport";
}

static struct transport *
sock_new(struct ev_loop *loop, const struct transport_params *params,
    transport_cb *cb, void *arg)
{
	struct sock_transport *t;
	int n;

	if ((t = calloc(1, sizeof *t)) == NULL)
		return NULL;
	t->base.ops = &transport_socket_ops;
	t->loop = loop;
	t->cb = cb;
	t->arg = arg;
	t->fd = -1;
	t->pending_event = EVENT_NONE;
	t->state = TS_IDLE;
	t->port = params->port;
	t->implicit_tls = params->tls;
	t->timeout = params->timeout;
	if (params->pin_sha256 != NULL) {
		t->has_pin = true;
		memcpy(t->pin, params->pin_sha256, TLS_PIN_LEN);
	}
	if ((t->host = strdup(params->host != NULL ? params->host : "")) ==
	    NULL)
		goto fail;
	if (params->ca_file != NULL &&
	    (t->ca_file = strdup(params->ca_file)) == NULL)
		goto fail;
	if (params->log_prefix != NULL &&
	    (t->log_prefix = strdup(params->log_prefix)) == NULL)
		goto fail;
	n = asprintf(&t->peer, strchr(t->host, ':') != NULL ? "[%s]:%u" :
	    "%s:%u", t->host, (unsigned)t->port);
	if (n == -1) {
		t->peer = NULL;
		goto fail;
	}
	t->cache_key = tls_cache_key(params->tls_cache_scope, t->host, t->port,
	    t->ca_file, t->has_pin ? t->pin : NULL);
	if (t->cache_key == NULL)
		goto fail;
	t->check.host = t->host;
	t->check.pin = t->has_pin ? t->pin : NULL;
	snprintf(t->desc, sizeof t->desc, "plain");

	ev_io_init(&t->io, transport_io_cb, 0, EV_READ);
	t->io.data = t;
	ev_timer_init(&t->timer, transport_timer_cb, 0., (ev_tstamp)t->timeout);
	t->timer.data = t;
	ev_idle_init(&t->kick, transport_kick_cb);
	/* Deferred events must not starve behind busy sockets. */
	ev_set_priority(&t->kick, EV_MAXPRI);
	t->kick.data = t;
	return &t->base;

fail:
	free(t->host);
	free(t->ca_file);
	free(t->log_prefix);
	free(t->peer);
	free(t);
	return NULL;
}

static void
transport_destroy(struct sock_transport *t)
{
	transport_teardown(t);
	ev_idle_stop(t->loop, &t->kick);
	free(t->pull);
	if (t->wbuf != NULL)
		explicit_bzero(t->wbuf, t->wcap);
	free(t->wbuf);
	free(t->host);
	free(t->ca_file);
	free(t->log_prefix);
	free(t->peer);
	free(t->cache_key);
	free(t);
}

static void
sock_free(struct transport *base)
{
	struct sock_transport *t = sock(base);

	if (t->depth > 0) {
		/* Inside a callback: release on the way out of it. */
		t->free_pending = true;
		return;
	}
	transport_destroy(t);
}

/*
 * Runs the upper layer's callback.  Returns false when the caller must not
 * go on with what it was doing: the transport was closed, reconnected or
 * freed from inside the callback.
 */
static bool
transport_emit(struct sock_transport *t, enum transport_event event)
{
	unsigned gen = t->gen;

	t->depth++;
	t->cb(&t->base, event, t->arg);
	t->depth--;
	if (t->free_pending) {
		if (t->depth == 0)
			transport_destroy(t);
		return false;
	}
	return t->gen == gen;
}

static void
transport_set_io(struct sock_transport *t, int events)
{
	if (events == t->io_events && ev_is_active(&t->io) == (events != 0))
		return;
	ev_io_stop(t->loop, &t->io);
	t->io_events = events;
	if (events != 0 && t->fd != -1) {
		ev_io_set(&t->io, t->fd, events);
		ev_io_start(t->loop, &t->io);
	}
}

static void
transport_update_io(struct sock_transport *t)
{
	int events = 0;

	switch (t->state) {
	case TS_CONNECTING:
		events = EV_WRITE;
		break;
	case TS_HANDSHAKE:
		events = t->hs_events;
		break;
	case TS_OPEN:
		events = EV_READ;
		if (t->wlen > 0 && !t->write_wants_read)
			events |= EV_WRITE;
		if (t->read_wants_write)
			events |= EV_WRITE;
		break;
	default:
		break;
	}
	transport_set_io(t, events);
}

static void
transport_progress(struct sock_transport *t)
{
	if (t->timeout > 0)
		ev_timer_again(t->loop, &t->timer);
}

/* Keeps the session of a verified connection for resumption. */
static void
transport_save_session(struct sock_transport *t)
{
	if (t->tls_up && t->session != NULL)
		tls_session_save(t->session, t->cache_key);
}

/*
 * Closing a socket with unread input makes the kernel send a reset, which
 * can overtake our last bytes (a close_notify, or the alert saying why a
 * certificate was refused): read what is there first.
 */
static void
transport_discard_input(int fd)
{
	char buf[4096];
	ssize_t n;

	for (int i = 0; i < 64; i++) {
		n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n <= 0 && !(n == -1 && errno == EINTR))
			break;
	}
}

/* Releases the connection; the transport can connect again. */
static void
transport_teardown(struct sock_transport *t)
{
	transport_set_io(t, 0);
	ev_timer_stop(t->loop, &t->timer);
	ev_idle_stop(t->loop, &t->kick);
	resolve_cancel(&t->resolve);
	if (t->addrs != NULL) {
		freeaddrinfo(t->addrs);
		t->addrs = NULL;
	}
	t->next_addr = NULL;
	if (t->session != NULL) {
		transport_save_session(t);
		gnutls_deinit(t->session);
		t->session = NULL;
	}
	if (t->fd != -1) {
		transport_discard_input(t->fd);
		close(t->fd);
		t->fd = -1;
	}
	t->state = TS_CLOSED;
	t->gen++;
	t->pending_event = EVENT_NONE;
	t->kick_readable = false;
	t->eof_seen = false;
	t->tls_up = false;
	t->read_wants_write = false;
	t->write_wants_read = false;
	t->tls_send_len = 0;
	t->pull_off = t->pull_len = 0;
	t->lowat = 0;
	t->expect = 0;
	t->drained = false;
	t->woff = t->wlen = 0;
}

/* Tears the connection down and reports event from the loop. */
static void
transport_fail(struct sock_transport *t, enum transport_event event,
    enum transport_error_kind kind, const char *fmt, ...)
{
	char error[sizeof t->error];
	va_list ap;

	t->kind = kind;
	/* Formatted aside first: the arguments may be t->error itself. */
	va_start(ap, fmt);
	vsnprintf(error, sizeof error, fmt, ap);
	va_end(ap);
	memcpy(t->error, error, sizeof t->error);
	log_debug("%s: %s", transport_prefix(t), t->error);
	transport_teardown(t);
	t->pending_event = event;
	ev_idle_start(t->loop, &t->kick);
}

static void
transport_eof(struct sock_transport *t)
{
	transport_fail(t, TRANSPORT_EOF, TRANSPORT_ERR_NETWORK,
	    "connection closed by %s", t->peer);
}

static void
transport_resolved(int error, struct addrinfo *res, void *arg)
{
	struct sock_transport *t = arg;

	t->resolve = NULL;
	if (error != 0) {
		transport_fail(t, TRANSPORT_ERROR, TRANSPORT_ERR_NETWORK,
		    "resolve %s: %s", t->host, gai_strerror(error));
		return;
	}
	t->addrs = t->next_addr = res;
	transport_try_next(t);
}

static int
sock_connect(struct transport *base)
{
	struct sock_transport *t = sock(base);

	if (t->state != TS_IDLE && t->state != TS_CLOSED) {
		t->kind = TRANSPORT_ERR_LOCAL;
		snprintf(t->error, sizeof t->error,
		    "connect to %s: already connected", t->peer);
		return -1;
	}
	/* An undelivered event of the previous connection is moot now. */
	ev_idle_stop(t->loop, &t->kick);
	t->pending_event = EVENT_NONE;
	t->gen++;
	t->error[0] = '\0';
	t->kind = TRANSPORT_ERR_NONE;
	t->last_errno = 0;
	t->last_timed_out = false;
	t->starttls = false;
	t->resumed = false;
	snprintf(t->desc, sizeof t->desc, "plain");

	t->state = TS_RESOLVING;
	t->resolve = resolve_start(t->loop, t->host, t->port,
	    transport_resolved, t);
	if (t->resolve == NULL) {
		t->kind = TRANSPORT_ERR_NETWORK;
		snprintf(t->error, sizeof t->error, "resolve %s: %s", t->host,
		    strerror(errno));
		t->state = TS_CLOSED;
		return -1;
	}
	transport_progress(t);
	return 0;
}

static void
transport_try_next(struct sock_transport *t)
{
	struct addrinfo *ai;
	char addr[NI_MAXHOST];
	int fd;

	while ((ai = t->next_addr) != NULL) {
		t->next_addr = ai->ai_next;
		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr,
		    NULL, 0, NI_NUMERICHOST) != 0)
			snprintf(addr, sizeof addr, "?");
		fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			t->last_errno = errno;
			t->last_timed_out = false;
			log_debug("%s: socket for %s: %s", transport_prefix(t),
			    addr, strerror(errno));
			continue;
		}
		log_debug("%s: connecting to %s (%s)", transport_prefix(t),
		    t->peer, addr);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS || errno == EINTR) {
			/* Success or not, the writable socket says. */
			t->fd = fd;
			t->state = TS_CONNECTING;
			transport_update_io(t);
			transport_progress(t);
			return;
		}
		t->last_errno = errno;
		t->last_timed_out = false;
		log_debug("%s: connect to %s: %s", transport_prefix(t), addr,
		    strerror(errno));
		close(fd);
	}
	transport_fail(t, t->last_timed_out ? TRANSPORT_TIMEOUT :
	    TRANSPORT_ERROR, t->last_timed_out ? TRANSPORT_ERR_TIMEOUT :
	    TRANSPORT_ERR_NETWORK, "connect to %s: %s", t->peer,
	    strerror(t->last_errno != 0 ? t->last_errno : EHOSTUNREACH));
}

/* Gives up on the current address and moves on to the next one. */
static void
transport_attempt_failed(struct sock_transport *t, int error, bool timed_out)
{
	t->last_errno = error;
	t->last_timed_out = timed_out;
	log_debug("%s: connect to %s: %s", transport_prefix(t), t->peer,
	    strerror(error));
	transport_set_io(t, 0);
	close(t->fd);
	t->fd = -1;
	transport_try_next(t);
}

static ssize_t
transport_tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct sock_transport *t = ptr;
	ssize_t n;

	do {
		n = send(t->fd, data, len, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n > 0)
		transport_progress(t);
	else if (n == -1) {
		t->tls_io_errno = errno;
		gnutls_transport_set_errno(t->session, errno);
	}
	return n;
}

/*
 * The server's first handshake bytes: when they are text, not a TLS
 * record, keep their first line to say so (an IMAP greeting on a port
 * configured for implicit TLS).
 */
static void
transport_heard_server(struct sock_transport *t)
{
	size_t len = 0;

	t->hs_heard = true;
	if (!tls_looks_like_plain_text(t->pull, t->pull_len))
		return;
	while (len < t->pull_len && len < sizeof t->plain - 1 &&
	    t->pull[len] != '\r' && t->pull[len] != '\n')
		len++;
	memcpy(t->plain, t->pull, len);
	t->plain[len] = '\0';
	log_sanitize(t->plain);
}

/* Refills the read-ahead block from the socket: recv()'s result. */
static ssize_t
transport_pull_fill(struct sock_transport *t)
{
	ssize_t n;

	if (t->pull == NULL && (t->pull = malloc(TLS_PULL_BLOCK)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	/*
	 * A short read emptied the socket: asking again before the loop says
	 * it is readable would only fail with EAGAIN, at the price of a
	 * system call.
	 */
	if (t->drained) {
		errno = EAGAIN;
		return -1;
	}
	do {
		n = recv(t->fd, t->pull, TLS_PULL_BLOCK, 0);
	} while (n == -1 && errno == EINTR);
	if (n > 0) {
		t->pull_off = 0;
		t->pull_len = (size_t)n;
		t->drained = (size_t)n < TLS_PULL_BLOCK;
		transport_progress(t);
		if (t->state == TS_HANDSHAKE && !t->hs_heard)
			transport_heard_server(t);
	}
	return n;
}

static ssize_t
transport_tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct sock_transport *t = ptr;
	ssize_t n;

	if (t->pull_len == 0) {
		n = transport_pull_fill(t);
		if (n <= 0) {
			if (n == -1) {
				t->tls_io_errno = errno;
				gnutls_transport_set_errno(t->session, errno);
			}
			return n;
		}
	}
	if (len > t->pull_len)
		len = t->pull_len;
	memcpy(data, t->pull + t->pull_off, len);
	t->pull_off += len;
	t->pull_len -= len;
	return (ssize_t)len;
}

/* Sets up a client session on the connected socket; -1 with t->error. */
static int
transport_tls_begin(struct sock_transport *t)
{
	int ret;

	if (t->cred == NULL && (t->cred = tls_credentials(t->ca_file,
	    transport_prefix(t), &t->kind, t->error, sizeof t->error)) == NULL)
		return -1;
	ret = tls_session_new(&t->session, t->cred, &t->check, t->cache_key);
	if (ret < 0) {
		t->kind = TRANSPORT_ERR_TLS;
		snprintf(t->error, sizeof t->error, "TLS set-up for %s: %s",
		    t->peer, gnutls_strerror(ret));
		return -1;
	}
	gnutls_transport_set_ptr(t->session, t);
	gnutls_transport_set_push_function(t->session, transport_tls_push);
	gnutls_transport_set_pull_function(t->session, transport_tls_pull);
	/* The no-progress timer is the only handshake timeout. */
	gnutls_handshake_set_timeout(t->session, 0);
	t->tls_io_errno = 0;
	t->hs_heard = false;
	t->plain[0] = '\0';
	t->state = TS_HANDSHAKE;
	t->hs_events = EV_WRITE;
	return 0;
}

static void
transport_handshake_failed(struct sock_transport *t, int ret)
{
	enum transport_error_kind kind;
	char error[sizeof t->error];

	kind = tls_handshake_error(t->session, ret, &t->check, t->peer,
	    t->plain[0] != '\0' ? t->plain : NULL, !t->starttls,
	    t->tls_io_errno, error, sizeof error);
	/* Best effort: tell the server why its certificate was refused. */
	if (kind == TRANSPORT_ERR_TLS_VERIFY)
		gnutls_alert_send_appropriate(t->session, ret);
	transport_fail(t, TRANSPORT_ERROR, kind, "%s", error);
}

static void
transport_handshake(struct sock_transport *t)
{
	enum transport_event event;
	int ret;

	for (int again = 0;; again++) {
		ret = gnutls_handshake(t->session);
		if (ret == 0)
			break;
		/*
		 * GnuTLS may stop between records of a message that spans
		 * several (a certificate of more than 16 KB), asking for
		 * more, while the rest waits in the read-ahead block, where
		 * no event will announce it: go on (bounded, should it take
		 * nothing).
		 */
		if (ret == GNUTLS_E_AGAIN && t->pull_len > 0 &&
		    gnutls_record_get_direction(t->session) == 0 &&
		    again < HANDSHAKE_RETRIES)
			continue;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			t->hs_events = gnutls_record_get_direction(t->session) ?
			    EV_WRITE : EV_READ;
			transport_update_io(t);
			return;
		}
		if (gnutls_error_is_fatal(ret)) {
			transport_handshake_failed(t, ret);
			return;
		}
		/* A warning alert: carry on. */
	}

	t->tls_up = true;
	t->resumed = gnutls_session_is_resumed(t->session) != 0;
	snprintf(t->desc, sizeof t->desc, "%s / %s",
	    gnutls_protocol_get_name(gnutls_protocol_get_version(t->session)),
	    gnutls_ciphersuite_get(t->session));
	log_debug("%s: %s with %s%s", transport_prefix(t), t->desc, t->peer,
	    t->resumed ? " (resumed)" : "");
	transport_save_session(t);
	t->state = TS_OPEN;
	transport_update_io(t);
	/*
	 * The handshake may have pulled application data into GnuTLS that
	 * libev cannot see: look once, whatever the socket says.
	 */
	t->kick_readable = true;
	ev_idle_start(t->loop, &t->kick);
	event = t->starttls ? TRANSPORT_TLS_READY : TRANSPORT_CONNECTED;
	transport_emit(t, event);
}

static void
transport_connect_done(struct sock_transport *t)
{
	socklen_t len;
	int error = 0, one = 1;

	len = sizeof error;
	if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		transport_attempt_failed(t, error, false);
		return;
	}
	freeaddrinfo(t->addrs);
	t->addrs = t->next_addr = NULL;
	/* Commands are small and answered: do not let Nagle hold them. */
	setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	transport_progress(t);
	if (t->implicit_tls) {
		if (transport_tls_begin(t) == -1) {
			transport_fail(t, TRANSPORT_ERROR, t->kind, "%s",
			    t->error);
			return;
		}
		transport_handshake(t);
		return;
	}
	log_debug("%s: connected to %s", transport_prefix(t), t->peer);
	t->state = TS_OPEN;
	transport_update_io(t);
	transport_emit(t, TRANSPORT_CONNECTED);
}

static int
sock_start_tls(struct transport *base)
{
	struct sock_transport *t = sock(base);

	if (t->state != TS_OPEN || t->session != NULL) {
		t->kind = TRANSPORT_ERR_LOCAL;
		snprintf(t->error, sizeof t->error, "STARTTLS with %s: %s",
		    t->peer, t->session != NULL ? "TLS is already on" :
		    "not connected");
		return -1;
	}
	if (t->wlen > 0) {
		t->kind = TRANSPORT_ERR_LOCAL;
		snprintf(t->error, sizeof t->error,
		    "STARTTLS with %s: unsent data queued", t->peer);
		return -1;
	}
	if (transport_tls_begin(t) == -1)
		return -1;
	t->starttls = true;
	t->kick_readable = false;
	ev_idle_stop(t->loop, &t->kick);
	transport_update_io(t);
	return 0;
}

/* Sends what the socket takes.  Returns false when the caller must stop. */
static bool
transport_flush(struct sock_transport *t)
{
	bool had = t->wlen > 0;
	ssize_t n;
	size_t len;

	while (t->wlen > 0) {
		if (t->session != NULL) {
			/* After E_AGAIN GnuTLS wants the very same call. */
			len = t->tls_send_len != 0 ? t->tls_send_len :
			    (t->wlen < TLS_RECORD_MAX ? t->wlen :
			    TLS_RECORD_MAX);
			n = gnutls_record_send(t->session, t->wbuf + t->woff,
			    len);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				t->tls_send_len = len;
				t->write_wants_read =
				    gnutls_record_get_direction(t->session) ==
				    0;
				break;
			}
			t->tls_send_len = 0;
			t->write_wants_read = false;
			if (n < 0) {
				transport_fail(t, TRANSPORT_ERROR,
				    TRANSPORT_ERR_TLS, "TLS write to %s: %s",
				    t->peer,
				    tls_strerror((int)n, t->tls_io_errno));
				return false;
			}
		} else {
			n = send(t->fd, t->wbuf + t->woff, t->wlen,
			    MSG_NOSIGNAL);
			if (n == -1) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				transport_fail(t, TRANSPORT_ERROR,
				    TRANSPORT_ERR_NETWORK, "write to %s: %s",
				    t->peer,
				    strerror(errno));
				return false;
			}
			if (n > 0)
				transport_progress(t);
		}
		/* Sent bytes may be a login: wiped, not just skipped. */
		explicit_bzero(t->wbuf + t->woff, (size_t)n);
		t->woff += (size_t)n;
		t->wlen -= (size_t)n;
	}
	if (t->wlen == 0 && t->wbuf != NULL) {
		/* Wiped as it went; a connection waiting in IDLE for days
		 * keeps no buffer. */
		free(t->wbuf);
		t->wbuf = NULL;
		t->woff = t->wcap = 0;
	}
	transport_update_io(t);
	if (had && t->wlen == 0)
		return transport_emit(t, TRANSPORT_DRAINED) &&
		    t->state == TS_OPEN;
	return true;
}

/* Input that is past the socket but not yet read by the layer above. */
static bool
transport_tls_pending(struct sock_transport *t)
{
	return t->session != NULL &&
	    (t->pull_len > 0 || gnutls_record_check_pending(t->session) > 0);
}

static void
transport_emit_readable(struct sock_transport *t)
{
	if (!transport_emit(t, TRANSPORT_READABLE) || t->state != TS_OPEN)
		return;
	/*
	 * Plaintext GnuTLS already holds does not make the socket readable:
	 * if the upper layer left some, come back without waiting for it.
	 */
	if (t->eof_seen || transport_tls_pending(t)) {
		t->kick_readable = true;
		ev_idle_start(t->loop, &t->kick);
	}
	transport_update_io(t);
}

static void
transport_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sock_transport *t = w->data;

	if ((revents & EV_READ) != 0)
		t->drained = false;
	switch (t->state) {
	case TS_CONNECTING:
		transport_connect_done(t);
		return;
	case TS_HANDSHAKE:
		transport_handshake(t);
		return;
	case TS_OPEN:
		break;
	default:
		transport_set_io(t, 0);
		return;
	}
	if ((revents & EV_WRITE) != 0 ||
	    ((revents & EV_READ) != 0 && t->write_wants_read)) {
		if (!transport_flush(t))
			return;
	}
	if ((revents & EV_READ) != 0 ||
	    ((revents & EV_WRITE) != 0 && t->read_wants_write)) {
		t->read_wants_write = false;
		transport_emit_readable(t);
	}
}

static void
transport_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sock_transport *t = w->data;

	switch (t->state) {
	case TS_RESOLVING:
		transport_fail(t, TRANSPORT_TIMEOUT, TRANSPORT_ERR_TIMEOUT,
		    "resolve %s: no answer within %u s", t->host, t->timeout);
		break;
	case TS_CONNECTING:
		transport_attempt_failed(t, ETIMEDOUT, true);
		break;
	case TS_HANDSHAKE:
		transport_fail(t, TRANSPORT_TIMEOUT, TRANSPORT_ERR_TIMEOUT,
		    "TLS handshake with %s timed out (no progress for %u s)",
		    t->peer,
		    t->timeout);
		break;
	case TS_OPEN:
		transport_fail(t, TRANSPORT_TIMEOUT, TRANSPORT_ERR_TIMEOUT,
		    "connection to %s: no progress for %u s", t->peer,
		    t->timeout);
		break;
	default:
		ev_timer_stop(loop, w);
		break;
	}
}

static void
transport_kick_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct sock_transport *t = w->data;
	int event;

	ev_idle_stop(loop, w);
	if (t->pending_event != EVENT_NONE) {
		event = t->pending_event;
		t->pending_event = EVENT_NONE;
		transport_emit(t, (enum transport_event)event);
		return;
	}
	if (t->kick_readable && t->state == TS_OPEN) {
		t->kick_readable = false;
		transport_emit_readable(t);
	}
}

static void transport_update_lowat(struct sock_transport *);

/* What was promised shrinks by what came: near its end, every byte wakes
 * the reader again. */
static void
transport_consumed(struct sock_transport *t, size_t n)
{
	if (t->expect == 0)
		return;
	t->expect = n < t->expect ? t->expect - n : 0;
	if (t->lowat > 1)
		transport_update_lowat(t);
}

static ssize_t
sock_read(struct transport *base, void *buf, size_t len)
{
	struct sock_transport *t = sock(base);
	size_t total = 0;
	ssize_t n;

	if (t->state == TS_CLOSED)
		return -1;
	if (t->state != TS_OPEN || len == 0)
		return 0;
	if (t->session == NULL) {
		for (;;) {
			n = recv(t->fd, buf, len, 0);
			if (n > 0) {
				transport_progress(t);
				transport_consumed(t, (size_t)n);
				return n;
			}
			if (n == 0) {
				transport_eof(t);
				return -1;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			transport_fail(t, TRANSPORT_ERROR,
			    TRANSPORT_ERR_NETWORK, "read from %s: %s", t->peer,
			    strerror(errno));
			return -1;
		}
	}

	if (t->eof_seen) {
		transport_eof(t);
		return -1;
	}
	while (total < len) {
		n = gnutls_record_recv(t->session, (char *)buf + total,
		    len - total);
		if (n > 0) {
			total += (size_t)n;
			continue;
		}
		/*
		 * A close without close_notify is how many IMAP servers
		 * end; the protocol has its own framing.
		 */
		if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
			if (total > 0) {
				t->eof_seen = true;
				break;
			}
			transport_eof(t);
			return -1;
		}
		if (n == GNUTLS_E_AGAIN) {
			if (gnutls_record_get_direction(t->session) == 1) {
				t->read_wants_write = true;
				transport_update_io(t);
			}
			break;
		}
		if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_REHANDSHAKE ||
		    !gnutls_error_is_fatal((int)n))
			continue;
		transport_fail(t, TRANSPORT_ERROR, TRANSPORT_ERR_TLS,
		    "TLS read from %s: %s", t->peer,
		    tls_strerror((int)n, t->tls_io_errno));
		return -1;
	}
	transport_consumed(t, total);
	return (ssize_t)total;
}

static int
sock_write(struct transport *base, const void *data, size_t len)
{
	struct sock_transport *t = sock(base);
	size_t need;
	char *p;

	if (t->state == TS_CLOSED)
		return -1;
	if (len == 0)
		return 0;
	need = t->wlen + len;
	if (need < len)
		return -1;
	if (t->woff + need > t->wcap) {
		if (t->woff > 0) {
			memmove(t->wbuf, t->wbuf + t->woff, t->wlen);
			explicit_bzero(t->wbuf + t->wlen, t->woff);
			t->woff = 0;
		}
		if (need > t->wcap) {
			size_t cap = t->wcap > 0 ? t->wcap : 4096;

			while (cap < need)
				cap *= 2;
			/* Not realloc: what was sent may hold a password. */
			if ((p = malloc(cap)) == NULL)
				return -1;
			if (t->wbuf != NULL) {
				memcpy(p, t->wbuf, t->wlen);
				explicit_bzero(t->wbuf, t->wcap);
				free(t->wbuf);
			}
			t->wbuf = p;
			t->wcap = cap;
		}
	}
	memcpy(t->wbuf + t->woff + t->wlen, data, len);
	t->wlen += len;
	if (t->state == TS_OPEN)
		transport_update_io(t);
	return 0;
}

static size_t
sock_queued(const struct transport *base)
{
	const struct sock_transport *t = csock(base);

	return t->wlen;
}

/* SO_RCVLOWAT for what is still certain to come (t->expect). */
static void
transport_update_lowat(struct sock_transport *t)
{
	uint64_t bytes = t->expect, held = 0, slack = 0;
	int lowat = 1;

	if (t->state != TS_OPEN || t->fd == -1)
		return;
	if (t->session != NULL) {
		held = t->pull_len + gnutls_record_check_pending(t->session);
		/* GnuTLS may hold part of a record it could not decrypt yet:
		 * ciphertext of what is due that the socket will not bring
		 * again. */
		slack = TLS_RECORD_MAX + TLS_RECORD_OVERHEAD;
	}
	/* Ciphertext is never shorter than the plaintext it carries. */
	if (bytes > held && bytes - held >= RECV_LOWAT + slack)
		lowat = RECV_LOWAT;
	if (lowat == (t->lowat == 0 ? 1 : t->lowat))
		return;
	if (setsockopt(t->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat,
	    sizeof lowat) == 0)
		t->lowat = lowat;
}

static void
sock_expect(struct transport *base, uint64_t bytes)
{
	struct sock_transport *t = sock(base);

	t->expect = bytes;
	transport_update_lowat(t);
}

static void
sock_set_timeout(struct transport *base, unsigned timeout)
{
	struct sock_transport *t = sock(base);

	t->timeout = timeout;
	t->timer.repeat = (ev_tstamp)timeout;
	if (timeout == 0)
		ev_timer_stop(t->loop, &t->timer);
	else if (t->state != TS_IDLE && t->state != TS_CLOSED)
		ev_timer_again(t->loop, &t->timer);
}

static void
sock_close(struct transport *base)
{
	struct sock_transport *t = sock(base);

	if (t->session != NULL && t->tls_up && t->fd != -1)
		/* One try at close_notify; the socket closes regardless. */
		(void)gnutls_bye(t->session, GNUTLS_SHUT_WR);
	transport_teardown(t);
}

/*
 * Loopback, link-local and private (RFC 1918, IPv6 ULA) peers: networks fast
 * enough that compressing costs the server more time than it saves.
 */
static bool
sock_peer_is_local(const struct transport *base)
{
	const struct sock_transport *t = csock(base);
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	const uint8_t *a;

	if (t->fd == -1 || getpeername(t->fd, (struct sockaddr *)&ss,
	    &len) != 0)
		return false;
	if (ss.ss_family == AF_INET6) {
		a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a))
			a += 12;
		else
			return IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a) ||
			    IN6_IS_ADDR_LINKLOCAL((struct in6_addr *)a) ||
			    (a[0] & 0xfe) == 0xfc;
	} else if (ss.ss_family == AF_INET) {
		a = (const uint8_t *)&((struct sockaddr_in *)&ss)->sin_addr;
	} else {
		return true;
	}
	return a[0] == 127 || a[0] == 10 || (a[0] == 172 &&
	    (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
	    (a[0] == 169 && a[1] == 254);
}

static bool
sock_is_tls(const struct transport *base)
{
	const struct sock_transport *t = csock(base);

	return t->tls_up;
}

static bool
sock_tls_resumed(const struct transport *base)
{
	const struct sock_transport *t = csock(base);

	return t->tls_up && t->resumed;
}

static const char *
sock_description(const struct transport *base)
{
	const struct sock_transport *t = csock(base);

	return t->desc;
}

static const char *
sock_error(const struct transport *base)
{
	const struct sock_transport *t = csock(base);

	return t->error;
}

static enum transport_error_kind
sock_error_kind(const struct transport *base)
{
	return csock(base)->kind;
}

const struct transport_ops transport_socket_ops = {
	.create = sock_new,
	.free = sock_free,
	.connect = sock_connect,
	.start_tls = sock_start_tls,
	.read = sock_read,
	.write = sock_write,
	.queued = sock_queued,
	.expect = sock_expect,
	.set_timeout = sock_set_timeout,
	.close = sock_close,
	.is_tls = sock_is_tls,
	.peer_is_local = sock_peer_is_local,
	.tls_resumed = sock_tls_resumed,
	.description = sock_description,
	.error = sock_error,
	.error_kind = sock_error_kind,
};

/* The operations, whichever implementation */

struct transport *
transport_new(struct ev_loop *loop, const struct transport_params *params,
    transport_cb *cb, void *arg)
{
	const struct transport_ops *ops = params->ops != NULL ? params->ops :
	    &transport_socket_ops;

	return ops->create(loop, params, cb, arg);
}

void
transport_free(struct transport **tp)
{
	struct transport *t;

	if (tp == NULL || (t = *tp) == NULL)
		return;
	*tp = NULL;
	t->ops->close(t);
	t->ops->free(t);
}

int
transport_connect(struct transport *t)
{
	return t->ops->connect(t);
}

int
transport_start_tls(struct transport *t)
{
	return t->ops->start_tls(t);
}

ssize_t
transport_read(struct transport *t, void *buf, size_t len)
{
	return t->ops->read(t, buf, len);
}

int
transport_write(struct transport *t, const void *data, size_t len)
{
	return t->ops->write(t, data, len);
}

size_t
transport_queued(const struct transport *t)
{
	return t->ops->queued(t);
}

void
transport_expect(struct transport *t, uint64_t bytes)
{
	t->ops->expect(t, bytes);
}

void
transport_set_timeout(struct transport *t, unsigned timeout)
{
	t->ops->set_timeout(t, timeout);
}

void
transport_close(struct transport *t)
{
	t->ops->close(t);
}

bool
transport_is_tls(const struct transport *t)
{
	return t->ops->is_tls(t);
}

bool
transport_peer_is_local(const struct transport *t)
{
	return t->ops->peer_is_local(t);
}

bool
transport_tls_resumed(const struct transport *t)
{
	return t->ops->tls_resumed(t);
}

const char *
transport_description(const struct transport *t)
{
	return t->ops->description(t);
}

const char *
transport_error(const struct transport *t)
{
	return t->ops->error(t);
}

enum transport_error_kind
transport_error_kind(const struct transport *t)
{
	return t->ops->error_kind(t);
}

int
transport_global_init(void)
{
	int ret;

	if ((ret = gnutls_global_init()) < 0) {
		log_error("GnuTLS initialisation: %s", gnutls_strerror(ret));
		return -1;
	}
	return 0;
}

void
transport_global_deinit(void)
{
	tls_caches_clear();
	gnutls_global_deinit();
}
