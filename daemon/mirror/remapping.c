/*
 * A mailbox whose UIDVALIDITY changed while its mirror holds messages: the
 * server's messages are matched to the mirror's by content instead of
 * downloading them all again into a second file.
 *
 *   1. With the mbox open (locked, its uncommitted tail cut), the mirror's
 *      messages come from its index (rebuilt from the mbox when there is
 *      none), the server's from one UID FETCH 1:* of UID, RFC822.SIZE,
 *      INTERNALDATE and the Message-ID header (REMAP_LISTING).
 *   2. mirror/remap.h matches them; the bodies of ambiguous ones are
 *      fetched again and hashed, never stored (REMAP_DIGESTS).
 *   3. A good match: the index is rewritten with the new UIDVALIDITY and
 *      UIDs (atomically), then the state saved with the new UIDVALIDITY,
 *      last_uid the highest UID up to which every server message matched,
 *      and the matched UIDs above it as "remapped", which the fetch leaves
 *      out; then the usual fetch appends what matched nothing.  A crash
 *      before the state save finds the old UIDVALIDITY and matches again
 *      (the same messages, the same result); after it, the state alone
 *      says what to fetch: each message ends up in the mbox once.
 *   4. A poor match, or no index to be had: as before, the old file is
 *      kept aside and the mailbox mirrored afresh.
 *   5. A UID FETCH refused (Dovecot's NO [SERVERBUG] for a message it
 *      cannot read, say): nothing changes, the mailbox fails this sync and
 *      the state counts it; at REMAP_REFUSED_MAX syncs in a row the remap
 *      is given up as in 4, so that the mailbox is mirrored again.  A remap
 *      that ends any other way clears the count.
 * The server's answers are untrusted: any order, repeats, at most the
 * mailbox's size and TODO_SLACK listed, a bounded part of each header
 * kept, bodies hashed as they stream.  The listing may hold fewer messages
 * than EXAMINE showed only by those the server said were expunged
 * meanwhile (mirror/remap.h, remap_census).
 */
#include "mirror/mirror_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/writer.h"
#include "log.h"
#include "mbox/mbox.h"
#include "mbox/mboxrd.h"
#include "util/num.h"

_Static_assert(REMAP_DIGEST_LEN == MBOX_DIGEST_LEN &&
    REMAP_DIGEST_LEN == MSGINDEX_DIGEST_LEN, "one digest");

/* Longest Message-ID value hashed (as the writer does). */
#define MESSAGE_ID_MAX 1000

static void on_remap_done(struct session *, const struct imap_response *,
    void *);
static void on_remap_untagged(struct session *, const struct imap_response *,
    void *);
static void decide(struct mirror *, bool);

/* Whether a changed UIDVALIDITY may be remapped: the mirror has messages. */
bool
remapping_candidate(const struct mirror *m, const struct mailbox_state *ms)
{
	return !m->remap_declined && ms != NULL && ms->uidvalidity != 0 &&
	    ms->file != NULL && ms->mbox_size > 0;
}

/* UID FETCH 1:* of what tells a message without its body. */
void
remapping_send_listing(struct mirror *m)
{
	struct imap_cmd cmd;

	session_cmd_init(m->session, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "1:* (UID RFC822.SIZE INTERNALDATE "
	    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
	if (session_send(m->session, &cmd, on_remap_untagged, on_remap_done,
	    m) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "cannot queue UID FETCH");
		return;
	}
	m->remap_listing_sent = true;
	m->remap_pending++;
}

/* Everything a remap holds, freed; nothing in flight is forgotten (see
 * remap_pending). */
static void
free_match(struct mirror *m)
{
	free(m->rs);
	m->rs = NULL;
	m->n_rs = m->cap_rs = 0;
	free(m->rl);
	m->rl = NULL;
	msgindex_list_free(&m->rl_index);
	free(m->remap_index_path);
	m->remap_index_path = NULL;
	free(m->remap_mbox_path);
	m->remap_mbox_path = NULL;
	free(m->remap_hdr);
	m->remap_hdr = NULL;
	mbox_digest_free(&m->remap_digest);
	m->remap_sinking = m->remap_lit_ready = false;
}

/* A mailbox's pass is over (or a new connection starts it again). */
void
remapping_forget(struct mirror *m)
{
	free_match(m);
	m->remap_pending = 0;
	m->remap_refused = false;
	m->remap_refusal[0] = '\0';
	m->remap_declined = false;
	m->remap_listing_sent = false;
	m->remap_digests = 0;
}

