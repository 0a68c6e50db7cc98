/*
 * One sync of one account (see mirror.h), as one state machine: one enum
 * (mirror_state, in mirror_int.h with the diagram), one setter that logs
 * each step, and one place for each state's events:
 *
 *   CONNECTING    on_ready() here (session_start's answer)
 *   ATTACHED      mirror_start_push() here (the push connection, lent)
 *   LISTING       on_list_untagged(), on_list_done() (mailboxes.c)
 *   STATUS        on_status_untagged(), on_status_done() (mailboxes.c)
 *   LOCK_WAIT     on_lock_timer() (mailboxes.c)
 *   EXAMINING     on_examine_untagged(), on_examine_done() (mailboxes.c)
 *   REMAP_LISTING the listing: remapping_untagged(), and its end here
 *   REMAP_DIGESTS (mirror_remap_ended(), one switch over the states)
 *   FETCHING      bodies: fetch_sink() and on_fetch_untagged() (fetch.c);
 *   REFETCHING,   the end of each UID FETCH: mirror_fetch_ended() here,
 *   SKIPPING,     one switch over the states
 *   DRAINING
 *   RECONNECTING  on_reconnect_timer() here
 *   LOGOUT        on_session_closed(), on_session_failed() here
 *
 * A failed connection (on_session_failed) may come in any state.  The
 * other files hold what these handlers do: mailboxes.c the plan, fetch.c
 * the bodies, commit.c the commit protocol, progress.c the progress lines;
 * the decisions that need no I/O are in plan.c, file placement in layout.c.
 * Over 900 lines because each state's handler stays beside the setter and
 * the switches that dispatch to it, so one file shows every transition.
 */
#include "mirror/mirror_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mbox/mbox.h"
#include "mirror/account_session.h"
#include "mirror/layout.h"
#include "util/num.h"

static void fetching_sizes_done(struct mirror *,
    const struct imap_response *);
static void fetching_batch_done(struct mirror *, const struct imap_response *,
    const struct batch *);
static void fetch_answered(struct mirror *, const struct batch *);
static void fetch_refused(struct mirror *, const struct imap_response *,
    const struct batch *);
static void on_session_failed(struct session *, enum session_error,
    const char *, void *);
static const struct session_callbacks mirror_session_cb;

static const char *const mirror_state_names[] = {
	[MS_CONNECTING] = "connecting",
	[MS_ATTACHED] = "attached",
	[MS_LISTING] = "listing",
	[MS_STATUS] = "status",
	[MS_LOCK_WAIT] = "lock-wait",
	[MS_EXAMINING] = "examining",
	[MS_REMAP_LISTING] = "remap-listing",
	[MS_REMAP_DIGESTS] = "remap-digests",
	[MS_FETCHING] = "fetching",
	[MS_REFETCHING] = "refetching",
	[MS_SKIPPING] = "skipping",
	[MS_DRAINING] = "draining",
	[MS_RECONNECTING] = "reconnecting",
	[MS_LOGOUT] = "logout",
	[MS_DONE] = "done",
};

void
mirror_set_state(struct mirror *m, enum mirror_state state)
{
	if (m->step != state)
		log_debug("%s: sync %s -> %s", m->prefix,
		    mirror_state_names[m->step], mirror_state_names[state]);
	m->step = state;
}

/* From EXAMINE to the end of that mailbox's pass. */
static bool
in_mailbox(const struct mirror *m)
{
	return m->step == MS_EXAMINING || m->step == MS_REMAP_LISTING ||
	    m->step == MS_REMAP_DIGESTS || m->step == MS_FETCHING ||
	    m->step == MS_REFETCHING || m->step == MS_SKIPPING ||
	    m->step == MS_DRAINING;
}

static const struct session_callbacks no_session_cb;

/*
 * The run's connection goes: closed, or for a push run handed back to the
 * watch that lent it (nothing of the run's may be called from it again;
 * whatever the run still had in flight is dropped with the connection).
 */
