/*
 * util/nameindex: finds an entry of the caller's array by its name (bytes,
 * any but NUL) in constant time: an open-addressing hash of entry
 * positions, FNV-1a, kept at most half full.  The caller keeps the entries
 * and their names; key(i, arg) gives entry i's NUL-terminated name.
 */
#ifndef MM_UTIL_NAMEINDEX_H
#define MM_UTIL_NAMEINDEX_H

#include <stddef.h>
#include <stdint.h>

typedef const char *nameindex_key_fn(size_t i, void *arg);

struct nameindex {
	nameindex_key_fn *key;
	void *arg;
	size_t *slots;		/* position + 1, or 0: empty */
	size_t n_slots;		/* a power of two, or 0 */
	size_t n;		/* positions added */
};

/* An empty index over entries whose names key gives. */
void nameindex_init(struct nameindex *x, nameindex_key_fn *key, void *arg);
/* The position of the entry named name (len bytes), or SIZE_MAX. */
size_t nameindex_find(const struct nameindex *x, const char *name,
    size_t len);
/* Adds entry i, whose name must not be in the index yet.  0, or -1 when out
 * of memory (the index is as it was). */
int nameindex_add(struct nameindex *x, size_t i);
/* Frees the slots; the index is empty again. */
void nameindex_free(struct nameindex *x);

#endif
