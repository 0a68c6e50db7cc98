/*
 * One sync of one account (see mirror.h), as one state machine: the steps
 * are the enum mirror_state below.  Why one file of this size: the plan
 * (LIST, STATUS, which mailboxes), the per-mailbox fetch and the commit all
 * act on the one struct mirror, whose fields are the run's state; the
 * decisions that need no I/O are in plan.c, file placement in layout.c.
 */
#include "mirror/mirror.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "imap/response.h"
#include "imap/writer.h"
#include "log.h"
#include "mbox/mbox.h"
#include "mirror/account_session.h"
#include "mirror/layout.h"
#include "mirror/names.h"
#include "mirror/plan.h"
#include "mirror/state.h"
#include "util/hash.h"

/*
 * A batch is one UID FETCH of bodies.  Bounded by count and bytes so a commit
 * (one fdatasync, one state write) covers a useful amount of mail without
 * risking much re-download after a crash; two in flight keep the pipe full
 * while the previous batch is committed.
 */
#define BATCH_MAX_MESSAGES 2000
#define BATCH_MAX_BYTES (32ULL * 1024 * 1024)
#define BATCHES_IN_FLIGHT 2
/*
 * New mail of a mailbox mirrored before, up to this many messages (from
 * UIDNEXT), is fetched with the EXAMINE in one round trip; more, or a first
 * sync, first asks for the sizes so batches can be cut by bytes.
 */
#define DIRECT_FETCH_MAX 100
/* ...and at most this many more it may send (mail arriving meanwhile). */
#define DIRECT_SLACK 1000
/* Seconds between progress lines of a long sync. */
#define PROGRESS_INTERVAL 5.0
/* Bytes of a server's text kept for an error message. */
#define ERROR_TEXT_MAX 300
/*
 * Each commit costs an fdatasync, which flushes the disk's cache whatever
 * its size (some 20 ms here): while more batches follow, commit at most
 * this often, or after this many bytes, so that a mailbox of big messages
 * does not pay a flush per message.  A crash costs at most that much
 * fetched again.
 */
#define COMMIT_INTERVAL 1.0
/*
 * ...and at least this often while a batch comes in, whatever its size: a
 * batch may be 32 MB, which a slow link takes minutes to bring, and a crash
 * should cost seconds of fetching, not the batch.
 */
#define COMMIT_EVERY 2.0
#define COMMIT_MAX_BYTES (256ULL * 1024 * 1024)
/* How often to look again at an mbox another program holds locked. */
#define LOCK_POLL_SECS 0.1
/*
 * A server may end a session after so many messages (NO [UNAVAILABLE],
 * BYE): what arrived whole is committed and a new connection goes on, after
 * this pause, as long as each connection delivers something, at most this
 * many times a run.
 */
#define RECONNECT_PAUSE 0.5
#define MAX_RECONNECTS 100
/* UIDs a size query may list beyond the messages the mailbox holds (new
 * mail meanwhile) before the server counts as listing without end. */
#define TODO_SLACK 100000
/* Mailboxes of one account; a server listing more is not believed. */
#define MAX_MAILBOXES 100000

/*
 * Where a run stands; mirror_set_state() is the only way to change it.
 *
 *   CONNECTING   connect, TLS, login (session_start; ready follows)
 *   LISTING      LIST for each pattern (with LIST-STATUS, the plan's
 *                STATUS comes with it)
 *   STATUS       the STATUS of every mailbox LIST-STATUS did not answer
 *   LOCK_WAIT    a mail reader holds the next mailbox's mbox: polled on a
 *                timer before anything is sent for it
 *   EXAMINING    EXAMINE sent, with the size query (and, for a few new
 *                messages, the bodies) pipelined behind it
 *   FETCHING     EXAMINE answered, mbox open: sizes and batches of bodies,
 *                commits (mirror/plan.h decides what may be committed)
 *   REFETCHING   EXAMINE showed the pipelined fetch asked from a stale
 *                state: its answers are waited out, then a fresh one sent
 *   SKIPPING     the mailbox is left out (EXAMINE refused, no UIDVALIDITY,
 *                its file cannot be made): the pipelined fetch is waited out
 *   DRAINING     the mailbox is over for this run (a hole, a refusal): what
 *                is still in flight is answered and ignored
 *   RECONNECTING the server ended a connection that delivered mail: a new
 *                one follows after RECONNECT_PAUSE, resuming where it stood
 *   LOGOUT       every mailbox done, LOGOUT sent
 *   DONE         the outcome is known; done() follows from the loop
 *
 * CONNECTING -> LISTING -> STATUS -> per mailbox [LOCK_WAIT ->] EXAMINING
 * -> FETCHING | REFETCHING -> FETCHING | SKIPPING | DRAINING -> the next
 * mailbox ... -> LOGOUT -> DONE; RECONNECTING -> CONNECTING from any state
 * with a connection; DONE from anywhere.
 */
enum mirror_state {
	MS_CONNECTING,
	MS_LISTING,
	MS_STATUS,
	MS_LOCK_WAIT,
	MS_EXAMINING,
	MS_FETCHING,
	MS_REFETCHING,
	MS_SKIPPING,
	MS_DRAINING,
	MS_RECONNECTING,
	MS_LOGOUT,
	MS_DONE,
};

static const char *const mirror_state_names[] = {
	[MS_CONNECTING] = "connecting",
	[MS_LISTING] = "listing",
	[MS_STATUS] = "status",
	[MS_LOCK_WAIT] = "lock-wait",
	[MS_EXAMINING] = "examining",
	[MS_FETCHING] = "fetching",
	[MS_REFETCHING] = "refetching",
	[MS_SKIPPING] = "skipping",
	[MS_DRAINING] = "draining",
	[MS_RECONNECTING] = "reconnecting",
	[MS_LOGOUT] = "logout",
	[MS_DONE] = "done",
};

/*
 * A UID FETCH of bodies in flight: what it asked for.  A server may answer
 * in any order and may add messages nobody asked for; only what was asked
 * is appended, once.
 */
struct batch {
	bool used;
	char tag[IMAP_TAG_MAX];	/* of its UID FETCH */
	bool open;		/* "base+1:*" */
	uint32_t base;
	size_t first, n;	/* else todo[first .. first + n) */
};

struct mbx {
	char *name;		/* raw, as the server sent it */
	char *display;		/* UTF-8 for messages */
	char delimiter;
	bool has_status;
	uint32_t uidvalidity, uidnext, messages;
};

struct mirror {
	struct ev_loop *loop;
	const struct config *config;
	const struct account *account;
	mirror_done_fn *done;
	void *arg;
	ev_tstamp started;
	ev_timer finish_timer;
	enum mirror_state step;		/* where the run stands */
	ev_timer reconnect_timer;	/* a new connection after a cut one */
	unsigned reconnects;
	unsigned session_messages;	/* committed on this connection */
	bool session_gave_up;		/* ...or a hole given up on it */
	bool plan_ready;		/* LIST and STATUS done */
	ev_timer lock_timer;		/* waiting for a mail reader's lock */
	ev_tstamp lock_wait_since;	/* 0: not waiting */

	struct session *session;
	char *state_dir;
	int state_lock_fd;		/* the account lock; -1: not held */
	struct account_state state;
	char prefix[160];

	struct mbx *mbxs;
	size_t n_mbxs, cap_mbxs;
	size_t *mbx_slots;		/* hash of names: index + 1, 0 empty */
	size_t n_slots;			/* a power of two, > 2 * n_mbxs */
	unsigned lists_pending, status_pending;
	size_t cur;			/* mailbox being synced */

	/* Mailboxes that could not be opened: the account fails once the
	 * others are done. */
	unsigned mbxs_failed;
	char mbx_failure[400];

