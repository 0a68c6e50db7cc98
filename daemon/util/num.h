/*
 * util/num: strict decimal numbers, and the noun that goes with a count.
 *
 * Digits only: no sign, no blank, no base prefix, never empty, all of
 * which strtoul(3) and friends would take.  Leading zeros are allowed.
 */
#ifndef MM_UTIL_NUM_H
#define MM_UTIL_NUM_H

#include <stddef.h>
#include <stdint.h>

/* The number written in the len bytes at s, if they are all digits and it
 * is at most max: 0 and *value_r set, or -1 and *value_r untouched. */
int num_parse_u64n(const char *s, size_t len, uint64_t max,
    uint64_t *value_r);

/* num_parse_u64n() of the whole NUL-terminated s. */
int num_parse_u64(const char *s, uint64_t max, uint64_t *value_r);

/* one for a count of 1, else many: "1 message", "2 messages", "0 messages". */
static inline const char *
num_plural(unsigned long long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

#endif