static void
release_session(struct mirror *m)
{
	if (m->session == NULL)
		return;
	if (!m->push) {
		session_free(&m->session);
		return;
	}
	if (m->step != MS_DONE)
		session_abort(m->session, SESSION_OK, "stopped");
	session_set_sink(m->session, NULL, NULL);
	session_set_callbacks(m->session, &no_session_cb, NULL);
	m->session = NULL;
}

static void
on_finish_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mirror *m = w->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(m->loop, &m->finish_timer);
	release_session(m);
	m->done(m, &m->result, m->arg);
}

/* Ends the run; done follows from the loop, never from a nested call. */
static void
finish(struct mirror *m)
{
	if (m->step == MS_DONE)
		return;
	mirror_set_state(m, MS_DONE);
	ev_timer_stop(m->loop, &m->lock_timer);
	ev_timer_stop(m->loop, &m->reconnect_timer);
	progress_stop(m);
	m->result.seconds = ev_now(m->loop) - m->started;
	if (m->result.seconds < 0)
		m->result.seconds = 0;
	ev_timer_init(&m->finish_timer, on_finish_timer, 0, 0);
	m->finish_timer.data = m;
	ev_timer_start(m->loop, &m->finish_timer);
}

static void
save_outcome(struct mirror *m)
{
	char *error = NULL;

	if (state_save(m->state_dir, &m->state, &error) != 0) {
		log_error("%s: %s", m->prefix, error);
		free(error);
	}
}

enum mirror_error
mirror_error_from_session(enum session_error error)
{
	switch (error) {
	case SESSION_OK:
		return MIRROR_OK;
	case SESSION_ERR_NETWORK:
		return MIRROR_ERR_NETWORK;
	case SESSION_ERR_TIMEOUT:
		return MIRROR_ERR_TIMEOUT;
	case SESSION_ERR_TLS:
		return MIRROR_ERR_TLS;
	case SESSION_ERR_AUTH:
		return MIRROR_ERR_AUTH;
	case SESSION_ERR_SECRET:
		return MIRROR_ERR_SECRET;
	case SESSION_ERR_PROTOCOL:
		return MIRROR_ERR_PROTOCOL;
	case SESSION_ERR_SERVER:
		return MIRROR_ERR_SERVER;
	case SESSION_ERR_LOCAL:
		break;
	}
	return MIRROR_ERR_LOCAL;
}

static const struct {
	const char *name, *kind;
} mirror_errors[] = {
	[MIRROR_OK] = { "ok", "ok" },
	[MIRROR_ERR_NETWORK] = { "network error", "network" },
	[MIRROR_ERR_TIMEOUT] = { "timeout", "timeout" },
	[MIRROR_ERR_TLS] = { "TLS error", "tls" },
	[MIRROR_ERR_AUTH] = { "authentication failed", "auth" },
	[MIRROR_ERR_SECRET] = { "secret unavailable", "secret" },
	[MIRROR_ERR_PROTOCOL] = { "protocol error", "protocol" },
	[MIRROR_ERR_SERVER] = { "server error", "server" },
	[MIRROR_ERR_LOCAL] = { "local error", "local" },
	[MIRROR_ERR_BUSY] = { "busy", "busy" },
};

const char *
mirror_error_name(enum mirror_error error)
{
	return mirror_errors[error].name;
}

const char *
mirror_error_kind(enum mirror_error error)
{
	return mirror_errors[error].kind;
}

/* The result's error into the state, without the "account NAME: " every
 * message starts with (the state is the account's already). */
static void
record_error(struct mirror *m)
{
	const char *text = m->result.message;
	size_t n = strlen(m->prefix);

	if (strncmp(text, m->prefix, n) == 0 && strncmp(text + n, ": ",
	    2) == 0)
		text += n + 2;
	state_set_error(&m->state, text, mirror_error_kind(m->result.error),
	    time(NULL));
}