	/* The mailbox being synced */
	struct mailbox_state *ms;
	struct mbox *mbox;
	uint32_t examine_uidvalidity, examine_uidnext, examine_exists;
	uint32_t fetch_base;		/* the pipelined fetch asked after it */
	bool direct;			/* bodies asked with the EXAMINE */
	bool sizes_pending;		/* the size query is unanswered */
	bool sizes_complete;		/* ...and answered OK */
	bool open_done;			/* the direct batch waits for it */
	struct batch open_batch;
	uint32_t *todo;			/* UIDs to fetch, ascending */
	uint64_t *todo_sizes;
	bool *todo_done;		/* committed or given up */
	size_t n_todo, cap_todo, next_todo;
	size_t contig;			/* todo[0..contig) all done */
	bool todo_unsorted;		/* the server's order was not ours */
	unsigned in_flight;
	struct batch batches[BATCHES_IN_FLIGHT];	/* in flight: used */
	uint32_t *got;			/* UIDs appended, ascending */
	size_t n_got, cap_got;
	struct plan_arrival *arr;	/* appended since the last commit */
	uint64_t *arr_sizes;		/* their message sizes */
	size_t n_arr, cap_arr;
	uint32_t nil_uid;		/* answered with BODY[] NIL */
	uint32_t hole_counted;		/* the hole this sync counted */
	unsigned long long mbx_messages, mbx_bytes;
	uint64_t todo_bytes;		/* sum of todo_sizes */
	ev_tstamp mbx_started, last_progress;
	ev_tstamp last_commit;
	ev_tstamp last_commit_try;	/* mid-batch, not always possible */

	/* The message being streamed */
	bool msg_skip;
	uint32_t msg_uid;
	uint64_t batch_bytes;		/* appended since the last commit */
	bool spooling;
	uint32_t spool_msgno;		/* the FETCH response it is part of */
	int spool_fd;

	struct mirror_result result;
};

static void mirror_fail(struct mirror *, enum session_error, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void mailbox_failed(struct mirror *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void next_mailbox(struct mirror *);
static void send_batches(struct mirror *);
static void push_batch(struct mirror *, const char *, bool, uint32_t, size_t,
    size_t);
static void send_fetch(struct mirror *, uint32_t, bool);
static void fetch_answered(struct mirror *, const struct batch *);
static void fetch_refused(struct mirror *, const struct imap_response *,
    const struct batch *);
static void on_session_failed(struct session *, enum session_error,
    const char *, void *);
static int sink(void *, enum imap_sink_event, const struct imap_literal_info *,
    const unsigned char *, size_t);
static const struct session_callbacks mirror_session_cb;

static void
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
	return m->step == MS_EXAMINING || m->step == MS_FETCHING ||
	    m->step == MS_REFETCHING || m->step == MS_SKIPPING ||
	    m->step == MS_DRAINING;
}

static void
on_finish_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mirror *m = w->data;

	(void)loop;
	(void)revents;
	ev_timer_stop(m->loop, &m->finish_timer);
	session_free(&m->session);
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

static void
mirror_fail(struct mirror *m, enum session_error kind, const char *fmt, ...)
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
	if (m->session != NULL)
		session_abort(m->session, SESSION_OK, "stopped");
	state_set_error(&m->state, m->result.message, time(NULL));
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

/* The plan: LIST */

/*
 * Names are looked up once per LIST and STATUS response: hashed, so that a
 * server listing many mailboxes (or one many times) costs linear time.
 */
static size_t
name_hash(const char *name, size_t len)
{
	return (size_t)hash_fnv1a64(name, len);
}

/* The slot that holds name, or the empty one where it would go. */
static size_t *
mbx_slot(struct mirror *m, const char *name, size_t len)
{
	size_t i = name_hash(name, len) & (m->n_slots - 1), *slot;
	const struct mbx *mb;

	for (;; i = (i + 1) & (m->n_slots - 1)) {
		slot = &m->mbx_slots[i];
		if (*slot == 0)
			return slot;
		mb = &m->mbxs[*slot - 1];
		if (strlen(mb->name) == len && memcmp(mb->name, name, len) == 0)
			return slot;
	}
}

static struct mbx *
find_mbx(struct mirror *m, const char *name, size_t len)
{
	size_t *slot;

	if (m->n_slots == 0)
		return NULL;
	slot = mbx_slot(m, name, len);
	return *slot != 0 ? &m->mbxs[*slot - 1] : NULL;
}

/* Room in the hash for one more name; -1 when out of memory. */
static int
mbx_slots_reserve(struct mirror *m)
{
	size_t n = m->n_slots ? m->n_slots : 32, *old = m->mbx_slots;
	size_t old_n = m->n_slots;

	if (old_n > 2 * (m->n_mbxs + 1))
		return 0;
	while (n <= 2 * (m->n_mbxs + 1))
		n *= 2;
	if ((m->mbx_slots = calloc(n, sizeof *m->mbx_slots)) == NULL) {
		m->mbx_slots = old;
		return -1;
	}
	m->n_slots = n;
	for (size_t i = 0; i < old_n; i++)
		if (old[i] != 0)
			*mbx_slot(m, m->mbxs[old[i] - 1].name,
			    strlen(m->mbxs[old[i] - 1].name)) = old[i];
	free(old);
	return 0;
}

static void
add_mbx(struct mirror *m, const struct imap_list_item *item)
{
	const struct account *a = m->account;
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
	if (!names_selected((const char *const *)a->mailboxes.v,
	    a->mailboxes.n, (const char *const *)a->exclude.v, a->exclude.n,
	    display, item->delimiter)) {
		free(display);
		return;
	}
	if (m->n_mbxs == MAX_MAILBOXES) {
		free(display);
		mirror_fail(m, SESSION_ERR_PROTOCOL, "the server lists more "
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
	if (mbx_slots_reserve(m) != 0) {
		free(display);
		return;
	}
	mb = &m->mbxs[m->n_mbxs];
	memset(mb, 0, sizeof *mb);
	if ((mb->name = strndup(item->name, item->name_len)) == NULL) {
		free(display);
		return;
	}
	mb->display = display;
	mb->delimiter = item->delimiter;
	m->n_mbxs++;
	*mbx_slot(m, mb->name, item->name_len) = m->n_mbxs;
}

static void on_status_untagged(struct session *, const struct imap_response *,
    void *);
static void on_status_done(struct session *, const struct imap_response *,
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
		next_mailbox(m);
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
			mirror_fail(m, SESSION_ERR_LOCAL, "cannot queue STATUS");
			return;
		}
		m->status_pending++;
	}
	if (m->status_pending == 0) {
		m->cur = 0;
		next_mailbox(m);
	}
}

static void
on_list_done(struct session *s, const struct imap_response *tagged, void *arg)
{
	struct mirror *m = arg;

	(void)s;
	if (tagged->status != IMAP_STATUS_OK) {
		mirror_fail(m, SESSION_ERR_SERVER, "LIST failed: %s",
		    tagged->text != NULL ? tagged->text : "");
		return;
	}
	if (--m->lists_pending == 0)
		send_statuses(m);
}

static void
on_ready(struct session *s, void *arg)
{
	struct mirror *m = arg;
	const struct account *a = m->account;
	struct imap_cmd cmd;

	log_debug("%s: logged in", m->prefix);
	if (m->plan_ready) {
		/* A new connection after a cut one: go on where it ended. */
		next_mailbox(m);
		return;
	}
	mirror_set_state(m, MS_LISTING);
	for (size_t i = 0; i < a->mailboxes.n; i++) {
		session_cmd_init(s, &cmd, "LIST");
		imap_cmd_add_raw(&cmd, "\"\"");
		imap_cmd_add_mailbox(&cmd, a->mailboxes.v[i], false,
		    session_literal_mode(s));
		/* RFC 5819: the plan's STATUS in the same round trip. */
		if (session_has_cap(s, "LIST-STATUS"))
			imap_cmd_add_raw(&cmd, "RETURN (STATUS (UIDVALIDITY "
			    "UIDNEXT MESSAGES))");
		if (session_send(s, &cmd, on_list_untagged, on_list_done,
		    m) != 0) {
			mirror_fail(m, SESSION_ERR_LOCAL, "cannot queue LIST");
			return;
		}
		m->lists_pending++;
	}
}

/* The plan: STATUS */

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
		next_mailbox(m);
	}
}

/* Per mailbox */

/* Nothing arrived since the last complete sync: no need to open it. */
static bool
mailbox_unchanged(const struct mirror *m, const struct mbx *mb)
{
	const struct mailbox_state *ms = state_find((struct account_state *)
	    &m->state, mb->name);

	if (ms == NULL)
		return false;
	return ms->uidvalidity == mb->uidvalidity && ms->uidnext != 0 &&
	    ms->uidnext == mb->uidnext;
}

static int
save_state(struct mirror *m)
{
	char *error = NULL;

	if (state_save(m->state_dir, &m->state, &error) == 0)
		return 0;
	mirror_fail(m, SESSION_ERR_LOCAL, "%s", error != NULL ? error :
	    "cannot save state");
	free(error);
	return -1;
}