static const char *
box(const struct mirror *m)
{
	return m->mbxs[m->cur].display;
}

/*
 * The remap cannot be done or is not good enough: the old behaviour (the
 * old file kept aside, the mailbox mirrored afresh), opened again from the
 * start.
 */
void
remapping_decline(struct mirror *m, const char *why)
{
	log_warnx("%s: mailbox %s: UIDVALIDITY changed from %u to %u; %s: "
	    "mirroring it afresh", m->prefix, box(m), m->ms->uidvalidity,
	    m->examine_uidvalidity, why);
	free_match(m);
	/* Not refused: whatever the count said is over. */
	m->ms->remap_refused = m->ms->remap_refused_uidvalidity = 0;
	m->remap_declined = true;
	msgindex_close(&m->msgindex);
	mbox_close(&m->mbox);
	/* Whatever was asked with the EXAMINE asked from the old state. */
	m->fetch_base = UINT32_MAX;
	commit_open_mailbox(m);
	if (m->step == MS_REFETCHING)
		mirror_refetch(m);
}

/* Where the last record's entry ends (0: none). */
static uint64_t
index_end(const struct msgindex_list *l)
{
	uint64_t end = 0;

	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].offset + l->v[i].length > end)
			end = l->v[i].offset + l->v[i].length;
	return end;
}

/* The mirror's messages: its index, or one rebuilt from the mbox. */
static int
load_local(struct mirror *m, const char *mbox_path, char *why, size_t size)
{
	uint64_t committed = mbox_committed_size(m->mbox);
	char *error = NULL;
	size_t o = 0;
	int r;

	m->remap_index_path = msgindex_path(m->state_dir, m->ms->file);
	if (m->remap_index_path == NULL)
		goto oom;
	r = msgindex_load(m->remap_index_path, m->ms->file, &m->rl_index,
	    &error);
	if (r == 1)
		log_info("%s: mailbox %s: no index of %s; rebuilding it from "
		    "the mbox", m->prefix, box(m), mbox_path);
	else if (r != 0)
		log_warnx("%s: mailbox %s: %s; rebuilding the index from the "
		    "mbox", m->prefix, box(m), error != NULL ? error :
		    "out of memory");
	else if (index_end(&m->rl_index) != committed)
		/* A message the index does not know would be fetched
		 * again: only one that lists the whole mbox will do. */
		log_info("%s: mailbox %s: the index describes %llu of the "
		    "%llu bytes of %s; rebuilding it from the mbox", m->prefix,
		    box(m), (unsigned long long)index_end(&m->rl_index),
		    (unsigned long long)committed, mbox_path);
	if (r != 0 || index_end(&m->rl_index) != committed) {
		free(error);
		error = NULL;
		msgindex_list_free(&m->rl_index);
		r = msgindex_rebuild(mbox_path, committed, &m->rl_index,
		    &error);
	}
	if (r != 0) {
		snprintf(why, size, "its index cannot be read (%s)",
		    error != NULL ? error : "out of memory");
		free(error);
		return -1;
	}
	if ((m->rl = calloc(m->rl_index.n + 1, sizeof *m->rl)) == NULL)
		goto oom;
	for (size_t i = 0; i < m->rl_index.n; i++) {
		const struct msgindex_entry *e = &m->rl_index.v[i];

		/* Only what the mbox durably holds. */
		if (e->offset > committed || e->length > committed - e->offset)
			continue;
		m->rl[o].size = e->size;
		m->rl[o].internaldate = e->internaldate;
		m->rl[o].message_id_hash = e->message_id_hash;
		m->rl[o].digest = e->digest;
		o++;
	}
	/* rl[k] stands for rl_index.v[k'] with the cut ones left out: keep
	 * the two in step by dropping them from the index too. */
	if (o != m->rl_index.n) {
		size_t k = 0;

		for (size_t i = 0; i < m->rl_index.n; i++) {
			const struct msgindex_entry *e = &m->rl_index.v[i];

			if (e->offset > committed ||
			    e->length > committed - e->offset) {
				free(e->keywords);
				continue;
			}
			m->rl_index.v[k++] = *e;
		}
		m->rl_index.n = k;
		for (size_t i = 0; i < k; i++)
			m->rl[i].digest = m->rl_index.v[i].digest;
	}
	return 0;
oom:
	snprintf(why, size, "out of memory");
	return -1;
}

/*
 * REMAP_LISTING from the mbox just opened (mbox_path): the mirror's
 * messages loaded, the listing sent unless it went with the EXAMINE.
 */
