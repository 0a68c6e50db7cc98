/*
 * mboxrd appender: locking, streaming From-quoting, buffered durable writes
 * and truncate-back on failure.  See mbox.h for the contract.  One file of
 * this size because the encoder, the locks and the append record all act on
 * the one open struct mbox, and its commit protocol needs all three.
 */
#include "mbox/mbox.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/fs.h"

#define HOLD_INITIAL	8192
#define LOCK_RETRY_NSEC	(50 * 1000 * 1000)
/* Refresh the dotlock's mtime this often so readers never think it stale. */
#define DOTLOCK_TOUCH_SECS 60
/* Unfolded Return-Path value looked at; an address is far shorter. */
#define RETURN_PATH_MAX	2048
/* The append record (see mbox.h): "<magic> <kind> <dev> <ino> <end>\n<path>\n",
 * numbers of fixed width so every rewrite has the same length. */
#define MARKER_MAGIC	"mboxmirror-append 1"
#define MARKER_OPEN	"open"
#define MARKER_DONE	"done"
/* Bytes copied at a time when a foreign tail is saved aside. */
#define COPY_CHUNK	65536

enum marker_kind {
	MARKER_NONE,	/* none, or about another file: nothing ours past C */
	MARKER_APPENDING, /* a run of ours ended without closing */
	MARKER_CLOSED,	/* ours ended exactly at its end */
	MARKER_GARBLED,	/* unreadable: as if a run had ended unclosed */
};

/* Header-end detection while holding: where the current line stands. */
enum hold_line {
	HL_START,	/* at the start of a line */
	HL_CR,		/* a CR at the start of a line */
	HL_MID,		/* anywhere else */
};

struct mbox {
	char		*path;
	char		*lock_path;
	int		 fd;
	dev_t		 dev;
	ino_t		 ino;
	char		*marker;	/* the append record's path */
	int		 marker_fd;
	bool		 marker_open;	/* "open" is durable for this run */
	uint64_t	 marker_max;	/* highest end ever written to it */
	char		*cut_path;	/* where mbox_open() saved a tail */
	int		 lock_cmd;	/* F_OFD_SETLK, or F_SETLK */
	bool		 fcntl_locked;
	bool		 dotlocked;
	int		 dotlock_fd;	/* open: its inode stays ours */
	dev_t		 dotlock_dev;
	ino_t		 dotlock_ino;
	time_t		 dotlock_touched;

	uint64_t	 committed;	/* size as last committed */
	uint64_t	 flushed;	/* written past committed */
	bool		 dirty;		/* bytes past committed? */
	bool		 failed;	/* only rollback helps now */
	uint64_t	 open_size;
	unsigned int	 base_pad;	/* LFs owed before entry 1 */
	unsigned int	 pad;

	unsigned char	*out;
	size_t		 out_len;

	/* The message being appended. */
	bool		 in_msg;
	bool		 holding;
	time_t		 date;
	unsigned char	*hold;
	size_t		 hold_len;
	size_t		 hold_size;
	enum hold_line	 hold_line;
	bool		 cr;		/* a CR, maybe of a CRLF */
	bool		 line_start;	/* matching ^>*From  */
	size_t		 q_gt;		/* '>' at the line start */
	size_t		 q_from;	/* "From " bytes matched */
	bool		 any;		/* any body byte written */
	unsigned char	 last;		/* the last body byte */

	char		*error;
};

