/*
 * imap/session: one IMAP connection as a state machine on libev.
 *
 * It connects (net/transport), reads the greeting, learns the capabilities,
 * upgrades with STARTTLS when asked to (never falling back to plaintext),
 * authenticates, and then runs the commands its owner queues: pipelined, each
 * with a callback for the untagged responses that arrive while it is the
 * oldest command in flight and one for its tagged completion.  Any failure
 * ends the session with one error of a kind the scheduler can act on.
 *
 * It knows nothing of the configuration: its owner gives it plain
 * parameters and a way to obtain the secret, and picks the transport
 * (sockets, or an in-memory one in tests) through net/transport's
 * operations.
 *
 * Callbacks may queue commands and may call session_logout(),
 * session_abort() and even session_free(): a session freed inside one of
 * its callbacks is released once the callback has returned, and no
 * callback follows.
 */
#ifndef MM_IMAP_SESSION_H
#define MM_IMAP_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "imap/parser.h"
#include "imap/response.h"
#include "imap/writer.h"

struct transport_ops;

enum session_error {
	SESSION_OK = 0,
	SESSION_ERR_NETWORK,	/* resolve, connect, reset, EOF */
	SESSION_ERR_TIMEOUT,	/* no progress for the timeout */
	SESSION_ERR_TLS,	/* handshake or verification */
	SESSION_ERR_AUTH,	/* credentials rejected */
	SESSION_ERR_SECRET,	/* the owner could not obtain the secret */
	SESSION_ERR_PROTOCOL,	/* unparseable or unexpected server data */
	SESSION_ERR_SERVER,	/* BYE, NO/BAD where OK was needed */
	SESSION_ERR_LOCAL,	/* this side: out of memory, a command not queued */
};

/* Moments worth telling the user in --probe. */
enum session_stage {
	SESSION_STAGE_GREETING,		/* text: the greeting line */
	SESSION_STAGE_CAPS,		/* capabilities without TLS (before
					 * STARTTLS, or with tls none) */
	SESSION_STAGE_TLS,		/* text: TLS description */
	SESSION_STAGE_CAPS_TLS,		/* capabilities after TLS */
	SESSION_STAGE_CAPS_AUTH,	/* capabilities after login */
	SESSION_STAGE_COMPRESS,		/* text: "DEFLATE" once it is on */
};

enum session_tls {
	SESSION_TLS_IMPLICIT,	/* TLS from the first byte */
	SESSION_TLS_STARTTLS,	/* STARTTLS, or fail */
	SESSION_TLS_NONE,	/* plaintext */
};

enum session_auth {
	SESSION_AUTH_AUTO,	/* AUTHENTICATE PLAIN if offered, else LOGIN */
	SESSION_AUTH_PLAIN,
	SESSION_AUTH_LOGIN,
	SESSION_AUTH_XOAUTH2,	/* the secret is an OAuth 2 access token */
	SESSION_AUTH_OAUTHBEARER, /* RFC 7628; the secret is a token */
};

enum session_compress {
	SESSION_COMPRESS_AUTO,	/* DEFLATE with peers beyond local networks */
	SESSION_COMPRESS_YES,	/* whenever the server offers it */
	SESSION_COMPRESS_NO,
};

/*
 * How the session obtains its secret.  fetch is called once per
 * session_start(), before connecting; it returns a job (any non-NULL
 * handle) and later calls done, from the loop and never from inside fetch,
 * with either a malloc'ed secret (the session wipes and frees it) or a
 * malloc'ed error message (the session frees it).  NULL: it could not
 * start.  cancel(job) is called instead when the session ends or is freed
 * first; done must not follow it.  session_secret_fn has the shape of
 * secret.h's secret_done_fn, so that fetch and cancel can be thin wrappers
 * of secret_fetch_async() and secret_job_cancel().
 */
typedef void session_secret_fn(char *secret, char *error, void *done_arg);
struct session_credential {
	void *(*fetch)(struct ev_loop *loop, void *arg, session_secret_fn *done,
	    void *done_arg);
	void (*cancel)(void *job);
	void *arg;
};

/* What session_new() needs; the strings and the pin are copied. */
struct session_params {
	const char *name;	/* in log lines: "account <name>" */
	const char *host;
	uint16_t port;
	enum session_tls tls;
	const char *ca_file;	/* NULL: the system trust store */
	const uint8_t *pin_sha256;	/* NULL, or 32 bytes: SPKI SHA-256 */
	const char *user;
	enum session_auth auth;
	enum session_compress compress;
	unsigned timeout;	/* seconds without progress; 0: none */
	struct session_credential credential;
	/* The transport; NULL: net/transport's sockets. */
	const struct transport_ops *transport;
};

struct session;

