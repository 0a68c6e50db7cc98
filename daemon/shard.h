/*
 * shard: which accounts a process takes when several share the work
 * (--shard K/N, [general] shard = K/N).
 *
 * Shards are numbered from 0, like a Kubernetes StatefulSet's pod ordinals:
 * K/N is shard K of N, 0 <= K < N.  An account's shard depends on its name
 * alone: shard_of() = jump consistent hash (Lamping and Veach, 2014, in
 * integer arithmetic) of the 64-bit FNV-1a hash of the name's bytes, over N
 * buckets.  So adding or removing an account moves no other account, and
 * going from N to N + 1 shards moves about 1/(N + 1) of the accounts, each
 * to the new shard N.  The mapping is a contract (a fixed table of names in
 * the unit tests): never change it.
 */
#ifndef MM_SHARD_H
#define MM_SHARD_H

#include <stdbool.h>
#include <stddef.h>

/* Largest N accepted. */
#define SHARD_COUNT_MAX 65536

/* Shard k of n; n == 0: not sharded (every account). */
struct shard {
	unsigned k;
	unsigned n;
};

/*
 * Parses "K/N" (decimal digits only, 1 <= N <= SHARD_COUNT_MAX, K < N).
 * 0 with *shard_r set, or -1 with *problem_r a static phrase saying what
 * is wrong (to follow the quoted text) and *shard_r untouched.
 */
int shard_parse(const char *text, struct shard *shard_r,
    const char **problem_r);

/* The shard (0..n-1) of the account name among n (n >= 1). */
unsigned shard_of(const char *name, unsigned n);

/* Whether shard takes the account name (always, when not sharded). */
bool shard_takes(const struct shard *shard, const char *name);

/* "K/N" into buf (24 bytes are enough), or "none"; returns buf. */
const char *shard_format(const struct shard *shard, char *buf,
    size_t size);

#endif
