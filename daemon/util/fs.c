/*
 * util/fs: directories made and made durable, regular files opened
 * safely, whole writes; see fs.h.
 */
#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
fs_sync_dir(const char *dir, int (*sync)(int))
{
	int fd, rc, saved;

	if (sync == NULL)
		sync = fsync;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = sync(fd);
	saved = errno;
	(void)close(fd);
	errno = saved;
	return rc;
}

int
fs_sync_parent(const char *path, int (*sync)(int))
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int rc, saved;

	if (slash == NULL)
		return fs_sync_dir(".", sync);
	if (slash == path)
		return fs_sync_dir("/", sync);
	if ((dir = strndup(path, (size_t)(slash - path))) == NULL)
		return -1;
	rc = fs_sync_dir(dir, sync);
	saved = errno;
	free(dir);
	errno = saved;
	return rc;
}

int
fs_mkdirs(const char *path, mode_t mode, int (*sync)(int))
{
	char *p, *s, c;
	int rc = -1;

	if (*path == '\0') {
		errno = ENOENT;
		return -1;
	}
	if ((p = strdup(path)) == NULL)
		return -1;
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		if (s[-1] != '/') {
			c = *s;
			*s = '\0';
			if (mkdir(p, mode) == 0) {
				if (fs_sync_parent(p, sync) == -1)
					goto out;
			} else if (errno != EEXIST)
				goto out;
			*s = c;
		}
		if (*s == '\0')
			break;
	}
	rc = 0;
out:
	free(p);
	return rc;
}

int
fs_open_regular(const char *path, int flags, mode_t mode)
{
	struct stat st;
	int fd, fl, saved;

	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto syserr;
	if (!S_ISREG(st.st_mode)) {
		(void)close(fd);
		return -2;
	}
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
		goto syserr;
	return fd;
syserr:
	saved = errno;
	(void)close(fd);
	errno = saved;
	return -1;
}

/* off < 0: write(2) at the file offset; else pwrite(2) at off. */
static int
write_loop(int fd, const void *data, size_t len, off_t off)
{
	const unsigned char *p = data;
	ssize_t n;

	while (len > 0) {
		n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
	return 0;
}

int
fs_write_all(int fd, const void *data, size_t len)
{
	return write_loop(fd, data, len, -1);
}

int
fs_pwrite_all(int fd, const void *data, size_t len, off_t off)
{
	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	return write_loop(fd, data, len, off);
}
