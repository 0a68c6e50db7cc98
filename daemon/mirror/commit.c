/*
 * What the commit protocol (DESIGN.md section 5) does with the mbox and
 * the state: opening a mailbox's mbox at the size the state recorded
 * (after reconciling UIDVALIDITY, keeping strangers' files aside), making
 * the appended prefix durable up to the commit point (plan_commit_point()),
 * then its records in the mailbox's index (mirror/msgindex.h), and then
 * recording it in the state; and holes: UIDs asked for and not delivered,
 * counted once a sync and given up after PLAN_HOLE_TRIES_MAX.
 */
#include "mirror/mirror_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "log.h"
#include "mbox/mbox.h"
#include "mirror/layout.h"
#include "mirror/names.h"
#include "util/num.h"

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Opening */

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
	mirror_mailbox_failed(m, MIRROR_ERR_LOCAL, "%s", error);
	mbox_close(&m->mbox);
	msgindex_close(&m->msgindex);
	m->ms = NULL;
	mirror_set_state(m, MS_SKIPPING);
}

/*
 * The index of an mbox just moved from rel to to (under the output
 * directory) goes with it, so that it is never taken for the index of the
 * new file at rel.  0, or -1 with a malloc'ed *error_r.
 */
static int
move_index(struct mirror *m, const char *rel, const char *to, char **error_r)
{
	size_t olen = strlen(m->account->output);
	char *from_ix, *to_ix = NULL;
	const char *to_rel;
	int r = -1;

	/* layout_keep_aside() names it output "/" rel'. */
	to_rel = strncmp(to, m->account->output, olen) == 0 &&
	    to[olen] == '/' ? to + olen + 1 : to;
	if ((from_ix = msgindex_path(m->state_dir, rel)) == NULL ||
	    (to_ix = msgindex_path(m->state_dir, to_rel)) == NULL)
		*error_r = NULL;
	else
		r = msgindex_move(from_ix, to_ix, to_rel, error_r);
	free(from_ix);
	free(to_ix);
	return r;
}

/* Moves a file of the mailbox out of the way, keeping it (its index
 * too). */
static int
keep_aside(struct mirror *m, const char *rel, const char *tag)
{
	char *to, *error;

	if (layout_keep_aside(m->account->output, rel, tag, &to,
	    &error) != 0 || (to != NULL && move_index(m, rel, to,
	    &error) != 0)) {
		mailbox_local_failure(m, error != NULL ? error :
		    "out of memory");
		free(error);
		free(to);
		return -1;
	}
	if (to != NULL)
		log_warnx("%s: kept the previous mirror as %s", m->prefix, to);
	free(to);
	return 0;
}

/*
 * Opens the index of the mbox just opened at path: a missing one is
 * rebuilt from the mbox's committed bytes, a corrupt one kept aside and
 * rebuilt.  When another program changed the mbox (changed), the index is
 * first checked against its bytes: its offsets may name other bytes now,
 * even where the sizes still agree.  0, or -1 when the mailbox failed.
 */
static int
open_index(struct mirror *m, const char *path, bool changed)
{
	const char *box = m->mbxs[m->cur].display;
	char *ix_path, *corrupt = NULL, *error = NULL;
	size_t rebuilt = (size_t)-1;

	if ((ix_path = msgindex_path(m->state_dir, m->ms->file)) == NULL) {
		mailbox_local_failure(m, "out of memory");
		return -1;
	}
	if ((changed && msgindex_check(ix_path, m->ms->file, path,
	    mbox_committed_size(m->mbox), &rebuilt, &error) != 0) ||
	    msgindex_open_ex(ix_path, m->ms->file, path,
	    mbox_committed_size(m->mbox), &m->msgindex, changed ? NULL :
	    &rebuilt, &corrupt, &error) != 0) {
		log_warnx("%s: mailbox %s: message index: %s", m->prefix, box,
		    error != NULL ? error : "out of memory");
		mailbox_local_failure(m, error != NULL ? error :
		    "message index: out of memory");
		free(error);
		free(ix_path);
		return -1;
	}
	if (corrupt != NULL)
		log_warnx("%s: mailbox %s: its message index could not be "
		    "read; kept as %s and rebuilt from %s", m->prefix, box,
		    corrupt, path);
	if (changed)
		log_info("%s: mailbox %s: checked the message index %s against "
		    "%s, which another program changed; %zu %s found no "
		    "record of theirs", m->prefix, box, ix_path, path,
		    rebuilt, num_plural(rebuilt, "message", "messages"));
	if (rebuilt != (size_t)-1 && rebuilt > 0)
		log_info("%s: mailbox %s: rebuilt the message index %s from %s "
		    "(%zu %s): a rebuilt index knows where each message is, "
		    "its digest, Message-ID and date, not its UID, flags or "
		    "keywords", m->prefix, box, ix_path, path, rebuilt,
		    num_plural(rebuilt, "message", "messages"));
	free(corrupt);
	free(ix_path);
	return 0;
}

