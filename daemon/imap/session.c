/*
 * One IMAP connection (see session.h).  Over 900 lines, and one file,
 * because the command queue, continuations, STARTTLS, authentication and
 * IDLE all step the one state machine and share its parser, transport and
 * timeouts; split, each part would reach into the others' state.  How to
 * log in (the SASL mechanism and its initial response) is decided in
 * sasl.c.
 */
#include "imap/session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/sasl.h"
#include "log.h"
#include "net/compress.h"
#include "net/transport.h"

/* Large reads: a FETCH stream is mostly literal bytes handed to the sink
 * straight from this buffer. */
#define READ_BUFFER_SIZE (256 * 1024)
#define READ_BURST (1024 * 1024)
#define ERROR_MAX 512
/*
 * Progress, for the no-progress timeout, is a complete response or this
 * many bytes of a streamed literal (a big message on a slow link): a server
 * trickling a byte now and then keeps the socket busy but gets nowhere, and
 * must not hold a run forever.  With the default timeout of 60 s this asks
 * for about 1 KiB/s while a response is incomplete.
 */
#define PROGRESS_BYTES (64 * 1024)
/*
 * ...but only so many untagged responses in a row count: a server that
 * answers a command with an endless stream of them ("* OK", "* 1 EXISTS")
 * gets nowhere either.  No command of ours asks for nearly as many (a
 * batch is 2,000 messages; LIST-STATUS is two per mailbox).
 */
#define UNTAGGED_PROGRESS_MAX 100000
/*
 * A streamed literal (session_send_literal) is read from its owner in
 * pieces of this size while the transport holds less than BODY_QUEUE_MAX
 * bytes unsent; the rest waits for the queue to drain.  Memory stays
 * bounded whatever the message size.
 */
#define BODY_CHUNK (256 * 1024)
#define BODY_QUEUE_MAX (1024 * 1024)

enum session_state {
	S_INIT,
	S_CONNECTING,
	S_GREETING,
	S_CAPABILITY,
	S_STARTTLS,
	S_TLS_HANDSHAKE,
	S_CAPABILITY_TLS,
	S_AUTHENTICATE,
	S_CAPABILITY_AUTH,
	S_COMPRESS,
	S_READY,
	S_LOGOUT,
	S_CLOSED,
	S_FAILED,
};

static const char *const state_names[] = {
	"init", "connecting", "greeting", "capability", "starttls",
	"tls-handshake", "capability-tls", "authenticate", "capability-auth",
	"compress", "ready", "logout", "closed", "failed",
};

struct pending_cmd {
	struct pending_cmd *next;
	struct imap_cmd cmd;
	size_t sent;		/* bytes of cmd.data written */
	size_t split;		/* index of the next split in cmd.splits */
	bool waiting;		/* written up to a split: waits for "+" */
	char *sasl;		/* AUTHENTICATE: the line to send on "+" */
	bool idle;		/* IDLE: ends when the client sends DONE */
	bool idling;		/* IDLE: the server said "+" */
	bool stop_idle;		/* IDLE: DONE is due as soon as "+" comes */
	bool sasl_exchange;	/* AUTHENTICATE: "+" may come until the end */
	/* A literal streamed from the owner after cmd (session_send_literal):
	 * body_len bytes, then CRLF. */
	session_body_fn *body;
	uint64_t body_len;
	uint64_t body_sent;
	bool body_sync;		/* "{n}": the body waits for "+" */
	bool body_go;		/* "+" came (or was not needed) */
	bool body_done;		/* body and its CRLF written */
	session_untagged_fn *untagged;
	session_done_fn *done;
	void *arg;
};

struct session {
	struct ev_loop *loop;
	char *host;
	uint16_t port;
	enum session_tls tls;
	char *ca_file;
	bool has_pin;
	uint8_t pin_sha256[32];
	char *user;
	enum session_auth auth;
	enum session_compress compress;
	struct session_credential credential;
	const struct transport_ops *transport_ops;
	unsigned timeout;
	struct session_callbacks cb;
	void *arg;

	enum session_state state;
	struct transport *transport;
	struct imap_parser *parser;
	struct imap_tagger tagger;
	struct imap_caps caps;
	char *secret;
	void *secret_job;		/* credential.fetch's, until done */
	char prefix[128];
	unsigned char *rbuf;
	struct compress *z;		/* COMPRESS=DEFLATE is on */
	char bye[ERROR_MAX];
	ev_timer stall;			/* no progress, as defined above */
	unsigned long long stall_mark;	/* literal_in at the last progress */
	unsigned long long literal_in;	/* bytes of streamed literals */
	unsigned long untagged_run;	/* untagged responses in a row */
	unsigned char *body_buf;	/* BODY_CHUNK, for streamed literals */
	imap_sink_fn *sink;		/* the owner's, behind ours */
	void *sink_arg;

	struct pending_cmd *head;	/* oldest command not completed */
	struct pending_cmd **tail;
	struct pending_cmd *unsent;	/* first command not fully written */

	int refs;
	bool free_requested;
};

static void session_set_state(struct session *, enum session_state);
static void on_stall(struct ev_loop *, ev_timer *, int);
static void session_fail(struct session *, enum session_error, const char *,
    ...) __attribute__((format(printf, 3, 4)));
static void on_transport(struct transport *, enum transport_event, void *);
static enum session_error transport_failure(const struct session *);
static void handle_response(struct session *, const struct imap_response *);
static void flush_commands(struct session *);
static void request_capabilities(struct session *, enum session_state);
static void after_capabilities(struct session *);
static void start_auth(struct session *);
static void send_internal(struct session *, struct imap_cmd *,
    session_done_fn *);

const char *
session_error_name(enum session_error error)
{
	static const char *const names[] = {
		"ok", "network error", "timeout", "TLS error",
		"authentication failed", "secret unavailable",
		"protocol error", "server error", "local error",
	};

	return names[error];
}

