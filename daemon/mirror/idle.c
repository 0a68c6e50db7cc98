/*
 * The push watch (see idle.h) as one state machine: one enum (watch_state),
 * one setter that logs each step, and one place for each state's events:
 *
 *   CONNECTING  on_ready() (session_start's answer): EXAMINE INBOX
 *   EXAMINING   on_examine_done(): IDLE
 *   IDLING      on_idling() (the server took the connection's first
 *               IDLE: IDLE_WATCHING), on_untagged() (EXISTS grew:
 *               IDLE_NEW_MAIL), on_refresh() (DONE to renew),
 *               idle_watch_fetch() (DONE to fetch)
 *   RENEWING    on_idle_done(): IDLE again
 *   ENDING      on_idle_done(): the push run starts (start_fetch())
 *   FETCHING    on_fetch_done(): the connection back, IDLE again
 *   DEAD        on_deferred(): IDLE_UNSUPPORTED or IDLE_FAILED reported
 *
 * While FETCHING the connection is the push run's (its callbacks, its
 * body sink); the run shows the watch every untagged response, so the
 * count of INBOX's messages stays the watch's and growth during the fetch
 * is announced once IDLE is back.
 */
#include "mirror/idle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/session.h"
#include "log.h"
#include "mirror/account_session.h"

enum watch_state {
	WS_CONNECTING,	/* connect, TLS, login */
	WS_EXAMINING,	/* EXAMINE INBOX sent */
	WS_IDLING,	/* in IDLE on INBOX: growth is news */
	WS_RENEWING,	/* DONE sent to renew the IDLE; IDLE again on its OK */
	WS_ENDING,	/* DONE sent for a fetch; the fetch starts on its OK */
	WS_FETCHING,	/* the connection is lent to a push run */
	WS_DEAD,	/* the end is reported from the loop */
};

static const char *const watch_state_names[] = {
	[WS_CONNECTING] = "connecting",
	[WS_EXAMINING] = "examining",
	[WS_IDLING] = "idling",
	[WS_RENEWING] = "renewing",
	[WS_ENDING] = "ending-idle",
	[WS_FETCHING] = "fetching",
	[WS_DEAD] = "dead",
};

struct idle_watch {
	struct ev_loop *loop;
	const struct config *config;
	const struct account *account;
	idle_event_fn *cb;
	void *arg;
	enum watch_state step;
	struct session *session;
	struct mirror *push;		/* while FETCHING */
	struct mirror_result result;	/* of the last push run */
	ev_timer refresh;
	ev_timer deferred;	/* reports the end outside session code */
	ev_timer announce;	/* mail that came during a fetch */
	uint32_t exists;
	uint32_t uidvalidity;	/* of INBOX, as EXAMINE said */
	bool more_mail;		/* EXISTS grew during a fetch */
	bool watching;		/* IDLE_WATCHING reported */
	enum session_error error;	/* what ended the session */
	char message[512];
	enum idle_event dead_event;
};

static void start_idle(struct idle_watch *);
static const struct session_callbacks watch_session_cb;

static void
set_state(struct idle_watch *w, enum watch_state step)
{
	if (w->step != step)
		log_debug("account %s: push %s -> %s", w->account->name,
		    watch_state_names[w->step], watch_state_names[step]);
	w->step = step;
}

/* DEAD */

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
	if (w->step == WS_DEAD)
		return;
	set_state(w, WS_DEAD);
	w->dead_event = event;
	snprintf(w->message, sizeof w->message, "%s", message);
	ev_timer_stop(w->loop, &w->refresh);
	ev_timer_stop(w->loop, &w->announce);
	mirror_free(&w->push);
	if (w->session != NULL)
		session_abort(w->session, SESSION_OK, "stopped");
	ev_timer_start(w->loop, &w->deferred);
}

/* Any state: INBOX's count of messages, from every untagged response on
 * the connection (a push run shows the watch those it gets). */
static void
on_untagged(struct session *s, const struct imap_response *resp, void *arg)
{
	struct idle_watch *w = arg;
	uint32_t v;

	(void)s;
	if (resp->status == IMAP_STATUS_OK && resp->code != NULL &&
	    strcmp(resp->code, "UIDVALIDITY") == 0 && resp->code_nargs >= 1 &&
	    imap_arg_uint32(&resp->code_args[0], &v) == 0)
		w->uidvalidity = v;
	if (resp->keyword == NULL || !resp->has_number)
		return;
	if (strcmp(resp->keyword, "EXISTS") == 0) {
		bool grew = resp->number > w->exists;

		w->exists = resp->number;
		if (!grew)
			return;
		/* Not only while in IDLE: an EXISTS can also come with the
		 * tagged reply that ends one IDLE before the next starts. */
		if (w->step == WS_IDLING || w->step == WS_RENEWING)
			w->cb(w, IDLE_NEW_MAIL, NULL, w->arg);
		else if (w->step == WS_FETCHING)
			w->more_mail = true;
	} else if (strcmp(resp->keyword, "EXPUNGE") == 0 && w->exists > 0) {
		w->exists--;
	}
}

/* IDLING: mail that came during a fetch, announced once IDLE is back. */
static void
on_announce(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct idle_watch *w = t->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(w->loop, &w->announce);
	if (w->step == WS_IDLING || w->step == WS_RENEWING)
		w->cb(w, IDLE_NEW_MAIL, NULL, w->arg);
}