/* The index of the mbox open at path, for appends, after a remap
 * rewrote it.  0, or -1 when the mailbox failed. */
int
commit_open_index(struct mirror *m, const char *path)
{
	return open_index(m, path, false);
}

/* EXAMINE answered: reconcile the state with UIDVALIDITY, open the mbox. */
void
commit_open_mailbox(struct mirror *m)
{
	struct mbx *mb = &m->mbxs[m->cur];
	struct mailbox_state *ms = state_get(&m->state, mb->name);
	struct layout_file *lf = NULL;
	enum mbox_open_result r;
	char *name, *rel = NULL, *record, *error = NULL, tag[40];
	char *remap_path = NULL;
	const char *path;
	bool fresh, remap = false;

	if (ms == NULL) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	m->ms = ms;
	fresh = ms->uidvalidity == 0;
	name = names_mbox_path(mb->name, strlen(mb->name), mb->delimiter,
	    false);
	if (name == NULL || layout_unique_file(&m->state, ms, name,
	    &rel) != 0) {
		free(name);
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	if (strcmp(rel, name) != 0)
		log_warnx("%s: mailbox %s: %s is another mailbox's mirror; "
		    "using %s", m->prefix, mb->display, name, rel);
	free(name);
	if (!fresh && ms->uidvalidity != m->examine_uidvalidity &&
	    remapping_candidate(m, ms)) {
		/* The mirror may hold these messages under other UIDs: opened
		 * as it is, matched by content (remapping.c) before anything
		 * is fetched. */
		remap = true;
	} else if (!fresh && ms->uidvalidity != m->examine_uidvalidity) {
		/* (After a remap declined, it said so already.) */
		if (!m->remap_declined)
			log_warnx("%s: mailbox %s: UIDVALIDITY changed from %u "
			    "to %u; mirroring it afresh", m->prefix,
			    mb->display, ms->uidvalidity,
			    m->examine_uidvalidity);
		names_aside_tag(NAMES_ASIDE_UIDVALIDITY, ms->uidvalidity, tag,
		    sizeof tag);
		if (keep_aside(m, ms->file != NULL ? ms->file : rel,
		    tag) != 0) {
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
		/* UIDs an earlier remap found in the old file name other
		 * messages now: all of them are fetched. */
		(void)state_set_remapped(ms, NULL, 0);
		ms->remap_refused = ms->remap_refused_uidvalidity = 0;
		free(ms->file);
		ms->file = rel;
		rel = NULL;
		/* Recorded before the file exists, so a crash leftover is
		 * ours to truncate, not a stranger's to keep.  (A file moved
		 * aside above is durably so by now.) */
		if (mirror_save_state(m) != 0)
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
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
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
	/* (A mailbox changed by another program is not matched: its index
	 * no longer describes it.) */
	if (remap && r != MBOX_OPEN_SHORTER && (remap_path = strdup(path)) ==
	    NULL) {
		layout_file_free(&lf);
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return;
	}
	/* The index is checked against a changed mbox before the state
	 * records its new size: a crash in between finds the change again.
	 * A remap rewrites the index: it is opened for appends after that
	 * (commit_open_index()). */
	if (!remap && open_index(m, path, r == MBOX_OPEN_SHORTER ||
	    r == MBOX_OPEN_CHANGED) != 0) {
		layout_file_free(&lf);
		return;
	}
	/* The size the next append starts at must be durable before the
	 * append: a crash during it must find the tail past this size, not
	 * past the old one, to cut it as ours. */
	if ((r == MBOX_OPEN_SHORTER || r == MBOX_OPEN_CHANGED) &&
	    mirror_save_state(m) != 0) {
		free(remap_path);
		layout_file_free(&lf);
		return;
	}
	layout_file_free(&lf);
	fetch_forget_arrivals(m);
	m->pend_active = false;
	m->n_got = 0;
	m->contig = 0;
	m->batch_bytes = 0;
	m->nil_uid = 0;
	m->mbx_messages = m->mbx_bytes = 0;
	m->mbx_recv_bytes = m->mbx_recv_messages = 0;
	m->first_sync = fresh;
	if (remap) {
		if (remap_path != NULL)
			remapping_start(m, remap_path);
		else
			remapping_decline(m, "the mbox is shorter than the "
			    "state says");
		free(remap_path);
		return;
	}
	/* The fetch sent with EXAMINE asked after fetch_base: if the state
	 * turned out older (a new UIDVALIDITY), its answers do not count. */
	mirror_set_state(m, ms->last_uid != m->fetch_base ? MS_REFETCHING :
	    MS_FETCHING);
}

/* Commits */

/* A commit is due in the middle of a batch (plan_commit_due()). */
bool
commit_due(const struct mirror *m)
{
	ev_tstamp now = ev_now(m->loop);

	return plan_commit_due(now - m->last_commit, now - m->last_commit_try);
}

/* Whether this batch's commit may join a later one's. */
bool
commit_can_wait(const struct mirror *m)
{
	return plan_commit_can_wait(m->next_todo < m->n_todo ||
	    m->in_flight > 0, m->batch_bytes, ev_now(m->loop) - m->last_commit);
}

/*
 * How many arrivals may be committed, and the state's last UID after them.
 * -1 when out of memory.
 */
static ssize_t
commit_point(struct mirror *m, uint32_t *last_r)
{
	uint32_t last = m->ms->last_uid;
	size_t k, contig;
	bool *resolved;

	*last_r = last;
	if (m->direct && !m->sizes_complete)
		return (ssize_t)plan_direct_commit_point(last, m->arr,
		    m->n_arr, last_r);
	if ((m->direct && fetch_merge_extras(m) != 0) ||
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
void
commit_advance_contig(struct mirror *m)
{
	while (m->contig < m->n_todo && (m->todo_done[m->contig] ||
	    m->todo[m->contig] <= m->ms->last_uid))
		m->todo_done[m->contig++] = true;
}

/*
 * The records of arr[0..k), now durable in the mbox, appended to the index
 * and made durable; the rest are dropped with what was cut.  An index that
 * cannot be written fails the run before the state records the new size:
 * the next sync cuts the mbox back and fetches those messages again.
 */
static int
index_committed(struct mirror *m, size_t k)
{
	char *error = NULL;

	msgindex_discard(m->msgindex);
	for (size_t j = 0; j < k; j++)
		if (msgindex_add(m->msgindex, &m->arr_ix[j]) != 0) {
			mirror_fail(m, MIRROR_ERR_LOCAL, "message index: UID "
			    "%u: %s", m->arr_ix[j].uid, errno == EINVAL ?
			    "out of order" : "out of memory");
			return -1;
		}
	if (msgindex_commit(m->msgindex, &error) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "message index: %s; nothing "
		    "after the last sync is recorded (the next one fetches it "
		    "again)", error != NULL ? error : "out of memory");
		free(error);
		return -1;
	}
	return 0;
}

/*
 * The commit protocol: the mbox is made durable up to the commit point
 * (mirror/plan.h), then the state says so.  With salvage the rest of what
 * was appended is cut off (the run cannot wait for what would make it
 * committable); without, nothing is committed unless all of it can be.
 * 0, or -1 when the run has failed.
 */
int
commit_appended(struct mirror *m, bool salvage)
{
	ssize_t k;
	size_t pos;
	uint32_t last;
	uint64_t size, bytes = 0;

	if (m->mbox == NULL || m->ms == NULL)
		return 0;
	/* A size list still coming in may be out of order: the searches and
	 * the walk below need it sorted. */
	if ((m->todo_unsorted && fetch_sort_todo(m) != 0) ||
	    (k = commit_point(m, &last)) < 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
		return -1;
	}
	if (!salvage && (size_t)k < m->n_arr)
		return 0;
	size = k > 0 ? m->arr[k - 1].end : mbox_committed_size(m->mbox);
	if (mbox_commit_upto(m->mbox, size, &size) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "%s", mbox_error(m->mbox));
		return -1;
	}
	/* Then the index, before the state counts on what it describes. */
	if (m->msgindex != NULL && index_committed(m, (size_t)k) != 0)
		return -1;
	/* What was cut off was not delivered after all. */
	forget_cut(m, (size_t)k);
	for (ssize_t j = 0; j < k; j++) {
		if (plan_uid_find(m->todo, m->n_todo, m->arr[j].uid, &pos))
			m->todo_done[pos] = true;
		bytes += m->arr_sizes[j];
	}
	m->last_commit = ev_now(m->loop);
	m->ms->last_uid = last;
	commit_advance_contig(m);
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
	fetch_forget_arrivals(m);
	m->batch_bytes = 0;
	return mirror_save_state(m);
}

/*
 * uid was asked for and its fetch has ended without it.  Counted once per
 * sync; after PLAN_HOLE_TRIES_MAX syncs it is given up, so that one message
 * the server never delivers does not stop the mailbox for good.  True when
 * it was given up (the fetch may go past it).
 */
bool
commit_hole(struct mirror *m, uint32_t uid, const char *why)
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
		mirror_mailbox_failed(m, MIRROR_ERR_SERVER,
		    "UID %u: %s; the next sync asks again",
		    uid, why);
		return false;
	}
	log_warnx("%s: mailbox %s: UID %u: %s in %u syncs in a row; given "
	    "up: this message is not in the mirror (--status lists it)",
	    m->prefix, box, uid, why, ms->hole_tries);
	if (state_add_skipped(ms, uid) != 0) {
		mirror_fail(m, MIRROR_ERR_LOCAL, "out of memory");
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
uint32_t
commit_first_undelivered(const struct mirror *m, size_t from, size_t to)
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
bool
commit_batch_complete(struct mirror *m, const struct batch *b)
{
	size_t from = b->open ? 0 : b->first;
	size_t to = b->open ? m->n_todo : b->first + b->n;
	uint32_t uid;

	while ((uid = commit_first_undelivered(m, from, to)) != 0)
		if (!commit_hole(m, uid, hole_reason(m, uid)))
			return false;
	return true;
}

