/*
 * restore: the daemon shell's --restore mode.  Uploads the mirror of one
 * account (its mbox files, read through each mailbox's index) into the
 * server of another, or of the same one: the same mailbox names in the
 * target's delimiter (created when missing), each message byte for byte as
 * the source server sent it, with its INTERNALDATE and flags.
 *
 * Exactly once across kills and reruns: a journal in the target account's
 * state directory ("restore-<16 hex>", the FNV-1a of the source account's
 * name) records each message as sent before its APPEND goes out (fsynced)
 * and as done when the server accepts it; a rerun skips what is done, and
 * looks for what a killed run sent (and for everything else) on the target
 * by Message-ID and RFC822.SIZE, a FETCH per 2,000 target messages; a
 * message without Message-ID that a killed run sent is looked for by size
 * and INTERNALDATE.  The source's mbox files, index and state are only read;
 * the target account's run lock is held, so that no sync of it runs
 * meanwhile.  --dry-run connects and reads the target (LIST, EXAMINE,
 * FETCH) but changes nothing, takes no lock and writes no journal.
 */
#ifndef MM_RESTORE_H
#define MM_RESTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct restore_options {
	const char *from;	/* account whose mirror is uploaded */
	const char *to;		/* account whose server gets it */
	char *const *mailboxes;	/* patterns (UTF-8, the source's
				 * delimiter); none: every mailbox */
	size_t n_mailboxes;
	bool dry_run;
};

/*
 * Runs a restore; progress on stderr, the summary on stdout.  Returns 0
 * when every selected message is on the target (uploaded now, before, or
 * found there), 1 otherwise.
 */
int restore_run(const struct config *config, const struct restore_options *o);

#endif
