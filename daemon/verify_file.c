/*
 * verify_file: --verify's check of an mbox against its index, without the
 * server: the file's entries found by a scan (mbox_scan_*), each indexed
 * entry's bytes where the index puts it (read again only where the scan
 * found no entry of that length there), and verify_compare_local() on the
 * two.  A mailbox without an index gets one rebuilt in memory.  Files are
 * read with pread on descriptors opened read-only.
 */
#include "verify_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "log.h"
#include "mirror/layout.h"
#include "mirror/msgindex.h"

/* The n bytes at offset, all of them (a shorter read: -1, EIO). */
static int
read_at(int fd, void *buf, size_t n, uint64_t offset)
{
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = pread(fd, (char *)buf + done, n - done,
		    (off_t)(offset + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

/* Where the bytes at an indexed entry's place stand: its From_ line, then
 * the bytes its digest was made of.  -1 on a read error. */
static int
entry_at(int fd, uint64_t file_size, struct verify_indexed *e,
    enum verify_at *at_r)
{
	unsigned char *buf, digest[MBOX_DIGEST_LEN];
	gnutls_hash_hd_t h;
	uint64_t pos, end = e->offset + e->length;
	size_t n, line;
	unsigned char *lf;
	int r = -1;

	if (end > file_size || e->length < 6) {
		*at_r = end > file_size ? VERIFY_AT_PAST_END :
		    VERIFY_AT_NO_FROM;
		return 0;
	}
	if ((buf = malloc(READ_CHUNK)) == NULL)
		return -1;
	n = e->length < MBOX_FROM_LINE_MAX ? e->length : MBOX_FROM_LINE_MAX;
	if (read_at(fd, buf, n, e->offset) != 0)
		goto out;
	lf = memchr(buf, '\n', n);
	if (memcmp(buf, "From ", 5) != 0 || lf == NULL) {
		*at_r = VERIFY_AT_NO_FROM;
		r = 0;
		goto out;
	}
	line = (size_t)(lf - buf) + 1;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) != 0)
		goto out;
	for (pos = e->offset + line; pos < end; pos += n) {
		n = end - pos < READ_CHUNK ? (size_t)(end - pos) : READ_CHUNK;
		if (read_at(fd, buf, n, pos) != 0) {
			gnutls_hash_deinit(h, NULL);
			goto out;
		}
		(void)gnutls_hash(h, buf, n);
	}
	gnutls_hash_deinit(h, digest);
	*at_r = memcmp(digest, e->digest, MBOX_DIGEST_LEN) == 0 ?
	    VERIFY_AT_INTACT : VERIFY_AT_DIFFERS;
	memcpy(e->file_digest, digest, VERIFY_DIGEST_LEN);
	e->has_file_digest = true;
	r = 0;
out:
	free(buf);
	return r;
}

struct lf_reader {
	int fd;
	bool failed;
};

static bool
only_lf(uint64_t offset, uint64_t len, void *arg)
{
	struct lf_reader *rd = arg;
	unsigned char buf[4096];

	while (len > 0) {
		size_t n = len < sizeof buf ? (size_t)len : sizeof buf;

		if (read_at(rd->fd, buf, n, offset) != 0) {
			rd->failed = true;
			return true;
		}
		for (size_t i = 0; i < n; i++)
			if (buf[i] != '\n')
				return false;
		offset += n;
		len -= n;
	}
	return true;
}

static int
add_found(struct verify_found **v, size_t *n, size_t *cap,
    const struct verify_found *f)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct verify_found *p = reallocarray(*v, c, sizeof *p);

		if (p == NULL)
			return -1;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = *f;
	return 0;
}

/* The entries the file holds, in file order, from 0 to file_size. */
static int
scan_file(struct vmbx *mb, struct verify_found **found_r, size_t *n_r,
    char **error_r)
{
	struct mbox_scan *scan;
	struct mbox_scan_entry e;
	struct verify_found f;
	size_t cap = 0;
	int r;

	*found_r = NULL;
	*n_r = 0;
	if (mbox_scan_open(mb->path, mb->file_size, &scan, error_r) != 0)
		return -1;
	while ((r = mbox_scan_next(scan, &e, error_r)) == 1) {
		if (e.skipped > 0) {
			memset(&f, 0, sizeof f);
			f.offset = e.entry.offset - e.skipped;
			f.length = e.skipped;
			if (add_found(found_r, n_r, &cap, &f) != 0)
				goto oom;
		}
		f.offset = e.entry.offset;
		f.length = e.entry.length;
		f.from_line = true;
		memcpy(f.digest, e.entry.digest, VERIFY_DIGEST_LEN);
		if (add_found(found_r, n_r, &cap, &f) != 0)
			goto oom;
	}
	mbox_scan_close(&scan);
	if (r != 0) {
		free(*found_r);
		*found_r = NULL;
		*n_r = 0;
	}
	return r;
oom:
	mbox_scan_close(&scan);
	free(*found_r);
	*found_r = NULL;
	*n_r = 0;
	return log_set_error(error_r, "out of memory");
}