void
mirror_fail(struct mirror *m, enum mirror_error kind, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (m->step == MS_DONE)
		return;
	n = snprintf(m->result.message, sizeof m->result.message, "%s: ",
	    m->prefix);
	if (m->mbxs != NULL && m->cur < m->n_mbxs && in_mailbox(m))
		n += snprintf(m->result.message + n, sizeof m->result.message -
		    (size_t)n, "mailbox %s: ", m->mbxs[m->cur].display);
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof m->result.message)
		vsnprintf(m->result.message + n, sizeof m->result.message -
		    (size_t)n, fmt, ap);
	va_end(ap);
	m->result.error = kind;
	mbox_close(&m->mbox);
	msgindex_close(&m->msgindex);
	if (m->session != NULL)
		session_abort(m->session, SESSION_OK, "stopped");
	record_error(m);
	m->state.failures++;
	save_outcome(m);
	finish(m);
}

/* Session callbacks */

static void
on_session_closed(struct session *s, void *arg)
{
	struct mirror *m = arg;

	(void)s;
	finish(m);
}

/* CONNECTING: logged in. */
static void
on_ready(struct session *s, void *arg)
{
	struct mirror *m = arg;

	log_debug("%s: logged in", m->prefix);
	if (m->plan_ready) {
		/* A new connection after a cut one: go on where it ended. */
		mailboxes_next(m);
		return;
	}
	mirror_set_state(m, MS_LISTING);
	if (mailboxes_list(m) != 0)
		mirror_fail(m, MIRROR_ERR_LOCAL, "cannot queue LIST");
}

/* Per mailbox */

int
mirror_save_state(struct mirror *m)
{
	char *error = NULL;

	if (state_save(m->state_dir, &m->state, &error) == 0)
		return 0;
	mirror_fail(m, MIRROR_ERR_LOCAL, "%s", error != NULL ? error :
	    "cannot save state");
	free(error);
	return -1;
}

/*
 * The current mailbox is left out of this run: the others go on, but the
 * mirror is incomplete, so the account fails in the end, saying why for the
 * first such mailbox.
 */
void
mirror_mailbox_failed(struct mirror *m, enum mirror_error kind,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	if (m->mbxs_failed++ > 0)
		return;
	m->mbx_failure_kind = kind;
	n = snprintf(m->mbx_failure, sizeof m->mbx_failure, "mailbox %s: ",
	    m->mbxs[m->cur].display);
	if (n < 0 || (size_t)n >= sizeof m->mbx_failure)
		return;
	va_start(ap, fmt);
	vsnprintf(m->mbx_failure + n, sizeof m->mbx_failure - (size_t)n, fmt,
	    ap);
	va_end(ap);
}

void
mirror_all_done(struct mirror *m)
{
	if (m->mbxs_failed > 0) {
		/* Everything else is mirrored and committed; the result says
		 * what is missing, and the logout still happens. */
		m->result.error = m->mbx_failure_kind;
		snprintf(m->result.message, sizeof m->result.message,
		    "%s: %.320s%s", m->prefix, m->mbx_failure,
		    m->mbxs_failed > 1 ? " (and more mailboxes)" : "");
		record_error(m);
		m->state.failures++;
	} else {
		m->state.last_success = time(NULL);
		free(m->state.last_error);
		m->state.last_error = NULL;
		m->state.failures = 0;
	}
	if (m->push && m->result.declined && m->mbxs_failed == 0) {
		/* Nothing was done: the state is a full sync's to write. */
		finish(m);
		return;
	}
	if (mirror_save_state(m) != 0)
		return;
	if (m->push) {
		/* The connection goes back to the watch, logged in. */
		finish(m);
		return;
	}
	mirror_set_state(m, MS_LOGOUT);
	session_logout(m->session);
}

/* Mailbox ends */

/* Resets what one pass over a mailbox collected. */
static void
leave_mailbox(struct mirror *m)
{
	mbox_close(&m->mbox);
	msgindex_close(&m->msgindex);
	progress_stop(m);
	m->ms = NULL;
	fetch_forget(m);
	remapping_forget(m);
}

/* On to the next mailbox; this one's pass is over. */
static void
next_after(struct mirror *m)
{
	leave_mailbox(m);
	m->hole_counted = 0;
	m->cur++;
	mailboxes_next(m);
}