/*
 * A mailbox whose file cannot be placed or opened here (a file or a symlink
 * in the way, a path too long, no permission): the others go on, the
 * answer of the fetch sent with its EXAMINE is ignored, and the account
 * fails in the end.
 */
static void
mailbox_local_failure(struct mirror *m, const char *error)
{
	log_warnx("%s: mailbox %s: %s; skipped", m->prefix,
	    m->mbxs[m->cur].display, error);
	mailbox_failed(m, "%s", error);
	mbox_close(&m->mbox);
	m->ms = NULL;
	mirror_set_state(m, MS_SKIPPING);
}

/* Moves a file of the mailbox out of the way, keeping it. */
static int
keep_aside(struct mirror *m, const char *rel, const char *tag)
{
	char *to, *error;

	if (layout_keep_aside(m->account->output, rel, tag, &to,
	    &error) != 0) {
		mailbox_local_failure(m, error != NULL ? error :
		    "out of memory");
		free(error);
		return -1;
	}
	if (to != NULL)
		log_warnx("%s: kept the previous mirror as %s", m->prefix, to);
	free(to);
	return 0;
}

/* EXAMINE answered: reconcile the state with UIDVALIDITY, open the mbox. */
static void
prepare_mailbox(struct mirror *m)
{
	struct mbx *mb = &m->mbxs[m->cur];
	struct mailbox_state *ms = state_get(&m->state, mb->name);
	struct layout_file *lf = NULL;
	enum mbox_open_result r;
	char *name, *rel = NULL, *record, *error = NULL, tag[40];
	const char *path;
	bool fresh;

	if (ms == NULL) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	m->ms = ms;
	fresh = ms->uidvalidity == 0;
	name = names_mbox_path(mb->name, strlen(mb->name), mb->delimiter,
	    false);
	if (name == NULL || layout_unique_file(&m->state, ms, name,
	    &rel) != 0) {
		free(name);
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	if (strcmp(rel, name) != 0)
		log_warnx("%s: mailbox %s: %s is another mailbox's mirror; "
		    "using %s", m->prefix, mb->display, name, rel);
	free(name);
	if (!fresh && ms->uidvalidity != m->examine_uidvalidity) {
		log_warnx("%s: mailbox %s: UIDVALIDITY changed from %u to %u; "
		    "mirroring it afresh", m->prefix, mb->display,
		    ms->uidvalidity, m->examine_uidvalidity);
		names_aside_tag(NAMES_ASIDE_UIDVALIDITY, ms->uidvalidity, tag,
		    sizeof tag);
		if (keep_aside(m, ms->file != NULL ? ms->file : rel, tag) != 0) {
			free(rel);
			return;
		}
		fresh = true;
	} else if (fresh) {
		/* A file we have no record of is someone's: keep it. */
		names_aside_tag(NAMES_ASIDE_UNKNOWN, time(NULL), tag,
		    sizeof tag);
		if (keep_aside(m, rel, tag) != 0) {
			free(rel);
			return;
		}
	}
	if (fresh) {
		ms->uidvalidity = m->examine_uidvalidity;
		ms->last_uid = 0;
		ms->uidnext = 0;
		ms->messages = 0;
		ms->mbox_size = 0;
		ms->hole_uid = ms->hole_tries = ms->skipped_total = 0;
		ms->n_skipped = 0;
		free(ms->file);
		ms->file = rel;
		rel = NULL;
		/* Recorded before the file exists, so a crash leftover is
		 * ours to truncate, not a stranger's to keep.  (A file moved
		 * aside above is durably so by now.) */
		if (save_state(m) != 0)
			return;
	} else if (ms->file == NULL) {
		ms->file = rel;
		rel = NULL;
	}
	free(rel);
	if (layout_file_open(m->account->output, ms->file, &lf,
	    &error) != 0) {
		mailbox_local_failure(m, error != NULL ? error :
		    "out of memory");
		free(error);
		return;
	}
	path = layout_file_path(lf);
	if ((record = state_append_record(m->state_dir, ms->file)) == NULL) {
		layout_file_free(&lf);
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	r = mbox_open(path, record, ms->mbox_size, &m->mbox, &error);
	free(record);
	if (r == MBOX_OPEN_FAILED) {
		mailbox_local_failure(m, error != NULL ? error :
		    "cannot open mbox");
		free(error);
		layout_file_free(&lf);
		return;
	}
	/* A new mbox's entry is durable before any state counts on it. */
	if (layout_file_opened(lf, &error) != 0) {
		mailbox_local_failure(m, error != NULL ? error :
		    "out of memory");
		free(error);
		layout_file_free(&lf);
		return;
	}
	if (r == MBOX_OPEN_TRUNCATED)
		log_info("%s: %s: removed the tail an interrupted sync left",
		    m->prefix, path);
	if (mbox_cut_path(m->mbox) != NULL)
		log_warnx("%s: %s: another program appended to it after an "
		    "interrupted sync; those bytes are no longer in it but "
		    "saved as %s", m->prefix, path, mbox_cut_path(m->mbox));
	if (r == MBOX_OPEN_SHORTER) {
		log_warnx("%s: %s is shorter than mboxmirror left it (%llu < "
		    "%llu bytes): someone changed it; appending at its end",
		    m->prefix, path, (unsigned long long)mbox_committed_size(
		    m->mbox), (unsigned long long)ms->mbox_size);
		ms->mbox_size = mbox_committed_size(m->mbox);
	} else if (r == MBOX_OPEN_CHANGED) {
		log_warnx("%s: %s was changed since mboxmirror left it (%llu "
		    "bytes, %llu expected): another program appended to it or "
		    "rewrote it; keeping it as it is, appending at its end",
		    m->prefix, path, (unsigned long long)
		    mbox_committed_size(m->mbox), (unsigned long long)
		    ms->mbox_size);
		ms->mbox_size = mbox_committed_size(m->mbox);
	}
	layout_file_free(&lf);
	/* The size the next append starts at must be durable before the
	 * append: a crash during it must find the tail past this size, not
	 * past the old one, to cut it as ours. */
	if ((r == MBOX_OPEN_SHORTER || r == MBOX_OPEN_CHANGED) &&
	    save_state(m) != 0)
		return;
	m->n_got = m->n_arr = 0;
	m->contig = 0;
	m->batch_bytes = 0;
	m->nil_uid = 0;
	m->mbx_messages = m->mbx_bytes = 0;
	/* The fetch sent with EXAMINE asked after fetch_base: if the state
	 * turned out older (a new UIDVALIDITY), its answers do not count. */
	mirror_set_state(m, ms->last_uid != m->fetch_base ? MS_REFETCHING :
	    MS_FETCHING);
}

static void
on_examine_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;
	uint32_t v;

	(void)s;
	if (resp->keyword != NULL && strcmp(resp->keyword, "EXISTS") == 0 &&
	    resp->has_number) {
		m->examine_exists = resp->number;
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

/*
 * The current mailbox is left out of this run: the others go on, but the
 * mirror is incomplete, so the account fails in the end, saying why for the
 * first such mailbox.
 */
static void
mailbox_failed(struct mirror *m, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (m->mbxs_failed++ > 0)
		return;
	n = snprintf(m->mbx_failure, sizeof m->mbx_failure, "mailbox %s: ",
	    m->mbxs[m->cur].display);
	if (n < 0 || (size_t)n >= sizeof m->mbx_failure)
		return;
	va_start(ap, fmt);
	vsnprintf(m->mbx_failure + n, sizeof m->mbx_failure - (size_t)n, fmt,
	    ap);
	va_end(ap);
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
		mirror_fail(m, SESSION_ERR_PROTOCOL, "EXAMINE answered twice");
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
		mailbox_failed(m, "EXAMINE failed: %s", text);
		mirror_set_state(m, MS_SKIPPING);
		return;
	}
	if (m->examine_uidvalidity == 0)
		m->examine_uidvalidity = mb->uidvalidity;
	if (m->examine_uidvalidity == 0) {
		/* Nothing to tell a renumbered mailbox by: no mirroring. */
		log_warnx("%s: mailbox %s: no UIDVALIDITY, skipped",
		    m->prefix, mb->display);
		mailbox_failed(m, "the server sent no UIDVALIDITY");
		mirror_set_state(m, MS_SKIPPING);
		return;
	}
	m->result.mailboxes_opened++;
	prepare_mailbox(m);
}

static void send_fetch(struct mirror *, uint32_t, bool);
static void examine(struct mirror *);
static void next_mailbox(struct mirror *);

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
	mailbox_failed(m, "%s is locked by another program", path);
	free(path);
	m->lock_wait_since = 0;
	m->cur++;
	next_mailbox(m);
	return true;
}

/* EXAMINE and the fetch that follows go out together: the fetch asks for
 * what the state says is new; if EXAMINE shows the state is stale (a
 * changed UIDVALIDITY), its answer is ignored and a fresh one asked. */
static void
examine(struct mirror *m)
{
	struct mbx *mb = &m->mbxs[m->cur];
	const struct mailbox_state *ms = state_find(&m->state, mb->name);
	/* Without STATUS, assume the state is current: EXAMINE tells. */
	uint32_t base = ms != NULL && (ms->uidvalidity == mb->uidvalidity ||
	    !mb->has_status) ? ms->last_uid : 0;
	uint32_t expect = mb->uidnext > base ? mb->uidnext - base - 1 : 0;
	struct imap_cmd cmd;

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
		mirror_fail(m, SESSION_ERR_LOCAL, "cannot queue EXAMINE");
		return;
	}
	/* An open range would ask again for a message given up. */
	send_fetch(m, base, base > 0 && mb->has_status &&
	    expect <= DIRECT_FETCH_MAX && (ms == NULL || ms->n_skipped == 0 ||
	    ms->skipped[ms->n_skipped - 1] <= base));
}

