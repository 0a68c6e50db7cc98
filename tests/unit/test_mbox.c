/*
 * mbox writer: the mboxrd transformation (checked against a plain
 * whole-buffer model and literal expectations), chunking independence,
 * locking, and the commit/truncate-back protocol under injected failures.
 *
 * Run as "test_mbox --write-fixture DIR" it writes DIR/fixture.mbox, the
 * original messages DIR/msgN.eml and DIR/expected (index, sender, date) for
 * mbox_read.py to check with Python's mailbox module.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testdir.h"

#include "mbox/mbox.h"
#include "mbox/mboxrd.h"

/* Sun Nov  1 09:05:03 2026 and Sat Nov 21 09:05:03 2026 UTC */
#define DATE_SUN_NOV_1	((time_t)1793523903)
#define DATE_SAT_NOV_21	((time_t)1795251903)

static char tmpdir[64];

/* An in-memory file behind the sys ops, for the transformation tests. */
static struct {
	unsigned char	*buf;
	size_t		 len;
	size_t		 cap;
	size_t		 max_write;
} mem;

/* Failure injection for the real-file tests. */
static struct {
	long		 write_budget;	/* until ENOSPC; <0: any */
	size_t		 write_cap;	/* bytes per call; 0: any */
	bool		 eintr_toggle;	/* every other call EINTR */
	bool		 eintr_next;
	int		 fdatasync_errno;
	int		 ftruncate_errno;
	int		 fdatasync_calls;
} inj;

/* ---- helpers ---------------------------------------------------------- */

/* The append record the tests keep for the mbox at path: "<path>.record"
 * (the daemon keeps it in its state directory). */
static const char *
rec(const char *path)
{
	static char bufs[4][PATH_MAX + 16];
	static unsigned next;
	char *buf = bufs[next++ % 4];

	snprintf(buf, sizeof bufs[0], "%s.record", path);
	return buf;
}

static void
write_all(const char *path, const void *data, size_t len)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static ssize_t
mem_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	size_t end = (size_t)off + len;

	(void)fd;
	if (end > mem.cap) {
		size_t cap = mem.cap == 0 ? 65536 : mem.cap;

		while (cap < end)
			cap *= 2;
		mem.buf = realloc(mem.buf, cap);
		assert_non_null(mem.buf);
		mem.cap = cap;
	}
	if ((size_t)off > mem.len)
		memset(mem.buf + mem.len, 0, (size_t)off - mem.len);
	memcpy(mem.buf + off, buf, len);
	if (end > mem.len)
		mem.len = end;
	if (len > mem.max_write)
		mem.max_write = len;
	return (ssize_t)len;
}

static int
mem_fdatasync(int fd)
{
	(void)fd;
	return 0;
}

static int
mem_ftruncate(int fd, off_t len)
{
	(void)fd;
	if ((size_t)len < mem.len)
		mem.len = (size_t)len;
	return 0;
}

static const struct mbox_sys_ops mem_ops = {
	mem_pwrite, mem_fdatasync, mem_ftruncate
};

static ssize_t
inj_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (inj.eintr_toggle) {
		inj.eintr_next = !inj.eintr_next;
		if (inj.eintr_next) {
			errno = EINTR;
			return -1;
		}
	}
	if (inj.write_cap > 0 && len > inj.write_cap)
		len = inj.write_cap;
	if (inj.write_budget >= 0) {
		if (inj.write_budget == 0) {
			errno = ENOSPC;
			return -1;
		}
		if ((long)len > inj.write_budget)
			len = (size_t)inj.write_budget;
		inj.write_budget -= (long)len;
	}
	return pwrite(fd, buf, len, off);
}

static int
inj_fdatasync(int fd)
{
	inj.fdatasync_calls++;
	if (inj.fdatasync_errno != 0) {
		errno = inj.fdatasync_errno;
		return -1;
	}
	return fdatasync(fd);
}

static int
inj_ftruncate(int fd, off_t len)
{
	if (inj.ftruncate_errno != 0) {
		errno = inj.ftruncate_errno;
		return -1;
	}
	return ftruncate(fd, len);
}

static const struct mbox_sys_ops inj_ops = {
	inj_pwrite, inj_fdatasync, inj_ftruncate
};

static void
inj_reset(void)
{
	memset(&inj, 0, sizeof inj);
	inj.write_budget = -1;
}

/* The entry an mboxrd writer must produce, computed on the whole message. */
static unsigned char *
model_entry(const unsigned char *msg, size_t len, const char *sender,
    time_t date, size_t *out_len)
{
	char line[MBOX_FROM_LINE_MAX];
	unsigned char *lf, *out;
	size_t i, n = 0, o, start, k;

	lf = malloc(len + 1);
	assert_non_null(lf);
	for (i = 0; i < len; i++) {
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
			continue;
		lf[n++] = msg[i];
	}
	out = malloc(MBOX_FROM_LINE_MAX + 2 * n + 2);
	assert_non_null(out);
	o = mbox_from_line(line, sizeof line, sender, date);
	memcpy(out, line, o);
	for (start = 0; start < n; start = i) {
		for (i = start; i < n && lf[i] != '\n'; i++)
			;
		if (i < n)
			i++;
		for (k = start; k < i && lf[k] == '>'; k++)
			;
		if (i - k >= 5 && memcmp(lf + k, "From ", 5) == 0)
			out[o++] = '>';
		memcpy(out + o, lf + start, i - start);
		o += i - start;
	}
	if (n > 0 && lf[n - 1] != '\n')
		out[o++] = '\n';
	out[o++] = '\n';
	free(lf);
	*out_len = o;
	return out;
}

/* Opens an mbox whose writes land in mem. */
static struct mbox *
open_mem_mbox(void)
{
	char path[PATH_MAX], *error = NULL;
	struct mbox *m = NULL;

	testdir_path(path, sizeof path, tmpdir, "mem.mbox");
	mbox_set_sys_ops(&mem_ops);
	mem.len = 0;
	mem.max_write = 0;
	assert_int_equal(mbox_open(path, rec(path), 0, &m, &error),
	    MBOX_OPEN_OK);
	assert_null(error);
	return m;
}

static void
close_mem_mbox(struct mbox **m)
{
	mbox_close(m);
	mbox_set_sys_ops(NULL);
}

/* Writes msg cut at cuts[] (ascending) and returns the entry bytes. */
static unsigned char *
render(struct mbox *m, const void *msg, size_t len, time_t date,
    const size_t *cuts, size_t ncuts, size_t *out_len)
{
	const unsigned char *p = msg;
	unsigned char *out;
	size_t start = mem.len, prev = 0, i;
	uint64_t size;

	assert_int_equal(mbox_msg_begin(m, date), 0);
	for (i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		assert_int_equal(mbox_msg_write(m, p + prev, end - prev), 0);
		prev = end;
	}
	assert_int_equal(mbox_msg_end(m), 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	assert_int_equal(size, mem.len);
	*out_len = mem.len - start;
	out = malloc(*out_len + 1);
	assert_non_null(out);
	memcpy(out, mem.buf + start, *out_len);
	out[*out_len] = '\0';
	return out;
}

static unsigned char *
render_whole(struct mbox *m, const char *msg, size_t *out_len)
{
	return render(m, msg, strlen(msg), DATE_SUN_NOV_1, NULL, 0, out_len);
}

static void
assert_entry(struct mbox *m, const char *msg, size_t msg_len,
    const char *expected, size_t expected_len)
{
	unsigned char *out;
	size_t len;

	out = render(m, msg, msg_len, DATE_SUN_NOV_1, NULL, 0, &len);
	if (len != expected_len || memcmp(out, expected, len) != 0)
		fail_msg("entry mismatch:\n got: %s\nwant: %s", out, expected);
	free(out);
}

/* Both literals, NULs and all. */
#define ENTRY(m, msg, want) \
	assert_entry((m), (msg), sizeof(msg) - 1, (want), sizeof(want) - 1)

/* The sender in an entry's From_ line. */
static char *
entry_sender(const unsigned char *entry, size_t len)
{
	const unsigned char *sp;
	char *s;

	assert_true(len > 5 && memcmp(entry, "From ", 5) == 0);
	sp = memchr(entry + 5, ' ', len - 5);
	assert_non_null(sp);
	s = strndup((const char *)entry + 5, (size_t)(sp - entry - 5));
	assert_non_null(s);
	return s;
}

/* The DESIGN.md section 4 reverse: the server's bytes from an entry. */
static unsigned char *
reverse_entry(const unsigned char *e, size_t len, size_t *out_len)
{
	const unsigned char *nl, *body, *end, *line, *eol;
	unsigned char *out;
	size_t o = 0, k;

	nl = memchr(e, '\n', len);
	assert_non_null(nl);
	body = nl + 1;
	end = e + len;
	/* The final empty line. */
	assert_true(end > body && end[-1] == '\n');
	end--;
	out = malloc(2 * (size_t)(end - body) + 1);
	assert_non_null(out);
	for (line = body; line < end; line = eol) {
		eol = memchr(line, '\n', (size_t)(end - line));
		eol = eol == NULL ? end : eol + 1;
		for (k = 0; line + k < eol && line[k] == '>'; k++)
			;
		if (k > 0 && (size_t)(eol - line) - k >= 5 &&
		    memcmp(line + k, "From ", 5) == 0)
			line++;
		for (; line < eol; line++) {
			if (*line == '\n')
				out[o++] = '\r';
			out[o++] = *line;
		}
	}
	*out_len = o;
	return out;
}

/* ---- From_ line ---------------------------------------------------------- */

static void
test_from_line_dates(void **state)
{
	static const struct {
		time_t		 t;
		const char	*want;
	} cases[] = {
		{ 0, "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n" },
		{ DATE_SUN_NOV_1,
		    "From MAILER-DAEMON Sun Nov  1 09:05:03 2026\n" },
		{ DATE_SAT_NOV_21,
		    "From MAILER-DAEMON Sat Nov 21 09:05:03 2026\n" },
		{ 951868799, "From MAILER-DAEMON Tue Feb 29 23:59:59 2000\n" },
		{ 946598400, "From MAILER-DAEMON Fri Dec 31 00:00:00 1999\n" },
		{ 2147483648LL,
		    "From MAILER-DAEMON Tue Jan 19 03:14:08 2038\n" },
	};
	char buf[MBOX_FROM_LINE_MAX], want[128];
	struct tm tm;
	size_t i, n;
	time_t t;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		n = mbox_from_line(buf, sizeof buf, NULL, cases[i].t);
		assert_string_equal(buf, cases[i].want);
		assert_int_equal(n, strlen(cases[i].want));
	}
	/* asctime() itself, for many dates (the C locale is fixed). */
	for (i = 0; i < 2000; i++) {
		t = (time_t)(rng() % 4102444800ULL);
		assert_non_null(gmtime_r(&t, &tm));
		snprintf(want, sizeof want, "From MAILER-DAEMON %s",
		    asctime(&tm));
		mbox_from_line(buf, sizeof buf, NULL, t);
		assert_string_equal(buf, want);
	}
}

