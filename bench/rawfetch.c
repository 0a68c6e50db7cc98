/*
 * rawfetch: the "raw limit" row of bench/run.sh, the least work a mirroring
 * IMAP client can do.  Written in C so that it is cheap enough in CPU not to
 * compete with the server it measures.
 *
 * Build:
 *   cc -O2 -Wall -Wextra -Werror -o rawfetch bench/rawfetch.c \
 *       $(pkg-config --cflags --libs gnutls)
 *
 * Per account, over one TLS connection (certificate checked against --ca):
 *   round trip 1   LOGIN, then LIST "" "*"
 *   round trip 2   resync only: STATUS (UIDNEXT UIDVALIDITY) for every
 *                  known mailbox, pipelined
 *   round trip 3   EXAMINE + UID FETCH <next>:* (BODY.PEEK[]) for every
 *                  mailbox with new mail, all pipelined; each literal goes
 *                  to OUT/<mailbox>.raw unchanged (no From_ line, no quoting,
 *                  no fsync)
 *   then LOGOUT, sent only once the last FETCH has completed.
 *
 * The state file (--state, JSON) holds per mailbox UIDVALIDITY, the next UID
 * to fetch and the message and byte counts (mailbox names as UTF-8 JSON
 * strings), so bench/verify.py can check the mirror.  The next UID comes from
 * UIDNEXT, not from the last UID seen: "UID FETCH n:*" returns the newest
 * message even when n is past it.
 *
 *   rawfetch --host H --port P --ca CA --user U --password W --out DIR
 *       [--state F]
 *   rawfetch --host H --port P --ca CA --accounts FILE [--jobs 16]
 *       FILE: "user password outdir" per line; state in outdir/state.json
 *   --discard   read and drop the bytes (warm-up; no files)
 *
 * Prints one summary line (and a FAILED line per failed account) on stderr;
 * exit status 0 when every account synced, 2 on a bad
 * command line.
 *
 * Keeping the CPU down: GnuTLS reads a record in two pulls (header, body),
 * so the pull function serves them, and the records after them, from one
 * large recv(); inside a big literal SO_RCVLOWAT lets that recv() wait for
 * 64 KiB instead of waking up for every segment; response lines are scanned
 * with memchr() only up to their CRLF; literal bytes are decrypted straight
 * into a 1 MiB output buffer and written with one write() per buffer, never
 * looked at.  --accounts runs one process per account, --jobs at a time.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define PULL_SIZE	(128 * 1024)	/* one recv() for many TLS records */
#define IN_SIZE		(256 * 1024)	/* response lines */
#define IN_MAX		(64 * 1024 * 1024)	/* longest response line */
#define OUT_SIZE	(1024 * 1024)	/* literal bytes per write() */
#define KEEP_MAX	(1024 * 1024)	/* literal kept outside FETCH */
#define LOWAT		(64 * 1024)	/* SO_RCVLOWAT inside a big literal */
#define LOWAT_LEFT	(LOWAT + 64 * 1024)
#define IO_TIMEOUT	300		/* seconds */
#define ERR_SIZE	1024

#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define NONEMPTY(s)	((s) != NULL && *(s) != '\0')

struct options {
	const char	*host;
	const char	*port;
	const char	*ca;
	const char	*server_name;
	int		 discard;
	int		 jobs;
	gnutls_certificate_credentials_t cred;
};

struct job {
	const char	*user;
	const char	*password;
	const char	*out;
	char		*state_path;
};

/* What an account's sync reports, also across the pipe from a worker. */
struct result {
	int		 ok;
	size_t		 job;		/* index into the jobs */
	unsigned long long messages;
	unsigned long long bytes;
	char		 err[ERR_SIZE];
};

struct buf {
	char		*p;
	size_t		 len;
	size_t		 cap;
};

enum sink {
	SINK_DROP,
	SINK_KEEP,
	SINK_FILE
};

/* One response: its lines and, outside FETCH, its first literal. */
struct response {
	const char	*first;		/* first line, CRLF included */
	size_t		 first_len;
	const char	*last;		/* last line; first if no literal */
	size_t		 last_len;
	const char	*lit;		/* first literal, if kept */
	size_t		 lit_len;
	int		 nlit;
	int		 lit_kept;
};

/*
 * untagged: called with each complete response other than the awaited
 * tagged one; -1 fails the wait.  literal: called at each literal with the
 * line that announced it, says where its bytes go; without it the first
 * literal of a response is kept (up to KEEP_MAX) and the others dropped.
 */
struct handler {
	int		(*untagged)(void *, const struct response *);
	enum sink	(*literal)(void *, const char *, size_t, uint64_t);
	void		*arg;
};

struct conn {
	int		 fd;
	gnutls_session_t tls;
	int		 tls_init;
	int		 io_errno;	/* errno of the failed recv/send */
	int		 lowat;		/* SO_RCVLOWAT set */
	char		*err;		/* ERR_SIZE bytes, first error wins */
	unsigned	 tag;

	char		*pull;		/* raw bytes from the socket */
	size_t		 pull_pos;
	size_t		 pull_len;

	char		*in;		/* decrypted bytes: response lines */
	size_t		 in_cap;
	size_t		 in_pos;
	size_t		 in_len;
	size_t		 scan;		/* where the CRLF search resumes */

	char		*out;		/* literal bytes bound for out_fd */
	size_t		 out_len;
	int		 out_fd;
	const char	*out_path;

	char		*first;		/* first line, kept across a literal */
	size_t		 first_cap;
	char		*keep;
	size_t		 keep_cap;
	size_t		 keep_len;
};

struct box {
	char		*name;		/* wire name (modified UTF-7) */
	size_t		 name_len;
	int		 has_uidvalidity;
	long long	 uidvalidity;
	long long	 next;
	long long	 messages;
	long long	 bytes;
	int		 todo;
	long long	 first;		/* first UID to fetch when todo */
};

struct state {
	struct box	*boxes;
	size_t		 n;
	size_t		 cap;
	size_t		*todo;		/* box indices, in the order queued */
	size_t		 ntodo;
};

struct names {
	struct buf	*v;
	size_t		 n;
	size_t		 cap;
};

struct codes {
	int		 has_uidnext;
	int		 has_uidvalidity;
	long long	 uidnext;
	long long	 uidvalidity;
};

struct fetch {
	long long	 first;
	long long	 top;
	long long	 messages;
	long long	 bytes;
	int		 discard;
};