struct session_callbacks {
	/* Logged in; capabilities known; commands may be queued. */
	void (*ready)(struct session *s, void *arg);
	/* The session ended in error; it is closed already. */
	void (*failed)(struct session *s, enum session_error error,
	    const char *message, void *arg);
	/* LOGOUT completed (after session_logout). */
	void (*closed)(struct session *s, void *arg);
	/* Untagged responses no command claimed (EXISTS during IDLE...). */
	void (*untagged)(struct session *s, const struct imap_response *resp,
	    void *arg);
	/* Optional: stages for --probe. */
	void (*stage)(struct session *s, enum session_stage stage,
	    const char *text, void *arg);
	/* Optional: the server took an IDLE (its "+"; the DONE of one
	 * stopped before it went out already). */
	void (*idling)(struct session *s, void *arg);
};

/* A command's callbacks.  done gets the tagged response. */
typedef void session_untagged_fn(struct session *s,
    const struct imap_response *resp, void *arg);
typedef void session_done_fn(struct session *s,
    const struct imap_response *tagged, void *arg);

/* NULL when out of memory.  Nothing happens until session_start(). */
struct session *session_new(struct ev_loop *loop,
    const struct session_params *params, const struct session_callbacks *cb,
    void *arg);
/* Closes the connection, cancels a secret being fetched, drops queued
 * commands without calling them, and sets *s to NULL. */
void session_free(struct session **s);

/* Obtains the secret (params.credential), connects and logs in; ready or
 * failed follows.  0, or -1 when it failed at once (failed has been
 * called). */
int session_start(struct session *s);

/* Starts a command with the session's next tag (imap/writer.h builds the
 * rest). */
void session_cmd_init(struct session *s, struct imap_cmd *cmd,
    const char *verb);
/* Queues cmd (built with session_cmd_init); ownership of cmd's buffers
 * passes to the session, also on failure.  Commands are pipelined.  0, or
 * -1 (a session that has ended, or out of memory). */
int session_send(struct session *s, struct imap_cmd *cmd,
    session_untagged_fn *untagged, session_done_fn *done, void *arg);

/*
 * A command ending in one literal of len bytes that the session reads from
 * its owner as the connection takes them (APPEND of a big message: never
 * all in memory).  cmd (built with session_cmd_init) holds everything
 * before the literal; the session adds "{len+}" (LITERAL+, or LITERAL-
 * up to 4096 bytes) or "{len}" (then the body waits for the server's
 * "+"), the body and the CRLF that ends the command.  body(arg, buf, size)
 * fills buf with the next 1..size bytes and returns how many, or -1 (the
 * session then fails with SESSION_ERR_LOCAL); it is called only from the
 * loop, never for more than the bytes left.  A server that completes the
 * command after a non-synchronising literal began but before its end fails
 * the session (the stream would be out of step), and so does one that
 * answers OK before the literal went out.  Otherwise as session_send().
 */
typedef ssize_t session_body_fn(void *arg, void *buf, size_t size);
int session_send_literal(struct session *s, struct imap_cmd *cmd,
    uint64_t len, session_body_fn *body, session_untagged_fn *untagged,
    session_done_fn *done, void *arg);

/*
 * IDLE (RFC 2177): queued like a command; untagged responses (EXISTS...) go
 * to untagged while it lasts; session_idle_stop() sends DONE (at once, or
 * as soon as the server has accepted the IDLE), after which done gets the
 * tagged response.  Commands queued meanwhile wait for the DONE.  While
 * idling, the no-progress timeout is off: the owner re-issues IDLE before
 * the server's inactivity limit and treats a late reply as a dead link.
 */
int session_idle_start(struct session *s, session_untagged_fn *untagged,
    session_done_fn *done, void *arg);
void session_idle_stop(struct session *s);

/* The sink for FETCH body literals (see imap/parser.h). */
void session_set_sink(struct session *s, imap_sink_fn *sink, void *arg);
/* Another owner for a logged-in session (the push watch lends its
 * connection to a sync and takes it back): its callbacks from now on.
 * Commands queued already keep theirs. */
void session_set_callbacks(struct session *s,
    const struct session_callbacks *cb, void *arg);

/* Sends LOGOUT after all queued commands; closed (or failed) follows. */
void session_logout(struct session *s);
/* Ends the session now, with error as the reason (failed follows unless
 * error is SESSION_OK, for which nothing more is called). */
void session_abort(struct session *s, enum session_error error,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Logged in, and neither ended nor logging out: commands may be queued. */
bool session_is_ready(const struct session *s);
const struct imap_caps *session_caps(const struct session *s);
bool session_has_cap(const struct session *s, const char *name);
enum imap_literal_mode session_literal_mode(const struct session *s);

const char *session_error_name(enum session_error error);

#endif