static void
test_from_line_sender(void **state)
{
	char buf[MBOX_FROM_LINE_MAX], small[20], longs[1000];
	size_t n;

	(void)state;
	mbox_from_line(buf, sizeof buf, "", 0);
	assert_string_equal(buf,
	    "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
	mbox_from_line(buf, sizeof buf, "<>", 0);
	assert_string_equal(buf,
	    "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n");
	mbox_from_line(buf, sizeof buf, "<alice@example.org>", 0);
	assert_string_equal(buf,
	    "From alice@example.org Thu Jan  1 00:00:00 1970\n");
	mbox_from_line(buf, sizeof buf, "bob@example.org", 0);
	assert_string_equal(buf,
	    "From bob@example.org Thu Jan  1 00:00:00 1970\n");
	mbox_from_line(buf, sizeof buf, "a b\tc\r\n\x7f" "d\xc3\xa9", 0);
	assert_string_equal(buf,
	    "From a_b_c___d\xc3\xa9 Thu Jan  1 00:00:00 1970\n");

	memset(longs, 'x', sizeof longs - 1);
	longs[sizeof longs - 1] = '\0';
	n = mbox_from_line(buf, sizeof buf, longs, 0);
	assert_int_equal(n, 5 + MBOX_MAX_SENDER + 26);
	assert_int_equal(strlen(buf), n);
	assert_int_equal(strspn(buf + 5, "x"), MBOX_MAX_SENDER);

	/* Too small a buffer: cut, NUL-terminated, full length returned. */
	n = mbox_from_line(small, sizeof small, "alice@example.org", 0);
	assert_int_equal(n, strlen("From alice@example.org "
	    "Thu Jan  1 00:00:00 1970\n"));
	assert_int_equal(strlen(small), sizeof small - 1);
	assert_memory_equal(small, "From alice@example.", sizeof small - 1);
}

/* ---- the transformation ----------------------------------------------- */

static void
test_return_path(void **state)
{
	static const struct {
		const char	*msg;
		const char	*sender;
	} cases[] = {
		{ "Return-Path: <alice@example.org>\r\nSubject: x\r\n\r\n"
		    "hi\r\n",
		    "alice@example.org" },
		{ "Subject: x\r\n\r\nhi\r\n", "MAILER-DAEMON" },
		{ "Return-Path: <>\r\nSubject: x\r\n\r\nhi\r\n",
		    "MAILER-DAEMON" },
		{ "Return-Path:\r\n <bob@example.org>\r\n\r\nhi\r\n",
		    "bob@example.org" },
		{ "Return-Path:\r\n\t<bob@example.org>\r\n  (comment)\r\n\r\n",
		    "bob@example.org" },
		{ "return-PATH:   carol@example.org  \nX: y\n\nbody\n",
		    "carol@example.org" },
		{ "Subject: x\r\nReturn-Path: <dave@example.org>\r\n\r\n",
		    "dave@example.org" },
		{ "Return-Path: <first@example.org>\r\n"
		  "Return-Path: <second@example.org>\r\n\r\n",
		    "first@example.org" },
		{ "Subject: x\r\n\r\nReturn-Path: <body@example.org>\r\n",
		    "MAILER-DAEMON" },
		{ "Subject: x\n\nReturn-Path: <body@example.org>\n",
		    "MAILER-DAEMON" },
		{ "X-Return-Path: <x@example.org>\r\n\r\n", "MAILER-DAEMON" },
		{ "Subject: Return-Path: <s@example.org>\r\n\r\n",
		    "MAILER-DAEMON" },
		{ "Return-Path: <a b@example.org>\r\n\r\n", "a_b@example.org" },
		{ "Return-Path: (bounce) <e@example.org>\r\n\r\n",
		    "e@example.org" },
		/* Header only, no blank line, no final newline. */
		{ "Return-Path: <f@example.org>", "f@example.org" },
		{ "", "MAILER-DAEMON" },
	};
	unsigned char *out;
	struct mbox *m;
	size_t i, len;
	char *sender;

	(void)state;
	m = open_mem_mbox();
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		out = render_whole(m, cases[i].msg, &len);
		sender = entry_sender(out, len);
		if (strcmp(sender, cases[i].sender) != 0)
			fail_msg("case %zu: sender %s, want %s", i, sender,
			    cases[i].sender);
		free(sender);
		free(out);
	}
	close_mem_mbox(&m);
}

/* A header of about total bytes, with Return-Path starting at the first
 * line boundary at or after rp_at, then a body. */
static char *
big_header(size_t total, size_t rp_at, size_t *len_r)
{
	static const char rp[] = "Return-Path: <big@example.org>\r\n";
	static const char fill[] = "X-Fill: 0123456789abcdefghijklmnopqrstu"
	    "vwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
	bool placed = false;
	size_t o = 0;
	char *h;

	h = malloc(total + 256);
	assert_non_null(h);
	while (o + sizeof fill - 1 < total) {
		if (!placed && o >= rp_at) {
			memcpy(h + o, rp, sizeof rp - 1);
			o += sizeof rp - 1;
			placed = true;
		}
		memcpy(h + o, fill, sizeof fill - 1);
		o += sizeof fill - 1;
	}
	if (!placed) {
		memcpy(h + o, rp, sizeof rp - 1);
		o += sizeof rp - 1;
	}
	memcpy(h + o, "\r\nFrom body\r\n", 13);
	o += 13;
	*len_r = o;
	return h;
}