static int	 fail(char *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	*xrealloc(void *, size_t);
static void	 buf_reserve(struct buf *, size_t);
static void	 buf_add(struct buf *, const void *, size_t);
static void	 buf_str(struct buf *, const char *);
static void	 buf_printf(struct buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 buf_quote(struct buf *, const char *, size_t);
static void	 buf_json_string(struct buf *, const char *, size_t);
static void	 buf_free(struct buf *);
static int	 is_word(int);
static int	 has_ci(const char *, size_t, const char *);
static long long parse_num(const char *, size_t, size_t *);
static int	 scan_codes(const char *, size_t, struct codes *);
static int	 scan_status(const char *, size_t, struct codes *);
static long long find_uid(const char *, size_t);
static int	 literal_at_end(const char *, size_t, uint64_t *);
static void	 print_line(char *, const char *, const char *, size_t);

static ssize_t	 tls_pull(gnutls_transport_ptr_t, void *, size_t);
static int	 tls_pull_timeout(gnutls_transport_ptr_t, unsigned int);
static ssize_t	 tls_push(gnutls_transport_ptr_t, const giovec_t *, int);
static int	 tls_error(struct conn *, const char *, int);
static void	 conn_init(struct conn *, char *);
static int	 conn_open(struct conn *, const struct options *);
static void	 conn_close(struct conn *);
static int	 conn_recv(struct conn *, char *, size_t, int);
static int	 conn_send(struct conn *, const char *, size_t);
static int	 conn_line(struct conn *, const char **, size_t *);
static int	 conn_flush(struct conn *);
static int	 conn_put(struct conn *, const char *, size_t, enum sink);
static void	 conn_lowat(struct conn *, int);
static int	 conn_literal(struct conn *, uint64_t, enum sink);
static int	 conn_response(struct conn *, const struct handler *,
		    struct response *);
static int	 conn_wait(struct conn *, unsigned, const struct handler *);
static void	 conn_logout(struct conn *);

static int	 on_list(void *, const struct response *);
static int	 on_status(void *, const struct response *);
static int	 on_examine(void *, const struct response *);
static enum sink on_fetch_literal(void *, const char *, size_t, uint64_t);

static ssize_t	 state_find(const struct state *, const char *, size_t);
static size_t	 state_add(struct state *, const char *, size_t);
static void	 state_todo(struct state *, size_t, long long);
static void	 state_free(struct state *);
static void	 json_ws(const char **, const char *);
static int	 json_hex4(const char *, const char *, unsigned *);
static int	 json_string(const char **, const char *, struct buf *);
static int	 json_value(const char **, const char *, int *, long long *);
static int	 state_load(struct state *, const char *, char *);
static int	 state_save(const struct state *, const char *, char *);

static int	 write_all(int, const char *, size_t);
static int	 mkdir_p(const char *);
static char	*path_join(const char *, const char *);
static char	*file_name(const char *, size_t);
static int	 sync_account(const struct options *, const struct job *,
		    struct result *);
static void	 run_jobs(const struct options *, struct job *, size_t,
		    struct result *, size_t *);
static void	 usage(const char *);

static int
fail(char *err, const char *fmt, ...)
{
	va_list ap;

	if (err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(err, ERR_SIZE, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void *
xrealloc(void *p, size_t size)
{
	if ((p = realloc(p, size)) == NULL) {
		perror("rawfetch: realloc");
		exit(1);
	}
	return p;
}

static void
buf_reserve(struct buf *b, size_t more)
{
	size_t cap;

	if (b->len + more <= b->cap)
		return;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void
buf_add(struct buf *b, const void *p, size_t len)
{
	buf_reserve(b, len + 1);
	if (len > 0)
		memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[256];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		buf_add(b, tmp, (size_t)n);
		return;
	}
	buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* An IMAP quoted string. */
static void
buf_quote(struct buf *b, const char *s, size_t len)
{
	size_t i;

	buf_add(b, "\"", 1);
	for (i = 0; i < len; i++) {
		if (s[i] == '\\' || s[i] == '"')
			buf_add(b, "\\", 1);
		buf_add(b, s + i, 1);
	}
	buf_add(b, "\"", 1);
}

/* A JSON string as Python's json.dump writes it with ensure_ascii=False. */
static void
buf_json_string(struct buf *b, const char *s, size_t len)
{
	unsigned char ch;
	size_t i;

	buf_add(b, "\"", 1);
	for (i = 0; i < len; i++) {
		ch = (unsigned char)s[i];
		switch (ch) {
		case '"':
			buf_str(b, "\\\"");
			break;
		case '\\':
			buf_str(b, "\\\\");
			break;
		case '\n':
			buf_str(b, "\\n");
			break;
		case '\r':
			buf_str(b, "\\r");
			break;
		case '\t':
			buf_str(b, "\\t");
			break;
		case '\b':
			buf_str(b, "\\b");
			break;
		case '\f':
			buf_str(b, "\\f");
			break;
		default:
			if (ch < 0x20)
				buf_printf(b, "\\u%04x", ch);
			else
				buf_add(b, s + i, 1);
		}
	}
	buf_add(b, "\"", 1);
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* A word character of Python's bytes regexes, for \b. */
static int
is_word(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '_';
}

/* Whether s holds needle (lower case), ignoring ASCII case. */
static int
has_ci(const char *s, size_t len, const char *needle)
{
	size_t i, j, n = strlen(needle);
	int ch;

	for (i = 0; i + n <= len; i++) {
		for (j = 0; j < n; j++) {
			ch = (unsigned char)s[i + j];
			if (ch >= 'A' && ch <= 'Z')
				ch += 'a' - 'A';
			if (ch != needle[j])
				break;
		}
		if (j == n)
			return 1;
	}
	return 0;
}

/* The digits at s, saturating; *n_r is how many there were. */
static long long
parse_num(const char *s, size_t len, size_t *n_r)
{
	long long v = 0;
	size_t i;

	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (LLONG_MAX - 9) / 10)
			v = LLONG_MAX;
		else
			v = v * 10 + (s[i] - '0');
	}
	*n_r = i;
	return v;
}

/* rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]", every match, the last one wins. */
static int
scan_codes(const char *s, size_t len, struct codes *c)
{
	static const char uv[] = "[UIDVALIDITY ", un[] = "[UIDNEXT ";
	const char *p;
	size_t i, k, nd;
	long long v;
	int which;

	for (i = 0; i < len; i++) {
		if (s[i] != '[')
			continue;
		if (len - i > sizeof(uv) - 1 &&
		    memcmp(s + i, uv, sizeof(uv) - 1) == 0) {
			k = sizeof(uv) - 1;
			which = 0;
		} else if (len - i > sizeof(un) - 1 &&
		    memcmp(s + i, un, sizeof(un) - 1) == 0) {
			k = sizeof(un) - 1;
			which = 1;
		} else
			continue;
		p = s + i + k;
		v = parse_num(p, len - i - k, &nd);
		if (nd == 0 || i + k + nd >= len || p[nd] != ']')
			continue;
		if (which == 0) {
			c->has_uidvalidity = 1;
			c->uidvalidity = v;
		} else {
			c->has_uidnext = 1;
			c->uidnext = v;
		}
		i += k + nd;
	}
	return 0;
}

/* rb"\b(MESSAGES|UIDNEXT|UIDVALIDITY) (\d+)", every match. */
static int
scan_status(const char *s, size_t len, struct codes *c)
{
	static const char *const words[] = {
		"MESSAGES ", "UIDNEXT ", "UIDVALIDITY "
	};
	size_t i, w, k, nd;
	long long v;

	for (i = 0; i < len; i++) {
		if (i > 0 && is_word((unsigned char)s[i - 1]))
			continue;
		for (w = 0; w < 3; w++) {
			k = strlen(words[w]);
			if (len - i > k && memcmp(s + i, words[w], k) == 0)
				break;
		}
		if (w == 3)
			continue;
		v = parse_num(s + i + k, len - i - k, &nd);
		if (nd == 0)
			continue;
		if (w == 1) {
			c->has_uidnext = 1;
			c->uidnext = v;
		} else if (w == 2) {
			c->has_uidvalidity = 1;
			c->uidvalidity = v;
		}
		i += k + nd - 1;
	}
	return 0;
}

/* rb"\bUID (\d+)", the first match; 0 when there is none. */
static long long
find_uid(const char *s, size_t len)
{
	const char *p;
	size_t i, nd;
	long long v;

	for (i = 0; i + 4 < len; i++) {
		p = memchr(s + i, 'U', len - i - 4);
		if (p == NULL)
			break;
		i = (size_t)(p - s);
		if (memcmp(p, "UID ", 4) != 0 ||
		    (i > 0 && is_word((unsigned char)s[i - 1])))
			continue;
		v = parse_num(p + 4, len - i - 4, &nd);
		if (nd > 0)
			return v;
	}
	return 0;
}

/*
 * rb"\{(\d+)\}\r\n$" on a line that ends in CRLF: 1 and the size when it
 * announces a literal, 0 when not, -1 when the size is absurd.
 */
static int
literal_at_end(const char *s, size_t len, uint64_t *n_r)
{
	size_t i, nd;
	long long v;

	if (len < 5 || s[len - 3] != '}')
		return 0;
	for (i = len - 3; i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9'; i--)
		;
	if (i == len - 3 || i == 0 || s[i - 1] != '{')
		return 0;
	if (len - 3 - i > 18)
		return -1;
	v = parse_num(s + i, len - 3 - i, &nd);
	*n_r = (uint64_t)v;
	return 1;
}

/* A response line for a message: CRLF and surrounding blanks dropped. */
static void
print_line(char *err, const char *prefix, const char *s, size_t len)
{
	char tmp[ERR_SIZE / 2];
	size_t i, n = 0;

	while (len > 0 && (s[len - 1] == '\r' || s[len - 1] == '\n' ||
	    s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		len--;
	}
	for (i = 0; i < len && n < sizeof(tmp) - 1; i++) {
		unsigned char ch = (unsigned char)s[i];

		tmp[n++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	tmp[n] = '\0';
	fail(err, "%s%s", prefix, tmp);
}

/*
 * GnuTLS asks for a record header, then its body: serve both, and the
 * records after them, from one recv() of up to PULL_SIZE.
 */
static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct conn *c = ptr;
	ssize_t n;
	size_t k;

	if (c->pull_pos == c->pull_len) {
		do
			n = recv(c->fd, c->pull, PULL_SIZE, 0);
		while (n == -1 && errno == EINTR);
		if (n == -1) {
			/* Blocking: EAGAIN means SO_RCVTIMEO ran out. */
			c->io_errno = errno == EAGAIN ||
			    errno == EWOULDBLOCK ? ETIMEDOUT : errno;
			gnutls_transport_set_errno(c->tls, c->io_errno);
			errno = c->io_errno;
			return -1;
		}
		if (n == 0)
			return 0;
		c->pull_pos = 0;
		c->pull_len = (size_t)n;
	}
	k = MIN(len, c->pull_len - c->pull_pos);
	memcpy(buf, c->pull + c->pull_pos, k);
	c->pull_pos += k;
	return (ssize_t)k;
}

static int
tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct conn *c = ptr;
	struct pollfd pfd;
	int r, t;

	if (c->pull_pos < c->pull_len)
		return 1;
	if (ms == GNUTLS_INDEFINITE_TIMEOUT || ms > INT_MAX)
		t = -1;
	else
		t = (int)ms;
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	do
		r = poll(&pfd, 1, t);
	while (r == -1 && errno == EINTR);
	return r;
}

static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
	struct conn *c = ptr;
	struct msghdr m;
	ssize_t n;

	memset(&m, 0, sizeof(m));
	m.msg_iov = (struct iovec *)(uintptr_t)iov;
	m.msg_iovlen = (size_t)iovcnt;
	do
		n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		c->io_errno = (errno == EAGAIN || errno == EWOULDBLOCK) ?
		    ETIMEDOUT : errno;
		gnutls_transport_set_errno(c->tls, c->io_errno);
		errno = c->io_errno;
	}
	return n;
}

static int
tls_error(struct conn *c, const char *what, int r)
{
	if ((r == GNUTLS_E_PULL_ERROR || r == GNUTLS_E_PUSH_ERROR) &&
	    c->io_errno != 0)
		return fail(c->err, "%s: %s", what, strerror(c->io_errno));
	return fail(c->err, "%s: %s", what, gnutls_strerror(r));
}

static void
conn_init(struct conn *c, char *err)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->out_fd = -1;
	c->lowat = 1;
	c->err = err;
	c->pull = xrealloc(NULL, PULL_SIZE);
	c->in_cap = IN_SIZE;
	c->in = xrealloc(NULL, c->in_cap);
	c->out = xrealloc(NULL, OUT_SIZE);
}

static int
conn_open(struct conn *c, const struct options *o)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct timeval tv;
	struct in6_addr a6;
	const char *name;
	gnutls_datum_t st;
	unsigned status;
	size_t len;
	int r, on = 1, saved = 0;
	int rc = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(o->host, o->port, &hints, &res)) != 0) {
		fail(c->err, "%s: %s", o->host, gai_strerror(r));
		goto out;
	}
	tv.tv_sec = IO_TIMEOUT;
	tv.tv_usec = 0;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (c->fd == -1) {
			saved = errno;
			continue;
		}
		/* On Linux SO_SNDTIMEO also bounds connect(). */
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(c->fd);
		c->fd = -1;
	}
	if (c->fd == -1) {
		fail(c->err, "connect to %s port %s: %s", o->host, o->port,
		    strerror(saved));
		goto out;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));

	name = o->server_name != NULL ? o->server_name : o->host;
	if ((r = gnutls_init(&c->tls, GNUTLS_CLIENT)) < 0) {
		tls_error(c, "gnutls_init", r);
		goto out;
	}
	c->tls_init = 1;
	if ((r = gnutls_set_default_priority(c->tls)) < 0 ||
	    (r = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE,
	    o->cred)) < 0) {
		tls_error(c, "TLS setup", r);
		goto out;
	}
	/* SNI carries host names only (RFC 6066 section 3). */
	if (inet_pton(AF_INET, name, &a6) != 1 &&
	    inet_pton(AF_INET6, name, &a6) != 1 &&
	    (r = gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, name,
	    strlen(name))) < 0) {
		tls_error(c, "TLS server name", r);
		goto out;
	}
	gnutls_session_set_verify_cert(c->tls, name, 0);
	gnutls_transport_set_ptr(c->tls, c);
	gnutls_transport_set_pull_function(c->tls, tls_pull);
	gnutls_transport_set_pull_timeout_function(c->tls, tls_pull_timeout);
	gnutls_transport_set_vec_push_function(c->tls, tls_push);
	do
		r = gnutls_handshake(c->tls);
	while (r < 0 && gnutls_error_is_fatal(r) == 0);
	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		status = gnutls_session_get_verify_cert_status(c->tls);
		if (gnutls_certificate_verification_status_print(status,
		    GNUTLS_CRT_X509, &st, 0) == 0) {
			for (len = strlen((char *)st.data); len > 0 &&
			    st.data[len - 1] == ' '; len--)
				st.data[len - 1] = '\0';
			fail(c->err, "TLS handshake with %s: %s", name,
			    (const char *)st.data);
			gnutls_free(st.data);
		} else
			tls_error(c, "TLS handshake", r);
		goto out;
	}
	if (r < 0) {
		tls_error(c, "TLS handshake", r);
		goto out;
	}
	rc = 0;
