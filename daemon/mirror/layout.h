/*
 * mirror/layout: where an account's mbox files go below its output
 * directory (DESIGN.md section 3), and the directory changes that put them
 * there:
 *  - the output directory itself, created with its parents;
 *  - the directories between output and an mbox, walked down one component
 *    at a time from output with openat(O_NOFOLLOW | O_DIRECTORY) and made
 *    with mkdirat(), so that nothing below output is ever reached through a
 *    symlink, even one swapped in during the walk;
 *  - a file moved aside under a new name in its own directory, never over an
 *    existing one;
 *  - the choice of a mailbox's file, distinct from every other mailbox's
 *    file also where a file system ignores case or Unicode normalisation.
 *
 * Every change to a directory (an entry made, a file renamed, a file
 * created by the caller) is made durable with an fsync of that directory
 * before the function that made it returns: the state saved afterwards in
 * state_dir, maybe on another file system, may then rely on it.
 *
 * Paths below output ("rel") are relative, '/'-separated, without empty,
 * "." or ".." components: names_mbox_path() makes them so; anything else is
 * refused with EINVAL.  output itself is the administrator's and is resolved
 * as usual (symlinks in it are followed).
 *
 * What remains: mbox_open() takes a path, so the mbox file itself is opened
 * by resolving output/rel again after the walk.  It refuses a symlink as the
 * file, and the path is checked to lead to the walked directory before and
 * after it is opened; but someone who can write below output and swaps a
 * directory for a symlink just before mbox_open() and back just after it
 * would still redirect that open.  layout_file_open() keeps the walked
 * directory open so that an mbox_openat(dirfd, name) can close this the day
 * mbox has one.
 */
#ifndef MM_MIRROR_LAYOUT_H
#define MM_MIRROR_LAYOUT_H

#include <stdbool.h>

#include "mirror/state.h"

/*
 * mkdir -p output (fs_mkdirs()), each directory made 0700 and its parent
 * fsynced with the sys ops' fsync.  0, or -1 with errno set.
 */
int layout_make_output(const char *output);

/* output "/" rel, malloc'ed; NULL when out of memory. */
char *layout_path(const char *output, const char *rel);

/*
 * The place of one mbox file: the directory that holds it, walked down from
 * output and held open, and its name in there.
 */
struct layout_file;

/*
 * Walks from output down to the directory of rel, making the missing
 * directories (0700; each parent fsynced before this returns).  A component
 * that is a symlink, or anything but a directory, is refused (ENOTDIR or
 * ELOOP) and nothing is made through it; so is a path that no longer leads
 * to the directory walked (one replaced meanwhile).  Notes whether the file
 * exists yet, for layout_file_opened().  0 with *lf_r, or -1 with a
 * malloc'ed *error_r naming the path and the reason (NULL when out of
 * memory).
 */
int layout_file_open(const char *output, const char *rel,
    struct layout_file **lf_r, char **error_r);
/* output "/" rel, for mbox_open() and messages; valid until the free. */
const char *layout_file_path(const struct layout_file *lf);
/*
 * Call once the caller has created or opened the file at
 * layout_file_path(): checks again that the path leads to the directory
 * walked (-1 if not: the file opened may be elsewhere), and if the file did
 * not exist at layout_file_open(), fsyncs its directory, so the new entry
 * survives a crash before any state that counts on the file is saved.  0,
 * or -1 with a malloc'ed *error_r.
 */
int layout_file_opened(struct layout_file *lf, char **error_r);
/* Closes the directory and frees; NULLs *lf. */
void layout_file_free(struct layout_file **lf);

/*
 * Moves output/rel aside in its directory, keeping it:
 * "<base>.<tag>.mbox" ("<base>.<tag>-<n>.mbox" when that exists; base is
 * rel without ".mbox"), never replacing a file, then fsyncs the directory
 * (the old and the new name are both in it).  Walks like
 * layout_file_open(), but makes nothing: when rel or one of its
 * directories does not exist, there is nothing to move, and it returns 0
 * with *to_r NULL.  Otherwise 0 with *to_r the new path, malloc'ed; or -1
 * with a malloc'ed *error_r (NULL when out of memory).
 */
int layout_keep_aside(const char *output, const char *rel, const char *tag,
    char **to_r, char **error_r);

/*
 * The first mbox file below output that holds something: a regular,
 * non-empty file named "*.mbox", found walking down from output without
 * following symlinks, at most LAYOUT_FIND_DEPTH directories deep and
 * LAYOUT_FIND_ENTRIES entries in all (a huge tree is not searched to its
 * end).  So a sync whose state knows no mailbox can tell an empty output
 * from someone's mirror, which it must not take for unknown files.
 * 1 with *rel_r (malloc'ed, relative to output), 0 when there is none (or
 * output is missing or not a directory), -1 with a malloc'ed *error_r (NULL when out of memory).
 */
#define LAYOUT_FIND_DEPTH 64
#define LAYOUT_FIND_ENTRIES 100000
int layout_find_mbox(const char *output, char **rel_r, char **error_r);

/*
 * Whether a and b name one file where a file system folds case or
 * normalises Unicode: equal after ASCII case folding, Unicode simple case
 * folding and canonical decomposition of the Latin, Greek and Cyrillic
 * blocks (U+00C0-U+024F, U+0370-U+052F, U+1E00-U+1EFF).  So "Work" and
 * "work", "Café" in NFC and NFD, are the same.  Bytes that are not UTF-8
 * only equal themselves.  Combining marks are compared in the order given.
 */
bool layout_same_file(const char *a, const char *b);

/*
 * The file for mailbox self: rel, or "<base>.<n>.mbox" (n from 2) when
 * another mailbox of st already mirrors into rel or into a path that
 * layout_same_file() deems the same (names under different hierarchy
 * delimiters, "a//b" with "/" and "a..b" with ".", map to one path too).
 * Two mailboxes must never share a file; the caller records the choice in
 * the state, so it stays.  0 with a malloc'ed *file_r (equal to rel or
 * not), -1 when out of memory.
 */
int layout_unique_file(const struct account_state *st,
    const struct mailbox_state *self, const char *rel, char **file_r);

/*
 * The system calls that make directory changes durable, replaceable so
 * tests can count and fail them.  NULL restores the real ones.  Not for use
 * outside tests.
 */
struct layout_sys_ops {
	int (*fsync)(int fd);
};
void layout_set_sys_ops(const struct layout_sys_ops *ops);

#endif
