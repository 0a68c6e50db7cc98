/*
 * The mboxrd encoder (see mboxrd.h), the From_ line (mbox_from_line()
 * in mbox.h) and the hash of a Message-ID (mbox_message_id_hash()).
 */
#include "mbox/mboxrd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "mbox/mbox.h"
#include "util/hash.h"

#define HOLD_INITIAL	8192
/* Unfolded Return-Path value looked at; an address is far shorter. */
#define RETURN_PATH_MAX	2048
/* Unfolded Message-ID value looked at; RFC 5322 lines are shorter. */
#define MESSAGE_ID_MAX	1000

static int	body_feed(struct mboxrd *, const unsigned char *, size_t);
static int	quote_byte(struct mboxrd *, unsigned char);

static const char from_[] = MBOXRD_FROM;
static const char *const wday_names[] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};

static const char *const month_names[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

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

/* Output after the From_ line: into the entry's digest too. */
static int
emit(struct mboxrd *e, const void *data, size_t len)
{
	e->digest_dirty = true;
	if (hashbuf_feed(&e->stage, e->digest, data, len) == -1)
		return -1;
	return e->out(e->arg, data, len);
}

static int
out_body(struct mboxrd *e, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	e->any = true;
	e->last = ((const unsigned char *)data)[len - 1];
	return emit(e, data, len);
}

static int
out_repeat(struct mboxrd *e, unsigned char c, size_t count)
{
	unsigned char run[256];
	size_t n;

	if (count == 0)
		return 0;
	memset(run, c, sizeof run);
	while (count > 0) {
		n = count < sizeof run ? count : sizeof run;
		if (out_body(e, run, n) == -1)
			return -1;
		count -= n;
	}
	return 0;
}

/* Writes out a line start that turned out not to be a From line. */
static int
quote_flush(struct mboxrd *e)
{
	if (out_repeat(e, '>', e->q_gt) == -1 ||
	    out_body(e, from_, e->q_from) == -1)
		return -1;
	e->q_gt = 0;
	e->q_from = 0;
	e->line_start = false;
	return 0;
}

/* One byte after CRLF -> LF: the From-quoting stage. */
static int
quote_byte(struct mboxrd *e, unsigned char c)
{
	if (e->line_start) {
		if (e->q_from == 0 && c == '>') {
			e->q_gt++;
			return 0;
		}
		if (c == (unsigned char)from_[e->q_from]) {
			if (++e->q_from < sizeof from_ - 1)
				return 0;
			e->q_gt++;
			return quote_flush(e);
		}
		if (quote_flush(e) == -1)
			return -1;
	}
	if (out_body(e, &c, 1) == -1)
		return -1;
	if (c == '\n')
		e->line_start = true;
	return 0;
}

/* One raw message byte, the slow way: CRLF -> LF, then quoting. */
static int
body_byte(struct mboxrd *e, unsigned char c)
{
	if (e->cr) {
		e->cr = false;
		if (c == '\n')
			return quote_byte(e, '\n');
		if (quote_byte(e, '\r') == -1)
			return -1;
	}
	if (c == '\r') {
		e->cr = true;
		return 0;
	}
	return quote_byte(e, c);
}

/*
 * Copies the rest of a line whose start needs no quoting, CRLF -> LF, in
 * one piece.  Returns the bytes used (all of p when it holds no LF).
 */
static ssize_t
body_line(struct mboxrd *e, const unsigned char *p, size_t len)
{
	const unsigned char *lf;
	size_t n;

	lf = memchr(p, '\n', len);
	if (lf == NULL) {
		/* A CR at the end may pair with an LF in the next piece. */
		n = len;
		if (p[n - 1] == '\r') {
			e->cr = true;
			n--;
		}
		return out_body(e, p, n) == -1 ? -1 : (ssize_t)len;
	}
	n = (size_t)(lf - p);
	if (out_body(e, p, n > 0 && p[n - 1] == '\r' ? n - 1 : n) == -1 ||
	    out_body(e, "\n", 1) == -1)
		return -1;
	e->line_start = true;
	return (ssize_t)n + 1;
}

/* Raw message bytes: CRLF -> LF, then quoting. */
static int
body_feed(struct mboxrd *e, const unsigned char *p, size_t len)
{
	ssize_t used;

	while (len > 0) {
		/* Most lines start with neither '>' nor 'F': nothing to
		 * quote, so the line is copied whole. */
		if (e->line_start && !e->cr && e->q_gt == 0 &&
		    e->q_from == 0 && *p != '>' && *p != 'F' && *p != '\r')
			e->line_start = false;
		if (e->cr || e->line_start) {
			if (body_byte(e, *p) == -1)
				return -1;
			p++;
			len--;
			continue;
		}
		if ((used = body_line(e, p, len)) == -1)
			return -1;
		p += used;
		len -= (size_t)used;
	}
	return 0;
}

size_t
mboxrd_header_value(const unsigned char *h, size_t len, const char *name,
    char *val, size_t size)
{
	size_t nlen = strlen(name), pos = 0, vlen = 0;

	while (pos < len) {
		if (len - pos >= nlen &&
		    strncasecmp((const char *)h + pos, name, nlen) == 0)
			break;
		while (pos < len && h[pos] != '\n')
			pos++;
		pos++;
	}
	if (pos >= len)
		return (size_t)-1;
	pos += nlen;
	/* The value and its continuation lines, line ends dropped. */
	for (;;) {
		for (; pos < len && h[pos] != '\n'; pos++)
			if (h[pos] != '\r' && vlen < size)
				val[vlen++] = (char)h[pos];
		if (pos + 1 >= len || (h[pos + 1] != ' ' && h[pos + 1] != '\t'))
			break;
		pos++;
	}
	return vlen;
}

uint64_t
mbox_message_id_hash(const void *value, size_t len)
{
	const char *v = value, *lt, *gt;
	size_t start = 0, end = len;
	uint64_t h;

	while (start < end && (v[start] == ' ' || v[start] == '\t' ||
	    v[start] == '\r' || v[start] == '\n'))
		start++;
	while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t' ||
	    v[end - 1] == '\r' || v[end - 1] == '\n'))
		end--;
	/* The angle-bracketed id, without a comment around it. */
	if ((lt = memchr(v + start, '<', end - start)) != NULL) {
		start = (size_t)(lt - v);
		gt = memchr(lt, '>', end - start);
		if (gt != NULL)
			end = (size_t)(gt - v) + 1;
	}
	if (start == end)
		return 0;
	h = hash_fnv1a64(v + start, end - start);
	return h != 0 ? h : 1;	/* 0 means none */
}