static void
all_done(struct mirror *m)
{
	if (m->mbxs_failed > 0) {
		/* Everything else is mirrored and committed; the result says
		 * what is missing, and the logout still happens. */
		m->result.error = SESSION_ERR_SERVER;
		snprintf(m->result.message, sizeof m->result.message,
		    "%s: %.320s%s", m->prefix, m->mbx_failure,
		    m->mbxs_failed > 1 ? " (and more mailboxes)" : "");
		state_set_error(&m->state, m->result.message, time(NULL));
		m->state.failures++;
	} else {
		m->state.last_success = time(NULL);
		free(m->state.last_error);
		m->state.last_error = NULL;
		m->state.failures = 0;
	}
	if (save_state(m) != 0)
		return;
	mirror_set_state(m, MS_LOGOUT);
	session_logout(m->session);
}

static void
next_mailbox(struct mirror *m)
{
	struct mailbox_state *ms;
	struct mbx *mb;

	m->plan_ready = true;
	for (; m->cur < m->n_mbxs; m->cur++) {
		mb = &m->mbxs[m->cur];
		/* Without a usable STATUS (refused, or lacking UIDNEXT) there
		 * is no telling what changed: open it. */
		ms = state_find(&m->state, mb->name);
		/* A hole is asked for again even with nothing new. */
		if (mb->has_status && mailbox_unchanged(m, mb) &&
		    ms->hole_uid == 0)
			continue;
		if (mb->has_status && ms != NULL && ms->uidvalidity ==
		    mb->uidvalidity && ms->last_uid == UINT32_MAX)
			continue;	/* nothing can come after UID 2^32-1 */
		if (mb->has_status && mb->messages == 0 && ms != NULL &&
		    ms->uidvalidity == mb->uidvalidity) {
			/* Empty now, same mailbox: remember UIDNEXT. */
			ms->uidnext = mb->uidnext;
			continue;
		}
		examine(m);
		return;
	}
	all_done(m);
}

/* The items of an untagged "* n FETCH (...)" response. */
static int
decode_fetch(const struct imap_response *resp, struct imap_fetch_item *item)
{
	if (resp->keyword == NULL || strcmp(resp->keyword, "FETCH") != 0 ||
	    !resp->has_number || resp->nargs != 1 ||
	    resp->args[0].type != IMAP_ARG_LIST)
		return -1;
	return imap_fetch_decode(resp->number, resp->args[0].list,
	    resp->args[0].count, item);
}

/* The value of the body item of a FETCH response, or NULL. */
static const struct imap_arg *
fetch_body(const struct imap_response *resp)
{
	const struct imap_arg *items = resp->args[0].list;

	for (size_t i = 0; i + 1 < resp->args[0].count; i += 2)
		if (items[i].type == IMAP_ARG_ATOM &&
		    (strcasecmp(items[i].str, "BODY[]") == 0 ||
		    strcasecmp(items[i].str, "RFC822") == 0))
			return &items[i + 1];
	return NULL;
}

/* The size query: which UIDs are new, and how big */

static int
add_todo(struct mirror *m, uint32_t uid, uint64_t size)
{
	if (m->n_todo == m->cap_todo) {
		size_t cap = m->cap_todo ? m->cap_todo * 2 : 256;
		uint32_t *u = reallocarray(m->todo, cap, sizeof *u);
		uint64_t *sz;
		bool *d;

		if (u == NULL)
			return -1;
		m->todo = u;
		if ((sz = reallocarray(m->todo_sizes, cap, sizeof *sz)) == NULL)
			return -1;
		m->todo_sizes = sz;
		if ((d = reallocarray(m->todo_done, cap, sizeof *d)) == NULL)
			return -1;
		m->todo_done = d;
		m->cap_todo = cap;
	}
	if (m->n_todo > 0 && uid <= m->todo[m->n_todo - 1])
		m->todo_unsorted = true;
	m->todo[m->n_todo] = uid;
	m->todo_done[m->n_todo] = false;
	m->todo_sizes[m->n_todo++] = size;
	return 0;
}

/* One line of the answer to the size query. */
static void
add_listed(struct mirror *m, const struct imap_fetch_item *item)
{
	/* "n:*" returns the last message even when it is old. */
	if (item->uid <= m->ms->last_uid || state_is_skipped(m->ms, item->uid))
		return;
	/* More than the mailbox holds: a server that lists without end. */
	if (m->n_todo >= (size_t)m->examine_exists + TODO_SLACK) {
		mirror_fail(m, SESSION_ERR_PROTOCOL, "the server listed more "
		    "new messages than the mailbox holds (%u)",
		    m->examine_exists);
		return;
	}
	if (add_todo(m, item->uid, item->has_size ? item->size : 0) != 0)
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
}