void
mirror_mailbox_done(struct mirror *m)
{
	struct mbx *mb = &m->mbxs[m->cur];

	mbox_close(&m->mbox);
	msgindex_close(&m->msgindex);
	/* The UIDNEXT seen before fetching: mail that arrived meanwhile makes
	 * the next run look again. */
	m->ms->uidnext = mb->has_status ? mb->uidnext : m->examine_uidnext;
	if (mirror_save_state(m) != 0)
		return;
	if (m->mbx_messages > 0)
		log_info("%s: mailbox %s: %llu new %s, %llu bytes", m->prefix,
		    mb->display, m->mbx_messages, num_plural(m->mbx_messages,
		    "message", "messages"), m->mbx_bytes);
	next_after(m);
}

/* The mailbox is over for this run with part of it not mirrored (its
 * failure recorded already): what was committed stays, and the next run
 * opens it again, since its UIDNEXT is not recorded. */
static void
mailbox_abandoned(struct mirror *m)
{
	if (mirror_save_state(m) != 0)
		return;
	next_after(m);
}

/* Nothing more of the current mailbox is wanted this run: once what is
 * still in flight has been answered (and ignored), go on. */
void
mirror_drain_mailbox(struct mirror *m)
{
	mirror_set_state(m, MS_DRAINING);
	if (m->in_flight == 0 && !m->sizes_pending && m->remap_pending == 0)
		mailbox_abandoned(m);
}

/*
 * SKIPPING, REFETCHING: the fetch sent along with EXAMINE is
 * over when its size query (or a remap's listing) and (for a direct fetch)
 * its bodies are answered.  Its answer does not count: EXAMINE failed
 * (next mailbox) or the state was stale (ask again from what the state now
 * says).
 */
void
mirror_refetch(struct mirror *m)
{
	if (m->sizes_pending || m->in_flight > 0 || m->remap_pending > 0)
		return;	/* the rest of it is still to come */
	if (m->step == MS_SKIPPING) {
		next_after(m);
		return;
	}
	mirror_set_state(m, MS_FETCHING);
	fetch_send(m, m->ms->last_uid, false);
}

/*
 * A UID FETCH of the current mailbox completed (b: the batch of bodies it
 * was, out of flight now; NULL for the size query).  The one place its end
 * is handled, by where the run stands.
 */
void
mirror_fetch_ended(struct mirror *m, const struct imap_response *tagged,
    const struct batch *b)
{
	switch (m->step) {
	case MS_EXAMINING:
		/* The server mixed up commands that depend on each other. */
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "UID FETCH completed "
		    "before the EXAMINE it depends on");
		return;
	case MS_SKIPPING:
	case MS_REFETCHING:
		mirror_refetch(m);
		return;
	case MS_DRAINING:
		mirror_drain_mailbox(m);
		return;
	case MS_REMAP_LISTING:
	case MS_REMAP_DIGESTS:
		/* The size query sent with the EXAMINE, from the old state:
		 * the remap decides what is fetched. */
		return;
	case MS_FETCHING:
		if (b == NULL)
			fetching_sizes_done(m, tagged);
		else
			fetching_batch_done(m, tagged, b);
		return;
	case MS_CONNECTING:
	case MS_ATTACHED:
	case MS_LISTING:
	case MS_STATUS:
	case MS_LOCK_WAIT:
	case MS_RECONNECTING:
	case MS_LOGOUT:
	case MS_DONE:
		/* No fetch of a mailbox is in flight then. */
		return;
	}
}

/*
 * A UID FETCH of a remap completed (its listing or a batch of bodies
 * hashed): the one place its end is handled, by where the run stands.
 */