/* FETCHING: the push run ended; the connection is the watch's again. */
static void
on_fetch_done(struct mirror *m, const struct mirror_result *r, void *arg)
{
	struct idle_watch *w = arg;

	(void)m;
	w->result = *r;
	/* Inside its done: neither it nor r is touched after this. */
	mirror_free(&w->push);
	session_set_callbacks(w->session, &watch_session_cb, w);
	if (!session_is_ready(w->session)) {
		die(w, IDLE_FAILED, w->result.error != MIRROR_OK ?
		    w->result.message : "connection lost during a fetch");
	} else {
		start_idle(w);
		if (w->more_mail && w->step == WS_IDLING)
			ev_timer_start(w->loop, &w->announce);
	}
	w->more_mail = false;
	/* Last: the owner may act on the watch. */
	w->cb(w, IDLE_FETCHED, NULL, w->arg);
}

/* ENDING: IDLE is over; the connection goes to a push run. */
static void
start_fetch(struct idle_watch *w)
{
	const struct mirror_push push = {
		.session = w->session,
		.uidvalidity = w->uidvalidity,
		.observe = on_untagged,
		.observe_arg = w,
	};

	set_state(w, WS_FETCHING);
	w->more_mail = false;
	w->push = mirror_start_push(w->loop, w->config, w->account, &push,
	    on_fetch_done, w);
	if (w->push == NULL)
		die(w, IDLE_FAILED, "out of memory");
}

/* The tagged reply to an IDLE: after a DONE (RENEWING, ENDING), or the
 * server ending it on its own (IDLING). */
static void
on_idle_done(struct session *s, const struct imap_response *tagged, void *arg)
{
	struct idle_watch *w = arg;

	(void)s;
	if (tagged->status != IMAP_STATUS_OK) {
		die(w, IDLE_FAILED, "IDLE refused by the server");
		return;
	}
	if (w->step == WS_ENDING)
		start_fetch(w);
	else if (w->step == WS_IDLING || w->step == WS_RENEWING)
		start_idle(w);
}

static void
start_idle(struct idle_watch *w)
{
	if (session_idle_start(w->session, on_untagged, on_idle_done, w) != 0) {
		die(w, IDLE_FAILED, "cannot queue IDLE");
		return;
	}
	set_state(w, WS_IDLING);
	ev_timer_again(w->loop, &w->refresh);
}

/* IDLING: time to renew the IDLE. */
static void
on_refresh(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct idle_watch *w = t->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(w->loop, &w->refresh);
	if (w->step != WS_IDLING)
		return;
	/* DONE, then the tagged OK restarts IDLE; the session holds that
	 * reply to the no-progress timeout. */
	set_state(w, WS_RENEWING);
	session_idle_stop(w->session);
}

int
idle_watch_fetch(struct idle_watch *w)
{
	if (w->step != WS_IDLING && w->step != WS_RENEWING)
		return -1;
	ev_timer_stop(w->loop, &w->refresh);
	ev_timer_stop(w->loop, &w->announce);
	/* RENEWING: the DONE is out already; its OK starts the fetch. */
	if (w->step == WS_IDLING)
		session_idle_stop(w->session);
	set_state(w, WS_ENDING);
	return 0;
}

bool
idle_watch_fetching(const struct idle_watch *w)
{
	return w != NULL && (w->step == WS_ENDING || w->step == WS_FETCHING);
}

const struct mirror_result *
idle_watch_result(const struct idle_watch *w)
{
	return &w->result;
}

/* EXAMINING */
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
}

/* IDLING (or ENDING: a fetch asked before the "+"): the server took an
 * IDLE.  The first of the connection is news: a server that refuses IDLE
 * never looks like a watch that came up. */
static void
on_idling(struct session *s, void *arg)
{
	struct idle_watch *w = arg;

	(void)s;
	if (w->watching || w->step == WS_DEAD)
		return;
	w->watching = true;
	w->cb(w, IDLE_WATCHING, NULL, w->arg);
}

/* CONNECTING */
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
	if (session_send(s, &cmd, on_untagged, on_examine_done, w) != 0) {
		die(w, IDLE_FAILED, "cannot queue EXAMINE");
		return;
	}
	set_state(w, WS_EXAMINING);
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

static const struct session_callbacks watch_session_cb = {
	.ready = on_ready,
	.failed = on_failed,
	.closed = on_closed,
	.untagged = on_untagged,
	.idling = on_idling,
};

struct idle_watch *
idle_watch_start(struct ev_loop *loop, const struct config *config,
    const struct account *account, idle_event_fn *cb, void *arg)
{
	struct idle_watch *w;

	if ((w = calloc(1, sizeof *w)) == NULL)
		return NULL;
	w->loop = loop;
	w->config = config;
	w->account = account;
	w->cb = cb;
	w->arg = arg;
	ev_init(&w->refresh, on_refresh);
	w->refresh.repeat = config->idle_refresh;
	w->refresh.data = w;
	ev_timer_init(&w->deferred, on_deferred, 0, 0);
	w->deferred.data = w;
	ev_timer_init(&w->announce, on_announce, 0, 0);
	w->announce.data = w;
	w->session = account_session_new(loop, account, config->timeout,
	    &watch_session_cb, w);
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
	ev_timer_stop(w->loop, &w->announce);
	mirror_free(&w->push);
	session_free(&w->session);
	free(w);
}

enum session_error
idle_watch_error(const struct idle_watch *w)
{
	return w->error;
}