struct uid_size {
	uint32_t uid;
	size_t arrival;
	uint64_t size;
	bool done;
};

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int
uid_size_cmp(const void *a, const void *b)
{
	const struct uid_size *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

/*
 * The UIDs to fetch in ascending order, each once (the first size sent for
 * it counts).  One sort, however the server ordered them: inserting each in
 * place would be quadratic in what a hostile server sends.
 */
static int
sort_todo(struct mirror *m)
{
	struct uid_size *v;
	size_t i, n = 0;

	if (!m->todo_unsorted)
		return 0;
	if ((v = reallocarray(NULL, m->n_todo, sizeof *v)) == NULL)
		return -1;
	for (i = 0; i < m->n_todo; i++) {
		v[i].uid = m->todo[i];
		v[i].arrival = i;
		v[i].size = m->todo_sizes[i];
		v[i].done = m->todo_done[i];
	}
	qsort(v, m->n_todo, sizeof *v, uid_size_cmp);
	for (i = 0; i < m->n_todo; i++) {
		if (n > 0 && v[i].uid == m->todo[n - 1])
			continue;
		m->todo[n] = v[i].uid;
		m->todo_sizes[n] = v[i].size;
		m->todo_done[n] = v[i].done;
		n++;
	}
	m->n_todo = n;
	m->todo_unsorted = false;
	free(v);
	return 0;
}

/*
 * Bodies a direct fetch delivered that the size query (run beside it) did
 * not list: new mail that arrived between the two.  Only those that follow
 * the listed ones without a gap join the UIDs to fetch: one after a gap
 * could hide a UID that exists but came in neither answer.  The rest are
 * not committed (the next sync lists them).
 */
static int
merge_extras(struct mirror *m)
{
	uint32_t hi = m->n_todo > 0 ? m->todo[m->n_todo - 1] :
	    m->ms->last_uid;

	for (size_t i = 0; i < m->n_got; i++) {
		if (m->got[i] <= hi || m->got[i] != hi + 1)
			continue;
		if (add_todo(m, m->got[i], 0) != 0)
			return -1;
		hi = m->got[i];
	}
	return sort_todo(m);
}

/* Mailbox ends */

static void on_fetch_untagged(struct session *, const struct imap_response *,
    void *);
static void on_batch_done(struct session *, const struct imap_response *,
    void *);
static void on_sizes_done(struct session *, const struct imap_response *,
    void *);

/* Resets what one pass over a mailbox collected. */
static void
leave_mailbox(struct mirror *m)
{
	mbox_close(&m->mbox);
	m->ms = NULL;
	m->direct = false;
	m->sizes_pending = false;
	m->open_done = false;
	m->in_flight = 0;
	memset(m->batches, 0, sizeof m->batches);
	m->n_arr = 0;
	m->batch_bytes = 0;
}

/* On to the next mailbox; this one's pass is over. */
static void
next_after(struct mirror *m)
{
	leave_mailbox(m);
	m->hole_counted = 0;
	m->cur++;
	next_mailbox(m);
}

static void
mailbox_done(struct mirror *m)
{
	struct mbx *mb = &m->mbxs[m->cur];

	mbox_close(&m->mbox);
	/* The UIDNEXT seen before fetching: mail that arrived meanwhile makes
	 * the next run look again. */
	m->ms->uidnext = mb->has_status ? mb->uidnext : m->examine_uidnext;
	if (save_state(m) != 0)
		return;
	if (m->mbx_messages > 0)
		log_info("%s: mailbox %s: %llu new messages, %llu bytes",
		    m->prefix, mb->display, m->mbx_messages, m->mbx_bytes);
	next_after(m);
}

/* The mailbox is over for this run with part of it not mirrored (its
 * failure recorded already): what was committed stays, and the next run
 * opens it again, since its UIDNEXT is not recorded. */
static void
mailbox_abandoned(struct mirror *m)
{
	if (save_state(m) != 0)
		return;
	next_after(m);
}

/* Nothing more of the current mailbox is wanted this run: once what is
 * still in flight has been answered (and ignored), go on. */
static void
drain_mailbox(struct mirror *m)
{
	mirror_set_state(m, MS_DRAINING);
	if (m->in_flight == 0 && !m->sizes_pending)
		mailbox_abandoned(m);
}

/* A fetch sent after EXAMINE completed before it: the server mixed up
 * commands that depend on each other.  True when the run has failed. */
static bool
answered_before_examine(struct mirror *m)
{
	if (m->step != MS_EXAMINING)
		return false;
	mirror_fail(m, SESSION_ERR_PROTOCOL, "UID FETCH completed before the "
	    "EXAMINE it depends on");
	return true;
}

/*
 * The fetch sent along with EXAMINE is over (its size query and, for a
 * direct fetch, its bodies).  True when its answer does not count: EXAMINE
 * failed (next mailbox) or the state was stale (ask again from what the
 * state now says).
 */
static bool
pipelined_fetch_void(struct mirror *m)
{
	if (m->step != MS_SKIPPING && m->step != MS_REFETCHING)
		return false;
	if (m->sizes_pending || m->in_flight > 0)
		return true;	/* the rest of it is still to come */
	if (m->step == MS_SKIPPING) {
		next_after(m);
		return true;
	}
	mirror_set_state(m, MS_FETCHING);
	send_fetch(m, m->ms->last_uid, false);
	return true;
}

/*
 * Asks for what is new after base: always its UIDs and sizes, and with
 * direct the bodies at once as well, in the same round trip.  The sizes say
 * which UIDs exist, so that even a direct fetch never commits past one the
 * server left out; otherwise they cut the batches by bytes.
 */
static void
send_fetch(struct mirror *m, uint32_t base, bool direct)
{
	char tag[IMAP_TAG_MAX];
	struct imap_cmd cmd;

	m->fetch_base = base;
	m->n_todo = m->next_todo = m->contig = 0;
	m->todo_unsorted = false;
	m->todo_bytes = 0;
	m->direct = direct;
	m->open_done = false;
	m->sizes_complete = false;
	m->mbx_started = m->last_progress = m->last_commit = ev_now(m->loop);
	session_cmd_init(m->session, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "%u:* (UID RFC822.SIZE)", base + 1);
	if (session_send(m->session, &cmd, on_fetch_untagged, on_sizes_done,
	    m) != 0)
		goto fail;
	m->sizes_pending = true;
	if (!direct)
		return;
	session_cmd_init(m->session, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "%u:* (UID INTERNALDATE RFC822.SIZE "
	    "BODY.PEEK[])", base + 1);
	snprintf(tag, sizeof tag, "%s", cmd.tag);
	if (session_send(m->session, &cmd, on_fetch_untagged, on_batch_done,
	    m) != 0)
		goto fail;
	push_batch(m, tag, true, base, 0, 0);
	return;
fail:
	mirror_fail(m, SESSION_ERR_LOCAL, "cannot queue UID FETCH");
}

/* Bodies */

static void
send_batch(struct mirror *m)
{
	char tag[IMAP_TAG_MAX];
	struct imap_cmd cmd;
	uint64_t bytes = 0;
	size_t first = m->next_todo, n = 0, need;
	char *set;

	while (first + n < m->n_todo && n < BATCH_MAX_MESSAGES &&
	    (n == 0 || bytes + m->todo_sizes[first + n] <= BATCH_MAX_BYTES))
		bytes += m->todo_sizes[first + n++];
	need = imap_seqset_format(NULL, 0, m->todo + first, n) + 1;
	if ((set = malloc(need)) == NULL) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	imap_seqset_format(set, need, m->todo + first, n);
	session_cmd_init(m->session, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "%s (UID INTERNALDATE RFC822.SIZE BODY.PEEK[])",
	    set);
	free(set);
	m->next_todo += n;
	snprintf(tag, sizeof tag, "%s", cmd.tag);
	if (session_send(m->session, &cmd, on_fetch_untagged, on_batch_done,
	    m) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "cannot queue UID FETCH");
		return;
	}
	push_batch(m, tag, false, 0, first, n);
}

/*
 * The next batch goes out once the newest one in flight has delivered its
 * last message: the pipe stays full while a batch is committed, yet a server
 * that runs pipelined fetches side by side (Dovecot does) never interleaves
 * two batches, so the mbox keeps the server's order.
 */
static bool
can_send_next(const struct mirror *m)
{
	const struct batch *b, *newest = NULL;

	if (m->step != MS_FETCHING)
		return false;
	if (m->in_flight == 0)
		return true;
	if (m->in_flight >= BATCHES_IN_FLIGHT)
		return false;
	for (size_t i = 0; i < BATCHES_IN_FLIGHT; i++) {
		b = &m->batches[i];
		if (b->used && (newest == NULL || b->first > newest->first))
			newest = b;
	}
	return newest != NULL && !newest->open && newest->n > 0 &&
	    plan_uid_find(m->got, m->n_got,
	    m->todo[newest->first + newest->n - 1], NULL);
}

static void
send_batches(struct mirror *m)
{
	while (m->next_todo < m->n_todo && can_send_next(m))
		send_batch(m);
}

/* A message whose UID or INTERNALDATE came after its body (allowed, if
 * rare): it waits in an unnamed temporary file until the FETCH response is
 * complete. */
static int
spool_begin(struct mirror *m)
{
	if (m->spool_fd < 0) {
		m->spool_fd = open(m->state_dir, O_TMPFILE | O_RDWR | O_CLOEXEC,
		    0600);
		if (m->spool_fd < 0)
			return -1;
	}
	if (ftruncate(m->spool_fd, 0) != 0 || lseek(m->spool_fd, 0,
	    SEEK_SET) != 0)
		return -1;
	m->spooling = true;
	return 0;
}

