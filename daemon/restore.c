/*
 * --restore (see restore.h): one session to the target server, one state
 * machine: LIST, CREATE what is missing, then per mailbox EXAMINE and
 * FETCHes of what the target holds (SCAN_BATCH messages each), the
 * decisions (mirror/restore_plan.h),
 * and pipelined APPENDs whose literals are read from the source mbox as
 * the connection takes them (mbox/decode.h).
 */
#include "restore_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imap/writer.h"
#include "log.h"
#include "mbox/mbox.h"
#include "mirror/account_session.h"
#include "mirror/state.h"
#include "net/transport.h"
#include "util/num.h"

static const char *const rstate_names[] = {
	"connecting", "listing", "creating", "examining", "scanning",
	"appending", "logout", "done",
};

static void next_box(struct restorer *);
static void refill(struct restorer *);
static void send_scan(struct restorer *);

static void
set_state(struct restorer *r, enum rstate state)
{
	log_debug("restore %s -> %s: state %s -> %s", r->src->name,
	    r->dst->name, rstate_names[r->state], rstate_names[state]);
	r->state = state;
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
	if (r->journal_fd != -1 && r->journal_dirty &&
	    restore_jfile_sync(r) != 0)
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
	restore_source_box_free(b);
	if (b->n_failed > 0)
		r->failed = true;
	r->cur++;
	next_box(r);
}

/* The target refused command on the current mailbox: it fails, the
 * others go on. */
static void
box_refused(struct restorer *r, const char *command,
    const struct imap_response *tagged)
{
	struct rbox *b = &r->boxes[r->cur];
	char text[512];

	log_error("account %s: mailbox %s: %s failed: %s", r->dst->name,
	    b->display, command, imap_response_text(tagged, text, sizeof text));
	b->failed = r->failed = true;
	box_done(r);
}

