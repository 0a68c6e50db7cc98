/*
 * daemon: the long-running mode.  One libev loop serves every account: a
 * timer per account (its interval, with jitter so accounts do not line up),
 * syncs queued and run by the scheduler (scheduler.h: at most
 * max_connections at once, first come, first served), push through IDLE
 * where configured, retry with exponential backoff and jitter
 * (sched_backoff(): slower for authentication failures), SIGHUP reloads the
 * config, SIGTERM/SIGINT stop within seconds, and systemd hears about it
 * all through sd_notify.  With [general] metrics_file, the accounts' and
 * the process's figures go there (metrics_file.h) after syncs and every
 * minute.
 */
#ifndef MM_DAEMON_H
#define MM_DAEMON_H

#include "config.h"

/* Runs until SIGTERM or SIGINT.  config is taken over (freed at the end or
 * replaced on reload; its accounts already those of its shard,
 * config_keep_shard()); path is re-read on SIGHUP.  names: only these
 * accounts (NULL/0: all).  shard: the --shard given (n == 0: none), which
 * wins over the reloaded file's [general] shard.  A sharded daemon's lock
 * is its shard's ("<state_dir>/.daemon/shard-K-of-N"), so the daemons of
 * a host's shards can share a state directory.  Returns the exit status. */
int daemon_run(struct config *config, const char *path, char *const *names,
    size_t nnames, const struct shard *shard);

#endif
