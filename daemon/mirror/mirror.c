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
#include "mirror/names.h"
#include "mirror/state.h"

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
#define COMMIT_MAX_BYTES (256ULL * 1024 * 1024)
/* How often to look again at an mbox another program holds locked. */
#define LOCK_POLL_SECS 0.1

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
	bool finished;
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
	bool in_mbx;			/* from EXAMINE to its end */
	struct mailbox_state *ms;
	struct mbox *mbox;
	uint32_t examine_uidvalidity, examine_uidnext;
	uint32_t fetch_base;		/* the pipelined fetch asked after it */
	bool fetch_stale;		/* ...but the state turned out older */
	bool examine_failed;		/* skip once the pipelined fetch ends */
	uint32_t *todo;			/* UIDs to fetch, ascending */
	uint64_t *todo_sizes;
	size_t n_todo, cap_todo, next_todo;
	size_t contig;			/* todo[0..contig) all appended */
	bool todo_unsorted;		/* the server's order was not ours */
	unsigned in_flight;
	struct batch batches[BATCHES_IN_FLIGHT];	/* in flight: used */
	uint32_t appended_max;		/* highest UID appended */
	uint32_t *got;			/* UIDs appended, ascending */
	size_t n_got, cap_got;
	unsigned long long mbx_messages, mbx_bytes;
	uint64_t todo_bytes;		/* sum of todo_sizes */
	ev_tstamp mbx_started, last_progress;
	ev_tstamp last_commit;

	/* The message being streamed */
	bool msg_skip;
	uint32_t msg_uid;
	unsigned batch_appended;	/* since the last commit */
	uint64_t batch_bytes;
	bool spooling;
	uint32_t spool_msgno;		/* the FETCH response it is part of */
	int spool_fd;

	struct mirror_result result;
};

