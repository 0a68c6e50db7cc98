#include "mirror/layout.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/utf8.h"

/* Names tried for a file kept aside before giving up. */
#define KEEP_ASIDE_TRIES 1000

struct layout_file {
	int dirfd;
	char *path;		/* output "/" rel */
	const char *name;	/* its last component, in path */
	bool existed;		/* at layout_file_open() */
};

static const struct layout_sys_ops real_ops = {
	.fsync = fsync,
};
static const struct layout_sys_ops *sys = &real_ops;

static bool valid_rel(const char *);
static int open_dir(const char *, const char *, bool, const char **,
    char **);
static int check_same_dir(const struct layout_file *, char **);

void
layout_set_sys_ops(const struct layout_sys_ops *ops)
{
	sys = ops != NULL ? ops : &real_ops;
}

char *
layout_path(const char *output, const char *rel)
{
	char *path;

	if (asprintf(&path, "%s/%s", output, rel) < 0)
		return NULL;
	return path;
}

int
layout_make_output(const char *output)
{
	return fs_mkdirs(output, 0700, sys->fsync);
}

/* Relative, no empty, "." or ".." component: checked before anything is
 * made, so that no part of a bad path is. */
static bool
valid_rel(const char *rel)
{
	const char *comp = rel, *end;
	size_t len;

	for (;;) {
		end = strchrnul(comp, '/');
		len = (size_t)(end - comp);
		if (len == 0 || (len == 1 && comp[0] == '.') || (len == 2 &&
		    comp[0] == '.' && comp[1] == '.'))
			return false;
		if (*end == '\0')
			return true;
		comp = end + 1;
	}
}

/*
 * The directory that holds rel, walked down from output without following
 * a symlink; missing ones are made when create (each parent fsynced), else
 * -1 with ENOENT.  *name_r: rel's last component.  -1 with a malloc'ed
 * *error_r, errno kept.
 */
static int
open_dir(const char *output, const char *rel, bool create,
    const char **name_r, char **error_r)
{
	const char *comp = rel, *slash, *what = "open";
	char *part = NULL;
	struct stat st;
	int fd, next, saved;
	bool symlink;

	*error_r = NULL;
	if (!valid_rel(rel)) {
		if (asprintf(error_r, "%s/%s: not a path below %s", output,
		    rel, output) < 0)
			*error_r = NULL;
		errno = EINVAL;
		return -1;
	}
	fd = open(output, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		if (asprintf(error_r, "cannot open %s: %s", output,
		    strerror(saved)) < 0)
			*error_r = NULL;
		errno = saved;
		return -1;
	}
	for (;;) {
		slash = strchr(comp, '/');
		if (slash == NULL)
			break;
		free(part);
		if ((part = strndup(comp, (size_t)(slash - comp))) == NULL)
			goto fail;
		if (create) {
			what = "create";
			if (mkdirat(fd, part, 0700) == 0) {
				/* The new entry is durable before anything
				 * that counts on it. */
				if (sys->fsync(fd) != 0)
					goto fail;
			} else if (errno != EEXIST)
				goto fail;
		}
		/* O_NONBLOCK: a FIFO in the way must not hang the open. */
		what = "open";
		next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC);
		if (next == -1)
			goto fail;
		close(fd);
		fd = next;
		comp = slash + 1;
	}
	free(part);
	*name_r = comp;
	return fd;
fail:
	saved = errno;
	/* O_NOFOLLOW | O_DIRECTORY says ENOTDIR (or ELOOP) for a symlink. */
	symlink = (saved == ENOTDIR || saved == ELOOP) && part != NULL &&
	    fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode);
	close(fd);
	free(part);
	if (asprintf(error_r, "cannot %s directory %s/%.*s: %s", what, output,
	    (int)(slash - rel), rel, symlink ? "a symlink is in the way" :
	    strerror(saved)) < 0)
		*error_r = NULL;
	errno = saved;
	return -1;
}

int
layout_file_open(const char *output, const char *rel,
    struct layout_file **lf_r, char **error_r)
{
	struct layout_file *lf;
	const char *name;
	struct stat st;

