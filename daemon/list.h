/*
 * list: the daemon shell's --list mode: per account, the server's mailboxes,
 * the pattern that selects or excludes each, the file each maps to and its
 * message count.  Reads the servers only.
 */
#ifndef MM_LIST_H
#define MM_LIST_H

#include <stddef.h>

#include "config.h"

/*
 * Lists every selected account (names: NULL/0 for all), one after another,
 * as a table on stdout; a pattern in mailboxes or exclude that matches no
 * mailbox is a warning.  Returns 0 if every account was listed, else 1.
 */
int list_run(const struct config *config, char *const *names, size_t nnames);

#endif