static void
wipe_secret(char **secret)
{
	if (*secret == NULL)
		return;
	explicit_bzero(*secret, strlen(*secret));
	free(*secret);
	*secret = NULL;
}

static void
cancel_secret(struct session *s)
{
	if (s->secret_job != NULL && s->credential.cancel != NULL)
		s->credential.cancel(s->secret_job);
	s->secret_job = NULL;
}

struct session *
session_new(struct ev_loop *loop, const struct session_params *params,
    const struct session_callbacks *cb, void *arg)
{
	struct session *s;

	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->loop = loop;
	s->port = params->port;
	s->tls = params->tls;
	s->auth = params->auth;
	s->compress = params->compress;
	s->credential = params->credential;
	s->transport_ops = params->transport;
	s->timeout = params->timeout;
	if (params->pin_sha256 != NULL) {
		s->has_pin = true;
		memcpy(s->pin_sha256, params->pin_sha256,
		    sizeof s->pin_sha256);
	}
	s->cb = *cb;
	s->arg = arg;
	s->tail = &s->head;
	ev_timer_init(&s->stall, on_stall, 0., 0.);
	s->stall.data = s;
	snprintf(s->prefix, sizeof s->prefix, "account %s",
	    params->name != NULL ? params->name : "?");
	s->host = strdup(params->host != NULL ? params->host : "");
	s->user = strdup(params->user != NULL ? params->user : "");
	if (params->ca_file != NULL)
		s->ca_file = strdup(params->ca_file);
	s->parser = imap_parser_new();
	s->rbuf = malloc(READ_BUFFER_SIZE);
	if (s->parser == NULL || s->rbuf == NULL || s->host == NULL ||
	    s->user == NULL || (params->ca_file != NULL && s->ca_file ==
	    NULL)) {
		imap_parser_free(&s->parser);
		free(s->rbuf);
		free(s->host);
		free(s->user);
		free(s->ca_file);
		free(s);
		return NULL;
	}
	return s;
}

static void
free_cmd(struct pending_cmd *pc)
{
	imap_cmd_free(&pc->cmd);
	if (pc->sasl != NULL) {
		explicit_bzero(pc->sasl, strlen(pc->sasl));
		free(pc->sasl);
	}
	free(pc);
}

static void
drop_commands(struct session *s)
{
	struct pending_cmd *pc, *next;

	for (pc = s->head; pc != NULL; pc = next) {
		next = pc->next;
		free_cmd(pc);
	}
	s->head = s->unsent = NULL;
	s->tail = &s->head;
}

static void
session_destroy(struct session *s)
{
	ev_timer_stop(s->loop, &s->stall);
	drop_commands(s);
	transport_free(&s->transport);
	imap_parser_free(&s->parser);
	imap_caps_clear(&s->caps);
	cancel_secret(s);
	wipe_secret(&s->secret);
	compress_free(&s->z);
	free(s->body_buf);
	free(s->rbuf);
	free(s->host);
	free(s->user);
	free(s->ca_file);
	free(s);
}

void
session_free(struct session **sp)
{
	struct session *s = *sp;

	*sp = NULL;
	if (s == NULL)
		return;
	if (s->transport != NULL)
		transport_close(s->transport);
	if (s->refs > 0) {
		/* Inside one of our callbacks: free on the way out. */
		s->free_requested = true;
		s->cb = (struct session_callbacks){ 0 };
		return;
	}
	session_destroy(s);
}

static void
session_ref(struct session *s)
{
	s->refs++;
}

/* Returns true when the session was freed. */
static bool
session_unref(struct session *s)
{
	if (--s->refs == 0 && s->free_requested) {
		session_destroy(s);
		return true;
	}
	return false;
}

static void
session_set_state(struct session *s, enum session_state state)
{
	log_debug("%s: state %s -> %s", s->prefix, state_names[s->state],
	    state_names[state]);
	s->state = state;
	if (state == S_CLOSED || state == S_FAILED)
		ev_timer_stop(s->loop, &s->stall);
}

static bool
session_alive(const struct session *s)
{
	return s->state != S_FAILED && s->state != S_CLOSED &&
	    !s->free_requested;
}

/* A response came, or enough of one. */
static void
stall_progress(struct session *s)
{
	s->stall_mark = s->literal_in;
	if (ev_is_active(&s->stall))
		ev_timer_again(s->loop, &s->stall);
}

static void
update_timeout(struct session *s)
{
	bool waiting;

	if (s->transport == NULL)
		return;
	/* An idle, logged-in connection waits as long as its owner likes;
	 * anything outstanding must make progress. */
	waiting = !(s->state == S_READY && (s->head == NULL ||
	    s->head->idling));
	transport_set_timeout(s->transport, waiting ? s->timeout : 0);
	/* Connecting and the TLS handshake are the transport's to time. */
	if (waiting && s->timeout > 0 && s->state >= S_GREETING &&
	    s->state != S_TLS_HANDSHAKE && s->state < S_CLOSED) {
		if (!ev_is_active(&s->stall)) {
			s->stall.repeat = (ev_tstamp)s->timeout;
			s->stall_mark = s->literal_in;
			ev_timer_again(s->loop, &s->stall);
		}
	} else {
		ev_timer_stop(s->loop, &s->stall);
	}
}

static void session_vfail(struct session *, enum session_error, const char *,
    va_list) __attribute__((format(printf, 3, 0)));

static void
session_vfail(struct session *s, enum session_error error, const char *fmt,
    va_list ap)
{
	char message[ERROR_MAX];

	if (!session_alive(s))
		return;
	vsnprintf(message, sizeof message, fmt, ap);
	session_set_state(s, S_FAILED);
	cancel_secret(s);
	if (s->transport != NULL)
		transport_close(s->transport);
	drop_commands(s);
	if (error != SESSION_OK && s->cb.failed != NULL)
		s->cb.failed(s, error, message, s->arg);
}