out:
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

static void
conn_close(struct conn *c)
{
	if (c->tls_init)
		gnutls_deinit(c->tls);
	c->tls_init = 0;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	if (c->out_fd != -1)
		close(c->out_fd);
	c->out_fd = -1;
	free(c->pull);
	free(c->in);
	free(c->out);
	free(c->first);
	free(c->keep);
	c->pull = c->in = c->out = c->first = c->keep = NULL;
}

/* At least one decrypted byte into buf, or -1. */
static int
conn_recv(struct conn *c, char *buf, size_t len, int in_literal)
{
	ssize_t r;

	for (;;) {
		r = gnutls_record_recv(c->tls, buf, len);
		if (r > 0)
			return (int)r;
		if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
			return fail(c->err, in_literal ?
			    "connection closed inside a literal" :
			    "connection closed by the server");
		if (gnutls_error_is_fatal((int)r) != 0)
			return tls_error(c, "TLS receive", (int)r);
	}
}

static int
conn_send(struct conn *c, const char *p, size_t len)
{
	ssize_t r;

	while (len > 0) {
		r = gnutls_record_send(c->tls, p, len);
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
			continue;
		if (r < 0)
			return tls_error(c, "TLS send", (int)r);
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/*
 * The next line, CRLF included, as imapio's line(): up to the first CRLF.
 * It stays valid until the next read from the connection.
 */
static int
conn_line(struct conn *c, const char **line_r, size_t *len_r)
{
	const char *p;
	size_t i;
	int got;

	for (;;) {
		while ((p = memchr(c->in + c->scan, '\n',
		    c->in_len - c->scan)) != NULL) {
			i = (size_t)(p - c->in);
			c->scan = i + 1;
			if (i > c->in_pos && c->in[i - 1] == '\r') {
				*line_r = c->in + c->in_pos;
				*len_r = i + 1 - c->in_pos;
				c->in_pos = i + 1;
				return 0;
			}
		}
		c->scan = c->in_len;
		if (c->in_pos > 0) {
			memmove(c->in, c->in + c->in_pos,
			    c->in_len - c->in_pos);
			c->in_len -= c->in_pos;
			c->scan -= c->in_pos;
			c->in_pos = 0;
		}
		if (c->in_len == c->in_cap) {
			if (c->in_cap >= IN_MAX)
				return fail(c->err,
				    "response line longer than %d bytes",
				    IN_MAX);
			c->in_cap *= 2;
			c->in = xrealloc(c->in, c->in_cap);
		}
		if ((got = conn_recv(c, c->in + c->in_len,
		    c->in_cap - c->in_len, 0)) == -1)
			return -1;
		c->in_len += (size_t)got;
	}
}

static int
conn_flush(struct conn *c)
{
	if (c->out_len > 0 && c->out_fd != -1 &&
	    write_all(c->out_fd, c->out, c->out_len) == -1)
		return fail(c->err, "write %s: %s", c->out_path,
		    strerror(errno));
	c->out_len = 0;
	return 0;
}

/* Literal bytes that came with a line: copied, or written when large. */
static int
conn_put(struct conn *c, const char *p, size_t len, enum sink sink)
{
	switch (sink) {
	case SINK_DROP:
		break;
	case SINK_KEEP:
		memcpy(c->keep + c->keep_len, p, len);
		c->keep_len += len;
		break;
	case SINK_FILE:
		if (c->out_len + len > OUT_SIZE && conn_flush(c) == -1)
			return -1;
		if (len > OUT_SIZE) {
			if (write_all(c->out_fd, p, len) == -1)
				return fail(c->err, "write %s: %s",
				    c->out_path, strerror(errno));
			break;
		}
		memcpy(c->out + c->out_len, p, len);
		c->out_len += len;
		break;
	}
	return 0;
}

/*
 * Inside a big literal, have recv() wait for LOWAT bytes rather than wake
 * up for each segment.  Only while at least LOWAT_LEFT bytes of the literal
 * are still due, so the bytes asked for are sure to come: GnuTLS holds at
 * most one record's worth of them already.
 */
static void
conn_lowat(struct conn *c, int lowat)
{
	if (c->lowat == lowat)
		return;
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat,
	    sizeof(lowat)) == 0)
		c->lowat = lowat;
}

