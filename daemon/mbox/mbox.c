/*
 * The mbox appender (see mbox.h): opening, buffered durable writes,
 * commits, truncate-back on failure, and reconciling the file with the
 * committed size at open.  The mboxrd encoding of a message is mboxrd.c's,
 * the locks lock.c's, the append record record.c's.
 */
#include "mbox/mbox.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mbox/lock.h"
#include "mbox/mboxrd.h"
#include "mbox/record.h"
#include "util/fs.h"

/* Bytes copied at a time when a foreign tail is saved aside. */
#define COPY_CHUNK	65536

struct mbox {
	char		*path;
	int		 fd;
	struct mbox_record rec;		/* the append record */
	char		*cut_path;	/* where mbox_open() saved a tail */
	struct mbox_lock lock;

	uint64_t	 committed;	/* size as last committed */
	uint64_t	 flushed;	/* written past committed */
	bool		 dirty;		/* bytes past committed? */
	bool		 failed;	/* only rollback helps now */
	uint64_t	 open_size;
	unsigned int	 base_pad;	/* LFs owed before entry 1 */
	unsigned int	 pad;

	unsigned char	*out;
	size_t		 out_len;

	bool		 in_msg;	/* between begin and end */
	struct mboxrd	 enc;		/* the message in progress */
	struct mbox_entry entry;	/* in progress, then the last ended */
	struct mbox_entry last_entry;

	char		*error;
};

static ssize_t	sys_pwrite(int, const void *, size_t, off_t);
static int	sys_fdatasync(int);
static int	sys_ftruncate(int, off_t);
static void	set_error(struct mbox *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	truncate_back(struct mbox *);
static void	fail(struct mbox *, const char *, int);
static int	flush_out(struct mbox *);
static int	out_raw(struct mbox *, const void *, size_t);
static int	compute_pad(struct mbox *, char **);
static int	is_leftover(struct mbox *, uint64_t, uint64_t, bool *, char **);
static int	save_aside(struct mbox *, uint64_t, uint64_t, char **);
static int	reconcile(struct mbox *, uint64_t, uint64_t,
		    enum mbox_open_result *, char **);

/* An entry of ours starts so (is_leftover()). */
static const char from_[] = MBOXRD_FROM;

static const struct mbox_sys_ops real_ops = {
	sys_pwrite, sys_fdatasync, sys_ftruncate
};
static struct mbox_sys_ops ops = {
	sys_pwrite, sys_fdatasync, sys_ftruncate
};


static ssize_t
sys_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

static int
sys_fdatasync(int fd)
{
	return fdatasync(fd);
}

static int
sys_ftruncate(int fd, off_t len)
{
	return ftruncate(fd, len);
}

void
mbox_set_sys_ops(const struct mbox_sys_ops *o)
{
	ops = o != NULL ? *o : real_ops;
}





static void
set_error(struct mbox *m, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	free(m->error);
	m->error = s;
}

/* ops.fdatasync, again after EINTR.  0, or -1 with errno. */
static int
sync_data(int fd)
{
	int r;

	do
		r = ops.fdatasync(fd);
	while (r == -1 && errno == EINTR);
	return r;
}

/* ops.ftruncate, again after EINTR.  0, or -1 with errno. */
static int
truncate_to(int fd, uint64_t size)
{
	int r;

	do
		r = ops.ftruncate(fd, (off_t)size);
	while (r == -1 && errno == EINTR);
	return r;
}

/* Cut to size, and the cut durable.  0, or -1 with errno. */
static int
truncate_durably(int fd, uint64_t size)
{
	return truncate_to(fd, size) == -1 ? -1 : sync_data(fd);
}

/* Exactly len bytes of the mbox at off.  0, or -1 with *error_r. */
static int
read_exactly(struct mbox *m, void *buf, size_t len, uint64_t off,
    char **error_r)
{
	ssize_t n;

	do
		n = pread(m->fd, buf, len, (off_t)off);
	while (n == -1 && errno == EINTR);
	if (n == (ssize_t)len)
		return 0;
	return log_set_error(error_r, "read %s: %s", m->path,
	    n == -1 ? strerror(errno) : "short read");
}

/* Cuts the file back to its committed size; 0 or -1 (error appended). */
static int
truncate_back(struct mbox *m)
{
	if (!m->dirty)
		return 0;
	if (truncate_to(m->fd, m->committed) == -1) {
		int saved = errno;
		char *prev = m->error;

		m->error = NULL;
		set_error(m, "%s%struncate %s back to %llu: %s",
		    prev != NULL ? prev : "", prev != NULL ? "; " : "",
		    m->path, (unsigned long long)m->committed,
		    strerror(saved));
		free(prev);
		return -1;
	}
	m->dirty = false;
	/* Not synced first (a failure path): if a power cut undoes the cut,
	 * our tail is at worst saved aside as another program's; a record
	 * left claiming it could cut a reader's mail unsaved. */
	mbox_record_truncated(&m->rec, m->committed);
	return 0;
}

/* A write or sync failed: nothing since the last commit can be trusted. */
static void
fail(struct mbox *m, const char *what, int err)
{
	set_error(m, "%s %s: %s", what, m->path, strerror(err));
	m->failed = true;
	m->out_len = 0;
	m->flushed = 0;
	(void)truncate_back(m);
}

static int
flush_out(struct mbox *m)
{
	size_t done = 0;
	ssize_t n;

	if (m->failed)
		return -1;
	if (m->out_len > 0 && !m->rec.open) {
		/* Durable before the first byte past the committed size, so
		 * that a crash leaves a tail known to be ours. */
		if (mbox_record_write(&m->rec, true, m->committed + m->flushed,
		    true) == -1) {
			set_error(m, "write %s: %s", m->rec.path,
			    strerror(errno));
			m->failed = true;
			m->out_len = 0;
			return -1;
		}
		m->rec.open = true;
	}
	while (done < m->out_len) {
		m->dirty = true;
		n = ops.pwrite(m->fd, m->out + done, m->out_len - done,
		    (off_t)(m->committed + m->flushed));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fail(m, "write", n == 0 ? EIO : errno);
			return -1;
		}
		done += (size_t)n;
		m->flushed += (uint64_t)n;
	}
	m->out_len = 0;
	/* Where our bytes end, not synced: after a kill it tells them from
	 * bytes appended later; a power cut may lose it, and then more of
	 * the tail is only saved aside than need be. */
	if (done > 0)
		(void)mbox_record_write(&m->rec, true, m->committed + m->flushed, false);
	mbox_lock_touch(&m->lock);
	return 0;
}

