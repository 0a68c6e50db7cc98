/*
 * mirror/account_session: a session (imap/session) for a configured
 * account: the session's parameters from the account and the timeout, and
 * the secret from the account's source (secret_fetch_async(), off the
 * loop).  The one place where the configuration meets the IMAP layer.
 */
#ifndef MM_MIRROR_ACCOUNT_SESSION_H
#define MM_MIRROR_ACCOUNT_SESSION_H

#include <ev.h>

#include "config.h"
#include "imap/session.h"

/* As session_new(); the account must outlive the session (a secret being
 * fetched keeps copies of its fields, not the account). */
struct session *account_session_new(struct ev_loop *loop,
    const struct account *account, unsigned timeout,
    const struct session_callbacks *cb, void *arg);

#endif