/*
 * n literal bytes: first what the line buffer already holds, then the rest
 * decrypted straight to where it goes (the output buffer, the keep buffer,
 * or for dropped bytes the emptied line buffer), never more than the
 * literal, so the bytes after it stay in GnuTLS for the next line.
 */
static int
conn_literal(struct conn *c, uint64_t n, enum sink sink)
{
	size_t k, want;
	char *dst;
	int got;

	if (sink == SINK_KEEP) {
		c->keep_len = 0;
		if (c->keep_cap < n) {
			c->keep_cap = (size_t)n;
			c->keep = xrealloc(c->keep, c->keep_cap);
		}
	}
	k = (size_t)MIN(n, (uint64_t)(c->in_len - c->in_pos));
	if (k > 0 && conn_put(c, c->in + c->in_pos, k, sink) == -1)
		return -1;
	c->in_pos += k;
	c->scan = c->in_pos;
	n -= k;
	if (c->in_pos == c->in_len)
		c->in_pos = c->in_len = c->scan = 0;
	while (n > 0) {
		switch (sink) {
		case SINK_KEEP:
			dst = c->keep + c->keep_len;
			want = (size_t)n;
			break;
		case SINK_FILE:
			if (c->out_len == OUT_SIZE && conn_flush(c) == -1)
				return -1;
			dst = c->out + c->out_len;
			want = (size_t)MIN(n,
			    (uint64_t)(OUT_SIZE - c->out_len));
			break;
		default:
			dst = c->in;
			want = (size_t)MIN(n, (uint64_t)c->in_cap);
			break;
		}
		conn_lowat(c, n >= LOWAT_LEFT ? LOWAT : 1);
		if ((got = conn_recv(c, dst, want, 1)) == -1)
			return -1;
		if (sink == SINK_KEEP)
			c->keep_len += (size_t)got;
		else if (sink == SINK_FILE)
			c->out_len += (size_t)got;
		n -= (uint64_t)got;
	}
	conn_lowat(c, 1);
	return 0;
}

/* One whole response, as imapio's response(). */
static int
conn_response(struct conn *c, const struct handler *h, struct response *r)
{
	const char *line;
	size_t len;
	uint64_t n;
	enum sink sink;
	int lit;

	memset(r, 0, sizeof(*r));
	for (;;) {
		if (conn_line(c, &line, &len) == -1)
			return -1;
		if (r->nlit == 0) {
			r->first = line;
			r->first_len = len;
		}
		r->last = line;
		r->last_len = len;
		if ((lit = literal_at_end(line, len, &n)) == -1)
			return fail(c->err, "absurd literal size");
		if (lit == 0)
			return 0;
		if (r->nlit == 0) {
			/* The line buffer is reused for the literal. */
			if (c->first_cap < len) {
				c->first_cap = len;
				c->first = xrealloc(c->first, c->first_cap);
			}
			memcpy(c->first, line, len);
			r->first = c->first;
		}
		r->nlit++;
		if (h != NULL && h->literal != NULL)
			sink = h->literal(h->arg, line, len, n);
		else if (r->nlit == 1 && n <= KEEP_MAX)
			sink = SINK_KEEP;
		else
			sink = SINK_DROP;
		if (sink == SINK_FILE && c->out_fd == -1)
			sink = SINK_DROP;
		if (conn_literal(c, n, sink) == -1)
			return -1;
		if (sink == SINK_KEEP) {
			r->lit = c->keep;
			r->lit_len = c->keep_len;
			r->lit_kept = 1;
		}
	}
}

/*
 * Responses up to the tagged one for tag, as imapio's wait(): the others go
 * to h->untagged; a tagged NO or BAD, or a BYE, fails.
 */
static int
conn_wait(struct conn *c, unsigned tag, const struct handler *h)
{
	struct response r;
	char tb[32];
	size_t tl;

	tl = (size_t)snprintf(tb, sizeof(tb), "t%u ", tag);
	for (;;) {
		if (conn_response(c, h, &r) == -1)
			return -1;
		if (r.first_len >= tl && memcmp(r.first, tb, tl) == 0) {
			if (r.first_len - tl >= 2 &&
			    memcmp(r.first + tl, "OK", 2) == 0)
				return 0;
			print_line(c->err, "", r.first, r.first_len);
			return -1;
		}
		if (r.first_len >= 5 && memcmp(r.first, "* BYE", 5) == 0) {
			print_line(c->err, "", r.first, r.first_len);
			return -1;
		}
		if (h != NULL && h->untagged != NULL &&
		    h->untagged(h->arg, &r) == -1)
			return -1;
	}
}

