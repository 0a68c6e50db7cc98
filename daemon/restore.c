/*
 * --restore (see restore.h): one session to the target server, one state
 * machine: LIST, CREATE what is missing, then per mailbox EXAMINE and one
 * FETCH of what the target holds, the decisions (mirror/restore_plan.h),
 * and pipelined APPENDs whose literals are read from the source mbox as
 * the connection takes them (mbox/decode.h).
 */
#include "restore.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ev.h>

#include "imap/writer.h"
#include "log.h"
#include "mbox/decode.h"
#include "mbox/mbox.h"
#include "mirror/account_session.h"
#include "mirror/msgindex.h"
#include "mirror/names.h"
#include "mirror/restore_plan.h"
#include "mirror/state.h"
#include "net/transport.h"
#include "util/hash.h"
#include "util/num.h"

/* APPENDs in flight at most, and the journal's "sending" records written
 * (and synced) ahead of them at once. */
#define APPEND_WINDOW 32
/* Raw mbox bytes read per piece while decoding. */
#define READ_CHUNK (64 * 1024)
#define PROGRESS_SECS 5.0
#define MESSAGE_ID_MAX 998

enum rstate {
	RS_CONNECTING,
	RS_LISTING,
	RS_CREATING,
	RS_EXAMINING,
	RS_SCANNING,
	RS_APPENDING,
	RS_LOGOUT,
	RS_DONE,
};

static const char *const rstate_names[] = {
	"connecting", "listing", "creating", "examining", "scanning",
	"appending", "logout", "done",
};

struct rmsg {
	struct msgindex_entry e;
	enum restore_mark mark;		/* in the journal at the start */
	enum restore_action action;
};

struct rbox {
	struct restorer *r;
	char *raw;		/* the source server's name */
	char *display;		/* UTF-8, for people */
	char *file;		/* relative to the source output */
	char *mbox_path;
	uint64_t mbox_size;	/* committed, as the source's state says */
	uint64_t box_hash;	/* names it in the journal */
	char src_delim;
	char *target;		/* the name on the target; NULL: none */
	bool exists;		/* on the target */
	uint32_t target_messages;	/* EXISTS of its EXAMINE */
	struct rmsg *msgs;	/* loaded while its turn lasts */
	size_t n;		/* messages (also when msgs is freed) */
	bool rebuilt;		/* its index was rebuilt from the mbox */
	int fd;
	/* Outcome. */
	size_t n_upload, n_done, n_present, n_sent, n_ok, n_failed;
	uint64_t upload_bytes, ok_bytes;
	size_t next;		/* the next message to consider */
	bool failed;		/* as a whole (create, examine) */
};

/* One APPEND: the literal's reader and the done callback's argument. */
struct append {
	struct append *next, **prevp;	/* the restorer's list of them */
	struct restorer *r;
	struct rbox *b;
	struct rmsg *m;
	uint64_t literal_len;
	bool drop_added;
	struct mbox_decoder dec;
	uint64_t raw_pos;	/* entry bytes read */
	bool ended;		/* mbox_decode_end() called */
	unsigned char *pend;	/* decoded bytes not yet handed out */
	size_t pend_len, pend_off, pend_cap;
};

struct restorer {
	struct ev_loop *loop;
	const struct config *config;
	const struct account *src, *dst;
	const struct restore_options *o;
	char *src_dir;		/* the source account's state */
	enum rstate state;
	struct session *s;
	struct rbox *boxes;
	size_t n_boxes, cur;
	char target_delim;
	bool have_delim;
	struct names_patterns patterns;	/* --mailbox */
	struct restore_present present;
	char **listed;		/* the target's selectable mailboxes */
	size_t n_listed, cap_listed;
	/* The journal. */
	char *journal_path;
	int journal_fd;
	size_t journal_keep;	/* bytes up to its last whole line */
	bool journal_dirty;	/* "done" records not synced yet */
	struct restore_journal journal;
	int lock_fd;
	unsigned pending;	/* CREATE/APPEND answers awaited */
	struct append *appends;	/* queued, not answered (freed at the end
				 * if the session ends first) */
	/* Progress. */
	ev_timer progress;
	ev_tstamp started, box_started;
	uint64_t todo_bytes, sent_bytes, box_sent_bytes;
	size_t todo_msgs, sent_msgs;
	bool failed;		/* something is not on the target */
	bool aborted;		/* the session ended in error */
	unsigned char *raw;	/* READ_CHUNK */
};

static void next_box(struct restorer *);
static void refill(struct restorer *);

static void
set_state(struct restorer *r, enum rstate state)
{
	log_debug("restore %s -> %s: state %s -> %s", r->src->name,
	    r->dst->name, rstate_names[r->state], rstate_names[state]);
	r->state = state;
}

/* Source side: the mailboxes, their indexes, the journal */

static void
box_free_msgs(struct rbox *b)
{
	if (b->msgs == NULL)
		return;
	for (size_t k = 0; k < b->n; k++)
		free(b->msgs[k].e.keywords);
	free(b->msgs);
	b->msgs = NULL;
}

/*
 * Loads the messages of b from its index (only one mailbox's at a time:
 * memory follows the largest mailbox, not the account).  0, or -1 (said).
 */
