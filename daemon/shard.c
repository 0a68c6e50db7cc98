/*
 * shard: which accounts a process takes; see shard.h.
 */
#include "shard.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/hash.h"
#include "util/num.h"

int
shard_parse(const char *text, struct shard *shard_r, const char **problem_r)
{
	const char *slash = strchr(text, '/');
	uint64_t k, n;

	if (slash == NULL || num_parse_u64n(text, (size_t)(slash - text),
	    UINT32_MAX, &k) == -1 || num_parse_u64(slash + 1, UINT32_MAX,
	    &n) == -1) {
		*problem_r = "is not K/N (shard K of N, counted from 0: 0/3, "
		    "1/3, 2/3)";
		return -1;
	}
	if (n == 0 || n > SHARD_COUNT_MAX) {
		*problem_r = "needs N from 1 to 65536";
		return -1;
	}
	if (k >= n) {
		*problem_r = "needs K below N (shards are counted from 0)";
		return -1;
	}
	shard_r->k = (unsigned)k;
	shard_r->n = (unsigned)n;
	return 0;
}

/*
 * Jump consistent hash.  The published form computes
 * (b + 1) * (2^31 / ((key >> 33) + 1)) in floating point; this one takes
 * the floor of the exact quotient in integers, so no platform's rounding
 * can move an account.  b < n <= SHARD_COUNT_MAX keeps the product within
 * 64 bits.
 */
static unsigned
jump_hash(uint64_t key, unsigned n)
{
	uint64_t b = 0, j = 0;

	while (j < n) {
		b = j;
		key = key * 2862933555777941757ULL + 1;
		j = ((b + 1) << 31) / ((key >> 33) + 1);
	}
	return (unsigned)b;
}

unsigned
shard_of(const char *name, unsigned n)
{
	if (n <= 1)
		return 0;
	return jump_hash(hash_fnv1a64(name, strlen(name)), n);
}

bool
shard_takes(const struct shard *shard, const char *name)
{
	return shard->n == 0 || shard_of(name, shard->n) == shard->k;
}

const char *
shard_format(const struct shard *shard, char *buf, size_t size)
{
	if (shard->n == 0)
		snprintf(buf, size, "none");
	else
		snprintf(buf, size, "%u/%u", shard->k, shard->n);
	return buf;
}
