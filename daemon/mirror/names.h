/*
 * mirror/names: from server mailbox names to files, and the account's
 * mailbox patterns.  Pure string functions.
 */
#ifndef MM_MIRROR_NAMES_H
#define MM_MIRROR_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Escaped path components longer than this are shortened (see below).  It
 * leaves room within NAME_MAX (255) for ".mbox" and the suffixes put after
 * it (".lock", a dotlock's temporary name, ".uidvalidity-N").
 */
#define NAMES_COMPONENT_MAX 180

/*
 * The mbox path, relative to the account's output, for a mailbox name as the
 * server sent it (len bytes; it may hold NUL).  malloc'ed, or NULL on
 * allocation failure.
 *
 * 1. The name: with utf8 it is UTF-8 already; otherwise it is decoded from
 *    modified UTF-7.  A name that does not decode (or decodes to control
 *    characters, C0 or C1) is used as its raw bytes, with '&' and every
 *    8-bit byte escaped as well, so it cannot meet any decoded name.
 * 2. It is split at the delimiter (delimiter '\0': NIL, one component).  A
 *    first component "INBOX" in any case is written "INBOX".
 * 3. Each other component is escaped, byte for byte, as "%XX" (upper-case
 *    hex) where the byte is '%', '/', '\\', a control (< 0x20, 0x7f), part
 *    of invalid UTF-8 or of a C1 control (U+0080..U+009F), a leading '.',
 *    or the '.' that starts ".mbox" at the end of the component or
 *    followed by '.', ".lock" at its end, or
 *    ".uidvalidity-" or ".unknown-" followed by nothing but digits and '-'
 *    up to its end (all compared case-insensitively).
 *    The empty component is written "%".  Every '%' in the result therefore
 *    starts "%XX", "%~" (below) or the lone "%", so escaping is one-to-one
 *    and the result has no empty, "." or ".." component.
 * 4. An escaped component of more than NAMES_COMPONENT_MAX bytes becomes its
 *    first bytes (cut between characters) plus "%~" and 16 hex digits of a
 *    64-bit FNV-1a hash of the whole escaped component.  Distinct long
 *    components stay distinct unless their hashes collide (unlikely by
 *    chance, but a hostile server could contrive it).
 * 5. The components are joined with '/' and ".mbox" is appended.
 *
 * Files beside the mbox: a mailbox "x" has the file "x.mbox" and, if it has
 * children, the directory "x/".  Other files belonging to it must be named
 * "x.mbox.<suffix>" (the dotlock "x.mbox.lock", its temporary files, a tail
 * another program appended after a crash, saved aside as
 * "x.mbox.cut-<time>[-<k>]" by mbox_open()) or
 * "x.uidvalidity-<N>[-<k>].mbox" / "x.unknown-<N>[-<k>].mbox" (files kept
 * aside; names_aside_tag() gives the tags).  Because of the escapes in
 * step 3, no mailbox's directory or mbox can be named like any of these:
 * mailbox "x.lock" is "x%2Elock.mbox", "x.mbox" is "x%2Embox.mbox",
 * "x.uidvalidity-7" is "x%2Euidvalidity-7.mbox".
 */
char *names_mbox_path(const char *name, size_t len, char delimiter,
    bool utf8);

/*
 * Why a file is kept aside, and the tag layout_keep_aside() puts in its new
 * name "<base>.<tag>[-<k>].mbox": "uidvalidity-<n>" for the mbox of a
 * mailbox whose UIDVALIDITY changed away from n, "unknown-<n>" for a file
 * we have no record of, found at time n.  names_mbox_path() reserves these
 * names from this one list, so no mailbox is ever named like one.
 */
enum names_aside {
	NAMES_ASIDE_UIDVALIDITY,
	NAMES_ASIDE_UNKNOWN,
};
/* The tag "<why>-<n>" in buf, cut to fit size (> 0); returns buf. */
const char *names_aside_tag(enum names_aside why, long long n, char *buf,
    size_t size);

/*
 * IMAP LIST pattern match (RFC 3501 6.3.8): '*' matches anything, '%'
 * anything but the delimiter (delimiter '\0': anything); case-sensitive,
 * except that INBOX is case-insensitive when it is the name's first
 * component ("inbox/%" matches "INBOX/a", "Inbox" matches "INBOX").  name and
 * pattern are UTF-8.  Time O(|pattern| * |name|), no backtracking.
 */
bool names_match(const char *pattern, const char *name, char delimiter);

/* The index of the first of the n patterns that matches name, or -1. */
int names_first_match(const char *const *patterns, size_t n, const char *name,
    char delimiter);

/*
 * An account's patterns, and which of them decided some mailbox: for the
 * warning that a pattern matches nothing (include_hit and exclude_hit have
 * ninclude and nexclude flags, or are NULL).
 */
struct names_patterns {
	const char *const *include;
	size_t ninclude;
	const char *const *exclude;
	size_t nexclude;
	bool *include_hit;
	bool *exclude_hit;
};
/* p for the given patterns, with hit flags all false: 0, or -1 when out of
 * memory (p then has no flags, and notes nothing). */
int names_patterns_init(struct names_patterns *p, const char *const *include,
    size_t ninclude, const char *const *exclude, size_t nexclude);
/* Frees the hit flags. */
void names_patterns_free(struct names_patterns *p);

/*
 * Whether name is selected (as names_selected()), noting in the hit flags
 * every include that matches it and every exclude that matches a name the
 * includes take.  *include_r and *exclude_r (either may be NULL) get the
 * first of each that matches (the one that decided), or -1.
 */
bool names_decide(const struct names_patterns *p, const char *name,
    char delimiter, int *include_r, int *exclude_r);

/* The mailbox is wanted: matches one of include and none of exclude.  No
 * include patterns at all means every mailbox (the default "*"). */
bool names_selected(const char *const *include, size_t ninclude,
    const char *const *exclude, size_t nexclude, const char *name,
    char delimiter);

#endif
