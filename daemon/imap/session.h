/*
 * imap/session: one IMAP connection as a state machine on libev.
 *
 * It connects (net/transport), reads the greeting, learns the capabilities,
 * upgrades with STARTTLS when configured (never falling back to plaintext),
 * authenticates, and then runs the commands its owner queues: pipelined, each
 * with a callback for the untagged responses that arrive while it is the
 * oldest command in flight and one for its tagged completion.  Any failure
 * ends the session with one error of a kind the scheduler can act on.
 *
 * Callbacks may queue commands and may call session_close(); they must not
 * free the session (free it after its failed/closed callback has returned,
 * e.g. from a later loop iteration, or from outside any callback).
 */
#ifndef MM_IMAP_SESSION_H
#define MM_IMAP_SESSION_H

#include <stdbool.h>

#include <ev.h>

#include "config.h"
#include "imap/parser.h"
#include "imap/response.h"
#include "imap/writer.h"

enum session_error {
	SESSION_OK = 0,
	SESSION_ERR_NETWORK,	/* resolve, connect, reset, EOF */
	SESSION_ERR_TIMEOUT,	/* no progress for the timeout */
	SESSION_ERR_TLS,	/* handshake or verification */
	SESSION_ERR_AUTH,	/* credentials rejected */
	SESSION_ERR_SECRET,	/* password_command / password_file failed */
	SESSION_ERR_PROTOCOL,	/* unparseable or unexpected server data */
	SESSION_ERR_SERVER,	/* BYE, NO/BAD where OK was needed */
	SESSION_ERR_LOCAL,	/* disk full, state file, ... */
};

/* Moments worth telling the user in --probe. */
enum session_stage {
	SESSION_STAGE_GREETING,		/* text: the greeting line */
	SESSION_STAGE_CAPS,		/* capabilities before TLS (STARTTLS) */
	SESSION_STAGE_TLS,		/* text: TLS description */
	SESSION_STAGE_CAPS_TLS,		/* capabilities after TLS */
	SESSION_STAGE_CAPS_AUTH,	/* capabilities after login */
	SESSION_STAGE_COMPRESS,		/* text: "DEFLATE" once it is on */
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
};

/* A command's callbacks.  done gets the tagged response. */
typedef void session_untagged_fn(struct session *s,
    const struct imap_response *resp, void *arg);
typedef void session_done_fn(struct session *s,
    const struct imap_response *tagged, void *arg);

/* log_prefix names the account in every line ("account personal"). */
struct session *session_new(struct ev_loop *loop,
    const struct account *account, unsigned timeout,
    const struct session_callbacks *cb, void *arg);
void session_free(struct session **s);

/* Fetches the secret, connects and logs in; ready or failed follows.
 * 0, or -1 when it failed at once (failed has been called). */
int session_start(struct session *s);

/* A command (built with session_cmd_init); ownership of cmd's buffers
 * passes to the session.  Commands are pipelined. 0 or -1. */
void session_cmd_init(struct session *s, struct imap_cmd *cmd,
    const char *verb);
int session_send(struct session *s, struct imap_cmd *cmd,
    session_untagged_fn *untagged, session_done_fn *done, void *arg);

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
bool session_idling(const struct session *s);

/* The sink for FETCH body literals (see imap/parser.h). */
void session_set_sink(struct session *s, imap_sink_fn *sink, void *arg);

/* Sends LOGOUT after all queued commands; closed (or failed) follows. */
void session_logout(struct session *s);
/* Ends the session now, with error as the reason (failed follows unless
 * error is SESSION_OK, for which nothing more is called). */
void session_abort(struct session *s, enum session_error error,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

const struct imap_caps *session_caps(const struct session *s);
bool session_has_cap(const struct session *s, const char *name);
enum imap_literal_mode session_literal_mode(const struct session *s);
const struct account *session_account(const struct session *s);

const char *session_error_name(enum session_error error);

#endif
