/*
 * mbox_scan_* (see mbox.h): the entries of an mbox file, read line by
 * line through one buffer, each hashed as the writer hashed it.
 */
#include "mbox/mbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "log.h"
#include "mbox/hashbuf.h"
#include "mbox/mboxrd.h"
#include "util/fs.h"

#define SCAN_BUFFER	(256 * 1024)
/* Bytes looked at from a line's start: "From " after '>'s, for quoting. */
#define LOOKAHEAD	64
/* From_ line bytes kept to read its date. */
#define FROM_LINE_KEEP	1024

static const char from_[] = MBOXRD_FROM;

struct mbox_scan {
	char		*path;
	int		 fd;
	uint64_t	 size;
	unsigned char	*buf;
	size_t		 pos, len;
	uint64_t	 base;		/* file offset of buf[0] */
	bool		 started;	/* the first entry was looked for */
	gnutls_hash_hd_t hash;
	struct hashbuf	 hashbuf;	/* the entry's bytes not hashed yet */
	unsigned char	*hold;		/* an entry's header */
	size_t		 hold_len;
};

/* What the lines of an entry add up to. */
struct body_acc {
	bool		 hash;
	bool		 in_header;
	uint64_t	 bytes, lfs, quotes;
};

static uint64_t
scan_offset(const struct mbox_scan *s)
{
	return s->base + s->pos;
}

/* At least need bytes after pos, unless the file ends first.  0 or -1. */
static int
fill(struct mbox_scan *s, size_t need, char **error_r)
{
	uint64_t end;
	size_t want;
	ssize_t n;

	while (s->len - s->pos < need && s->base + s->len < s->size) {
		if (s->pos > 0) {
			memmove(s->buf, s->buf + s->pos, s->len - s->pos);
			s->base += s->pos;
			s->len -= s->pos;
			s->pos = 0;
		}
		end = s->base + s->len;
		want = SCAN_BUFFER - s->len;
		if (s->size - end < want)
			want = (size_t)(s->size - end);
		n = pread(s->fd, s->buf + s->len, want, (off_t)end);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return log_set_error(error_r, "read %s: %s", s->path,
			    n == 0 ? "file shorter than expected" :
			    strerror(errno));
		s->len += (size_t)n;
	}
	return 0;
}

static size_t
avail(const struct mbox_scan *s)
{
	return s->len - s->pos;
}

/* Whether the line at pos starts with ">...>From " (needs LOOKAHEAD). */
static bool
quoted_from(const struct mbox_scan *s)
{
	const unsigned char *p = s->buf + s->pos;
	size_t n = avail(s), k = 0;

	while (k < n && p[k] == '>')
		k++;
	return k > 0 && n - k >= sizeof from_ - 1 &&
	    memcmp(p + k, from_, sizeof from_ - 1) == 0;
}

static bool
at_from(const struct mbox_scan *s)
{
	return avail(s) >= sizeof from_ - 1 &&
	    memcmp(s->buf + s->pos, from_, sizeof from_ - 1) == 0;
}

/* Takes one line (through its LF, or to the end of the file) into acc (may
 * be NULL); *empty_r: it was just an LF.  0 or -1. */
static int
take_line(struct mbox_scan *s, struct body_acc *acc, bool *empty_r,
    char **error_r)
{
	const unsigned char *p, *lf;
	size_t seg, keep;
	bool first = true;

	*empty_r = false;
	for (;;) {
		if (fill(s, 1, error_r) == -1)
			return -1;
		if (avail(s) == 0)
			return 0;
		p = s->buf + s->pos;
		if (first && p[0] == '\n')
			*empty_r = true;
		first = false;
		lf = memchr(p, '\n', avail(s));
		seg = lf != NULL ? (size_t)(lf - p) + 1 : avail(s);
		if (acc != NULL) {
			if (acc->hash && hashbuf_feed(&s->hashbuf, s->hash, p,
			    seg) == -1)
				return log_set_error(error_r, "%s: SHA-256 "
				    "failed", s->path);
			if (acc->in_header && !*empty_r) {
				keep = MBOX_MAX_HEADER_HOLD - s->hold_len;
				if (keep > seg)
					keep = seg;
				memcpy(s->hold + s->hold_len, p, keep);
				s->hold_len += keep;
			}
			acc->bytes += seg;
			if (lf != NULL)
				acc->lfs++;
		}
		s->pos += seg;
		if (lf != NULL)
			return 0;
	}
}

/* Skips to the first entry (or the end); *skipped_r bytes were in none. */
static int
find_first(struct mbox_scan *s, uint64_t *skipped_r, char **error_r)
{
	bool prev_empty = true, empty;

	for (;;) {
		if (fill(s, LOOKAHEAD, error_r) == -1)
			return -1;
		if (avail(s) == 0 || (prev_empty && at_from(s)))
			break;
		if (take_line(s, NULL, &empty, error_r) == -1)
			return -1;
		prev_empty = empty;
	}
	*skipped_r = scan_offset(s);
	return 0;
}

