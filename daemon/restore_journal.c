/*
 * --restore's journal file (see restore_int.h; the records are
 * mirror/restore_plan.h's): "<state_dir>/<NAME2>/restore-<16 hex>", read
 * at the start, appended to as messages go out and come back accepted.
 */
#include "restore_int.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util/fs.h"
#include "util/hash.h"

int
restore_jfile_load(struct restorer *r, const char *dst_dir)
{
	char name[64], *buf = NULL, *error = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	snprintf(name, sizeof name, "restore-%016" PRIx64,
	    hash_fnv1a64(r->src->name, strlen(r->src->name)));
	if (asprintf(&r->journal_path, "%s/%s", dst_dir, name) < 0) {
		r->journal_path = NULL;
		return -1;
	}
	fd = fs_open_regular(r->journal_path, O_RDONLY, 0);
	if (fd < 0) {
		if (fd == -1 && errno == ENOENT)
			return 0;
		log_error("%s: %s", r->journal_path, fd == -2 ?
		    "not a regular file" : strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (nb == NULL) {
				free(buf);
				close(fd);
				return -1;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (n == -1) {
		log_error("%s: %s", r->journal_path, strerror(errno));
		free(buf);
		return -1;
	}
	if (restore_journal_parse(buf, len, r->journal_path, &r->journal,
	    &error) != 0) {
		log_error("%s (remove it to start the restore afresh)", error);
		free(error);
		free(buf);
		return -1;
	}
	/* A line cut short by a kill was never acted on: cut on opening. */
	while (len > 0 && buf[len - 1] != '\n')
		len--;
	r->journal_keep = len < sizeof RESTORE_JOURNAL_HEADER - 1 ? 0 : len;
	free(buf);
	return 0;
}

static int
journal_write(struct restorer *r, const char *data, size_t len)
{
	if (fs_write_all(r->journal_fd, data, len) == -1) {
		log_error("%s: write: %s", r->journal_path, strerror(errno));
		return -1;
	}
	return 0;
}

int
restore_jfile_open(struct restorer *r)
{
	struct stat st;

	r->journal_fd = fs_open_regular(r->journal_path, O_WRONLY | O_APPEND |
	    O_CREAT, 0600);
	if (r->journal_fd == -2) {
		r->journal_fd = -1;
		log_error("%s: not a regular file", r->journal_path);
		return -1;
	}
	if (r->journal_fd == -1 || fstat(r->journal_fd, &st) != 0) {
		log_error("%s: %s", r->journal_path, strerror(errno));
		return -1;
	}
	/* What a kill cut short goes (with O_APPEND, writes follow). */
	if ((uint64_t)st.st_size > r->journal_keep &&
	    ftruncate(r->journal_fd, (off_t)r->journal_keep) != 0) {
		log_error("%s: ftruncate: %s", r->journal_path,
		    strerror(errno));
		return -1;
	}
	if (r->journal_keep > 0)
		return 0;
	/* A new journal: its name is durable before any record counts. */
	if (journal_write(r, RESTORE_JOURNAL_HEADER,
	    sizeof RESTORE_JOURNAL_HEADER - 1) != 0 ||
	    restore_jfile_sync(r) != 0)
		return -1;
	if (fs_sync_parent(r->journal_path, NULL) != 0) {
		log_error("%s: fsync of its directory: %s", r->journal_path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
restore_jfile_sync(struct restorer *r)
{
	if (fdatasync(r->journal_fd) != 0) {
		log_error("%s: fdatasync: %s", r->journal_path,
		    strerror(errno));
		return -1;
	}
	r->journal_dirty = false;
	return 0;
}

int
restore_jfile_mark(struct restorer *r, const struct rbox *b,
    const struct rmsg *m, enum restore_mark mark, uint32_t uidvalidity,
    uint32_t uid)
{
	struct restore_record rec = {
		.box = b->box_hash, .offset = m->e.offset,
		.digest = restore_digest64(m->e.digest),
		.length = m->e.length, .mark = mark,
		.uidvalidity = uidvalidity, .uid = uid,
	};
	char line[RESTORE_LINE_MAX];

	return journal_write(r, line, restore_journal_line(line, &rec));
}
