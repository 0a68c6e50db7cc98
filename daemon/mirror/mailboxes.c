/*
 * The plan of a run and its mailboxes one by one: LIST with the account's
 * patterns minus its excludes (names hashed, so a server listing many costs
 * linear time), STATUS for all of them in one pipelined round trip, which
 * mailbox needs opening (plan_mailbox_step()), the wait for a mail reader's
 * lock on its mbox, and EXAMINE with the fetch pipelined behind it.  The
 * handlers of LISTING, STATUS, LOCK_WAIT and EXAMINING (see mirror.c).
 */
#include "mirror/mirror_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/writer.h"
#include "log.h"
#include "mbox/mbox.h"
#include "mirror/layout.h"
#include "mirror/names.h"
#include "util/nameindex.h"

static void examine(struct mirror *);
static void on_lock_timer(struct ev_loop *, ev_timer *, int);
static void on_examine_untagged(struct session *, const struct imap_response *,
    void *);
static void on_examine_done(struct session *, const struct imap_response *,
    void *);

/* LISTING */

/*
 * Names are looked up once per LIST and STATUS response: indexed, so that a
 * server listing many mailboxes (or one many times) costs linear time.
 */
static const char *
mbx_name(size_t i, void *arg)
{
	const struct mirror *m = arg;

	return m->mbxs[i].name;
}

static struct mbx *
find_mbx(struct mirror *m, const char *name, size_t len)
{
	size_t i = nameindex_find(&m->mbx_index, name, len);

	return i != SIZE_MAX ? &m->mbxs[i] : NULL;
}

static void
add_mbx(struct mirror *m, const struct imap_list_item *item)
{
	struct mbx *mb;
	char *display;

	if (item->flags & IMAP_LIST_NOSELECT || memchr(item->name, '\0',
	    item->name_len) != NULL || find_mbx(m, item->name,
	    item->name_len) != NULL)
		return;
	display = imap_utf7_decode(item->name, item->name_len);
	if (display == NULL)
		display = strndup(item->name, item->name_len);
	if (display == NULL)
		return;
	if (!names_decide(&m->patterns, display, item->delimiter, NULL,
	    NULL)) {
		free(display);
		return;
	}
	if (m->n_mbxs == MAX_MAILBOXES) {
		free(display);
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "the server lists more "
		    "than %d mailboxes", MAX_MAILBOXES);
		return;
	}
	if (m->n_mbxs == m->cap_mbxs) {
		size_t cap = m->cap_mbxs ? m->cap_mbxs * 2 : 16;
		struct mbx *v = reallocarray(m->mbxs, cap, sizeof *v);

		if (v == NULL) {
			free(display);
			return;
		}
		m->mbxs = v;
		m->cap_mbxs = cap;
	}
	mb = &m->mbxs[m->n_mbxs];
	memset(mb, 0, sizeof *mb);
	if ((mb->name = strndup(item->name, item->name_len)) == NULL ||
	    nameindex_add(&m->mbx_index, m->n_mbxs) != 0) {
		free(mb->name);
		free(display);
		return;
	}
	mb->display = display;
	mb->delimiter = item->delimiter;
	m->n_mbxs++;
}

static void on_status_untagged(struct session *, const struct imap_response *,
    void *);
static void on_status_done(struct session *, const struct imap_response *,
    void *);
static void on_list_done(struct session *, const struct imap_response *,
    void *);

static void
on_list_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;
	struct imap_list_item item;

	(void)s;
	if (resp->keyword != NULL && strcmp(resp->keyword, "STATUS") == 0) {
		/* LIST-STATUS: the STATUS comes with the LIST. */
		on_status_untagged(s, resp, arg);
		return;
	}
	if (resp->keyword == NULL || strcmp(resp->keyword, "LIST") != 0)
		return;
	if (imap_list_decode(resp, &item) != 0) {
		log_warnx("%s: ignoring a LIST response of unexpected shape",
		    m->prefix);
		return;
	}
	add_mbx(m, &item);
}