void
mirror_remap_ended(struct mirror *m, const struct imap_response *tagged)
{
	switch (m->step) {
	case MS_EXAMINING:
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "UID FETCH completed "
		    "before the EXAMINE it depends on");
		return;
	case MS_REMAP_LISTING:
		remapping_listing_done(m, tagged);
		return;
	case MS_REMAP_DIGESTS:
		remapping_digests_done(m, tagged);
		return;
	case MS_SKIPPING:
	case MS_REFETCHING:
		/* Sent with the EXAMINE, and the remap did not happen. */
		mirror_refetch(m);
		return;
	case MS_DRAINING:
		mirror_drain_mailbox(m);
		return;
	case MS_FETCHING:
	case MS_CONNECTING:
	case MS_ATTACHED:
	case MS_LISTING:
	case MS_STATUS:
	case MS_LOCK_WAIT:
	case MS_RECONNECTING:
	case MS_LOGOUT:
	case MS_DONE:
		/* No remap is in flight then. */
		return;
	}
}

/* FETCHING: the size query answered. */
static void
fetching_sizes_done(struct mirror *m, const struct imap_response *tagged)
{
	if (tagged->status != IMAP_STATUS_OK) {
		fetch_refused(m, tagged, NULL);
		return;
	}
	if (fetch_sort_todo(m) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	m->sizes_complete = true;
	/* What a commit made while the list came in covered: done. */
	m->contig = 0;
	commit_advance_contig(m);
	if (m->ms->hole_uid > m->ms->last_uid &&
	    !plan_uid_find(m->todo, m->n_todo, m->ms->hole_uid, NULL)) {
		/* Expunged meanwhile: nothing to wait for any more. */
		log_debug("%s: mailbox %s: UID %u is no longer listed",
		    m->prefix, m->mbxs[m->cur].display, m->ms->hole_uid);
		m->ms->hole_uid = m->ms->hole_tries = 0;
	}
	m->todo_bytes = 0;
	for (size_t i = 0; i < m->n_todo; i++)
		m->todo_bytes += m->todo_sizes[i];
	if (m->direct) {
		/* The bodies are on their way; an answer that came first
		 * waited for this list. */
		if (m->n_todo > 0)
			progress_start(m);
		if (m->open_done)
			fetch_answered(m, &m->open_batch);
		return;
	}
	if (m->n_todo == 0) {
		mirror_mailbox_done(m);
		return;
	}
	m->mbx_started = m->last_commit = ev_now(m->loop);
	log_debug("%s: mailbox %s: %zu new messages", m->prefix,
	    m->mbxs[m->cur].display, m->n_todo);
	progress_start(m);
	fetch_send_batches(m);
}

/* FETCHING: a batch of bodies answered OK (and its UIDs are known). */
static void
fetch_answered(struct mirror *m, const struct batch *b)
{
	bool last;

	m->open_done = false;
	if (b->open) {
		if (fetch_merge_extras(m) != 0) {
			mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
			return;
		}
		m->next_todo = m->n_todo;	/* all asked for already */
	}
	if (!commit_batch_complete(m, b)) {
		/* Keep what came before the hole; nothing past it. */
		if (commit_appended(m, true) == 0)
			mirror_drain_mailbox(m);
		return;
	}
	if (commit_can_wait(m)) {
		/* A later batch's OK commits it all. */
		fetch_send_batches(m);
		return;
	}
	/* After the last answer nothing more can come: commit what can be,
	 * cut the rest (messages a direct fetch brought past a gap). */
	last = m->next_todo >= m->n_todo && m->in_flight == 0;
	if (commit_appended(m, last) != 0)
		return;
	if (!last)
		fetch_send_batches(m);
	else if (m->contig == m->n_todo)
		mirror_mailbox_done(m);
	else {
		/* Not reached while every batch delivered all it asked for;
		 * never wait for what cannot come. */
		mirror_mailbox_failed(m, MIRROR_ERR_SERVER, "not every message "
		    "asked for could be "
		    "committed; the next sync asks again");
		mirror_drain_mailbox(m);
	}
}

/* FETCHING: a batch of bodies answered. */
static void
fetching_batch_done(struct mirror *m, const struct imap_response *tagged,
    const struct batch *b)
{
	if (tagged->status != IMAP_STATUS_OK) {
		fetch_refused(m, tagged, b);
		return;
	}
	if (b->open && m->sizes_pending) {
		m->open_batch = *b;
		m->open_done = true;
		return;
	}
	fetch_answered(m, b);
}

/* Connection ends */

/* Another connection may finish the run: this one got somewhere (it
 * delivered something, as a server that serves only so many messages a
 * session does, or a message it never delivers was given up), and not too
 * often.  Not after a protocol error: a server that sends garbage is not
 * asked again in the same run.  A TLS error on a connection that delivered
 * mail is the link failing (a reset under TLS), not its certificate: that
 * was checked before anything was delivered. */
static bool
may_reconnect(const struct mirror *m, enum mirror_error error)
{
	/* (After LOGOUT everything is committed: nothing to go on with.) */
	return !m->push && m->step != MS_DONE && m->step != MS_LOGOUT &&
	    plan_may_reconnect(m->session_messages > 0 || m->session_gave_up,
	    m->reconnects, MAX_RECONNECTS, error);
}

static void
reconnect(struct mirror *m, const char *why)
{
	log_info("%s: the server ended the session after %u messages (%s); "
	    "reconnecting", m->prefix, m->session_messages, why);
	m->reconnects++;
	m->session_messages = 0;
	m->session_gave_up = false;
	/* A wait for a mail reader's lock starts again on the new one. */
	ev_timer_stop(m->loop, &m->lock_timer);
	m->lock_wait_since = 0;
	leave_mailbox(m);
	m->spooling = false;
	if (m->session != NULL)
		session_abort(m->session, SESSION_OK, "reconnecting");
	mirror_set_state(m, MS_RECONNECTING);
	ev_timer_set(&m->reconnect_timer, RECONNECT_PAUSE, 0);
	ev_timer_start(m->loop, &m->reconnect_timer);
}

static void
on_reconnect_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mirror *m = w->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(m->loop, &m->reconnect_timer);
	if (m->step != MS_RECONNECTING)
		return;
	mirror_set_state(m, MS_CONNECTING);
	session_free(&m->session);
	m->session = account_session_new(m->loop, m->account,
	    m->config->timeout, &mirror_session_cb, m);
	if (m->session == NULL) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	session_set_sink(m->session, fetch_sink, m);
	session_start(m->session);
}

