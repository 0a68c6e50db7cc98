/*
 * mirror/mirror: one sync of one account: the mailbox plan (LIST with the
 * account's patterns minus its excludes, STATUS for all of them in one
 * pipelined round trip, EXAMINE only where UIDNEXT or UIDVALIDITY moved),
 * the fetch (UID FETCH batches bounded by count and bytes and sized by the
 * measured rate, pipelined, bodies streamed from the parser into the mbox
 * writer, progress every 5 s) and the commit protocol
 * (DESIGN.md section 5: mbox fdatasync, then the state replaced atomically).
 */
#ifndef MM_MIRROR_H
#define MM_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"
#include "imap/session.h"
#include "mirror/error.h"

/* The session's kind as the mirror's. */
enum mirror_error mirror_error_from_session(enum session_error error);

struct mirror_result {
	enum mirror_error error;	/* MIRROR_OK on success */
	char message[512];		/* the error, naming account/mailbox */
	unsigned mailboxes_checked;	/* selected by the plan */
	unsigned mailboxes_opened;	/* EXAMINEd */
	unsigned long long messages;	/* appended */
	unsigned long long bytes;	/* message bytes appended */
	double seconds;
	/* A push run (mirror_start_push()) that did nothing, leaving the
	 * new mail to a full sync (plan_push_mailbox() said so); error is
	 * MIRROR_OK then. */
	bool declined;
};

struct mirror;
typedef void mirror_done_fn(struct mirror *m, const struct mirror_result *r,
    void *arg);

/*
 * Starts one sync; done is called exactly once (possibly from a later loop
 * iteration, never from inside mirror_start).  The sync holds the account's
 * lock (state_lock()) until mirror_free(): when another process holds it,
 * the run ends at once, failed (MIRROR_ERR_BUSY, the message naming the
 * other's pid), without reading or writing the state.
 */
struct mirror *mirror_start(struct ev_loop *loop, const struct config *config,
    const struct account *account, mirror_done_fn *done, void *arg);
/*
 * A push run: the new mail of INBOX fetched on the push connection, already
 * logged in with INBOX examined (no new login).  The run takes the session
 * over (its callbacks, its body sink) and, with the account's lock held as
 * mirror_start() holds it, EXAMINEs INBOX again with the size query of what
 * is above the state's last UID pipelined behind, fetches that in batches
 * and commits it by the same protocol, then saves the outcome (last success
 * included) without LOGOUT.  When it ends, done is called (as for
 * mirror_start()) with the session handed back: callbacks and sink cleared,
 * still logged in unless the result is a failure the connection caused or
 * that stopped it (session_is_ready() tells).  Every untagged response the
 * run gets is shown to observe first (EXISTS and EXPUNGE keep the owner's
 * count).  No reconnect: what arrived whole is committed, the rest is a
 * full sync's.  A run plan_push_mailbox() turns down ends with
 * result.declined, the state untouched; one whose lock another sync holds
 * with MIRROR_ERR_BUSY; neither touches the session.
 */
struct mirror_push {
	struct session *session;
	uint32_t uidvalidity;		/* of INBOX, as EXAMINE said */
	session_untagged_fn *observe;
	void *observe_arg;
};
struct mirror *mirror_start_push(struct ev_loop *loop,
    const struct config *config, const struct account *account,
    const struct mirror_push *push, mirror_done_fn *done, void *arg);
/* Whether the account's mailboxes and exclude select INBOX, the mailbox a
 * push connection watches and a push run fetches: without it, push would
 * bring nothing but a full sync at each new mail in a mailbox not
 * mirrored. */
bool mirror_push_watches(const struct account *account);

/*
 * Warns of each pattern in the account's mailboxes and exclude that decided
 * no mailbox (include_hit and exclude_hit as names_decide() noted them):
 * "mailboxes = Inbox2" on a server without one mirrors less than meant.
 */
void mirror_warn_unmatched(const struct account *account,
    const bool *include_hit, const bool *exclude_hit);

/* Stops a sync in progress (uncommitted appends are rolled back). done is
 * not called afterwards. */
void mirror_free(struct mirror **m);

#endif
