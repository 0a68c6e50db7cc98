#include "mirror/remap.h"

#include <stdlib.h>
#include <string.h>

/* A message of either side, by its key and then its digest. */
struct keyed {
	uint64_t size;
	int64_t date;
	uint64_t mid;
	const uint8_t *digest;	/* NULL: none */
	size_t idx;
};

struct uid_pos {
	uint32_t uid;
	size_t idx;
};

static int
uid_pos_cmp(const void *a, const void *b)
{
	const struct uid_pos *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

size_t
remap_server_sort(struct remap_server *s, size_t n)
{
	struct uid_pos *p;
	struct remap_server *out;
	size_t i, o = 0;

	if (n == 0)
		return 0;
	p = calloc(n, sizeof *p);
	out = calloc(n, sizeof *out);
	if (p == NULL || out == NULL) {
		free(p);
		free(out);
		return (size_t)-1;
	}
	for (i = 0; i < n; i++) {
		p[i].uid = s[i].uid;
		p[i].idx = i;
	}
	qsort(p, n, sizeof *p, uid_pos_cmp);
	for (i = 0; i < n; i++)
		if (o == 0 || p[i].uid != out[o - 1].uid)
			out[o++] = s[p[i].idx];
	memcpy(s, out, o * sizeof *s);
	free(p);
	free(out);
	return o;
}

static int
key_cmp(const struct keyed *x, const struct keyed *y)
{
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	if (x->mid != y->mid)
		return x->mid < y->mid ? -1 : 1;
	return 0;
}

static int
digest_cmp(const uint8_t *a, const uint8_t *b)
{
	if (a == NULL || b == NULL)
		return (a != NULL) - (b != NULL);
	return memcmp(a, b, REMAP_DIGEST_LEN);
}

/* Key, then digest (none first), then position: a total order. */
static int
keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int r;

	if ((r = key_cmp(x, y)) != 0 || (r = digest_cmp(x->digest,
	    y->digest)) != 0)
		return r;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

bool
remap_matched(enum remap_how how)
{
	return how == REMAP_BY_KEY || how == REMAP_BY_DIGEST;
}

static void
set_how(struct remap_server *s, enum remap_how how, size_t local,
    struct remap_counts *c)
{
	s->how = how;
	s->local = local;
	if (remap_matched(how))
		c->matched++;
	else if (how == REMAP_NEED_DIGEST)
		c->need_digest++;
}

/*
 * One key's messages: ks[0..ns) of the server, kl[0..nl) of the mirror,
 * each sorted by digest (none first).  Equal digests pair one to one.
 */
static void
match_group(const struct keyed *ks, size_t ns, const struct keyed *kl,
    size_t nl, struct remap_server *s, bool final, struct remap_counts *c)
{
	size_t a = 0, b = 0;
	int r;

	if (nl == 0) {
		for (; a < ns; a++)
			set_how(&s[ks[a].idx], REMAP_NONE, 0, c);
		return;
	}
	if (ks[0].mid != 0 && ns == 1 && nl == 1) {
		set_how(&s[ks[0].idx], REMAP_BY_KEY, kl[0].idx, c);
		return;
	}
	for (; a < ns && ks[a].digest == NULL; a++)
		set_how(&s[ks[a].idx], final ? REMAP_NONE : REMAP_NEED_DIGEST,
		    0, c);
	while (b < nl && kl[b].digest == NULL)
		b++;
	while (a < ns && b < nl) {
		r = digest_cmp(ks[a].digest, kl[b].digest);
		if (r == 0)
			set_how(&s[ks[a++].idx], REMAP_BY_DIGEST,
			    kl[b++].idx, c);
		else if (r < 0)
			set_how(&s[ks[a++].idx], REMAP_NONE, 0, c);
		else
			b++;
	}
	for (; a < ns; a++)
		set_how(&s[ks[a].idx], REMAP_NONE, 0, c);
}

int
remap_match(const struct remap_local *l, size_t nl, struct remap_server *s,
    size_t ns, bool final, struct remap_counts *c)
{
	struct keyed *kl, *ks;
	size_t i, j, gs, ls;

	memset(c, 0, sizeof *c);
	c->server = ns;
	kl = calloc(nl + 1, sizeof *kl);
	ks = calloc(ns + 1, sizeof *ks);
	if (kl == NULL || ks == NULL) {
		free(kl);
		free(ks);
		return -1;
	}
	for (i = 0; i < nl; i++)
		kl[i] = (struct keyed){ l[i].size, l[i].internaldate,
		    l[i].message_id_hash, l[i].digest, i };
	for (i = 0, j = 0; i < ns; i++) {
		if (s[i].incomplete) {
			set_how(&s[i], REMAP_NONE, 0, c);
			continue;
		}
		ks[j++] = (struct keyed){ s[i].size, s[i].internaldate,
		    s[i].message_id_hash, s[i].has_digest ? s[i].digest : NULL,
		    i };
	}
	ns = j;
	qsort(kl, nl, sizeof *kl, keyed_cmp);
	qsort(ks, ns, sizeof *ks, keyed_cmp);
	/* Both sides in key order: one merge over the groups. */
	for (i = 0, j = 0; i < ns; i = gs) {
		for (gs = i + 1; gs < ns && key_cmp(&ks[gs], &ks[i]) == 0; gs++)
			;
		while (j < nl && key_cmp(&kl[j], &ks[i]) < 0)
			j++;
		for (ls = j; ls < nl && key_cmp(&kl[ls], &ks[i]) == 0; ls++)
			;
		match_group(ks + i, gs - i, kl + j, ls - j, s, final, c);
		j = ls;
	}
	free(kl);
	free(ks);
	return 0;
}

enum remap_verdict
remap_accept(const struct remap_counts *c)
{
	/* At least half, rounded up; no sum or product that could wrap. */
	size_t half = c->server - c->server / 2;

	if (c->server == 0 || c->matched > c->server ||
	    c->need_digest > c->server - c->matched)
		return REMAP_POOR;	/* counts that cannot be */
	if (c->need_digest < half && c->matched < half - c->need_digest)
		return REMAP_POOR;
	if (c->need_digest > 0)
		return REMAP_DIGESTS;
	return c->matched >= half ? REMAP_GOOD : REMAP_POOR;
}

uint32_t
remap_last_uid(const struct remap_server *s, size_t n)
{
	uint32_t last = 0;

	for (size_t i = 0; i < n && remap_matched(s[i].how); i++)
		last = s[i].uid;
	return last;
}

void
remap_census_start(struct remap_census *c, uint32_t exists)
{
	c->examined = c->exists = c->most = exists;
}

void
remap_census_expunge(struct remap_census *c, uint32_t msgno)
{
	if (msgno == 0 || msgno > c->exists)
		return;
	if (msgno <= c->examined)
		c->examined--;
	c->exists--;
}

void
remap_census_exists(struct remap_census *c, uint32_t exists)
{
	if (exists <= c->exists)
		return;
	c->exists = exists;
	if (exists > c->most)
		c->most = exists;
}

uint32_t
remap_refused_count(uint32_t recorded_uidvalidity, uint32_t recorded_count,
    uint32_t uidvalidity)
{
	if (recorded_uidvalidity != uidvalidity || recorded_count == 0)
		return 1;
	return recorded_count < REMAP_REFUSED_MAX ? recorded_count + 1 :
	    REMAP_REFUSED_MAX;
}

bool
remap_give_up(uint32_t count)
{
	return count >= REMAP_REFUSED_MAX;
}