/*
 * A UID FETCH was refused (NO or BAD; b is NULL for the size query): the
 * prefix that arrived whole is kept.  On a connection that delivered mail a
 * fresh one goes on ("NO [UNAVAILABLE]" after so many messages a session);
 * otherwise the mailbox is over for this run, and unless the refusal said
 * "not now" the first message not delivered counts a try (Exchange refuses
 * a fetch that holds a corrupt item).
 */
static void
fetch_refused(struct mirror *m, const struct imap_response *tagged,
    const struct batch *b)
{
	char text[ERROR_TEXT_MAX], why[ERROR_TEXT_MAX + 32];
	uint32_t uid = 0;

	if (commit_appended(m, true) != 0)
		return;
	snprintf(why, sizeof why, "UID FETCH failed: %s",
	    imap_response_text(tagged, text, sizeof text));
	if (!may_reconnect(m, MIRROR_ERR_SERVER) && b != NULL &&
	    !plan_refusal_transient(tagged->code))
		uid = commit_first_undelivered(m, b->open ? 0 : b->first,
		    b->open ? m->n_todo : b->first + b->n);
	if (uid != 0 && !commit_hole(m, uid, why)) {
		mirror_drain_mailbox(m);	/* hole() said why */
		return;
	}
	if (may_reconnect(m, MIRROR_ERR_SERVER)) {
		reconnect(m, why);
		return;
	}
	mirror_mailbox_failed(m, MIRROR_ERR_SERVER, "%s", why);
	mirror_drain_mailbox(m);
}

