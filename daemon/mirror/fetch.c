/*
 * The fetch of a mailbox's bodies: the size query (which UIDs are new, and
 * how big), batches of UID FETCH cut by plan_batch_cut() and sized by time
 * (plan_batch_pace()), bodies streamed from the parser into the mbox (or
 * spooled when their UID comes after them), and the bookkeeping of what
 * arrived, with each message's index record, for commit.c.  FLAGS may come
 * after a streamed body: its record is complete at the end of its FETCH
 * response.  A server may repeat, reorder or add messages:
 * only what a batch in flight asked for is appended, once.
 */
#include "mirror/mirror_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imap/writer.h"
#include "log.h"
#include "mbox/mbox.h"

static void on_fetch_untagged(struct session *, const struct imap_response *,
    void *);
static void on_batch_done(struct session *, const struct imap_response *,
    void *);
static void on_sizes_done(struct session *, const struct imap_response *,
    void *);
static void push_batch(struct mirror *, const char *, bool, uint32_t, size_t,
    size_t);
static int finish_pending(struct mirror *, const struct imap_response *);

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
	if (!plan_uid_listed(item->uid, m->ms->last_uid, m->ms->skipped,
	    m->ms->n_skipped) || state_is_remapped(m->ms, item->uid))
		return;
	/* More than the mailbox holds: a server that lists without end. */
	if (m->n_todo >= (size_t)m->examine_exists + TODO_SLACK) {
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "the server listed more "
		    "new messages than the mailbox holds (%u)",
		    m->examine_exists);
		return;
	}
	if (add_todo(m, item->uid, item->has_size ? item->size : 0) != 0)
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
}

/* The UIDs to fetch in ascending order, each once (plan_todo_sort()). */
int
fetch_sort_todo(struct mirror *m)
{
	size_t n;

	if (!m->todo_unsorted)
		return 0;
	n = plan_todo_sort(m->todo, m->todo_sizes, m->todo_done, m->n_todo);
	if (n == (size_t)-1)
		return -1;
	m->n_todo = n;
	m->todo_unsorted = false;
	return 0;
}

/*
 * Bodies a direct fetch delivered that the size query (run beside it) did
 * not list: new mail that arrived between the two.  Only those that follow
 * the listed ones without a gap join the UIDs to fetch
 * (plan_gapless_after()); the rest are not committed (the next sync lists
 * them).
 */
int
fetch_merge_extras(struct mirror *m)
{
	uint32_t hi = m->n_todo > 0 ? m->todo[m->n_todo - 1] :
	    m->ms->last_uid;
	uint32_t k = plan_gapless_after(m->got, m->n_got, hi);

	for (uint32_t i = 1; i <= k; i++)
		if (add_todo(m, hi + i, 0) != 0)
			return -1;
	return fetch_sort_todo(m);
}

/* A mailbox's fetch starts from base: nothing listed or asked yet. */
void
fetch_start(struct mirror *m, uint32_t base, bool direct)
{
	m->fetch_base = base;
	m->n_todo = m->next_todo = m->contig = 0;
	m->todo_unsorted = false;
	m->todo_bytes = 0;
	m->direct = direct;
	m->open_done = false;
	m->sizes_complete = false;
	m->mbx_started = m->last_commit = ev_now(m->loop);
	m->batch_cap_set = false;
}

void
fetch_send(struct mirror *m, uint32_t base, bool direct)
{
	char tag[IMAP_TAG_MAX];
	struct imap_cmd cmd;
	/* After UID 4294967295 nothing can come, and a UID set holds no 0:
	 * that one listed again is at or below base, never fetched. */
	uint32_t from = base < UINT32_MAX ? base + 1 : base;

	fetch_start(m, base, direct);
	session_cmd_init(m->session, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "%u:* (UID RFC822.SIZE)", from);
	if (session_send(m->session, &cmd, on_fetch_untagged, on_sizes_done,
	    m) != 0)
		goto fail;
	m->sizes_pending = true;
	if (!direct)
		return;
	session_cmd_init(m->session, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "%u:* (UID INTERNALDATE RFC822.SIZE "
	    "FLAGS BODY.PEEK[])", from);
	snprintf(tag, sizeof tag, "%s", cmd.tag);
	if (session_send(m->session, &cmd, on_fetch_untagged, on_batch_done,
	    m) != 0)
		goto fail;
	push_batch(m, tag, true, base, 0, 0);
	return;
fail:
	mirror_fail(m, MIRROR_ERR_LOCAL, "cannot queue UID FETCH");
}