static int
out_raw(struct mbox *m, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t n;

	while (len > 0) {
		if (m->out_len == MBOX_WRITE_BUFFER && flush_out(m) == -1)
			return -1;
		n = MBOX_WRITE_BUFFER - m->out_len;
		if (n > len)
			n = len;
		memcpy(m->out + m->out_len, p, n);
		m->out_len += n;
		p += n;
		len -= n;
	}
	return 0;
}


/* The encoder's output: into the write buffer. */
static int
enc_out(void *arg, const void *data, size_t len)
{
	return out_raw(arg, data, len);
}

int
mbox_msg_begin(struct mbox *m, time_t internaldate)
{
	static const char lfs[] = "\n\n";

	if (m->failed)
		return -1;
	if (m->in_msg) {
		set_error(m, "%s: message begun twice", m->path);
		return -1;
	}
	if (m->pad > 0) {
		if (out_raw(m, lfs, m->pad) == -1)
			return -1;
		m->pad = 0;
	}
	if (mboxrd_begin(&m->enc, internaldate) == -1) {
		set_error(m, "%s: cannot set up SHA-256", m->path);
		return -1;
	}
	m->in_msg = true;
	m->entry.offset = mbox_appended_size(m);
	return 0;
}

int
mbox_msg_write(struct mbox *m, const void *data, size_t len)
{
	if (m->failed)
		return -1;
	if (!m->in_msg) {
		set_error(m, "%s: write outside a message", m->path);
		return -1;
	}
	if (mboxrd_write(&m->enc, data, len) == -1) {
		/* Not the output (that failed the mbox already): the
		 * encoder's hold of the header. */
		if (!m->failed)
			fail(m, "hold header for", errno);
		return -1;
	}
	return 0;
}