static void
send_statuses(struct mirror *m)
{
	struct imap_cmd cmd;

	m->result.mailboxes_checked = (unsigned)m->n_mbxs;
	if (m->n_mbxs == 0) {
		log_warnx("%s: no mailbox matches the configured patterns",
		    m->prefix);
		m->cur = 0;
		mailboxes_next(m);
		return;
	}
	/* All STATUS commands at once: one round trip for the whole plan
	 * (none at all for what LIST-STATUS answered already). */
	mirror_set_state(m, MS_STATUS);
	for (size_t i = 0; i < m->n_mbxs; i++) {
		if (m->mbxs[i].has_status)
			continue;
		session_cmd_init(m->session, &cmd, "STATUS");
		imap_cmd_add_string(&cmd, m->mbxs[i].name,
		    strlen(m->mbxs[i].name),
		    session_literal_mode(m->session));
		imap_cmd_add_raw(&cmd, "(UIDVALIDITY UIDNEXT MESSAGES)");
		if (session_send(m->session, &cmd, on_status_untagged,
		    on_status_done, m) != 0) {
			mirror_fail(m, MIRROR_ERR_LOCAL,
			    "cannot queue STATUS");
			return;
		}
		m->status_pending++;
	}
	if (m->status_pending == 0) {
		m->cur = 0;
		mailboxes_next(m);
	}
}

static void
on_list_done(struct session *s, const struct imap_response *tagged, void *arg)
{
	struct mirror *m = arg;

	(void)s;
	if (tagged->status != IMAP_STATUS_OK) {
		mirror_fail(m, MIRROR_ERR_SERVER, "LIST failed: %s",
		    tagged->text != NULL ? tagged->text : "");
		return;
	}
	if (--m->lists_pending == 0) {
		mirror_warn_unmatched(m->account, m->patterns.include_hit,
		    m->patterns.exclude_hit);
		send_statuses(m);
	}
}

/* LIST for each of the account's patterns; -1 when one cannot be queued. */
int
mailboxes_list(struct mirror *m)
{
	const struct account *a = m->account;
	struct imap_cmd cmd;

	for (size_t i = 0; i < a->mailboxes.n; i++) {
		session_cmd_init(m->session, &cmd, "LIST");
		imap_cmd_add_raw(&cmd, "\"\"");
		imap_cmd_add_mailbox(&cmd, a->mailboxes.v[i], false,
		    session_literal_mode(m->session));
		/* RFC 5819: the plan's STATUS in the same round trip. */
		if (session_has_cap(m->session, "LIST-STATUS"))
			imap_cmd_add_raw(&cmd, "RETURN (STATUS (UIDVALIDITY "
			    "UIDNEXT MESSAGES))");
		if (session_send(m->session, &cmd, on_list_untagged,
		    on_list_done, m) != 0)
			return -1;
		m->lists_pending++;
	}
	return 0;
}

/* STATUS */

static void
on_status_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;
	struct imap_status_item item;
	struct mbx *mb;

	(void)s;
	if (resp->keyword == NULL || strcmp(resp->keyword, "STATUS") != 0 ||
	    imap_status_decode(resp, &item) != 0)
		return;
	if ((mb = find_mbx(m, item.name, item.name_len)) == NULL)
		return;
	if (!item.has_uidvalidity || !item.has_uidnext) {
		log_warnx("%s: mailbox %s: STATUS lacks UIDVALIDITY or "
		    "UIDNEXT; opening it anyway", m->prefix, mb->display);
		return;
	}
	mb->has_status = true;
	mb->uidvalidity = item.uidvalidity;
	mb->uidnext = item.uidnext;
	mb->messages = item.has_messages ? item.messages : 1;
}

static void
on_status_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct mirror *m = arg;

	(void)s;
	if (tagged->status != IMAP_STATUS_OK)
		log_warnx("%s: STATUS failed, opening a mailbox anyway: %s",
		    m->prefix, tagged->text != NULL ? tagged->text : "");
	if (--m->status_pending == 0) {
		m->cur = 0;
		mailboxes_next(m);
	}
}