/* Bodies */

static const struct plan_pace batch_pace = {
	.first = { BATCH_FIRST_MESSAGES, BATCH_FIRST_BYTES },
	.min = { BATCH_MIN_MESSAGES, BATCH_MIN_BYTES },
	.max = { BATCH_MAX_MESSAGES, BATCH_MAX_BYTES },
	.target_secs = BATCH_TARGET_SECS,
	.growth = BATCH_GROWTH,
};

/*
 * The cap of the batch about to be asked: from what came in since the
 * previous one was (the next goes out once the newest has delivered its
 * last message, so that is about one batch's transfer and a round trip).
 */
static const struct plan_batch_cap *
next_batch_cap(struct mirror *m)
{
	ev_tstamp now = ev_now(m->loop);

	m->batch_cap = plan_batch_pace(&batch_pace, m->batch_cap_set ?
	    &m->batch_cap : NULL, m->mbx_recv_bytes - m->pace_mark_bytes,
	    (size_t)(m->mbx_recv_messages - m->pace_mark_messages),
	    now - m->pace_mark);
	if (m->batch_cap_set)
		log_debug("%s: next batch: up to %zu messages, %llu bytes",
		    m->prefix, m->batch_cap.messages,
		    (unsigned long long)m->batch_cap.bytes);
	m->batch_cap_set = true;
	m->pace_mark = now;
	m->pace_mark_bytes = m->mbx_recv_bytes;
	m->pace_mark_messages = m->mbx_recv_messages;
	return &m->batch_cap;
}

static void
send_batch(struct mirror *m)
{
	char tag[IMAP_TAG_MAX];
	struct imap_cmd cmd;
	size_t first = m->next_todo, n, need;
	char *set;

	n = plan_batch_cut(m->todo_sizes + first, m->n_todo - first,
	    next_batch_cap(m));
	need = imap_seqset_format(NULL, 0, m->todo + first, n) + 1;
	if ((set = malloc(need)) == NULL) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	imap_seqset_format(set, need, m->todo + first, n);
	session_cmd_init(m->session, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "%s (UID INTERNALDATE RFC822.SIZE FLAGS "
	    "BODY.PEEK[])",
	    set);
	free(set);
	m->next_todo += n;
	snprintf(tag, sizeof tag, "%s", cmd.tag);
	if (session_send(m->session, &cmd, on_fetch_untagged, on_batch_done,
	    m) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "cannot queue UID FETCH");
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

void
fetch_send_batches(struct mirror *m)
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
	    state_is_skipped(m->ms, uid) || state_is_remapped(m->ms, uid))
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

	if (finish_pending(m, NULL) != 0)
		return -1;
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
			mirror_fail(m, MIRROR_ERR_LOCAL, "cannot create a "
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
	m->pend_item = item;
	m->pend_item.flags = NULL;
	m->pend_item.has_flags = false;
	return 0;
fail:
	mirror_fail(m, MIRROR_ERR_LOCAL, "%s", mbox_error(m->mbox));
	return -1;
}

/* The index record's flags and keywords from a FETCH's FLAGS (\Recent and
 * unknown system flags left out).  0, or -1 when out of memory. */
