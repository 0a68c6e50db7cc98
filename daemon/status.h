/*
 * status: --status, read from the state files alone (no daemon needed): per
 * account the last success, the last error and when, the next attempt, and
 * per mailbox its file, the last UID committed, the messages and the bytes
 * mirrored.  A table for people, JSON for scripts.
 */
#ifndef MM_STATUS_H
#define MM_STATUS_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* names: only these accounts (NULL/0: all).  Returns 0, or 1 when an
 * account's state is unreadable or its last attempt failed.  Error texts are
 * printed with control characters replaced (log_sanitize), in both forms. */
int status_print(FILE *out, const struct config *config, char *const *names,
    size_t nnames, bool json);

#endif