static void
test_return_path_hold_limit(void **state)
{
	unsigned char *out, *want, *out2;
	size_t len, mlen, wlen, len2, cuts[3];
	struct mbox *m;
	char *msg, *sender;

	(void)state;
	m = open_mem_mbox();

	/* Found at the start of a header longer than the hold. */
	msg = big_header(MBOX_MAX_HEADER_HOLD + 5000, 0, &mlen);
	out = render(m, msg, mlen, 0, NULL, 0, &len);
	sender = entry_sender(out, len);
	assert_string_equal(sender, "big@example.org");
	want = model_entry((unsigned char *)msg, mlen, "big@example.org", 0,
	    &wlen);
	assert_int_equal(len, wlen);
	assert_memory_equal(out, want, len);
	free(want);
	free(sender);
	free(out);
	free(msg);

	/* Wholly inside the hold, near its end: found. */
	msg = big_header(MBOX_MAX_HEADER_HOLD + 5000,
	    MBOX_MAX_HEADER_HOLD - 200, &mlen);
	out = render(m, msg, mlen, 0, NULL, 0, &len);
	sender = entry_sender(out, len);
	assert_string_equal(sender, "big@example.org");
	free(sender);
	free(out);
	free(msg);

	/* Beyond the hold: not seen, and the output is still complete. */
	msg = big_header(MBOX_MAX_HEADER_HOLD + 5000, SIZE_MAX, &mlen);
	out = render(m, msg, mlen, 0, NULL, 0, &len);
	sender = entry_sender(out, len);
	assert_string_equal(sender, "MAILER-DAEMON");
	want = model_entry((unsigned char *)msg, mlen, NULL, 0, &wlen);
	assert_int_equal(len, wlen);
	assert_memory_equal(out, want, len);
	/* Cut around the hold limit: the same bytes. */
	cuts[0] = MBOX_MAX_HEADER_HOLD - 1;
	cuts[1] = MBOX_MAX_HEADER_HOLD;
	cuts[2] = MBOX_MAX_HEADER_HOLD + 1;
	out2 = render(m, msg, mlen, 0, cuts, 3, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(out2, out, len);
	free(out2);
	free(want);
	free(sender);
	free(out);
	free(msg);
	close_mem_mbox(&m);
}

static void
test_line_ends(void **state)
{
	struct mbox *m;

	(void)state;
	m = open_mem_mbox();
#define FL "From MAILER-DAEMON Sun Nov  1 09:05:03 2026\n"
	ENTRY(m, "a\r\nb\nc\rd\r\n", FL "a\nb\nc\rd\n\n");
	ENTRY(m, "x\r\r\ny\r\n", FL "x\r\ny\n\n");
	ENTRY(m, "x\r", FL "x\r\n\n");
	ENTRY(m, "\r\n\r\n", FL "\n\n\n");
	ENTRY(m, "\n\r", FL "\n\r\n\n");
	ENTRY(m, "\r", FL "\r\n\n");
	close_mem_mbox(&m);
}

static void
test_from_quoting(void **state)
{
	struct mbox *m;

	(void)state;
	m = open_mem_mbox();
	ENTRY(m, "From me\r\n", FL ">From me\n\n");
	ENTRY(m, "X: y\r\n\r\nFrom here\r\n>From there\r\n"
	    ">>From everywhere\r\n",
	    FL "X: y\n\n>From here\n>>From there\n>>>From everywhere\n\n");
	ENTRY(m, "From\r\nFrom:\r\nFromage\r\n",
	    FL "From\nFrom:\nFromage\n\n");
	ENTRY(m, "a From b\r\n> From c\r\n>>x From d\r\n",
	    FL "a From b\n> From c\n>>x From d\n\n");
	ENTRY(m, " From x\r\nfrom y\r\nFROM z\r\n",
	    FL " From x\nfrom y\nFROM z\n\n");
	ENTRY(m, "From ", FL ">From \n\n");
	ENTRY(m, ">>>", FL ">>>\n\n");
	ENTRY(m, ">>Fro", FL ">>Fro\n\n");
	ENTRY(m, "x\r\n>>From", FL "x\n>>From\n\n");
	/* A CR is an ordinary byte: no line break, no From line. */
	ENTRY(m, "x\rFrom y\r\n", FL "x\rFrom y\n\n");
	ENTRY(m, "From\r y\r\n", FL "From\r y\n\n");
	close_mem_mbox(&m);
}

static void
test_final_newline_and_bytes(void **state)
{
	struct mbox *m;

	(void)state;
	m = open_mem_mbox();
	ENTRY(m, "", FL "\n");
	ENTRY(m, "Subject: x\r\n\r\nno newline",
	    FL "Subject: x\n\nno newline\n\n");
	ENTRY(m, "\n", FL "\n\n");
	ENTRY(m, "\r\n", FL "\n\n");
	ENTRY(m, "A\0B\x80\xff\r\n\0From x\r\n\xc3\xa9t\xc3\xa9",
	    FL "A\0B\x80\xff\n\0From x\n\xc3\xa9t\xc3\xa9\n\n");
	close_mem_mbox(&m);
}

struct lit {
	const char	*s;
	size_t		 len;
};
#define LIT(x) { (x), sizeof(x) - 1 }

static const struct lit tricky[] = {
	LIT("Return-Path: <t@example.org>\r\nSubject: x\r\n\r\nFrom a\r\n"
	    ">From b\r\n>>>From c\r\n\r\nFrom\r\nFr\r\n>\r\n"),
	LIT("Return-Path:\r\n <folded@example.org>\r\nX: 1\r\n\r\r\n\r\n"
	    "body\rFrom\r\n"),
	LIT("From the start\r\n\r\n>>>>>>>>>>>>>>>>>>>>>>>>>>>>From deep\r\n"),
	LIT("\r\n\r\nFrom \r\nFrom \r\n"),
	LIT("X: y\n\nlf only\nFrom x\n>From y\n"),
	LIT("no header, ends in CR\r"),
	LIT("no header, ends in >>Fro"),
	LIT("\r\r\r\n\n\r\nFrom\r\n \r\n"),
	LIT(""),
	LIT("X: \x80\0\xff\r\n\r\n\0From \0\r\n"),
};

static void
test_chunking_every_split(void **state)
{
	unsigned char *whole, *out, *want;
	size_t len, wlen, olen, i, cut, ncuts, *cuts, k;
	const char *msg;
	struct mbox *m;
	char *sender;

	(void)state;
	m = open_mem_mbox();
	for (i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
		msg = tricky[i].s;
		len = tricky[i].len;
		whole = render(m, msg, len, DATE_SAT_NOV_21, NULL, 0,
		    &wlen);
		sender = entry_sender(whole, wlen);
		want = model_entry((const unsigned char *)msg, len,
		    strcmp(sender, "MAILER-DAEMON") == 0 ? NULL : sender,
		    DATE_SAT_NOV_21, &olen);
		assert_int_equal(olen, wlen);
		assert_memory_equal(want, whole, wlen);
		free(want);
		free(sender);

		/* Every single split point, then two splits. */
		for (cut = 0; cut <= len; cut++) {
			out = render(m, msg, len, DATE_SAT_NOV_21, &cut,
			    1, &olen);
			assert_int_equal(olen, wlen);
			assert_memory_equal(out, whole, wlen);
			free(out);
		}
		for (cut = 0; cut + 2 <= len; cut++) {
			size_t two[2] = { cut, cut + 2 };

			out = render(m, msg, len, DATE_SAT_NOV_21, two,
			    2, &olen);
			assert_memory_equal(out, whole, wlen);
			free(out);
		}
		/* A byte at a time. */
		cuts = malloc((len + 1) * sizeof *cuts);
		assert_non_null(cuts);
		for (cut = 0; cut < len; cut++)
			cuts[cut] = cut;
		out = render(m, msg, len, DATE_SAT_NOV_21, cuts, len,
		    &olen);
		assert_int_equal(olen, wlen);
		assert_memory_equal(out, whole, wlen);
		free(out);
		/* Random chunkings. */
		for (k = 0; k < 50; k++) {
			ncuts = 0;
			for (cut = 0; cut < len; cut++)
				if (rng() % 4 == 0)
					cuts[ncuts++] = cut;
			out = render(m, msg, len, DATE_SAT_NOV_21, cuts,
			    ncuts, &olen);
			assert_int_equal(olen, wlen);
			assert_memory_equal(out, whole, wlen);
			free(out);
		}
		free(cuts);
		free(whole);
	}
	close_mem_mbox(&m);
}

/* Where the encoder alone writes: memory, refusing once cap is reached. */
struct enc_sink {
	unsigned char buf[4096];
	size_t len;
	size_t cap;		/* refuse a write that would pass it */
	unsigned calls_after_refusal;
	bool refused;
};

static int
enc_sink_out(void *arg, const void *data, size_t len)
{
	struct enc_sink *k = arg;

	if (k->refused)
		k->calls_after_refusal++;
	if (k->len + len > k->cap) {
		k->refused = true;
		return -1;
	}
	memcpy(k->buf + k->len, data, len);
	k->len += len;
	return 0;
}

/* Encodes msg (whole, or a byte at a time) into k, which takes cap bytes;
 * mboxrd_write()'s or mboxrd_end()'s result. */
static int
encode(struct enc_sink *k, size_t cap, const char *msg, size_t len,
    bool bytewise)
{
	struct mboxrd e;
	size_t step = bytewise ? 1 : len;
	int r = 0;

	memset(k, 0, sizeof *k);
	k->cap = cap;
	mboxrd_init(&e, enc_sink_out, k);
	mboxrd_begin(&e, DATE_SAT_NOV_21);
	for (size_t b = 0; r == 0 && b < len; b += step)
		r = mboxrd_write(&e, msg + b, step);
	if (r == 0)
		r = mboxrd_end(&e);
	mboxrd_free(&e);
	return r;
}

/*
 * The encoder without a file: the same entry as the model for every tricky
 * message fed in one piece and a byte at a time, and an output that refuses
 * stops it at once, whatever byte it refuses at.
 */
static void
test_mboxrd_encoder_alone(void **state)
{
	static const char msg[] = "Return-Path: <a@b.example>\r\n"
	    "Subject: x\r\n\r\nFrom here\r\n>From there\r\nend";
	struct enc_sink sink;
	unsigned char *want, *got_lf, *want_lf;
	size_t i, wlen, cut;

	(void)state;
	for (i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
		want = model_entry((const unsigned char *)tricky[i].s,
		    tricky[i].len, NULL, DATE_SAT_NOV_21, &wlen);
		want_lf = memchr(want, '\n', wlen);
		assert_non_null(want_lf);
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			assert_int_equal(encode(&sink, sizeof sink.buf,
			    tricky[i].s, tricky[i].len, bytewise), 0);
			/* The model names no sender: compare past the From_
			 * lines. */
			assert_true(sink.len >= 5 && memcmp(sink.buf, "From ",
			    5) == 0);
			got_lf = memchr(sink.buf, '\n', sink.len);
			assert_non_null(got_lf);
			assert_int_equal(sink.buf + sink.len - got_lf,
			    want + wlen - want_lf);
			assert_memory_equal(got_lf, want_lf,
			    (size_t)(want + wlen - want_lf));
		}
		free(want);
	}

	want = model_entry((const unsigned char *)msg, sizeof msg - 1,
	    "a@b.example", DATE_SAT_NOV_21, &wlen);
	for (cut = 0; cut < wlen; cut++) {
		assert_int_equal(encode(&sink, cut, msg, sizeof msg - 1,
		    cut % 2 == 1), -1);
		assert_true(sink.refused);
		assert_int_equal(sink.calls_after_refusal, 0);
		assert_memory_equal(sink.buf, want, sink.len);
	}
	/* With room for all of it: the model's entry, sender included. */
	assert_int_equal(encode(&sink, sizeof sink.buf, msg, sizeof msg - 1,
	    false), 0);
	assert_int_equal(sink.len, wlen);
	assert_memory_equal(sink.buf, want, wlen);
	free(want);
}