static int
record_flags(struct msgindex_entry *x, const struct imap_fetch_item *item)
{
	const struct imap_arg *f;
	size_t len = 0, n;
	char *kw = NULL, *k;

	if (!item->has_flags || item->flags == NULL)
		return 0;
	for (size_t i = 0; i < item->flags->count; i++) {
		f = &item->flags->list[i];
		if (f->type != IMAP_ARG_ATOM || f->len == 0)
			continue;
		if (f->str[0] == '\\') {
			x->flags |= msgindex_flag_bit(f->str);
			continue;
		}
		n = strlen(f->str);
		if (len + n + 1 > MSGINDEX_KEYWORDS_MAX)
			continue;
		if ((k = realloc(kw, len + n + 2)) == NULL) {
			free(kw);
			return -1;
		}
		kw = k;
		if (len > 0)
			kw[len++] = ' ';
		memcpy(kw + len, f->str, n + 1);
		len += n;
	}
	x->keywords = kw;
	return 0;
}

/* The index record of the message mbox_msg_end() just completed. */
static int
make_record(struct mirror *m, struct msgindex_entry *x,
    const struct imap_fetch_item *item, uint64_t size)
{
	const struct mbox_entry *me = mbox_last_entry(m->mbox);

	memset(x, 0, sizeof *x);
	x->uid = item->uid;
	x->uidvalidity = m->ms->uidvalidity;
	x->offset = me->offset;
	x->length = me->length;
	x->size = item->has_size ? item->size : size;
	x->internaldate = (int64_t)item->internaldate;
	x->tz_minutes = item->tz_minutes;
	x->message_id_hash = me->message_id_hash;
	memcpy(x->digest, me->digest, MSGINDEX_DIGEST_LEN);
	return record_flags(x, item);
}

/* Forgets what was appended since the last commit (records included). */
void
fetch_forget_arrivals(struct mirror *m)
{
	for (size_t i = 0; i < m->n_arr; i++) {
		free(m->arr_ix[i].keywords);
		m->arr_ix[i].keywords = NULL;
	}
	m->n_arr = 0;
}

/* A message is in the mbox (not yet committed): where its entry ends is
 * remembered, so a commit can stop after it, with its index record.
 * size: the body's bytes as they came. */
static int
message_appended(struct mirror *m, const struct imap_fetch_item *item,
    uint64_t size)
{
	uint32_t uid = item->uid;
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
		struct msgindex_entry *x = reallocarray(m->arr_ix, cap,
		    sizeof *x);

		if (a != NULL)
			m->arr = a;
		if (s != NULL)
			m->arr_sizes = s;
		if (x != NULL)
			m->arr_ix = x;
		if (a == NULL || s == NULL || x == NULL)
			goto oom;
		m->cap_arr = cap;
	}
	if (make_record(m, &m->arr_ix[m->n_arr], item, size) != 0)
		goto oom;
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
		if (commit_appended(m, false) != 0)
			return -1;
	}
	fetch_send_batches(m);
	return 0;
oom:
	mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
	return -1;
}

/*
 * The streamed message whose FETCH response ends with resp (NULL: ended
 * without one we could read) goes to the arrivals, with the FLAGS the
 * response carried wherever they were in it.  0, or -1 when the run
 * failed.
 */
static int
finish_pending(struct mirror *m, const struct imap_response *resp)
{
	struct imap_fetch_item item = m->pend_item, full;
	const struct mbox_entry *me;

	if (!m->pend_active)
		return 0;
	m->pend_active = false;
	if (m->mbox == NULL || m->ms == NULL)
		return 0;
	/* Nothing may have been cut since it was appended. */
	me = mbox_last_entry(m->mbox);
	if (me->offset + me->length != mbox_appended_size(m->mbox))
		return 0;
	if (resp != NULL && imap_fetch_response_decode(resp, &full) == 0 && full.has_uid &&
	    full.uid == item.uid) {
		item.flags = full.flags;
		item.has_flags = full.has_flags;
		if (!item.has_size && full.has_size) {
			item.size = full.size;
			item.has_size = true;
		}
	}
	return message_appended(m, &item, m->pend_size);
}