static void
session_fail(struct session *s, enum session_error error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vfail(s, error, fmt, ap);
	va_end(ap);
}

void
session_abort(struct session *s, enum session_error error, const char *fmt,
    ...)
{
	va_list ap;

	session_ref(s);
	va_start(ap, fmt);
	session_vfail(s, error, fmt, ap);
	va_end(ap);
	session_unref(s);
}

static void
on_secret(char *secret, char *error, void *arg)
{
	struct session *s = arg;

	s->secret_job = NULL;
	session_ref(s);
	if (secret == NULL) {
		session_fail(s, SESSION_ERR_SECRET, "%s", error != NULL ?
		    error : "out of memory");
		free(error);
		session_unref(s);
		return;
	}
	s->secret = secret;
	session_set_state(s, S_CONNECTING);
	if (transport_connect(s->transport) != 0)
		session_fail(s, transport_failure(s), "%s",
		    transport_error(s->transport));
	session_unref(s);
}

int
session_start(struct session *s)
{
	struct transport_params params = {
		.host = s->host,
		.port = s->port,
		.tls = s->tls == SESSION_TLS_IMPLICIT,
		.ca_file = s->ca_file,
		.pin_sha256 = s->has_pin ? s->pin_sha256 : NULL,
		.timeout = s->timeout,
		.log_prefix = s->prefix,
		/* "account NAME": each account resumes its own sessions. */
		.tls_cache_scope = s->prefix,
		.ops = s->transport_ops,
	};

	session_ref(s);
	s->transport = transport_new(s->loop, &params, on_transport, s);
	if (s->transport == NULL) {
		session_fail(s, SESSION_ERR_LOCAL, "out of memory");
		goto fail;
	}
	/* The secret first (a password_command may take a while, off the
	 * loop), then the connection. */
	if (s->credential.fetch != NULL)
		s->secret_job = s->credential.fetch(s->loop, s->credential.arg,
		    on_secret, s);
	if (s->secret_job == NULL) {
		session_fail(s, SESSION_ERR_LOCAL, "cannot start fetching the "
		    "secret");
		goto fail;
	}
	session_unref(s);
	return 0;
fail:
	session_unref(s);
	return -1;
}

/* What a transport failure means up here: by its kind, never its words. */
static enum session_error
transport_failure(const struct session *s)
{
	switch (transport_error_kind(s->transport)) {
	case TRANSPORT_ERR_TIMEOUT:
		return SESSION_ERR_TIMEOUT;
	case TRANSPORT_ERR_TLS_VERIFY:
	case TRANSPORT_ERR_TLS:
		return SESSION_ERR_TLS;
	case TRANSPORT_ERR_LOCAL:
		return SESSION_ERR_LOCAL;
	case TRANSPORT_ERR_NONE:
	case TRANSPORT_ERR_NETWORK:
		break;
	}
	return SESSION_ERR_NETWORK;
}

/* Parses plain (decompressed) bytes.  Returns how many were used: all of
 * them, unless a response switched compression on, after which the rest is
 * compressed. */
static size_t
feed_parser(struct session *s, const unsigned char *buf, size_t len)
{
	const struct imap_response *resp;
	enum imap_parse_result r;
	size_t used, total = 0;
	bool compressed = s->z != NULL;

	while (len > 0 && session_alive(s)) {
		r = imap_parser_feed(s->parser, buf, len, &used, &resp);
		buf += used;
		len -= used;
		total += used;
		if (r == IMAP_PARSE_ERROR) {
			session_fail(s, SESSION_ERR_PROTOCOL,
			    "unparseable server data: %s",
			    imap_parser_error_text(s->parser));
			break;
		}
		if (r != IMAP_PARSE_RESPONSE)
			continue;
		if (resp->type != IMAP_RESP_UNTAGGED)
			s->untagged_run = 0;
		if (++s->untagged_run <= UNTAGGED_PROGRESS_MAX)
			stall_progress(s);
		handle_response(s, resp);
		if (s->state == S_TLS_HANDSHAKE &&
		    (len > 0 || !imap_parser_idle(s->parser))) {
			/* Bytes after the STARTTLS OK were sent in plaintext
			 * and could be an attacker's injection. */
			session_fail(s, SESSION_ERR_PROTOCOL,
			    "server sent data after the STARTTLS response");
			break;
		}
		if (!compressed && s->z != NULL)
			break;
	}
	return total;
}

static int
inflated(void *arg, const unsigned char *data, size_t len)
{
	struct session *s = arg;

	feed_parser(s, data, len);
	return session_alive(s) ? 0 : -1;
}

static void
process_input(struct session *s, const unsigned char *buf, size_t len)
{
	size_t used;

	while (len > 0 && session_alive(s)) {
		if (s->z != NULL) {
			if (compress_inflate(s->z, buf, len, inflated, s) != 0)
				session_fail(s, SESSION_ERR_PROTOCOL, "%s",
				    compress_error(s->z));
			return;
		}
		used = feed_parser(s, buf, len);
		buf += used;
		len -= used;
	}
}

/*
 * Reads what is there, but at most READ_BURST bytes per wake-up (1 MB: a quarter of a second
 * even under AddressSanitizer): a fast
 * server could otherwise keep one connection busy for as long as its mail
 * lasts, starving the other accounts, the signals and the watchdog.  The
 * transport wakes us again for what is left (in the kernel or in TLS).
 */
static void
read_available(struct session *s)
{
	size_t burst = 0;
	ssize_t n;

	while (session_alive(s) && s->state != S_TLS_HANDSHAKE &&
	    burst < READ_BURST) {
		n = transport_read(s->transport, s->rbuf, READ_BUFFER_SIZE);
		if (n <= 0)
			break;
		burst += (size_t)n;
		process_input(s, s->rbuf, (size_t)n);
	}
	/* Compressed, a literal's size says nothing about the wire. */
	if (session_alive(s))
		transport_expect(s->transport, s->z == NULL ?
		    imap_parser_literal_left(s->parser) : 0);
}