void
remapping_start(struct mirror *m, const char *mbox_path)
{
	char why[600];

	if ((m->remap_mbox_path = strdup(mbox_path)) == NULL) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	if (load_local(m, mbox_path, why, sizeof why) != 0) {
		remapping_decline(m, why);
		return;
	}
	if (m->rl_index.n == 0) {
		remapping_decline(m, "the mirror's index lists no message");
		return;
	}
	if ((m->remap_hdr = malloc(REMAP_HEADER_MAX)) == NULL ||
	    mbox_digest_new(&m->remap_digest) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	m->n_rs = 0;
	remap_census_start(&m->remap_census, m->examine_exists);
	mirror_set_state(m, MS_REMAP_LISTING);
	if (!m->remap_listing_sent)
		remapping_send_listing(m);
}

/* Header and body literals, through fetch_sink() */

static bool
is_header_item(const char *item)
{
	return strncasecmp(item, "BODY[HEADER.FIELDS", 18) == 0;
}

static bool
is_body_item(const char *item)
{
	return strcasecmp(item, "BODY[]") == 0 || strcasecmp(item,
	    "RFC822") == 0;
}

/*
 * REMAP_LISTING keeps the first REMAP_HEADER_MAX bytes of each header
 * answer, REMAP_DIGESTS hashes each body; either waits for the end of its
 * FETCH response, where the UID is known.
 */
int
remapping_sink(struct mirror *m, enum imap_sink_event event,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	size_t room;

	switch (event) {
	case IMAP_SINK_BEGIN:
		m->remap_lit_ready = false;
		m->remap_hdr_len = 0;
		m->remap_sinking = m->remap_hdr != NULL &&
		    m->remap_digest != NULL && (m->step == MS_REMAP_LISTING ?
		    is_header_item(info->item) : m->step == MS_REMAP_DIGESTS &&
		    is_body_item(info->item));
		m->remap_lit_msgno = info->msgno;
		return 0;
	case IMAP_SINK_DATA:
		if (!m->remap_sinking)
			return 0;
		if (m->step == MS_REMAP_DIGESTS) {
			if (mbox_digest_write(m->remap_digest, data, len) == 0)
				return 0;
			mirror_fail(m, MIRROR_ERR_LOCAL, "cannot hash a body");
			return -1;
		}
		room = REMAP_HEADER_MAX - m->remap_hdr_len;
		if (len > room)
			len = room;
		memcpy(m->remap_hdr + m->remap_hdr_len, data, len);
		m->remap_hdr_len += len;
		return 0;
	case IMAP_SINK_END:
		if (!m->remap_sinking)
			return 0;
		m->remap_sinking = false;
		if (m->step == MS_REMAP_DIGESTS && mbox_digest_end(
		    m->remap_digest, m->remap_body_digest, NULL) != 0) {
			mirror_fail(m, MIRROR_ERR_LOCAL, "cannot hash a body");
			return -1;
		}
		m->remap_lit_ready = true;
		return 0;
	}
	return 0;
}

/* The item named like pred in a FETCH response's list, or NULL. */
static const struct imap_arg *
find_item(const struct imap_response *resp, bool (*pred)(const char *))
{
	const struct imap_arg *items = resp->args[0].list;

	for (size_t i = 0; i + 1 < resp->args[0].count; i += 2)
		if (items[i].type == IMAP_ARG_ATOM && pred(items[i].str))
			return &items[i + 1];
	return NULL;
}

/* The literal the sink took in belongs to this response. */
static bool
take_literal(struct mirror *m, const struct imap_response *resp)
{
	bool mine = m->remap_lit_ready && m->remap_lit_msgno == resp->number;

	m->remap_lit_ready = false;
	return mine;
}

static uint64_t
header_message_id(const unsigned char *h, size_t len)
{
	char val[MESSAGE_ID_MAX];
	size_t n;

	n = mboxrd_header_value(h, len, "message-id:", val, sizeof val);
	return n == (size_t)-1 ? 0 : mbox_message_id_hash(val, n);
}

/* One line of the listing: UID, size, date, Message-ID. */
static void
add_listed(struct mirror *m, const struct imap_response *resp,
    const struct imap_fetch_item *item, const struct imap_arg *hdr)
{
	struct remap_server *s;
	uint64_t mid = 0;

	if (hdr->type == IMAP_ARG_STREAMED) {
		if (!take_literal(m, resp))
			return;
		mid = header_message_id(m->remap_hdr, m->remap_hdr_len);
	} else if (hdr->type == IMAP_ARG_STRING)
		mid = header_message_id((const unsigned char *)hdr->str,
		    hdr->len);
	if (m->n_rs >= (size_t)m->remap_census.most + TODO_SLACK) {
		mirror_fail(m, MIRROR_ERR_PROTOCOL, "the server listed more "
		    "messages than the mailbox holds (%u)",
		    m->remap_census.most);
		return;
	}
	if (m->n_rs == m->cap_rs) {
		size_t cap = m->cap_rs ? m->cap_rs * 2 : 256;

		if ((s = reallocarray(m->rs, cap, sizeof *s)) == NULL) {
			mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
			return;
		}
		m->rs = s;
		m->cap_rs = cap;
	}
	s = &m->rs[m->n_rs++];
	memset(s, 0, sizeof *s);
	s->uid = item->uid;
	/* (Listed all the same: a UID left out could end up below the
	 * state's last UID, never fetched.) */
	s->incomplete = !item->has_size || !item->has_internaldate;
	/* The index keeps sizes up to UINT32_MAX, bigger ones as that. */
	s->size = item->size > UINT32_MAX ? UINT32_MAX : item->size;
	s->internaldate = item->internaldate;
	s->message_id_hash = mid;
}

/* One body of REMAP_DIGESTS: its digest joins the message it is, if that
 * one asked for it. */
static void
add_digest(struct mirror *m, const struct imap_response *resp,
    const struct imap_fetch_item *item, const struct imap_arg *body)
{
	struct remap_server *s;
	size_t pos, lo = 0, hi = m->n_rs;

	if (body->type == IMAP_ARG_STREAMED) {
		if (!take_literal(m, resp))
			return;
	} else if (body->type == IMAP_ARG_STRING) {
		if (mbox_digest_write(m->remap_digest, body->str,
		    body->len) != 0 || mbox_digest_end(m->remap_digest,
		    m->remap_body_digest, NULL) != 0) {
			mirror_fail(m, MIRROR_ERR_LOCAL, "cannot hash a body");
			return;
		}
	} else
		return;	/* NIL: no digest, so no match */
	while (lo < hi) {
		pos = lo + (hi - lo) / 2;
		if (m->rs[pos].uid < item->uid)
			lo = pos + 1;
		else
			hi = pos;
	}
	if (lo == m->n_rs || m->rs[lo].uid != item->uid)
		return;
	s = &m->rs[lo];
	if (s->how != REMAP_NEED_DIGEST || s->has_digest)
		return;	/* not asked for, or a repeat (first counts) */
	memcpy(s->digest, m->remap_body_digest, REMAP_DIGEST_LEN);
	s->has_digest = true;
}

/* The FETCH responses of the mailbox while a remap runs (on_fetch_untagged
 * hands them over: a server may answer the size query and the listing
 * side by side). */
void
remapping_untagged(struct mirror *m, const struct imap_response *resp)
{
	struct imap_fetch_item item;
	const struct imap_arg *v;

	if (m->step == MS_REMAP_LISTING && resp->keyword != NULL &&
	    resp->has_number && resp->status == IMAP_STATUS_NONE) {
		if (strcmp(resp->keyword, "EXPUNGE") == 0)
			remap_census_expunge(&m->remap_census, resp->number);
		else if (strcmp(resp->keyword, "EXISTS") == 0)
			remap_census_exists(&m->remap_census, resp->number);
	}
	if (resp->keyword == NULL || strcmp(resp->keyword, "FETCH") != 0 ||
	    !resp->has_number || resp->nargs != 1 ||
	    resp->args[0].type != IMAP_ARG_LIST)
		return;
	if (imap_fetch_decode(resp->number, resp->args[0].list,
	    resp->args[0].count, &item) != 0 || !item.has_uid) {
		m->remap_lit_ready = false;
		return;
	}
	if (m->step == MS_REMAP_LISTING && (v = find_item(resp,
	    is_header_item)) != NULL)
		add_listed(m, resp, &item, v);
	else if (m->step == MS_REMAP_DIGESTS && (v = find_item(resp,
	    is_body_item)) != NULL)
		add_digest(m, resp, &item, v);
	m->remap_lit_ready = false;
}

static void
on_remap_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct mirror *m = arg;

	(void)s;
	if (m->step == MS_REMAP_LISTING || m->step == MS_REMAP_DIGESTS)
		remapping_untagged(m, resp);
}

