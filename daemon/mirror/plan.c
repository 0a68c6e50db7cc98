#include "mirror/plan.h"

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