static int
deflated(void *arg, const unsigned char *data, size_t len)
{
	struct session *s = arg;

	return transport_write(s->transport, data, len);
}

/* Everything the client sends goes through here (and through DEFLATE once
 * COMPRESS is on); a failure ends the session.  0, or -1. */
static int
session_write(struct session *s, const void *data, size_t len)
{
	int r;

	if (s->z != NULL)
		r = compress_deflate(s->z, data, len, deflated, s);
	else
		r = transport_write(s->transport, data, len);
	if (r != 0) {
		session_fail(s, SESSION_ERR_NETWORK, "%s",
		    transport_error(s->transport));
		return -1;
	}
	return 0;
}

static void
on_eof(struct session *s)
{
	if (s->state == S_LOGOUT) {
		/* Some servers close right after "* BYE" without the tagged
		 * LOGOUT reply: the logout succeeded all the same. */
		session_set_state(s, S_CLOSED);
		transport_close(s->transport);
		if (s->cb.closed != NULL)
			s->cb.closed(s, s->arg);
		return;
	}
	if (s->bye[0] != '\0')
		session_fail(s, SESSION_ERR_SERVER, "server closed the "
		    "connection: BYE %s", s->bye);
	else
		session_fail(s, SESSION_ERR_NETWORK, "server closed the "
		    "connection unexpectedly (in state %s)",
		    state_names[s->state]);
}

static void
on_stall(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = w->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(s->loop, &s->stall);
	session_ref(s);
	if (s->untagged_run > UNTAGGED_PROGRESS_MAX)
		session_fail(s, SESSION_ERR_TIMEOUT, "no response from %s:%u "
		    "for %us, only %lu untagged ones (in state %s)",
		    s->host, s->port, s->timeout,
		    s->untagged_run, state_names[s->state]);
	else if (s->literal_in == s->stall_mark)
		session_fail(s, SESSION_ERR_TIMEOUT, "no response from %s:%u "
		    "for %us (in state %s)", s->host, s->port, s->timeout, state_names[s->state]);
	else
		session_fail(s, SESSION_ERR_TIMEOUT, "no response from %s:%u "
		    "for %us, only %llu bytes of one (in state %s)",
		    s->host, s->port, s->timeout,
		    s->literal_in - s->stall_mark, state_names[s->state]);
	session_unref(s);
}

static void
on_transport(struct transport *t, enum transport_event event, void *arg)
{
	struct session *s = arg;

	(void)t;
	session_ref(s);
	switch (event) {
	case TRANSPORT_CONNECTED:
		log_debug("%s: connected (%s)", s->prefix,
		    transport_description(s->transport));
		session_set_state(s, S_GREETING);
		update_timeout(s);
		if (transport_is_tls(s->transport) && s->cb.stage != NULL)
			s->cb.stage(s, SESSION_STAGE_TLS,
			    transport_description(s->transport), s->arg);
		break;
	case TRANSPORT_TLS_READY:
		update_timeout(s);
		if (s->cb.stage != NULL)
			s->cb.stage(s, SESSION_STAGE_TLS,
			    transport_description(s->transport), s->arg);
		request_capabilities(s, S_CAPABILITY_TLS);
		break;
	case TRANSPORT_READABLE:
		read_available(s);
		break;
	case TRANSPORT_DRAINED:
		flush_commands(s);
		break;
	case TRANSPORT_EOF:
		on_eof(s);
		break;
	case TRANSPORT_TIMEOUT:
		/* Resolving, connecting and TLS handshakes are the
		 * transport's to time, and to name ("TLS handshake with ...
		 * timed out"); a silent server is ours. */
		if ((s->state == S_CONNECTING ||
		    s->state == S_TLS_HANDSHAKE) &&
		    *transport_error(s->transport) != '\0')
			session_fail(s, SESSION_ERR_TIMEOUT, "%s",
			    transport_error(s->transport));
		else
			session_fail(s, SESSION_ERR_TIMEOUT, "no response from "
			    "%s:%u for %us (in state %s)", s->host, s->port,
			    s->timeout, state_names[s->state]);
		break;
	case TRANSPORT_ERROR:
		session_fail(s, transport_failure(s), "%s",
		    transport_error(s->transport));
		break;
	}
	session_unref(s);
}

/* Commands */

void
session_cmd_init(struct session *s, struct imap_cmd *cmd, const char *verb)
{
	imap_cmd_init(cmd, &s->tagger, verb);
}

static void
trace_command(const struct session *s, const struct pending_cmd *pc)
{
	const char *data = pc->cmd.data;
	size_t len = pc->cmd.len;

	if (log_get_level() < LOGL_DEBUG)
		return;
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	/* Credentials never reach the log: show only tag and verb. */
	if (strncasecmp(data + strlen(pc->cmd.tag) + 1, "LOGIN ", 6) == 0 ||
	    strncasecmp(data + strlen(pc->cmd.tag) + 1, "AUTHENTICATE ",
	    13) == 0) {
		const char *sp = memchr(data + strlen(pc->cmd.tag) + 1, ' ',
		    len - strlen(pc->cmd.tag) - 1);
		const char *sp2 = sp != NULL ? memchr(sp + 1, ' ',
		    len - (size_t)(sp + 1 - data)) : NULL;

		len = (size_t)((sp2 != NULL ? sp2 : data + len) - data);
		log_debug("%s: C: %.*s <credentials hidden>", s->prefix,
		    (int)len, data);
		return;
	}
	if (len > 300)
		log_debug("%s: C: %.300s... (%zu bytes)", s->prefix, data,
		    len);
	else
		log_debug("%s: C: %.*s", s->prefix, (int)len, data);
}

/* Queues a command; sasl (taken over) is the line an AUTHENTICATE sends
 * after the server's "+"; idle marks an IDLE. */