/* The index's entries this check covers: committed ones.  One of
 * another UIDVALIDITY was kept when a changed UIDVALIDITY was matched by
 * content (mirror/remap.h): a message deleted on the server since, in the
 * file all the same; its UID names nothing now, as a rebuilt one's. */
static int
take_index(struct vmbx *mb, const struct msgindex_list *l)
{
	uint64_t committed = mb->ms->mbox_size;

	if ((mb->ix = calloc(l->n ? l->n : 1, sizeof *mb->ix)) == NULL)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		const struct msgindex_entry *e = &l->v[i];
		struct verify_indexed *x = &mb->ix[mb->nix];

		if (e->offset + e->length > committed)
			continue;
		x->earlier = e->uidvalidity != 0 &&
		    e->uidvalidity != mb->ms->uidvalidity;
		x->uid = x->earlier ? 0 : e->uid;
		x->size = e->size;
		x->offset = e->offset;
		x->length = e->length;
		memcpy(x->digest, e->digest, VERIFY_DIGEST_LEN);
		mb->nix++;
	}
	return 0;
}

/* "what: detail", or detail alone (what NULL). */
static void
set_file_error(struct vmbx *mb, const char *what, const char *detail)
{
	free(mb->file_error);
	if (asprintf(&mb->file_error, "%s%s%s", what != NULL ? what : "",
	    what != NULL ? ": " : "", detail) == -1)
		mb->file_error = NULL;
	if (mb->file_error != NULL)
		log_sanitize(mb->file_error);
}

/* Loads the index, or rebuilds one from the mbox when there is none. */
static int
load_index(struct verifier *vf, struct vmbx *mb)
{
	struct msgindex_list l = { 0 };
	char *ipath, *error = NULL;
	int r;

	if ((ipath = msgindex_path(vf->state_dir, mb->ms->file)) == NULL)
		return -1;
	r = msgindex_load(ipath, mb->ms->file, &l, &error);
	free(ipath);
	if (r == 1 && mb->ms->mbox_size == 0) {
		/* Nothing committed: nothing to index. */
		mb->index = INDEX_LOADED;
		r = 0;
	} else if (r == 1) {
		log_info("account %s: mailbox %s: no index; rebuilt from the "
		    "mbox in memory: the file's entries can only be counted, "
		    "not checked (their UIDs and digests were never recorded)",
		    vf->account->name, mb->display);
		r = msgindex_rebuild(mb->path, mb->ms->mbox_size <
		    mb->file_size ? mb->ms->mbox_size : mb->file_size, &l,
		    &error);
		mb->index = INDEX_REBUILT;
	} else {
		mb->index = INDEX_LOADED;
	}
	if (r != 0) {
		set_file_error(mb, NULL, error != NULL ? error :
		    "out of memory");
		mb->index = INDEX_FAILED;
		free(error);
		msgindex_list_free(&l);
		return 0;
	}
	r = take_index(mb, &l);
	msgindex_list_free(&l);
	return r;
}

/* The file against its index (verify_compare_local()). */
static int
check_entries(struct vmbx *mb, int fd)
{
	struct verify_found *found = NULL;
	struct lf_reader rd = { .fd = fd };
	char *error = NULL;
	size_t nfound = 0, f = 0;
	int r = -1;

	if (scan_file(mb, &found, &nfound, &error) != 0) {
		set_file_error(mb, NULL, error != NULL ? error :
		    "out of memory");
		free(error);
		return 0;
	}
	for (size_t i = 0; i < mb->nix; i++) {
		struct verify_indexed *e = &mb->ix[i];

		/* Most entries are where the scan found them: their digest
		 * is the scan's, no second read. */
		while (f < nfound && found[f].offset < e->offset)
			f++;
		if (f < nfound && found[f].offset == e->offset &&
		    found[f].length == e->length) {
			e->at = memcmp(found[f].digest, e->digest,
			    VERIFY_DIGEST_LEN) == 0 ? VERIFY_AT_INTACT :
			    VERIFY_AT_DIFFERS;
			memcpy(e->file_digest, found[f].digest,
			    VERIFY_DIGEST_LEN);
			e->has_file_digest = true;
			continue;
		}
		if (entry_at(fd, mb->file_size, e, &e->at) != 0) {
			set_file_error(mb, "read", strerror(errno));
			goto out;
		}
	}
	if (verify_compare_local(mb->ix, mb->nix, found, nfound,
	    mb->ms->mbox_size, mb->file_size, only_lf, &rd,
	    &mb->problems) != 0)
		goto out;
	if (rd.failed)
		set_file_error(mb, "read", strerror(errno));
	r = 0;
out:
	free(found);
	return r;
}

/* Forgets what a check of mb's file found, to check it again. */
static void
forget_file_check(struct vmbx *mb)
{
	free(mb->ix);
	mb->ix = NULL;
	mb->nix = 0;
	free(mb->file_error);
	mb->file_error = NULL;
	mb->problems.n = 0;
	mb->index = INDEX_NONE;
	mb->file_size = 0;
}

