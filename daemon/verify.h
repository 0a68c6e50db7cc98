/*
 * verify: the daemon shell's --verify mode: whether each selected
 * account's mirror is whole.  Per mailbox of the account's state:
 *  - the file against its index (mirror/msgindex.h), without the server:
 *    every indexed entry where the index says, with its From_ line, its
 *    length and its digest; no bytes between entries that no entry
 *    accounts for; the file ending where the state says (a mailbox without
 *    an index gets one rebuilt in memory, which can only tell the size);
 *  - against the server, on one connection per account: one EXAMINE and
 *    one UID FETCH 1:* (UID RFC822.SIZE) per mailbox (one per run of
 *    VERIFY_SIZES_CHUNK indexed UIDs for a larger one), pipelined: every UID
 *    up to the last committed one is in the mirror once with its size;
 *  - with deep, every message is downloaded again (BODY.PEEK[], batches)
 *    and its digest compared with the index's, with progress lines.
 * The decisions are verify_compare.h's.  Nothing is written: files are
 * opened read-only, no lock is taken, no state saved; a sync running
 * meanwhile is fine, since only what the state had committed when the
 * check began is looked at.
 */
#ifndef MM_VERIFY_H
#define MM_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Exit statuses of --verify beyond 0 (whole). */
#define VERIFY_EXIT_PROBLEM 1		/* something is wrong */
#define VERIFY_EXIT_INCOMPLETE 2	/* nothing wrong found, but a check
					 * could not be made */

/*
 * Verifies every selected account (names: NULL/0 for all), one after
 * another: a line per problem on stdout ("account A: mailbox M: UID N:
 * what is wrong"), then a summary line per account; with json, one JSON
 * document on stdout instead.  Notes (an index rebuilt, a sync running)
 * go to the log.  Returns 0, VERIFY_EXIT_PROBLEM or
 * VERIFY_EXIT_INCOMPLETE.
 */
int verify_run(const struct config *config, char *const *names,
    size_t nnames, bool deep, bool json);

#endif