static int
enqueue_pc(struct session *s, struct imap_cmd *cmd,
    session_untagged_fn *untagged, session_done_fn *done, void *arg,
    char *sasl, bool idle, const struct pending_cmd *body)
{
	struct pending_cmd *pc;

	if (!session_alive(s) || imap_cmd_finish(cmd) != 0 ||
	    (pc = calloc(1, sizeof *pc)) == NULL) {
		imap_cmd_free(cmd);
		if (sasl != NULL) {
			explicit_bzero(sasl, strlen(sasl));
			free(sasl);
		}
		return -1;
	}
	pc->cmd = *cmd;
	memset(cmd, 0, sizeof *cmd);
	pc->untagged = untagged;
	pc->done = done;
	pc->arg = arg;
	pc->sasl = sasl;
	pc->idle = idle;
	if (body != NULL) {
		pc->body = body->body;
		pc->body_len = body->body_len;
		pc->body_sync = body->body_sync;
		pc->body_go = !body->body_sync;
	}
	*s->tail = pc;
	s->tail = &pc->next;
	if (s->unsent == NULL)
		s->unsent = pc;
	trace_command(s, pc);
	session_ref(s);
	flush_commands(s);
	update_timeout(s);
	session_unref(s);
	return 0;
}

static int
enqueue(struct session *s, struct imap_cmd *cmd, session_untagged_fn *untagged,
    session_done_fn *done, void *arg, char *sasl, bool idle)
{
	return enqueue_pc(s, cmd, untagged, done, arg, sasl, idle, NULL);
}

int
session_send(struct session *s, struct imap_cmd *cmd,
    session_untagged_fn *untagged, session_done_fn *done, void *arg)
{
	return enqueue(s, cmd, untagged, done, arg, NULL, false);
}

int
session_send_literal(struct session *s, struct imap_cmd *cmd, uint64_t len,
    session_body_fn *body, session_untagged_fn *untagged,
    session_done_fn *done, void *arg)
{
	struct pending_cmd b = { .body = body, .body_len = len };
	enum imap_literal_mode mode = session_literal_mode(s);

	b.body_sync = mode == IMAP_LITERAL_SYNC || (mode ==
	    IMAP_LITERAL_MINUS && len > IMAP_LITERAL_MINUS_MAX);
	imap_cmd_add_raw(cmd, "{%llu%s}", (unsigned long long)len,
	    b.body_sync ? "" : "+");
	if (s->body_buf == NULL && session_alive(s) &&
	    (s->body_buf = malloc(BODY_CHUNK)) == NULL) {
		imap_cmd_free(cmd);
		return -1;
	}
	return enqueue_pc(s, cmd, untagged, done, arg, NULL, false, &b);
}

/*
 * Writes pc's streamed literal while the transport has room.  0 when all of
 * it (and the CRLF that ends the command) is written; 1 when the rest waits
 * for the queue to drain; -1 when the session failed.
 */
static int
send_body(struct session *s, struct pending_cmd *pc)
{
	uint64_t left;
	ssize_t n;

	while (pc->body_sent < pc->body_len) {
		if (transport_queued(s->transport) >= BODY_QUEUE_MAX)
			return 1;
		left = pc->body_len - pc->body_sent;
		n = pc->body(pc->arg, s->body_buf, left < BODY_CHUNK ?
		    (size_t)left : BODY_CHUNK);
		if (n <= 0 || (uint64_t)n > left) {
			session_fail(s, SESSION_ERR_LOCAL, "cannot read the "
			    "literal of %s (%llu of %llu bytes sent)",
			    pc->cmd.tag, (unsigned long long)pc->body_sent,
			    (unsigned long long)pc->body_len);
			return -1;
		}
		if (session_write(s, s->body_buf, (size_t)n) != 0)
			return -1;
		pc->body_sent += (uint64_t)n;
		/* Bytes leaving are progress too: a big APPEND on a slow
		 * link gets no answer until its end. */
		stall_progress(s);
	}
	if (session_write(s, "\r\n", 2) != 0)
		return -1;
	pc->body_done = true;
	return 0;
}


/* Writes queued commands up to the next point where the server must say
 * "+" first (a synchronising literal, an AUTHENTICATE exchange). */
static void
flush_commands(struct session *s)
{
	struct pending_cmd *pc;
	size_t end;

	while ((pc = s->unsent) != NULL && !pc->waiting && session_alive(s)) {
		end = pc->split < pc->cmd.nsplits ? pc->cmd.splits[pc->split] :
		    pc->cmd.len;
		if (end > pc->sent) {
			if (session_write(s, pc->cmd.data + pc->sent,
			    end - pc->sent) != 0)
				return;
			pc->sent = end;
		}
		/* Nothing may follow an IDLE until its DONE. */
		if (pc->sent < pc->cmd.len || pc->sasl != NULL || pc->idle) {
			pc->waiting = true;
			return;
		}
		if (pc->body != NULL && !pc->body_done) {
			if (!pc->body_go) {
				pc->waiting = true;
				return;
			}
			if (send_body(s, pc) != 0)
				return;
		}
		s->unsent = pc->next;
	}
}

static void
send_done(struct session *s, struct pending_cmd *pc)
{
	static const char done[] = "DONE\r\n";

	pc->waiting = pc->idling = false;
	pc->idle = false;
	if (session_write(s, done, sizeof done - 1) != 0)
		return;
	s->unsent = pc->next;
	flush_commands(s);
	update_timeout(s);
}