/* LOGOUT and its answer; whatever goes wrong here does not count. */
static void
conn_logout(struct conn *c)
{
	struct response r;
	struct buf cmd = { NULL, 0, 0 };
	char tb[32];
	size_t tl;

	tl = (size_t)snprintf(tb, sizeof(tb), "t%u", ++c->tag);
	buf_printf(&cmd, "%s LOGOUT\r\n", tb);
	if (conn_send(c, cmd.p, cmd.len) == 0) {
		while (conn_response(c, NULL, &r) == 0) {
			if (r.first_len >= tl &&
			    memcmp(r.first, tb, tl) == 0)
				break;
		}
	}
	buf_free(&cmd);
	c->err[0] = '\0';
}

/* A selectable mailbox of LIST, parsed as imapio's list_mailboxes(). */
static int
on_list(void *arg, const struct response *r)
{
	struct names *nm = arg;
	const char *s = r->first, *open, *close, *rest, *q;
	size_t len = r->first_len, rlen, i;
	struct buf *name;

	if (len < 7 || memcmp(s, "* LIST ", 7) != 0)
		return 0;
	open = memchr(s, '(', len);
	close = memchr(s, ')', len);
	if (open == NULL || close == NULL)
		return -1;
	rlen = close > open ? (size_t)(close - open - 1) : 0;
	if (has_ci(open + 1, rlen, "\\noselect") ||
	    has_ci(open + 1, rlen, "\\nonexistent"))
		return 0;
	if (nm->n == nm->cap) {
		nm->cap = nm->cap ? nm->cap * 2 : 16;
		nm->v = xrealloc(nm->v, nm->cap * sizeof(*nm->v));
	}
	name = &nm->v[nm->n];
	memset(name, 0, sizeof(*name));
	if (r->nlit > 0) {
		if (!r->lit_kept)
			return -1;
		buf_add(name, r->lit, r->lit_len);
		nm->n++;
		return 0;
	}
	/* ") " then the delimiter (NIL or a quoted character) and the name */
	rest = close + 2;
	if (rest > s + len - 2)
		return -1;
	rlen = (size_t)(s + len - 2 - rest);
	if (rlen >= 4 && memcmp(rest, "NIL ", 4) == 0) {
		rest += 4;
		rlen -= 4;
	} else {
		if (rlen < 2 || (q = memchr(rest + 1, '"', rlen - 1)) == NULL ||
		    (size_t)(q + 2 - rest) > rlen)
			return -1;
		rlen -= (size_t)(q + 2 - rest);
		rest = q + 2;
	}
	if (rlen > 0 && rest[0] == '"') {
		if (rlen < 2)
			return -1;
		for (i = 1; i < rlen - 1; i++) {
			if (rest[i] == '\\' && i + 1 < rlen - 1)
				i++;
			buf_add(name, rest + i, 1);
		}
		if (name->p == NULL)
			buf_add(name, "", 0);
	} else
		buf_add(name, rest, rlen);
	nm->n++;
	return 0;
}

static int
on_status(void *arg, const struct response *r)
{
	if (r->first_len >= 8 && memcmp(r->first, "* STATUS", 8) == 0)
		scan_status(r->last, r->last_len, arg);
	return 0;
}

static int
on_examine(void *arg, const struct response *r)
{
	return scan_codes(r->first, r->first_len, arg);
}

static enum sink
on_fetch_literal(void *arg, const char *line, size_t len, uint64_t n)
{
	struct fetch *f = arg;
	long long uid;

	uid = find_uid(line, len);
	if (uid < f->first)	/* the "n:*" answer when nothing is new */
		return SINK_DROP;
	if (uid > f->top)
		f->top = uid;
	f->messages++;
	f->bytes += (long long)n;
	return f->discard ? SINK_DROP : SINK_FILE;
}

static ssize_t
state_find(const struct state *st, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		if (st->boxes[i].name_len == len &&
		    memcmp(st->boxes[i].name, name, len) == 0)
			return (ssize_t)i;
	return -1;
}

static size_t
state_add(struct state *st, const char *name, size_t len)
{
	struct box *b;

	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 16;
		st->boxes = xrealloc(st->boxes, st->cap * sizeof(*st->boxes));
		st->todo = xrealloc(st->todo, st->cap * sizeof(*st->todo));
	}
	b = &st->boxes[st->n];
	memset(b, 0, sizeof(*b));
	b->name = xrealloc(NULL, len + 1);
	memcpy(b->name, name, len);
	b->name[len] = '\0';
	b->name_len = len;
	b->next = 1;
	return st->n++;
}

/* todo[b] = first, with a dict's ordering: a new key goes last. */
static void
state_todo(struct state *st, size_t i, long long first)
{
	if (!st->boxes[i].todo) {
		st->boxes[i].todo = 1;
		st->todo[st->ntodo++] = i;
	}
	st->boxes[i].first = first;
}

static void
state_free(struct state *st)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		free(st->boxes[i].name);
	free(st->boxes);
	free(st->todo);
	memset(st, 0, sizeof(*st));
}

static void
json_ws(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' ||
	    **p == '\r'))
		(*p)++;
}

