/*
 * daemon: the long-running mode.  One libev loop serves every account: a
 * timer per account (its interval, with jitter so accounts do not line up),
 * at most max_connections syncs at once, queued fairly (first come, first
 * served), push through IDLE where configured, retry with exponential
 * backoff and jitter (slower for authentication failures), SIGHUP reloads
 * the config, SIGTERM/SIGINT stop within seconds, and systemd hears about it
 * all through sd_notify.
 */
#ifndef MM_DAEMON_H
#define MM_DAEMON_H

#include "config.h"

/* Backoff: the first retry after retry_min seconds, doubling up to
 * retry_max ([general]); authentication failures use BACKOFF_AUTH_FACTOR
 * times both, capped at BACKOFF_AUTH_CAP, so the server does not lock the
 * account. */
#define BACKOFF_AUTH_FACTOR 10
#define BACKOFF_AUTH_CAP (6 * 3600)

/* Runs until SIGTERM or SIGINT.  config is taken over (freed at the end or
 * replaced on reload); path is re-read on SIGHUP.  names: only these
 * accounts (NULL/0: all).  Returns the exit status. */
int daemon_run(struct config *config, const char *path, char *const *names,
    size_t nnames);

/* The delay before retry number failures (1, 2, ...), without jitter. */
unsigned daemon_backoff(const struct config *config, unsigned failures,
    bool auth);

#endif