static ssize_t	sys_pwrite(int, const void *, size_t, off_t);
static int	sys_fdatasync(int);
static int	sys_ftruncate(int, off_t);
static void	set_error(struct mbox *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	truncate_back(struct mbox *);
static void	marker_truncated(struct mbox *, uint64_t);
static void	fail(struct mbox *, const char *, int);
static int	flush_out(struct mbox *);
static int	out_raw(struct mbox *, const void *, size_t);
static int	out_body(struct mbox *, const void *, size_t);
static int	out_repeat(struct mbox *, unsigned char, size_t);
static int	quote_flush(struct mbox *);
static int	quote_byte(struct mbox *, unsigned char);
static int	body_feed(struct mbox *, const unsigned char *, size_t);
static size_t	find_return_path(const unsigned char *, size_t, char *,
		    size_t);
static int	release_hold(struct mbox *);
static int	hold_append(struct mbox *, const unsigned char *, size_t,
		    size_t *);
static void	deadline_set(struct timespec *);
static bool	deadline_passed(const struct timespec *);
static void	nap(void);
static int	lock_fcntl(struct mbox *, const struct timespec *, char **);
static int	lock_dotlock(struct mbox *, const struct timespec *, char **);
static int	unlock_all(struct mbox *, char **);
static int	compute_pad(struct mbox *, char **);
static int	is_leftover(struct mbox *, uint64_t, uint64_t, bool *, char **);
static int	marker_write(struct mbox *, bool, uint64_t, bool);
static int	marker_read(struct mbox *, enum marker_kind *, uint64_t *,
		    char **);
static int	save_aside(struct mbox *, uint64_t, uint64_t, char **);
static int	reconcile(struct mbox *, uint64_t, uint64_t,
		    enum mbox_open_result *, char **);
static bool	dotlock_stale(const char *, const struct stat *);
static int	open_regular(const char *, int, mode_t);

static const struct mbox_sys_ops real_ops = {
	sys_pwrite, sys_fdatasync, sys_ftruncate
};
static struct mbox_sys_ops ops = {
	sys_pwrite, sys_fdatasync, sys_ftruncate
};
static unsigned int lock_wait_msec = MBOX_LOCK_WAIT_MSEC_DEFAULT;

static const char from_[] = "From ";
static const char *const wday_names[] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const month_names[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
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

/*
 * open(2) for every file this module opens beside the mailbox: never follows
 * a symbolic link, never blocks (a FIFO without a writer would hang the
 * event loop in a plain open) and takes nothing but a regular file.
 * O_NONBLOCK is cleared again once the file is known to be regular.
 * Returns the fd; -1 with errno set; -2 when path is not a regular file.
 */
static int
open_regular(const char *path, int flags, mode_t mode)
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

static bool
fcntl_locked_elsewhere(const char *path)
{
	struct flock fl;
	int fd, r;

	/* Not a regular file: mbox_open() will say so. */
	if ((fd = open_regular(path, O_RDONLY, 0)) < 0)
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

size_t
mbox_from_line(char *buf, size_t size, const char *sender,
    time_t internaldate)
{
	char who[MBOX_MAX_SENDER + 1], date[64];
	struct tm tm;
	size_t len, i;
	int n;

	if (sender == NULL)
		sender = "";
	len = strlen(sender);
	if (len >= 2 && sender[0] == '<' && sender[len - 1] == '>') {
		sender++;
		len -= 2;
	}
	if (len == 0) {
		sender = "MAILER-DAEMON";
		len = strlen(sender);
	}
	if (len > MBOX_MAX_SENDER)
		len = MBOX_MAX_SENDER;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)sender[i];

		/* A space or control byte would end the sender field early. */
		who[i] = (c <= ' ' || c == 0x7f) ? '_' : (char)c;
	}
	who[len] = '\0';

	if (gmtime_r(&internaldate, &tm) == NULL) {
		internaldate = 0;
		gmtime_r(&internaldate, &tm);
	}
	/* asctime's layout, without its locale and buffer worries. */
	snprintf(date, sizeof date, "%s %s %2d %02d:%02d:%02d %lld",
	    wday_names[tm.tm_wday], month_names[tm.tm_mon], tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)tm.tm_year + 1900);

	n = snprintf(buf, size, "From %s %s\n", who, date);
	return n < 0 ? 0 : (size_t)n;
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

/* Cuts the file back to its committed size; 0 or -1 (error appended). */
static int
truncate_back(struct mbox *m)
{
	int r;

	if (!m->dirty)
		return 0;
	do
		r = ops.ftruncate(m->fd, (off_t)m->committed);
	while (r == -1 && errno == EINTR);
	if (r == -1) {
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
	marker_truncated(m, m->committed);
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
	time_t now;

	if (m->failed)
		return -1;
	if (m->out_len > 0 && !m->marker_open) {
		/* Durable before the first byte past the committed size, so
		 * that a crash leaves a tail known to be ours. */
		if (marker_write(m, true, m->committed + m->flushed,
		    true) == -1) {
			set_error(m, "write %s: %s", m->marker,
			    strerror(errno));
			m->failed = true;
			m->out_len = 0;
			return -1;
		}
		m->marker_open = true;
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
		(void)marker_write(m, true, m->committed + m->flushed, false);

	now = time(NULL);
	if (m->dotlocked && now - m->dotlock_touched >= DOTLOCK_TOUCH_SECS) {
		/* Best effort: a missed refresh only risks being seen stale
		 * after MBOX_DOTLOCK_STALE_SECS, which the next one fixes. */
		(void)futimens(m->dotlock_fd, NULL);
		m->dotlock_touched = now;
	}
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

static int
out_body(struct mbox *m, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	m->any = true;
	m->last = ((const unsigned char *)data)[len - 1];
	return out_raw(m, data, len);
}

static int
out_repeat(struct mbox *m, unsigned char c, size_t count)
{
	unsigned char run[256];
	size_t n;

	if (count == 0)
		return 0;
	memset(run, c, sizeof run);
	while (count > 0) {
		n = count < sizeof run ? count : sizeof run;
		if (out_body(m, run, n) == -1)
			return -1;
		count -= n;
	}
	return 0;
}

/* Writes out a line start that turned out not to be a From line. */
static int
quote_flush(struct mbox *m)
{
	if (out_repeat(m, '>', m->q_gt) == -1 ||
	    out_body(m, from_, m->q_from) == -1)
		return -1;
	m->q_gt = 0;
	m->q_from = 0;
	m->line_start = false;
	return 0;
}

/* One byte after CRLF -> LF: the From-quoting stage. */
static int
quote_byte(struct mbox *m, unsigned char c)
{
	if (m->line_start) {
		if (m->q_from == 0 && c == '>') {
			m->q_gt++;
			return 0;
		}
		if (c == (unsigned char)from_[m->q_from]) {
			if (++m->q_from < sizeof from_ - 1)
				return 0;
			m->q_gt++;
			return quote_flush(m);
		}
		if (quote_flush(m) == -1)
			return -1;
	}
	if (out_body(m, &c, 1) == -1)
		return -1;
	if (c == '\n')
		m->line_start = true;
	return 0;
}

/* One raw message byte, the slow way: CRLF -> LF, then quoting. */
static int
body_byte(struct mbox *m, unsigned char c)
{
	if (m->cr) {
		m->cr = false;
		if (c == '\n')
			return quote_byte(m, '\n');
		if (quote_byte(m, '\r') == -1)
			return -1;
	}
	if (c == '\r') {
		m->cr = true;
		return 0;
	}
	return quote_byte(m, c);
}

/*
 * Copies the rest of a line whose start needs no quoting, CRLF -> LF, in
 * one piece.  Returns the bytes used (all of p when it holds no LF).
 */
static ssize_t
body_line(struct mbox *m, const unsigned char *p, size_t len)
{
	const unsigned char *lf;
	size_t n;

	lf = memchr(p, '\n', len);
	if (lf == NULL) {
		/* A CR at the end may pair with an LF in the next piece. */
		n = len;
		if (p[n - 1] == '\r') {
			m->cr = true;
			n--;
		}
		return out_body(m, p, n) == -1 ? -1 : (ssize_t)len;
	}
	n = (size_t)(lf - p);
	if (out_body(m, p, n > 0 && p[n - 1] == '\r' ? n - 1 : n) == -1 ||
	    out_body(m, "\n", 1) == -1)
		return -1;
	m->line_start = true;
	return (ssize_t)n + 1;
}

/* Raw message bytes: CRLF -> LF, then quoting. */
static int
body_feed(struct mbox *m, const unsigned char *p, size_t len)
{
	ssize_t used;

	while (len > 0) {
		/* Most lines start with neither '>' nor 'F': nothing to
		 * quote, so the line is copied whole. */
		if (m->line_start && !m->cr && m->q_gt == 0 &&
		    m->q_from == 0 && *p != '>' && *p != 'F' && *p != '\r')
			m->line_start = false;
		if (m->cr || m->line_start) {
			if (body_byte(m, *p) == -1)
				return -1;
			p++;
			len--;
			continue;
		}
		if ((used = body_line(m, p, len)) == -1)
			return -1;
		p += used;
		len -= (size_t)used;
	}
	return 0;
}

/*
 * The first Return-Path header in the held header: unfolded, the address
 * between angle brackets (or the first word if there are none) into addr.
 * Returns its length (0: none or empty).
 */
static size_t
find_return_path(const unsigned char *h, size_t len, char *addr,
    size_t size)
{
	static const char name[] = "return-path:";
	char val[RETURN_PATH_MAX];
	size_t pos = 0, vlen = 0, i, start, end;
	const char *lt;

	addr[0] = '\0';
	while (pos < len) {
		if (len - pos >= sizeof name - 1 &&
		    strncasecmp((const char *)h + pos, name,
		    sizeof name - 1) == 0)
			break;
		while (pos < len && h[pos] != '\n')
			pos++;
		pos++;
	}
	if (pos >= len)
		return 0;
	pos += sizeof name - 1;
	/* The value and its continuation lines, line ends dropped. */
	for (;;) {
		for (; pos < len && h[pos] != '\n'; pos++)
			if (h[pos] != '\r' && vlen < sizeof val)
				val[vlen++] = (char)h[pos];
		if (pos + 1 >= len || (h[pos + 1] != ' ' && h[pos + 1] != '\t'))
			break;
		pos++;
	}

	lt = memchr(val, '<', vlen);
	if (lt != NULL) {
		start = (size_t)(lt - val) + 1;
		for (end = start; end < vlen && val[end] != '>'; end++)
			;
	} else {
		for (start = 0; start < vlen &&
		    (val[start] == ' ' || val[start] == '\t'); start++)
			;
		for (end = start; end < vlen && val[end] != ' ' &&
		    val[end] != '\t'; end++)
			;
	}
	if (end - start >= size)
		end = start + size - 1;
	for (i = start; i < end; i++)
		addr[i - start] = val[i];
	addr[end - start] = '\0';
	return end - start;
}

/* The header is in (or the hold is full): From_ line, then the held bytes. */
static int
release_hold(struct mbox *m)
{
	char addr[MBOX_MAX_SENDER + 1], line[MBOX_FROM_LINE_MAX];
	size_t n;

	m->holding = false;
	find_return_path(m->hold, m->hold_len, addr, sizeof addr);
	n = mbox_from_line(line, sizeof line, addr, m->date);
	if (n >= sizeof line)
		n = sizeof line - 1;
	if (out_raw(m, line, n) == -1 ||
	    body_feed(m, m->hold, m->hold_len) == -1)
		return -1;
	m->hold_len = 0;
	return 0;
}

/*
 * Holds bytes of p until the header ends or the hold is full; *used_r says
 * how many were taken.  Which bytes are held depends only on the message,
 * never on the chunking.
 */
static int
hold_append(struct mbox *m, const unsigned char *p, size_t len,
    size_t *used_r)
{
	size_t i = 0, limit, want, room;
	const unsigned char *lf;
	unsigned char *nh;
	bool end = false;

	/* Never more than the hold takes: it ends there, header or not. */
	limit = MBOX_MAX_HEADER_HOLD - m->hold_len;
	if (len >= limit) {
		len = limit;
		end = true;
	}
	while (i < len) {
		if (m->hold_line == HL_MID) {
			/* Inside a line only its end matters. */
			lf = memchr(p + i, '\n', len - i);
			if (lf == NULL) {
				i = len;
				break;
			}
			i = (size_t)(lf - p) + 1;
			m->hold_line = HL_START;
			continue;
		}
		/* A line that is empty (LF or CRLF) ends the header. */
		if (p[i] == '\n') {
			i++;
			end = true;
			break;
		}
		m->hold_line = m->hold_line == HL_START && p[i] == '\r' ?
		    HL_CR : HL_MID;
		i++;
	}
	want = m->hold_len + i;
	if (want > m->hold_size) {
		room = m->hold_size == 0 ? HOLD_INITIAL : m->hold_size;
		while (room < want)
			room *= 2;
		if (room > MBOX_MAX_HEADER_HOLD)
			room = MBOX_MAX_HEADER_HOLD;
		nh = realloc(m->hold, room);
		if (nh == NULL) {
			fail(m, "hold header for", ENOMEM);
			return -1;
		}
		m->hold = nh;
		m->hold_size = room;
	}
	memcpy(m->hold + m->hold_len, p, i);
	m->hold_len += i;
	*used_r = i;
	if (end)
		return release_hold(m);
	return 0;
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
	m->in_msg = true;
	m->holding = true;
	m->date = internaldate;
	m->hold_len = 0;
	m->hold_line = HL_START;
	m->cr = false;
	m->line_start = true;
	m->q_gt = 0;
	m->q_from = 0;
	m->any = false;
	m->last = 0;
	return 0;
}

int
mbox_msg_write(struct mbox *m, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t used;

	if (m->failed)
		return -1;
	if (!m->in_msg) {
		set_error(m, "%s: write outside a message", m->path);
		return -1;
	}
	if (m->holding && len > 0) {
		if (hold_append(m, p, len, &used) == -1)
			return -1;
		p += used;
		len -= used;
	}
	if (len == 0)
		return 0;
	return body_feed(m, p, len);
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
	if (m->holding && release_hold(m) == -1)
		return -1;
	if (m->cr) {
		m->cr = false;
		if (quote_byte(m, '\r') == -1)
			return -1;
	}
	if (m->line_start && (m->q_gt > 0 || m->q_from > 0) &&
	    quote_flush(m) == -1)
		return -1;
	if (m->any && m->last != '\n' && out_raw(m, "\n", 1) == -1)
		return -1;
	if (out_raw(m, "\n", 1) == -1)
		return -1;
	m->in_msg = false;
	return 0;
}

int
mbox_commit(struct mbox *m, uint64_t *size_r)
{
	int r;

	if (m->failed)
		return -1;
	if (m->in_msg) {
		set_error(m, "%s: commit with a message open", m->path);
		return -1;
	}
	if (flush_out(m) == -1)
		return -1;
	if (m->flushed > 0) {
		do
			r = ops.fdatasync(m->fd);
		while (r == -1 && errno == EINTR);
		if (r == -1) {
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
	m->holding = false;
	m->hold_len = 0;
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
	int r;

	if (m->failed)
		return -1;
	if (size < m->committed || size > mbox_appended_size(m)) {
		set_error(m, "%s: commit at %llu outside what was appended",
		    m->path, (unsigned long long)size);
		return -1;
	}
	/* A message in progress is cut off with the rest. */
	m->in_msg = false;
	m->holding = false;
	m->hold_len = 0;
	if (flush_out(m) == -1)
		return -1;
	if (size < m->committed + m->flushed) {
		do
			r = ops.ftruncate(m->fd, (off_t)size);
		while (r == -1 && errno == EINTR);
		if (r == 0) {
			do
				r = ops.fdatasync(m->fd);
			while (r == -1 && errno == EINTR);
		}
		if (r == -1) {
			fail(m, "truncate", errno);
			return -1;
		}
		/* The cut is durable: the record may say so now. */
		marker_truncated(m, size);
	}
	if (size > m->committed || m->dirty) {
		do
			r = ops.fdatasync(m->fd);
		while (r == -1 && errno == EINTR);
		if (r == -1) {
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
lock_fcntl(struct mbox *m, const struct timespec *deadline, char **error_r)
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
		if (fcntl(m->fd, cmd, &fl) == 0)
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
		if (errno != EAGAIN && errno != EACCES) {
			if (asprintf(error_r, "lock %s: %s", m->path,
			    strerror(errno)) == -1)
				*error_r = NULL;
			return -1;
		}
		if (deadline_passed(deadline)) {
			if (asprintf(error_r, "lock %s: still locked by "
			    "another process after %u ms", m->path,
			    lock_wait_msec) == -1)
				*error_r = NULL;
			return -1;
		}
		nap();
	}
	m->fcntl_locked = true;
	m->lock_cmd = cmd;
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

	if ((fd = open_regular(path, O_RDONLY, 0)) < 0)
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
dotlock_create(struct mbox *m, bool *written_r)
{
	char *tmp;
	int fd, saved;

	*written_r = false;
	if (asprintf(&tmp, "%s.%ld.tmp", m->lock_path, (long)getpid()) == -1)
		return -1;
	(void)unlink(tmp);	/* ours, left by a crash of this pid */
	if ((fd = open_regular(tmp, O_RDWR | O_CREAT | O_EXCL, 0600)) < 0) {
		saved = errno;
		free(tmp);
		errno = saved;
		return -1;
	}
	if (write_pid(fd) == -1)
		goto fail;
	if (link(tmp, m->lock_path) == -1) {
		if (errno != EPERM && errno != ENOTSUP && errno != ENOSYS &&
		    errno != EOPNOTSUPP)
			goto fail;
		(void)close(fd);
		(void)unlink(tmp);
		free(tmp);
		return open_regular(m->lock_path, O_WRONLY | O_CREAT |
		    O_EXCL, 0600);
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
lock_dotlock(struct mbox *m, const struct timespec *deadline, char **error_r)
{
	struct stat st;
	bool written;
	int fd;

	for (;;) {
		fd = dotlock_create(m, &written);
		if (fd >= 0)
			break;
		if (fd == -1 && errno == EINTR)
			continue;
		if (fd == -1 && errno != EEXIST)
			goto syserr;
		if (lstat(m->lock_path, &st) == -1) {
			if (errno == ENOENT)
				continue;
			goto syserr;
		}
		if (!S_ISREG(st.st_mode)) {
			/* Not a dotlock anybody could hold: neither wait for
			 * it nor remove what we do not understand. */
			if (asprintf(error_r, "dotlock %s: not a regular file",
			    m->lock_path) == -1)
				*error_r = NULL;
			return -1;
		}
		if (dotlock_stale(m->lock_path, &st)) {
			/* Its holder died: mutt and Dovecot take over the
			 * same way. */
			if (unlink(m->lock_path) == -1 && errno != ENOENT)
				goto syserr;
			continue;
		}
		if (deadline_passed(deadline)) {
			if (asprintf(error_r, "dotlock %s: held by another "
			    "process for more than %u ms", m->lock_path,
			    lock_wait_msec) == -1)
				*error_r = NULL;
			return -1;
		}
		nap();
	}

	/* Ours from here on: unlock_all() removes it on failure. */
	m->dotlocked = true;
	m->dotlock_fd = fd;
	m->dotlock_touched = time(NULL);
	if (fstat(fd, &st) == -1)
		goto syserr;
	m->dotlock_dev = st.st_dev;
	m->dotlock_ino = st.st_ino;
	if (!written && write_pid(fd) == -1)
		goto syserr;
	return 0;

syserr:
	if (asprintf(error_r, "dotlock %s: %s", m->lock_path,
	    strerror(errno)) == -1)
		*error_r = NULL;
	return -1;
}

/* Releases the dotlock (if still ours) and the fcntl lock. */
static int
unlock_all(struct mbox *m, char **error_r)
{
	struct flock fl;
	struct stat st;
	int r = 0;

	if (m->dotlocked) {
		m->dotlocked = false;
		if (lstat(m->lock_path, &st) == -1) {
			/* Already gone (someone took it for stale): fine. */
			if (errno != ENOENT) {
				if (*error_r == NULL && asprintf(error_r,
				    "dotlock %s: %s", m->lock_path,
				    strerror(errno)) == -1)
					*error_r = NULL;
				r = -1;
			}
		} else if (st.st_dev == m->dotlock_dev &&
		    st.st_ino == m->dotlock_ino &&
		    unlink(m->lock_path) == -1) {
			if (*error_r == NULL && asprintf(error_r,
			    "unlink %s: %s", m->lock_path,
			    strerror(errno)) == -1)
				*error_r = NULL;
			r = -1;
		}
		/* Only after the unlink, so nobody else can have been given
		 * the same inode meanwhile. */
		if (close(m->dotlock_fd) == -1) {
			if (*error_r == NULL && asprintf(error_r,
			    "close %s: %s", m->lock_path,
			    strerror(errno)) == -1)
				*error_r = NULL;
			r = -1;
		}
		m->dotlock_fd = -1;
	}
	if (m->fcntl_locked) {
		m->fcntl_locked = false;
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_UNLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(m->fd, m->lock_cmd, &fl) == -1) {
			if (*error_r == NULL && asprintf(error_r,
			    "unlock %s: %s", m->path, strerror(errno)) == -1)
				*error_r = NULL;
			r = -1;
		}
	}
	return r;
}

/* LFs needed so that bytes we did not write end in an empty line. */
static int
compute_pad(struct mbox *m, char **error_r)
{
	unsigned char tail[2];
	size_t want;
	ssize_t n;

	m->base_pad = 0;
	if (m->committed == 0)
		return 0;
	want = m->committed >= 2 ? 2 : 1;
	do
		n = pread(m->fd, tail, want, (off_t)(m->committed - want));
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)want) {
		if (asprintf(error_r, "read %s: %s", m->path,
		    n == -1 ? strerror(errno) : "short read") == -1)
			*error_r = NULL;
		return -1;
	}
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
	ssize_t n;

	want = size - committed < sizeof head ? (size_t)(size - committed) :
	    sizeof head;
	do
		n = pread(m->fd, head, want, (off_t)committed);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)want) {
		if (asprintf(error_r, "read %s: %s", m->path,
		    n == -1 ? strerror(errno) : "short read") == -1)
			*error_r = NULL;
		return -1;
	}
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
 * Our bytes now end at end, below what the record may claim: say so,
 * durably, so that mail another program appends after a crash is not
 * taken for ours and cut.  Best effort: if it fails, such mail is at worst
 * cut without being saved aside, as before the record existed.
 */
static void
marker_truncated(struct mbox *m, uint64_t end)
{
	if (!m->marker_open || m->marker_max <= end)
		return;
	if (marker_write(m, true, end, true) == 0)
		m->marker_max = end;
}

/*
 * Writes the append record: "open" (a run of ours is appending; its bytes
 * end at end or beyond) or "done" (ours end exactly at end).  sync makes it
 * durable; a record that had to be created is always made durable, name
 * included.  0, or -1 with errno set.
 */
static int
marker_write(struct mbox *m, bool open, uint64_t end, bool sync)
{
	char *rec;
	bool created = false;
	ssize_t n;
	size_t done = 0;
	int len, saved;

	if (m->marker_fd == -1) {
		m->marker_fd = open_regular(m->marker, O_RDWR, 0);
		if (m->marker_fd == -1 && errno == ENOENT) {
			m->marker_fd = open_regular(m->marker, O_RDWR |
			    O_CREAT | O_EXCL, 0600);
			created = true;
		}
		if (m->marker_fd == -2)
			errno = EINVAL;
		if (m->marker_fd < 0) {
			m->marker_fd = -1;
			return -1;
		}
	}
	len = asprintf(&rec, "%s %s %020llu %020llu %020llu\n%s\n",
	    MARKER_MAGIC, open ? MARKER_OPEN : MARKER_DONE,
	    (unsigned long long)m->dev, (unsigned long long)m->ino,
	    (unsigned long long)end, m->path);
	if (len == -1) {
		errno = ENOMEM;
		return -1;
	}
	while (done < (size_t)len) {
		n = pwrite(m->marker_fd, rec + done, (size_t)len - done,
		    (off_t)done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n == 0 ? EIO : errno;
			free(rec);
			errno = saved;
			return -1;
		}
		done += (size_t)n;
	}
	free(rec);
	if (ftruncate(m->marker_fd, (off_t)len) == -1)
		return -1;
	if ((sync || created) && (fdatasync(m->marker_fd) == -1 ||
	    (created && fs_sync_parent(m->marker, NULL) == -1)))
		return -1;
	if (open && end > m->marker_max)
		m->marker_max = end;
	return 0;
}

/*
 * Reads the append record into *kind_r and *end_r.  A record about another
 * file (another path, or the same path now naming another file) is none.
 * 0, or -1 with a malloc'ed *error_r.
 */
static int
marker_read(struct mbox *m, enum marker_kind *kind_r, uint64_t *end_r,
    char **error_r)
{
	unsigned long long dev, ino, end;
	size_t cap = strlen(m->path) + 128, len = 0, plen;
	char kind[8], *buf = NULL;
	ssize_t n;
	int fd, pos = 0;

	*kind_r = MARKER_NONE;
	*end_r = 0;
	fd = open_regular(m->marker, O_RDONLY, 0);
	if (fd == -1 && errno == ENOENT)
		return 0;
	if (fd == -2) {
		if (asprintf(error_r, "%s: not a regular file", m->marker) ==
		    -1)
			*error_r = NULL;
		return -1;
	}
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
	*kind_r = MARKER_GARBLED;
	if (len > cap || memchr(buf, '\0', len) != NULL ||
	    sscanf(buf, MARKER_MAGIC " %4s %20llu %20llu %20llu%n", kind, &dev,
	    &ino, &end, &pos) != 4 || buf[pos] != '\n' ||
	    (strcmp(kind, MARKER_OPEN) != 0 && strcmp(kind, MARKER_DONE) != 0))
		goto out;
	plen = strlen(m->path);
	if (len - (size_t)pos - 1 != plen + 1 ||
	    memcmp(buf + pos + 1, m->path, plen) != 0 || buf[len - 1] != '\n' ||
	    dev != (unsigned long long)m->dev ||
	    ino != (unsigned long long)m->ino) {
		*kind_r = MARKER_NONE;
		goto out;
	}
	*kind_r = strcmp(kind, MARKER_OPEN) == 0 ? MARKER_APPENDING :
	    MARKER_CLOSED;
	*end_r = end;
out:
	free(buf);
	return 0;

syserr:
	if (asprintf(error_r, "read %s: %s", m->marker, strerror(errno)) ==
	    -1)
		*error_r = NULL;
	if (fd >= 0)
		(void)close(fd);
	free(buf);
	return -1;
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
		fd = open_regular(name, O_WRONLY | O_CREAT | O_EXCL, 0600);
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
	if (asprintf(error_r, "%s %s: %s", step, name != NULL ? name : m->path,
	    strerror(errno)) == -1)
		*error_r = NULL;
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
	enum marker_kind kind;
	uint64_t end, aside, settled;
	bool ours, looks;
	int r;

	if (marker_read(m, &kind, &end, error_r) == -1)
		return -1;
	/* Whether bytes past c may be ours: a run that never closed, or one
	 * whose last commits the caller did not record. */
	ours = kind == MARKER_APPENDING || kind == MARKER_GARBLED ||
	    (kind == MARKER_CLOSED && end > c);
	if (size > c && ours) {
		if (is_leftover(m, c, size, &looks, error_r) == -1)
			return -1;
		/* Ours start at c with an entry; whatever lies past our end
		 * (or all of it, when it does not start like ours) another
		 * program appended: kept aside, since exactly once wins. */
		aside = c;
		if (looks && kind != MARKER_GARBLED && end > c)
			aside = end;
		if (aside < size && save_aside(m, aside, size, error_r) == -1)
			return -1;
		do
			r = ops.ftruncate(m->fd, (off_t)c);
		while (r == -1 && errno == EINTR);
		/* The cut must be durable before the record forgets it. */
		if (r == 0) {
			do
				r = ops.fdatasync(m->fd);
			while (r == -1 && errno == EINTR);
		}
		if (r == -1) {
			if (asprintf(error_r, "truncate %s to %llu: %s",
			    m->path, (unsigned long long)c,
			    strerror(errno)) == -1)
				*error_r = NULL;
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
		do
			r = ops.fdatasync(m->fd);
		while (r == -1 && errno == EINTR);
		if (r == -1) {
			if (asprintf(error_r, "fdatasync %s: %s", m->path,
			    strerror(errno)) == -1)
				*error_r = NULL;
			return -1;
		}
	} else {
		*res_r = MBOX_OPEN_OK;
		m->committed = size;
	}
	/* From now on nothing past what the caller records (c, or the new
	 * size it records for SHORTER and CHANGED) may count as ours. */
	settled = c < m->committed ? c : m->committed;
	if (kind == MARKER_NONE || (kind == MARKER_CLOSED && end <= settled))
		return 0;
	if (marker_write(m, false, settled, true) == -1) {
		if (asprintf(error_r, "write %s: %s", m->marker,
		    strerror(errno)) == -1)
			*error_r = NULL;
		return -1;
	}
	return 0;
}

enum mbox_open_result
mbox_open(const char *path, const char *marker, uint64_t committed_size,
    struct mbox **mbox_r, char **error_r)
{
	enum mbox_open_result res = MBOX_OPEN_FAILED;
	struct timespec deadline;
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
	m->dotlock_fd = -1;
	m->marker_fd = -1;
	if ((m->path = strdup(path)) == NULL ||
	    (m->marker = strdup(marker)) == NULL ||
	    asprintf(&m->lock_path, "%s.lock", path) == -1) {
		m->lock_path = NULL;
		goto nomem;
	}
	if ((m->out = malloc(MBOX_WRITE_BUFFER)) == NULL)
		goto nomem;

	existed = lstat(path, &lst) == 0;
	if (!existed && errno != ENOENT)
		goto syserr;
	if (existed && S_ISLNK(lst.st_mode)) {
		if (asprintf(error_r, "%s: refusing a symbolic link", path) ==
		    -1)
			*error_r = NULL;
		goto fail;
	}
	if (existed && !S_ISREG(lst.st_mode)) {
		if (asprintf(error_r, "%s: not a regular file", path) == -1)
			*error_r = NULL;
		goto fail;
	}

	/* Should a FIFO appear after the lstat, this does not hang on it. */
	m->fd = open_regular(path, O_RDWR | O_CREAT, 0600);
	if (m->fd == -2) {
		m->fd = -1;
		if (asprintf(error_r, "%s: not a regular file", path) == -1)
			*error_r = NULL;
		goto fail;
	}
	if (m->fd == -1) {
		if (errno == ELOOP) {
			if (asprintf(error_r, "%s: refusing a symbolic link",
			    path) == -1)
				*error_r = NULL;
			goto fail;
		}
		goto syserr;
	}
	if (fstat(m->fd, &st) == -1)
		goto syserr;
	if (st.st_nlink != 1) {
		if (asprintf(error_r, "%s: refusing a file with %lu links",
		    path, (unsigned long)st.st_nlink) == -1)
			*error_r = NULL;
		goto fail;
	}
	/* The name must still lead to what we opened. */
	if (lstat(path, &lst) == -1)
		goto syserr;
	if (lst.st_dev != st.st_dev || lst.st_ino != st.st_ino) {
		if (asprintf(error_r, "%s: replaced while being opened",
		    path) == -1)
			*error_r = NULL;
		goto fail;
	}

	deadline_set(&deadline);
	if (lock_fcntl(m, &deadline, error_r) == -1 ||
	    lock_dotlock(m, &deadline, error_r) == -1)
		goto fail;

	/* Others may have appended while we waited. */
	if (fstat(m->fd, &st) == -1)
		goto syserr;
	m->dev = st.st_dev;
	m->ino = st.st_ino;
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
	if (asprintf(error_r, "open %s: %s", path, strerror(errno)) == -1)
		*error_r = NULL;
fail:
	if (m != NULL) {
		(void)unlock_all(m, &unlock_err);
		free(unlock_err);
		if (m->fd != -1)
			(void)close(m->fd);
		if (m->marker_fd != -1)
			(void)close(m->marker_fd);
		free(m->out);
		free(m->lock_path);
		free(m->marker);
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
	} else if (m->marker_open) {
		/* Ours end here.  Synced when a lost write could bring back
		 * an "open" naming more: bytes appended there later would be
		 * cut as ours. */
		if (marker_write(m, false, m->committed,
		    m->marker_max > m->committed) == -1) {
			if (asprintf(&err, "write %s: %s", m->marker,
			    strerror(errno)) == -1)
				err = NULL;
			r = -1;
		}
	}
	if (m->marker_fd != -1 && close(m->marker_fd) == -1 && err == NULL) {
		if (asprintf(&err, "close %s: %s", m->marker,
		    strerror(errno)) == -1)
			err = NULL;
		r = -1;
	}
	if (unlock_all(m, &err) == -1)
		r = -1;
	if (close(m->fd) == -1) {
		if (err == NULL && asprintf(&err, "close %s: %s", m->path,
		    strerror(errno)) == -1)
			err = NULL;
		r = -1;
	}
	if (error_r != NULL)
		*error_r = err;
	else
		free(err);
	free(m->hold);
	free(m->out);
	free(m->error);
	free(m->lock_path);
	free(m->marker);
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
