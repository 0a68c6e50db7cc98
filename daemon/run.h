/*
 * run: the daemon shell's modes that talk to servers: --once and --probe.
 */
#ifndef MM_RUN_H
#define MM_RUN_H

#include <stddef.h>

#include "config.h"

/*
 * --once: every selected account (names: NULL/0 for all) synced once,
 * queued in config order through the scheduler (scheduler.h: up to
 * max_connections at once), one summary line each on stdout as each ends.
 * SIGINT/SIGTERM stop it (uncommitted appends are rolled back).  With
 * [general] metrics_file, the figures go there (metrics_file.h) as the run
 * starts, as each account ends, every minute and at the end.  Returns 0
 * if every account succeeded, else 1.
 */
int run_once(const struct config *config, char *const *names, size_t nnames);

/* --probe: greeting and capabilities before TLS (STARTTLS), after TLS and
 * after login, on stdout; then LOGOUT.  Returns 0, or 1 on failure. */
int run_probe(const struct config *config, const char *name);

#endif
