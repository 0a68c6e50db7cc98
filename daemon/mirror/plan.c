#include "mirror/plan.h"

#include <stdlib.h>
#include <strings.h>

bool
plan_uid_find(const uint32_t *v, size_t n, uint32_t uid, size_t *pos_r)
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
 * One pass over the arrivals: each marks its UID resolved, the resolved
 * prefix of todo only grows, and a prefix of arrivals is a commit point when
 * its highest UID lies inside that resolved prefix.  Linear but for the
 * binary searches: a hostile order costs no more than a polite one.
 */
size_t
plan_commit_point(const uint32_t *todo, size_t n_todo, bool *resolved,
    const struct plan_arrival *arr, size_t n_arr, size_t *contig_r)
{
	size_t contig = 0, k = 0, pos, best_contig;
	uint32_t highest = 0;

	while (contig < n_todo && resolved[contig])
		contig++;
	best_contig = contig;
	for (size_t j = 0; j < n_arr; j++) {
		if (!plan_uid_find(todo, n_todo, arr[j].uid, &pos))
			break;	/* not asked for: nothing past it commits */
		resolved[pos] = true;
		if (arr[j].uid > highest)
			highest = arr[j].uid;
		while (contig < n_todo && resolved[contig])
			contig++;
		if (contig > 0 && highest <= todo[contig - 1]) {
			k = j + 1;
			best_contig = contig;
		}
	}
	*contig_r = best_contig;
	return k;
}

unsigned
plan_hole_tries(uint32_t hole_uid, unsigned hole_tries, uint32_t uid,
    bool counted_this_sync)
{
	if (hole_uid != uid)
		return 1;
	if (counted_this_sync)
		return hole_tries;
	return hole_tries + 1;
}

enum plan_mailbox_step
plan_mailbox_step(const struct plan_status *st, const struct plan_known *k)
{
	bool same;

	if (!st->has_status || !k->known)
		return PLAN_MBX_OPEN;
	same = k->uidvalidity == st->uidvalidity;
	if (same && k->uidnext != 0 && k->uidnext == st->uidnext &&
	    k->hole_uid == 0)
		return PLAN_MBX_UNCHANGED;
	if (same && k->last_uid == UINT32_MAX)
		return PLAN_MBX_UNCHANGED;
	if (same && st->messages == 0)
		return PLAN_MBX_EMPTY;
	return PLAN_MBX_OPEN;
}

uint32_t
plan_fetch_base(const struct plan_status *st, const struct plan_known *k,
    bool *direct_r)
{
	/* Without STATUS, assume the state is current: EXAMINE tells. */
	uint32_t base = k->known && (k->uidvalidity == st->uidvalidity ||
	    !st->has_status) ? k->last_uid : 0;
	uint32_t expect = st->uidnext > base ? st->uidnext - base - 1 : 0;

	*direct_r = base > 0 && st->has_status &&
	    expect <= PLAN_DIRECT_FETCH_MAX && (!k->known ||
	    (k->newest_skipped <= base && k->newest_remapped <= base));
	return base;
}

bool
plan_uid_listed(uint32_t uid, uint32_t last_uid, const uint32_t *skipped,
    size_t n_skipped)
{
	if (uid <= last_uid)
		return false;
	for (size_t i = 0; i < n_skipped; i++)
		if (skipped[i] == uid)
			return false;
	return true;
}

struct uid_entry {
	uint32_t uid;
	size_t arrival;
	uint64_t size;
	bool done;
};

