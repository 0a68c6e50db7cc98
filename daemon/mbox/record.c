/*
 * The append record of an mbox (see record.h).
 */
#include "mbox/record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util/fs.h"

#define RECORD_MAGIC	"mboxmirror-append 1"
#define RECORD_OPEN	"open"
#define RECORD_DONE	"done"

int
mbox_record_init(struct mbox_record *r, const char *path, const char *mbox)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	r->mbox = mbox;
	return (r->path = strdup(path)) == NULL ? -1 : 0;
}

int
mbox_record_close(struct mbox_record *r)
{
	int fd = r->fd;

	r->fd = -1;
	return fd != -1 ? close(fd) : 0;
}

void
mbox_record_free(struct mbox_record *r)
{
	(void)mbox_record_close(r);
	free(r->path);
	r->path = NULL;
}

void
mbox_record_truncated(struct mbox_record *r, uint64_t end)
{
	if (!r->open || r->max <= end)
		return;
	if (mbox_record_write(r, true, end, true) == 0)
		r->max = end;
}

int
mbox_record_write(struct mbox_record *r, bool open, uint64_t end, bool sync)
{
	char *rec;
	bool created = false;
	int len, saved;

	if (r->fd == -1) {
		r->fd = fs_open_regular(r->path, O_RDWR, 0);
		if (r->fd == -1 && errno == ENOENT) {
			r->fd = fs_open_regular(r->path, O_RDWR |
			    O_CREAT | O_EXCL, 0600);
			created = true;
		}
		if (r->fd == -2)
			errno = EINVAL;
		if (r->fd < 0) {
			r->fd = -1;
			return -1;
		}
	}
	len = asprintf(&rec, "%s %s %020llu %020llu %020llu\n%s\n",
	    RECORD_MAGIC, open ? RECORD_OPEN : RECORD_DONE,
	    (unsigned long long)r->dev, (unsigned long long)r->ino,
	    (unsigned long long)end, r->mbox);
	if (len == -1) {
		errno = ENOMEM;
		return -1;
	}
	if (fs_pwrite_all(r->fd, rec, (size_t)len, 0) == -1) {
		saved = errno;
		free(rec);
		errno = saved;
		return -1;
	}
	free(rec);
	if (ftruncate(r->fd, (off_t)len) == -1)
		return -1;
	if ((sync || created) && (fdatasync(r->fd) == -1 ||
	    (created && fs_sync_parent(r->path, NULL) == -1)))
		return -1;
	if (open && end > r->max)
		r->max = end;
	return 0;
}

int
mbox_record_read(const struct mbox_record *r, enum mbox_record_kind *kind_r, uint64_t *end_r,
    char **error_r)
{
	unsigned long long dev, ino, end;
	size_t cap = strlen(r->mbox) + 128, len = 0, plen;
	char kind[8], *buf = NULL;
	ssize_t n;
	int fd, pos = 0;

	*kind_r = MBOX_RECORD_NONE;
	*end_r = 0;
	fd = fs_open_regular(r->path, O_RDONLY, 0);
	if (fd == -1 && errno == ENOENT)
		return 0;
	if (fd == -2)
		return log_set_error(error_r, "%s: not a regular file",
		    r->path);
	if (fd == -1 || (buf = malloc(cap + 1)) == NULL)
		goto syserr;
	/* One byte more than any record of ours: a longer file is not. */
	while (len <= cap) {
		n = read(fd, buf + len, cap + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto syserr;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	(void)close(fd);
	fd = -1;
	buf[len > cap ? cap : len] = '\0';
	*kind_r = MBOX_RECORD_GARBLED;
	if (len > cap || memchr(buf, '\0', len) != NULL ||
	    sscanf(buf, RECORD_MAGIC " %4s %20llu %20llu %20llu%n", kind, &dev,
	    &ino, &end, &pos) != 4 || buf[pos] != '\n' ||
	    (strcmp(kind, RECORD_OPEN) != 0 && strcmp(kind, RECORD_DONE) != 0))
		goto out;
	plen = strlen(r->mbox);
	if (len - (size_t)pos - 1 != plen + 1 ||
	    memcmp(buf + pos + 1, r->mbox, plen) != 0 || buf[len - 1] != '\n' ||
	    dev != (unsigned long long)r->dev ||
	    ino != (unsigned long long)r->ino) {
		*kind_r = MBOX_RECORD_NONE;
		goto out;
	}
	*kind_r = strcmp(kind, RECORD_OPEN) == 0 ? MBOX_RECORD_APPENDING :
	    MBOX_RECORD_CLOSED;
	*end_r = end;
out:
	free(buf);
	return 0;

syserr:
	(void)log_set_error(error_r, "read %s: %s", r->path,
	    strerror(errno));
	if (fd >= 0)
		(void)close(fd);
	free(buf);
	return -1;
}
