/*
 * util/num: strict decimal numbers; see num.h.
 */
#include "util/num.h"

#include <string.h>

int
num_parse_u64n(const char *s, size_t len, uint64_t max, uint64_t *value_r)
{
	uint64_t v = 0;
	unsigned d;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*value_r = v;
	return 0;
}

int
num_parse_u64(const char *s, uint64_t max, uint64_t *value_r)
{
	return num_parse_u64n(s, strlen(s), max, value_r);
}