static int
uid_entry_cmp(const void *a, const void *b)
{
	const struct uid_entry *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

size_t
plan_todo_sort(uint32_t *uids, uint64_t *sizes, bool *done, size_t n)
{
	struct uid_entry *v;
	size_t i, o = 0;

	if (n == 0)
		return 0;
	if ((v = calloc(n, sizeof *v)) == NULL)
		return (size_t)-1;
	for (i = 0; i < n; i++) {
		v[i].uid = uids[i];
		v[i].arrival = i;
		v[i].size = sizes[i];
		v[i].done = done[i];
	}
	qsort(v, n, sizeof *v, uid_entry_cmp);
	for (i = 0; i < n; i++) {
		if (o > 0 && v[i].uid == uids[o - 1])
			continue;
		uids[o] = v[i].uid;
		sizes[o] = v[i].size;
		done[o] = v[i].done;
		o++;
	}
	free(v);
	return o;
}

uint32_t
plan_gapless_after(const uint32_t *got, size_t n, uint32_t hi)
{
	uint32_t k = 0;
	size_t pos;

	if (hi == UINT32_MAX || !plan_uid_find(got, n, hi + 1, &pos))
		return 0;
	/* got is ascending and distinct: the run goes on in place. */
	while (pos + k < n && got[pos + k] == hi + 1 + k) {
		k++;
		if (hi + k == UINT32_MAX)
			break;
	}
	return k;
}

size_t
plan_direct_commit_point(uint32_t last, const struct plan_arrival *arr,
    size_t n, uint32_t *last_r)
{
	uint32_t highest = last;
	size_t k = 0;

	*last_r = last;
	for (size_t j = 0; j < n; j++) {
		if (arr[j].uid > highest)
			highest = arr[j].uid;
		if ((uint64_t)highest == (uint64_t)last + j + 1) {
			k = j + 1;
			*last_r = highest;
		}
	}
	return k;
}

bool
plan_commit_can_wait(bool more_coming, uint64_t uncommitted_bytes,
    double since_commit)
{
	return more_coming && uncommitted_bytes < PLAN_COMMIT_MAX_BYTES &&
	    since_commit < PLAN_COMMIT_INTERVAL;
}

bool
plan_commit_due(double since_commit, double since_try)
{
	return since_commit >= PLAN_COMMIT_EVERY &&
	    since_try >= PLAN_COMMIT_EVERY;
}

size_t
plan_batch_cut(const uint64_t *sizes, size_t n_avail,
    const struct plan_batch_cap *cap)
{
	uint64_t bytes = 0;
	size_t n = 0;

	while (n < n_avail && (n == 0 || (n < cap->messages &&
	    bytes + sizes[n] <= cap->bytes)))
		bytes += sizes[n++];
	return n;
}

/* One dimension of plan_batch_pace(). */
static uint64_t
pace_one(uint64_t prev, uint64_t amount, double secs, double target,
    unsigned growth, uint64_t min, uint64_t max)
{
	double want, grown = (double)prev * (growth > 1 ? growth : 1);

	if (secs > 0)
		want = (double)amount / secs * target;
	else
		want = grown;
	if (want > grown)
		want = grown;
	if (want > (double)max)
		want = (double)max;
	if (want < (double)min)
		want = (double)min;
	return want < 1 ? 1 : (uint64_t)want;
}

struct plan_batch_cap
plan_batch_pace(const struct plan_pace *p, const struct plan_batch_cap *prev,
    uint64_t bytes, size_t messages, double secs)
{
	struct plan_batch_cap c = prev != NULL ? *prev : p->first;

	if (prev != NULL && (bytes > 0 || messages > 0)) {
		c.bytes = pace_one(prev->bytes, bytes, secs, p->target_secs,
		    p->growth, p->min.bytes, p->max.bytes);
		c.messages = (size_t)pace_one(prev->messages, messages, secs,
		    p->target_secs, p->growth, p->min.messages,
		    p->max.messages);
	}
	/* Whatever came in: within the limits, never 0. */
	if (c.bytes > p->max.bytes)
		c.bytes = p->max.bytes;
	if (c.bytes < p->min.bytes)
		c.bytes = p->min.bytes;
	if (c.messages > p->max.messages)
		c.messages = p->max.messages;
	if (c.messages < p->min.messages)
		c.messages = p->min.messages;
	if (c.messages == 0)
		c.messages = 1;
	if (c.bytes == 0)
		c.bytes = 1;
	return c;
}

bool
plan_refusal_transient(const char *code)
{
	static const char *const codes[] = { "UNAVAILABLE", "INUSE", "LIMIT",
	    "OVERQUOTA" };

	if (code == NULL)
		return false;
	for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
		if (strcasecmp(code, codes[i]) == 0)
			return true;
	return false;
}

bool
plan_may_reconnect(bool got_somewhere, unsigned reconnects, unsigned max,
    enum mirror_error error)
{
	return got_somewhere && reconnects < max &&
	    (error == MIRROR_ERR_NETWORK || error == MIRROR_ERR_TIMEOUT ||
	    error == MIRROR_ERR_SERVER || error == MIRROR_ERR_TLS);
}

bool
plan_progress_loud(bool first_sync, size_t messages, uint64_t bytes)
{
	return first_sync || messages >= PLAN_LOUD_MESSAGES ||
	    bytes >= PLAN_LOUD_BYTES;
}

uint32_t
plan_new_estimate(const struct plan_status *st, const struct plan_known *k)
{
	uint32_t n;

	switch (plan_mailbox_step(st, k)) {
	case PLAN_MBX_UNCHANGED:
	case PLAN_MBX_EMPTY:
		return 0;
	case PLAN_MBX_OPEN:
		break;
	}
	if (!st->has_status)
		return 0;	/* unknown: counted when its sizes come */
	n = st->messages;
	if (k->known && k->uidvalidity == st->uidvalidity &&
	    st->uidnext > k->last_uid && st->uidnext - k->last_uid - 1 < n)
		n = st->uidnext - k->last_uid - 1;
	return n;
}

enum plan_push
plan_push_mailbox(bool selected, const struct plan_known *k,
    uint32_t watched_uidvalidity)
{
	if (!selected || !k->known || watched_uidvalidity == 0 ||
	    k->uidvalidity != watched_uidvalidity)
		return PLAN_PUSH_FULL_SYNC;
	if (k->hole_uid != 0 || k->last_uid == UINT32_MAX)
		return PLAN_PUSH_FULL_SYNC;
	return PLAN_PUSH_FETCH;
}