/* Random messages over the bytes that matter, random chunkings, against the
 * whole-buffer model. */
static void
test_random_messages(void **state)
{
	static const char alphabet[] = "\r\n>From xR";
	unsigned char msg[300], *out, *want;
	size_t len, olen, wlen, cuts[300], ncuts, i, k;
	struct mbox *m;

	(void)state;
	m = open_mem_mbox();
	for (k = 0; k < 3000; k++) {
		len = (size_t)(rng() % sizeof msg);
		for (i = 0; i < len; i++)
			msg[i] = (unsigned char)alphabet[rng() %
			    (sizeof alphabet - 1)];
		/* Keep clear of the header rule: a first line without
		 * Return-Path and a blank line make no difference, the
		 * model uses MAILER-DAEMON. */
		ncuts = 0;
		for (i = 0; i < len; i++)
			if (rng() % 3 == 0)
				cuts[ncuts++] = i;
		out = render(m, msg, len, (time_t)k, cuts, ncuts, &olen);
		want = model_entry(msg, len, NULL, (time_t)k, &wlen);
		assert_int_equal(olen, wlen);
		assert_memory_equal(out, want, wlen);
		free(want);
		free(out);
	}
	close_mem_mbox(&m);
}

static void
test_reverse_gives_original(void **state)
{
	static const struct lit msgs[] = {
		LIT("Return-Path: <r@example.org>\r\nSubject: x\r\n\r\n"
		    "From a\r\n>From b\r\n>>From c\r\nFrom\r\n\r\n"),
		LIT("Subject: y\r\n\r\n>>>>From deep\r\n\r\n\r\n"),
		LIT("\r\n"),
		LIT(""),
		LIT("X: \x80\0\xff\r\n\r\n\0From \0\r\nFrom "),
	};
	unsigned char *out, *back;
	size_t i, len, olen, blen;
	struct mbox *m;

	(void)state;
	m = open_mem_mbox();
	for (i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
		len = msgs[i].len;
		out = render(m, msgs[i].s, len, DATE_SUN_NOV_1, NULL, 0, &olen);
		back = reverse_entry(out, olen, &blen);
		if (len > 0 && msgs[i].s[len - 1] != '\n') {
			/* No final newline: reading adds the CRLF. */
			assert_int_equal(blen, len + 2);
			assert_memory_equal(back + len, "\r\n", 2);
		} else
			assert_int_equal(blen, len);
		assert_memory_equal(back, msgs[i].s, len);
		free(back);
		free(out);
	}
	close_mem_mbox(&m);
}

/* ---- a big message, streamed ------------------------------------------ */

static const char big_in[] = "From line of a big message, quoted\r\n";
static const char big_out[] = ">From line of a big message, quoted\n";
static struct {
	uint64_t	 body;		/* quoted body bytes expected */
	uint64_t	 pos;		/* output bytes checked */
	size_t		 max_write;
	bool		 bad;
} big;

static ssize_t
big_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	static const char head[] = "From MAILER-DAEMON Sun Nov  1 09:05:03 "
	    "2026\nSubject: big\n\n";
	const unsigned char *p = buf;
	size_t i, hl = sizeof head - 1;
	uint64_t at;

	(void)fd;
	if ((uint64_t)off != big.pos)
		big.bad = true;
	if (len > big.max_write)
		big.max_write = len;
	for (i = 0; i < len; i++) {
		at = big.pos + i;
		if (at < hl) {
			if (p[i] != (unsigned char)head[at])
				big.bad = true;
		} else if (at - hl < big.body) {
			if (p[i] != (unsigned char)big_out[(at - hl) %
			    (sizeof big_out - 1)])
				big.bad = true;
		} else if (at - hl > big.body || p[i] != '\n')
			big.bad = true;
	}
	big.pos += len;
	return (ssize_t)len;
}

static void
test_big_message(void **state)
{
	static const struct mbox_sys_ops big_ops = {
		big_pwrite, mem_fdatasync, mem_ftruncate
	};
	const size_t lines = 50u * 1024 * 1024 / (sizeof big_in - 1);
	char path[PATH_MAX], *error = NULL, *chunk;
	size_t i, n, clen, pos, total;
	struct mbox *m = NULL;
	uint64_t size;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "big.mbox");
	memset(&big, 0, sizeof big);
	big.body = lines * (sizeof big_out - 1);
	mbox_set_sys_ops(&big_ops);
	assert_int_equal(mbox_open(path, rec(path), 0, &m, &error),
	    MBOX_OPEN_OK);
	assert_int_equal(mbox_msg_begin(m, DATE_SUN_NOV_1), 0);
	assert_int_equal(mbox_msg_write(m, "Subject: big\r\n\r\n", 16), 0);

	/* Odd-sized chunks, so lines and CRLFs straddle them. */
	clen = 65521;
	chunk = malloc(clen * 2);
	assert_non_null(chunk);
	total = lines * (sizeof big_in - 1);
	for (pos = 0; pos < total; pos += n) {
		n = total - pos < clen ? total - pos : clen;
		for (i = 0; i < n; i++)
			chunk[i] = big_in[(pos + i) % (sizeof big_in - 1)];
		assert_int_equal(mbox_msg_write(m, chunk, n), 0);
	}
	assert_int_equal(mbox_msg_end(m), 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	free(chunk);
	mbox_close(&m);
	mbox_set_sys_ops(NULL);

	assert_false(big.bad);
	assert_int_equal(size, big.pos);
	/* From_ line, header, lines with one more byte, the empty line. */
	assert_int_equal(size, 44 + 14 + lines * (sizeof big_out - 1) + 1);
	/* Never more than the buffer at once: memory stays bounded. */
	assert_true(big.max_write <= MBOX_WRITE_BUFFER);
	assert_true(big.max_write > 0);
}

/* ---- files: commit, recovery, refusal, locks --------------------------- */

static const char msg1[] = "Return-Path: <one@example.org>\r\nSubject: 1\r\n"
    "\r\nFrom the first message\r\n";
static const char msg2[] = "Subject: 2\r\n\r\nsecond\r\n";

static void
append(struct mbox *m, const char *msg, time_t date)
{
	assert_int_equal(mbox_msg_begin(m, date), 0);
	assert_int_equal(mbox_msg_write(m, msg, strlen(msg)), 0);
	assert_int_equal(mbox_msg_end(m), 0);
}

static struct mbox *
must_open(const char *path, uint64_t committed, enum mbox_open_result want)
{
	struct mbox *m = NULL;
	char *error = NULL;
	enum mbox_open_result r;

	r = mbox_open(path, rec(path), committed, &m, &error);
	if (r != want)
		fail_msg("mbox_open %s: %d, want %d (%s)", path, r, want,
		    error != NULL ? error : "no error");
	assert_null(error);
	assert_non_null(m);
	return m;
}

static char *
must_fail_open(const char *path, uint64_t committed)
{
	struct mbox *m = NULL;
	char *error = NULL;

	assert_int_equal(mbox_open(path, rec(path), committed, &m, &error),
	    MBOX_OPEN_FAILED);
	assert_null(m);
	assert_non_null(error);
	/* Every error names the file. */
	assert_non_null(strstr(error, path));
	return error;
}