static int
spool_write(struct mirror *m, const unsigned char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(m->spool_fd, data, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Asked for by a batch in flight, newer than the state, not given up and
 * not appended yet: a server that repeats, reorders or adds messages can
 * neither make one appear twice nor push one out (answered out of order, a
 * message is appended where it comes).
 */
static bool
wanted_uid(const struct mirror *m, uint32_t uid)
{
	const struct batch *b;

	if (m->step != MS_FETCHING || uid <= m->ms->last_uid ||
	    plan_uid_find(m->got, m->n_got, uid, NULL) ||
	    state_is_skipped(m->ms, uid))
		return false;
	/* Any batch in flight: a server may run pipelined fetches side by
	 * side (Dovecot does), so the next batch's first messages can come
	 * before the previous one's OK. */
	for (size_t i = 0; i < BATCHES_IN_FLIGHT; i++) {
		b = &m->batches[i];
		if (!b->used)
			continue;
		/* An open range takes what a few new messages need, not
		 * whatever a server sends. */
		if (b->open ? uid > b->base && m->n_got < DIRECT_FETCH_MAX +
		    DIRECT_SLACK : plan_uid_find(m->todo + b->first, b->n, uid,
		    NULL))
			return true;
	}
	return false;
}

static void
push_batch(struct mirror *m, const char *tag, bool open, uint32_t base,
    size_t first, size_t n)
{
	struct batch *b = m->batches;

	while (b->used)
		b++;	/* a free one exists: in_flight < BATCHES_IN_FLIGHT */
	b->used = true;
	snprintf(b->tag, sizeof b->tag, "%s", tag);
	b->open = open;
	b->base = base;
	b->first = first;
	b->n = n;
	m->in_flight++;
}

/* Takes the batch a tagged response completes out of flight. */
static bool
pop_batch(struct mirror *m, const char *tag, struct batch *b_r)
{
	for (size_t i = 0; i < BATCHES_IN_FLIGHT; i++) {
		if (m->batches[i].used && strcmp(m->batches[i].tag, tag) == 0) {
			*b_r = m->batches[i];
			m->batches[i].used = false;
			m->in_flight--;
			return true;
		}
	}
	return false;
}

static int
begin_message(struct mirror *m, const struct imap_literal_info *info)
{
	struct imap_fetch_item item;

	m->msg_skip = true;
	m->spooling = false;
	/* Bodies only count in answer to a batch (not to the sizes query,
	 * not before EXAMINE has been answered). */
	if (m->ms == NULL || m->mbox == NULL || m->step != MS_FETCHING ||
	    m->in_flight == 0 || (strcmp(info->item,
	    "BODY[]") != 0 && strcmp(info->item, "RFC822") != 0))
		return 0;
	if (imap_fetch_decode(info->msgno, info->before, info->nbefore,
	    &item) != 0 || !item.has_uid || !item.has_internaldate) {
		m->msg_skip = false;
		if (spool_begin(m) != 0) {
			mirror_fail(m, SESSION_ERR_LOCAL, "cannot create a "
			    "temporary file in %s: %s", m->state_dir,
			    strerror(errno));
			return -1;
		}
		m->spool_msgno = info->msgno;
		return 0;
	}
	if (!wanted_uid(m, item.uid)) {
		log_debug("%s: ignoring repeated or old UID %u", m->prefix,
		    item.uid);
		return 0;
	}
	if (mbox_msg_begin(m->mbox, item.internaldate) != 0)
		goto fail;
	m->msg_uid = item.uid;
	m->msg_skip = false;
	return 0;
fail:
	mirror_fail(m, SESSION_ERR_LOCAL, "%s", mbox_error(m->mbox));
	return -1;
}

static int commit(struct mirror *, bool);
static void report_progress(struct mirror *);

/* A commit is due in the middle of a batch (see COMMIT_EVERY). */
static bool
commit_due(const struct mirror *m)
{
	ev_tstamp now = ev_now(m->loop);

	return now - m->last_commit >= COMMIT_EVERY &&
	    now - m->last_commit_try >= COMMIT_EVERY;
}

/* A message is in the mbox (not yet committed): where its entry ends is
 * remembered, so a commit can stop after it. */
static int
message_appended(struct mirror *m, uint32_t uid, uint64_t size)
{
	size_t pos;

	if (m->n_got == m->cap_got) {
		size_t cap = m->cap_got ? m->cap_got * 2 : 256;
		uint32_t *v = reallocarray(m->got, cap, sizeof *v);

		if (v == NULL)
			goto oom;
		m->got = v;
		m->cap_got = cap;
	}
	if (m->n_arr == m->cap_arr) {
		size_t cap = m->cap_arr ? m->cap_arr * 2 : 256;
		struct plan_arrival *a = reallocarray(m->arr, cap, sizeof *a);
		uint64_t *s = reallocarray(m->arr_sizes, cap, sizeof *s);

		if (a != NULL)
			m->arr = a;
		if (s != NULL)
			m->arr_sizes = s;
		if (a == NULL || s == NULL)
			goto oom;
		m->cap_arr = cap;
	}
	(void)plan_uid_find(m->got, m->n_got, uid, &pos);
	memmove(m->got + pos + 1, m->got + pos, (m->n_got - pos) *
	    sizeof *m->got);
	m->got[pos] = uid;
	m->n_got++;
	m->arr[m->n_arr].uid = uid;
	m->arr[m->n_arr].end = mbox_appended_size(m->mbox);
	m->arr_sizes[m->n_arr++] = size;
	m->batch_bytes += size;
	if (commit_due(m)) {
		/* Commits only if all that arrived can be (no message before
		 * the last one still to come); else it waits for more. */
		m->last_commit_try = ev_now(m->loop);
		if (commit(m, false) != 0)
			return -1;
	}
	report_progress(m);
	send_batches(m);
	return 0;
oom:
	mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
	return -1;
}

static int
sink(void *arg, enum imap_sink_event event,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	struct mirror *m = arg;

	switch (event) {
	case IMAP_SINK_BEGIN:
		return begin_message(m, info);
	case IMAP_SINK_DATA:
		if (m->msg_skip)
			return 0;
		if (m->spooling) {
			if (spool_write(m, data, len) == 0)
				return 0;
			mirror_fail(m, SESSION_ERR_LOCAL, "temporary file: %s",
			    strerror(errno));
			return -1;
		}
		if (mbox_msg_write(m->mbox, data, len) == 0)
			return 0;
		break;
	case IMAP_SINK_END:
		if (m->msg_skip || m->spooling)
			return 0;
		if (mbox_msg_end(m->mbox) != 0)
			break;
		return message_appended(m, m->msg_uid, info->size);
	}
	mirror_fail(m, SESSION_ERR_LOCAL, "%s", mbox_error(m->mbox));
	return -1;
}

/* The FETCH response of a spooled body is complete: now its UID and date
 * are known. */
static void
append_spooled(struct mirror *m, const struct imap_response *resp)
{
	struct imap_fetch_item item;
	unsigned char buf[65536];
	off_t size, done = 0;
	ssize_t n;

	m->spooling = false;
	if (decode_fetch(resp, &item) != 0 || !item.has_uid ||
	    !item.has_internaldate) {
		mirror_fail(m, SESSION_ERR_PROTOCOL, "FETCH response without "
		    "UID or INTERNALDATE");
		return;
	}
	if (!wanted_uid(m, item.uid))
		return;
	size = lseek(m->spool_fd, 0, SEEK_CUR);
	if (size < 0 || mbox_msg_begin(m->mbox, item.internaldate) != 0)
		goto fail;
	while (done < size) {
		n = pread(m->spool_fd, buf, sizeof buf, done);
		if (n <= 0)
			goto fail;
		if (mbox_msg_write(m->mbox, buf, (size_t)n) != 0)
			goto fail;
		done += n;
	}
	if (mbox_msg_end(m->mbox) != 0)
		goto fail;
	(void)message_appended(m, item.uid, (uint64_t)size);
	return;
fail:
	mirror_fail(m, SESSION_ERR_LOCAL, "appending a spooled message: %s",
	    m->mbox != NULL && mbox_error(m->mbox) != NULL ?
	    mbox_error(m->mbox) : strerror(errno));
}

/* A body that came whole in the response (a quoted string). */
static void
append_string(struct mirror *m, const struct imap_fetch_item *item,
    const struct imap_arg *body)
{
	if (!item->has_internaldate) {
		mirror_fail(m, SESSION_ERR_PROTOCOL, "UID %u: FETCH response "
		    "without INTERNALDATE", item->uid);
		return;
	}
	if (mbox_msg_begin(m->mbox, item->internaldate) != 0 ||
	    (body->len > 0 && mbox_msg_write(m->mbox, body->str,
	    body->len) != 0) || mbox_msg_end(m->mbox) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "%s", mbox_error(m->mbox));
		return;
	}
	(void)message_appended(m, item->uid, body->len);
}

/*
 * Every FETCH answer of a mailbox comes here, whichever of its commands is
 * the oldest in flight (a server may answer pipelined fetches side by
 * side): lines of the size query add to the UIDs to fetch; bodies not
 * streamed through the sink are appended here.
 */
static void
on_fetch_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;
	struct imap_fetch_item item;
	const struct imap_arg *body;

	(void)s;
	if (m->ms == NULL || m->step != MS_FETCHING || resp->keyword == NULL)
		return;
	if (strcmp(resp->keyword, "FETCH") != 0)
		return;
	if (m->spooling) {
		if (resp->number == m->spool_msgno)
			append_spooled(m, resp);
		m->spooling = false;
		return;
	}
	if (decode_fetch(resp, &item) != 0 || !item.has_uid)
		return;
	if ((body = fetch_body(resp)) == NULL) {
		if (m->sizes_pending)
			add_listed(m, &item);
		return;
	}
	if (m->mbox == NULL || body->type == IMAP_ARG_STREAMED ||
	    !wanted_uid(m, item.uid))
		return;
	if (body->type == IMAP_ARG_STRING) {
		append_string(m, &item, body);
		return;
	}
	/* NIL: the server cannot deliver it now (expunged meanwhile, or
	 * broken).  It stays undelivered: the batch's end finds the hole. */
	m->nil_uid = item.uid;
}