static void
on_remap_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct mirror *m = arg;

	(void)s;
	if (m->step == MS_DONE)
		return;
	if (m->remap_pending > 0)
		m->remap_pending--;
	if (tagged->status != IMAP_STATUS_OK && !m->remap_refused) {
		m->remap_refused = true;
		imap_response_text(tagged, m->remap_refusal,
		    sizeof m->remap_refusal);
	}
	mirror_remap_ended(m, tagged);
}

/*
 * A remap's UID FETCH (of what) was refused: nothing changed, and the next
 * sync tries again, counted in the state; at REMAP_REFUSED_MAX syncs in a
 * row the remap is given up (the old file kept aside, as for a poor match)
 * so that the mailbox is mirrored again.
 */
static void
refused(struct mirror *m, const char *what)
{
	struct mailbox_state *ms = m->ms;
	char why[ERROR_TEXT_MAX + 100];

	ms->remap_refused = remap_refused_count(ms->remap_refused_uidvalidity,
	    ms->remap_refused, m->examine_uidvalidity);
	ms->remap_refused_uidvalidity = m->examine_uidvalidity;
	if (remap_give_up(ms->remap_refused)) {
		snprintf(why, sizeof why, "the server refused %s in %u syncs "
		    "in a row (UID FETCH: %s)", what, ms->remap_refused,
		    m->remap_refusal);
		remapping_decline(m, why);
		return;
	}
	log_warnx("%s: mailbox %s: UIDVALIDITY changed from %u to %u; "
	    "matching the mirror failed: UID FETCH: %s (sync %u of %u before "
	    "the match is given up)", m->prefix, box(m), ms->uidvalidity,
	    m->examine_uidvalidity, m->remap_refusal, ms->remap_refused,
	    REMAP_REFUSED_MAX);
	mirror_mailbox_failed(m, MIRROR_ERR_SERVER, "UID FETCH failed: %s; "
	    "the next sync tries again", m->remap_refusal);
	free_match(m);
	mirror_drain_mailbox(m);
}