/* What STATUS and the state say of mb, for the plan's decisions. */
void
mailboxes_plan_view(const struct mirror *m, const struct mbx *mb,
    struct plan_status *st, struct plan_known *known)
{
	const struct mailbox_state *ms = state_find((struct account_state *)
	    &m->state, mb->name);

	st->has_status = mb->has_status;
	st->uidvalidity = mb->uidvalidity;
	st->uidnext = mb->uidnext;
	st->messages = mb->messages;
	memset(known, 0, sizeof *known);
	if (ms == NULL)
		return;
	known->known = true;
	known->uidvalidity = ms->uidvalidity;
	known->uidnext = ms->uidnext;
	known->last_uid = ms->last_uid;
	known->hole_uid = ms->hole_uid;
	known->newest_skipped = ms->n_skipped > 0 ?
	    ms->skipped[ms->n_skipped - 1] : 0;
	known->newest_remapped = state_newest_remapped(ms);
}

void
mirror_warn_unmatched(const struct account *a, const bool *include_hit,
    const bool *exclude_hit)
{
	for (size_t i = 0; include_hit != NULL && i < a->mailboxes.n; i++)
		if (!include_hit[i])
			log_warnx("account %s: mailboxes pattern \"%s\" matches "
			    "no mailbox", a->name, a->mailboxes.v[i]);
	for (size_t i = 0; exclude_hit != NULL && i < a->exclude.n; i++)
		if (!exclude_hit[i])
			log_warnx("account %s: exclude pattern \"%s\" matches no "
			    "mailbox", a->name, a->exclude.v[i]);
}

void
mailboxes_init(struct mirror *m)
{
	const struct account *a = m->account;

	nameindex_init(&m->mbx_index, mbx_name, m);
	/* Without room to note what matched, no warning: the sync goes on. */
	(void)names_patterns_init(&m->patterns,
	    (const char *const *)a->mailboxes.v, a->mailboxes.n,
	    (const char *const *)a->exclude.v, a->exclude.n);
	ev_timer_init(&m->lock_timer, on_lock_timer, 0, 0);
	m->lock_timer.data = m;
}

void
mailboxes_free(struct mirror *m)
{
	for (size_t i = 0; i < m->n_mbxs; i++) {
		free(m->mbxs[i].name);
		free(m->mbxs[i].display);
	}
	free(m->mbxs);
	nameindex_free(&m->mbx_index);
	names_patterns_free(&m->patterns);
	m->mbxs = NULL;
	m->n_mbxs = 0;
}

/* A push run's plan: INBOX alone, with no STATUS (the push connection
 * saw new mail; EXAMINE tells the rest).  -1 when out of memory. */
int
mailboxes_push_plan(struct mirror *m)
{
	struct mbx *mb;

	if ((m->mbxs = calloc(1, sizeof *m->mbxs)) == NULL)
		return -1;
	m->cap_mbxs = 1;
	mb = &m->mbxs[0];
	mb->name = strdup(PUSH_MAILBOX);
	mb->display = strdup(PUSH_MAILBOX);
	/* No delimiter of its own is needed: the name has none. */
	mb->delimiter = '/';
	if (mb->name == NULL || mb->display == NULL ||
	    nameindex_add(&m->mbx_index, 0) != 0) {
		free(mb->name);
		free(mb->display);
		return -1;
	}
	m->n_mbxs = 1;
	m->result.mailboxes_checked = 1;
	return 0;
}

bool
mirror_push_watches(const struct account *a)
{
	/* INBOX has no delimiter of its own (as in mailboxes_push_plan()). */
	return names_selected((const char *const *)a->mailboxes.v,
	    a->mailboxes.n, (const char *const *)a->exclude.v, a->exclude.n,
	    PUSH_MAILBOX, '/');
}

/* Whether a push run must leave the new mail to a full sync
 * (plan_push_mailbox(), on the state just loaded). */