static void
on_continuation(struct session *s, const struct imap_response *resp)
{
	struct pending_cmd *pc = s->unsent;
	static const char empty[] = "\r\n";

	if (pc == NULL || !pc->waiting) {
		/*
		 * An AUTHENTICATE sent whole (SASL-IR, or its response already
		 * given) can still get a challenge: XOAUTH2 and OAUTHBEARER
		 * send their error as "+ <base64 JSON>" and want an empty line
		 * before they say NO.
		 */
		for (pc = s->head; pc != NULL; pc = pc->next)
			if (pc->sasl_exchange && pc->sent == pc->cmd.len &&
			    pc->sasl == NULL)
				break;
		if (pc != NULL) {
			(void)session_write(s, empty, 2);
			return;
		}
		session_fail(s, SESSION_ERR_PROTOCOL, "unexpected continuation "
		    "request \"+ %s\"", resp->text != NULL ? resp->text : "");
		return;
	}
	if (pc->idle) {
		pc->idling = true;
		if (pc->stop_idle)
			send_done(s, pc);
		else
			update_timeout(s);
		/* Last: the owner may stop it at once. */
		if (session_alive(s) && s->cb.idling != NULL)
			s->cb.idling(s, s->arg);
		return;
	}
	pc->waiting = false;
	if (pc->sent < pc->cmd.len) {
		pc->split++;
		flush_commands(s);
		return;
	}
	if (pc->body != NULL && !pc->body_go) {
		pc->body_go = true;
		flush_commands(s);
		return;
	}
	/* AUTHENTICATE: the first "+" takes the initial response; a later one
	 * is an error challenge, answered empty so the server can say NO. */
	if (pc->sasl != NULL) {
		if (session_write(s, pc->sasl, strlen(pc->sasl)) != 0)
			return;
		explicit_bzero(pc->sasl, strlen(pc->sasl));
		free(pc->sasl);
		pc->sasl = NULL;
	} else if (session_write(s, empty, 2) != 0) {
		return;
	}
	s->unsent = pc->next;
	flush_commands(s);
}

static void
on_tagged(struct session *s, const struct imap_response *resp)
{
	struct pending_cmd **pp, *pc;
	char line[ERROR_MAX];

	for (pp = &s->head; (pc = *pp) != NULL; pp = &pc->next)
		if (strcmp(pc->cmd.tag, resp->tag) == 0)
			break;
	if (pc == NULL || pc->sent == 0) {
		/* Not even sent yet: the server cannot know that tag. */
		session_fail(s, SESSION_ERR_PROTOCOL, "response with unknown "
		    "tag %s", resp->tag);
		return;
	}
	if (s->unsent == pc && pc->body != NULL && ((pc->body_go &&
	    pc->sent == pc->cmd.len) || resp->status == IMAP_STATUS_OK)) {
		/* The server owes the literal's reading (RFC 7888): an answer
		 * before its last byte leaves the stream out of step.  Nor can
		 * a command whose literal never went out have succeeded (an
		 * APPEND would count a message never sent as stored). */
		session_fail(s, SESSION_ERR_PROTOCOL, "server answered %s "
		    "before its literal was sent", pc->cmd.tag);
		return;
	}
	if (s->unsent == pc) {
		/* Completed before we sent all of it (NO to a literal). */
		s->unsent = pc->next;
	}
	*pp = pc->next;
	if (s->tail == &pc->next)
		s->tail = pp;
	if (log_get_level() >= LOGL_DEBUG)
		log_debug("%s: S: %s %s", s->prefix, resp->tag,
		    imap_response_status_line(resp, line, sizeof line));
	if (pc->done != NULL)
		pc->done(s, resp, pc->arg);
	free_cmd(pc);
	if (session_alive(s)) {
		flush_commands(s);
		update_timeout(s);
	}
}

static void
on_untagged(struct session *s, const struct imap_response *resp)
{
	if (imap_caps_update(&s->caps, resp) > 0 && resp->status ==
	    IMAP_STATUS_NONE)
		return;
	if (resp->status == IMAP_STATUS_BYE) {
		snprintf(s->bye, sizeof s->bye, "%s", resp->text != NULL ?
		    resp->text : "");
		if (s->state != S_LOGOUT)
			log_warnx("%s: server says BYE: %s", s->prefix, s->bye);
		return;
	}
	if (resp->code != NULL && strcmp(resp->code, "ALERT") == 0)
		log_warnx("%s: server alert: %s", s->prefix,
		    resp->text != NULL ? resp->text : "");
	if (s->head != NULL && s->head->untagged != NULL)
		s->head->untagged(s, resp, s->head->arg);
	else if (s->state == S_READY && s->cb.untagged != NULL)
		s->cb.untagged(s, resp, s->arg);
}

static void
on_greeting(struct session *s, const struct imap_response *resp)
{
	char line[ERROR_MAX];

	if (resp->type != IMAP_RESP_UNTAGGED) {
		session_fail(s, SESSION_ERR_PROTOCOL, "bad greeting");
		return;
	}
	line[0] = '*';
	line[1] = ' ';
	imap_response_status_line(resp, line + 2, sizeof line - 2);
	if (s->cb.stage != NULL)
		s->cb.stage(s, SESSION_STAGE_GREETING, line, s->arg);
	switch (resp->status) {
	case IMAP_STATUS_OK:
		break;
	case IMAP_STATUS_PREAUTH:
		if (s->tls == SESSION_TLS_STARTTLS) {
			/* RFC 3501: no STARTTLS after PREAUTH; refuse rather
			 * than go on in plaintext. */
			session_fail(s, SESSION_ERR_TLS, "server sent PREAUTH,"
			    " so STARTTLS is impossible; refusing plaintext");
			return;
		}
		break;
	case IMAP_STATUS_BYE:
		session_fail(s, SESSION_ERR_SERVER, "server refused the "
		    "connection: BYE %s", resp->text != NULL ? resp->text : "");
		return;
	default:
		session_fail(s, SESSION_ERR_PROTOCOL, "bad greeting: %s", line);
		return;
	}
	imap_caps_update(&s->caps, resp);
	if (resp->status == IMAP_STATUS_PREAUTH) {
		s->state = S_AUTHENTICATE;
		request_capabilities(s, S_CAPABILITY_AUTH);
		return;
	}
	request_capabilities(s, S_CAPABILITY);
}

