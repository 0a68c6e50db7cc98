/*
 * mirror/names: from server mailbox names to files, and the account's
 * mailbox patterns.  Pure string functions.
 */
#ifndef MM_MIRROR_NAMES_H
#define MM_MIRROR_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The mbox path, relative to the account's output, for a mailbox name as the
 * server sent it (utf8: the name is UTF-8 already, else modified UTF-7 that
 * is decoded; undecodable names are used as raw bytes, escaped).  The
 * delimiter becomes '/'; INBOX (any case) is "INBOX.mbox"; "<name>.mbox" for
 * the last component.  A component that is empty, ".", "..", or holds '/',
 * NUL, control bytes or begins with '.' is escaped ("%2F", "%2E."), never
 * dropped, so the result never leaves the output directory and two different
 * names never share a file.  malloc'ed, or NULL on allocation failure.
 */
char *names_mbox_path(const char *name, size_t len, char delimiter,
    bool utf8);

/*
 * IMAP LIST pattern match (RFC 3501 6.3.8): '*' anything, '%' anything but
 * the delimiter; case-sensitive except that a leading INBOX matches in any
 * case.  name and pattern are UTF-8.
 */
bool names_match(const char *pattern, const char *name, char delimiter);

/* The mailbox is wanted: matches one of include and none of exclude. */
bool names_selected(const char *const *include, size_t ninclude,
    const char *const *exclude, size_t nexclude, const char *name,
    char delimiter);

#endif