int
mbox_msg_end(struct mbox *m)
{
	if (m->failed)
		return -1;
	if (!m->in_msg) {
		set_error(m, "%s: message ended without a begin", m->path);
		return -1;
	}
	if (mboxrd_end(&m->enc) == -1) {
		if (!m->failed)
			fail(m, "hash an entry of", errno);
		return -1;
	}
	m->in_msg = false;
	m->entry.length = mbox_appended_size(m) - m->entry.offset;
	memcpy(m->entry.digest, m->enc.entry_digest, MBOX_DIGEST_LEN);
	m->entry.message_id_hash = m->enc.message_id_hash;
	m->last_entry = m->entry;
	return 0;
}

const struct mbox_entry *
mbox_last_entry(const struct mbox *m)
{
	return &m->last_entry;
}

int
mbox_commit(struct mbox *m, uint64_t *size_r)
{

	if (m->failed)
		return -1;
	if (m->in_msg) {
		set_error(m, "%s: commit with a message open", m->path);
		return -1;
	}
	if (flush_out(m) == -1)
		return -1;
	if (m->flushed > 0) {
		if (sync_data(m->fd) == -1) {
			fail(m, "fdatasync", errno);
			return -1;
		}
		m->committed += m->flushed;
		m->flushed = 0;
	}
	m->dirty = false;
	if (size_r != NULL)
		*size_r = m->committed;
	return 0;
}

int
mbox_rollback(struct mbox *m)
{
	m->out_len = 0;
	m->flushed = 0;
	m->in_msg = false;
	mboxrd_cancel(&m->enc);
	m->pad = m->committed == m->open_size ? m->base_pad : 0;
	if (truncate_back(m) == -1)
		return -1;
	m->failed = false;
	return 0;
}

uint64_t
mbox_appended_size(const struct mbox *m)
{
	return m->committed + m->flushed + m->out_len;
}

int
mbox_commit_upto(struct mbox *m, uint64_t size, uint64_t *size_r)
{

	if (m->failed)
		return -1;
	if (size < m->committed || size > mbox_appended_size(m)) {
		set_error(m, "%s: commit at %llu outside what was appended",
		    m->path, (unsigned long long)size);
		return -1;
	}
	/* A message in progress is cut off with the rest. */
	m->in_msg = false;
	mboxrd_cancel(&m->enc);
	if (flush_out(m) == -1)
		return -1;
	if (size < m->committed + m->flushed) {
		if (truncate_durably(m->fd, size) == -1) {
			fail(m, "truncate", errno);
			return -1;
		}
		/* The cut is durable: the record may say so now. */
		mbox_record_truncated(&m->rec, size);
	}
	if (size > m->committed || m->dirty) {
		if (sync_data(m->fd) == -1) {
			fail(m, "fdatasync", errno);
			return -1;
		}
	}
	m->committed = size;
	m->flushed = 0;
	m->dirty = false;
	m->pad = m->committed == m->open_size ? m->base_pad : 0;
	if (size_r != NULL)
		*size_r = m->committed;
	return 0;
}

uint64_t
mbox_committed_size(const struct mbox *m)
{
	return m->committed;
}

const char *
mbox_cut_path(const struct mbox *m)
{
	return m->cut_path;
}

const char *
mbox_error(const struct mbox *m)
{
	return m->error != NULL ? m->error : "";
}


/* LFs needed so that bytes we did not write end in an empty line. */
static int
compute_pad(struct mbox *m, char **error_r)
{
	unsigned char tail[2];
	size_t want;

	m->base_pad = 0;
	if (m->committed == 0)
		return 0;
	want = m->committed >= 2 ? 2 : 1;
	if (read_exactly(m, tail, want, m->committed - want, error_r) == -1)
		return -1;
	if (tail[want - 1] != '\n')
		m->base_pad = 2;
	else if (want == 2 && tail[0] != '\n')
		m->base_pad = 1;
	return 0;
}