static int
load_box_index(struct restorer *r, struct rbox *b)
{
	struct msgindex_list l = { 0 };
	char *path, *error = NULL;
	int ret;

	b->n = 0;
	if ((path = msgindex_path(r->src_dir, b->file)) == NULL)
		return -1;
	ret = msgindex_load(path, b->file, &l, &error);
	free(path);
	if (ret == 1) {
		if (!b->rebuilt)
			log_info("account %s: mailbox %s has no message index: "
			    "read through one rebuilt from its mbox (flags "
			    "and keywords unknown: none are set; "
			    "INTERNALDATE from the From_ line, in UTC)",
			    r->src->name, b->display);
		b->rebuilt = true;
		ret = msgindex_rebuild(b->mbox_path, b->mbox_size, &l,
		    &error);
	}
	if (ret != 0) {
		log_error("account %s: mailbox %s: %s", r->src->name,
		    b->display, error != NULL ? error : "out of memory");
		free(error);
		return -1;
	}
	if ((b->msgs = calloc(l.n > 0 ? l.n : 1, sizeof *b->msgs)) == NULL) {
		log_error("account %s: mailbox %s: out of memory",
		    r->src->name, b->display);
		msgindex_list_free(&l);
		return -1;
	}
	for (size_t i = 0; i < l.n; i++) {
		/* The index may run ahead of the state after a crash: only
		 * what the state committed is the mirror. */
		if (l.v[i].offset + l.v[i].length > b->mbox_size)
			continue;
		b->msgs[b->n].e = l.v[i];
		l.v[i].keywords = NULL;
		b->n++;
	}
	msgindex_list_free(&l);
	return 0;
}

static bool
box_selected(const struct restorer *r, const struct rbox *b)
{
	return names_decide(&r->patterns, b->display, b->src_delim, NULL,
	    NULL);
}

/* A --mailbox pattern that matches no mirrored mailbox is a mistake: the
 * user asked for mail that is not there.  True when every one matched. */
static bool
patterns_all_matched(const struct restorer *r)
{
	bool all = true;

	for (size_t i = 0; i < r->o->n_mailboxes; i++) {
		if (r->patterns.include_hit == NULL ||
		    r->patterns.include_hit[i])
			continue;
		log_error("restore %s -> %s: --mailbox \"%s\" matches no "
		    "mailbox mirrored for account %s", r->src->name,
		    r->dst->name, r->o->mailboxes[i], r->src->name);
		all = false;
	}
	return all;
}

/* INBOX first, then by name: the order a mail reader shows. */
static int
box_order(const void *x, const void *y)
{
	const struct rbox *a = x, *b = y;
	bool ai = strcmp(a->raw, "INBOX") == 0, bi = strcmp(b->raw,
	    "INBOX") == 0;

	if (ai != bi)
		return ai ? -1 : 1;
	return strcmp(a->display, b->display);
}

/* What is left to do for b, for the progress lines' totals. */
static void
count_todo(struct restorer *r, const struct rbox *b)
{
	for (size_t k = 0; k < b->n; k++) {
		const struct rmsg *m = &b->msgs[k];

		if (restore_journal_find(&r->journal, b->box_hash, m->e.offset,
		    m->e.length) == RESTORE_MARK_DONE)
			continue;
		r->todo_msgs++;
		r->todo_bytes += m->e.size;
	}
}

static int
load_source(struct restorer *r)
{
	struct account_state st = { 0 };
	char *error = NULL;
	bool said = false;
	int ret = -1;

	if ((r->src_dir = state_account_dir(r->config->state_dir,
	    r->src->name)) == NULL)
		goto out;
	if (state_load(r->src_dir, &st, &error) != 0) {
		log_error("account %s: %s", r->src->name, error);
		goto out;
	}
	if ((r->boxes = calloc(st.n_mailboxes + 1, sizeof *r->boxes)) == NULL)
		goto out;
	for (size_t i = 0; i < st.n_mailboxes; i++) {
		const struct mailbox_state *ms = &st.mailboxes[i];
		struct rbox *b = &r->boxes[r->n_boxes];

		if (ms->file == NULL)
			continue;
		b->fd = -1;
		b->r = r;
		b->mbox_size = ms->mbox_size;
		b->raw = strdup(ms->name);
		b->file = strdup(ms->file);
		b->display = imap_utf7_decode(ms->name, strlen(ms->name));
		if (b->display == NULL)
			b->display = strdup(ms->name);
		if (asprintf(&b->mbox_path, "%s/%s", r->src->output,
		    ms->file) < 0)
			b->mbox_path = NULL;
		r->n_boxes++;
		if (b->raw == NULL || b->file == NULL || b->display == NULL ||
		    b->mbox_path == NULL)
			goto out;
		log_sanitize(b->display);
		b->box_hash = hash_fnv1a64(b->raw, strlen(b->raw));
		b->src_delim = restore_source_delimiter(b->raw, b->file);
		if (!box_selected(r, b)) {
			r->n_boxes--;
			free(b->raw);
			free(b->file);
			free(b->display);
			free(b->mbox_path);
			memset(b, 0, sizeof *b);
			continue;
		}
		if (load_box_index(r, b) != 0) {
			said = true;
			goto out;
		}
		count_todo(r, b);
		box_free_msgs(b);
	}
	if (r->n_boxes > 1)
		qsort(r->boxes, r->n_boxes, sizeof *r->boxes, box_order);
	ret = 0;
out:
	if (ret != 0 && error == NULL && !said)
		log_error("account %s: cannot read the mirror (out of memory)",
		    r->src->name);
	free(error);
	state_clear(&st);
	return ret;
}