static void
handle_response(struct session *s, const struct imap_response *resp)
{
	switch (resp->type) {
	case IMAP_RESP_CONTINUE:
		on_continuation(s, resp);
		return;
	case IMAP_RESP_TAGGED:
		on_tagged(s, resp);
		return;
	case IMAP_RESP_UNTAGGED:
		if (s->state == S_GREETING)
			on_greeting(s, resp);
		else
			on_untagged(s, resp);
		return;
	}
}

/* Connection set-up */

static bool
expect_ok(struct session *s, const struct imap_response *tagged,
    enum session_error error, const char *what)
{
	char text[ERROR_MAX];

	if (tagged->status == IMAP_STATUS_OK)
		return true;
	session_fail(s, error, "%s failed: %s", what,
	    imap_response_text(tagged, text, sizeof text));
	return false;
}

static void
capability_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	(void)arg;
	if (!expect_ok(s, tagged, SESSION_ERR_SERVER, "CAPABILITY"))
		return;
	imap_caps_update(&s->caps, tagged);
	after_capabilities(s);
}

/* Capabilities come from the greeting or a tagged response code when the
 * server sends them there; else ask. */
static void
request_capabilities(struct session *s, enum session_state state)
{
	struct imap_cmd cmd;

	session_set_state(s, state);
	if (s->caps.n > 0) {
		after_capabilities(s);
		return;
	}
	session_cmd_init(s, &cmd, "CAPABILITY");
	send_internal(s, &cmd, capability_done);
}

static void
send_internal(struct session *s, struct imap_cmd *cmd, session_done_fn *done)
{
	if (session_send(s, cmd, NULL, done, NULL) != 0)
		session_fail(s, SESSION_ERR_LOCAL, "cannot queue a command");
}

static void
starttls_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	(void)arg;
	if (!expect_ok(s, tagged, SESSION_ERR_TLS, "STARTTLS"))
		return;
	/* Forget what was learnt in plaintext (RFC 3501 6.2.1). */
	imap_caps_clear(&s->caps);
	session_set_state(s, S_TLS_HANDSHAKE);
	if (transport_start_tls(s->transport) != 0)
		session_fail(s, SESSION_ERR_TLS, "%s",
		    transport_error(s->transport));
}

/*
 * COMPRESS=DEFLATE (RFC 4978) pays where the network is slower than the
 * server's compressor: "auto" uses it for peers beyond the local networks.
 */
static bool
want_compression(const struct session *s)
{
	if (s->compress == SESSION_COMPRESS_NO ||
	    !imap_caps_has(&s->caps, "COMPRESS=DEFLATE"))
		return false;
	return s->compress == SESSION_COMPRESS_YES ||
	    !transport_peer_is_local(s->transport);
}

static void become_ready(struct session *);

static void
compress_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	char text[ERROR_MAX];

	(void)arg;
	if (tagged->status == IMAP_STATUS_OK) {
		/* Level 1: our side sends only short commands. */
		if ((s->z = compress_new(1)) == NULL) {
			session_fail(s, SESSION_ERR_LOCAL, "out of memory");
			return;
		}
		log_debug("%s: compression on (DEFLATE)", s->prefix);
		if (s->cb.stage != NULL)
			s->cb.stage(s, SESSION_STAGE_COMPRESS, "DEFLATE",
			    s->arg);
	} else {
		log_info("%s: server refused COMPRESS: %s", s->prefix,
		    imap_response_text(tagged, text, sizeof text));
	}
	become_ready(s);
}

static void
after_capabilities(struct session *s)
{
	struct imap_cmd cmd;

	if (!imap_caps_has(&s->caps, "IMAP4REV1") &&
	    !imap_caps_has(&s->caps, "IMAP4REV2")) {
		session_fail(s, SESSION_ERR_PROTOCOL, "server is not IMAP4rev1"
		    " or IMAP4rev2 (capabilities lack both)");
		return;
	}
	switch (s->state) {
	case S_CAPABILITY:
		if (s->cb.stage != NULL && s->tls != SESSION_TLS_IMPLICIT)
			s->cb.stage(s, SESSION_STAGE_CAPS, NULL, s->arg);
		else if (s->cb.stage != NULL)
			s->cb.stage(s, SESSION_STAGE_CAPS_TLS, NULL, s->arg);
		if (s->tls != SESSION_TLS_STARTTLS) {
			start_auth(s);
			return;
		}
		if (!imap_caps_has(&s->caps, "STARTTLS")) {
			session_fail(s, SESSION_ERR_TLS, "server does not offer"
			    " STARTTLS; refusing to continue without TLS");
			return;
		}
		session_set_state(s, S_STARTTLS);
		session_cmd_init(s, &cmd, "STARTTLS");
		send_internal(s, &cmd, starttls_done);
		return;
	case S_CAPABILITY_TLS:
		if (s->cb.stage != NULL)
			s->cb.stage(s, SESSION_STAGE_CAPS_TLS, NULL, s->arg);
		start_auth(s);
		return;
	case S_CAPABILITY_AUTH:
		if (s->cb.stage != NULL)
			s->cb.stage(s, SESSION_STAGE_CAPS_AUTH, NULL, s->arg);
		if (want_compression(s)) {
			session_set_state(s, S_COMPRESS);
			session_cmd_init(s, &cmd, "COMPRESS");
			imap_cmd_add_atom(&cmd, "DEFLATE");
			send_internal(s, &cmd, compress_done);
			return;
		}
		become_ready(s);
		return;
	default:
		return;
	}
}

static void
become_ready(struct session *s)
{
	session_set_state(s, S_READY);
	/* The secret is not needed again on this connection. */
	wipe_secret(&s->secret);
	update_timeout(s);
	if (s->cb.ready != NULL)
		s->cb.ready(s, s->arg);
}