/*
 * Whether the bytes past committed are what an interrupted append of ours
 * leaves: up to two padding LFs, then a From_ line (or, when that is all
 * there is, the start of one).  Anything else means the
 * file was rewritten by someone else and cutting it would destroy mail.
 */
static int
is_leftover(struct mbox *m, uint64_t committed, uint64_t size,
    bool *leftover_r, char **error_r)
{
	unsigned char head[7];
	size_t want, i = 0;

	want = size - committed < sizeof head ? (size_t)(size - committed) :
	    sizeof head;
	if (read_exactly(m, head, want, committed, error_r) == -1)
		return -1;
	while (i < 2 && i < want && head[i] == '\n')
		i++;
	if (want - i >= sizeof from_ - 1)
		*leftover_r = memcmp(head + i, from_, sizeof from_ - 1) == 0;
	else
		/* The whole tail is shorter: a power cut inside our append
		 * can leave just the padding or "Fr". */
		*leftover_r = size - committed == want &&
		    memcmp(head + i, from_, want - i) == 0;
	return 0;
}

/*
 * Copies bytes [from, size) of the mbox to a new "<path>.cut-<time>[-<k>]"
 * beside it, durably, before they are cut: they may be mail another program
 * appended.  0, or -1 with a malloc'ed *error_r (nothing is cut then).
 */
static int
save_aside(struct mbox *m, uint64_t from, uint64_t size, char **error_r)
{
	unsigned char *buf = NULL;
	const char *step = "create";
	char *name = NULL;
	ssize_t n, w;
	size_t done;
	int fd = -1;

	for (unsigned k = 1; k < 1000 && fd < 0; k++) {
		free(name);
		if ((k == 1 ? asprintf(&name, "%s.cut-%lld", m->path,
		    (long long)time(NULL)) : asprintf(&name, "%s.cut-%lld-%u",
		    m->path, (long long)time(NULL), k)) == -1) {
			name = NULL;
			errno = ENOMEM;
			goto syserr;
		}
		fd = fs_open_regular(name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd == -1 && errno != EEXIST)
			goto syserr;
	}
	if (fd < 0) {
		errno = EEXIST;
		goto syserr;
	}
	step = "write";
	if ((buf = malloc(COPY_CHUNK)) == NULL)
		goto syserr;
	while (from < size) {
		n = pread(m->fd, buf, size - from < COPY_CHUNK ?
		    (size_t)(size - from) : COPY_CHUNK, (off_t)from);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto syserr;
		}
		for (done = 0; done < (size_t)n; done += (size_t)w) {
			w = write(fd, buf + done, (size_t)n - done);
			if (w == -1 && errno == EINTR)
				w = 0;
			else if (w <= 0) {
				if (w == 0)
					errno = EIO;
				goto syserr;
			}
		}
		from += (uint64_t)n;
	}
	step = "fsync";
	if (fsync(fd) == -1)
		goto syserr;
	step = "close";
	n = close(fd);
	fd = -1;
	if (n == -1 || fs_sync_parent(name, NULL) == -1)
		goto syserr;
	free(buf);
	m->cut_path = name;
	return 0;

syserr:
	(void)log_set_error(error_r, "%s %s: %s", step,
	    name != NULL ? name : m->path, strerror(errno));
	if (fd >= 0) {
		(void)close(fd);
		(void)unlink(name);
	}
	free(buf);
	free(name);
	return -1;
}

/*
 * The size check of mbox_open() (the rule is in mbox.h): size is the file's,
 * c the committed size the caller recorded.  Sets m->committed and *res_r.
 * 0, or -1 with a malloc'ed *error_r.
 */
static int
reconcile(struct mbox *m, uint64_t c, uint64_t size,
    enum mbox_open_result *res_r, char **error_r)
{
	enum mbox_record_kind kind;
	uint64_t end, aside, settled;
	bool ours, looks;