/* One look at mb's file (mb->path).  -1 only when out of memory. */
static int
check_file_once(struct verifier *vf, struct vmbx *mb)
{
	struct stat st;
	struct verify_problem tail = { .kind = VERIFY_TAIL };
	int fd;

	fd = open(mb->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT && mb->ms->mbox_size == 0)
		return 0;	/* an empty mailbox never made one */
	if (fd == -1 || fstat(fd, &st) != 0) {
		set_file_error(mb, NULL, strerror(errno));
		if (fd != -1)
			(void)close(fd);
		mb->index = INDEX_FAILED;
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		set_file_error(mb, NULL, "not a regular file");
		(void)close(fd);
		mb->index = INDEX_FAILED;
		return 0;
	}
	mb->file_size = (uint64_t)st.st_size;
	if (load_index(vf, mb) != 0) {
		(void)close(fd);
		return -1;
	}
	if (mb->index == INDEX_LOADED) {
		if (check_entries(mb, fd) != 0 && mb->file_error == NULL) {
			(void)close(fd);
			return -1;
		}
	} else if (mb->index == INDEX_REBUILT &&
	    mb->file_size != mb->ms->mbox_size) {
		/* Rebuilt from the file itself: only its size tells. */
		tail.kind = mb->file_size > mb->ms->mbox_size ? VERIFY_TAIL :
		    VERIFY_SHORT;
		tail.offset = tail.kind == VERIFY_TAIL ? mb->ms->mbox_size :
		    mb->file_size;
		tail.length = mb->file_size > mb->ms->mbox_size ?
		    mb->file_size - mb->ms->mbox_size : 0;
		tail.a = mb->file_size;
		tail.b = mb->ms->mbox_size;
		if (verify_problems_add(&mb->problems, &tail) != 0) {
			(void)close(fd);
			return -1;
		}
	}
	(void)close(fd);
	return 0;
}

static bool
has_tail(const struct vmbx *mb)
{
	for (size_t i = 0; i < mb->problems.n; i++)
		if (mb->problems.v[i].kind == VERIFY_TAIL)
			return true;
	return false;
}

/* Whether the file at mb->path is no longer as large as when it was
 * checked (a sync cut a crash's leftover tail, or appended). */
static bool
size_changed(const struct vmbx *mb)
{
	struct stat st;

	return lstat(mb->path, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size != mb->file_size;
}

/*
 * Whether a sync has been at the file since the state was read: one holds
 * the account's lock now, or the state commits the bytes after the last
 * entry now (a sync that came and went).
 */
static bool
sync_since(struct verifier *vf, const struct vmbx *mb)
{
	struct account_state now = { 0 };
	struct mailbox_state *ms;
	char *error = NULL;
	long pid;
	bool committed = false;

	if (vf->sync_running)
		return true;
	if (state_daemon_running_in(vf->state_dir, &pid) == 1) {
		vf->sync_running = true;
		vf->sync_pid = pid;
		log_info("account %s: a sync started (pid %ld): what it "
		    "appends after the state read is not checked",
		    vf->account->name, pid);
		return true;
	}
	if (state_load(vf->state_dir, &now, &error) != 0) {
		free(error);
		return false;
	}
	ms = state_find(&now, mb->ms->name);
	committed = ms != NULL && ms->uidvalidity == mb->ms->uidvalidity &&
	    ms->file != NULL && strcmp(ms->file, mb->ms->file) == 0 &&
	    ms->mbox_size >= mb->file_size;
	state_clear(&now);
	return committed;
}

/* How many times a file that changes while it is checked is checked. */
#define FILE_CHECKS 3

/*
 * The local check of one mailbox.  -1 only when out of memory; what is
 * wrong with the file is in mb.  A sync may be at the file meanwhile
 * (verify.h): a file whose size changed while it was read, when that
 * read failed or found bytes after the last entry, is read again.
 */
int
verify_check_file(struct verifier *vf, struct vmbx *mb)
{
	if (mb->ms->file == NULL || mb->ms->uidvalidity == 0)
		return 0;	/* nothing mirrored yet */
	if ((mb->path = layout_path(vf->account->output, mb->ms->file)) ==
	    NULL)
		return -1;
	for (int k = 1;; k++) {
		if (check_file_once(vf, mb) != 0)
			return -1;
		if ((mb->file_error == NULL && (!has_tail(mb) ||
		    vf->sync_running)) || k == FILE_CHECKS ||
		    !size_changed(mb))
			break;
		log_debug("account %s: mailbox %s: the file changed while "
		    "it was read: read again", vf->account->name,
		    mb->display);
		forget_file_check(mb);
	}
	/* Bytes a sync appended after the state was read are expected, not
	 * a problem. */
	if (has_tail(mb) && sync_since(vf, mb))
		verify_drop_tail(&mb->problems);
	return 0;
}