static int
json_hex4(const char *p, const char *end, unsigned *v)
{
	int i;

	*v = 0;
	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		*v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			*v |= (unsigned)(p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			*v |= (unsigned)(p[i] - 'a' + 10);
		else if (p[i] >= 'A' && p[i] <= 'F')
			*v |= (unsigned)(p[i] - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

/* A JSON string at *p into out (UTF-8). */
static int
json_string(const char **p, const char *end, struct buf *out)
{
	const char *s = *p;
	unsigned u, lo;
	char enc[4];
	size_t n;

	out->len = 0;
	buf_add(out, "", 0);
	if (s >= end || *s != '"')
		return -1;
	for (s++; s < end && *s != '"'; s++) {
		if ((unsigned char)*s < 0x20)
			return -1;
		if (*s != '\\') {
			buf_add(out, s, 1);
			continue;
		}
		if (++s >= end)
			return -1;
		switch (*s) {
		case '"': case '\\': case '/':
			buf_add(out, s, 1);
			continue;
		case 'b':
			buf_add(out, "\b", 1);
			continue;
		case 'f':
			buf_add(out, "\f", 1);
			continue;
		case 'n':
			buf_add(out, "\n", 1);
			continue;
		case 'r':
			buf_add(out, "\r", 1);
			continue;
		case 't':
			buf_add(out, "\t", 1);
			continue;
		case 'u':
			break;
		default:
			return -1;
		}
		if (json_hex4(s + 1, end, &u) == -1)
			return -1;
		s += 4;
		if (u >= 0xd800 && u < 0xdc00) {
			if (end - s < 7 || s[1] != '\\' || s[2] != 'u' ||
			    json_hex4(s + 3, end, &lo) == -1 ||
			    lo < 0xdc00 || lo > 0xdfff)
				return -1;
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			s += 6;
		} else if (u >= 0xdc00 && u < 0xe000)
			return -1;
		if (u < 0x80) {
			enc[0] = (char)u;
			n = 1;
		} else if (u < 0x800) {
			enc[0] = (char)(0xc0 | (u >> 6));
			enc[1] = (char)(0x80 | (u & 0x3f));
			n = 2;
		} else if (u < 0x10000) {
			enc[0] = (char)(0xe0 | (u >> 12));
			enc[1] = (char)(0x80 | ((u >> 6) & 0x3f));
			enc[2] = (char)(0x80 | (u & 0x3f));
			n = 3;
		} else {
			enc[0] = (char)(0xf0 | (u >> 18));
			enc[1] = (char)(0x80 | ((u >> 12) & 0x3f));
			enc[2] = (char)(0x80 | ((u >> 6) & 0x3f));
			enc[3] = (char)(0x80 | (u & 0x3f));
			n = 4;
		}
		buf_add(out, enc, n);
	}
	if (s >= end)
		return -1;
	*p = s + 1;
	return 0;
}

/* null, or a non-negative integer. */
static int
json_value(const char **p, const char *end, int *null_r, long long *v_r)
{
	size_t nd;

	if (end - *p >= 4 && memcmp(*p, "null", 4) == 0) {
		*p += 4;
		*null_r = 1;
		*v_r = 0;
		return 0;
	}
	*v_r = parse_num(*p, (size_t)(end - *p), &nd);
	if (nd == 0 || nd > 18)
		return -1;
	*p += nd;
	*null_r = 0;
	return 0;
}

/*
 * The state file: {"<wire name>": {"uidvalidity": N|null,
 * "next": N, "messages": N, "bytes": N}, ...}, in the file's order.  A
 * missing file is an empty state.
 */
static int
state_load(struct state *st, const char *path, char *err)
{
	struct buf text = { NULL, 0, 0 }, key = { NULL, 0, 0 };
	struct buf field = { NULL, 0, 0 };
	const char *p, *end;
	struct box *b;
	char chunk[8192];
	ssize_t n, k;
	long long v;
	int fd, isnull, seen, rc = -1;
	size_t i;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0;
		return fail(err, "%s: %s", path, strerror(errno));
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fail(err, "%s: %s", path, strerror(errno));
			close(fd);
			goto out;
		}
		buf_add(&text, chunk, (size_t)n);
	}
	close(fd);
	buf_add(&text, "", 0);
	p = text.p;
	end = text.p + text.len;
	json_ws(&p, end);
	if (p >= end || *p++ != '{')
		goto bad;
	json_ws(&p, end);
	if (p < end && *p == '}') {
		p++;
		goto done;
	}
	for (;;) {
		json_ws(&p, end);
		if (json_string(&p, end, &key) == -1)
			goto bad;
		json_ws(&p, end);
		if (p >= end || *p++ != ':')
			goto bad;
		json_ws(&p, end);
		if (p >= end || *p++ != '{')
			goto bad;
		if ((k = state_find(st, key.p, key.len)) == -1)
			i = state_add(st, key.p, key.len);
		else
			i = (size_t)k;
		b = &st->boxes[i];
		seen = 0;
		for (;;) {
			json_ws(&p, end);
			if (json_string(&p, end, &field) == -1)
				goto bad;
			json_ws(&p, end);
			if (p >= end || *p++ != ':')
				goto bad;
			json_ws(&p, end);
			if (json_value(&p, end, &isnull, &v) == -1)
				goto bad;
			if (strcmp(field.p, "uidvalidity") == 0) {
				b->has_uidvalidity = !isnull;
				b->uidvalidity = v;
				seen |= 1;
			} else if (isnull) {
				goto bad;
			} else if (strcmp(field.p, "next") == 0) {
				b->next = v;
				seen |= 2;
			} else if (strcmp(field.p, "messages") == 0) {
				b->messages = v;
				seen |= 4;
			} else if (strcmp(field.p, "bytes") == 0) {
				b->bytes = v;
				seen |= 8;
			} else
				goto bad;
			json_ws(&p, end);
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == '}') {
				p++;
				break;
			}
			goto bad;
		}
		if (seen != 15)
			goto bad;
		json_ws(&p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}') {
			p++;
			break;
		}
		goto bad;
	}
done:
	json_ws(&p, end);
	if (p != end)
		goto bad;
	rc = 0;
	goto out;
bad:
	fail(err, "%s: not a state file of this program (at byte %zu)", path,
	    (size_t)(p - text.p));
out:
	buf_free(&text);
	buf_free(&key);
	buf_free(&field);
	return rc;
}

