/*
 * The message index of an mbox (see msgindex.h): encoding, the appender
 * under the commit protocol, readers, atomic rewrites and rebuilds from
 * the mbox.  Over 900 lines, and one file, because the appender's open,
 * the readers and the check against a changed mbox all rest on one record
 * decoder and one rule for torn and uncommitted tails, which must not
 * drift apart.
 */
#include "mirror/msgindex.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util/fs.h"
#include "util/hash.h"

#define MAGIC		"mmindex1"
#define VERSION		1
#define HEADER_FIXED	24
/* Longest mbox path a header may name. */
#define NAME_MAX_LEN	4096
#define READ_BUFFER	(256 * 1024)
#define KNOWN_FLAGS	(MSGINDEX_SEEN | MSGINDEX_ANSWERED | \
			 MSGINDEX_FLAGGED | MSGINDEX_DELETED | \
			 MSGINDEX_DRAFT | MSGINDEX_REBUILT)

struct msgindex {
	char		*path;
	int		 fd;
	uint64_t	 end;		/* committed file size */
	uint64_t	 last_end;	/* where the last record's entry ends */
	uint64_t	 pending_last_end;
	size_t		 count;
	size_t		 pending;
	unsigned char	*buf;		/* records not yet committed */
	size_t		 len, cap;
};

/* Little-endian encoding */

