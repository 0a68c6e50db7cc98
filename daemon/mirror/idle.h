/*
 * mirror/idle: push for one account.  Keeps a connection with INBOX examined
 * and in IDLE (RFC 2177), says when new mail arrives, and on its owner's
 * word fetches it on that same connection (idle_watch_fetch(): DONE, a push
 * run of the sync engine, mirror_start_push(), then IDLE again), so that
 * push costs no new login.  The IDLE is re-issued well before the 29-minute
 * limit RFC 2177 allows servers (every [general] idle_refresh, 9 minutes
 * unless set), and the reply to that re-issue is held to the no-progress
 * timeout, so a silently dead connection is noticed within idle_refresh plus
 * the timeout and reported as a failure (the scheduler reconnects).
 */
#ifndef MM_MIRROR_IDLE_H
#define MM_MIRROR_IDLE_H

#include <stdbool.h>

#include <ev.h>

#include "config.h"
#include "imap/session.h"
#include "mirror/mirror.h"

enum idle_event {
	IDLE_WATCHING,		/* in IDLE on INBOX: the server took the
				 * connection's first IDLE */
	IDLE_NEW_MAIL,		/* EXISTS grew: time to fetch or sync */
	IDLE_FETCHED,		/* a fetch on this connection ended:
				 * idle_watch_result() says how */
	IDLE_UNSUPPORTED,	/* the server has no IDLE capability */
	IDLE_FAILED,		/* the connection ended; message says why */
};

struct idle_watch;
typedef void idle_event_fn(struct idle_watch *w, enum idle_event event,
    const char *message, void *arg);

/* Connects and starts watching; events follow from the loop.  After
 * UNSUPPORTED or FAILED the watch is dead: free it.  The config must
 * outlive the watch. */
struct idle_watch *idle_watch_start(struct ev_loop *loop,
    const struct config *config, const struct account *account,
    idle_event_fn *cb, void *arg);
/* Stops it, and a fetch on it (uncommitted appends rolled back). */
void idle_watch_free(struct idle_watch **w);
/* After IDLE_FAILED: the session error that ended the watch (SESSION_ERR_AUTH
 * when the credentials were refused, so the caller can back off slowly);
 * SESSION_OK when the server refused a command or closed the connection. */
enum session_error idle_watch_error(const struct idle_watch *w);

/*
 * Fetches INBOX's new mail on the watch's connection: DONE, then a push run
 * (mirror_start_push(): the account's lock, the commit protocol, the state's
 * outcome), then IDLE again; IDLE_FETCHED follows from the loop.  Mail
 * announced meanwhile is announced again (IDLE_NEW_MAIL) once IDLE is back.
 * A fetch whose connection fails reports IDLE_FETCHED (what arrived whole is
 * committed), then IDLE_FAILED.  0, or -1 when the watch is not in IDLE now
 * (connecting, fetching already, dead): nothing happens.
 */
int idle_watch_fetch(struct idle_watch *w);
/* A fetch runs (requested, or on the connection). */
bool idle_watch_fetching(const struct idle_watch *w);
/* During IDLE_FETCHED: the push run's result (declined: it left the mail
 * to a full sync; MIRROR_ERR_BUSY: a sync holds the account). */
const struct mirror_result *idle_watch_result(const struct idle_watch *w);

#endif
