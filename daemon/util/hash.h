/*
 * util/hash: FNV-1a, 64 bits.
 *
 * Not a defence against chosen collisions; used where a collision costs
 * only time (hash tables) or is told apart by other means.  Its values are
 * part of file names on disk (names.h, state.h): never change them.
 */
#ifndef MM_UTIL_HASH_H
#define MM_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a of the len bytes at data. */
uint64_t hash_fnv1a64(const void *data, size_t len);

#endif