static void
on_session_failed(struct session *s, enum session_error session_error,
    const char *message, void *arg)
{
	struct mirror *m = arg;
	enum mirror_error error = mirror_error_from_session(session_error);

	(void)s;
	if (m->step == MS_DONE)
		return;
	if (m->step == MS_LOGOUT) {
		/* Everything was committed and the outcome saved before
		 * LOGOUT: a connection lost now changes neither. */
		log_debug("%s: after LOGOUT: %s", m->prefix, message);
		finish(m);
		return;
	}
	/* Keep the prefix that arrived whole.  A lost connection says
	 * nothing about the message that was coming: no try is counted. */
	if (in_mailbox(m) && m->mbox != NULL && m->ms != NULL &&
	    commit_appended(m, true) != 0)
		return;
	if (may_reconnect(m, error)) {
		reconnect(m, message);
		return;
	}
	mirror_fail(m, error, "%s", message);
}

/* Shows a push run's owner an untagged response (EXISTS, EXPUNGE...). */
void
mirror_observe(struct mirror *m, const struct imap_response *resp)
{
	if (m->observe != NULL)
		m->observe(m->session, resp, m->observe_arg);
}

/* One no command claimed: only the owner of a push connection cares. */
static void
on_session_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	(void)s;
	mirror_observe(arg, resp);
}

/* Session set-up */

static const struct session_callbacks mirror_session_cb = {
	.ready = on_ready,
	.failed = on_session_failed,
	.closed = on_session_closed,
};

/* A push run's: no ready (it is logged in already). */
static const struct session_callbacks mirror_push_session_cb = {
	.failed = on_session_failed,
	.closed = on_session_closed,
	.untagged = on_session_untagged,
};

/*
 * A state that knows no mailbox, beside an output that holds a mirror: the
 * state was lost, or this is not the state directory that made the mirror
 * (another user's default, another state_dir).  Taking every file for
 * unknown would move the mirror aside and download it all again: stop
 * instead, saying which state directory was used.  0 to go on.
 */
static int
refuse_unknown_mirror(struct mirror *m)
{
	const struct account *a = m->account;
	char *found = NULL, *error = NULL;
	int r;

	if (m->state.n_mailboxes > 0)
		return 0;
	if ((r = layout_find_mbox(a->output, &found, &error)) == 0)
		return 0;
	if (r == 1)
		mirror_fail(m, MIRROR_ERR_LOCAL, "%s/%s holds mail that the "
		    "state in %s (%s) has no record of; nothing was changed: "
		    "set state_dir to the state directory that made this "
		    "mirror (or give the account's directory there its name, "
		    "if it was renamed), or move the files away", a->output,
		    found, m->state_dir, m->config->state_dir_origin != NULL ?
		    m->config->state_dir_origin : "state_dir");
	else
		mirror_fail(m, MIRROR_ERR_LOCAL, "%s", error != NULL ? error :
		    "out of memory");
	free(found);
	free(error);
	return -1;
}

static struct mirror *
mirror_new(struct ev_loop *loop, const struct config *config,
    const struct account *account, mirror_done_fn *done, void *arg)
{
	struct mirror *m;

	if ((m = calloc(1, sizeof *m)) == NULL)
		return NULL;
	m->state_lock_fd = -1;
	m->loop = loop;
	m->config = config;
	m->account = account;
	m->done = done;
	m->arg = arg;
	m->started = ev_now(loop);
	m->spool_fd = -1;
	mailboxes_init(m);
	ev_timer_init(&m->reconnect_timer, on_reconnect_timer, 0, 0);
	m->reconnect_timer.data = m;
	progress_init(m);
	snprintf(m->prefix, sizeof m->prefix, "account %s", account->name);
	m->state_dir = state_account_dir(config->state_dir, account->name);
	if (m->state_dir == NULL) {
		mailboxes_free(m);
		free(m);
		return NULL;
	}
	return m;
}

/*
 * The account's lock, then its state: 0 to go on, -1 when the run has
 * ended (done follows).
 */