static void
test_commit_and_uncommitted_close(void **state)
{
	char path[PATH_MAX], lock[PATH_MAX + 8];
	unsigned char *data;
	uint64_t size1, size2;
	struct stat st;
	struct mbox *m;
	size_t len;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "commit.mbox");
	snprintf(lock, sizeof lock, "%s.lock", path);
	m = must_open(path, 0, MBOX_OPEN_OK);
	assert_int_equal(lstat(lock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	append(m, msg1, DATE_SUN_NOV_1);
	assert_int_equal(mbox_commit(m, &size1), 0);
	assert_int_equal(size1, testdir_size(path));
	assert_int_equal(mbox_committed_size(m), size1);
	/* A commit with nothing new is fine and changes nothing. */
	assert_int_equal(mbox_commit(m, &size2), 0);
	assert_int_equal(size2, size1);

	/* Uncommitted, and big enough to have reached the file. */
	assert_int_equal(mbox_msg_begin(m, DATE_SUN_NOV_1), 0);
	for (len = 0; len < 2 * MBOX_WRITE_BUFFER; len += 20)
		assert_int_equal(mbox_msg_write(m, "0123456789abcdefghi\n",
		    20), 0);
	assert_int_equal(mbox_msg_end(m), 0);
	assert_true(testdir_size(path) > size1);
	mbox_close(&m);
	assert_null(m);
	assert_int_equal(testdir_size(path), size1);
	/* Locks released: the dotlock is gone. */
	assert_int_equal(lstat(lock, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* The file holds exactly the committed entry. */
	data = testdir_read(path, &len);
	assert_int_equal(len, size1);
	assert_memory_equal(data, "From one@example.org Sun Nov  1 09:05:03 "
	    "2026\nReturn-Path: <one@example.org>\nSubject: 1\n\n"
	    ">From the first message\n\n", len);
	free(data);

	/* And it is 0600. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void
test_rollback(void **state)
{
	char path[PATH_MAX];
	uint64_t size;
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "rollback.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	append(m, msg2, 0);
	assert_int_equal(mbox_msg_begin(m, 0), 0);
	assert_int_equal(mbox_msg_write(m, "half", 4), 0);
	assert_int_equal(mbox_rollback(m), 0);
	assert_int_equal(testdir_size(path), size);
	/* Usable again. */
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, NULL), 0);
	assert_true(testdir_size(path) > size);
	assert_int_equal(mbox_committed_size(m), testdir_size(path));
	mbox_close(&m);
}

static void
test_misuse(void **state)
{
	char path[PATH_MAX];
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "misuse.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	assert_int_equal(mbox_msg_write(m, "x", 1), -1);
	assert_non_null(strstr(mbox_error(m), path));
	assert_int_equal(mbox_msg_end(m), -1);
	assert_int_equal(mbox_msg_begin(m, 0), 0);
	assert_int_equal(mbox_msg_begin(m, 0), -1);
	assert_int_equal(mbox_commit(m, NULL), -1);
	assert_non_null(strstr(mbox_error(m), "message open"));
	assert_int_equal(mbox_msg_end(m), 0);
	assert_int_equal(mbox_commit(m, NULL), 0);
	mbox_close(&m);
	mbox_close(&m);		/* NULL is fine */
}

enum crash_point {
	CRASH_MID_ENTRY,	/* part of a big message written, no commit */
	CRASH_AFTER_COMMIT,	/* committed, but the caller never recorded it */
};

/*
 * A run killed as by kill -9: a child opens path at committed, appends and
 * dies without closing (its locks go with it; its dotlock names a dead
 * process).  Returns the file's size afterwards, always past committed.
 */
static uint64_t
crash_run(const char *path, uint64_t committed, enum crash_point at)
{
	char chunk[4096], *error = NULL;
	struct mbox *m = NULL;
	int status, ok = 1;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (mbox_open(path, rec(path), committed, &m, &error) ==
		    MBOX_OPEN_FAILED)
			_exit(1);
		if (at == CRASH_AFTER_COMMIT) {
			ok = mbox_msg_begin(m, DATE_SUN_NOV_1) == 0 &&
			    mbox_msg_write(m, msg1, strlen(msg1)) == 0 &&
			    mbox_msg_end(m) == 0 &&
			    mbox_msg_begin(m, DATE_SAT_NOV_21) == 0 &&
			    mbox_msg_write(m, msg2, strlen(msg2)) == 0 &&
			    mbox_msg_end(m) == 0 && mbox_commit(m, NULL) == 0;
			_exit(ok ? 0 : 1);
		}
		memset(chunk, 'z', sizeof chunk);
		chunk[sizeof chunk - 1] = '\n';
		ok = mbox_msg_begin(m, DATE_SUN_NOV_1) == 0 &&
		    mbox_msg_write(m, "Subject: big\r\n\r\n", 16) == 0;
		/* Past the write buffer: some of it reaches the file. */
		for (size_t n = 0; ok && n < MBOX_WRITE_BUFFER + 3000;
		    n += sizeof chunk)
			ok = mbox_msg_write(m, chunk, sizeof chunk) == 0;
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(testdir_size(path) > committed);
	return testdir_size(path);
}

/* Appends data at the end of path as a mail reader does (under its fcntl
 * lock, which must be free). */
static void
reader_append(const char *path, const char *data)
{
	struct flock fl;
	int fd;

	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	assert_int_equal(fcntl(fd, F_SETLK, &fl), 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(close(fd), 0);
}

/* The "<path>.cut-*" files beside path: how many, and the last one's
 * name into found (if any). */
static int
cut_files(const char *path, char *found, size_t size)
{
	char dir[PATH_MAX], prefix[PATH_MAX];
	const char *base = strrchr(path, '/') + 1;
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof dir, "%.*s", (int)(base - 1 - path), path);
	snprintf(prefix, sizeof prefix, "%s.cut-", base);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		n++;
		if (found != NULL)
			snprintf(found, size, "%s/%s", dir, de->d_name);
	}
	closedir(d);
	return n;
}

/* A killed run's leftover is cut, wherever the kill fell: mid-entry, or
 * after a commit the caller never recorded; nothing is saved aside. */
static void
test_reopen_truncates_leftover(void **state)
{
	char path[PATH_MAX];
	unsigned char *before, *after;
	size_t blen, alen;
	uint64_t size;
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "leftover.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);
	before = testdir_read(path, &blen);

	for (int at = CRASH_MID_ENTRY; at <= CRASH_AFTER_COMMIT; at++) {
		crash_run(path, size, (enum crash_point)at);
		m = must_open(path, size, MBOX_OPEN_TRUNCATED);
		assert_null(mbox_cut_path(m));
		assert_int_equal(testdir_size(path), size);
		assert_int_equal(mbox_committed_size(m), size);
		mbox_close(&m);
	}
	/* Killed before anything reached the file: nothing to cut. */
	m = must_open(path, size, MBOX_OPEN_OK);
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, NULL), 0);
	mbox_close(&m);
	after = testdir_read(path, &alen);
	assert_memory_equal(after, before, blen);
	assert_memory_equal(after + blen, "From MAILER-DAEMON", 18);
	assert_int_equal(cut_files(path, NULL, 0), 0);
	free(before);
	free(after);
}

/* A power cut inside an append can leave only its first bytes, "F" or
 * "Fr": ours to cut too.  The same bytes after a run that closed are
 * someone else's, and stay. */
static void
test_short_leftover_truncated(void **state)
{
	static const size_t keep[] = { 1, 2, 5 };
	char path[PATH_MAX];
	uint64_t size;
	struct mbox *m;
	int fd;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "short-leftover.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);
	for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
		crash_run(path, size, CRASH_AFTER_COMMIT);
		assert_int_equal(truncate(path, (off_t)(size + keep[i])), 0);
		m = must_open(path, size, MBOX_OPEN_TRUNCATED);
		assert_null(mbox_cut_path(m));
		mbox_close(&m);
		assert_int_equal(testdir_size(path), size);
	}
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Fr", 2), 2);
	close(fd);
	m = must_open(path, size, MBOX_OPEN_CHANGED);
	mbox_close(&m);
	assert_int_equal(testdir_size(path), size + 2);
}

static const char reader_entry[] = "From reader@example.org Mon Jan  1 "
    "00:00:00 2024\nSubject: saved by a reader\n\n>From a reader.\n\n";

/* A mail reader appended a whole message between two runs: kept, and ours
 * go after it. */
static void
test_reader_append_kept(void **state)
{
	char path[PATH_MAX];
	unsigned char *before, *after;
	size_t blen, alen, rlen = sizeof reader_entry - 1;
	uint64_t size, size2;
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "reader.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);
	before = testdir_read(path, &blen);

	reader_append(path, reader_entry);
	m = must_open(path, size, MBOX_OPEN_CHANGED);
	assert_null(mbox_cut_path(m));
	assert_int_equal(mbox_committed_size(m), size + rlen);
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, &size2), 0);
	mbox_close(&m);

	after = testdir_read(path, &alen);
	assert_int_equal(alen, size2);
	assert_memory_equal(after, before, blen);
	assert_memory_equal(after + blen, reader_entry, rlen);
	assert_memory_equal(after + blen + rlen, "From MAILER-DAEMON", 18);
	/* The caller recorded size2: the next open finds nothing to do. */
	m = must_open(path, size2, MBOX_OPEN_OK);
	mbox_close(&m);
	assert_int_equal(cut_files(path, NULL, 0), 0);
	free(before);
	free(after);
}

/*
 * Killed, and then a reader appended before the next run: our leftover
 * goes (exactly once), the reader's message is saved aside whole, never
 * lost.  The same when the caller did not record our last commit.
 */
static void
test_reader_append_after_crash_saved(void **state)
{
	char path[PATH_MAX], cut[PATH_MAX + 64];
	unsigned char *before, *data;
	size_t blen, len, rlen = sizeof reader_entry - 1;
	uint64_t size, size2;
	struct stat st;
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "crash-reader.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);
	before = testdir_read(path, &blen);

	for (int at = CRASH_MID_ENTRY; at <= CRASH_AFTER_COMMIT; at++) {
		crash_run(path, size, (enum crash_point)at);
		reader_append(path, reader_entry);
		m = must_open(path, size, MBOX_OPEN_TRUNCATED);
		assert_non_null(mbox_cut_path(m));
		snprintf(cut, sizeof cut, "%s", mbox_cut_path(m));
		mbox_close(&m);
		data = testdir_read(path, &len);
		assert_int_equal(len, blen);
		assert_memory_equal(data, before, blen);
		free(data);
		assert_int_equal(cut_files(path, NULL, 0), at + 1);
		assert_int_equal(strncmp(cut, path, strlen(path)), 0);
		assert_int_equal(strncmp(cut + strlen(path), ".cut-", 5), 0);
		data = testdir_read(cut, &len);
		assert_int_equal(len, rlen);
		assert_memory_equal(data, reader_entry, rlen);
		free(data);
		assert_int_equal(stat(cut, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
	}

	/* Our run closed, but the caller failed to record its commit. */
	m = must_open(path, size, MBOX_OPEN_OK);
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, &size2), 0);
	mbox_close(&m);
	reader_append(path, reader_entry);
	m = must_open(path, size, MBOX_OPEN_TRUNCATED);
	assert_non_null(mbox_cut_path(m));
	data = testdir_read(mbox_cut_path(m), &len);
	assert_int_equal(len, rlen);
	assert_memory_equal(data, reader_entry, rlen);
	free(data);
	mbox_close(&m);
	assert_int_equal(testdir_size(path), size);
	free(before);
}

