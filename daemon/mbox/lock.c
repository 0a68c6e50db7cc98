/*
 * The fcntl lock and the dotlock of an mbox (see lock.h and mbox_open() in
 * mbox.h), and the look at them that neither waits nor locks.
 */
#include "mbox/lock.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mbox/mbox.h"
#include "util/fs.h"

#define LOCK_RETRY_NSEC	(50 * 1000 * 1000)
/* Refresh the dotlock's mtime this often so readers never think it stale. */
#define DOTLOCK_TOUCH_SECS 60

static unsigned int lock_wait_msec = MBOX_LOCK_WAIT_MSEC_DEFAULT;

void
mbox_set_lock_wait(unsigned int msec)
{
	lock_wait_msec = msec;
}

unsigned int
mbox_lock_wait(void)
{
	return lock_wait_msec;
}

int
mbox_lock_init(struct mbox_lock *l, const char *path)
{
	memset(l, 0, sizeof *l);
	l->path = path;
	l->dotlock_fd = -1;
	if (asprintf(&l->lock_path, "%s.lock", path) == -1) {
		l->lock_path = NULL;
		return -1;
	}
	return 0;
}

void
mbox_lock_clear(struct mbox_lock *l)
{
	free(l->lock_path);
	l->lock_path = NULL;
}

