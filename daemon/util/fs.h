/*
 * util/fs: directories made and made durable, regular files opened
 * without following links or blocking, and writes carried to their end.
 *
 * A new, renamed or removed name is durable only once the directory that
 * holds it is fsynced.  Each function takes the fsync(2) to use: fsync, or
 * a test's stand-in that records or fails calls; NULL means fsync.
 */
#ifndef MM_UTIL_FS_H
#define MM_UTIL_FS_H

#include <sys/types.h>

/* fsync of the directory dir (opened O_RDONLY | O_DIRECTORY).  0, or -1
 * with errno. */
int fs_sync_dir(const char *dir, int (*sync)(int));

/* fs_sync_dir() of the directory that holds path: "." for a bare name,
 * "/" for a name in the root.  0, or -1 with errno. */
int fs_sync_parent(const char *path, int (*sync)(int));

/*
 * mkdir -p: each missing directory of path is made with mode (less the
 * umask) and the directory holding it fsynced before the next is made, so
 * a crash never leaves a directory whose parent does not record it.
 * Existing components are left as they are, whatever their mode; one that
 * exists but is not a directory fails the next step (ENOTDIR) or, for the
 * last one, is taken as is.  Repeated and trailing '/' are ignored.  0, or
 * -1 with errno (ENOENT for "").
 */
int fs_mkdirs(const char *path, mode_t mode, int (*sync)(int));

/*
 * open(2) for a file that must be regular (a mailbox, its lock, a record
 * beside it): never follows a symbolic link (ELOOP), never blocks (a FIFO
 * without a writer would hang an event loop in a plain open) and takes
 * nothing but a regular file.  flags get O_NOFOLLOW and O_CLOEXEC; the fd
 * is left blocking.  Returns the fd; -1 with errno set; -2 when path is
 * not a regular file.
 */
int fs_open_regular(const char *path, int flags, mode_t mode);

/*
 * All len bytes at data to fd: write(2) (at the file offset) or pwrite(2)
 * (at off), again after a short write or EINTR.  0, or -1 with errno (EIO
 * when a call wrote nothing).
 */
int fs_write_all(int fd, const void *data, size_t len);
int fs_pwrite_all(int fd, const void *data, size_t len, off_t off);

#endif