	*lf_r = NULL;
	*error_r = NULL;
	if ((lf = calloc(1, sizeof *lf)) == NULL)
		return -1;
	if ((lf->path = layout_path(output, rel)) == NULL) {
		free(lf);
		return -1;
	}
	if ((lf->dirfd = open_dir(output, rel, true, &name, error_r)) == -1) {
		free(lf->path);
		free(lf);
		return -1;
	}
	lf->name = lf->path + strlen(output) + 1 + (name - rel);
	if (check_same_dir(lf, error_r) != 0) {
		layout_file_free(&lf);
		return -1;
	}
	/* Anything there but ENOENT is the opener's to judge. */
	lf->existed = fstatat(lf->dirfd, lf->name, &st,
	    AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT;
	*lf_r = lf;
	return 0;
}

const char *
layout_file_path(const struct layout_file *lf)
{
	return lf->path;
}

/*
 * Whether path still leads to the directory walked: the walk itself never
 * follows a symlink, but path is resolved again by whoever opens it.
 */
static int
check_same_dir(const struct layout_file *lf, char **error_r)
{
	struct stat by_fd, by_path;
	char *dir;
	int rc;

	if ((dir = strndup(lf->path, (size_t)(lf->name - 1 - lf->path))) ==
	    NULL)
		return -1;
	rc = fstat(lf->dirfd, &by_fd) == 0 && stat(dir, &by_path) == 0 &&
	    by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino ?
	    0 : -1;
	if (rc != 0 && asprintf(error_r, "%s is no longer the directory "
	    "walked: replaced meanwhile", dir) < 0)
		*error_r = NULL;
	free(dir);
	return rc;
}

int
layout_file_opened(struct layout_file *lf, char **error_r)
{
	*error_r = NULL;
	if (check_same_dir(lf, error_r) != 0)
		return -1;
	if (lf->existed)
		return 0;
	if (sys->fsync(lf->dirfd) != 0) {
		if (asprintf(error_r, "cannot sync the directory of %s: %s",
		    lf->path, strerror(errno)) < 0)
			*error_r = NULL;
		return -1;
	}
	lf->existed = true;
	return 0;
}

void
layout_file_free(struct layout_file **lfp)
{
	struct layout_file *lf = *lfp;

	*lfp = NULL;
	if (lf == NULL)
		return;
	close(lf->dirfd);
	free(lf->path);
	free(lf);
}

int
layout_keep_aside(const char *output, const char *rel, const char *tag,
    char **to_r, char **error_r)
{
	char *from = NULL, *to = NULL;
	const char *name, *to_name;
	size_t len, name_at;
	struct stat st;
	int fd, rc = -1;

	*to_r = NULL;
	*error_r = NULL;
	if ((fd = open_dir(output, rel, false, &name, error_r)) == -1) {
		if (errno != ENOENT)
			return -1;
		free(*error_r);
		*error_r = NULL;
		return 0;
	}
	if ((from = layout_path(output, rel)) == NULL)
		goto out;
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			rc = 0;
		goto fail;
	}
	name_at = strlen(output) + 1 + (size_t)(name - rel);
	len = strlen(from);
	if (len > 5 && strcmp(from + len - 5, ".mbox") == 0)
		len -= 5;
	for (unsigned i = 1; ; i++) {
		free(to);
		to = NULL;
		if (i == KEEP_ASIDE_TRIES) {
			errno = EEXIST;
			goto fail;
		}
		if ((i == 1 ? asprintf(&to, "%.*s.%s.mbox", (int)len, from,
		    tag) : asprintf(&to, "%.*s.%s-%u.mbox", (int)len, from,
		    tag, i)) < 0) {
			to = NULL;
			goto out;
		}
		to_name = to + name_at;
		/* Never over a file: a person's, or one kept before. */
		if (renameat2(fd, name, fd, to_name, RENAME_NOREPLACE) == 0)
			break;
		if (errno == EEXIST)
			continue;
		if (errno != EINVAL && errno != ENOSYS)
			goto fail;
		/* A file system without RENAME_NOREPLACE: look first. */
		if (fstatat(fd, to_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (errno != ENOENT || renameat(fd, name, fd, to_name) != 0)
			goto fail;
		break;
	}
	/* Both names are in this directory: one fsync makes the move
	 * durable before the state that starts afresh is saved. */
	if (sys->fsync(fd) != 0)
		goto fail;
	*to_r = to;
	to = NULL;
	rc = 0;
	goto out;
fail:
	if (rc != 0 && asprintf(error_r, "cannot move %s aside: %s", from,
	    strerror(errno)) < 0)
		*error_r = NULL;
out:
	close(fd);
	free(from);
	free(to);
	return rc;
}

/* Case folding and canonical decomposition */

struct fold_entry {
	uint16_t cp;
	uint16_t to[3];
};

static const struct fold_entry fold_table[] = {
#include "mirror/layout_fold.inc"
};

/* Reads one code point of the NUL-terminated string at *pp; a byte that
 * does not start valid UTF-8 is returned as 0x110000 + byte, equal to
 * nothing else. */
static uint32_t
next_cp(const unsigned char **pp)
{
	const unsigned char *p = *pp;
	uint32_t c;
	size_t n;

	if ((n = utf8_decode(p, strnlen((const char *)p, 4), &c)) == 0) {
		*pp = p + 1;
		return 0x110000 + p[0];
	}
	*pp = p + n;
	return c;
}

/* Folded code points of a string, one at a time; 0 at its end. */
struct fold {
	const unsigned char *p;
	uint16_t pending[3];
	size_t n_pending, next;
};

static uint32_t
fold_next(struct fold *f)
{
	const struct fold_entry *e;
	size_t lo = 0, hi = sizeof fold_table / sizeof fold_table[0], mid;
	uint32_t c;

	if (f->next < f->n_pending)
		return f->pending[f->next++];
	if (*f->p == '\0')
		return 0;
	c = next_cp(&f->p);
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		e = &fold_table[mid];
		if (e->cp == c) {
			f->n_pending = e->to[2] != 0 ? 3 :
			    e->to[1] != 0 ? 2 : 1;
			memcpy(f->pending, e->to, sizeof f->pending);
			f->next = 1;
			return f->pending[0];
		}
		if (e->cp < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return c;
}

bool
layout_same_file(const char *a, const char *b)
{
	struct fold fa = { .p = (const unsigned char *)a };
	struct fold fb = { .p = (const unsigned char *)b };
	uint32_t ca, cb;

	if (strcmp(a, b) == 0)
		return true;
	do {
		ca = fold_next(&fa);
		cb = fold_next(&fb);
		if (ca != cb)
			return false;
	} while (ca != 0);
	return true;
}

/* Whether a mailbox other than self already mirrors into rel, or into a
 * name a folding file system takes for it. */
static bool
file_taken(const struct account_state *st, const struct mailbox_state *self,
    const char *rel)
{
	for (size_t i = 0; i < st->n_mailboxes; i++) {
		const struct mailbox_state *o = &st->mailboxes[i];

		if (o != self && o->file != NULL &&
		    layout_same_file(o->file, rel))
			return true;
	}
	return false;
}

int
layout_unique_file(const struct account_state *st,
    const struct mailbox_state *self, const char *rel, char **file_r)
{
	size_t len = strlen(rel);
	char *alt;

	if (!file_taken(st, self, rel)) {
		*file_r = strdup(rel);
		return *file_r != NULL ? 0 : -1;
	}
	if (len > 5 && strcmp(rel + len - 5, ".mbox") == 0)
		len -= 5;
	for (unsigned i = 2; ; i++) {
		if (asprintf(&alt, "%.*s.%u.mbox", (int)len, rel, i) < 0)
			return -1;
		if (!file_taken(st, self, alt))
			break;
		free(alt);
	}
	*file_r = alt;
	return 0;
}

/* The walk of layout_find_mbox(); find_in() consumes its descriptor. */
struct find_walk {
	size_t entries;
	char *found;		/* relative to output */
	int error;		/* errno of a failure, 0 */
};

static bool
is_mbox_name(const char *name)
{
	size_t len = strlen(name);

	return len > 5 && strcmp(name + len - 5, ".mbox") == 0;
}

static void
find_in(struct find_walk *w, int fd_dir, const char *rel, int depth)
{
	DIR *d = fdopendir(fd_dir);
	struct dirent *de;
	struct stat st;
	char *sub;

	if (d == NULL) {
		w->error = errno;
		(void)close(fd_dir);
		return;
	}
	while (w->found == NULL && w->error == 0 &&
	    w->entries < LAYOUT_FIND_ENTRIES && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name,
		    "..") == 0)
			continue;
		w->entries++;
		if (fstatat(dirfd(d), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) != 0)
			continue;	/* gone meanwhile */
		if (S_ISREG(st.st_mode) && st.st_size > 0 &&
		    is_mbox_name(de->d_name)) {
			if (asprintf(&w->found, "%s%s%s", rel, *rel ? "/" : "",
			    de->d_name) == -1) {
				w->found = NULL;
				w->error = ENOMEM;
			}
		} else if (S_ISDIR(st.st_mode) && depth < LAYOUT_FIND_DEPTH) {
			int fd = openat(dirfd(d), de->d_name, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (fd == -1)
				continue;	/* unreadable: not ours */
			if (asprintf(&sub, "%s%s%s", rel, *rel ? "/" : "",
			    de->d_name) == -1) {
				(void)close(fd);
				w->error = ENOMEM;
				break;
			}
			find_in(w, fd, sub, depth + 1);
			free(sub);
		}
	}
	(void)closedir(d);
}

int
layout_find_mbox(const char *output, char **rel_r, char **error_r)
{
	struct find_walk w = { 0 };
	int fd;

	*rel_r = NULL;
	*error_r = NULL;
	fd = open(output, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		/* No output (or a file in its way): no mirror there. */
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		if (asprintf(error_r, "%s: %s", output, strerror(errno)) == -1)
			*error_r = NULL;
		return -1;
	}
	find_in(&w, fd, "", 0);
	if (w.error != 0) {
		free(w.found);
		if (w.error != ENOMEM && asprintf(error_r, "%s: %s", output,
		    strerror(w.error)) == -1)
			*error_r = NULL;
		return -1;
	}
	*rel_r = w.found;
	return w.found != NULL ? 1 : 0;
}