static void mirror_fail(struct mirror *, enum session_error, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void mailbox_failed(struct mirror *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* "[CODE] text" of a tagged NO or BAD, for an error message. */
static const char *
tagged_text(const struct imap_response *r, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s%s", r->code != NULL ? "[" : "",
	    r->code != NULL ? r->code : "", r->code != NULL ? "] " : "",
	    r->text != NULL ? r->text : "");
	return buf;
}

static void next_mailbox(struct mirror *);
static void send_batches(struct mirror *);
static bool uid_in(const uint32_t *, size_t, uint32_t, size_t *);
static void push_batch(struct mirror *, const char *, bool, uint32_t, size_t,
    size_t);

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
	if (m->finished)
		return;
	m->finished = true;
	ev_timer_stop(m->loop, &m->lock_timer);
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

	if (m->finished)
		return;
	n = snprintf(m->result.message, sizeof m->result.message, "%s: ",
	    m->prefix);
	if (m->mbxs != NULL && m->cur < m->n_mbxs && m->in_mbx)
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
on_session_failed(struct session *s, enum session_error error,
    const char *message, void *arg)
{
	struct mirror *m = arg;

	(void)s;
	mirror_fail(m, error, "%s", message);
}

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
	size_t h = 2166136261u;		/* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)name[i]) * 16777619u;
	return h;
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

static char *
join_path(const char *dir, const char *rel)
{
	char *path;

	if (asprintf(&path, "%s/%s", dir, rel) < 0)
		return NULL;
	return path;
}

/* mkdir -p for the directories of a file below output, 0700, refusing to
 * walk through symlinks. */
static int
make_parents(const char *output, const char *rel, char **error_r)
{
	char *path = join_path(output, rel), *p;
	struct stat st;
	size_t base = strlen(output);

	if (path == NULL)
		return -1;
	for (p = path + base; (p = strchr(p + 1, '/')) != NULL; ) {
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			goto fail;
		if (lstat(path, &st) != 0)
			goto fail;
		if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			goto fail;
		}
		*p = '/';
	}
	free(path);
	return 0;
fail:
	if (asprintf(error_r, "cannot create directory %s: %s", path,
	    strerror(errno)) < 0)
		*error_r = NULL;
	free(path);
	return -1;
}

/* mkdir -p for output itself: its parents may not exist yet on a first run.
 * Directories created here are 0700 like those below. */
static int
make_output(const char *output)
{
	char *path, *p;
	int rc = -1;

	if ((path = strdup(output)) == NULL)
		return -1;
	for (p = path; (p = strchr(p + 1, '/')) != NULL; ) {
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			goto out;
		*p = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		goto out;
	rc = 0;
out:
	free(path);
	return rc;
}

/* Moves an mbox out of the way, keeping it: "<base>.<tag>.mbox", with a
 * counter when that exists.  Returns 0 also when there is no file. */
static int
keep_aside(struct mirror *m, const char *rel, const char *tag)
{
	char *from = join_path(m->account->output, rel), *to = NULL;
	size_t len = strlen(from);
	struct stat st;
	int rc = -1;

	if (lstat(from, &st) != 0) {
		rc = errno == ENOENT ? 0 : -1;
		goto out;
	}
	if (len > 5 && strcmp(from + len - 5, ".mbox") == 0)
		len -= 5;
	for (unsigned i = 1; i < 1000; i++) {
		free(to);
		if ((i == 1 ? asprintf(&to, "%.*s.%s.mbox", (int)len, from,
		    tag) : asprintf(&to, "%.*s.%s-%u.mbox", (int)len, from,
		    tag, i)) < 0) {
			to = NULL;
			goto out;
		}
		if (lstat(to, &st) != 0 && errno == ENOENT)
			break;
	}
	if (rename(from, to) != 0)
		goto out;
	log_warnx("%s: kept the previous mirror as %s", m->prefix, to);
	rc = 0;
out:
	if (rc != 0)
		log_warn("%s: cannot move %s aside", m->prefix, from);
	free(from);
	free(to);
	return rc;
}

/* Whether a mailbox other than self already mirrors into rel. */
static bool
file_taken(const struct mirror *m, const struct mailbox_state *self,
    const char *rel)
{
	for (size_t i = 0; i < m->state.n_mailboxes; i++) {
		const struct mailbox_state *o = &m->state.mailboxes[i];

		if (o != self && o->file != NULL && strcmp(o->file, rel) == 0)
			return true;
	}
	return false;
}

/*
 * rel (taken over), or "<base>.<n>.mbox" when another mailbox has it: names
 * under different hierarchy delimiters ("a//b" with "/", "a..b" with ".")
 * map to one path, and two mailboxes must never share a file.  The choice
 * is recorded in the state, so it stays.  NULL when out of memory.
 */
static char *
unique_file(struct mirror *m, const struct mailbox_state *self, char *rel)
{
	size_t len = strlen(rel);
	char *alt;

	if (!file_taken(m, self, rel))
		return rel;
	if (len > 5 && strcmp(rel + len - 5, ".mbox") == 0)
		len -= 5;
	for (unsigned i = 2; ; i++) {
		if (asprintf(&alt, "%.*s.%u.mbox", (int)len, rel, i) < 0) {
			free(rel);
			return NULL;
		}
		if (!file_taken(m, self, alt))
			break;
		free(alt);
	}
	log_warnx("%s: mailbox %s: %s is another mailbox's mirror; using %s",
	    m->prefix, m->mbxs[m->cur].display, rel, alt);
	free(rel);
	return alt;
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

static void on_sizes_untagged(struct session *, const struct imap_response *,
    void *);
static void on_sizes_done(struct session *, const struct imap_response *,
    void *);

/* EXAMINE answered: reconcile the state with UIDVALIDITY, open the mbox. */
static void
prepare_mailbox(struct mirror *m)
{
	struct mbx *mb = &m->mbxs[m->cur];
	struct mailbox_state *ms = state_get(&m->state, mb->name);
	enum mbox_open_result r;
	char *rel, *path, *record, *error = NULL, tag[40];
	bool fresh;

	if (ms == NULL) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	m->ms = ms;
	fresh = ms->uidvalidity == 0;
	rel = names_mbox_path(mb->name, strlen(mb->name), mb->delimiter, false);
	if (rel != NULL)
		rel = unique_file(m, ms, rel);
	if (rel == NULL) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	if (!fresh && ms->uidvalidity != m->examine_uidvalidity) {
		log_warnx("%s: mailbox %s: UIDVALIDITY changed from %u to %u; "
		    "mirroring it afresh", m->prefix, mb->display,
		    ms->uidvalidity, m->examine_uidvalidity);
		snprintf(tag, sizeof tag, "uidvalidity-%u", ms->uidvalidity);
		if (keep_aside(m, ms->file != NULL ? ms->file : rel, tag) != 0) {
			free(rel);
			mirror_fail(m, SESSION_ERR_LOCAL, "cannot keep the old "
			    "mirror aside");
			return;
		}
		fresh = true;
	} else if (fresh) {
		/* A file we have no record of is someone's: keep it. */
		snprintf(tag, sizeof tag, "unknown-%lld", (long long)time(NULL));
		if (keep_aside(m, rel, tag) != 0) {
			free(rel);
			mirror_fail(m, SESSION_ERR_LOCAL, "cannot move an "
			    "unknown file aside");
			return;
		}
	}
	if (fresh) {
		ms->uidvalidity = m->examine_uidvalidity;
		ms->last_uid = 0;
		ms->uidnext = 0;
		ms->messages = 0;
		ms->mbox_size = 0;
		free(ms->file);
		ms->file = rel;
		rel = NULL;
		/* Recorded before the file exists, so a crash leftover is
		 * ours to truncate, not a stranger's to keep. */
		if (save_state(m) != 0)
			return;
	} else if (ms->file == NULL) {
		ms->file = rel;
		rel = NULL;
	}
	free(rel);
	if (make_parents(m->account->output, ms->file, &error) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "%s", error != NULL ? error :
		    "out of memory");
		free(error);
		return;
	}
	if ((path = join_path(m->account->output, ms->file)) == NULL) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	if ((record = state_append_record(m->state_dir, ms->file)) == NULL) {
		free(path);
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	r = mbox_open(path, record, ms->mbox_size, &m->mbox, &error);
	free(record);
	if (r == MBOX_OPEN_FAILED) {
		mirror_fail(m, SESSION_ERR_LOCAL, "%s", error != NULL ? error :
		    "cannot open mbox");
		free(error);
		free(path);
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
	free(path);
	/* The size the next append starts at must be durable before the
	 * append: a crash during it must find the tail past this size, not
	 * past the old one, to cut it as ours. */
	if ((r == MBOX_OPEN_SHORTER || r == MBOX_OPEN_CHANGED) &&
	    save_state(m) != 0)
		return;
	m->appended_max = ms->last_uid;
	m->n_got = 0;
	m->contig = 0;
	m->mbx_messages = m->mbx_bytes = 0;
	m->fetch_stale = ms->last_uid != m->fetch_base;
}

static void
on_examine_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;
	uint32_t v;

	(void)s;
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
	if (tagged->status != IMAP_STATUS_OK) {
		/* Deleted since LIST, or not ours to read: the others go on
		 * once the fetch sent with the EXAMINE has failed too, but
		 * the mirror is incomplete, so the account fails in the end
		 * (a mailbox gone for good leaves LIST by the next sync). */
		log_warnx("%s: mailbox %s: EXAMINE failed, skipped: %s",
		    m->prefix, mb->display, tagged_text(tagged, text,
		    sizeof text));
		mailbox_failed(m, "EXAMINE failed: %s", text);
		m->examine_failed = true;
		return;
	}
	if (m->examine_uidvalidity == 0)
		m->examine_uidvalidity = mb->uidvalidity;
	if (m->examine_uidvalidity == 0) {
		/* Nothing to tell a renumbered mailbox by: no mirroring. */
		log_warnx("%s: mailbox %s: no UIDVALIDITY, skipped",
		    m->prefix, mb->display);
		mailbox_failed(m, "the server sent no UIDVALIDITY");
		m->examine_failed = true;
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
	if (!m->finished)
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
	    (path = join_path(m->account->output, ms->file)) == NULL)
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
	if (ev_now(m->loop) - m->lock_wait_since <
	    mbox_lock_wait() / 1000.0) {
		free(path);
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
	m->examine_failed = m->fetch_stale = false;
	m->ms = NULL;
	m->in_mbx = true;
	session_cmd_init(m->session, &cmd, "EXAMINE");
	imap_cmd_add_string(&cmd, mb->name, strlen(mb->name),
	    session_literal_mode(m->session));
	if (session_send(m->session, &cmd, on_examine_untagged,
	    on_examine_done, m) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "cannot queue EXAMINE");
		return;
	}
	send_fetch(m, base, base > 0 && mb->has_status &&
	    expect <= DIRECT_FETCH_MAX);
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
	session_logout(m->session);
}

static void
next_mailbox(struct mirror *m)
{
	struct mailbox_state *ms;
	struct mbx *mb;

	for (; m->cur < m->n_mbxs; m->cur++) {
		mb = &m->mbxs[m->cur];
		/* Without a usable STATUS (refused, or lacking UIDNEXT) there
		 * is no telling what changed: open it. */
		if (mb->has_status && mailbox_unchanged(m, mb))
			continue;
		ms = state_find(&m->state, mb->name);
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

/* The size query: which UIDs are new, and how big */

static int
add_todo(struct mirror *m, uint32_t uid, uint64_t size)
{
	if (m->n_todo == m->cap_todo) {
		size_t cap = m->cap_todo ? m->cap_todo * 2 : 256;
		uint32_t *u = reallocarray(m->todo, cap, sizeof *u);
		uint64_t *sz;

		if (u == NULL)
			return -1;
		m->todo = u;
		if ((sz = reallocarray(m->todo_sizes, cap, sizeof *sz)) == NULL)
			return -1;
		m->todo_sizes = sz;
		m->cap_todo = cap;
	}
	m->todo[m->n_todo] = uid;
	m->todo_sizes[m->n_todo++] = size;
	return 0;
}

static void
on_sizes_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;
	struct imap_fetch_item item;

	(void)s;
	if (m->ms == NULL || m->fetch_stale || decode_fetch(resp, &item) != 0 ||
	    !item.has_uid)
		return;
	/* "n:*" returns the last message even when it is old. */
	if (item.uid <= m->ms->last_uid)
		return;
	/* Out of order or repeated: sorted once the answer is complete. */
	if (m->n_todo > 0 && item.uid <= m->todo[m->n_todo - 1])
		m->todo_unsorted = true;
	if (add_todo(m, item.uid, item.has_size ? item.size : 0) != 0)
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
}

struct uid_size {
	uint32_t uid;
	size_t arrival;
	uint64_t size;
};

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

	if ((v = reallocarray(NULL, m->n_todo, sizeof *v)) == NULL)
		return -1;
	for (i = 0; i < m->n_todo; i++) {
		v[i].uid = m->todo[i];
		v[i].arrival = i;
		v[i].size = m->todo_sizes[i];
	}
	qsort(v, m->n_todo, sizeof *v, uid_size_cmp);
	for (i = 0; i < m->n_todo; i++) {
		if (n > 0 && v[i].uid == m->todo[n - 1])
			continue;
		m->todo[n] = v[i].uid;
		m->todo_sizes[n] = v[i].size;
		n++;
	}
	m->n_todo = n;
	m->todo_unsorted = false;
	free(v);
	return 0;
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
	m->ms = NULL;
	m->in_mbx = false;
	m->cur++;
	next_mailbox(m);
}

static void on_batch_untagged(struct session *, const struct imap_response *,
    void *);
static void on_batch_done(struct session *, const struct imap_response *,
    void *);

static void
skip_mailbox(struct mirror *m)
{
	mbox_close(&m->mbox);
	m->ms = NULL;
	m->in_mbx = false;
	m->cur++;
	next_mailbox(m);
}

/*
 * The fetch sent along with EXAMINE is over.  True when its answer does not
 * count: EXAMINE failed (next mailbox) or the state was stale (ask again
 * from what the state now says).
 */
static bool
pipelined_fetch_void(struct mirror *m)
{
	if (m->examine_failed) {
		skip_mailbox(m);
		return true;
	}
	if (m->fetch_stale) {
		m->fetch_stale = false;
		send_fetch(m, m->ms->last_uid, false);
		return true;
	}
	return false;
}

/* Asks for what is new after base: the bodies at once (direct), or first
 * the sizes, to cut batches by bytes. */
static void
send_fetch(struct mirror *m, uint32_t base, bool direct)
{
	char tag[IMAP_TAG_MAX];
	struct imap_cmd cmd;
	int rc;

	m->fetch_base = base;
	m->n_todo = m->next_todo = m->contig = 0;
	m->todo_unsorted = false;
	m->todo_bytes = 0;
	m->mbx_started = m->last_progress = m->last_commit = ev_now(m->loop);
	session_cmd_init(m->session, &cmd, "UID FETCH");
	if (direct) {
		imap_cmd_add_raw(&cmd, "%u:* (UID INTERNALDATE RFC822.SIZE "
		    "BODY.PEEK[])", base + 1);
		snprintf(tag, sizeof tag, "%s", cmd.tag);
		rc = session_send(m->session, &cmd, on_batch_untagged,
		    on_batch_done, m);
		if (rc == 0)
			push_batch(m, tag, true, base, 0, 0);
	} else {
		imap_cmd_add_raw(&cmd, "%u:* (UID RFC822.SIZE)", base + 1);
		rc = session_send(m->session, &cmd, on_sizes_untagged,
		    on_sizes_done, m);
	}
	if (rc != 0)
		mirror_fail(m, SESSION_ERR_LOCAL, "cannot queue UID FETCH");
}

static void
on_sizes_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct mirror *m = arg;
	char text[ERROR_TEXT_MAX];

	(void)s;
	if (pipelined_fetch_void(m))
		return;
	if (tagged->status != IMAP_STATUS_OK) {
		mirror_fail(m, SESSION_ERR_SERVER, "UID FETCH failed: %s",
		    tagged_text(tagged, text, sizeof text));
		return;
	}
	if (m->todo_unsorted && sort_todo(m) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	if (m->n_todo == 0) {
		mailbox_done(m);
		return;
	}
	m->todo_bytes = 0;
	for (size_t i = 0; i < m->n_todo; i++)
		m->todo_bytes += m->todo_sizes[i];
	m->mbx_started = m->last_progress = m->last_commit = ev_now(m->loop);
	log_debug("%s: mailbox %s: %zu new messages", m->prefix,
	    m->mbxs[m->cur].display, m->n_todo);
	send_batches(m);
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
	if (session_send(m->session, &cmd, on_batch_untagged, on_batch_done,
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
	    uid_in(m->got, m->n_got, m->todo[newest->first + newest->n - 1],
	    NULL);
}

static void
send_batches(struct mirror *m)
{
	while (!m->finished && m->next_todo < m->n_todo && can_send_next(m))
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

static bool
uid_in(const uint32_t *v, size_t n, uint32_t uid, size_t *pos_r)
{
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (v[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos_r != NULL)
		*pos_r = lo;
	return lo < n && v[lo] == uid;
}

/*
 * Asked for by the batch being answered, newer than the state, and not
 * appended yet: a server that repeats, reorders or adds messages can
 * neither make one appear twice nor push one out (answered out of order, a
 * message is appended where it comes).
 */
static bool
wanted_uid(const struct mirror *m, uint32_t uid)
{
	const struct batch *b;

	if (uid <= m->ms->last_uid || uid_in(m->got, m->n_got, uid, NULL))
		return false;
	/* Any batch in flight: a server may run pipelined fetches side by
	 * side (Dovecot does), so the next batch's first messages can come
	 * before the previous one's OK. */
	for (size_t i = 0; i < BATCHES_IN_FLIGHT; i++) {
		b = &m->batches[i];
		if (!b->used)
			continue;
		if (b->open ? uid > b->base : uid_in(m->todo + b->first, b->n,
		    uid, NULL))
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

/*
 * Whether what was appended can be committed: every UID asked for up to the
 * highest one appended is in.  Not so while the next batch has begun (in
 * parallel) with one of its messages still to come before the others: then
 * the state could not say which are in the mbox.
 */
static bool
appended_contiguous(struct mirror *m)
{
	if (m->n_got == 0)
		return true;
	/* got only grows while a mailbox is synced: the prefix of todo found
	 * in it only grows too, so each batch looks at its new part alone. */
	while (m->contig < m->n_todo &&
	    uid_in(m->got, m->n_got, m->todo[m->contig], NULL))
		m->contig++;
	return m->contig == m->n_todo ||
	    m->todo[m->contig] > m->got[m->n_got - 1];
}

static int
begin_message(struct mirror *m, const struct imap_literal_info *info)
{
	struct imap_fetch_item item;

	m->msg_skip = true;
	m->spooling = false;
	/* Bodies only count in answer to a batch (not to the sizes query,
	 * not before EXAMINE has been answered). */
	if (m->ms == NULL || m->mbox == NULL || m->fetch_stale ||
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

static int
message_appended(struct mirror *m, uint32_t uid, uint64_t size)
{
	size_t pos;

	if (m->n_got == m->cap_got) {
		size_t cap = m->cap_got ? m->cap_got * 2 : 256;
		uint32_t *v = reallocarray(m->got, cap, sizeof *v);

		if (v == NULL) {
			mirror_fail(m, SESSION_ERR_LOCAL, "out of memory");
			return -1;
		}
		m->got = v;
		m->cap_got = cap;
	}
	(void)uid_in(m->got, m->n_got, uid, &pos);
	memmove(m->got + pos + 1, m->got + pos, (m->n_got - pos) *
	    sizeof *m->got);
	m->got[pos] = uid;
	m->n_got++;
	if (uid > m->appended_max)
		m->appended_max = uid;
	m->batch_appended++;
	m->mbx_messages++;
	m->mbx_bytes += size;
	m->batch_bytes += size;
	send_batches(m);
	return 0;
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

static void
on_batch_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;
	struct imap_fetch_item item;
	const struct imap_arg *body;

	(void)s;
	/* Streamed bodies arrive through the sink; flag updates and
	 * EXISTS/EXPUNGE during the fetch need nothing here. */
	if (m->ms == NULL || m->mbox == NULL || resp->keyword == NULL ||
	    strcmp(resp->keyword, "FETCH") != 0)
		return;
	if (m->spooling) {
		if (resp->number == m->spool_msgno)
			append_spooled(m, resp);
		m->spooling = false;
		return;
	}
	if (decode_fetch(resp, &item) != 0 ||
	    (body = fetch_body(resp)) == NULL ||
	    body->type == IMAP_ARG_STREAMED || !item.has_uid ||
	    !wanted_uid(m, item.uid))
		return;
	if (body->type == IMAP_ARG_STRING) {
		append_string(m, &item, body);
		return;
	}
	/* NIL: the server cannot deliver it now (expunged meanwhile, or
	 * broken).  Going on would commit past it and lose it for good; the
	 * next sync asks again. */
	mirror_fail(m, SESSION_ERR_PROTOCOL, "UID %u: the server sent no body "
	    "(%s NIL)", item.uid, "BODY[]");
}

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

static void
on_batch_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct mirror *m = arg;
	struct batch b;
	char text[ERROR_TEXT_MAX];
	uint64_t size;

	(void)s;
	if (!pop_batch(m, tagged->tag, &b)) {
		mirror_fail(m, SESSION_ERR_PROTOCOL, "UID FETCH %s completed "
		    "twice", tagged->tag);
		return;
	}
	if (m->examine_failed || m->fetch_stale) {
		/* Only a direct fetch is ever stale, and it appended nothing. */
		pipelined_fetch_void(m);
		return;
	}
	if (tagged->status != IMAP_STATUS_OK) {
		mirror_fail(m, SESSION_ERR_SERVER, "UID FETCH failed: %s",
		    tagged_text(tagged, text, sizeof text));
		return;
	}
	if (!b.open) {
		size_t missing = 0;
		uint32_t first_missing = 0;

		for (size_t i = b.first; i < b.first + b.n; i++)
			if (!uid_in(m->got, m->n_got, m->todo[i], NULL) &&
			    missing++ == 0)
				first_missing = m->todo[i];
		/*
		 * Usually expunged since the sizes were asked for; but a
		 * server may also drop a message it still has.  Committing
		 * past it would lose it for good, so keep nothing of this
		 * batch: the next sync asks again, and finds out.
		 */
		if (missing > 0) {
			mirror_fail(m, SESSION_ERR_SERVER, "the server sent %zu "
			    "of the %zu messages asked for (UID %u missing); "
			    "nothing of this batch is kept, the next sync asks "
			    "again", b.n - missing, b.n, first_missing);
			return;
		}
	}
	if (!appended_contiguous(m) || commit_can_wait(m)) {
		/* A later batch's OK commits it all. */
		report_progress(m);
		send_batches(m);
		return;
	}
	/* The commit protocol: the mbox is durable before the state says
	 * so. */
	if (mbox_commit(m->mbox, &size) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "%s", mbox_error(m->mbox));
		return;
	}
	m->last_commit = ev_now(m->loop);
	m->ms->last_uid = m->appended_max;
	m->ms->mbox_size = size;
	m->ms->messages += m->batch_appended;
	/* Only what is committed counts as mirrored in the result. */
	m->result.messages += m->batch_appended;
	m->result.bytes += m->batch_bytes;
	m->batch_appended = 0;
	m->batch_bytes = 0;
	if (save_state(m) != 0)
		return;
	report_progress(m);
	if (m->next_todo < m->n_todo)
		send_batches(m);
	else if (m->in_flight == 0)
		mailbox_done(m);
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
	if (make_output(account->output) != 0) {
		mirror_fail(m, SESSION_ERR_LOCAL, "cannot create %s: %s",
		    account->output, strerror(errno));
		return m;
	}
	m->session = session_new(loop, account, config->timeout,
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
	free(m->got);
	state_clear(&m->state);
	state_unlock(&m->state_lock_fd);
	free(m->state_dir);
	if (m->spool_fd >= 0)
		close(m->spool_fd);
	free(m);
}