/* REMAP_LISTING: the listing answered. */
void
remapping_listing_done(struct mirror *m, const struct imap_response *tagged)
{
	char why[120];
	uint32_t gone;
	size_t n;

	if (tagged->status != IMAP_STATUS_OK) {
		refused(m, "its listing");
		return;
	}
	if ((n = remap_server_sort(m->rs, m->n_rs)) == (size_t)-1) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	m->n_rs = n;
	gone = m->examine_exists - m->remap_census.examined;
	if (n < m->remap_census.examined) {
		/* A UID left out could end up below the state's last UID,
		 * never fetched: not a list to renumber by.  (Expunged ones
		 * are gone, and a new one's UID is above every listed one.) */
		snprintf(why, sizeof why, "the server listed %zu of its %u "
		    "messages%s", n, m->examine_exists, gone > 0 ?
		    " (fewer even than those not expunged meanwhile)" : "");
		remapping_decline(m, why);
		return;
	}
	if (gone > 0)
		log_info("%s: mailbox %s: %u of its %u %s expunged while it "
		    "was listed", m->prefix, box(m), gone, m->examine_exists,
		    num_plural(m->examine_exists, "message", "messages"));
	decide(m, false);
}

/* REMAP_DIGESTS: a UID FETCH of bodies answered; all of them, and the
 * match is final. */
void
remapping_digests_done(struct mirror *m, const struct imap_response *tagged)
{
	if (m->remap_pending > 0)
		return;
	(void)tagged;	/* the first refusal's text is kept */
	if (m->remap_refused) {
		refused(m, "the bodies to compare");
		return;
	}
	decide(m, true);
}

/* The bodies of the ambiguous matches, REMAP_DIGEST_UIDS a command. */
static void
send_digests(struct mirror *m)
{
	uint32_t uids[REMAP_DIGEST_UIDS];
	struct imap_cmd cmd;
	size_t k = 0, need;
	char *set;

	mirror_set_state(m, MS_REMAP_DIGESTS);
	for (size_t i = 0; i <= m->n_rs; i++) {
		if (i < m->n_rs && m->rs[i].how == REMAP_NEED_DIGEST) {
			uids[k++] = m->rs[i].uid;
			m->remap_digests++;
		}
		if (k == 0 || (k < REMAP_DIGEST_UIDS && i < m->n_rs))
			continue;
		need = imap_seqset_format(NULL, 0, uids, k) + 1;
		if ((set = malloc(need)) == NULL) {
			mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
			return;
		}
		imap_seqset_format(set, need, uids, k);
		session_cmd_init(m->session, &cmd, "UID FETCH");
		imap_cmd_add_raw(&cmd, "%s (UID BODY.PEEK[])", set);
		free(set);
		if (session_send(m->session, &cmd, on_remap_untagged,
		    on_remap_done, m) != 0) {
			mirror_fail(m, MIRROR_ERR_LOCAL, "cannot queue UID "
			    "FETCH");
			return;
		}
		m->remap_pending++;
		k = 0;
	}
	log_info("%s: mailbox %s: comparing %u %s by digest", m->prefix,
	    box(m), m->remap_digests, num_plural(m->remap_digests,
	    "message", "messages"));
}

