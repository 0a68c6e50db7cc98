#include "verify_compare.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
verify_problems_add(struct verify_problems *l, const struct verify_problem *p)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct verify_problem *v = reallocarray(l->v, cap, sizeof *v);

		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *p;
	return 0;
}

void
verify_problems_free(struct verify_problems *l)
{
	free(l->v);
	memset(l, 0, sizeof *l);
}

const char *
verify_kind_name(enum verify_kind kind)
{
	switch (kind) {
	case VERIFY_MISSING:
		return "missing";
	case VERIFY_GIVEN_UP:
		return "given_up";
	case VERIFY_DUPLICATE_UID:
		return "duplicate_uid";
	case VERIFY_SIZE:
		return "size";
	case VERIFY_COUNT:
		return "count";
	case VERIFY_UIDVALIDITY:
		return "uidvalidity";
	case VERIFY_DEEP_DIFFERS:
		return "differs_from_server";
	case VERIFY_DEEP_UNMATCHED:
		return "not_on_server";
	case VERIFY_CHANGED:
		return "changed";
	case VERIFY_NO_ENTRY:
		return "no_entry";
	case VERIFY_REMOVED:
		return "removed";
	case VERIFY_MOVED:
		return "moved";
	case VERIFY_LOST:
		return "lost";
	case VERIFY_DUPLICATE_ENTRY:
		return "duplicate_entry";
	case VERIFY_FOREIGN:
		return "foreign_bytes";
	case VERIFY_TAIL:
		return "tail";
	case VERIFY_SHORT:
		return "short";
	}
	return "?";
}

const char *
verify_problem_text(const struct verify_problem *p, char *buf, size_t size)
{
	unsigned long long off = p->offset, len = p->length;
	unsigned long long a = p->a, b = p->b;

	switch (p->kind) {
	case VERIFY_MISSING:
		snprintf(buf, size, "on the server, not in the mirror");
		break;
	case VERIFY_GIVEN_UP:
		snprintf(buf, size, "on the server, not in the mirror: the "
		    "sync gave it up (the server did not deliver it)");
		break;
	case VERIFY_DUPLICATE_UID:
		snprintf(buf, size, "indexed twice (again at offset %llu)",
		    off);
		break;
	case VERIFY_SIZE:
		snprintf(buf, size, "size differs: %llu bytes on the server, "
		    "%llu recorded in the mirror", a, b);
		break;
	case VERIFY_COUNT:
		snprintf(buf, size, "%llu message%s on the server that no "
		    "recorded UID accounts for, but only %llu entr%s without a "
		    "recorded UID (a rebuilt index): %llu missing", b,
		    b == 1 ? "" : "s", a, a == 1 ? "y" : "ies", b - a);
		break;
	case VERIFY_UIDVALIDITY:
		snprintf(buf, size, "UIDVALIDITY is %llu on the server, %llu "
		    "in the mirror: its UIDs cannot be compared (the next sync "
		    "mirrors it afresh)", a, b);
		break;
	case VERIFY_DEEP_DIFFERS:
		snprintf(buf, size, "the server's message differs from the "
		    "mirror's entry at offset %llu (%llu bytes)", off, len);
		break;
	case VERIFY_DEEP_UNMATCHED:
		snprintf(buf, size, "the entry at offset %llu (%llu bytes) "
		    "matches no message on the server", off, len);
		break;
	case VERIFY_CHANGED:
		snprintf(buf, size, "changed: the %llu bytes at offset %llu "
		    "differ from what was written (bit rot or an edit)", len,
		    off);
		break;
	case VERIFY_NO_ENTRY:
		snprintf(buf, size, "no entry at offset %llu: no From_ line "
		    "there", off);
		break;
	case VERIFY_REMOVED:
		snprintf(buf, size, "removed: not in the file (its %llu bytes "
		    "at offset %llu now hold other entries)", len, off);
		break;
	case VERIFY_MOVED:
		if (p->uid_last != p->uid)
			snprintf(buf, size, "to UID %u: %llu entries intact "
			    "but %" PRId64 " bytes from the offsets indexed "
			    "(bytes %s before them)", p->uid_last, a, p->shift,
			    p->shift < 0 ? "removed" : "added");
		else
			snprintf(buf, size, "intact but %" PRId64 " bytes from "
			    "offset %llu indexed (bytes %s before it)",
			    p->shift, off, p->shift < 0 ? "removed" : "added");
		break;
	case VERIFY_LOST:
		snprintf(buf, size, "lost: the file ends before its entry "
		    "(offset %llu, %llu bytes) does (a truncated tail)", off,
		    len);
		break;
	case VERIFY_DUPLICATE_ENTRY:
		snprintf(buf, size, "in the file twice: another copy at "
		    "offset %llu (%llu bytes)", off, len);
		break;
	case VERIFY_FOREIGN:
		snprintf(buf, size, "%llu byte%s at offset %llu belong to no "
		    "entry (added by another program?)", len,
		    len == 1 ? "" : "s", off);
		break;
	case VERIFY_TAIL:
		snprintf(buf, size, "%llu byte%s after the last entry "
		    "(offset %llu): not committed yet, or another program's",
		    len, len == 1 ? "" : "s", off);
		break;
	case VERIFY_SHORT:
		snprintf(buf, size, "the file ends at %llu bytes, %llu "
		    "short of where its last entry ended: its tail was cut",
		    a, b - a);
		break;
	}
	return buf;
}