/*
 * A record that cannot be read (or a killed run whose tail does not start
 * like our entries: the file was rewritten since): the whole tail is cut
 * and saved aside.  A record about another file (the mbox was replaced) is
 * no record: the tail is the new file's own.
 */
static void
test_record_doubtful(void **state)
{
	static const char tail[] = "From someone Mon Jan  1 00:00:00 2024\n\nx\n\n";
	char path[PATH_MAX], cut[PATH_MAX + 64];
	unsigned char *data;
	uint64_t size;
	struct mbox *m;
	size_t len;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "doubt.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);

	/* Garbled. */
	write_all(rec(path), "mboxmirror-append 1 op", 22);
	reader_append(path, tail);
	m = must_open(path, size, MBOX_OPEN_TRUNCATED);
	assert_non_null(mbox_cut_path(m));
	snprintf(cut, sizeof cut, "%s", mbox_cut_path(m));
	mbox_close(&m);
	data = testdir_read(cut, &len);
	assert_int_equal(len, sizeof tail - 1);
	assert_memory_equal(data, tail, len);
	free(data);
	assert_int_equal(testdir_size(path), size);

	/* Killed, then rewritten: the bytes at the committed size are not
	 * the start of an entry of ours. */
	crash_run(path, size, CRASH_MID_ENTRY);
	data = testdir_read(path, &len);
	data[size] = 'X';
	write_all(path, data, len);	/* in place: the same file */
	m = must_open(path, size, MBOX_OPEN_TRUNCATED);
	assert_non_null(mbox_cut_path(m));
	mbox_close(&m);
	assert_int_equal(cut_files(path, NULL, 0), 2);
	free(data);

	/* Killed, then the file was replaced by another one (the old one
	 * kept, as the mirror keeps one aside after a UIDVALIDITY change). */
	crash_run(path, size, CRASH_AFTER_COMMIT);
	data = testdir_read(path, &len);
	snprintf(cut, sizeof cut, "%s.old", path);
	assert_int_equal(rename(path, cut), 0);
	write_all(path, data, len);
	m = must_open(path, size, MBOX_OPEN_CHANGED);
	assert_null(mbox_cut_path(m));
	assert_int_equal(mbox_committed_size(m), len);
	mbox_close(&m);
	free(data);

	/* A record that is not a regular file is an error. */
	assert_int_equal(unlink(rec(path)), 0);
	assert_int_equal(mkfifo(rec(path), 0600), 0);
	alarm(20);
	free(must_fail_open(path, len));
	alarm(0);
	assert_int_equal(unlink(rec(path)), 0);
}

/* Longer, but not by an append of ours: a reader rewrote it. */
static void
test_reopen_rewritten(void **state)
{
	static const char rewritten[] = "From one@example.org Thu Jan  1 "
	    "00:00:00 1970\nReturn-Path: <one@example.org>\nStatus: RO\n"
	    "X-Status: A\nSubject: 1\n\n>From the first message\n\n";
	char path[PATH_MAX];
	unsigned char *data;
	uint64_t size, size2;
	struct mbox *m;
	size_t len;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "rewritten.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);
	write_all(path, rewritten, sizeof rewritten - 1);
	assert_true(sizeof rewritten - 1 > size);

	m = must_open(path, size, MBOX_OPEN_CHANGED);
	assert_int_equal(mbox_committed_size(m), sizeof rewritten - 1);
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, &size2), 0);
	mbox_close(&m);
	data = testdir_read(path, &len);
	assert_int_equal(len, size2);
	assert_memory_equal(data, rewritten, sizeof rewritten - 1);
	assert_memory_equal(data + sizeof rewritten - 1, "From MAILER-DAEMON",
	    18);
	free(data);

	/* A leftover after foreign bytes starts with the padding LFs. */
	write_all(path, "foreign", 7);
	m = must_open(path, MBOX_SIZE_UNKNOWN, MBOX_OPEN_OK);
	assert_int_equal(mbox_msg_begin(m, 0), 0);
	assert_int_equal(mbox_msg_write(m, "x", 1), 0);
	assert_int_equal(mbox_msg_end(m), 0);
	assert_int_equal(mbox_commit(m, NULL), 0);
	mbox_close(&m);
	assert_int_equal(testdir_size(path), 7 + 2 + 44 + 3);
	m = must_open(path, 7, MBOX_OPEN_TRUNCATED);
	mbox_close(&m);
	assert_int_equal(testdir_size(path), 7);
}

static void
test_reopen_shorter(void **state)
{
	static const char human[] = "From x Thu Jan  1 00:00:00 1970\nhi\n";
	char path[PATH_MAX];
	unsigned char *data;
	uint64_t size;
	struct mbox *m;
	size_t len;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "shorter.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);

	/* Someone cut it: nothing more is lost, appends go at its end. */
	assert_int_equal(truncate(path, 10), 0);
	m = must_open(path, size, MBOX_OPEN_SHORTER);
	assert_int_equal(mbox_committed_size(m), 10);
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);
	data = testdir_read(path, &len);
	assert_int_equal(len, size);
	/* The foreign tail gets LFs so ours starts an entry of its own. */
	assert_memory_equal(data, "From one@e\n\nFrom MAILER-DAEMON", 30);
	free(data);

	/* An unknown committed size never truncates. */
	write_all(path, human, sizeof human - 1);
	m = must_open(path, MBOX_SIZE_UNKNOWN, MBOX_OPEN_OK);
	assert_int_equal(mbox_committed_size(m), sizeof human - 1);
	/* Rolled back: no LF is added either. */
	append(m, msg2, 0);
	mbox_close(&m);
	assert_int_equal(testdir_size(path), sizeof human - 1);
	m = must_open(path, MBOX_SIZE_UNKNOWN, MBOX_OPEN_OK);
	append(m, msg2, 0);
	assert_int_equal(mbox_rollback(m), 0);
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	mbox_close(&m);
	data = testdir_read(path, &len);
	assert_int_equal(len, size);
	assert_memory_equal(data, human, sizeof human - 1);
	assert_memory_equal(data + sizeof human - 1, "\nFrom MAILER-DAEMON",
	    19);
	free(data);
}

static void
test_refusals(void **state)
{
	char path[PATH_MAX], target[PATH_MAX], link2[PATH_MAX];
	char *error;
	struct mbox *m;

	(void)state;
	/* A symlink, to a file and dangling. */
	testdir_path(target, sizeof target, tmpdir, "target.mbox");
	write_all(target, "", 0);
	testdir_path(path, sizeof path, tmpdir, "symlink.mbox");
	assert_int_equal(symlink(target, path), 0);
	error = must_fail_open(path, 0);
	assert_non_null(strstr(error, "symbolic link"));
	free(error);
	testdir_path(path, sizeof path, tmpdir, "dangling.mbox");
	assert_int_equal(symlink("/nonexistent/x", path), 0);
	error = must_fail_open(path, 0);
	free(error);
	assert_int_equal(access("/nonexistent/x", F_OK), -1);

	/* Two links. */
	testdir_path(link2, sizeof link2, tmpdir, "hardlink.mbox");
	assert_int_equal(link(target, link2), 0);
	error = must_fail_open(link2, 0);
	assert_non_null(strstr(error, "2 links"));
	free(error);
	error = must_fail_open(target, 0);
	free(error);
	assert_int_equal(unlink(link2), 0);
	m = must_open(target, 0, MBOX_OPEN_OK);
	mbox_close(&m);

	/* Not a regular file. */
	testdir_path(path, sizeof path, tmpdir, "fifo.mbox");
	assert_int_equal(mkfifo(path, 0600), 0);
	error = must_fail_open(path, 0);
	assert_non_null(strstr(error, "not a regular file"));
	free(error);
	testdir_path(path, sizeof path, tmpdir, "dir.mbox");
	assert_int_equal(mkdir(path, 0700), 0);
	error = must_fail_open(path, 0);
	free(error);

	/* A missing parent directory. */
	testdir_path(path, sizeof path, tmpdir, "nodir/x.mbox");
	error = must_fail_open(path, 0);
	assert_non_null(strstr(error, strerror(ENOENT)));
	free(error);
}

static void
test_mode_under_umask(void **state)
{
	char path[PATH_MAX];
	struct stat st;
	struct mbox *m;
	mode_t old;

	(void)state;
	old = umask(0);
	testdir_path(path, sizeof path, tmpdir, "mode.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	mbox_close(&m);
}

static void
test_lock_same_process(void **state)
{
	char path[PATH_MAX], *error;
	struct timespec t0, t1;
	struct mbox *m, *m2;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "locked.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	mbox_set_lock_wait(300);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	error = must_fail_open(path, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(strstr(error, "lock"));
	free(error);
	/* It did wait (the bound is not asserted). */
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 250);
	/* The failed attempt did not take the holder's locks away. */
	assert_int_equal(access(path, F_OK), 0);
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, NULL), 0);
	mbox_close(&m);
	m2 = must_open(path, testdir_size(path), MBOX_OPEN_OK);
	mbox_close(&m2);
	mbox_set_lock_wait(MBOX_LOCK_WAIT_MSEC_DEFAULT);
}