static int
load_journal(struct restorer *r, const char *dst_dir)
{
	char name[64], *buf = NULL, *error = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	snprintf(name, sizeof name, "restore-%016" PRIx64,
	    hash_fnv1a64(r->src->name, strlen(r->src->name)));
	if (asprintf(&r->journal_path, "%s/%s", dst_dir, name) < 0) {
		r->journal_path = NULL;
		return -1;
	}
	fd = open(r->journal_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		log_error("%s: %s", r->journal_path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (nb == NULL) {
				free(buf);
				close(fd);
				return -1;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (n == -1) {
		log_error("%s: %s", r->journal_path, strerror(errno));
		free(buf);
		return -1;
	}
	if (restore_journal_parse(buf, len, r->journal_path, &r->journal,
	    &error) != 0) {
		log_error("%s (remove it to start the restore afresh)", error);
		free(error);
		free(buf);
		return -1;
	}
	/* A line cut short by a kill was never acted on: cut on opening. */
	while (len > 0 && buf[len - 1] != '\n')
		len--;
	r->journal_keep = len < sizeof RESTORE_JOURNAL_HEADER - 1 ? 0 : len;
	free(buf);
	return 0;
}

static int
journal_write(struct restorer *r, const char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(r->journal_fd, data, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("%s: write: %s", r->journal_path,
			    n == 0 ? "no progress" : strerror(errno));
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
open_journal(struct restorer *r)
{
	struct stat st;

	r->journal_fd = open(r->journal_path, O_WRONLY | O_APPEND | O_CREAT |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (r->journal_fd == -1 || fstat(r->journal_fd, &st) != 0) {
		log_error("%s: %s", r->journal_path, strerror(errno));
		return -1;
	}
	/* What a kill cut short goes (with O_APPEND, writes follow). */
	if ((uint64_t)st.st_size > r->journal_keep &&
	    ftruncate(r->journal_fd, (off_t)r->journal_keep) != 0) {
		log_error("%s: ftruncate: %s", r->journal_path,
		    strerror(errno));
		return -1;
	}
	if (r->journal_keep == 0)
		return journal_write(r, RESTORE_JOURNAL_HEADER,
		    sizeof RESTORE_JOURNAL_HEADER - 1);
	return 0;
}

static int
journal_sync(struct restorer *r)
{
	if (fdatasync(r->journal_fd) != 0) {
		log_error("%s: fdatasync: %s", r->journal_path,
		    strerror(errno));
		return -1;
	}
	r->journal_dirty = false;
	return 0;
}

static int
journal_mark(struct restorer *r, const struct rbox *b, const struct rmsg *m,
    enum restore_mark mark, uint32_t uidvalidity, uint32_t uid)
{
	struct restore_record rec = {
		.box = b->box_hash, .offset = m->e.offset,
		.length = m->e.length, .mark = mark,
		.uidvalidity = uidvalidity, .uid = uid,
	};
	char line[RESTORE_LINE_MAX];

	return journal_write(r, line, restore_journal_line(line, &rec));
}

/* Reading a message back from the source mbox */

static int
box_open(struct restorer *r, struct rbox *b)
{
	if (b->fd != -1)
		return 0;
	/* Read only, no lock: a sync of the source appends past the
	 * committed size and never changes what is below it. */
	b->fd = open(b->mbox_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (b->fd == -1) {
		log_error("account %s: mailbox %s: %s: %s", r->src->name,
		    b->display, b->mbox_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Up to len bytes of the entry at pos into r->raw: >0, or -1 (logged). */
static ssize_t
read_entry(struct restorer *r, struct rbox *b, const struct rmsg *m,
    uint64_t pos)
{
	uint64_t left = m->e.length - pos;
	size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
	ssize_t n;

	do
		n = pread(b->fd, r->raw, want, (off_t)(m->e.offset + pos));
	while (n == -1 && errno == EINTR);
	if (n <= 0) {
		log_error("account %s: mailbox %s: %s: read at %" PRIu64 ": %s",
		    r->src->name, b->display, b->mbox_path, m->e.offset + pos,
		    n == 0 ? "the file ends before the indexed entry" :
		    strerror(errno));
		return -1;
	}
	return n;
}

static int
count_out(void *arg, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return 0;
}

/*
 * The first pass over an entry: that it starts like one, and how long it
 * decodes (the literal's size must be known before its first byte).
 */
static int
measure(struct restorer *r, struct rbox *b, struct append *a)
{
	struct mbox_decoder d;
	uint64_t pos = 0, full;
	ssize_t n;

	mbox_decode_init(&d, count_out, NULL);
	while (pos < a->m->e.length) {
		if ((n = read_entry(r, b, a->m, pos)) == -1)
			return -1;
		if (pos == 0 && (n < 5 || memcmp(r->raw, "From ", 5) != 0)) {
			log_error("account %s: mailbox %s: no entry at offset "
			    "%" PRIu64 " of %s: the mbox changed since it was "
			    "indexed", r->src->name, b->display,
			    a->m->e.offset, b->mbox_path);
			return -1;
		}
		(void)mbox_decode_write(&d, r->raw, (size_t)n);
		pos += (uint64_t)n;
	}
	(void)mbox_decode_end(&d, false);
	full = mbox_decode_size(&d);
	a->drop_added = mbox_decode_drop_added(full, a->m->e.size);
	a->literal_len = a->drop_added ? full - 2 : full;
	if (a->literal_len != a->m->e.size)
		log_warnx("account %s: mailbox %s: the message at offset %"
		    PRIu64 " reads back as %" PRIu64 " bytes, not the %" PRIu64
		    " the server reported (lone LFs come back as CRLF)",
		    r->src->name, b->display, a->m->e.offset, a->literal_len,
		    a->m->e.size);
	return 0;
}

static int
pend_out(void *arg, const void *data, size_t len)
{
	struct append *a = arg;

	if (a->pend_len + len > a->pend_cap) {
		size_t cap = a->pend_cap ? a->pend_cap : 2 * READ_CHUNK;
		unsigned char *p;

		while (cap < a->pend_len + len)
			cap *= 2;
		if ((p = realloc(a->pend, cap)) == NULL)
			return -1;
		a->pend = p;
		a->pend_cap = cap;
	}
	memcpy(a->pend + a->pend_len, data, len);
	a->pend_len += len;
	return 0;
}

/* The literal of an APPEND, decoded from the mbox as the session asks. */
static ssize_t
body_read(void *arg, void *buf, size_t size)
{
	struct append *a = arg;
	struct restorer *r = a->r;
	size_t n;
	ssize_t got;

	while (a->pend_off == a->pend_len) {
		a->pend_off = a->pend_len = 0;
		if (a->raw_pos < a->m->e.length) {
			if ((got = read_entry(r, a->b, a->m, a->raw_pos)) == -1)
				return -1;
			a->raw_pos += (uint64_t)got;
			if (mbox_decode_write(&a->dec, r->raw, (size_t)got) != 0)
				return -1;
		} else if (!a->ended) {
			a->ended = true;
			if (mbox_decode_end(&a->dec, a->drop_added) != 0)
				return -1;
		} else {
			return -1;
		}
	}
	n = a->pend_len - a->pend_off;
	if (n > size)
		n = size;
	memcpy(buf, a->pend + a->pend_off, n);
	a->pend_off += n;
	r->sent_bytes += n;
	r->box_sent_bytes += n;
	return (ssize_t)n;
}

static struct append *
append_new(struct restorer *r, struct rbox *b, struct rmsg *m)
{
	struct append *a;

	if ((a = calloc(1, sizeof *a)) == NULL)
		return NULL;
	a->r = r;
	a->b = b;
	a->m = m;
	mbox_decode_init(&a->dec, pend_out, a);
	a->next = r->appends;
	if (a->next != NULL)
		a->next->prevp = &a->next;
	a->prevp = &r->appends;
	r->appends = a;
	return a;
}

static void
append_free(struct append *a)
{
	if (a->next != NULL)
		a->next->prevp = a->prevp;
	*a->prevp = a->next;
	free(a->pend);
	free(a);
}

/* Session events */

static void
on_failed(struct session *s, enum session_error error, const char *message,
    void *arg)
{
	struct restorer *r = arg;

	(void)s;
	log_error("account %s: %s: %s", r->dst->name,
	    session_error_name(error), message);
	r->aborted = r->failed = true;
	set_state(r, RS_DONE);
	ev_break(r->loop, EVBREAK_ALL);
}

static void
on_closed(struct session *s, void *arg)
{
	struct restorer *r = arg;

	(void)s;
	set_state(r, RS_DONE);
	ev_break(r->loop, EVBREAK_ALL);
}

static void
finish(struct restorer *r)
{
	if (r->journal_fd != -1 && r->journal_dirty && journal_sync(r) != 0)
		r->failed = true;
	set_state(r, RS_LOGOUT);
	session_logout(r->s);
}

static void
abort_local(struct restorer *r, const char *what)
{
	r->failed = true;
	session_abort(r->s, SESSION_ERR_LOCAL, "%s", what);
}

static void
box_done(struct restorer *r)
{
	struct rbox *b = &r->boxes[r->cur];

	if (b->fd != -1) {
		close(b->fd);
		b->fd = -1;
	}
	box_free_msgs(b);
	if (b->n_failed > 0)
		r->failed = true;
	r->cur++;
	next_box(r);
}

/* What to do with each message of the current mailbox. */
static void
decide_box(struct restorer *r)
{
	struct rbox *b = &r->boxes[r->cur];

	for (size_t i = 0; i < b->n; i++) {
		struct rmsg *m = &b->msgs[i];

		m->action = restore_decide(m->mark, &r->present,
		    m->e.message_id_hash, m->e.size, m->e.internaldate);
		switch (m->action) {
		case RESTORE_UPLOAD:
			b->n_upload++;
			b->upload_bytes += m->e.size;
			break;
		case RESTORE_SKIP_DONE:
			b->n_done++;
			break;
		case RESTORE_SKIP_PRESENT:
			b->n_present++;
			break;
		case RESTORE_SKIP_SENT:
			b->n_sent++;
			break;
		}
		if (m->action != RESTORE_UPLOAD && m->action !=
		    RESTORE_SKIP_DONE) {
			r->todo_bytes -= m->e.size;
			r->todo_msgs--;
		}
		log_debug("restore %s -> %s: mailbox %s: offset %" PRIu64
		    ": %s", r->src->name, r->dst->name, b->display,
		    m->e.offset, restore_action_name(m->action));
	}
	restore_present_free(&r->present);
	if (r->o->dry_run || b->n_upload == 0) {
		box_done(r);
		return;
	}
	if (box_open(r, b) != 0) {
		b->n_failed = b->n_upload;
		box_done(r);
		return;
	}
	set_state(r, RS_APPENDING);
	r->box_started = ev_now(r->loop);
	r->box_sent_bytes = 0;
	b->next = 0;
	refill(r);
}

static void
on_append_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct append *a = arg;
	struct restorer *r = a->r;
	struct rbox *b = a->b;
	uint32_t uidvalidity = 0, uid = 0;
	char text[512];

	(void)s;
	r->pending--;
	if (tagged->status == IMAP_STATUS_OK) {
		if (tagged->code != NULL && strcmp(tagged->code,
		    "APPENDUID") == 0 && tagged->code_nargs >= 2 &&
		    (imap_arg_uint32(&tagged->code_args[0], &uidvalidity) != 0 ||
		    imap_arg_uint32(&tagged->code_args[1], &uid) != 0))
			uidvalidity = uid = 0;
		if (journal_mark(r, b, a->m, RESTORE_MARK_DONE, uidvalidity,
		    uid) != 0) {
			append_free(a);
			abort_local(r, "cannot write the restore journal");
			return;
		}
		r->journal_dirty = true;
		b->n_ok++;
		b->ok_bytes += a->literal_len;
		r->sent_msgs++;
	} else {
		log_error("account %s: mailbox %s: APPEND of the message at "
		    "offset %" PRIu64 " of %s failed: %s", r->dst->name,
		    b->display, a->m->e.offset, b->mbox_path,
		    imap_response_text(tagged, text, sizeof text));
		b->n_failed++;
		r->failed = true;
	}
	append_free(a);
	refill(r);
}

static int
send_append(struct restorer *r, struct rbox *b, struct append *a)
{
	char date[RESTORE_DATE_MAX], *flags;
	struct imap_cmd cmd;
	size_t dropped = 0;

	flags = restore_format_flags(a->m->e.flags & ~MSGINDEX_REBUILT,
	    a->m->e.keywords, &dropped);
	if (flags == NULL)
		return -1;
	if (dropped > 0)
		log_warnx("account %s: mailbox %s: %zu keyword%s of the "
		    "message at offset %" PRIu64 " cannot be sent, left out",
		    r->src->name, b->display, dropped, dropped == 1 ? "" : "s",
		    a->m->e.offset);
	session_cmd_init(r->s, &cmd, "APPEND");
	imap_cmd_add_string(&cmd, b->target, strlen(b->target),
	    session_literal_mode(r->s));
	imap_cmd_add_raw(&cmd, "(%s)", flags);
	imap_cmd_add_raw(&cmd, "\"%s\"", restore_format_date(date,
	    a->m->e.internaldate, a->m->e.tz_minutes));
	free(flags);
	return session_send_literal(r->s, &cmd, a->literal_len, body_read,
	    NULL, on_append_done, a);
}

/*
 * Keeps up to APPEND_WINDOW APPENDs in flight: the next messages to
 * upload are marked "sending" in the journal, synced once, then sent.
 * Refilled when half the window is answered, so one fdatasync covers many
 * messages.
 */
static void
refill(struct restorer *r)
{
	struct rbox *b = &r->boxes[r->cur];
	struct append *batch[APPEND_WINDOW];
	size_t nb = 0;

	if (r->state != RS_APPENDING || r->pending > APPEND_WINDOW / 2)
		return;
	while (b->next < b->n && r->pending + nb < APPEND_WINDOW) {
		struct rmsg *m = &b->msgs[b->next++];
		struct append *a;

		if (m->action != RESTORE_UPLOAD)
			continue;
		if ((a = append_new(r, b, m)) == NULL) {
			abort_local(r, "out of memory");
			goto fail;
		}
		if (measure(r, b, a) != 0) {
			b->n_failed++;
			r->failed = true;
			append_free(a);
			continue;
		}
		batch[nb++] = a;
		if (journal_mark(r, b, m, RESTORE_MARK_SENDING, 0, 0) != 0) {
			abort_local(r, "cannot write the restore journal");
			goto fail;
		}
	}
	if (nb == 0) {
		if (r->pending == 0)
			box_done(r);
		return;
	}
	/* "sending" is durable before the first byte of these APPENDs. */
	if (journal_sync(r) != 0) {
		abort_local(r, "cannot sync the restore journal");
		goto fail;
	}
	for (size_t i = 0; i < nb; i++) {
		if (send_append(r, b, batch[i]) != 0) {
			for (size_t k = i; k < nb; k++)
				append_free(batch[k]);
			abort_local(r, "cannot queue APPEND");
			return;
		}
		r->pending++;
	}
	return;
fail:
	for (size_t i = 0; i < nb; i++)
		append_free(batch[i]);
}

/* What the target mailbox holds */

static void
on_scan_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct restorer *r = arg;
	struct imap_fetch_item item;
	const struct imap_arg *items;
	char id[MESSAGE_ID_MAX + 1];
	uint64_t hash = 0;
	size_t n, len;

	if (resp->keyword == NULL || strcmp(resp->keyword, "FETCH") != 0 ||
	    resp->nargs < 1 || resp->args[0].type != IMAP_ARG_LIST)
		return;
	items = resp->args[0].list;
	n = resp->args[0].count;
	if (imap_fetch_decode(resp->number, items, n, &item) != 0 ||
	    !item.has_size || !item.has_internaldate)
		return;
	for (size_t i = 0; i + 1 < n; i += 2) {
		const char *name = imap_arg_string(&items[i]);
		const struct imap_arg *v = &items[i + 1];

		if (name == NULL || strncasecmp(name, "BODY[HEADER.FIELDS",
		    18) != 0 || v->type != IMAP_ARG_STRING)
			continue;
		len = restore_message_id(v->str, v->len, id, sizeof id);
		hash = len > 0 ? mbox_message_id_hash(id, len) : 0;
	}
	if (restore_present_add(&r->present, hash, item.size,
	    (int64_t)item.internaldate) != 0)
		session_abort(s, SESSION_ERR_LOCAL, "out of memory");
}

static void
on_scan_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct restorer *r = arg;
	struct rbox *b = &r->boxes[r->cur];
	char text[512];

	(void)s;
	if (tagged->status != IMAP_STATUS_OK) {
		log_error("account %s: mailbox %s: FETCH failed: %s",
		    r->dst->name, b->display,
		    imap_response_text(tagged, text, sizeof text));
		b->failed = r->failed = true;
		restore_present_free(&r->present);
		box_done(r);
		return;
	}
	restore_present_sort(&r->present);
	decide_box(r);
}

static void
on_examine_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct restorer *r = arg;

	(void)s;
	if (resp->keyword != NULL && strcmp(resp->keyword, "EXISTS") == 0 &&
	    resp->has_number)
		r->boxes[r->cur].target_messages = resp->number;
}

static void
on_examine_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct restorer *r = arg;
	struct rbox *b = &r->boxes[r->cur];
	struct imap_cmd cmd;
	char text[512];

	if (tagged->status != IMAP_STATUS_OK) {
		log_error("account %s: mailbox %s: EXAMINE failed: %s",
		    r->dst->name, b->display,
		    imap_response_text(tagged, text, sizeof text));
		b->failed = r->failed = true;
		box_done(r);
		return;
	}
	if (b->target_messages == 0) {
		decide_box(r);
		return;
	}
	set_state(r, RS_SCANNING);
	/* One pass over the target mailbox, however many messages. */
	session_cmd_init(s, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "1:* (UID RFC822.SIZE INTERNALDATE "
	    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
	if (session_send(s, &cmd, on_scan_untagged, on_scan_done, r) != 0)
		abort_local(r, "cannot queue FETCH");
}

/* The next mailbox with something to do: EXAMINE it on the target. */
static void
next_box(struct restorer *r)
{
	struct imap_cmd cmd;
	struct rbox *b;
	bool all_done = true;

	for (; r->cur < r->n_boxes; r->cur++) {
		b = &r->boxes[r->cur];
		if (b->failed)
			continue;
		if (load_box_index(r, b) == 0)
			break;
		b->failed = r->failed = true;
	}
	if (r->cur == r->n_boxes) {
		finish(r);
		return;
	}
	b = &r->boxes[r->cur];
	for (size_t i = 0; i < b->n; i++) {
		b->msgs[i].mark = restore_journal_find(&r->journal,
		    b->box_hash, b->msgs[i].e.offset, b->msgs[i].e.length);
		if (b->msgs[i].mark != RESTORE_MARK_DONE)
			all_done = false;
	}
	/* Not on the target (only in a dry run: it would be created,
	 * empty), or nothing left to look for there. */
	if (!b->exists || all_done) {
		decide_box(r);
		return;
	}
	set_state(r, RS_EXAMINING);
	b->target_messages = 0;
	session_cmd_init(r->s, &cmd, "EXAMINE");
	imap_cmd_add_string(&cmd, b->target, strlen(b->target),
	    session_literal_mode(r->s));
	if (session_send(r->s, &cmd, on_examine_untagged, on_examine_done,
	    r) != 0)
		abort_local(r, "cannot queue EXAMINE");
}

/* Mailboxes on the target */

static void
on_create_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct rbox *b = arg;
	struct restorer *r = b->r;
	char text[512];

	(void)s;
	r->pending--;
	if (tagged->status == IMAP_STATUS_OK || (tagged->code != NULL &&
	    strcmp(tagged->code, "ALREADYEXISTS") == 0)) {
		b->exists = true;
		log_info("account %s: created mailbox %s", r->dst->name,
		    b->display);
	} else {
		log_error("account %s: mailbox %s: CREATE %s failed: %s",
		    r->dst->name, b->display, b->target,
		    imap_response_text(tagged, text, sizeof text));
		b->failed = r->failed = true;
	}
	if (r->pending == 0) {
		r->cur = 0;
		next_box(r);
	}
}

static void
on_list_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct restorer *r = arg;
	struct imap_list_item item;
	char **v;

	if (resp->keyword == NULL || strcmp(resp->keyword, "LIST") != 0 ||
	    imap_list_decode(resp, &item) != 0)
		return;
	/* The delimiter of the first that has one (Dovecot: every one). */
	if (!r->have_delim || (r->target_delim == '\0' &&
	    item.delimiter != '\0')) {
		r->target_delim = item.delimiter;
		r->have_delim = true;
	}
	if ((item.flags & IMAP_LIST_NOSELECT) != 0 ||
	    memchr(item.name, '\0', item.name_len) != NULL)
		return;
	if (r->n_listed == r->cap_listed) {
		size_t cap = r->cap_listed ? r->cap_listed * 2 : 64;

		if ((v = reallocarray(r->listed, cap, sizeof *v)) == NULL) {
			session_abort(s, SESSION_ERR_LOCAL, "out of memory");
			return;
		}
		r->listed = v;
		r->cap_listed = cap;
	}
	if ((r->listed[r->n_listed] = strndup(item.name,
	    item.name_len)) == NULL) {
		session_abort(s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	r->n_listed++;
}

static bool
target_listed(const struct restorer *r, const char *name)
{
	for (size_t i = 0; i < r->n_listed; i++)
		if (strcmp(r->listed[i], name) == 0 ||
		    (strcasecmp(name, "INBOX") == 0 &&
		    strcasecmp(r->listed[i], "INBOX") == 0))
			return true;
	return false;
}

static void
on_list_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct restorer *r = arg;
	struct imap_cmd cmd;
	char text[512];
	int ret;

	if (tagged->status != IMAP_STATUS_OK) {
		log_error("account %s: LIST failed: %s", r->dst->name,
		    imap_response_text(tagged, text, sizeof text));
		r->failed = true;
		finish(r);
		return;
	}
	set_state(r, RS_CREATING);
	for (size_t i = 0; i < r->n_boxes; i++) {
		struct rbox *b = &r->boxes[i];

		ret = restore_target_name(b->raw, b->src_delim,
		    r->target_delim, &b->target);
		if (ret == -1) {
			abort_local(r, "out of memory");
			return;
		}
		if (ret == 1) {
			log_error("account %s: mailbox %s cannot be named on "
			    "%s, whose hierarchy delimiter is '%c'",
			    r->src->name, b->display, r->dst->name,
			    r->target_delim != '\0' ? r->target_delim : ' ');
			b->failed = r->failed = true;
			continue;
		}
		b->exists = target_listed(r, b->target);
		if (b->exists || r->o->dry_run)
			continue;
		session_cmd_init(s, &cmd, "CREATE");
		imap_cmd_add_string(&cmd, b->target, strlen(b->target),
		    session_literal_mode(s));
		if (session_send(s, &cmd, NULL, on_create_done, b) != 0) {
			abort_local(r, "cannot queue CREATE");
			return;
		}
		r->pending++;
	}
	if (r->pending == 0) {
		r->cur = 0;
		next_box(r);
	}
}

static void
on_ready(struct session *s, void *arg)
{
	struct restorer *r = arg;
	struct imap_cmd cmd;

	set_state(r, RS_LISTING);
	r->started = ev_now(r->loop);
	ev_timer_again(r->loop, &r->progress);
	session_cmd_init(s, &cmd, "LIST");
	imap_cmd_add_raw(&cmd, "\"\" \"*\"");
	if (session_send(s, &cmd, on_list_untagged, on_list_done, r) != 0)
		abort_local(r, "cannot queue LIST");
}

static void
on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct restorer *r = w->data;
	struct rbox *b;
	ev_tstamp box_elapsed, elapsed = ev_now(loop) - r->started;
	double rate, box_left = 0, left = 0;

	(void)revents;
	if (r->state != RS_APPENDING || r->cur >= r->n_boxes || elapsed <= 0)
		return;
	b = &r->boxes[r->cur];
	box_elapsed = ev_now(loop) - r->box_started;
	rate = box_elapsed > 0 ? r->box_sent_bytes / box_elapsed : 0;
	if (b->upload_bytes > r->box_sent_bytes)
		box_left = (double)(b->upload_bytes - r->box_sent_bytes);
	if (r->todo_bytes > r->sent_bytes)
		left = (double)(r->todo_bytes - r->sent_bytes);
	log_info("restore %s -> %s: mailbox %s: %zu/%zu messages, %.1f/%.1f "
	    "MB, %.2f MB/s, about %.0fs left; all: %zu/%zu %s, %.1f/%.1f MB, "
	    "about %.0fs left", r->src->name, r->dst->name, b->display,
	    b->n_ok, b->n_upload, r->box_sent_bytes / 1e6,
	    b->upload_bytes / 1e6, rate / 1e6, rate > 0 ? box_left / rate : 0,
	    r->sent_msgs, r->todo_msgs, num_plural(r->todo_msgs, "message",
	    "messages"), r->sent_bytes / 1e6, r->todo_bytes / 1e6,
	    rate > 0 ? left / rate : 0);
}

/* The summary */

static void
print_summary(const struct restorer *r)
{
	size_t up = 0, done = 0, present = 0, failed = 0, todo = 0;
	uint64_t bytes = 0, todo_bytes = 0;

	printf("restore %s -> %s%s: %zu mailbox%s\n", r->src->name,
	    r->dst->name, r->o->dry_run ? " (dry run: nothing changed)" : "",
	    r->n_boxes, r->n_boxes == 1 ? "" : "es");
	for (size_t i = 0; i < r->n_boxes; i++) {
		const struct rbox *b = &r->boxes[i];
		size_t not_sent = b->n_upload > b->n_ok + b->n_failed ?
		    b->n_upload - b->n_ok - b->n_failed : 0;

		printf("  %s -> %s", b->display, b->target != NULL ?
		    b->target : "-");
		if (b->failed) {
			printf(": not restored (see above)\n");
			failed += b->n;
			continue;
		}
		if (r->o->dry_run) {
			printf("%s: %zu to upload (%.1f MB), %zu already "
			    "there, %zu done before\n", b->exists ? "" :
			    " (to create)", b->n_upload, b->upload_bytes / 1e6,
			    b->n_present + b->n_sent, b->n_done);
			todo += b->n_upload;
			todo_bytes += b->upload_bytes;
			present += b->n_present + b->n_sent;
			done += b->n_done;
			continue;
		}
		printf(": %zu uploaded (%.1f MB), %zu already there, %zu "
		    "done before", b->n_ok, b->ok_bytes / 1e6,
		    b->n_present + b->n_sent, b->n_done);
		if (b->n_failed + not_sent > 0)
			printf(", %zu failed", b->n_failed + not_sent);
		printf("\n");
		up += b->n_ok;
		bytes += b->ok_bytes;
		present += b->n_present + b->n_sent;
		done += b->n_done;
		failed += b->n_failed + not_sent;
	}
	if (r->o->dry_run)
		printf("  total: %zu %s to upload (%.1f MB), %zu already "
		    "there, %zu done before\n", todo, num_plural(todo,
		    "message", "messages"), todo_bytes / 1e6, present, done);
	else
		printf("  total: %zu %s uploaded (%.1f MB), %zu already "
		    "there, %zu done before, %zu failed\n", up,
		    num_plural(up, "message", "messages"), bytes / 1e6,
		    present, done, failed);
	if (r->aborted)
		printf("  the connection ended early: run the same command "
		    "again to go on where it stopped\n");
	fflush(stdout);
}

static void
free_restorer(struct restorer *r)
{
	for (size_t i = 0; i < r->n_boxes; i++) {
		struct rbox *b = &r->boxes[i];

		if (b->fd != -1)
			close(b->fd);
		box_free_msgs(b);
		free(b->raw);
		free(b->display);
		free(b->file);
		free(b->mbox_path);
		free(b->target);
	}
	free(r->boxes);
	while (r->appends != NULL)
		append_free(r->appends);
	for (size_t i = 0; i < r->n_listed; i++)
		free(r->listed[i]);
	free(r->listed);
	restore_present_free(&r->present);
	restore_journal_free(&r->journal);
	free(r->journal_path);
	if (r->journal_fd != -1)
		close(r->journal_fd);
	state_unlock(&r->lock_fd);
	names_patterns_free(&r->patterns);
	free(r->src_dir);
	free(r->raw);
}

/* Takes the target account's run lock: no sync of it meanwhile. */
static int
lock_target(struct restorer *r, const char *dst_dir)
{
	char *error = NULL;
	long holder = 0;
	int ret;

	ret = state_lock(dst_dir, &r->lock_fd, &holder, &error);
	if (ret == 1) {
		log_error("account %s is busy: process %ld holds its lock (a "
		    "sync?); try again when it is done", r->dst->name, holder);
		return -1;
	}
	if (ret != 0) {
		log_error("account %s: %s", r->dst->name, error);
		free(error);
		return -1;
	}
	return 0;
}

static int
run_session(struct restorer *r)
{
	static const struct session_callbacks cb = {
		.ready = on_ready,
		.failed = on_failed,
		.closed = on_closed,
	};

	if (transport_global_init() != 0)
		return -1;
	if ((r->loop = ev_loop_new(EVFLAG_AUTO)) == NULL) {
		transport_global_deinit();
		return -1;
	}
	ev_timer_init(&r->progress, on_progress, PROGRESS_SECS, PROGRESS_SECS);
	r->progress.data = r;
	r->s = account_session_new(r->loop, r->dst, r->config->timeout, &cb,
	    r);
	if (r->s == NULL) {
		log_error("account %s: out of memory", r->dst->name);
		r->failed = true;
	} else if (session_start(r->s) == 0) {
		ev_run(r->loop, 0);
	} else {
		r->failed = true;
	}
	ev_timer_stop(r->loop, &r->progress);
	session_free(&r->s);
	ev_loop_destroy(r->loop);
	transport_global_deinit();
	return 0;
}

int
restore_run(const struct config *config, const struct restore_options *o)
{
	struct restorer r = { .config = config, .o = o, .journal_fd = -1,
	    .lock_fd = -1 };
	char *dst_dir = NULL;
	int status = 1;

	r.src = config_find_account(config, o->from);
	r.dst = config_find_account(config, o->to);
	if (r.src == NULL || r.dst == NULL)
		return 1;
	if ((dst_dir = state_account_dir(config->state_dir, r.dst->name)) ==
	    NULL || (r.raw = malloc(READ_CHUNK)) == NULL) {
		log_error("out of memory");
		goto out;
	}
	if (!o->dry_run && lock_target(&r, dst_dir) != 0)
		goto out;
	if (names_patterns_init(&r.patterns,
	    (const char *const *)o->mailboxes, o->n_mailboxes, NULL, 0) != 0) {
		log_error("out of memory");
		goto out;
	}
	if (load_journal(&r, dst_dir) != 0 || load_source(&r) != 0 ||
	    !patterns_all_matched(&r))
		goto out;
	if (r.n_boxes == 0) {
		/* Nothing to put back is not a failure: say so, connect to
		 * nothing. */
		log_warnx("restore %s -> %s: account %s has no mirrored "
		    "mailbox (no sync has completed?)", r.src->name,
		    r.dst->name, r.src->name);
		print_summary(&r);
		status = 0;
		goto out;
	}
	if (!o->dry_run && open_journal(&r) != 0)
		goto out;
	if (run_session(&r) != 0)
		goto out;
	print_summary(&r);
	status = r.failed ? 1 : 0;
out:
	free_restorer(&r);
	free(dst_dir);
	return status;
}