static int
lock_and_load(struct mirror *m)
{
	char *error = NULL;
	long holder;
	int r;

	/* Before anything is read or written: another process syncing the
	 * account would overwrite our state with its own, and we its. */
	if ((r = state_lock(m->state_dir, &m->state_lock_fd, &holder,
	    &error)) != 0) {
		if (r == 1 && holder > 0)
			snprintf(m->result.message, sizeof m->result.message,
			    "%s: another mboxmirror process (pid %ld) is "
			    "syncing this account; skipped", m->prefix, holder);
		else if (r == 1)
			snprintf(m->result.message, sizeof m->result.message,
			    "%s: another mboxmirror process is syncing this "
			    "account; skipped", m->prefix);
		else
			snprintf(m->result.message, sizeof m->result.message,
			    "%s: %s", m->prefix, error != NULL ? error :
			    "cannot lock the state");
		free(error);
		/* Not recorded in the state: it is the other's to write. */
		m->result.error = r == 1 ? MIRROR_ERR_BUSY : MIRROR_ERR_LOCAL;
		finish(m);
		return -1;
	}
	if (state_load(m->state_dir, &m->state, &error) != 0) {
		snprintf(m->result.message, sizeof m->result.message,
		    "%s: %s", m->prefix, error != NULL ? error : "bad state");
		free(error);
		m->result.error = MIRROR_ERR_LOCAL;
		finish(m);
		return -1;
	}
	m->state.last_attempt = time(NULL);
	return 0;
}

struct mirror *
mirror_start(struct ev_loop *loop, const struct config *config,
    const struct account *account, mirror_done_fn *done, void *arg)
{
	struct mirror *m;

	if ((m = mirror_new(loop, config, account, done, arg)) == NULL)
		return NULL;
	if (lock_and_load(m) != 0 || refuse_unknown_mirror(m) != 0)
		return m;
	if (layout_make_output(account->output) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "cannot create %s: %s",
		    account->output, strerror(errno));
		return m;
	}
	m->session = account_session_new(loop, account, config->timeout,
	    &mirror_session_cb, m);
	if (m->session == NULL) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return m;
	}
	session_set_sink(m->session, fetch_sink, m);
	session_start(m->session);
	return m;
}

/* ATTACHED: the push connection is the run's; INBOX is examined again
 * with its fetch pipelined behind (mailboxes_next() plans it). */
struct mirror *
mirror_start_push(struct ev_loop *loop, const struct config *config,
    const struct account *account, const struct mirror_push *push,
    mirror_done_fn *done, void *arg)
{
	struct mirror *m;

	if ((m = mirror_new(loop, config, account, done, arg)) == NULL)
		return NULL;
	m->push = true;
	m->push_uidvalidity = push->uidvalidity;
	mirror_set_state(m, MS_ATTACHED);
	if (mailboxes_push_plan(m) != 0) {
		mirror_free(&m);
		return NULL;
	}
	if (lock_and_load(m) != 0)
		return m;
	if (mailboxes_push_declined(m)) {
		log_debug("%s: new mail left to a full sync", m->prefix);
		m->result.declined = true;
		finish(m);
		return m;
	}
	m->session = push->session;
	m->observe = push->observe;
	m->observe_arg = push->observe_arg;
	session_set_callbacks(m->session, &mirror_push_session_cb, m);
	session_set_sink(m->session, fetch_sink, m);
	log_debug("%s: fetching new mail on the push connection", m->prefix);
	mailboxes_next(m);
	return m;
}

void
mirror_free(struct mirror **mp)
{
	struct mirror *m = *mp;

	*mp = NULL;
	if (m == NULL)
		return;
	ev_timer_stop(m->loop, &m->finish_timer);
	ev_timer_stop(m->loop, &m->lock_timer);
	ev_timer_stop(m->loop, &m->reconnect_timer);
	progress_stop(m);
	mbox_close(&m->mbox);
	msgindex_close(&m->msgindex);
	release_session(m);
	mailboxes_free(m);
	free(m->todo);
	free(m->todo_sizes);
	free(m->todo_done);
	free(m->got);
	fetch_forget_arrivals(m);
	free(m->arr);
	free(m->arr_sizes);
	free(m->arr_ix);
	remapping_forget(m);
	state_clear(&m->state);
	state_unlock(&m->state_lock_fd);
	free(m->state_dir);
	if (m->spool_fd >= 0)
		close(m->spool_fd);
	free(m);
}