/* Another process holding a classic fcntl lock, as mail readers do. */
static void
test_lock_other_process(void **state)
{
	char path[PATH_MAX], lock[PATH_MAX + 8], *error, c;
	int ready[2], go[2], status, fd;
	struct flock fl;
	struct mbox *m;
	pid_t pid;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "reader.mbox");
	snprintf(lock, sizeof lock, "%s.lock", path);
	write_all(path, "", 0);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = open(path, O_RDWR);
		memset(&fl, 0, sizeof fl);
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fd == -1 || fcntl(fd, F_SETLK, &fl) == -1)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	mbox_set_lock_wait(200);
	error = must_fail_open(path, 0);
	assert_non_null(strstr(error, "lock"));
	free(error);
	/* Failing left no dotlock behind. */
	assert_int_equal(access(lock, F_OK), -1);

	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	m = must_open(path, 0, MBOX_OPEN_OK);
	mbox_close(&m);
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	mbox_set_lock_wait(MBOX_LOCK_WAIT_MSEC_DEFAULT);
}

static void
test_dotlock(void **state)
{
	char path[PATH_MAX], lock[PATH_MAX + 8], *error;
	struct timespec old[2];
	struct stat st;
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "dot.mbox");
	snprintf(lock, sizeof lock, "%s.lock", path);

	/* Fresh: someone holds it. */
	write_all(lock, "", 0);
	mbox_set_lock_wait(200);
	error = must_fail_open(path, 0);
	assert_non_null(strstr(error, "dotlock"));
	free(error);
	/* Not ours: left alone. */
	assert_int_equal(access(lock, F_OK), 0);

	/* Stale: taken over. */
	clock_gettime(CLOCK_REALTIME, &old[0]);
	old[0].tv_sec -= MBOX_DOTLOCK_STALE_SECS + 60;
	old[1] = old[0];
	assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
	m = must_open(path, 0, MBOX_OPEN_OK);
	assert_int_equal(lstat(lock, &st), 0);
	assert_true(st.st_mtime > old[0].tv_sec + 60);
	mbox_close(&m);
	assert_int_equal(access(lock, F_OK), -1);

	/* Ours holds our pid from the moment it exists (linked into place,
	 * never created empty), and no temporary file is left beside it. */
	{
		char buf[64], want[32], tmp[PATH_MAX + 32];
		FILE *fp;
		size_t n;

		m = must_open(path, 0, MBOX_OPEN_OK);
		assert_non_null(fp = fopen(lock, "r"));
		n = fread(buf, 1, sizeof buf - 1, fp);
		buf[n] = '\0';
		fclose(fp);
		snprintf(want, sizeof want, "%ld\n", (long)getpid());
		assert_string_equal(buf, want);
		snprintf(tmp, sizeof tmp, "%s.%ld.tmp", lock, (long)getpid());
		assert_int_equal(access(tmp, F_OK), -1);
		mbox_close(&m);
	}

	/* Replaced by someone else while we held it: not removed. */
	m = must_open(path, 0, MBOX_OPEN_OK);
	assert_int_equal(unlink(lock), 0);
	write_all(lock, "other\n", 6);
	mbox_close(&m);
	assert_int_equal(access(lock, F_OK), 0);
	assert_int_equal(unlink(lock), 0);
	mbox_set_lock_wait(MBOX_LOCK_WAIT_MSEC_DEFAULT);
}

/* The pid of a process that has exited (and been reaped). */
static pid_t
dead_pid(void)
{
	pid_t child;
	int status;

	if ((child = fork()) == 0)
		_exit(0);
	assert_true(child > 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	return child;
}

/* A fresh dotlock whose holder was killed (kill -9) is taken over at once;
 * one naming a live process is respected. */
static void
test_dotlock_dead_holder(void **state)
{
	char path[PATH_MAX], lock[PATH_MAX + 8], pid[32], *error;
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "dead.mbox");
	snprintf(lock, sizeof lock, "%s.lock", path);
	snprintf(pid, sizeof pid, "%ld\n", (long)dead_pid());
	write_all(lock, pid, strlen(pid));
	mbox_set_lock_wait(200);
	m = must_open(path, 0, MBOX_OPEN_OK);
	mbox_close(&m);
	assert_int_equal(access(lock, F_OK), -1);

	/* Our parent is alive: its lock stands. */
	snprintf(pid, sizeof pid, "%ld\n", (long)getppid());
	write_all(lock, pid, strlen(pid));
	error = must_fail_open(path, 0);
	assert_non_null(strstr(error, "dotlock"));
	free(error);
	assert_int_equal(unlink(lock), 0);
	mbox_set_lock_wait(MBOX_LOCK_WAIT_MSEC_DEFAULT);
}

/* mbox_locked_elsewhere(): another open file's fcntl lock, a live
 * process's dotlock; not a dead one's, not a stale one, not ours once
 * closed. */
static void
test_locked_elsewhere(void **state)
{
	char path[PATH_MAX], lock[PATH_MAX + 8], pid[32];
	struct timespec old[2] = { { 0, 0 }, { 0, 0 } };
	struct flock fl;
	struct mbox *m;
	int fd;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "busy.mbox");
	snprintf(lock, sizeof lock, "%s.lock", path);
	assert_false(mbox_locked_elsewhere(path));	/* no file at all */
	m = must_open(path, 0, MBOX_OPEN_OK);
	mbox_close(&m);
	assert_false(mbox_locked_elsewhere(path));
	assert_int_equal(access(lock, F_OK), -1);

	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
	assert_true(mbox_locked_elsewhere(path));
	fl.l_type = F_UNLCK;
	assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
	assert_false(mbox_locked_elsewhere(path));
	close(fd);

	snprintf(pid, sizeof pid, "%ld\n", (long)getppid());
	write_all(lock, pid, strlen(pid));
	assert_true(mbox_locked_elsewhere(path));
	/* Older than MBOX_DOTLOCK_STALE_SECS: stale, whoever wrote it. */
	assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
	assert_false(mbox_locked_elsewhere(path));

	snprintf(pid, sizeof pid, "%ld\n", (long)dead_pid());
	write_all(lock, pid, strlen(pid));
	assert_false(mbox_locked_elsewhere(path));
	assert_int_equal(unlink(lock), 0);
}

/* Milliseconds since t0. */
static long
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 +
	    (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * A FIFO (or any other non-regular file) where the mbox or its dotlock
 * should be: opening one without a writer blocks, so every look at them
 * must refuse it at once, naming the path.  alarm() turns a hang into a
 * failure.
 */
static void
test_fifo_never_blocks(void **state)
{
	char path[PATH_MAX], lock[PATH_MAX + 8], *error;
	struct timespec t0;
	struct mbox *m;

	(void)state;
	alarm(20);
	mbox_set_lock_wait(200);

	/* The mbox. */
	testdir_path(path, sizeof path, tmpdir, "fifo-box.mbox");
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_false(mbox_locked_elsewhere(path));
	error = must_fail_open(path, 0);
	assert_non_null(strstr(error, "not a regular file"));
	free(error);

	/* The dotlock, fresh (a stale one would be removed unread). */
	testdir_path(path, sizeof path, tmpdir, "fifo-lock.mbox");
	snprintf(lock, sizeof lock, "%s.lock", path);
	assert_int_equal(mkfifo(lock, 0600), 0);
	/* Not a lock anybody holds: mbox_open() is to say what is wrong. */
	assert_false(mbox_locked_elsewhere(path));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	error = must_fail_open(path, 0);
	assert_non_null(strstr(error, lock));
	assert_non_null(strstr(error, "not a regular file"));
	free(error);
	/* At once, not after the lock wait. */
	assert_true(ms_since(&t0) < 150);
	/* Neither removed nor replaced. */
	assert_int_equal(access(lock, F_OK), 0);
	assert_int_equal(unlink(lock), 0);
	m = must_open(path, 0, MBOX_OPEN_OK);
	mbox_close(&m);

	alarm(0);
	mbox_set_lock_wait(MBOX_LOCK_WAIT_MSEC_DEFAULT);
}

/* ---- failure injection ------------------------------------------------- */

static void
test_write_failure_truncates(void **state)
{
	char path[PATH_MAX], big_chunk[4096];
	uint64_t size;
	struct mbox *m;
	int r = 0;
	size_t i;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "enospc.mbox");
	inj_reset();
	mbox_set_sys_ops(&inj_ops);
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);

	/* The disk fills up part way through a buffer flush. */
	inj.write_budget = MBOX_WRITE_BUFFER + 1000;
	memset(big_chunk, 'x', sizeof big_chunk);
	big_chunk[sizeof big_chunk - 1] = '\n';
	assert_int_equal(mbox_msg_begin(m, 0), 0);
	for (i = 0; i < 200 && r == 0; i++)
		r = mbox_msg_write(m, big_chunk, sizeof big_chunk);
	assert_int_equal(r, -1);
	assert_non_null(strstr(mbox_error(m), path));
	assert_non_null(strstr(mbox_error(m), strerror(ENOSPC)));
	/* Already cut back to the committed size. */
	assert_int_equal(testdir_size(path), size);
	/* Failed until rolled back. */
	assert_int_equal(mbox_msg_write(m, "x", 1), -1);
	assert_int_equal(mbox_msg_end(m), -1);
	assert_int_equal(mbox_commit(m, NULL), -1);
	assert_int_equal(mbox_rollback(m), 0);
	inj.write_budget = -1;
	append(m, msg2, 0);
	assert_int_equal(mbox_commit(m, NULL), 0);
	assert_int_equal(mbox_committed_size(m), testdir_size(path));
	assert_true(testdir_size(path) > size);
	mbox_close(&m);
	mbox_set_sys_ops(NULL);
}