static void
auth_done(struct session *s, const struct imap_response *tagged, void *arg)
{
	char what[160];

	(void)arg;
	/* The login name, so that a wrong one is seen at once. */
	snprintf(what, sizeof what, "login as %s", s->user);
	if (!expect_ok(s, tagged, SESSION_ERR_AUTH, what))
		return;
	log_debug("%s: logged in", s->prefix);
	/* Capabilities may change after login (RFC 3501 6.2.2). */
	imap_caps_clear(&s->caps);
	imap_caps_update(&s->caps, tagged);
	request_capabilities(s, S_CAPABILITY_AUTH);
}

static void
send_authenticate(struct session *s, enum sasl_method method)
{
	const struct sasl_credentials creds = {
		.user = s->user, .secret = s->secret, .host = s->host,
		.port = s->port,
	};
	struct pending_cmd *pc;
	struct imap_cmd cmd;
	char *b64, *line;

	if ((b64 = sasl_initial_response(method, &creds)) == NULL) {
		session_fail(s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	session_cmd_init(s, &cmd, "AUTHENTICATE");
	imap_cmd_add_atom(&cmd, sasl_mechanism_name(method));
	if (imap_caps_has(&s->caps, "SASL-IR")) {
		imap_cmd_add_atom(&cmd, b64);
		line = NULL;
	} else if ((line = malloc(strlen(b64) + 3)) != NULL) {
		/* Without SASL-IR the response goes after the server's "+". */
		sprintf(line, "%s\r\n", b64);
	}
	explicit_bzero(b64, strlen(b64));
	free(b64);
	if (line == NULL && !imap_caps_has(&s->caps, "SASL-IR")) {
		imap_cmd_free(&cmd);
		session_fail(s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	if (enqueue(s, &cmd, NULL, auth_done, NULL, line, false) != 0) {
		session_fail(s, SESSION_ERR_LOCAL, "cannot queue a command");
		return;
	}
	for (pc = s->head; pc != NULL && pc->next != NULL; pc = pc->next)
		;
	if (pc != NULL)
		pc->sasl_exchange = true;
}

static void
send_login(struct session *s)
{
	enum imap_literal_mode mode = session_literal_mode(s);
	struct imap_cmd cmd;

	session_cmd_init(s, &cmd, "LOGIN");
	imap_cmd_add_string(&cmd, s->user, strlen(s->user), mode);
	imap_cmd_add_string(&cmd, s->secret, strlen(s->secret), mode);
	send_internal(s, &cmd, auth_done);
}

static void
start_auth(struct session *s)
{
	enum sasl_method method;
	const char *error;

	session_set_state(s, S_AUTHENTICATE);
	if (sasl_choose(s->auth, &s->caps, &method, &error) != 0)
		session_fail(s, SESSION_ERR_AUTH, "%s", error);
	else if (method == SASL_LOGIN_COMMAND)
		send_login(s);
	else
		send_authenticate(s, method);
}

/* IDLE (RFC 2177) */

int
session_idle_start(struct session *s, session_untagged_fn *untagged,
    session_done_fn *done, void *arg)
{
	struct imap_cmd cmd;

	session_cmd_init(s, &cmd, "IDLE");
	return enqueue(s, &cmd, untagged, done, arg, NULL, true);
}

void
session_idle_stop(struct session *s)
{
	struct pending_cmd *pc;

	for (pc = s->head; pc != NULL && !pc->idle; pc = pc->next)
		;
	if (pc == NULL || !session_alive(s))
		return;
	session_ref(s);
	if (pc->idling)
		send_done(s, pc);
	else
		pc->stop_idle = true;
	session_unref(s);
}

/* Logout */

static void
logout_done(struct session *s, const struct imap_response *tagged, void *arg)
{
	(void)tagged;
	(void)arg;
	session_set_state(s, S_CLOSED);
	transport_close(s->transport);
	if (s->cb.closed != NULL)
		s->cb.closed(s, s->arg);
}

void
session_logout(struct session *s)
{
	struct imap_cmd cmd;

	if (!session_alive(s) || s->state == S_LOGOUT)
		return;
	session_ref(s);
	session_cmd_init(s, &cmd, "LOGOUT");
	send_internal(s, &cmd, logout_done);
	if (session_alive(s))
		session_set_state(s, S_LOGOUT);
	session_unref(s);
}

/* Accessors */

bool
session_is_ready(const struct session *s)
{
	return s->state == S_READY && session_alive(s);
}

const struct imap_caps *
session_caps(const struct session *s)
{
	return &s->caps;
}

bool
session_has_cap(const struct session *s, const char *name)
{
	return imap_caps_has(&s->caps, name);
}

enum imap_literal_mode
session_literal_mode(const struct session *s)
{
	if (imap_caps_has(&s->caps, "LITERAL+"))
		return IMAP_LITERAL_PLUS;
	if (imap_caps_has(&s->caps, "LITERAL-"))
		return IMAP_LITERAL_MINUS;
	return IMAP_LITERAL_SYNC;
}

/* Counts streamed literal bytes as progress, then hands them on. */
static int
session_sink(void *arg, enum imap_sink_event event,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	struct session *s = arg;

	if (event == IMAP_SINK_DATA) {
		s->literal_in += len;
		if (s->literal_in - s->stall_mark >= PROGRESS_BYTES)
			stall_progress(s);
	}
	return s->sink(s->sink_arg, event, info, data, len);
}

void
session_set_sink(struct session *s, imap_sink_fn *sink, void *arg)
{
	s->sink = sink;
	s->sink_arg = arg;
	imap_parser_set_sink(s->parser, sink != NULL ? session_sink : NULL,
	    sink != NULL ? s : NULL);
}



void
session_set_callbacks(struct session *s, const struct session_callbacks *cb,
    void *arg)
{
	/* Freed inside a callback: none follows, whoever owns it now. */
	if (s->free_requested)
		return;
	s->cb = *cb;
	s->arg = arg;
}