static void
deadline_set(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += lock_wait_msec / 1000;
	ts->tv_nsec += (long)(lock_wait_msec % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool
deadline_passed(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > ts->tv_sec ||
	    (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

static void
nap(void)
{
	struct timespec ts = { 0, LOCK_RETRY_NSEC };

	/* An early wake-up only means an earlier retry. */
	(void)nanosleep(&ts, NULL);
}

static int
lock_fcntl(struct mbox_lock *l, int fd, const struct timespec *deadline,
    char **error_r)
{
	struct flock fl;
	int cmd;

#ifdef F_OFD_SETLK
	cmd = F_OFD_SETLK;
#else
	cmd = F_SETLK;
#endif
	for (;;) {
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, cmd, &fl) == 0)
			break;
#ifdef F_OFD_SETLK
		if (errno == EINVAL && cmd == F_OFD_SETLK) {
			/* A kernel without OFD locks. */
			cmd = F_SETLK;
			continue;
		}
#endif
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EACCES)
			return log_set_error(error_r, "lock %s: %s", l->path,
			    strerror(errno));
		if (deadline_passed(deadline))
			return log_set_error(error_r, "lock %s: still locked "
			    "by another process after %u ms", l->path,
			    lock_wait_msec);
		nap();
	}
	l->fcntl_locked = true;
	l->cmd = cmd;
	return 0;
}

/*
 * A dotlock names its holder's pid (ours do, and so do mutt's and
 * Dovecot's).  When that process no longer exists, as after a kill -9, the
 * lock is stale at once: waiting out its age would stall every sync for
 * minutes.  We hold the fcntl lock already, so a live holder of both is
 * impossible.
 */
static bool
dotlock_holder_dead(const char *path)
{
	char buf[32], *end;
	ssize_t n;
	long pid;
	int fd;

	if ((fd = fs_open_regular(path, O_RDONLY, 0)) < 0)
		return false;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') ||
	    pid <= 0 || pid > INT_MAX)
		return false;
	return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* A dotlock (st: its lstat) that may be taken over: too old, or its
 * holder is gone. */
static bool
dotlock_stale(const char *path, const struct stat *st)
{
	return time(NULL) - st->st_mtime > MBOX_DOTLOCK_STALE_SECS ||
	    dotlock_holder_dead(path);
}

/* Our pid and a newline, as mail readers write it into a dotlock. */
static int
write_pid(int fd)
{
	char pid[32];
	size_t len;
	ssize_t n;

	len = (size_t)snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	n = write(fd, pid, len);
	if (n != (ssize_t)len) {
		if (n != -1)
			errno = EIO;
		return -1;
	}
	return 0;
}

/*
 * Creates the dotlock with our pid already in it: written to a temporary
 * file beside it, then link(2)ed into place, so that no crash can leave an
 * empty dotlock whose holder nobody can tell (and that others would wait
 * for until it is stale).  Where the file system has no hard links, falls
 * back to O_EXCL and writes the pid afterwards (*written_r false).  The
 * lock's fd, or -1 with errno (EEXIST: held).
 */
static int
dotlock_create(const char *lock_path, bool *written_r)
{
	char *tmp;
	int fd, saved;

	*written_r = false;
	if (asprintf(&tmp, "%s.%ld.tmp", lock_path, (long)getpid()) == -1)
		return -1;
	(void)unlink(tmp);	/* ours, left by a crash of this pid */
	if ((fd = fs_open_regular(tmp, O_RDWR | O_CREAT | O_EXCL,
	    0600)) < 0) {
		saved = errno;
		free(tmp);
		errno = saved;
		return -1;
	}
	if (write_pid(fd) == -1)
		goto fail;
	if (link(tmp, lock_path) == -1) {
		if (errno != EPERM && errno != ENOTSUP && errno != ENOSYS &&
		    errno != EOPNOTSUPP)
			goto fail;
		(void)close(fd);
		(void)unlink(tmp);
		free(tmp);
		return fs_open_regular(lock_path, O_WRONLY | O_CREAT | O_EXCL,
		    0600);
	}
	(void)unlink(tmp);
	free(tmp);
	*written_r = true;
	return fd;
fail:
	saved = errno;
	(void)close(fd);
	(void)unlink(tmp);
	free(tmp);
	errno = saved;
	return -1;
}

static int
lock_dotlock(struct mbox_lock *l, const struct timespec *deadline,
    char **error_r)
{
	struct stat st;
	bool written;
	int fd;

	for (;;) {
		fd = dotlock_create(l->lock_path, &written);
		if (fd >= 0)
			break;
		if (fd == -1 && errno == EINTR)
			continue;
		if (fd == -1 && errno != EEXIST)
			goto syserr;
		if (lstat(l->lock_path, &st) == -1) {
			if (errno == ENOENT)
				continue;
			goto syserr;
		}
		if (!S_ISREG(st.st_mode))
			/* Not a dotlock anybody could hold: neither wait for
			 * it nor remove what we do not understand. */
			return log_set_error(error_r, "dotlock %s: not a "
			    "regular file", l->lock_path);
		if (dotlock_stale(l->lock_path, &st)) {
			/* Its holder died: mutt and Dovecot take over the
			 * same way. */
			if (unlink(l->lock_path) == -1 && errno != ENOENT)
				goto syserr;
			continue;
		}
		if (deadline_passed(deadline))
			return log_set_error(error_r, "dotlock %s: held by "
			    "another process for more than %u ms",
			    l->lock_path, lock_wait_msec);
		nap();
	}

	/* Ours from here on: mbox_lock_release() removes it on failure. */
	l->dotlocked = true;
	l->dotlock_fd = fd;
	l->dotlock_touched = time(NULL);
	if (fstat(fd, &st) == -1)
		goto syserr;
	l->dotlock_dev = st.st_dev;
	l->dotlock_ino = st.st_ino;
	if (!written && write_pid(fd) == -1)
		goto syserr;
	return 0;

syserr:
	return log_set_error(error_r, "dotlock %s: %s", l->lock_path,
	    strerror(errno));
}

int
mbox_lock_take(struct mbox_lock *l, int fd, char **error_r)
{
	struct timespec deadline;

	deadline_set(&deadline);
	if (lock_fcntl(l, fd, &deadline, error_r) == -1 ||
	    lock_dotlock(l, &deadline, error_r) == -1)
		return -1;
	return 0;
}

void
mbox_lock_touch(struct mbox_lock *l)
{
	time_t now = time(NULL);

	if (l->dotlocked && now - l->dotlock_touched >= DOTLOCK_TOUCH_SECS) {
		/* Best effort: a missed refresh only risks being seen stale
		 * after MBOX_DOTLOCK_STALE_SECS, which the next one fixes. */
		(void)futimens(l->dotlock_fd, NULL);
		l->dotlock_touched = now;
	}
}

/* Keeps the first failure: "<what> <name>: <errno text>". */
static int
release_failed(char **error_r, const char *what, const char *name)
{
	if (*error_r == NULL)
		(void)log_set_error(error_r, "%s %s: %s", what, name,
		    strerror(errno));
	return -1;
}

int
mbox_lock_release(struct mbox_lock *l, int fd, char **error_r)
{
	struct flock fl;
	struct stat st;
	int r = 0;

	if (l->dotlocked) {
		l->dotlocked = false;
		if (lstat(l->lock_path, &st) == -1) {
			/* Already gone (someone took it for stale): fine. */
			if (errno != ENOENT)
				r = release_failed(error_r, "dotlock",
				    l->lock_path);
		} else if (st.st_dev == l->dotlock_dev &&
		    st.st_ino == l->dotlock_ino &&
		    unlink(l->lock_path) == -1) {
			r = release_failed(error_r, "unlink", l->lock_path);
		}
		/* Only after the unlink, so nobody else can have been given
		 * the same inode meanwhile. */
		if (close(l->dotlock_fd) == -1)
			r = release_failed(error_r, "close", l->lock_path);
		l->dotlock_fd = -1;
	}
	if (l->fcntl_locked) {
		l->fcntl_locked = false;
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_UNLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, l->cmd, &fl) == -1)
			r = release_failed(error_r, "unlock", l->path);
	}
	return r;
}

static bool
fcntl_locked_elsewhere(const char *path)
{
	struct flock fl;
	int fd, r;

	/* Not a regular file: mbox_open() will say so. */
	if ((fd = fs_open_regular(path, O_RDONLY, 0)) < 0)
		return false;
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
#ifdef F_OFD_GETLK
	r = fcntl(fd, F_OFD_GETLK, &fl);
	if (r == -1 && errno == EINVAL)
#endif
		r = fcntl(fd, F_GETLK, &fl);
	close(fd);
	return r == 0 && fl.l_type != F_UNLCK;
}

bool
mbox_locked_elsewhere(const char *path)
{
	struct stat st;
	char *lock;
	bool held;

	if (fcntl_locked_elsewhere(path))
		return true;
	if (asprintf(&lock, "%s.lock", path) == -1)
		return false;
	/* Anything but a regular file is no lock, but an error mbox_open()
	 * reports. */
	held = lstat(lock, &st) == 0 && S_ISREG(st.st_mode) &&
	    !dotlock_stale(lock, &st);
	free(lock);
	return held;
}
