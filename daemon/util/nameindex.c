#include "util/nameindex.h"

#include <stdlib.h>
#include <string.h>

#include "util/hash.h"

void
nameindex_init(struct nameindex *x, nameindex_key_fn *key, void *arg)
{
	memset(x, 0, sizeof *x);
	x->key = key;
	x->arg = arg;
}

size_t
nameindex_find(const struct nameindex *x, const char *name, size_t len)
{
	size_t mask = x->n_slots - 1, i, k;
	const char *key;

	if (x->n_slots == 0)
		return SIZE_MAX;
	for (i = hash_fnv1a64(name, len) & mask; (k = x->slots[i]) != 0;
	    i = (i + 1) & mask) {
		key = x->key(k - 1, x->arg);
		if (strlen(key) == len && memcmp(key, name, len) == 0)
			return k - 1;
	}
	return SIZE_MAX;
}

static void
put(size_t *slots, size_t n_slots, const char *name, size_t i)
{
	size_t mask = n_slots - 1, s;

	for (s = hash_fnv1a64(name, strlen(name)) & mask; slots[s] != 0;
	    s = (s + 1) & mask)
		;
	slots[s] = i + 1;
}

int
nameindex_add(struct nameindex *x, size_t i)
{
	size_t n = x->n_slots ? x->n_slots : 32, *v;

	if (2 * (x->n + 1) > x->n_slots) {
		while (2 * (x->n + 1) > n)
			n *= 2;
		if ((v = calloc(n, sizeof *v)) == NULL)
			return -1;
		for (size_t s = 0; s < x->n_slots; s++)
			if (x->slots[s] != 0)
				put(v, n, x->key(x->slots[s] - 1, x->arg),
				    x->slots[s] - 1);
		free(x->slots);
		x->slots = v;
		x->n_slots = n;
	}
	put(x->slots, x->n_slots, x->key(i, x->arg), i);
	x->n++;
	return 0;
}

void
nameindex_free(struct nameindex *x)
{
	free(x->slots);
	x->slots = NULL;
	x->n_slots = x->n = 0;
}