/* Commits */

/* A line every few seconds while a big mailbox comes in. */
static void
report_progress(struct mirror *m)
{
	ev_tstamp now = ev_now(m->loop), elapsed = now - m->mbx_started;
	double rate, eta;

	if (now - m->last_progress < PROGRESS_INTERVAL || elapsed <= 0)
		return;
	m->last_progress = now;
	rate = m->mbx_bytes / elapsed;
	eta = rate > 0 ? (m->todo_bytes - (double)m->mbx_bytes) / rate : 0;
	log_info("%s: mailbox %s: %llu/%zu messages, %.1f/%.1f MB, "
	    "%.1f MB/s, about %.0fs left", m->prefix, m->mbxs[m->cur].display,
	    m->mbx_messages, m->n_todo, m->mbx_bytes / 1e6,
	    m->todo_bytes / 1e6, rate / 1e6, eta > 0 ? eta : 0);
}

/* Whether this batch's commit may join a later one's (see COMMIT_INTERVAL). */
static bool
commit_can_wait(const struct mirror *m)
{
	return (m->next_todo < m->n_todo || m->in_flight > 0) &&
	    m->batch_bytes < COMMIT_MAX_BYTES &&
	    ev_now(m->loop) - m->last_commit < COMMIT_INTERVAL;
}

/*
 * The commit protocol: the mbox is made durable up to the commit point
 * (mirror/plan.h), then the state says so.  With salvage the rest of what
 * was appended is cut off (the run cannot wait for what would make it
 * committable); without, nothing is committed unless all of it can be.
 * 0, or -1 when the run has failed.
 */
/*
 * How many arrivals may be committed, and the state's last UID after them.
 * -1 when out of memory.
 */
static ssize_t
commit_point(struct mirror *m, uint32_t *last_r)
{
	uint32_t last = m->ms->last_uid, highest = last;
	size_t k = 0, contig;
	bool *resolved;

	*last_r = last;
	if (m->direct && !m->sizes_complete) {
		/* Without the list of what exists, only UIDs that follow the
		 * last one committed with no gap at all can be trusted. */
		for (size_t j = 0; j < m->n_arr; j++) {
			if (m->arr[j].uid > highest)
				highest = m->arr[j].uid;
			if ((uint64_t)highest == (uint64_t)last + j + 1) {
				k = j + 1;
				*last_r = highest;
			}
		}
		return (ssize_t)k;
	}
	if ((m->direct && merge_extras(m) != 0) ||
	    (resolved = malloc(m->n_todo + 1)) == NULL)
		return -1;
	if (m->n_todo > 0)
		memcpy(resolved, m->todo_done, m->n_todo * sizeof *resolved);
	k = plan_commit_point(m->todo, m->n_todo, resolved, m->arr, m->n_arr,
	    &contig);
	free(resolved);
	if (contig > 0 && m->todo[contig - 1] > last)
		*last_r = m->todo[contig - 1];
	return (ssize_t)k;
}

/* Takes the UIDs of arr[from..n_arr), cut off the mbox, out of got (one
 * pass: both are sorted here). */
static void
forget_cut(struct mirror *m, size_t from)
{
	size_t n_cut = m->n_arr - from, i = 0, o = 0, c = 0;
	uint32_t *cut;

	if (n_cut == 0)
		return;
	if ((cut = reallocarray(NULL, n_cut, sizeof *cut)) == NULL) {
		/* One at a time, then. */
		for (size_t j = from; j < m->n_arr; j++)
			if (plan_uid_find(m->got, m->n_got, m->arr[j].uid,
			    &i)) {
				memmove(m->got + i, m->got + i + 1,
				    (m->n_got - i - 1) * sizeof *m->got);
				m->n_got--;
			}
		return;
	}
	for (size_t j = 0; j < n_cut; j++)
		cut[j] = m->arr[from + j].uid;
	qsort(cut, n_cut, sizeof *cut, uid_cmp);
	for (i = 0; i < m->n_got; i++) {
		while (c < n_cut && cut[c] < m->got[i])
			c++;
		if (c < n_cut && cut[c] == m->got[i])
			continue;
		m->got[o++] = m->got[i];
	}
	m->n_got = o;
	free(cut);
}

/* Extends todo's done prefix: everything up to the state's last UID, or
 * committed or given up, needs nothing more.  todo must be sorted. */
static void
advance_contig(struct mirror *m)
{
	while (m->contig < m->n_todo && (m->todo_done[m->contig] ||
	    m->todo[m->contig] <= m->ms->last_uid))
		m->todo_done[m->contig++] = true;
}

static int
commit(struct mirror *m, bool salvage)
{
	ssize_t k;
	size_t pos;
	uint32_t last;
	uint64_t size, bytes = 0;

	if (m->mbox == NULL || m->ms == NULL)
		return 0;
	/* A size list still coming in may be out of order: the searches and
	 * the walk below need it sorted. */
	if ((m->todo_unsorted && sort_todo(m) != 0) ||
	    (k = commit_point(m, &last)) < 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return -1;
	}
	if (!salvage && (size_t)k < m->n_arr)
		return 0;
	size = k > 0 ? m->arr[k - 1].end : mbox_committed_size(m->mbox);
	if (mbox_commit_upto(m->mbox, size, &size) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "%s", mbox_error(m->mbox));
		return -1;
	}
	/* What was cut off was not delivered after all. */
	forget_cut(m, (size_t)k);
	for (ssize_t j = 0; j < k; j++) {
		if (plan_uid_find(m->todo, m->n_todo, m->arr[j].uid, &pos))
			m->todo_done[pos] = true;
		bytes += m->arr_sizes[j];
	}
	m->last_commit = ev_now(m->loop);
	m->ms->last_uid = last;
	advance_contig(m);
	if (m->ms->hole_uid != 0 && m->ms->hole_uid <= m->ms->last_uid)
		m->ms->hole_uid = m->ms->hole_tries = 0;
	m->ms->mbox_size = size;
	m->ms->messages += (uint32_t)k;
	/* Only what is committed counts as mirrored. */
	m->mbx_messages += (unsigned long long)k;
	m->mbx_bytes += bytes;
	m->result.messages += (unsigned long long)k;
	m->result.bytes += bytes;
	m->session_messages += (unsigned)k;
	m->n_arr = 0;
	m->batch_bytes = 0;
	return save_state(m);
}

/*
 * uid was asked for and its fetch has ended without it.  Counted once per
 * sync; after PLAN_HOLE_TRIES_MAX syncs it is given up, so that one message
 * the server never delivers does not stop the mailbox for good.  True when
 * it was given up (the fetch may go past it).
 */
static bool
hole(struct mirror *m, uint32_t uid, const char *why)
{
	struct mailbox_state *ms = m->ms;
	const char *box = m->mbxs[m->cur].display;
	size_t pos;

	ms->hole_tries = plan_hole_tries(ms->hole_uid, ms->hole_tries, uid,
	    m->hole_counted == uid);
	ms->hole_uid = uid;
	m->hole_counted = uid;
	if (ms->hole_tries < PLAN_HOLE_TRIES_MAX) {
		log_warnx("%s: mailbox %s: UID %u: %s (sync %u of %u before "
		    "it is given up); nothing after it is kept", m->prefix,
		    box, uid, why, ms->hole_tries, PLAN_HOLE_TRIES_MAX);
		mailbox_failed(m, "UID %u: %s; the next sync asks again",
		    uid, why);
		return false;
	}
	log_warnx("%s: mailbox %s: UID %u: %s in %u syncs in a row; given "
	    "up: this message is not in the mirror (--status lists it)",
	    m->prefix, box, uid, why, ms->hole_tries);
	if (state_add_skipped(ms, uid) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return false;
	}
	ms->hole_uid = ms->hole_tries = 0;
	if (plan_uid_find(m->todo, m->n_todo, uid, &pos))
		m->todo_done[pos] = true;
	m->session_gave_up = true;
	return true;
}

/* The first UID of todo[from, to) that was neither delivered nor given
 * up, or 0. */
