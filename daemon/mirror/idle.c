#include "mirror/idle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/session.h"
#include "log.h"
#include "mirror/account_session.h"

struct idle_watch {
	struct ev_loop *loop;
	const struct account *account;
	idle_event_fn *cb;
	void *arg;
	struct session *session;
	ev_timer refresh;
	ev_timer deferred;	/* reports a failure outside session code */
	uint32_t exists;
	bool watching;		/* INBOX examined: growth from here is news */
	bool dead;
	enum session_error error;	/* what ended the session */
	char message[512];
	enum idle_event dead_event;
};

static void start_idle(struct idle_watch *);

static void
on_deferred(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct idle_watch *w = t->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(w->loop, &w->deferred);
	w->cb(w, w->dead_event, w->message, w->arg);
}

static void
die(struct idle_watch *w, enum idle_event event, const char *message)
{
	if (w->dead)
		return;
	w->dead = true;
	w->dead_event = event;
	snprintf(w->message, sizeof w->message, "%s", message);
	ev_timer_stop(w->loop, &w->refresh);
	if (w->session != NULL)
		session_abort(w->session, SESSION_OK, "stopped");
	ev_timer_init(&w->deferred, on_deferred, 0, 0);
	w->deferred.data = w;
	ev_timer_start(w->loop, &w->deferred);
}

static void
on_untagged(struct session *s, const struct imap_response *resp, void *arg)
{
	struct idle_watch *w = arg;

	(void)s;
	if (resp->keyword == NULL || !resp->has_number)
		return;
	if (strcmp(resp->keyword, "EXISTS") == 0) {
		bool grew = resp->number > w->exists;

		w->exists = resp->number;
		/* Not only while in IDLE: an EXISTS can also come with the
		 * tagged reply that ends one IDLE before the next starts. */
		if (grew && w->watching)
			w->cb(w, IDLE_NEW_MAIL, NULL, w->arg);
	} else if (strcmp(resp->keyword, "EXPUNGE") == 0 && w->exists > 0) {
		w->exists--;
	}
}

static void
on_idle_done(struct session *s, const struct imap_response *tagged, void *arg)
{
	struct idle_watch *w = arg;

	(void)s;
	if (tagged->status != IMAP_STATUS_OK) {
		die(w, IDLE_FAILED, "IDLE refused by the server");
		return;
	}
	start_idle(w);
}

static void
start_idle(struct idle_watch *w)
{
	if (session_idle_start(w->session, on_untagged, on_idle_done, w) != 0) {
		die(w, IDLE_FAILED, "cannot queue IDLE");
		return;
	}
	ev_timer_again(w->loop, &w->refresh);
}

static void
on_refresh(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct idle_watch *w = t->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(w->loop, &w->refresh);
	/* DONE, then the tagged OK restarts IDLE; the session holds that
	 * reply to the no-progress timeout. */
	session_idle_stop(w->session);
}

static void
on_examine_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct idle_watch *w = arg;

	(void)s;
	if (tagged->status != IMAP_STATUS_OK) {
		die(w, IDLE_FAILED, "cannot EXAMINE INBOX");
		return;
	}
	start_idle(w);
	if (!w->dead) {
		w->watching = true;
		w->cb(w, IDLE_WATCHING, NULL, w->arg);
	}
}

static void
on_ready(struct session *s, void *arg)
{
	struct idle_watch *w = arg;
	struct imap_cmd cmd;

	if (!session_has_cap(s, "IDLE")) {
		die(w, IDLE_UNSUPPORTED, "server does not offer IDLE");
		return;
	}
	session_cmd_init(s, &cmd, "EXAMINE");
	imap_cmd_add_atom(&cmd, "INBOX");
	if (session_send(s, &cmd, on_untagged, on_examine_done, w) != 0)
		die(w, IDLE_FAILED, "cannot queue EXAMINE");
}

static void
on_failed(struct session *s, enum session_error error, const char *message,
    void *arg)
{
	struct idle_watch *w = arg;
	char text[512];

	(void)s;
	w->error = error;
	snprintf(text, sizeof text, "%s: %s", session_error_name(error),
	    message);
	die(w, IDLE_FAILED, text);
}

static void
on_closed(struct session *s, void *arg)
{
	(void)s;
	die(arg, IDLE_FAILED, "connection closed");
}

struct idle_watch *
idle_watch_start(struct ev_loop *loop, const struct config *config,
    const struct account *account, idle_event_fn *cb, void *arg)
{
	static const struct session_callbacks scb = {
		.ready = on_ready,
		.failed = on_failed,
		.closed = on_closed,
		.untagged = on_untagged,
	};
	struct idle_watch *w;

	if ((w = calloc(1, sizeof *w)) == NULL)
		return NULL;
	w->loop = loop;
	w->account = account;
	w->cb = cb;
	w->arg = arg;
	ev_init(&w->refresh, on_refresh);
	w->refresh.repeat = config->idle_refresh;
	w->refresh.data = w;
	w->session = account_session_new(loop, account, config->timeout, &scb,
	    w);
	if (w->session == NULL) {
		free(w);
		return NULL;
	}
	session_start(w->session);
	return w;
}

void
idle_watch_free(struct idle_watch **wp)
{
	struct idle_watch *w = *wp;

	*wp = NULL;
	if (w == NULL)
		return;
	ev_timer_stop(w->loop, &w->refresh);
	ev_timer_stop(w->loop, &w->deferred);
	session_free(&w->session);
	free(w);
}

enum session_error
idle_watch_error(const struct idle_watch *w)
{
	return w->error;
}