/* The date of a From_ line: its last 24 bytes, asctime's layout, UTC. */
static time_t
from_line_date(const char *line, size_t len)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char wday[4], mon[4], tail[25];
	int mday, hh, mm, ss, year;
	const char *m;
	struct tm tm;
	time_t t;

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len < 24)
		return 0;
	/* sscanf() wants a string: the line is not NUL-terminated. */
	memcpy(tail, line + len - 24, 24);
	tail[24] = '\0';
	if (sscanf(tail, "%3s %3s %2d %2d:%2d:%2d %4d", wday, mon,
	    &mday, &hh, &mm, &ss, &year) != 7 ||
	    (m = strstr(months, mon)) == NULL || (m - months) % 3 != 0)
		return 0;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = year - 1900;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_mday = mday;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	t = timegm(&tm);
	return t == (time_t)-1 ? 0 : t;
}

/*
 * The From_ line at pos: taken, its date read.  The date is at the end of
 * the line, so the last FROM_LINE_KEEP bytes are kept (another program's
 * line may be longer), NUL-terminated for sscanf().
 */
static int
take_from_line(struct mbox_scan *s, time_t *date_r, char **error_r)
{
	char line[FROM_LINE_KEEP + 1];
	size_t n = 0, seg, k;
	const unsigned char *p, *lf;

	for (;;) {
		if (fill(s, 1, error_r) == -1)
			return -1;
		if (avail(s) == 0)
			break;
		p = s->buf + s->pos;
		lf = memchr(p, '\n', avail(s));
		seg = lf != NULL ? (size_t)(lf - p) + 1 : avail(s);
		k = seg < FROM_LINE_KEEP ? seg : FROM_LINE_KEEP;
		if (n + k > FROM_LINE_KEEP) {
			memmove(line, line + (n + k - FROM_LINE_KEEP),
			    FROM_LINE_KEEP - k);
			n = FROM_LINE_KEEP - k;
		}
		memcpy(line + n, p + seg - k, k);
		n += k;
		s->pos += seg;
		if (lf != NULL)
			break;
	}
	line[n] = '\0';
	*date_r = from_line_date(line, n);
	return 0;
}

int
mbox_scan_next(struct mbox_scan *s, struct mbox_scan_entry *e,
    char **error_r)
{
	struct body_acc acc = { .hash = true, .in_header = true };
	bool prev_empty = false, empty = false;

	memset(e, 0, sizeof *e);
	if (!s->started) {
		s->started = true;
		if (find_first(s, &e->skipped, error_r) == -1)
			return -1;
	}
	if (fill(s, 1, error_r) == -1)
		return -1;
	if (avail(s) == 0)
		return 0;
	e->entry.offset = scan_offset(s);
	if (take_from_line(s, &e->date, error_r) == -1)
		return -1;
	s->hold_len = 0;
	for (;;) {
		if (fill(s, LOOKAHEAD, error_r) == -1)
			return -1;
		if (avail(s) == 0 || (prev_empty && at_from(s)))
			break;
		if (quoted_from(s))
			acc.quotes++;
		if (take_line(s, &acc, &empty, error_r) == -1)
			return -1;
		if (empty)
			acc.in_header = false;
		prev_empty = empty;
	}
	e->entry.length = scan_offset(s) - e->entry.offset;
	if (hashbuf_flush(&s->hashbuf, s->hash) == -1)
		return log_set_error(error_r, "%s: SHA-256 failed", s->path);
	gnutls_hash_output(s->hash, e->entry.digest);
	e->entry.message_id_hash = mbox_header_message_id_hash(s->hold,
	    s->hold_len);
	/* The empty line ending the entry is not the message's. */
	if (prev_empty) {
		acc.bytes--;
		acc.lfs--;
	}
	e->message_size = acc.bytes + acc.lfs - acc.quotes;
	return 1;
}

int
mbox_scan_open(const char *path, uint64_t size, struct mbox_scan **s_r,
    char **error_r)
{
	struct mbox_scan *s;

	*s_r = NULL;
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (s->path = strdup(path)) == NULL ||
	    (s->buf = malloc(SCAN_BUFFER)) == NULL ||
	    (s->hold = malloc(MBOX_MAX_HEADER_HOLD)) == NULL) {
		if (s != NULL) {
			free(s->buf);
			free(s->path);
		}
		free(s);
		return log_set_error(error_r, "scan %s: out of memory", path);
	}
	s->size = size;
	s->fd = -1;
	if (gnutls_hash_init(&s->hash, GNUTLS_DIG_SHA256) < 0) {
		s->hash = NULL;
		(void)log_set_error(error_r, "scan %s: cannot set up SHA-256",
		    path);
		mbox_scan_close(&s);
		return -1;
	}
	s->fd = fs_open_regular(path, O_RDONLY, 0);
	if (s->fd < 0) {
		(void)log_set_error(error_r, "open %s: %s", path, s->fd == -2 ?
		    "not a regular file" : strerror(errno));
		s->fd = -1;
		mbox_scan_close(&s);
		return -1;
	}
	*s_r = s;
	return 0;
}

void
mbox_scan_close(struct mbox_scan **sp)
{
	struct mbox_scan *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->fd >= 0)
		(void)close(s->fd);
	if (s->hash != NULL)
		gnutls_hash_deinit(s->hash, NULL);
	free(s->hold);
	free(s->buf);
	free(s->path);
	free(s);
}