/* PATH.tmp, then rename; no fsync. */
static int
state_save(const struct state *st, const char *path, char *err)
{
	struct buf j = { NULL, 0, 0 }, tmp = { NULL, 0, 0 };
	const struct box *b;
	size_t i;
	int fd = -1, rc = -1;

	buf_str(&j, "{");
	for (i = 0; i < st->n; i++) {
		b = &st->boxes[i];
		if (i > 0)
			buf_str(&j, ", ");
		buf_json_string(&j, b->name, b->name_len);
		buf_str(&j, ": {\"uidvalidity\": ");
		if (b->has_uidvalidity)
			buf_printf(&j, "%lld", b->uidvalidity);
		else
			buf_str(&j, "null");
		buf_printf(&j, ", \"next\": %lld, \"messages\": %lld, "
		    "\"bytes\": %lld}", b->next, b->messages, b->bytes);
	}
	buf_str(&j, "}");
	buf_printf(&tmp, "%s.tmp", path);
	if ((fd = open(tmp.p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0666)) == -1 || write_all(fd, j.p, j.len) == -1) {
		fail(err, "%s: %s", tmp.p, strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		fail(err, "%s: %s", tmp.p, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp.p, path) == -1) {
		fail(err, "rename %s: %s", tmp.p, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	buf_free(&j);
	buf_free(&tmp);
	return rc;
}

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* os.makedirs(path, exist_ok=True) */
static int
mkdir_p(const char *path)
{
	struct stat sb;
	char *p, *s;
	int rc = -1;

	s = xrealloc(NULL, strlen(path) + 1);
	strcpy(s, path);
	for (p = s + 1; *p != '\0'; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		if (mkdir(s, 0777) == -1 && errno != EEXIST)
			goto out;
		*p = '/';
	}
	if (mkdir(s, 0777) == -1 && errno != EEXIST)
		goto out;
	if (stat(s, &sb) == -1)
		goto out;
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		goto out;
	}
	rc = 0;
out:
	free(s);
	return rc;
}

/* os.path.join(dir, name) for a relative name */
static char *
path_join(const char *dir, const char *name)
{
	struct buf b = { NULL, 0, 0 };
	size_t n = strlen(dir);

	buf_str(&b, dir);
	if (n > 0 && dir[n - 1] != '/')
		buf_str(&b, "/");
	buf_str(&b, name);
	return b.p;
}

/* urllib.parse.quote(wire, safe="") + ".raw" */
static char *
file_name(const char *name, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	struct buf b = { NULL, 0, 0 };
	unsigned char ch;
	char e[3];
	size_t i;

	buf_add(&b, "", 0);
	for (i = 0; i < len; i++) {
		ch = (unsigned char)name[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
		    ch == '-' || ch == '~') {
			buf_add(&b, name + i, 1);
			continue;
		}
		e[0] = '%';
		e[1] = hex[ch >> 4];
		e[2] = hex[ch & 15];
		buf_add(&b, e, 3);
	}
	buf_str(&b, ".raw");
	return b.p;
}

static int
sync_account(const struct options *o, const struct job *j, struct result *res)
{
	struct state st;
	struct conn c;
	struct names names;
	struct buf cmd = { NULL, 0, 0 };
	struct handler h;
	struct codes codes;
	struct fetch f;
	struct box *b;
	const char *line;
	size_t len, i, *known = NULL, nknown = 0;
	unsigned tag0;
	ssize_t k;
	char *fname = NULL, *path = NULL;
	long long total_msgs = 0, total_bytes = 0;
	int same, rc = -1;

	memset(&st, 0, sizeof(st));
	memset(&names, 0, sizeof(names));
	memset(res, 0, sizeof(*res));
	conn_init(&c, res->err);
	if (j->state_path != NULL && state_load(&st, j->state_path,
	    res->err) == -1)
		goto out;
	if (conn_open(&c, o) == -1)
		goto out;
	if (conn_line(&c, &line, &len) == -1)
		goto out;
	if (len < 4 || memcmp(line, "* OK", 4) != 0) {
		print_line(res->err, "greeting: ", line, len);
		goto out;
	}

	/* round trip 1: LOGIN, LIST */
	buf_printf(&cmd, "t%u LOGIN ", ++c.tag);
	buf_quote(&cmd, j->user, strlen(j->user));
	buf_str(&cmd, " ");
	buf_quote(&cmd, j->password, strlen(j->password));
	buf_str(&cmd, "\r\n");
	if (conn_send(&c, cmd.p, cmd.len) == -1 ||
	    conn_wait(&c, c.tag, NULL) == -1)
		goto out;
	cmd.len = 0;
	buf_printf(&cmd, "t%u LIST \"\" \"*\"\r\n", ++c.tag);
	memset(&h, 0, sizeof(h));
	h.untagged = on_list;
	h.arg = &names;
	if (conn_send(&c, cmd.p, cmd.len) == -1)
		goto out;
	if (conn_wait(&c, c.tag, &h) == -1) {
		fail(res->err, "malformed LIST response");
		goto out;
	}

	/* round trip 2: STATUS of every mailbox the state knows */
	known = xrealloc(NULL, (names.n + 1) * sizeof(*known));
	for (i = 0; i < names.n; i++)
		if ((k = state_find(&st, names.v[i].p, names.v[i].len)) != -1)
			known[nknown++] = (size_t)k;
	if (nknown > 0) {
		cmd.len = 0;
		tag0 = c.tag + 1;
		for (i = 0; i < nknown; i++) {
			b = &st.boxes[known[i]];
			buf_printf(&cmd, "t%u STATUS ", ++c.tag);
			buf_quote(&cmd, b->name, b->name_len);
			buf_str(&cmd, " (UIDNEXT UIDVALIDITY)\r\n");
		}
		if (conn_send(&c, cmd.p, cmd.len) == -1)
			goto out;
		for (i = 0; i < nknown; i++) {
			memset(&codes, 0, sizeof(codes));
			memset(&h, 0, sizeof(h));
			h.untagged = on_status;
			h.arg = &codes;
			if (conn_wait(&c, tag0 + (unsigned)i, &h) == -1)
				goto out;
			b = &st.boxes[known[i]];
			same = codes.has_uidvalidity == b->has_uidvalidity &&
			    (!b->has_uidvalidity ||
			    codes.uidvalidity == b->uidvalidity);
			if (!same) {
				/* a new mailbox under an old name: all again */
				state_todo(&st, known[i], 1);
				b->has_uidvalidity = 0;
				b->next = 1;
				b->messages = b->bytes = 0;
			} else if ((codes.has_uidnext ? codes.uidnext : 0) >
			    b->next)
				state_todo(&st, known[i], b->next);
		}
	}
	for (i = 0; i < names.n; i++) {
		if (state_find(&st, names.v[i].p, names.v[i].len) != -1)
			continue;
		state_todo(&st, state_add(&st, names.v[i].p, names.v[i].len),
		    1);
	}

	/* round trip 3: EXAMINE + UID FETCH for every mailbox with new mail */
	if (st.ntodo > 0) {
		if (!o->discard && mkdir_p(j->out) == -1) {
			fail(res->err, "%s: %s", j->out, strerror(errno));
			goto out;
		}
		cmd.len = 0;
		tag0 = c.tag + 1;
		for (i = 0; i < st.ntodo; i++) {
			b = &st.boxes[st.todo[i]];
			buf_printf(&cmd, "t%u EXAMINE ", ++c.tag);
			buf_quote(&cmd, b->name, b->name_len);
			buf_printf(&cmd, "\r\nt%u UID FETCH %lld:* "
			    "(BODY.PEEK[])\r\n", ++c.tag, b->first);
		}
		if (conn_send(&c, cmd.p, cmd.len) == -1)
			goto out;
		for (i = 0; i < st.ntodo; i++) {
			memset(&codes, 0, sizeof(codes));
			memset(&h, 0, sizeof(h));
			h.untagged = on_examine;
			h.arg = &codes;
			if (conn_wait(&c, tag0 + 2 * (unsigned)i, &h) == -1)
				goto out;
			b = &st.boxes[st.todo[i]];
			if (b->has_uidvalidity && (!codes.has_uidvalidity ||
			    codes.uidvalidity != b->uidvalidity)) {
				fail(res->err, "%s: UIDVALIDITY changed during "
				    "the sync", b->name);
				goto out;
			}
			b->has_uidvalidity = codes.has_uidvalidity;
			b->uidvalidity = codes.uidvalidity;
			if (!o->discard) {
				free(fname);
				free(path);
				fname = file_name(b->name, b->name_len);
				path = path_join(j->out, fname);
				c.out_fd = open(path, O_WRONLY | O_CREAT |
				    O_APPEND | O_CLOEXEC, 0666);
				if (c.out_fd == -1) {
					fail(res->err, "%s: %s", path,
					    strerror(errno));
					goto out;
				}
				c.out_path = path;
			}
			memset(&f, 0, sizeof(f));
			f.first = b->first;
			f.top = b->next - 1;
			f.discard = o->discard;
			memset(&h, 0, sizeof(h));
			h.literal = on_fetch_literal;
			h.arg = &f;
			if (conn_wait(&c, tag0 + 2 * (unsigned)i + 1,
			    &h) == -1 || conn_flush(&c) == -1)
				goto out;
			if (c.out_fd != -1) {
				if (close(c.out_fd) == -1) {
					c.out_fd = -1;
					fail(res->err, "%s: %s", path,
					    strerror(errno));
					goto out;
				}
				c.out_fd = -1;
			}
			b->next = codes.has_uidnext ? codes.uidnext : 1;
			if (f.top + 1 > b->next)
				b->next = f.top + 1;
			b->messages += f.messages;
			b->bytes += f.bytes;
			total_msgs += f.messages;
			total_bytes += f.bytes;
		}
	}
	conn_logout(&c);
	conn_close(&c);
	if (j->state_path != NULL && !o->discard &&
	    state_save(&st, j->state_path, res->err) == -1)
		goto out;
	res->messages = (unsigned long long)total_msgs;
	res->bytes = (unsigned long long)total_bytes;
	rc = 0;
out:
	conn_close(&c);
	res->ok = rc == 0;
	if (rc == -1 && res->err[0] == '\0')
		fail(res->err, "failed");
	for (i = 0; i < names.n; i++)
		buf_free(&names.v[i]);
	free(names.v);
	free(known);
	free(fname);
	free(path);
	buf_free(&cmd);
	state_free(&st);
	return rc;
}

/*
 * One worker process per account, at most o->jobs at a time, each sending
 * its struct result back through a pipe of its own.  results[] is filled in
 * the order the accounts finish.
 */
static void
run_jobs(const struct options *o, struct job *jobs, size_t n,
    struct result *results, size_t *nres)
{
	struct child {
		pid_t	pid;
		int	fd;
		size_t	job;
	} *kids;
	struct result r;
	size_t next = 0, running = 0, i, got;
	ssize_t m;
	pid_t pid;
	int fds[2], status;

	kids = xrealloc(NULL, (size_t)o->jobs * sizeof(*kids));
	for (i = 0; i < (size_t)o->jobs; i++)
		kids[i].pid = -1;
	*nres = 0;
	while (next < n || running > 0) {
		while (running < (size_t)o->jobs && next < n) {
			for (i = 0; kids[i].pid != -1; i++)
				;
			if (pipe(fds) == -1) {
				perror("rawfetch: pipe");
				exit(1);
			}
			fflush(NULL);
			if ((pid = fork()) == -1) {
				perror("rawfetch: fork");
				exit(1);
			}
			if (pid == 0) {
				close(fds[0]);
				sync_account(o, &jobs[next], &r);
				(void)write_all(fds[1], (const char *)&r,
				    sizeof(r));
				_exit(0);
			}
			close(fds[1]);
			kids[i].pid = pid;
			kids[i].fd = fds[0];
			kids[i].job = next++;
			running++;
		}
		if ((pid = waitpid(-1, &status, 0)) == -1) {
			if (errno == EINTR)
				continue;
			perror("rawfetch: waitpid");
			exit(1);
		}
		for (i = 0; i < (size_t)o->jobs && kids[i].pid != pid; i++)
			;
		if (i == (size_t)o->jobs)
			continue;
		memset(&r, 0, sizeof(r));
		for (got = 0; got < sizeof(r); got += (size_t)m) {
			m = read(kids[i].fd, (char *)&r + got, sizeof(r) - got);
			if (m == -1 && errno == EINTR) {
				m = 0;
				continue;
			}
			if (m <= 0)
				break;
		}
		if (got != sizeof(r)) {
			memset(&r, 0, sizeof(r));
			snprintf(r.err, sizeof(r.err), "worker %ld ended "
			    "with status %d", (long)pid, status);
		}
		results[*nres] = r;
		results[*nres].ok = got == sizeof(r) && r.ok;
		results[*nres].job = kids[i].job;
		(*nres)++;
		close(kids[i].fd);
		kids[i].pid = -1;
		running--;
	}
	free(kids);
}

static void
usage(const char *msg)
{
	if (msg != NULL)
		fprintf(stderr, "rawfetch: %s\n", msg);
	fprintf(stderr,
	    "usage: rawfetch [--host H] --port P --ca CA [--server-name N]\n"
	    "                --user U --password W --out DIR [--state F] "
	    "[--discard]\n"
	    "       rawfetch [--host H] --port P --ca CA [--server-name N]\n"
	    "                --accounts FILE [--jobs N] [--discard]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	static const char *const names[] = {
		"host", "port", "ca", "server-name", "user", "password", "out",
		"state", "accounts", "jobs"
	};
	const char *val[10] = { "127.0.0.1", NULL, NULL, NULL, NULL, NULL,
	    NULL, NULL, NULL, "16" };
	struct options o;
	struct job *jobs = NULL, one;
	struct result *results;
	struct timespec t0, t1;
	struct buf text = { NULL, 0, 0 };
	const char *arg, *eq;
	char *end, *ln, *tok[4], *save;
	char chunk[8192];
	unsigned long long n_msgs = 0, n_bytes = 0;
	size_t njobs = 0, nres = 0, i, w, ntok, lineno;
	ssize_t nr;
	long v;
	int a, fd, r, failures = 0;

	memset(&o, 0, sizeof(o));
	for (a = 1; a < argc; a++) {
		arg = argv[a];
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
			usage(NULL);
		if (strcmp(arg, "--discard") == 0) {
			o.discard = 1;
			continue;
		}
		if (strncmp(arg, "--", 2) != 0)
			usage("unexpected argument");
		eq = strchr(arg, '=');
		for (w = 0; w < 10; w++) {
			size_t nl = strlen(names[w]);

			if (strncmp(arg + 2, names[w], nl) == 0 &&
			    (arg[2 + nl] == '\0' || arg + 2 + nl == eq))
				break;
		}
		if (w == 10)
			usage("unknown option");
		if (eq != NULL)
			val[w] = eq + 1;
		else if (a + 1 < argc)
			val[w] = argv[++a];
		else
			usage("option needs a value");
	}
	o.host = val[0];
	o.port = val[1];
	o.ca = val[2];
	o.server_name = val[3];
	if (o.port == NULL || o.ca == NULL)
		usage("--port and --ca are required");
	v = strtol(o.port, &end, 10);
	if (*o.port == '\0' || *end != '\0' || v < 0 || v > 65535)
		usage("--port: not a port number");
	v = strtol(val[9], &end, 10);
	if (*val[9] == '\0' || *end != '\0' || v < 1 || v > 4096)
		usage("--jobs: not a number from 1 to 4096");
	o.jobs = (int)v;

	if (val[8] != NULL) {
		if ((fd = open(val[8], O_RDONLY | O_CLOEXEC)) == -1) {
			fprintf(stderr, "rawfetch: %s: %s\n", val[8],
			    strerror(errno));
			return 1;
		}
		while ((nr = read(fd, chunk, sizeof(chunk))) != 0) {
			if (nr == -1 && errno == EINTR)
				continue;
			if (nr == -1) {
				fprintf(stderr, "rawfetch: %s: %s\n", val[8],
				    strerror(errno));
				return 1;
			}
			buf_add(&text, chunk, (size_t)nr);
		}
		close(fd);
		buf_add(&text, "", 0);
		lineno = 0;
		for (ln = strtok_r(text.p, "\n", &save); ln != NULL;
		    ln = strtok_r(NULL, "\n", &save)) {
			char *s2, *t;

			lineno++;
			ntok = 0;
			for (t = strtok_r(ln, " \t\r\v\f", &s2); t != NULL;
			    t = strtok_r(NULL, " \t\r\v\f", &s2))
				if (ntok++ < 4)
					tok[ntok - 1] = t;
			if (ntok == 0)
				continue;
			if (ntok != 3) {
				fprintf(stderr, "rawfetch: %s: line %zu: "
				    "expected \"user password outdir\"\n",
				    val[8], lineno);
				return 2;
			}
			jobs = xrealloc(jobs, (njobs + 1) * sizeof(*jobs));
			jobs[njobs].user = tok[0];
			jobs[njobs].password = tok[1];
			jobs[njobs].out = tok[2];
			jobs[njobs].state_path = path_join(tok[2],
			    "state.json");
			njobs++;
		}
	} else {
		if (!NONEMPTY(val[4]) || !NONEMPTY(val[5]) ||
		    (!NONEMPTY(val[6]) && !o.discard))
			usage("--user, --password and --out (or --discard) "
			    "are required");
		one.user = val[4];
		one.password = val[5];
		one.out = val[6] != NULL ? val[6] : "";
		one.state_path = NULL;
		if (val[7] != NULL) {
			one.state_path = xrealloc(NULL, strlen(val[7]) + 1);
			strcpy(one.state_path, val[7]);
		}
		jobs = xrealloc(NULL, sizeof(*jobs));
		jobs[0] = one;
		njobs = 1;
	}

	if ((r = gnutls_certificate_allocate_credentials(&o.cred)) < 0) {
		fprintf(stderr, "rawfetch: %s\n", gnutls_strerror(r));
		return 1;
	}
	if ((r = gnutls_certificate_set_x509_trust_file(o.cred, o.ca,
	    GNUTLS_X509_FMT_PEM)) <= 0) {
		fprintf(stderr, "rawfetch: %s: %s\n", o.ca, r < 0 ?
		    gnutls_strerror(r) : "no certificate");
		return 1;
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	results = xrealloc(NULL, (njobs + 1) * sizeof(*results));
	if (njobs == 1) {
		sync_account(&o, &jobs[0], &results[0]);
		results[0].job = 0;
		nres = 1;
	} else if (njobs > 1)
		run_jobs(&o, jobs, njobs, results, &nres);
	for (i = 0; i < nres; i++) {
		if (!results[i].ok) {
			failures++;
			continue;
		}
		n_msgs += results[i].messages;
		n_bytes += results[i].bytes;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "rawfetch: %zu account(s), %llu messages, %.1f MB in "
	    "%.2f s\n", njobs, n_msgs, (double)n_bytes / 1e6,
	    (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	for (i = 0; i < nres; i++)
		if (!results[i].ok)
			fprintf(stderr, "rawfetch: FAILED %s: %s\n",
			    jobs[results[i].job].user, results[i].err);

	for (i = 0; i < njobs; i++)
		free(jobs[i].state_path);
	free(jobs);
	free(results);
	buf_free(&text);
	gnutls_certificate_free_credentials(o.cred);
	return failures > 0 ? 1 : 0;
}