	if (mbox_record_read(&m->rec, &kind, &end, error_r) == -1)
		return -1;
	/* Whether bytes past c may be ours: a run that never closed, or one
	 * whose last commits the caller did not record. */
	ours = kind == MBOX_RECORD_APPENDING || kind == MBOX_RECORD_GARBLED ||
	    (kind == MBOX_RECORD_CLOSED && end > c);
	if (size > c && ours) {
		if (is_leftover(m, c, size, &looks, error_r) == -1)
			return -1;
		/* Ours start at c with an entry; whatever lies past our end
		 * (or all of it, when it does not start like ours) another
		 * program appended: kept aside, since exactly once wins. */
		aside = c;
		if (looks && kind != MBOX_RECORD_GARBLED && end > c)
			aside = end;
		if (aside < size && save_aside(m, aside, size, error_r) == -1)
			return -1;
		/* The cut must be durable before the record forgets it. */
		if (truncate_durably(m->fd, c) == -1) {
			(void)log_set_error(error_r, "truncate %s to %llu: %s",
			    m->path, (unsigned long long)c,
			    strerror(errno));
			return -1;
		}
		*res_r = MBOX_OPEN_TRUNCATED;
		m->committed = c;
	} else if (size != c) {
		/* Another program's bytes (or cut): durable before the
		 * caller records the new size, so the state is never ahead
		 * of the file after a power cut. */
		*res_r = size > c ? MBOX_OPEN_CHANGED : MBOX_OPEN_SHORTER;
		m->committed = size;
		if (sync_data(m->fd) == -1) {
			(void)log_set_error(error_r, "fdatasync %s: %s",
			    m->path, strerror(errno));
			return -1;
		}
	} else {
		*res_r = MBOX_OPEN_OK;
		m->committed = size;
	}
	/* From now on nothing past what the caller records (c, or the new
	 * size it records for SHORTER and CHANGED) may count as ours. */
	settled = c < m->committed ? c : m->committed;
	if (kind == MBOX_RECORD_NONE || (kind == MBOX_RECORD_CLOSED && end <= settled))
		return 0;
	if (mbox_record_write(&m->rec, false, settled, true) == -1) {
		(void)log_set_error(error_r, "write %s: %s", m->rec.path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

enum mbox_open_result
mbox_open(const char *path, const char *marker, uint64_t committed_size,
    struct mbox **mbox_r, char **error_r)
{
	enum mbox_open_result res = MBOX_OPEN_FAILED;
	struct stat lst, st;
	struct mbox *m;
	char *unlock_err = NULL;
	uint64_t size;
	bool existed;

	*mbox_r = NULL;
	*error_r = NULL;
	if ((m = calloc(1, sizeof *m)) == NULL)
		goto nomem;
	m->fd = -1;
	m->lock.dotlock_fd = -1;
	m->rec.fd = -1;
	mboxrd_init(&m->enc, enc_out, m);
	if ((m->path = strdup(path)) == NULL ||
	    mbox_record_init(&m->rec, marker, m->path) == -1 ||
	    mbox_lock_init(&m->lock, m->path) == -1)
		goto nomem;
	if ((m->out = malloc(MBOX_WRITE_BUFFER)) == NULL)
		goto nomem;

	existed = lstat(path, &lst) == 0;
	if (!existed && errno != ENOENT)
		goto syserr;
	if (existed && S_ISLNK(lst.st_mode)) {
		(void)log_set_error(error_r, "%s: refusing a symbolic link",
		    path);
		goto fail;
	}
	if (existed && !S_ISREG(lst.st_mode)) {
		(void)log_set_error(error_r, "%s: not a regular file", path);
		goto fail;
	}

	/* Should a FIFO appear after the lstat, this does not hang on it. */
	m->fd = fs_open_regular(path, O_RDWR | O_CREAT, 0600);
	if (m->fd == -2) {
		m->fd = -1;
		(void)log_set_error(error_r, "%s: not a regular file", path);
		goto fail;
	}
	if (m->fd == -1) {
		if (errno == ELOOP) {
			(void)log_set_error(error_r, "%s: refusing a "
			    "symbolic link", path);
			goto fail;
		}
		goto syserr;
	}
	if (fstat(m->fd, &st) == -1)
		goto syserr;
	if (st.st_nlink != 1) {
		(void)log_set_error(error_r, "%s: refusing a file with %lu "
		    "links", path, (unsigned long)st.st_nlink);
		goto fail;
	}
	/* The name must still lead to what we opened. */
	if (lstat(path, &lst) == -1)
		goto syserr;
	if (lst.st_dev != st.st_dev || lst.st_ino != st.st_ino) {
		(void)log_set_error(error_r, "%s: replaced while being opened",
		    path);
		goto fail;
	}

	if (mbox_lock_take(&m->lock, m->fd, error_r) == -1)
		goto fail;

	/* Others may have appended while we waited. */
	if (fstat(m->fd, &st) == -1)
		goto syserr;
	m->rec.dev = st.st_dev;
	m->rec.ino = st.st_ino;
	size = (uint64_t)st.st_size;
	if (committed_size == MBOX_SIZE_UNKNOWN) {
		res = MBOX_OPEN_OK;
		m->committed = size;
	} else if (reconcile(m, committed_size, size, &res, error_r) == -1)
		goto fail;
	m->open_size = m->committed;
	if ((res == MBOX_OPEN_SHORTER || res == MBOX_OPEN_CHANGED ||
	    committed_size == MBOX_SIZE_UNKNOWN) &&
	    compute_pad(m, error_r) == -1)
		goto fail;
	m->pad = m->base_pad;
	*mbox_r = m;
	return res;

nomem:
	errno = ENOMEM;
syserr:
	(void)log_set_error(error_r, "open %s: %s", path, strerror(errno));
fail:
	if (m != NULL) {
		(void)mbox_lock_release(&m->lock, m->fd, &unlock_err);
		free(unlock_err);
		if (m->fd != -1)
			(void)close(m->fd);
		mbox_record_free(&m->rec);
		free(m->out);
		mbox_lock_clear(&m->lock);
		free(m->cut_path);
		free(m->path);
		free(m);
	}
	if (*error_r == NULL)
		*error_r = strdup("mbox_open: out of memory");
	return MBOX_OPEN_FAILED;
}

int
mbox_close_checked(struct mbox **mp, char **error_r)
{
	struct mbox *m = *mp;
	char *err = NULL;
	int r = 0;

	if (error_r != NULL)
		*error_r = NULL;
	if (m == NULL)
		return 0;
	*mp = NULL;
	if (mbox_rollback(m) == -1) {
		err = strdup(mbox_error(m));
		r = -1;
	} else if (m->rec.open) {
		/* Ours end here.  Synced when a lost write could bring back
		 * an "open" naming more: bytes appended there later would be
		 * cut as ours. */
		if (mbox_record_write(&m->rec, false, m->committed,
		    m->rec.max > m->committed) == -1)
			r = log_set_error(&err, "write %s: %s", m->rec.path,
			    strerror(errno));
	}
	if (mbox_record_close(&m->rec) == -1 && err == NULL)
		r = log_set_error(&err, "close %s: %s", m->rec.path,
		    strerror(errno));
	if (mbox_lock_release(&m->lock, m->fd, &err) == -1)
		r = -1;
	if (close(m->fd) == -1) {
		if (err == NULL)
			(void)log_set_error(&err, "close %s: %s", m->path,
			    strerror(errno));
		r = -1;
	}
	if (error_r != NULL)
		*error_r = err;
	else
		free(err);
	mboxrd_free(&m->enc);
	free(m->out);
	free(m->error);
	mbox_lock_clear(&m->lock);
	mbox_record_free(&m->rec);
	free(m->cut_path);
	free(m->path);
	free(m);
	return r;
}

void
mbox_close(struct mbox **mp)
{
	(void)mbox_close_checked(mp, NULL);
}