/* Against the server */

static int
uid_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

int
verify_size_ranges(const struct verify_indexed *ix, size_t n, size_t chunk,
    uint32_t **ends_r, size_t *n_r)
{
	uint32_t *uids, *ends;
	size_t nuids = 0, k = 0;

	*ends_r = NULL;
	*n_r = 0;
	if ((uids = calloc(n ? n : 1, sizeof *uids)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (ix[i].uid != 0)
			uids[nuids++] = ix[i].uid;
	qsort(uids, nuids, sizeof *uids, uid_cmp);
	for (size_t i = 0; i < nuids; i++)
		if (k == 0 || uids[k - 1] != uids[i])
			uids[k++] = uids[i];
	nuids = k;
	if (chunk == 0)
		chunk = 1;
	if ((ends = calloc(nuids / chunk + 1, sizeof *ends)) == NULL) {
		free(uids);
		return -1;
	}
	/* A run's last UID ends a query, unless it is the last UID of all
	 * (the "*" query takes it with whatever came after). */
	for (size_t i = chunk - 1; i + 1 < nuids; i += chunk)
		ends[(*n_r)++] = uids[i];
	ends[(*n_r)++] = 0;
	free(uids);
	*ends_r = ends;
	return 0;
}

bool
verify_refusal_gone(bool no, const char *code)
{
	return no && (code == NULL || strcasecmp(code, "NONEXISTENT") == 0);
}

static int
listed_by_uid(const void *x, const void *y)
{
	const struct verify_listed *a = x, *b = y;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

struct uid_pos {
	uint32_t uid;
	size_t i;
};

static int
uid_pos_cmp(const void *x, const void *y)
{
	const struct uid_pos *a = x, *b = y;

	if (a->uid != b->uid)
		return a->uid < b->uid ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

static bool
uid_in(const uint32_t *v, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid] == uid)
			return true;
		if (v[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Listed UIDs up to last_uid that no UID in the index accounts for, when
 * some entries have no UID (rebuilt): they may be those, so only their
 * number can be wrong. */
static int
compare_unknown(size_t unknown, size_t unmatched, struct verify_problems *out,
    struct verify_server_counts *c)
{
	struct verify_problem p = { .kind = VERIFY_COUNT, .a = unknown,
	    .b = unmatched };

	c->uids_unknown = true;
	c->in_mirror += unmatched < unknown ? unmatched : unknown;
	if (unknown > unmatched)
		c->deleted += unknown - unmatched;
	return unmatched > unknown ? verify_problems_add(out, &p) : 0;
}

int
verify_compare_server(struct verify_listed *listed, size_t nlisted,
    const struct verify_indexed *ix, size_t nix, uint32_t last_uid,
    const uint32_t *skipped, size_t nskipped, struct verify_problems *out,
    struct verify_server_counts *counts_r)
{
	struct verify_server_counts *c = counts_r;
	struct uid_pos *byuid;
	size_t k = 0, j, nknown = 0, unknown = 0, unmatched = 0;
	int r = -1;

	memset(c, 0, sizeof *c);
	if (nlisted > 0)
		qsort(listed, nlisted, sizeof *listed, listed_by_uid);
	if ((byuid = calloc(nix ? nix : 1, sizeof *byuid)) == NULL)
		return -1;
	for (size_t i = 0; i < nix; i++) {
		if (ix[i].earlier) {
			c->deleted++;
			continue;
		}
		if (ix[i].uid == 0) {
			unknown++;
			continue;
		}
		byuid[nknown].uid = ix[i].uid;
		byuid[nknown++].i = i;
	}
	if (nknown > 0)
		qsort(byuid, nknown, sizeof *byuid, uid_pos_cmp);
	for (size_t i = 0; i < nlisted; i++) {
		const struct verify_listed *s = &listed[i];
		struct verify_problem p = { .uid = s->uid };

		if (i > 0 && listed[i - 1].uid == s->uid)
			continue;	/* a server that lists a UID twice */
		if (s->uid > last_uid) {
			c->newer++;
			continue;
		}
		c->listed++;
		while (k < nknown && byuid[k].uid < s->uid)
			k++;
		if (k == nknown || byuid[k].uid != s->uid) {
			if (uid_in(skipped, nskipped, s->uid)) {
				p.kind = VERIFY_GIVEN_UP;
				c->given_up++;
			} else if (unknown > 0) {
				unmatched++;
				continue;
			} else {
				p.kind = VERIFY_MISSING;
			}
			if (verify_problems_add(out, &p) != 0)
				goto out;
			continue;
		}
		c->in_mirror++;
		/* The index keeps sizes up to UINT32_MAX ("that or more"). */
		if (ix[byuid[k].i].size != s->size &&
		    (ix[byuid[k].i].size != UINT32_MAX || s->size <
		    UINT32_MAX)) {
			p.kind = VERIFY_SIZE;
			p.a = s->size;
			p.b = ix[byuid[k].i].size;
			p.offset = ix[byuid[k].i].offset;
			p.length = ix[byuid[k].i].length;
			if (verify_problems_add(out, &p) != 0)
				goto out;
		}
		for (j = k + 1; j < nknown && byuid[j].uid == s->uid; j++) {
			p.kind = VERIFY_DUPLICATE_UID;
			p.offset = ix[byuid[j].i].offset;
			p.length = ix[byuid[j].i].length;
			if (verify_problems_add(out, &p) != 0)
				goto out;
		}
	}
	/* Indexed UIDs the server no longer lists: deleted there, kept. */
	for (size_t i = 0; i < nknown; i++) {
		struct verify_listed key = { .uid = byuid[i].uid };

		if (i > 0 && byuid[i - 1].uid == byuid[i].uid)
			continue;
		if (nlisted == 0 || bsearch(&key, listed, nlisted,
		    sizeof *listed, listed_by_uid) == NULL)
			c->deleted++;
	}
	if (unknown > 0 && compare_unknown(unknown, unmatched, out, c) != 0)
		goto out;
	r = 0;
out:
	free(byuid);
	return r;
}

/* Against the file */

static int
indexed_by_offset(const void *x, const void *y)
{
	const struct verify_indexed *a = x, *b = y;

	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

/* Lookups by (length, digest): an index of positions into an array. */
struct content_key {
	uint64_t length;
	const uint8_t *digest;
	size_t i;
};

static int
content_cmp(const void *x, const void *y)
{
	const struct content_key *a = x, *b = y;
	int d;

	if (a->length != b->length)
		return a->length < b->length ? -1 : 1;
	if ((d = memcmp(a->digest, b->digest, VERIFY_DIGEST_LEN)) != 0)
		return d;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* The first key with this content, or SIZE_MAX. */
static size_t
content_find(const struct content_key *keys, size_t n, uint64_t length,
    const uint8_t *digest)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = keys[mid].length != length ? (keys[mid].length <
		    length ? -1 : 1) : memcmp(keys[mid].digest, digest,
		    VERIFY_DIGEST_LEN);

		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n && keys[lo].length == length &&
	    memcmp(keys[lo].digest, digest, VERIFY_DIGEST_LEN) == 0)
		return lo;
	return SIZE_MAX;
}

/* The found entry that starts at offset, or SIZE_MAX. */
static size_t
found_at(const struct verify_found *found, size_t n, uint64_t offset)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (found[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && found[lo].offset == offset ? lo : SIZE_MAX;
}

struct range {
	uint64_t start, end;
};

static int
range_cmp(const void *x, const void *y)
{
	const struct range *a = x, *b = y;

	return a->start < b->start ? -1 : a->start > b->start;
}

/* What the comparison of the file works with. */
struct local {
	struct verify_indexed *ix;
	size_t nix;
	const struct verify_found *found;
	size_t nfound;
	bool *claimed;		/* per found entry: accounted for */
	uint64_t *where;	/* per indexed entry: where it is (UINT64_MAX:
				 * nowhere) */
	struct range *covered;
	size_t ncovered;
	/* covered[0 .. nsorted) sorted by start, with the greatest end up
	 * to each in maxend: for overlap queries in O(log n). */
	uint64_t *maxend;
	size_t nsorted;
	struct verify_problems *out;
};

static void
cover(struct local *l, uint64_t start, uint64_t length)
{
	l->covered[l->ncovered].start = start;
	l->covered[l->ncovered++].end = start + length;
}

/* Each indexed entry intact at its place, or found intact elsewhere. */
static int
place_entries(struct local *l)
{
	struct content_key *keys;
	size_t nkeys = 0, f, g, *taken;

	for (size_t i = 0; i < l->nix; i++) {
		l->where[i] = UINT64_MAX;
		if (l->ix[i].at != VERIFY_AT_INTACT)
			continue;
		l->where[i] = l->ix[i].offset;
		if ((f = found_at(l->found, l->nfound, l->ix[i].offset)) !=
		    SIZE_MAX && l->found[f].length == l->ix[i].length)
			l->claimed[f] = true;
	}
	keys = calloc(l->nfound ? l->nfound : 1, sizeof *keys);
	taken = calloc(l->nfound ? l->nfound : 1, sizeof *taken);
	if (keys == NULL || taken == NULL) {
		free(keys);
		free(taken);
		return -1;
	}
	for (size_t j = 0; j < l->nfound; j++) {
		if (l->claimed[j] || !l->found[j].from_line)
			continue;
		keys[nkeys].length = l->found[j].length;
		keys[nkeys].digest = l->found[j].digest;
		keys[nkeys].i = j;
		nkeys++;
	}
	qsort(keys, nkeys, sizeof *keys, content_cmp);
	for (size_t i = 0; i < l->nix; i++) {
		if (l->where[i] != UINT64_MAX)
			continue;
		g = content_find(keys, nkeys, l->ix[i].length,
		    l->ix[i].digest);
		if (g == SIZE_MAX)
			continue;
		/* The first copy not taken yet, in file order: only this loop
		 * takes the keys of a group, first to last, so it is the
		 * group's taken[g]th (no walk over the taken ones: a file of
		 * many identical entries stays linear). */
		f = g + taken[g];
		if (f == nkeys || keys[f].length != l->ix[i].length ||
		    memcmp(keys[f].digest, l->ix[i].digest,
		    VERIFY_DIGEST_LEN) != 0)
			continue;
		taken[g]++;
		l->claimed[keys[f].i] = true;
		l->where[i] = l->found[keys[f].i].offset;
		l->ix[i].has_file_digest = true;
		memcpy(l->ix[i].file_digest, l->ix[i].digest,
		    VERIFY_DIGEST_LEN);
	}
	free(keys);
	free(taken);
	for (size_t i = 0; i < l->nix; i++)
		if (l->where[i] != UINT64_MAX)
			cover(l, l->where[i], l->ix[i].length);
	return 0;
}

/* Makes every range covered so far take part in overlaps_covered(). */
static void
sort_covered(struct local *l)
{
	qsort(l->covered, l->ncovered, sizeof *l->covered, range_cmp);
	for (size_t k = 0; k < l->ncovered; k++)
		l->maxend[k] = k > 0 && l->maxend[k - 1] > l->covered[k].end ?
		    l->maxend[k - 1] : l->covered[k].end;
	l->nsorted = l->ncovered;
}

/* Whether [start, end) meets a range covered when sort_covered() ran. */
static bool
overlaps_covered(const struct local *l, uint64_t start, uint64_t end)
{
	size_t lo = 0, hi = l->nsorted;

	/* The ranges that start before end: [0, lo). */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->covered[mid].start < end)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && l->maxend[lo - 1] > start;
}

/* A moved entry: one problem for a run of them with the same shift. */
static int
report_moved(struct local *l, size_t i)
{
	struct verify_problem p = { .kind = VERIFY_MOVED };
	struct verify_problem *last = l->out->n > 0 ?
	    &l->out->v[l->out->n - 1] : NULL;
	int64_t shift = (int64_t)(l->where[i] - l->ix[i].offset);

	if (last != NULL && last->kind == VERIFY_MOVED &&
	    last->shift == shift) {
		last->uid_last = l->ix[i].uid;
		last->a++;
		return 0;
	}
	p.uid = p.uid_last = l->ix[i].uid;
	p.offset = l->ix[i].offset;
	p.length = l->ix[i].length;
	p.shift = shift;
	p.a = 1;
	return verify_problems_add(l->out, &p);
}

/* Each indexed entry not intact at its place, in offset order. */
static int
report_entries(struct local *l, uint64_t file_size)
{
	struct verify_indexed *e;
	struct verify_problem p;

	for (size_t i = 0; i < l->nix; i++) {
		e = &l->ix[i];
		if (l->where[i] == e->offset)
			continue;
		if (l->where[i] != UINT64_MAX) {
			if (report_moved(l, i) != 0)
				return -1;
			continue;
		}
		memset(&p, 0, sizeof p);
		p.uid = e->uid;
		p.offset = e->offset;
		p.length = e->length;
		if (e->offset + e->length > file_size)
			p.kind = VERIFY_LOST;
		else if (overlaps_covered(l, e->offset, e->offset + e->length))
			p.kind = VERIFY_REMOVED;
		else
			p.kind = e->at == VERIFY_AT_NO_FROM ? VERIFY_NO_ENTRY :
			    VERIFY_CHANGED;
		/* Reported: its bytes are no stranger's. */
		if (p.kind != VERIFY_REMOVED)
			cover(l, e->offset, e->offset + e->length > file_size ?
			    (file_size > e->offset ? file_size - e->offset :
			    0) : e->length);
		if (verify_problems_add(l->out, &p) != 0)
			return -1;
	}
	return 0;
}

/* Found entries no indexed one claimed that repeat an indexed one. */
static int
report_copies(struct local *l)
{
	struct content_key *keys;
	size_t f;
	int r = 0;

	if ((keys = calloc(l->nix ? l->nix : 1, sizeof *keys)) == NULL)
		return -1;
	for (size_t i = 0; i < l->nix; i++) {
		keys[i].length = l->ix[i].length;
		keys[i].digest = l->ix[i].digest;
		keys[i].i = i;
	}
	qsort(keys, l->nix, sizeof *keys, content_cmp);
	for (size_t j = 0; j < l->nfound && r == 0; j++) {
		const struct verify_found *fe = &l->found[j];
		struct verify_problem p = { .kind = VERIFY_DUPLICATE_ENTRY };

		if (l->claimed[j] || !fe->from_line ||
		    overlaps_covered(l, fe->offset, fe->offset + fe->length))
			continue;
		f = content_find(keys, l->nix, fe->length, fe->digest);
		if (f == SIZE_MAX)
			continue;
		p.uid = l->ix[keys[f].i].uid;
		p.offset = fe->offset;
		p.length = fe->length;
		r = verify_problems_add(l->out, &p);
		cover(l, fe->offset, fe->length);
	}
	free(keys);
	return r;
}

/* Bytes before the committed end that nothing above accounts for. */
static int
report_gaps(struct local *l, uint64_t limit, verify_only_lf_fn *only_lf,
    void *arg)
{
	uint64_t pos = 0;
	struct verify_problem p = { .kind = VERIFY_FOREIGN };

	qsort(l->covered, l->ncovered, sizeof *l->covered, range_cmp);
	for (size_t k = 0; k <= l->ncovered; k++) {
		uint64_t start = k < l->ncovered ? l->covered[k].start : limit;

		if (start > limit)
			start = limit;
		if (start > pos && !only_lf(pos, start - pos, arg)) {
			p.offset = pos;
			p.length = start - pos;
			if (verify_problems_add(l->out, &p) != 0)
				return -1;
		}
		if (k < l->ncovered && l->covered[k].end > pos)
			pos = l->covered[k].end;
	}
	return 0;
}

/* How far the last indexed entry sits from where it was written (0 when
 * it is in place, or nowhere). */
static int64_t
last_shift(const struct local *l)
{
	for (size_t i = l->nix; i-- > 0;)
		if (l->where[i] != UINT64_MAX)
			return (int64_t)(l->where[i] - l->ix[i].offset);
	return 0;
}

/* offset moved by shift, within 0 and UINT64_MAX (a damaged state may
 * claim any size up to INT64_MAX). */
static uint64_t
shifted(uint64_t offset, int64_t shift)
{
	uint64_t by = shift < 0 ? 0 - (uint64_t)shift : (uint64_t)shift;

	if (shift < 0)
		return by > offset ? 0 : offset - by;
	return by > UINT64_MAX - offset ? UINT64_MAX : offset + by;
}

static int
problem_by_offset(const void *x, const void *y)
{
	const struct verify_problem *a = x, *b = y;

	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	return a->kind < b->kind ? -1 : a->kind > b->kind;
}

int
verify_compare_local(struct verify_indexed *ix, size_t nix,
    const struct verify_found *found, size_t nfound, uint64_t committed,
    uint64_t file_size, verify_only_lf_fn *only_lf, void *arg,
    struct verify_problems *out)
{
	struct local l = { .ix = ix, .nix = nix, .found = found,
	    .nfound = nfound, .out = out };
	size_t first = out->n;
	struct verify_problem p = { 0 };
	uint64_t end;
	int r = -1;

	if (nix > 0)
		qsort(ix, nix, sizeof *ix, indexed_by_offset);
	l.claimed = calloc(nfound ? nfound : 1, sizeof *l.claimed);
	l.where = calloc(nix ? nix : 1, sizeof *l.where);
	/* Each indexed entry once, each found copy once at most. */
	l.covered = calloc(nix + nfound + 1, sizeof *l.covered);
	l.maxend = calloc(nix + nfound + 1, sizeof *l.maxend);
	if (l.claimed == NULL || l.where == NULL || l.covered == NULL ||
	    l.maxend == NULL)
		goto out;
	if (place_entries(&l) != 0)
		goto out;
	/* Entries moved by bytes added or removed before them explain a file
	 * that ends elsewhere: only a difference beyond that is told. */
	end = shifted(committed, last_shift(&l));
	sort_covered(&l);
	if (report_entries(&l, file_size) != 0)
		goto out;
	sort_covered(&l);
	if (report_copies(&l) != 0 || report_gaps(&l, end < file_size ?
	    end : file_size, only_lf, arg) != 0)
		goto out;
	if (out->n > first)
		qsort(out->v + first, out->n - first, sizeof *out->v,
		    problem_by_offset);
	if (end == file_size) {
		r = 0;
		goto out;
	}
	if (file_size > end) {
		p.kind = VERIFY_TAIL;
		p.offset = end;
		p.length = file_size - end;
	} else {
		p.kind = VERIFY_SHORT;
		p.offset = file_size;
		p.a = file_size;
		p.b = end;
	}
	if (verify_problems_add(out, &p) != 0)
		goto out;
	r = 0;
out:
	free(l.claimed);
	free(l.where);
	free(l.covered);
	free(l.maxend);
	return r;
}

void
verify_drop_tail(struct verify_problems *l)
{
	uint64_t start = UINT64_MAX;
	size_t k = 0;

	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].kind == VERIFY_TAIL && l->v[i].offset < start)
			start = l->v[i].offset;
	for (size_t i = 0; i < l->n; i++) {
		const struct verify_problem *p = &l->v[i];

		if (p->kind == VERIFY_TAIL || (p->kind ==
		    VERIFY_DUPLICATE_ENTRY && p->offset >= start))
			continue;
		l->v[k++] = *p;
	}
	l->n = k;
}

static int
digest_cmp(const void *x, const void *y)
{
	return memcmp(x, y, VERIFY_DIGEST_LEN);
}

int
verify_compare_digests(const struct verify_indexed *ix, size_t nix,
    uint8_t (*server)[VERIFY_DIGEST_LEN], size_t nserver,
    struct verify_problems *out)
{
	if (nserver > 0)
		qsort(server, nserver, VERIFY_DIGEST_LEN, digest_cmp);
	for (size_t i = 0; i < nix; i++) {
		struct verify_problem p = { .kind = VERIFY_DEEP_UNMATCHED };
		const uint8_t *d = ix[i].has_file_digest ? ix[i].file_digest :
		    ix[i].digest;

		if (ix[i].earlier)
			continue;	/* deleted on the server */
		if (nserver > 0 && bsearch(d, server, nserver,
		    VERIFY_DIGEST_LEN, digest_cmp) != NULL)
			continue;
		p.uid = ix[i].uid;
		p.offset = ix[i].offset;
		p.length = ix[i].length;
		if (verify_problems_add(out, &p) != 0)
			return -1;
	}
	return 0;
}