/*
 * The matched messages renumbered, durably: the index first, then the
 * state (see the top of this file for why in this order).  0, or -1 when
 * the run has failed.
 */
static int
renumber(struct mirror *m, uint32_t *last_r, size_t *n_present_r)
{
	struct mailbox_state *ms = m->ms;
	uint32_t *present, last = remap_last_uid(m->rs, m->n_rs);
	size_t np = 0;
	char *error = NULL;

	/* Records renumbered by an attempt a crash cut short, before the
	 * state said so: what they claim is decided again below. */
	for (size_t i = 0; i < m->rl_index.n; i++)
		if (m->rl_index.v[i].uidvalidity == m->examine_uidvalidity)
			m->rl_index.v[i].uid = m->rl_index.v[i].uidvalidity = 0;
	for (size_t i = 0; i < m->n_rs; i++) {
		struct msgindex_entry *e;

		if (!remap_matched(m->rs[i].how))
			continue;
		e = &m->rl_index.v[m->rs[i].local];
		e->uid = m->rs[i].uid;
		e->uidvalidity = m->examine_uidvalidity;
	}
	if (msgindex_rewrite(m->remap_index_path, ms->file, m->rl_index.v,
	    m->rl_index.n, &error) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "%s", error != NULL ? error :
		    "cannot rewrite the index");
		free(error);
		return -1;
	}
	if ((present = calloc(m->n_rs + 1, sizeof *present)) == NULL) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < m->n_rs; i++)
		if (m->rs[i].uid > last && remap_matched(m->rs[i].how))
			present[np++] = m->rs[i].uid;
	ms->uidvalidity = m->examine_uidvalidity;
	ms->last_uid = last;
	ms->uidnext = 0;
	ms->hole_uid = ms->hole_tries = ms->skipped_total = 0;
	ms->n_skipped = 0;
	ms->remap_refused = ms->remap_refused_uidvalidity = 0;
	if (state_set_remapped(ms, present, np) != 0) {
		free(present);
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return -1;
	}
	free(present);
	*last_r = last;
	*n_present_r = np;
	return mirror_save_state(m);
}

/* The match, taken or refused. */
static void
decide(struct mirror *m, bool final)
{
	struct remap_counts c;
	uint32_t old = m->ms->uidvalidity, last;
	size_t np;
	char why[200];

	if (remap_match(m->rl, m->rl_index.n, m->rs, m->n_rs, final,
	    &c) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	switch (remap_accept(&c)) {
	case REMAP_DIGESTS:
		if (!final) {
			send_digests(m);
			return;
		}
		/* (final leaves nothing to hash) */
		/* FALLTHROUGH */
	case REMAP_POOR:
		if (c.server == 0)
			snprintf(why, sizeof why, "the mailbox is empty now");
		else
			snprintf(why, sizeof why, "only %zu of %zu server %s "
			    "matched the mirror by content (under half)",
			    c.matched, c.server, num_plural(c.server,
			    "message", "messages"));
		remapping_decline(m, why);
		return;
	case REMAP_GOOD:
		break;
	}
	if (renumber(m, &last, &np) != 0 ||
	    commit_open_index(m, m->remap_mbox_path) != 0)
		return;
	log_warnx("%s: mailbox %s: UIDVALIDITY changed from %u to %u; %zu of "
	    "%zu server %s matched the mirror by content (%u compared by "
	    "digest), fetching %zu", m->prefix, box(m), old,
	    m->examine_uidvalidity, c.matched, c.server, num_plural(c.server,
	    "message", "messages"), m->remap_digests, c.server - c.matched);
	log_debug("%s: mailbox %s: last UID %u, %zu matched above it",
	    m->prefix, box(m), last, np);
	free_match(m);
	m->first_sync = false;
	/* A size query sent with the EXAMINE asked from the old state. */
	mirror_set_state(m, MS_REFETCHING);
	mirror_refetch(m);
}