bool
mailboxes_push_declined(struct mirror *m)
{
	struct plan_status st;
	struct plan_known known;

	mailboxes_plan_view(m, &m->mbxs[0], &st, &known);
	return plan_push_mailbox(names_decide(&m->patterns, PUSH_MAILBOX,
	    m->mbxs[0].delimiter, NULL, NULL), &known, m->push_uidvalidity) !=
	    PLAN_PUSH_FETCH;
}

/* LOCK_WAIT */

static void
on_lock_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mirror *m = w->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(m->loop, &m->lock_timer);
	if (m->step == MS_LOCK_WAIT)
		examine(m);
}

/*
 * A mail reader holding the mailbox's mbox locked: wait for it on a timer,
 * so that the other accounts go on meanwhile, before sending EXAMINE (the
 * fetch follows it at once, and its bytes would have nowhere to go).  After
 * as long as mbox_open() would wait, skip the mailbox until the next sync.
 * True when examine() must not go on.
 */
static bool
wait_for_mbox_lock(struct mirror *m)
{
	struct mbx *mb = &m->mbxs[m->cur];
	const struct mailbox_state *ms = state_find(&m->state, mb->name);
	char *path;
	bool busy;

	if (ms == NULL || ms->file == NULL ||
	    (path = layout_path(m->account->output, ms->file)) == NULL)
		return false;
	busy = mbox_locked_elsewhere(path);
	if (!busy) {
		free(path);
		m->lock_wait_since = 0;
		return false;
	}
	if (m->lock_wait_since == 0) {
		log_info("%s: mailbox %s: %s is locked by another program; "
		    "waiting", m->prefix, mb->display, path);
		m->lock_wait_since = ev_now(m->loop);
	}
	mirror_set_state(m, MS_LOCK_WAIT);
	if (ev_now(m->loop) - m->lock_wait_since <
	    mbox_lock_wait() / 1000.0) {
		free(path);
		ev_timer_stop(m->loop, &m->lock_timer);
		ev_timer_set(&m->lock_timer, LOCK_POLL_SECS, 0);
		ev_timer_start(m->loop, &m->lock_timer);
		return true;
	}
	log_warnx("%s: mailbox %s: %s is still locked by another program "
	    "after %u ms; skipped until the next sync", m->prefix, mb->display,
	    path, mbox_lock_wait());
	mirror_mailbox_failed(m, MIRROR_ERR_BUSY,
	    "%s is locked by another program", path);
	free(path);
	m->lock_wait_since = 0;
	m->cur++;
	mailboxes_next(m);
	return true;
}

/* EXAMINING */

/* EXAMINE and the fetch that follows go out together: the fetch asks for
 * what the state says is new; if EXAMINE shows the state is stale (a
 * changed UIDVALIDITY), its answer is ignored and a fresh one asked. */
static void
examine(struct mirror *m)
{
	struct mbx *mb = &m->mbxs[m->cur];
	struct plan_status st;
	struct plan_known known;
	struct imap_cmd cmd;
	uint32_t base;
	bool direct;

	if (wait_for_mbox_lock(m))
		return;
	m->examine_uidvalidity = m->examine_uidnext = 0;
	m->examine_exists = mb->messages;
	m->ms = NULL;
	mirror_set_state(m, MS_EXAMINING);
	session_cmd_init(m->session, &cmd, "EXAMINE");
	imap_cmd_add_string(&cmd, mb->name, strlen(mb->name),
	    session_literal_mode(m->session));
	if (session_send(m->session, &cmd, on_examine_untagged,
	    on_examine_done, m) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "cannot queue EXAMINE");
		return;
	}
	mailboxes_plan_view(m, mb, &st, &known);
	if (st.has_status && known.known && st.uidvalidity !=
	    known.uidvalidity && remapping_candidate(m, state_find(&m->state,
	    mb->name))) {
		/* A new UIDVALIDITY: the remap's listing, not the sizes.  No
		 * state matches fetch_base: REFETCHING if no remap happens. */
		fetch_start(m, UINT32_MAX, false);
		remapping_send_listing(m);
		return;
	}
	base = plan_fetch_base(&st, &known, &direct);
	fetch_send(m, base, direct);
}