uint64_t
mbox_header_message_id_hash(const void *header, size_t len)
{
	char val[MESSAGE_ID_MAX];
	size_t n;

	n = mboxrd_header_value(header, len, "message-id:", val, sizeof val);
	return n == (size_t)-1 ? 0 : mbox_message_id_hash(val, n);
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
	char val[RETURN_PATH_MAX];
	size_t vlen, i, start, end;
	const char *lt;

	addr[0] = '\0';
	vlen = mboxrd_header_value(h, len, "return-path:", val, sizeof val);
	if (vlen == (size_t)-1)
		return 0;
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
release_hold(struct mboxrd *e)
{
	char addr[MBOX_MAX_SENDER + 1], line[MBOX_FROM_LINE_MAX];
	size_t n;

	e->holding = false;
	find_return_path(e->hold, e->hold_len, addr, sizeof addr);
	e->message_id_hash = mbox_header_message_id_hash(e->hold,
	    e->hold_len);
	n = mbox_from_line(line, sizeof line, addr, e->date);
	if (n >= sizeof line)
		n = sizeof line - 1;
	if (e->out(e->arg, line, n) == -1 ||
	    body_feed(e, e->hold, e->hold_len) == -1)
		return -1;
	e->hold_len = 0;
	return 0;
}

/*
 * Holds bytes of p until the header ends or the hold is full; *used_r says
 * how many were taken.  Which bytes are held depends only on the message,
 * never on the chunking.
 */
static int
hold_append(struct mboxrd *e, const unsigned char *p, size_t len,
    size_t *used_r)
{
	size_t i = 0, limit, want, room;
	const unsigned char *lf;
	unsigned char *nh;
	bool end = false;

	/* Never more than the hold takes: it ends there, header or not. */
	limit = MBOX_MAX_HEADER_HOLD - e->hold_len;
	if (len >= limit) {
		len = limit;
		end = true;
	}
	while (i < len) {
		if (e->hold_line == MBOXRD_HL_MID) {
			/* Inside a line only its end matters. */
			lf = memchr(p + i, '\n', len - i);
			if (lf == NULL) {
				i = len;
				break;
			}
			i = (size_t)(lf - p) + 1;
			e->hold_line = MBOXRD_HL_START;
			continue;
		}
		/* A line that is empty (LF or CRLF) ends the header. */
		if (p[i] == '\n') {
			i++;
			end = true;
			break;
		}
		e->hold_line = e->hold_line == MBOXRD_HL_START && p[i] == '\r' ?
		    MBOXRD_HL_CR : MBOXRD_HL_MID;
		i++;
	}
	want = e->hold_len + i;
	if (want > e->hold_size) {
		room = e->hold_size == 0 ? HOLD_INITIAL : e->hold_size;
		while (room < want)
			room *= 2;
		if (room > MBOX_MAX_HEADER_HOLD)
			room = MBOX_MAX_HEADER_HOLD;
		nh = realloc(e->hold, room);
		if (nh == NULL) {
			errno = ENOMEM;
			return -1;
		}
		e->hold = nh;
		e->hold_size = room;
	}
	memcpy(e->hold + e->hold_len, p, i);
	e->hold_len += i;
	*used_r = i;
	if (end)
		return release_hold(e);
	return 0;
}

void
mboxrd_init(struct mboxrd *e, mboxrd_out_fn *out, void *arg)
{
	memset(e, 0, sizeof *e);
	e->out = out;
	e->arg = arg;
}

void
mboxrd_free(struct mboxrd *e)
{
	if (e->digest != NULL)
		gnutls_hash_deinit(e->digest, NULL);
	e->digest = NULL;
	free(e->hold);
	e->hold = NULL;
	e->hold_size = e->hold_len = 0;
}

int
mboxrd_begin(struct mboxrd *e, time_t internaldate)
{
	unsigned char scratch[32];

	if (e->digest == NULL) {
		if (gnutls_hash_init(&e->digest, GNUTLS_DIG_SHA256) < 0) {
			e->digest = NULL;
			errno = ENOMEM;
			return -1;
		}
	} else if (e->digest_dirty)
		/* What a cancelled message fed it: outputting resets. */
		gnutls_hash_output(e->digest, scratch);
	e->digest_dirty = false;
	e->stage.len = 0;
	e->message_id_hash = 0;
	e->holding = true;
	e->date = internaldate;
	e->hold_len = 0;
	e->hold_line = MBOXRD_HL_START;
	e->cr = false;
	e->line_start = true;
	e->q_gt = 0;
	e->q_from = 0;
	e->any = false;
	e->last = 0;
	return 0;
}

int
mboxrd_write(struct mboxrd *e, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t used;

	if (e->holding && len > 0) {
		if (hold_append(e, p, len, &used) == -1)
			return -1;
		p += used;
		len -= used;
	}
	if (len == 0)
		return 0;
	return body_feed(e, p, len);
}

int
mboxrd_end(struct mboxrd *e)
{
	if (e->holding && release_hold(e) == -1)
		return -1;
	if (e->cr) {
		e->cr = false;
		if (quote_byte(e, '\r') == -1)
			return -1;
	}
	if (e->line_start && (e->q_gt > 0 || e->q_from > 0) &&
	    quote_flush(e) == -1)
		return -1;
	if (e->any && e->last != '\n' && emit(e, "\n", 1) == -1)
		return -1;
	if (emit(e, "\n", 1) == -1 || hashbuf_flush(&e->stage, e->digest) == -1)
		return -1;
	gnutls_hash_output(e->digest, e->entry_digest);
	e->digest_dirty = false;
	return 0;
}

void
mboxrd_cancel(struct mboxrd *e)
{
	e->holding = false;
	e->hold_len = 0;
}