int
fetch_sink(void *arg, enum imap_sink_event event,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	struct mirror *m = arg;

	if (event == IMAP_SINK_BEGIN) {
		m->remap_sinking = false;
		if (m->step == MS_REMAP_LISTING ||
		    m->step == MS_REMAP_DIGESTS) {
			/* Hashed or looked at, never stored. */
			m->msg_skip = true;
			m->spooling = false;
			return remapping_sink(m, event, info, data, len);
		}
	} else if (m->remap_sinking)
		return remapping_sink(m, event, info, data, len);
	switch (event) {
	case IMAP_SINK_BEGIN:
		return begin_message(m, info);
	case IMAP_SINK_DATA:
		if (m->msg_skip)
			return 0;
		if (m->spooling) {
			if (spool_write(m, data, len) == 0)
				return 0;
			mirror_fail(m, MIRROR_ERR_LOCAL, "temporary file: %s",
			    strerror(errno));
			return -1;
		}
		if (mbox_msg_write(m->mbox, data, len) != 0)
			break;
		progress_received(m, len, false);
		return 0;
	case IMAP_SINK_END:
		if (m->msg_skip || m->spooling)
			return 0;
		if (mbox_msg_end(m->mbox) != 0)
			break;
		progress_received(m, 0, true);
		/* Its record waits for the end of the FETCH response. */
		m->pend_active = true;
		m->pend_msgno = info->msgno;
		m->pend_size = info->size;
		return 0;
	}
	mirror_fail(m, MIRROR_ERR_LOCAL, "%s", mbox_error(m->mbox));
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
	if (imap_fetch_response_decode(resp, &item) != 0 || !item.has_uid ||
	    !item.has_internaldate) {
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "FETCH response without "
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
	progress_received(m, (size_t)size, true);
	(void)message_appended(m, &item, (uint64_t)size);
	return;
fail:
	mirror_fail(m, MIRROR_ERR_LOCAL, "appending a spooled message: %s",
	    m->mbox != NULL && mbox_error(m->mbox) != NULL ?
	    mbox_error(m->mbox) : strerror(errno));
}

/* A body that came whole in the response (a quoted string). */
static void
append_string(struct mirror *m, const struct imap_fetch_item *item,
    const struct imap_arg *body)
{
	if (!item->has_internaldate) {
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "UID %u: FETCH response "
		    "without INTERNALDATE", item->uid);
		return;
	}
	if (mbox_msg_begin(m->mbox, item->internaldate) != 0 ||
	    (body->len > 0 && mbox_msg_write(m->mbox, body->str,
	    body->len) != 0) || mbox_msg_end(m->mbox) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "%s", mbox_error(m->mbox));
		return;
	}
	progress_received(m, body->len, true);
	(void)message_appended(m, item, body->len);
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
	mirror_observe(m, resp);
	if (m->step == MS_REMAP_LISTING || m->step == MS_REMAP_DIGESTS) {
		remapping_untagged(m, resp);
		return;
	}
	if (m->ms == NULL || m->step != MS_FETCHING || resp->keyword == NULL) {
		m->pend_active = false;
		return;
	}
	if (strcmp(resp->keyword, "FETCH") != 0)
		return;
	if (m->pend_active && resp->has_number &&
	    resp->number == m->pend_msgno) {
		(void)finish_pending(m, resp);
		return;
	}
	if (finish_pending(m, NULL) != 0)
		return;
	if (m->spooling) {
		if (resp->number == m->spool_msgno)
			append_spooled(m, resp);
		m->spooling = false;
		return;
	}
	if (imap_fetch_response_decode(resp, &item) != 0 || !item.has_uid)
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

/* The size query answered (in any state: mirror_fetch_ended() decides). */
static void
on_sizes_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct mirror *m = arg;

	(void)s;
	m->sizes_pending = false;
	mirror_fetch_ended(m, tagged, NULL);
}

/* A batch of bodies answered: out of flight, then as on_sizes_done(). */
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
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "UID FETCH %s completed "
		    "twice", tagged->tag);
		return;
	}
	mirror_fetch_ended(m, tagged, &b);
}

/* What one pass over a mailbox's fetch collected, forgotten. */
void
fetch_forget(struct mirror *m)
{
	m->direct = false;
	m->sizes_pending = false;
	m->open_done = false;
	m->in_flight = 0;
	memset(m->batches, 0, sizeof m->batches);
	m->pend_active = false;
	fetch_forget_arrivals(m);
	m->batch_bytes = 0;
}
