/*
 * mirror/idle: push for one account.  Keeps a connection with INBOX examined
 * and in IDLE (RFC 2177), and says when new mail arrives; the scheduler then
 * runs a sync.  The IDLE is re-issued well before the 29-minute limit RFC 2177
 * allows servers (every [general] idle_refresh, 9 minutes unless set), and the
 * reply to that re-issue is held to the no-progress timeout, so a silently
 * dead connection is noticed within idle_refresh plus the timeout and
 * reported as a failure (the scheduler reconnects).
 */
#ifndef MM_MIRROR_IDLE_H
#define MM_MIRROR_IDLE_H

#include <ev.h>

#include "config.h"
#include "imap/session.h"

enum idle_event {
	IDLE_WATCHING,		/* in IDLE on INBOX */
	IDLE_NEW_MAIL,		/* EXISTS grew: time to sync */
	IDLE_UNSUPPORTED,	/* the server has no IDLE capability */
	IDLE_FAILED,		/* the connection ended; message says why */
};

struct idle_watch;
typedef void idle_event_fn(struct idle_watch *w, enum idle_event event,
    const char *message, void *arg);

/* Connects and starts watching; events follow from the loop.  After
 * UNSUPPORTED or FAILED the watch is dead: free it. */
struct idle_watch *idle_watch_start(struct ev_loop *loop,
    const struct config *config, const struct account *account,
    idle_event_fn *cb, void *arg);
void idle_watch_free(struct idle_watch **w);
/* After IDLE_FAILED: the session error that ended the watch (SESSION_ERR_AUTH
 * when the credentials were refused, so the caller can back off slowly);
 * SESSION_OK when the server refused a command or closed the connection. */
enum session_error idle_watch_error(const struct idle_watch *w);

#endif
