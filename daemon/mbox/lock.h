/*
 * mbox/lock: the locks mail readers honour on an mbox, internal to mbox/:
 * an fcntl write lock on the open file (an open-file-description lock
 * where the system has them) and a "<path>.lock" dotlock holding our pid.
 * The contract seen from outside is mbox_open()'s in mbox.h, with
 * mbox_set_lock_wait() and mbox_locked_elsewhere().
 */
#ifndef MM_MBOX_LOCK_H
#define MM_MBOX_LOCK_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

/* The locks one open mbox holds.  Zeroed, with dotlock_fd -1: none. */
struct mbox_lock {
	const char	*path;		/* the mbox, for messages */
	char		*lock_path;	/* "<path>.lock" */
	int		 cmd;		/* F_OFD_SETLK, or F_SETLK */
	bool		 fcntl_locked;
	bool		 dotlocked;
	int		 dotlock_fd;	/* open: its inode stays ours */
	dev_t		 dotlock_dev;
	ino_t		 dotlock_ino;
	time_t		 dotlock_touched;
};

/* Sets up l for the mbox at path (copied: "<path>.lock"; path itself must
 * outlive l).  0, or -1 when out of memory. */
int mbox_lock_init(struct mbox_lock *l, const char *path);
/* Frees what mbox_lock_init() allocated; release the locks first. */
void mbox_lock_clear(struct mbox_lock *l);

/*
 * Takes the fcntl lock on fd, then the dotlock, waiting for other holders
 * up to mbox_lock_wait() in all; a dotlock that is stale (older than
 * MBOX_DOTLOCK_STALE_SECS, or naming a process that is gone) is taken over;
 * one that is not a regular file is an error at once.  0, or -1 with a
 * malloc'ed *error_r (locks taken so far stay: mbox_lock_release() them).
 */
int mbox_lock_take(struct mbox_lock *l, int fd, char **error_r);
/* Refreshes the dotlock's mtime now and then while appending, so readers
 * never take it for stale; best effort. */
void mbox_lock_touch(struct mbox_lock *l);
/* Removes the dotlock (if still ours) and drops the fcntl lock on fd.  0,
 * or -1 with the first failure in *error_r unless one is there already. */
int mbox_lock_release(struct mbox_lock *l, int fd, char **error_r);

#endif
