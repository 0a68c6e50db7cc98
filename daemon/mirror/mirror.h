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