/* What to do with each message of the current mailbox. */
static void
decide_box(struct restorer *r)
{
	struct rbox *b = &r->boxes[r->cur];

	/* What earlier runs uploaded is among the target's messages. */
	for (size_t i = 0; i < b->n; i++)
		if (b->msgs[i].mark == RESTORE_MARK_DONE)
			(void)restore_present_take(&r->present,
			    b->msgs[i].e.message_id_hash, b->msgs[i].e.size,
			    b->msgs[i].e.internaldate);
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
	if (restore_source_open(r, b) != 0) {
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

/* UIDPLUS (RFC 4315): where the message went, or 0 0. */
static void
appenduid(const struct imap_response *tagged, uint32_t *uidvalidity_r,
    uint32_t *uid_r)
{
	*uidvalidity_r = *uid_r = 0;
	if (tagged->code == NULL || strcmp(tagged->code, "APPENDUID") != 0 ||
	    tagged->code_nargs < 2)
		return;
	if (imap_arg_uint32(&tagged->code_args[0], uidvalidity_r) != 0 ||
	    imap_arg_uint32(&tagged->code_args[1], uid_r) != 0)
		*uidvalidity_r = *uid_r = 0;
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
		appenduid(tagged, &uidvalidity, &uid);
		if (restore_jfile_mark(r, b, a->m, RESTORE_MARK_DONE,
		    uidvalidity, uid) != 0) {
			restore_append_free(a);
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
	restore_append_free(a);
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
	return session_send_literal(r->s, &cmd, a->literal_len,
	    restore_source_body, NULL, on_append_done, a);
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
		if ((a = restore_append_new(r, b, m)) == NULL) {
			abort_local(r, "out of memory");
			goto fail;
		}
		if (restore_source_measure(r, b, a) != 0) {
			b->n_failed++;
			r->failed = true;
			restore_append_free(a);
			continue;
		}
		batch[nb++] = a;
		if (restore_jfile_mark(r, b, m, RESTORE_MARK_SENDING, 0,
		    0) != 0) {
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
	if (restore_jfile_sync(r) != 0) {
		abort_local(r, "cannot sync the restore journal");
		goto fail;
	}
	for (size_t i = 0; i < nb; i++) {
		if (send_append(r, b, batch[i]) != 0) {
			for (size_t k = i; k < nb; k++)
				restore_append_free(batch[k]);
			abort_local(r, "cannot queue APPEND");
			return;
		}
		r->pending++;
	}
	return;
fail:
	for (size_t i = 0; i < nb; i++)
		restore_append_free(batch[i]);
}

/* What the target mailbox holds */

static void
on_scan_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct restorer *r = arg;
	struct rbox *b = &r->boxes[r->cur];
	struct imap_fetch_item item;
	const struct imap_arg *items;
	uint64_t hash = 0;
	size_t n;

	/* Someone else's changes meanwhile: the messages after an expunged
	 * one move down a place.  New ones (EXISTS) are not looked up: this
	 * mailbox gets our copies only after the lookup, and a server saying
	 * EXISTS ever higher would keep the lookup going forever. */
	if (resp->keyword != NULL && resp->has_number &&
	    strcmp(resp->keyword, "EXPUNGE") == 0) {
		if (resp->number < b->scan_next && b->scan_next > 1)
			b->scan_next--;
		if (b->target_messages > 0)
			b->target_messages--;
		return;
	}
	if (resp->keyword == NULL || strcmp(resp->keyword, "FETCH") != 0 ||
	    resp->nargs < 1 || resp->args[0].type != IMAP_ARG_LIST)
		return;
	items = resp->args[0].list;
	n = resp->args[0].count;
	if (imap_fetch_decode(resp->number, items, n, &item) != 0 ||
	    !item.has_size || !item.has_internaldate)
		return;
	/* One answer per message asked for: more would only fill memory. */
	if (b->scan_left == 0) {
		session_abort(s, SESSION_ERR_PROTOCOL, "more FETCH responses "
		    "than messages asked for in mailbox %s", b->target);
		return;
	}
	b->scan_left--;
	for (size_t i = 0; i + 1 < n; i += 2) {
		const char *name = imap_arg_string(&items[i]);
		const struct imap_arg *v = &items[i + 1];

		if (name == NULL || strncasecmp(name, "BODY[HEADER.FIELDS",
		    18) != 0 || v->type != IMAP_ARG_STRING)
			continue;
		hash = restore_message_id_hash(v->str, v->len);
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

	(void)s;
	if (tagged->status != IMAP_STATUS_OK) {
		restore_present_free(&r->present);
		box_refused(r, "FETCH", tagged);
		return;
	}
	if (b->scan_next <= b->target_messages) {
		send_scan(r);
		return;
	}
	restore_present_sort(&r->present);
	decide_box(r);
}

/* The next batch of the target mailbox's messages. */
static void
send_scan(struct restorer *r)
{
	struct rbox *b = &r->boxes[r->cur];
	uint32_t hi = b->target_messages - b->scan_next < SCAN_BATCH ?
	    b->target_messages : b->scan_next + SCAN_BATCH - 1;
	struct imap_cmd cmd;

	session_cmd_init(r->s, &cmd, "FETCH");
	imap_cmd_add_raw(&cmd, "%" PRIu32 ":%" PRIu32 " (RFC822.SIZE "
	    "INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])",
	    b->scan_next, hi);
	b->scan_left = hi - b->scan_next + 1;
	b->scan_next = hi + 1;
	if (session_send(r->s, &cmd, on_scan_untagged, on_scan_done, r) != 0)
		abort_local(r, "cannot queue FETCH");
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

	(void)s;
	if (tagged->status != IMAP_STATUS_OK) {
		box_refused(r, "EXAMINE", tagged);
		return;
	}
	if (b->target_messages == 0) {
		decide_box(r);
		return;
	}
	set_state(r, RS_SCANNING);
	b->scan_next = 1;
	send_scan(r);
}

/* The next mailbox with something to do: EXAMINE it on the target. */
static void
next_box_step(struct restorer *r)
{
	struct imap_cmd cmd;
	struct rbox *b;
	bool all_done = true;

	for (; r->cur < r->n_boxes; r->cur++) {
		b = &r->boxes[r->cur];
		if (b->failed)
			continue;
		if (restore_source_box_load(r, b) == 0)
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
		    b->box_hash, b->msgs[i].e.offset, b->msgs[i].e.length,
		    restore_digest64(b->msgs[i].e.digest));
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

/*
 * next_box_step() in a loop: a mailbox with nothing to ask the target is
 * done at once, and box_done() asks for the next one from inside it; that
 * request is taken by the loop here rather than by one call deeper per
 * mailbox (tens of thousands of them would exhaust the stack).
 */
static void
next_box(struct restorer *r)
{
	if (r->advancing) {
		r->advance_again = true;
		return;
	}
	r->advancing = true;
	do {
		r->advance_again = false;
		next_box_step(r);
	} while (r->advance_again);
	r->advancing = false;
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
	if (r->n_listed == LISTED_MAX) {
		session_abort(s, SESSION_ERR_PROTOCOL, "the server lists more "
		    "than %d mailboxes", LISTED_MAX);
		return;
	}
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
		restore_source_box_free(b);
		free(b->raw);
		free(b->display);
		free(b->file);
		free(b->mbox_path);
		free(b->target);
	}
	free(r->boxes);
	while (r->appends != NULL)
		restore_append_free(r->appends);
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
	if (restore_jfile_load(&r, dst_dir) != 0 ||
	    restore_source_load(&r) != 0 ||
	    !restore_source_patterns_matched(&r))
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
	if (!o->dry_run && restore_jfile_open(&r) != 0)
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