static uint32_t
first_undelivered(const struct mirror *m, size_t from, size_t to)
{
	for (size_t i = from; i < to && i < m->n_todo; i++)
		if (!m->todo_done[i] && !plan_uid_find(m->got, m->n_got,
		    m->todo[i], NULL))
			return m->todo[i];
	return 0;
}

static const char *
hole_reason(const struct mirror *m, uint32_t uid)
{
	return uid == m->nil_uid ? "the server sent no body (BODY[] NIL)" :
	    "the server answered without it";
}

/* A batch answered OK: every message it asked for must have come, or be
 * given up; true when the mailbox can go on. */
static bool
batch_complete(struct mirror *m, const struct batch *b)
{
	size_t from = b->open ? 0 : b->first;
	size_t to = b->open ? m->n_todo : b->first + b->n;
	uint32_t uid;

	while ((uid = first_undelivered(m, from, to)) != 0)
		if (!hole(m, uid, hole_reason(m, uid)))
			return false;
	return true;
}

static void
on_sizes_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct mirror *m = arg;

	(void)s;
	m->sizes_pending = false;
	if (answered_before_examine(m) || pipelined_fetch_void(m) ||
	    m->step == MS_DONE)
		return;
	if (m->step == MS_DRAINING) {
		drain_mailbox(m);
		return;
	}
	if (tagged->status != IMAP_STATUS_OK) {
		fetch_refused(m, tagged, NULL);
		return;
	}
	if (sort_todo(m) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	m->sizes_complete = true;
	/* What a commit made while the list came in covered: done. */
	m->contig = 0;
	advance_contig(m);
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
		if (m->open_done)
			fetch_answered(m, &m->open_batch);
		return;
	}
	if (m->n_todo == 0) {
		mailbox_done(m);
		return;
	}
	m->mbx_started = m->last_progress = m->last_commit = ev_now(m->loop);
	log_debug("%s: mailbox %s: %zu new messages", m->prefix,
	    m->mbxs[m->cur].display, m->n_todo);
	send_batches(m);
}

/* A batch of bodies answered OK (and its UIDs are known). */
static void
fetch_answered(struct mirror *m, const struct batch *b)
{
	bool last;

	m->open_done = false;
	if (b->open) {
		if (merge_extras(m) != 0) {
			mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
			return;
		}
		m->next_todo = m->n_todo;	/* all asked for already */
	}
	if (!batch_complete(m, b)) {
		/* Keep what came before the hole; nothing past it. */
		if (commit(m, true) == 0)
			drain_mailbox(m);
		return;
	}
	if (commit_can_wait(m)) {
		/* A later batch's OK commits it all. */
		report_progress(m);
		send_batches(m);
		return;
	}
	/* After the last answer nothing more can come: commit what can be,
	 * cut the rest (messages a direct fetch brought past a gap). */
	last = m->next_todo >= m->n_todo && m->in_flight == 0;
	if (commit(m, last) != 0)
		return;
	report_progress(m);
	if (!last)
		send_batches(m);
	else if (m->contig == m->n_todo)
		mailbox_done(m);
	else {
		/* Not reached while every batch delivered all it asked for;
		 * never wait for what cannot come. */
		mailbox_failed(m, "not every message asked for could be "
		    "committed; the next sync asks again");
		drain_mailbox(m);
	}
}

static void
on_batch_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct mirror *m = arg;
	struct batch b;

	(void)s;
	if (m->step == MS_DONE)
		return;
	if (!pop_batch(m, tagged->tag, &b)) {
		mirror_fail(m, SESSION_ERR_PROTOCOL, "UID FETCH %s completed "
		    "twice", tagged->tag);
		return;
	}
	if (answered_before_examine(m) || pipelined_fetch_void(m))
		return;
	if (m->step == MS_DRAINING) {
		drain_mailbox(m);
		return;
	}
	if (tagged->status != IMAP_STATUS_OK) {
		fetch_refused(m, tagged, &b);
		return;
	}
	if (b.open && m->sizes_pending) {
		m->open_batch = b;
		m->open_done = true;
		return;
	}
	fetch_answered(m, &b);
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
may_reconnect(const struct mirror *m, enum session_error error)
{
	/* (After LOGOUT everything is committed: nothing to go on with.) */
	return m->step != MS_DONE && m->step != MS_LOGOUT &&
	    (m->session_messages > 0 || m->session_gave_up) &&
	    m->reconnects < MAX_RECONNECTS &&
	    (error == SESSION_ERR_NETWORK || error == SESSION_ERR_TIMEOUT ||
	    error == SESSION_ERR_SERVER || error == SESSION_ERR_TLS);
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
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	session_set_sink(m->session, sink, m);
	session_start(m->session);
}

/*
 * Response codes of a NO that says "not now" (RFC 5530), not "not this
 * message": such a refusal counts no try against the message.
 */
static bool
transient_refusal(const struct imap_response *tagged)
{
	static const char *const codes[] = { "UNAVAILABLE", "INUSE", "LIMIT",
	    "OVERQUOTA" };

	if (tagged->code == NULL)
		return false;
	for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
		if (strcasecmp(tagged->code, codes[i]) == 0)
			return true;
	return false;
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

	if (commit(m, true) != 0)
		return;
	snprintf(why, sizeof why, "UID FETCH failed: %s",
	    imap_response_text(tagged, text, sizeof text));
	if (!may_reconnect(m, SESSION_ERR_SERVER) && b != NULL &&
	    !transient_refusal(tagged))
		uid = first_undelivered(m, b->open ? 0 : b->first,
		    b->open ? m->n_todo : b->first + b->n);
	if (uid != 0 && !hole(m, uid, why)) {
		drain_mailbox(m);	/* hole() said why */
		return;
	}
	if (may_reconnect(m, SESSION_ERR_SERVER)) {
		reconnect(m, why);
		return;
	}
	mailbox_failed(m, "%s", why);
	drain_mailbox(m);
}

static void
on_session_failed(struct session *s, enum session_error error,
    const char *message, void *arg)
{
	struct mirror *m = arg;

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
	    commit(m, true) != 0)
		return;
	if (may_reconnect(m, error)) {
		reconnect(m, message);
		return;
	}
	mirror_fail(m, error, "%s", message);
}

/* Session set-up */

static const struct session_callbacks mirror_session_cb = {
	.ready = on_ready,
	.failed = on_session_failed,
	.closed = on_session_closed,
};

struct mirror *
mirror_start(struct ev_loop *loop, const struct config *config,
    const struct account *account, mirror_done_fn *done, void *arg)
{
	struct mirror *m;
	char *error = NULL;
	long holder;
	int r;

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
	ev_timer_init(&m->lock_timer, on_lock_timer, 0, 0);
	m->lock_timer.data = m;
	ev_timer_init(&m->reconnect_timer, on_reconnect_timer, 0, 0);
	m->reconnect_timer.data = m;
	snprintf(m->prefix, sizeof m->prefix, "account %s", account->name);
	m->state_dir = state_account_dir(config->state_dir, account->name);
	if (m->state_dir == NULL) {
		free(m);
		return NULL;
	}
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
		m->result.error = SESSION_ERR_LOCAL;
		finish(m);
		return m;
	}
	if (state_load(m->state_dir, &m->state, &error) != 0) {
		snprintf(m->result.message, sizeof m->result.message,
		    "%s: %s", m->prefix, error != NULL ? error : "bad state");
		free(error);
		m->result.error = SESSION_ERR_LOCAL;
		finish(m);
		return m;
	}
	m->state.last_attempt = time(NULL);
	if (layout_make_output(account->output) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "cannot create %s: %s",
		    account->output, strerror(errno));
		return m;
	}
	m->session = account_session_new(loop, account, config->timeout,
	    &mirror_session_cb, m);
	if (m->session == NULL) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return m;
	}
	session_set_sink(m->session, sink, m);
	session_start(m->session);
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
	mbox_close(&m->mbox);
	session_free(&m->session);
	for (size_t i = 0; i < m->n_mbxs; i++) {
		free(m->mbxs[i].name);
		free(m->mbxs[i].display);
	}
	free(m->mbxs);
	free(m->mbx_slots);
	free(m->todo);
	free(m->todo_sizes);
	free(m->todo_done);
	free(m->got);
	free(m->arr);
	free(m->arr_sizes);
	state_clear(&m->state);
	state_unlock(&m->state_lock_fd);
	free(m->state_dir);
	if (m->spool_fd >= 0)
		close(m->spool_fd);
	free(m);
}