static void
put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void
put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void
put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
get32(const unsigned char *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t
get64(const unsigned char *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Record layout: offsets of the fields. */
enum {
	R_UID = 0, R_UIDVALIDITY = 4, R_OFFSET = 8, R_LENGTH = 16,
	R_SIZE = 24, R_DATE = 28, R_TZ = 36, R_FLAGS = 38, R_KWLEN = 40,
	R_CHECK = 42, R_MID = 44, R_DIGEST = 52,
};

static uint16_t
record_check(const unsigned char *rec, const char *kw, size_t kwlen)
{
	unsigned char tmp[MSGINDEX_RECORD_SIZE + MSGINDEX_KEYWORDS_MAX];

	memcpy(tmp, rec, MSGINDEX_RECORD_SIZE);
	put16(tmp + R_CHECK, 0);
	if (kwlen > 0)
		memcpy(tmp + MSGINDEX_RECORD_SIZE, kw, kwlen);
	return (uint16_t)hash_fnv1a64(tmp, MSGINDEX_RECORD_SIZE + kwlen);
}

/* The keywords kept: at most MSGINDEX_KEYWORDS_MAX bytes, cut at a
 * space. */
static size_t
keywords_len(const char *kw)
{
	size_t n;

	if (kw == NULL)
		return 0;
	n = strlen(kw);
	if (n <= MSGINDEX_KEYWORDS_MAX)
		return n;
	for (n = MSGINDEX_KEYWORDS_MAX; n > 0 && kw[n] != ' '; n--)
		;
	return n;
}

/* Encodes e at out (room for MSGINDEX_RECORD_SIZE + its keywords);
 * returns the bytes used. */
static size_t
encode_record(unsigned char *out, const struct msgindex_entry *e)
{
	size_t kwlen = keywords_len(e->keywords);

	memset(out, 0, MSGINDEX_RECORD_SIZE);
	put32(out + R_UID, e->uid);
	put32(out + R_UIDVALIDITY, e->uidvalidity);
	put64(out + R_OFFSET, e->offset);
	put64(out + R_LENGTH, e->length);
	put32(out + R_SIZE, e->size > UINT32_MAX ? UINT32_MAX :
	    (uint32_t)e->size);
	put64(out + R_DATE, (uint64_t)e->internaldate);
	put16(out + R_TZ, (uint16_t)e->tz_minutes);
	put16(out + R_FLAGS, e->flags);
	put16(out + R_KWLEN, (uint16_t)kwlen);
	put64(out + R_MID, e->message_id_hash);
	memcpy(out + R_DIGEST, e->digest, MSGINDEX_DIGEST_LEN);
	if (kwlen > 0)
		memcpy(out + MSGINDEX_RECORD_SIZE, e->keywords, kwlen);
	put16(out + R_CHECK, record_check(out, e->keywords, kwlen));
	return MSGINDEX_RECORD_SIZE + kwlen;
}

/* The header naming file into out (HEADER_FIXED + strlen(file)). */
static size_t
encode_header(unsigned char *out, const char *file)
{
	size_t n = strlen(file);

	memcpy(out, MAGIC, 8);
	put32(out + 8, VERSION);
	put32(out + 12, MSGINDEX_RECORD_SIZE);
	put32(out + 16, (uint32_t)n);
	put32(out + 20, 0);
	memcpy(out + HEADER_FIXED, file, n);
	put32(out + 20, (uint32_t)hash_fnv1a64(out, HEADER_FIXED + n));
	return HEADER_FIXED + n;
}

/* Buffered reading */

struct reader {
	const char	*path;
	int		 fd;
	unsigned char	*buf;
	size_t		 pos, len;
	uint64_t	 off;		/* file offset of buf[pos] */
};

/* n bytes into dst: 1, 0 at the end of the file before any, -2 when it
 * ends inside them, -1 on a read error (errno). */
static int
rd_get(struct reader *r, void *dst, size_t n)
{
	unsigned char *d = dst;
	size_t got = 0, k;
	ssize_t m;

	while (got < n) {
		if (r->pos == r->len) {
			do
				m = read(r->fd, r->buf, READ_BUFFER);
			while (m == -1 && errno == EINTR);
			if (m < 0)
				return -1;
			if (m == 0)
				return got == 0 ? 0 : -2;
			r->pos = 0;
			r->len = (size_t)m;
		}
		k = r->len - r->pos < n - got ? r->len - r->pos : n - got;
		memcpy(d + got, r->buf + r->pos, k);
		r->pos += k;
		got += k;
		r->off += k;
	}
	return 1;
}

static int
rd_init(struct reader *r, const char *path, int fd)
{
	memset(r, 0, sizeof *r);
	r->path = path;
	r->fd = fd;
	return (r->buf = malloc(READ_BUFFER)) == NULL ? -1 : 0;
}

/* The header: 0 with the name (malloc'ed), or -1 with *error_r. */
static int
read_header(struct reader *r, char **name_r, char **error_r)
{
	unsigned char fixed[HEADER_FIXED], *all;
	uint32_t n, check;
	int g;

	*name_r = NULL;
	if ((g = rd_get(r, fixed, sizeof fixed)) != 1)
		return log_set_error(error_r, "%s: %s", r->path, g == -1 ?
		    strerror(errno) : "header: truncated");
	if (memcmp(fixed, MAGIC, 8) != 0)
		return log_set_error(error_r, "%s: not a message index",
		    r->path);
	if (get32(fixed + 8) != VERSION ||
	    get32(fixed + 12) != MSGINDEX_RECORD_SIZE)
		return log_set_error(error_r, "%s: index version %u, record "
		    "size %u: not this program's (%u, %u)", r->path,
		    get32(fixed + 8), get32(fixed + 12), VERSION,
		    MSGINDEX_RECORD_SIZE);
	n = get32(fixed + 16);
	if (n == 0 || n > NAME_MAX_LEN)
		return log_set_error(error_r, "%s: header: bad name length %u",
		    r->path, n);
	if ((all = malloc(HEADER_FIXED + n + 1)) == NULL)
		return log_set_error(error_r, "%s: out of memory", r->path);
	memcpy(all, fixed, HEADER_FIXED);
	if ((g = rd_get(r, all + HEADER_FIXED, n)) != 1) {
		free(all);
		return log_set_error(error_r, "%s: %s", r->path, g == -1 ?
		    strerror(errno) : "header: truncated");
	}
	check = get32(all + 20);
	put32(all + 20, 0);
	if ((uint32_t)hash_fnv1a64(all, HEADER_FIXED + n) != check ||
	    memchr(all + HEADER_FIXED, '\0', n) != NULL) {
		free(all);
		return log_set_error(error_r, "%s: header: bad check",
		    r->path);
	}
	all[HEADER_FIXED + n] = '\0';
	memmove(all, all + HEADER_FIXED, n + 1);
	*name_r = (char *)all;
	return 0;
}

enum rec_result {
	REC_OK = 1,
	REC_END = 0,
	REC_BAD = -1,		/* fails its check or makes no sense */
	REC_TRUNCATED = -2,	/* the file ends inside it */
	REC_IOERR = -3,
};

/*
 * Record k (counted from 1) into e (keywords malloc'ed when want_kw);
 * prev_end is where the previous record's entry ended.  Errors into
 * *error_r as "PATH: record K: what".
 */
static enum rec_result
read_record(struct reader *r, size_t k, uint64_t prev_end,
    struct msgindex_entry *e, bool want_kw, char **error_r)
{
	unsigned char rec[MSGINDEX_RECORD_SIZE];
	char kw[MSGINDEX_KEYWORDS_MAX];
	uint16_t kwlen = 0;
	int g;

	memset(e, 0, sizeof *e);
	if ((g = rd_get(r, rec, sizeof rec)) == 0)
		return REC_END;
	if (g == 1) {
		kwlen = get16(rec + R_KWLEN);
		if (kwlen > MSGINDEX_KEYWORDS_MAX) {
			(void)log_set_error(error_r, "%s: record %zu: keywords "
			    "length %u", r->path, k, kwlen);
			return REC_BAD;
		}
		if (kwlen > 0)
			g = rd_get(r, kw, kwlen);
		if (g == 0)
			g = -2;
	}
	if (g == -1) {
		(void)log_set_error(error_r, "%s: record %zu: %s", r->path, k,
		    strerror(errno));
		return REC_IOERR;
	}
	if (g == -2) {
		(void)log_set_error(error_r, "%s: record %zu: truncated",
		    r->path, k);
		return REC_TRUNCATED;
	}
	if (get16(rec + R_CHECK) != record_check(rec, kw, kwlen)) {
		(void)log_set_error(error_r, "%s: record %zu: bad check",
		    r->path, k);
		return REC_BAD;
	}
	e->uid = get32(rec + R_UID);
	e->uidvalidity = get32(rec + R_UIDVALIDITY);
	e->offset = get64(rec + R_OFFSET);
	e->length = get64(rec + R_LENGTH);
	e->size = get32(rec + R_SIZE);
	e->internaldate = (int64_t)get64(rec + R_DATE);
	e->tz_minutes = (int16_t)get16(rec + R_TZ);
	e->flags = get16(rec + R_FLAGS);
	e->message_id_hash = get64(rec + R_MID);
	memcpy(e->digest, rec + R_DIGEST, MSGINDEX_DIGEST_LEN);
	if (e->length == 0 || e->offset + e->length < e->offset ||
	    e->offset < prev_end || (e->flags & ~KNOWN_FLAGS) != 0) {
		(void)log_set_error(error_r, "%s: record %zu: %s", r->path, k,
		    e->length == 0 ? "empty entry" : e->offset < prev_end ?
		    "entry overlaps the one before" : "bad fields");
		return REC_BAD;
	}
	if (want_kw && kwlen > 0) {
		if ((e->keywords = malloc(kwlen + 1U)) == NULL) {
			(void)log_set_error(error_r, "%s: out of memory",
			    r->path);
			return REC_IOERR;
		}
		memcpy(e->keywords, kw, kwlen);
		e->keywords[kwlen] = '\0';
	}
	return REC_OK;
}

/* Readers */

/* Whether a record read as rr is the last of the file and cut short or
 * failing its check: an append torn, or still being written. */
static bool
torn_tail(struct reader *r, enum rec_result rr)
{
	unsigned char probe;

	return rr == REC_TRUNCATED || (rr == REC_BAD && rd_get(r, &probe,
	    1) == 0);
}

char *
msgindex_path(const char *dir, const char *file)
{
	char *path;

	if (asprintf(&path, "%s/index-%016" PRIx64, dir,
	    hash_fnv1a64(file, strlen(file))) == -1)
		return NULL;
	return path;
}

void
msgindex_list_free(struct msgindex_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].keywords);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
list_push(struct msgindex_list *l, size_t *cap, const struct msgindex_entry *e)
{
	struct msgindex_entry *v;

	if (l->n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;

		if ((v = reallocarray(l->v, c, sizeof *v)) == NULL)
			return -1;
		l->v = v;
		*cap = c;
	}
	l->v[l->n++] = *e;
	return 0;
}

int
msgindex_load(const char *path, const char *file, struct msgindex_list *l,
    char **error_r)
{
	struct msgindex_entry e;
	struct reader r;
	enum rec_result rr;
	char *name = NULL;
	size_t cap = 0;
	uint64_t prev_end = 0;
	int fd, ret = -1;

	l->v = NULL;
	l->n = 0;
	fd = fs_open_regular(path, O_RDONLY, 0);
	if (fd == -1 && errno == ENOENT)
		return 1;
	if (fd < 0)
		return log_set_error(error_r, "open %s: %s", path, fd == -2 ?
		    "not a regular file" : strerror(errno));
	if (rd_init(&r, path, fd) == -1) {
		(void)close(fd);
		return log_set_error(error_r, "%s: out of memory", path);
	}
	if (read_header(&r, &name, error_r) == -1)
		goto out;
	if (file != NULL && strcmp(name, file) != 0) {
		(void)log_set_error(error_r, "%s: the index of %s, not of %s",
		    path, name, file);
		goto out;
	}
	for (size_t k = 1;; k++) {
		rr = read_record(&r, k, prev_end, &e, true, error_r);
		if (rr == REC_END)
			break;
		if (torn_tail(&r, rr)) {
			/* An append torn by a crash, or one a sync is
			 * writing now: what comes before it is whole. */
			free(*error_r);
			*error_r = NULL;
			break;
		}
		if (rr != REC_OK)
			goto out;
		if (list_push(l, &cap, &e) == -1) {
			free(e.keywords);
			(void)log_set_error(error_r, "%s: out of memory", path);
			goto out;
		}
		prev_end = e.offset + e.length;
	}
	ret = 0;
out:
	if (ret != 0)
		msgindex_list_free(l);
	free(name);
	free(r.buf);
	(void)close(fd);
	return ret;
}

/* The flags a record rebuilt from a scanned entry has. */
static void
entry_from_scan(struct msgindex_entry *e, const struct mbox_scan_entry *se)
{
	memset(e, 0, sizeof *e);
	e->offset = se->entry.offset;
	e->length = se->entry.length;
	e->size = se->message_size;
	e->internaldate = (int64_t)se->date;
	e->flags = MSGINDEX_REBUILT;
	e->message_id_hash = se->entry.message_id_hash;
	memcpy(e->digest, se->entry.digest, MSGINDEX_DIGEST_LEN);
}

int
msgindex_rebuild(const char *mbox_path, uint64_t size,
    struct msgindex_list *l, char **error_r)
{
	struct mbox_scan *s;
	struct mbox_scan_entry se;
	struct msgindex_entry e;
	size_t cap = 0;
	int r;

	l->v = NULL;
	l->n = 0;
	if (mbox_scan_open(mbox_path, size, &s, error_r) == -1)
		return -1;
	while ((r = mbox_scan_next(s, &se, error_r)) == 1) {
		entry_from_scan(&e, &se);
		if (list_push(l, &cap, &e) == -1) {
			r = log_set_error(error_r, "index of %s: out of memory",
			    mbox_path);
			break;
		}
	}
	mbox_scan_close(&s);
	if (r != 0)
		msgindex_list_free(l);
	return r;
}

/* Writing */

int
msgindex_rewrite(const char *path, const char *file,
    const struct msgindex_entry *v, size_t n, char **error_r)
{
	unsigned char *buf = NULL;
	size_t len = 0, cap = READ_BUFFER, need;
	uint64_t off = 0;
	const char *step = "create";
	char *tmp = NULL;
	int fd = -1;

	if (strlen(file) == 0 || strlen(file) > NAME_MAX_LEN)
		return log_set_error(error_r, "%s: bad mbox name", path);
	if (asprintf(&tmp, "%s.tmp-%ld", path, (long)getpid()) == -1)
		return log_set_error(error_r, "%s: out of memory", path);
	if ((buf = malloc(cap)) == NULL) {
		errno = ENOMEM;
		goto syserr;
	}
	(void)unlink(tmp);
	fd = fs_open_regular(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		if (fd == -2)
			errno = EEXIST;
		goto syserr;
	}
	step = "write";
	len = encode_header(buf, file);
	for (size_t i = 0; i < n; i++) {
		need = MSGINDEX_RECORD_SIZE + keywords_len(v[i].keywords);
		if (cap - len < need) {
			if (fs_pwrite_all(fd, buf, len, (off_t)off) == -1)
				goto syserr;
			off += len;
			len = 0;
		}
		len += encode_record(buf + len, &v[i]);
	}
	if (fs_pwrite_all(fd, buf, len, (off_t)off) == -1)
		goto syserr;
	step = "fsync";
	if (fsync(fd) == -1)
		goto syserr;
	step = "close";
	if (close(fd) == -1) {
		fd = -1;
		goto syserr;
	}
	fd = -1;
	step = "rename";
	if (rename(tmp, path) == -1)
		goto syserr;
	step = "fsync the directory of";
	if (fs_sync_parent(path, NULL) == -1)
		goto syserr;
	free(buf);
	free(tmp);
	return 0;
syserr:
	(void)log_set_error(error_r, "%s %s: %s", step, path,
	    strerror(errno));
	if (fd >= 0)
		(void)close(fd);
	(void)unlink(tmp);
	free(buf);
	free(tmp);
	return -1;
}

/* The appender */

size_t
msgindex_count(const struct msgindex *ix)
{
	return ix->count;
}

void
msgindex_discard(struct msgindex *ix)
{
	ix->len = 0;
	ix->pending = 0;
	ix->pending_last_end = ix->last_end;
}

int
msgindex_add(struct msgindex *ix, const struct msgindex_entry *e)
{
	size_t need = MSGINDEX_RECORD_SIZE + keywords_len(e->keywords);
	unsigned char *b;

	if (e->offset < ix->pending_last_end || e->length == 0) {
		errno = EINVAL;
		return -1;
	}
	if (ix->cap - ix->len < need) {
		size_t cap = ix->cap ? ix->cap : 16384;

		while (cap - ix->len < need)
			cap *= 2;
		if ((b = realloc(ix->buf, cap)) == NULL)
			return -1;
		ix->buf = b;
		ix->cap = cap;
	}
	ix->len += encode_record(ix->buf + ix->len, e);
	ix->pending++;
	ix->pending_last_end = e->offset + e->length;
	return 0;
}

int
msgindex_commit(struct msgindex *ix, char **error_r)
{
	int saved;

	if (ix->len == 0)
		return 0;
	if (fs_pwrite_all(ix->fd, ix->buf, ix->len, (off_t)ix->end) == -1 ||
	    fdatasync(ix->fd) == -1) {
		saved = errno;
		/* Not a record past what was committed may stay.  (The
		 * result is checked so that _FORTIFY_SOURCE builds accept
		 * the call.) */
		if (ftruncate(ix->fd, (off_t)ix->end) == -1)
			log_warnx("%s: cannot cut the uncommitted records: %s",
			    ix->path, strerror(errno));
		msgindex_discard(ix);
		return log_set_error(error_r, "write %s: %s", ix->path,
		    strerror(saved));
	}
	ix->end += ix->len;
	ix->count += ix->pending;
	ix->last_end = ix->pending_last_end;
	ix->len = 0;
	ix->pending = 0;
	return 0;
}

void
msgindex_close(struct msgindex **ixp)
{
	struct msgindex *ix = *ixp;

	if (ix == NULL)
		return;
	*ixp = NULL;
	if (ix->fd >= 0)
		(void)close(ix->fd);
	free(ix->buf);
	free(ix->path);
	free(ix);
}

/* What a look at an existing index found. */
enum look {
	LOOK_OK,		/* *keep_r bytes hold the records to keep */
	LOOK_MISSING,
	LOOK_OTHER,		/* names another mbox */
	LOOK_CORRUPT,
	LOOK_ERROR,
};

/*
 * Reads the index at fd: the header must name file; records are kept
 * while they end at or before committed; a last record cut short or
 * failing its check at the end of the file is a torn append (cut).
 */
static enum look
look_at(const char *path, int fd, const char *file, uint64_t committed,
    uint64_t *keep_r, size_t *count_r, uint64_t *last_end_r, char **error_r)
{
	struct msgindex_entry e;
	struct reader r;
	enum rec_result rr;
	enum look res = LOOK_OK;
	uint64_t prev_end = 0;
	char *name = NULL, *err = NULL;
	size_t k;

	if (rd_init(&r, path, fd) == -1) {
		(void)log_set_error(error_r, "%s: out of memory", path);
		return LOOK_ERROR;
	}
	if (read_header(&r, &name, error_r) == -1) {
		res = LOOK_CORRUPT;
		goto out;
	}
	if (strcmp(name, file) != 0) {
		res = LOOK_OTHER;
		goto out;
	}
	*keep_r = r.off;
	*count_r = 0;
	for (k = 1;; k++) {
		rr = read_record(&r, k, prev_end, &e, false, &err);
		if (rr == REC_END)
			break;
		if (rr == REC_IOERR) {
			*error_r = err;
			res = LOOK_ERROR;
			goto out;
		}
		/* A torn append; or, past what the state records, an append
		 * it never counted on, whose blocks a power cut may have left
		 * unwritten anywhere. */
		if (torn_tail(&r, rr) || (rr == REC_BAD && prev_end ==
		    committed))
			break;
		if (rr == REC_BAD) {
			*error_r = err;
			err = NULL;
			res = LOOK_CORRUPT;
			goto out;
		}
		if (e.offset + e.length > committed)
			break;
		prev_end = e.offset + e.length;
		*keep_r = r.off;
		(*count_r)++;
	}
	*last_end_r = prev_end;
out:
	free(err);
	free(name);
	free(r.buf);
	return res;
}

/*
 * The records of the index at fd, if it is file's (NULL: any mbox's), up
 * to the first that cannot be read (keywords too).  All of them: an mbox
 * another program made shorter may now hold, earlier, entries that were
 * past its new end.  0, or -1 when its header cannot be read or names
 * another mbox (l empty).
 */
static int
load_prefix(const char *path, int fd, const char *file,
    struct msgindex_list *l)
{
	struct msgindex_entry e;
	struct reader r;
	char *name = NULL, *err = NULL;
	uint64_t prev_end = 0;
	size_t cap = 0;
	int ret = -1;

	if (rd_init(&r, path, fd) == -1)
		return -1;
	if (read_header(&r, &name, &err) == 0 && (file == NULL ||
	    strcmp(name, file) == 0)) {
		ret = 0;
		for (size_t k = 1; read_record(&r, k, prev_end, &e, true,
		    &err) == REC_OK; k++) {
			if (list_push(l, &cap, &e) == -1) {
				free(e.keywords);
				break;
			}
			prev_end = e.offset + e.length;
		}
	}
	free(err);
	free(name);
	free(r.buf);
	return ret;
}

/* Entries (through pointers) by length, then digest. */
static int
entry_cmp(const void *a, const void *b)
{
	const struct msgindex_entry *x, *y;

	x = *(const struct msgindex_entry *const *)a;
	y = *(const struct msgindex_entry *const *)b;

	if (x->length != y->length)
		return x->length < y->length ? -1 : 1;
	return memcmp(x->digest, y->digest, MSGINDEX_DIGEST_LEN);
}

/*
 * Each entry of fresh (a rebuild) takes what old knew of the same bytes
 * (length and digest; each old record once), at its new offset; *rebuilt_r
 * counts those that found none.  0, or -1 when out of memory.
 */
static int
merge_known(struct msgindex_list *fresh, struct msgindex_list *old,
    size_t *rebuilt_r)
{
	struct msgindex_entry **by, *key, **hit;
	bool *taken;
	size_t lo;

	*rebuilt_r = fresh->n;
	if (old->n == 0)
		return 0;
	by = reallocarray(NULL, old->n, sizeof *by);
	taken = calloc(old->n, sizeof *taken);
	if (by == NULL || taken == NULL) {
		free(by);
		free(taken);
		return -1;
	}
	for (size_t i = 0; i < old->n; i++)
		by[i] = &old->v[i];
	qsort(by, old->n, sizeof *by, entry_cmp);
	for (size_t i = 0; i < fresh->n; i++) {
		key = &fresh->v[i];
		hit = bsearch(&key, by, old->n, sizeof *by, entry_cmp);
		if (hit == NULL)
			continue;
		/* The first of equal ones not taken yet. */
		for (lo = (size_t)(hit - by); lo > 0 &&
		    entry_cmp(&by[lo - 1], &key) == 0; lo--)
			;
		while (lo < old->n && taken[lo] && entry_cmp(&by[lo],
		    &key) == 0)
			lo++;
		if (lo == old->n || taken[lo] || entry_cmp(&by[lo], &key) != 0)
			continue;
		taken[lo] = true;
		by[lo]->offset = key->offset;
		*key = *by[lo];
		by[lo]->keywords = NULL;	/* moved */
		(*rebuilt_r)--;
	}
	free(taken);
	free(by);
	return 0;
}

int
msgindex_check(const char *path, const char *file, const char *mbox_path,
    uint64_t committed, size_t *rebuilt_r, char **error_r)
{
	struct msgindex_list fresh = { NULL, 0 }, old = { NULL, 0 };
	size_t rebuilt = 0;
	int fd, r = -1;

	if (committed > 0 && msgindex_rebuild(mbox_path, committed, &fresh,
	    error_r) == -1)
		return -1;
	fd = fs_open_regular(path, O_RDONLY, 0);
	if (fd >= 0) {
		(void)load_prefix(path, fd, file, &old);
		(void)close(fd);
	}
	if (merge_known(&fresh, &old, &rebuilt) == -1)
		(void)log_set_error(error_r, "%s: out of memory", path);
	else
		r = msgindex_rewrite(path, file, fresh.v, fresh.n, error_r);
	if (r == 0 && rebuilt_r != NULL)
		*rebuilt_r = rebuilt;
	msgindex_list_free(&old);
	msgindex_list_free(&fresh);
	return r;
}

/* Makes the index at path anew from the mbox (empty when committed is 0);
 * *count_r records. */
static int
make_anew(const char *path, const char *file, const char *mbox_path,
    uint64_t committed, size_t *count_r, char **error_r)
{
	struct msgindex_list l = { NULL, 0 };
	int r;

	if (committed > 0 && msgindex_rebuild(mbox_path, committed, &l,
	    error_r) == -1)
		return -1;
	r = msgindex_rewrite(path, file, l.v, l.n, error_r);
	*count_r = l.n;
	msgindex_list_free(&l);
	return r;
}

int
msgindex_open_ex(const char *path, const char *file, const char *mbox_path,
    uint64_t committed, struct msgindex **ix_r, size_t *rebuilt_r,
    char **corrupt_r, char **error_r)
{
	struct msgindex *ix;
	enum look look = LOOK_MISSING;
	uint64_t keep = 0, last_end = 0;
	struct stat st;
	size_t count = 0;
	char *why = NULL, *aside = NULL;
	int fd;

	*ix_r = NULL;
	if (rebuilt_r != NULL)
		*rebuilt_r = (size_t)-1;
	if (corrupt_r != NULL)
		*corrupt_r = NULL;
	if ((ix = calloc(1, sizeof *ix)) == NULL ||
	    (ix->path = strdup(path)) == NULL) {
		free(ix);
		return log_set_error(error_r, "%s: out of memory", path);
	}
	for (int pass = 0; pass < 2; pass++) {
		fd = fs_open_regular(path, O_RDWR, 0);
		if (fd < 0 && !(fd == -1 && errno == ENOENT)) {
			(void)log_set_error(error_r, "open %s: %s", path,
			    fd == -2 ? "not a regular file" : strerror(errno));
			goto fail;
		}
		look = fd < 0 ? LOOK_MISSING : look_at(path, fd, file,
		    committed, &keep, &count, &last_end, &why);
		if (look == LOOK_OK && (last_end == committed || pass == 1))
			break;
		if (fd >= 0)
			(void)close(fd);
		if (look == LOOK_OK) {
			/* Bytes past its last record that are not ours to
			 * have indexed: another program appended to the mbox
			 * or rewrote it, or the index lost records. */
			if (msgindex_check(path, file, mbox_path, committed,
			    rebuilt_r, error_r) == -1)
				goto fail;
			continue;
		}
		if (look == LOOK_ERROR || pass == 1) {
			*error_r = why != NULL ? why : strdup(path);
			why = NULL;
			goto fail;
		}
		if (look == LOOK_CORRUPT) {
			/* Kept for whoever wants to look; the mail is safe in
			 * the mbox, which the index is rebuilt from. */
			if (asprintf(&aside, "%s.corrupt-%lld", path,
			    (long long)time(NULL)) == -1 ||
			    rename(path, aside) == -1) {
				(void)log_set_error(error_r, "%s (and it cannot "
				    "be moved aside: %s)", why != NULL ? why :
				    path, strerror(errno));
				free(aside);
				goto fail;
			}
			if (corrupt_r != NULL) {
				*corrupt_r = aside;
				aside = NULL;
			}
			free(aside);
			aside = NULL;
		}
		free(why);
		why = NULL;
		if (make_anew(path, file, mbox_path, committed, &count,
		    error_r) == -1)
			goto fail;
		if (rebuilt_r != NULL && committed > 0)
			*rebuilt_r = count;
	}
	if (fstat(fd, &st) == -1)
		goto syserr;
	if ((uint64_t)st.st_size > keep) {
		/* Records of appends never committed: cut, durably. */
		if (ftruncate(fd, (off_t)keep) == -1 || fdatasync(fd) == -1)
			goto syserr;
	}
	ix->fd = fd;
	ix->end = keep;
	ix->count = count;
	ix->last_end = ix->pending_last_end = last_end;
	*ix_r = ix;
	return 0;
syserr:
	(void)log_set_error(error_r, "%s: %s", path, strerror(errno));
	(void)close(fd);
fail:
	free(why);
	free(ix->path);
	free(ix);
	return -1;
}

int
msgindex_open(const char *path, const char *file, const char *mbox_path,
    uint64_t committed, struct msgindex **ix_r, char **error_r)
{
	return msgindex_open_ex(path, file, mbox_path, committed, ix_r, NULL,
	    NULL, error_r);
}

int
msgindex_move(const char *from, const char *to, const char *to_file,
    char **error_r)
{
	struct msgindex_list l = { NULL, 0 };
	int fd, r;

	fd = fs_open_regular(from, O_RDONLY, 0);
	if (fd == -1 && errno == ENOENT)
		return 0;
	/* A crash may have torn its last append: what comes before goes. */
	r = fd >= 0 ? load_prefix(from, fd, NULL, &l) : -1;
	if (fd >= 0)
		(void)close(fd);
	if (r == 0 && msgindex_rewrite(to, to_file, l.v, l.n, error_r) == -1) {
		msgindex_list_free(&l);
		return -1;
	}
	msgindex_list_free(&l);
	if (unlink(from) == -1 || fs_sync_parent(from, NULL) == -1)
		return log_set_error(error_r, "remove %s: %s", from,
		    strerror(errno));
	return 0;
}

uint16_t
msgindex_flag_bit(const char *flag)
{
	static const struct {
		const char *name;
		uint16_t bit;
	} flags[] = {
		{ "\\Seen", MSGINDEX_SEEN },
		{ "\\Answered", MSGINDEX_ANSWERED },
		{ "\\Flagged", MSGINDEX_FLAGGED },
		{ "\\Deleted", MSGINDEX_DELETED },
		{ "\\Draft", MSGINDEX_DRAFT },
	};

	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
		if (strcasecmp(flag, flags[i].name) == 0)
			return flags[i].bit;
	return 0;
}