static void
test_fdatasync_failure_truncates(void **state)
{
	char path[PATH_MAX], *error = NULL;
	uint64_t size, size2 = 12345;
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "eio.mbox");
	inj_reset();
	mbox_set_sys_ops(&inj_ops);
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);
	assert_int_equal(inj.fdatasync_calls, 1);

	/* Several messages, one sync per commit. */
	append(m, msg2, 0);
	append(m, msg2, 0);
	append(m, msg2, 0);
	inj.fdatasync_errno = EIO;
	assert_int_equal(mbox_commit(m, &size2), -1);
	assert_int_equal(size2, 12345);
	assert_int_equal(inj.fdatasync_calls, 2);
	assert_non_null(strstr(mbox_error(m), "fdatasync"));
	assert_non_null(strstr(mbox_error(m), path));
	assert_int_equal(testdir_size(path), size);
	assert_int_equal(mbox_committed_size(m), size);

	/* And the truncation failing too is reported, then retried. */
	inj.fdatasync_errno = 0;
	assert_int_equal(mbox_rollback(m), 0);
	append(m, msg2, 0);
	inj.fdatasync_errno = EIO;
	inj.ftruncate_errno = EROFS;
	assert_int_equal(mbox_commit(m, NULL), -1);
	assert_non_null(strstr(mbox_error(m), "truncate"));
	assert_non_null(strstr(mbox_error(m), strerror(EROFS)));
	assert_true(testdir_size(path) > size);
	assert_int_equal(mbox_rollback(m), -1);
	inj.ftruncate_errno = 0;
	inj.fdatasync_errno = 0;
	assert_int_equal(mbox_close_checked(&m, &error), 0);
	assert_null(error);
	assert_int_equal(testdir_size(path), size);
	mbox_set_sys_ops(NULL);
}

/* Short writes and EINTR change nothing in the output. */
static void
test_partial_writes(void **state)
{
	char path[PATH_MAX], path2[PATH_MAX];
	unsigned char *a, *b;
	size_t alen, blen, i;
	struct mbox *m;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "plain.mbox");
	testdir_path(path2, sizeof path2, tmpdir, "partial.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	for (i = 0; i < 50; i++)
		append(m, i % 2 ? msg1 : msg2, (time_t)i);
	assert_int_equal(mbox_commit(m, NULL), 0);
	mbox_close(&m);

	inj_reset();
	inj.write_cap = 7;
	inj.eintr_toggle = true;
	mbox_set_sys_ops(&inj_ops);
	m = must_open(path2, 0, MBOX_OPEN_OK);
	for (i = 0; i < 50; i++)
		append(m, i % 2 ? msg1 : msg2, (time_t)i);
	assert_int_equal(mbox_commit(m, NULL), 0);
	mbox_close(&m);
	mbox_set_sys_ops(NULL);

	a = testdir_read(path, &alen);
	b = testdir_read(path2, &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	free(a);
	free(b);
}

/* The real write(2) path failing: a file size limit gives EFBIG. */
static void
test_fsize_limit(void **state)
{
	char path[PATH_MAX], chunk[1000];
	struct rlimit old, lim;
	void (*oldsig)(int);
	uint64_t size;
	struct mbox *m;
	int r = 0;
	size_t i;

	(void)state;
	testdir_path(path, sizeof path, tmpdir, "efbig.mbox");
	m = must_open(path, 0, MBOX_OPEN_OK);
	append(m, msg1, 0);
	assert_int_equal(mbox_commit(m, &size), 0);

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)size + 100000;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	memset(chunk, 'y', sizeof chunk);
	assert_int_equal(mbox_msg_begin(m, 0), 0);
	for (i = 0; i < 1000 && r == 0; i++)
		r = mbox_msg_write(m, chunk, sizeof chunk);
	if (r == 0)
		r = mbox_msg_end(m);
	if (r == 0)
		r = mbox_commit(m, NULL);

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_int_equal(r, -1);
	assert_non_null(strstr(mbox_error(m), strerror(EFBIG)));
	assert_int_equal(testdir_size(path), size);
	assert_int_equal(mbox_rollback(m), 0);
	mbox_close(&m);
	assert_int_equal(testdir_size(path), size);
}

/* ---- the fixture for mbox_read.py --------------------------------------- */

static const struct lit fixture[] = {
	LIT("Return-Path: <alice@example.org>\r\nFrom: Alice <alice@example."
	    "org>\r\nSubject: one\r\n\r\nFrom the start of a line.\r\n"
	    ">From quoted once.\r\n>>From quoted twice.\r\nFrom\r\n"),
	LIT("Return-Path: <>\r\nSubject: bounce\r\n\r\nbody\r\n\r\n\r\n"),
	LIT("Subject: no final newline\r\n\r\nlast line"),
	LIT("Return-Path:\r\n\t<folded@example.org>\r\nSubject: folded\r\n\r\n"
	    "8-bit: \xc3\xa9t\xc3\xa9 and \x80\xff\r\n"),
	LIT(""),
	LIT("Subject: empty body\r\n\r\n"),
	LIT("Subject: x\r\n\r\nReturn-Path: <body@example.org>\r\nFrom x\r\n"
	    " From y\r\n"),
};
static const char *const fixture_sender[] = {
	"alice@example.org", "MAILER-DAEMON", "MAILER-DAEMON",
	"folded@example.org", "MAILER-DAEMON", "MAILER-DAEMON",
	"MAILER-DAEMON",
};

static int
write_fixture(const char *dir)
{
	char path[PATH_MAX], *error = NULL;
	struct mbox *m = NULL;
	FILE *exp;
	size_t i, k;
	time_t date;

	snprintf(path, sizeof path, "%s/fixture.mbox", dir);
	if (mbox_open(path, rec(path), 0, &m, &error) == MBOX_OPEN_FAILED) {
		fprintf(stderr, "%s\n", error);
		return 1;
	}
	snprintf(path, sizeof path, "%s/expected", dir);
	if ((exp = fopen(path, "w")) == NULL)
		return 1;
	for (i = 0; i < sizeof fixture / sizeof fixture[0]; i++) {
		date = DATE_SUN_NOV_1 + (time_t)i * 86400 * 9;
		if (mbox_msg_begin(m, date) == -1)
			goto fail;
		/* In small pieces, as they come off the network. */
		for (k = 0; k < fixture[i].len; k += 3)
			if (mbox_msg_write(m, fixture[i].s + k,
			    fixture[i].len - k < 3 ? fixture[i].len - k : 3) ==
			    -1)
				goto fail;
		if (mbox_msg_end(m) == -1)
			goto fail;
		fprintf(exp, "%zu %s %lld\n", i, fixture_sender[i],
		    (long long)date);
		snprintf(path, sizeof path, "%s/msg%zu.eml", dir, i);
		write_all(path, fixture[i].s, fixture[i].len);
	}
	if (mbox_commit(m, NULL) == -1 || fclose(exp) == EOF)
		goto fail;
	mbox_close(&m);
	return 0;
fail:
	fprintf(stderr, "%s\n", m != NULL ? mbox_error(m) : "fixture");
	return 1;
}

/* ---- main -------------------------------------------------------------- */

static int
group_setup(void **state)
{
	(void)state;
	return testdir_make(tmpdir, sizeof tmpdir, "test_mbox");
}

static int
group_teardown(void **state)
{
	(void)state;
	free(mem.buf);
	testdir_remove(tmpdir);
	return 0;
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_line_dates),
		cmocka_unit_test(test_from_line_sender),
		cmocka_unit_test(test_return_path),
		cmocka_unit_test(test_return_path_hold_limit),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_from_quoting),
		cmocka_unit_test(test_final_newline_and_bytes),
		cmocka_unit_test(test_chunking_every_split),
		cmocka_unit_test(test_mboxrd_encoder_alone),
		cmocka_unit_test(test_random_messages),
		cmocka_unit_test(test_reverse_gives_original),
		cmocka_unit_test(test_big_message),
		cmocka_unit_test(test_commit_and_uncommitted_close),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_reopen_truncates_leftover),
		cmocka_unit_test(test_reopen_rewritten),
		cmocka_unit_test(test_reopen_shorter),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_mode_under_umask),
		cmocka_unit_test(test_lock_same_process),
		cmocka_unit_test(test_lock_other_process),
		cmocka_unit_test(test_dotlock),
		cmocka_unit_test(test_dotlock_dead_holder),
		cmocka_unit_test(test_locked_elsewhere),
		cmocka_unit_test(test_fifo_never_blocks),
		cmocka_unit_test(test_short_leftover_truncated),
		cmocka_unit_test(test_reader_append_kept),
		cmocka_unit_test(test_reader_append_after_crash_saved),
		cmocka_unit_test(test_record_doubtful),
		cmocka_unit_test(test_write_failure_truncates),
		cmocka_unit_test(test_fdatasync_failure_truncates),
		cmocka_unit_test(test_partial_writes),
		cmocka_unit_test(test_fsize_limit),
	};

	if (argc == 3 && strcmp(argv[1], "--write-fixture") == 0)
		return write_fixture(argv[2]);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
