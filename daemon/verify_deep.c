/*
 * verify_deep: --deep.  Per mailbox, the UIDs to fetch (the indexed ones
 * the server still lists; with entries of unknown UID, every one listed up
 * to the last committed), an EXAMINE and batches of UID FETCH (UID
 * BODY.PEEK[]) pipelined behind it, two in flight; each body is hashed as
 * it streams in (mbox_digest_*) and compared with what the file holds.
 * Progress lines with the time left every DEEP_PROGRESS_SECS.
 */
#include "verify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/writer.h"
#include "log.h"
#include "util/num.h"

static void deep_next_mailbox(struct verifier *);

struct uid_at {
	uint32_t uid;
	size_t i;		/* in mb->ix */
};

static int
uid_at_cmp(const void *x, const void *y)
{
	const struct uid_at *a = x, *b = y;

	if (a->uid != b->uid)
		return a->uid < b->uid ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* mb->byuid: mb->ix's UIDs in order, with where each is.  0 or -1. */
static int
sort_by_uid(struct vmbx *mb)
{
	if (mb->byuid != NULL)
		return 0;
	if ((mb->byuid = calloc(mb->nix + 1, sizeof *mb->byuid)) == NULL)
		return -1;
	for (size_t i = 0; i < mb->nix; i++) {
		mb->byuid[i].uid = mb->ix[i].uid;
		mb->byuid[i].i = i;
	}
	if (mb->nix > 0)
		qsort(mb->byuid, mb->nix, sizeof *mb->byuid, uid_at_cmp);
	return 0;
}

/* The first position in mb->byuid with uid, or SIZE_MAX. */
static size_t
find_uid(const struct vmbx *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->nix;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mb->byuid[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mb->nix && mb->byuid[lo].uid == uid ? lo : SIZE_MAX;
}

/* The UIDs whose bodies --deep fetches for mb, ascending, with their
 * sizes: the indexed ones the server still lists (an index without UIDs:
 * every one listed up to the last committed, not given up). */
static int
deep_uids(struct vmbx *mb, uint32_t **uids_r, uint64_t **sizes_r,
    size_t *n_r)
{
	bool rebuilt = mb->counts.uids_unknown;
	size_t n = 0;

	*uids_r = NULL;
	*sizes_r = NULL;
	*n_r = 0;
	if (!mb->server_checked || mb->uidvalidity != mb->ms->uidvalidity ||
	    mb->nix == 0 || (mb->index != INDEX_LOADED &&
	    mb->index != INDEX_REBUILT))
		return 0;
	*uids_r = calloc(mb->nlisted + 1, sizeof **uids_r);
	*sizes_r = calloc(mb->nlisted + 1, sizeof **sizes_r);
	if (*uids_r == NULL || *sizes_r == NULL || sort_by_uid(mb) != 0)
		return -1;
	/* listed is sorted by UID (verify_compare_server()). */
	for (size_t i = 0; i < mb->nlisted; i++) {
		const struct verify_listed *l = &mb->listed[i];
		bool take = false;

		if (l->uid > mb->ms->last_uid || (n > 0 &&
		    (*uids_r)[n - 1] == l->uid))
			continue;
		if (rebuilt)
			take = !state_is_skipped(mb->ms, l->uid);
		else
			take = find_uid(mb, l->uid) != SIZE_MAX;
		if (!take)
			continue;
		(*uids_r)[n] = l->uid;
		(*sizes_r)[n++] = l->size;
	}
	*n_r = n;
	return 0;
}

static void
on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct verifier *vf = w->data;
	ev_tstamp elapsed = ev_now(loop) - vf->deep_started;
	double rate = elapsed > 0 ? vf->deep_bytes / elapsed : 0;
	double left = vf->deep_total_bytes > vf->deep_bytes ?
	    (double)(vf->deep_total_bytes - vf->deep_bytes) : 0;

	(void)revents;
	if (vf->deep_cur >= vf->n)
		return;
	log_info("account %s: --deep: mailbox %s: %zu/%zu messages; account: "
	    "%zu/%zu messages, %.1f/%.1f MB, %.2f MB/s, about %.0fs left",
	    vf->account->name, vf->v[vf->deep_cur].display,
	    vf->v[vf->deep_cur].deep_checked, vf->deep_n, vf->deep_messages,
	    vf->deep_total_messages, vf->deep_bytes / 1e6,
	    vf->deep_total_bytes / 1e6, rate / 1e6,
	    rate > 0 ? left / rate : 0);
}

/* The server's digest of uid (--deep), compared with the index's. */
static int
deep_compare(struct verifier *vf, struct vmbx *mb, uint32_t uid,
    const uint8_t digest[MBOX_DIGEST_LEN], uint64_t size)
{
	struct verify_problem p = { .kind = VERIFY_DEEP_DIFFERS, .uid = uid };

	vf->deep_messages++;
	vf->deep_bytes += size;
	mb->deep_checked++;
	if (mb->counts.uids_unknown) {
		memcpy(vf->server_digests[vf->n_server_digests++], digest,
		    VERIFY_DIGEST_LEN);
		return 0;
	}
	for (size_t k = find_uid(mb, uid); k < mb->nix &&
	    mb->byuid[k].uid == uid; k++) {
		const struct verify_indexed *e = &mb->ix[mb->byuid[k].i];

		/* The file's bytes, not the index's record of them: an entry
		 * changed on disk differs; one not in the file at all is
		 * told by the local check already. */
		if (!e->has_file_digest || memcmp(e->file_digest, digest,
		    VERIFY_DIGEST_LEN) == 0)
			continue;
		p.offset = e->offset;
		p.length = e->length;
		if (verify_problems_add(&mb->problems, &p) != 0)
			return -1;
	}
	return 0;
}

/* Whether uid is one this mailbox's --deep asked for (and not yet had). */
static bool
deep_asked(const struct verifier *vf, uint32_t uid, size_t *pos_r)
{
	size_t lo = 0, hi = vf->deep_next;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (vf->deep_uids[mid] == uid) {
			*pos_r = mid;
			return vf->deep_sizes[mid] != UINT64_MAX;
		}
		if (vf->deep_uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void
deep_got(struct session *s, struct verifier *vf, uint32_t uid,
    const uint8_t digest[MBOX_DIGEST_LEN])
{
	struct vmbx *mb = &vf->v[vf->deep_cur];
	uint64_t size;
	size_t pos;

	/* Each asked UID counts once, whatever a server repeats. */
	if (!deep_asked(vf, uid, &pos))
		return;
	size = vf->deep_sizes[pos];
	vf->deep_sizes[pos] = UINT64_MAX;
	if (deep_compare(vf, mb, uid, digest, size) != 0)
		session_abort(s, SESSION_ERR_LOCAL, "out of memory");
}

/* The value of the body item of a FETCH response, or NULL. */
static const struct imap_arg *
fetch_body(const struct imap_response *resp)
{
	const struct imap_arg *items = resp->args[0].list;

	for (size_t i = 0; i + 1 < resp->args[0].count; i += 2)
		if (items[i].type == IMAP_ARG_ATOM &&
		    strcasecmp(items[i].str, "BODY[]") == 0)
			return &items[i + 1];
	return NULL;
}

static void
on_deep_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct verifier *vf = arg;
	struct imap_fetch_item item;
	const struct imap_arg *body;
	uint8_t digest[MBOX_DIGEST_LEN];
	bool pending = vf->have_pending && resp->has_number &&
	    resp->number == vf->digest_msgno;

	if (vf->step != VS_DEEP || !vf->deep_examined ||
	    imap_fetch_response_decode(resp, &item) != 0 || !item.has_uid)
		return;
	if (pending) {
		vf->have_pending = false;
		deep_got(s, vf, item.uid, vf->pending_digest);
		return;
	}
	if ((body = fetch_body(resp)) == NULL ||
	    body->type != IMAP_ARG_STRING)
		return;
	/* A body sent as a quoted string: hashed here. */
	if (mbox_digest_write(vf->digest, body->str, body->len) != 0 ||
	    mbox_digest_end(vf->digest, digest, NULL) != 0) {
		session_abort(s, SESSION_ERR_LOCAL, "cannot hash a message");
		return;
	}
	deep_got(s, vf, item.uid, digest);
}

static int
deep_sink(void *arg, enum imap_sink_event event,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	struct verifier *vf = arg;

	switch (event) {
	case IMAP_SINK_BEGIN:
		vf->digesting = vf->step == VS_DEEP && vf->deep_examined &&
		    vf->in_flight > 0 &&
		    strcmp(info->item, "BODY[]") == 0;
		vf->have_pending = false;
		vf->digest_msgno = info->msgno;
		return 0;
	case IMAP_SINK_DATA:
		if (!vf->digesting)
			return 0;
		return mbox_digest_write(vf->digest, data, len);
	case IMAP_SINK_END:
		if (!vf->digesting)
			return 0;
		vf->digesting = false;
		if (mbox_digest_end(vf->digest, vf->pending_digest, NULL) != 0)
			return -1;
		vf->have_pending = true;
		return 0;
	}
	return 0;
}

static void on_deep_batch_done(struct session *, const struct imap_response *,
    void *);

static void
deep_send_batch(struct verifier *vf)
{
	struct imap_cmd cmd;
	size_t first = vf->deep_next, n = 0, need;
	uint64_t bytes = 0;
	char *set;

	while (first + n < vf->deep_n && n < DEEP_BATCH_MESSAGES &&
	    (n == 0 || bytes + vf->deep_sizes[first + n] <= DEEP_BATCH_BYTES))
		bytes += vf->deep_sizes[first + n++];
	need = imap_seqset_format(NULL, 0, vf->deep_uids + first, n) + 1;
	if ((set = malloc(need)) == NULL) {
		session_abort(vf->s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	imap_seqset_format(set, need, vf->deep_uids + first, n);
	session_cmd_init(vf->s, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "%s (UID BODY.PEEK[])", set);
	free(set);
	if (session_send(vf->s, &cmd, on_deep_untagged, on_deep_batch_done,
	    vf) != 0) {
		session_abort(vf->s, SESSION_ERR_LOCAL,
		    "cannot queue UID FETCH");
		return;
	}
	vf->deep_next += n;
	vf->in_flight++;
}

static void
deep_send_batches(struct verifier *vf)
{
	while (vf->in_flight < DEEP_IN_FLIGHT && vf->deep_next < vf->deep_n)
		deep_send_batch(vf);
}

/* A mailbox's bodies are all in (or refused): what is left to say. */
static int
deep_mailbox_done(struct verifier *vf)
{
	struct vmbx *mb = &vf->v[vf->deep_cur];
	size_t missed = vf->deep_n - mb->deep_checked;

	mb->deep_done = true;
	if (missed > 0) {
		free(mb->server_error);
		if (asprintf(&mb->server_error, "--deep: the server did not "
		    "deliver %zu of %zu messages", missed, vf->deep_n) == -1)
			mb->server_error = NULL;
	}
	if (mb->counts.uids_unknown && verify_compare_digests(mb->ix, mb->nix,
	    vf->server_digests, vf->n_server_digests, &mb->problems) != 0)
		return -1;
	return 0;
}

static void
on_deep_batch_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct verifier *vf = arg;
	char text[300];

	vf->in_flight--;
	if (tagged->status != IMAP_STATUS_OK)
		log_warnx("account %s: mailbox %s: --deep: UID FETCH failed: "
		    "%s", vf->account->name, vf->v[vf->deep_cur].display,
		    imap_response_text(tagged, text, sizeof text));
	deep_send_batches(vf);
	if (vf->in_flight > 0)
		return;
	if (deep_mailbox_done(vf) != 0) {
		session_abort(s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	vf->deep_cur++;
	deep_next_mailbox(vf);
}

static void
on_deep_examine_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct vmbx *mb = arg;
	struct verifier *vf = mb->vf;
	char text[300];

	(void)s;
	if (tagged->status == IMAP_STATUS_OK && mb->uidvalidity ==
	    mb->ms->uidvalidity) {
		vf->deep_examined = true;
		return;
	}
	/* The batches sent behind it fail (no mailbox selected) or are
	 * ignored. */
	free(mb->server_error);
	if (asprintf(&mb->server_error, "--deep: EXAMINE failed: %s",
	    imap_response_text(tagged, text, sizeof text)) == -1)
		mb->server_error = NULL;
	else
		log_sanitize(mb->server_error);
}

static void
deep_next_mailbox(struct verifier *vf)
{
	struct imap_cmd cmd;
	struct vmbx *mb;

	for (; vf->deep_cur < vf->n; vf->deep_cur++) {
		mb = &vf->v[vf->deep_cur];
		free(vf->deep_uids);
		free(vf->deep_sizes);
		free(vf->server_digests);
		vf->server_digests = NULL;
		vf->n_server_digests = 0;
		if (deep_uids(mb, &vf->deep_uids, &vf->deep_sizes,
		    &vf->deep_n) != 0 || (vf->deep_n > 0 &&
		    (vf->server_digests = calloc(vf->deep_n,
		    sizeof *vf->server_digests)) == NULL)) {
			session_abort(vf->s, SESSION_ERR_LOCAL,
			    "out of memory");
			return;
		}
		if (vf->deep_n == 0)
			continue;
		vf->deep_next = 0;
		vf->deep_examined = false;
		session_cmd_init(vf->s, &cmd, "EXAMINE");
		imap_cmd_add_string(&cmd, mb->ms->name, strlen(mb->ms->name),
		    session_literal_mode(vf->s));
		if (session_send(vf->s, &cmd, verify_on_examine_untagged,
		    on_deep_examine_done, mb) != 0) {
			session_abort(vf->s, SESSION_ERR_LOCAL,
			    "cannot queue EXAMINE");
			return;
		}
		deep_send_batches(vf);
		return;
	}
	ev_timer_stop(vf->loop, &vf->progress);
	verify_set_step(vf, VS_LOGOUT);
	session_logout(vf->s);
}

/* The totals for the progress lines, then the first mailbox. */
void
verify_deep_start(struct verifier *vf)
{
	uint32_t *uids;
	uint64_t *sizes;
	size_t n;

	for (size_t i = 0; i < vf->n; i++) {
		if (deep_uids(&vf->v[i], &uids, &sizes, &n) != 0) {
			free(uids);
			free(sizes);
			session_abort(vf->s, SESSION_ERR_LOCAL,
			    "out of memory");
			return;
		}
		vf->deep_total_messages += n;
		for (size_t k = 0; k < n; k++)
			vf->deep_total_bytes += sizes[k];
		free(uids);
		free(sizes);
	}
	if (mbox_digest_new(&vf->digest) != 0) {
		session_abort(vf->s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	verify_set_step(vf, VS_DEEP);
	session_set_sink(vf->s, deep_sink, vf);
	log_info("account %s: --deep: downloading %zu %s again, %.1f MB; a "
	    "progress line every %.0f s", vf->account->name,
	    vf->deep_total_messages, num_plural(vf->deep_total_messages,
	    "message", "messages"), vf->deep_total_bytes / 1e6,
	    DEEP_PROGRESS_SECS);
	vf->deep_started = ev_now(vf->loop);
	ev_timer_init(&vf->progress, on_progress, DEEP_PROGRESS_SECS,
	    DEEP_PROGRESS_SECS);
	vf->progress.data = vf;
	ev_timer_start(vf->loop, &vf->progress);
	vf->deep_cur = 0;
	deep_next_mailbox(vf);
}