void
mailboxes_next(struct mirror *m)
{
	struct plan_status st;
	struct plan_known known;
	struct mailbox_state *ms;
	struct mbx *mb;

	if (!m->plan_ready) {
		m->plan_ready = true;
		progress_plan_ready(m);
	}
	for (; m->cur < m->n_mbxs; m->cur++) {
		mb = &m->mbxs[m->cur];
		mailboxes_plan_view(m, mb, &st, &known);
		switch (plan_mailbox_step(&st, &known)) {
		case PLAN_MBX_OPEN:
			examine(m);
			return;
		case PLAN_MBX_UNCHANGED:
			break;
		case PLAN_MBX_EMPTY:
			/* Empty now, same mailbox: remember UIDNEXT. */
			if ((ms = state_find(&m->state, mb->name)) != NULL)
				ms->uidnext = mb->uidnext;
			break;
		}
	}
	mirror_all_done(m);
}

static void
on_examine_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;
	uint32_t v;

	(void)s;
	mirror_observe(m, resp);
	if (resp->keyword != NULL && strcmp(resp->keyword, "EXISTS") == 0 &&
	    resp->has_number) {
		m->examine_exists = resp->number;
		return;
	}
	/* One gone before EXAMINE's end: the remap's listing lacks it. */
	if (resp->keyword != NULL && strcmp(resp->keyword, "EXPUNGE") == 0 &&
	    resp->has_number && resp->number > 0 && resp->number <=
	    m->examine_exists) {
		m->examine_exists--;
		return;
	}
	if (resp->status != IMAP_STATUS_OK || resp->code == NULL ||
	    resp->code_nargs < 1 || imap_arg_uint32(&resp->code_args[0],
	    &v) != 0)
		return;
	if (strcmp(resp->code, "UIDVALIDITY") == 0)
		m->examine_uidvalidity = v;
	else if (strcmp(resp->code, "UIDNEXT") == 0)
		m->examine_uidnext = v;
}

static void
on_examine_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct mirror *m = arg;
	struct mbx *mb = &m->mbxs[m->cur];
	char text[ERROR_TEXT_MAX];

	(void)s;
	if (m->step != MS_EXAMINING || m->mbox != NULL) {
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "EXAMINE answered twice");
		return;
	}
	if (tagged->status != IMAP_STATUS_OK) {
		/* Deleted since LIST, or not ours to read: the others go on
		 * once the fetch sent with the EXAMINE has failed too, but
		 * the mirror is incomplete, so the account fails in the end
		 * (a mailbox gone for good leaves LIST by the next sync). */
		log_warnx("%s: mailbox %s: EXAMINE failed, skipped: %s",
		    m->prefix, mb->display, imap_response_text(tagged, text,
		    sizeof text));
		mirror_mailbox_failed(m, MIRROR_ERR_SERVER, "EXAMINE failed: %s",
		    text);
		mirror_set_state(m, MS_SKIPPING);
		return;
	}
	if (m->examine_uidvalidity == 0)
		m->examine_uidvalidity = mb->uidvalidity;
	if (m->examine_uidvalidity == 0) {
		/* Nothing to tell a renumbered mailbox by: no mirroring. */
		log_warnx("%s: mailbox %s: no UIDVALIDITY, skipped",
		    m->prefix, mb->display);
		mirror_mailbox_failed(m, MIRROR_ERR_PROTOCOL,
		    "the server sent no UIDVALIDITY");
		mirror_set_state(m, MS_SKIPPING);
		return;
	}
	if (m->push && m->examine_uidvalidity != m->push_uidvalidity) {
		/* Not while INBOX stayed selected: a full sync sorts it out
		 * (keeps the old mirror aside, fetches it afresh). */
		log_info("%s: mailbox %s: UIDVALIDITY changed under the push "
		    "connection; left to a full sync", m->prefix, mb->display);
		m->result.declined = true;
		mirror_set_state(m, MS_SKIPPING);
		return;
	}
	m->result.mailboxes_opened++;
	commit_open_mailbox(m);
}

