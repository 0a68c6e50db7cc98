#include "imapd_mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "transport_mem.h"

#define INTERNALDATE "\"21-Nov-2026 09:05:03 +0000\""
#define TOKENS_MAX 8

static void serve(struct ev_loop *, ev_prepare *, int);

void
imapd_init(struct imapd *d, struct ev_loop *loop)
{
	memset(d, 0, sizeof *d);
	d->loop = loop;
	d->caps = "IMAP4rev1 AUTH=PLAIN SASL-IR";
	d->user = "user";
	d->password = "s3cret";
	d->seen_created = transport_mem_created();
	ev_prepare_init(&d->prepare, serve);
	d->prepare.data = d;
	if (loop != NULL)
		ev_prepare_start(loop, &d->prepare);
}

void
imapd_attach(struct imapd *d, struct ev_loop *loop)
{
	imapd_stop(d);
	d->loop = loop;
	ev_prepare_start(loop, &d->prepare);
}

void
imapd_stop(struct imapd *d)
{
	if (d->loop != NULL && ev_is_active(&d->prepare))
		ev_prepare_stop(d->loop, &d->prepare);
}

struct imapd_mailbox *
imapd_add_mailbox(struct imapd *d, const char *name)
{
	struct imapd_mailbox *b;

	if (d->n_boxes == IMAPD_MAILBOXES_MAX)
		abort();
	b = &d->boxes[d->n_boxes++];
	memset(b, 0, sizeof *b);
	snprintf(b->name, sizeof b->name, "%s", name);
	b->delimiter = '/';
	b->flags = "\\HasNoChildren";
	b->uidvalidity = 1000;
	b->uidnext = 1;
	return b;
}

void
imapd_add_message(struct imapd_mailbox *b, const char *body)
{
	if (b->n_msgs == IMAPD_MESSAGES_MAX)
		abort();
	b->msgs[b->n_msgs].uid = b->uidnext++;
	b->msgs[b->n_msgs++].body = body;
}

unsigned
imapd_count(const struct imapd *d, const char *text)
{
	unsigned n = 0;

	for (const char *p = d->log; (p = strstr(p, text)) != NULL; p++)
		n++;
	return n;
}

static void
out(struct imapd *d, const char *fmt, ...) __attribute__((format(printf, 2,
    3)));

static void
out(struct imapd *d, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	transport_mem_push(d->conn, buf);
}

void
imapd_push(struct imapd *d, const char *line)
{
	out(d, "%s\r\n", line);
}

static void
hang_up(struct imapd *d)
{
	transport_mem_eof(d->conn);
	d->gone = true;
}

/* Splits line into tokens: atoms, quoted strings (unquoted in place) and
 * parenthesised groups (kept whole). */
static size_t
tokenize(char *line, char **tok)
{
	size_t n = 0;
	char *p = line, *w;
	int depth;

	while (*p != '\0' && n < TOKENS_MAX) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (*p == '"') {
			tok[n++] = w = ++p;
			while (*p != '\0' && *p != '"') {
				if (*p == '\\' && p[1] != '\0')
					p++;
				*w++ = *p++;
			}
			if (*p == '"')
				p++;
			*w = '\0';
			if (*p == ' ')
				p++;
			continue;
		}
		tok[n++] = p;
		depth = 0;
		while (*p != '\0' && (depth > 0 || *p != ' ')) {
			if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
			p++;
		}
		if (*p == ' ')
			*p++ = '\0';
	}
	return n;
}

/* LIST patterns: '*' matches anything, '%' anything but the delimiter. */
static bool
match(const char *pat, const char *name, char delimiter)
{
	if (*pat == '\0')
		return *name == '\0';
	if (*pat == '*' || *pat == '%') {
		for (const char *n = name;; n++) {
			if (match(pat + 1, n, delimiter))
				return true;
			if (*n == '\0' || (*pat == '%' && *n == delimiter))
				return false;
		}
	}
	return *pat == *name && match(pat + 1, name + 1, delimiter);
}

static struct imapd_mailbox *
find_box(struct imapd *d, const char *name)
{
	for (size_t i = 0; i < d->n_boxes; i++)
		if (strcmp(d->boxes[i].name, name) == 0)
			return &d->boxes[i];
	return NULL;
}

static void
status_line(struct imapd *d, const struct imapd_mailbox *b)
{
	char uv[32] = "";

	if (!b->no_uidvalidity)
		snprintf(uv, sizeof uv, "UIDVALIDITY %u ", b->uidvalidity);
	out(d, "* STATUS \"%s\" (%sUIDNEXT %u MESSAGES %zu)\r\n", b->name, uv,
	    b->uidnext, b->n_msgs);
}

static void
do_list(struct imapd *d, const char *tag, char **tok, size_t n)
{
	bool with_status = n >= 4 && strcasecmp(tok[2], "RETURN") == 0;

	if (d->list_no) {
		out(d, "%s NO LIST is not for you\r\n", tag);
		return;
	}
	for (size_t i = 0; n >= 2 && i < d->n_boxes; i++) {
		const struct imapd_mailbox *b = &d->boxes[i];

		if (!match(tok[1], b->name, b->delimiter))
			continue;
		out(d, "* LIST (%s) \"%c\" \"%s\"\r\n", b->flags, b->delimiter,
		    b->name);
		if (with_status)
			status_line(d, b);
	}
	out(d, "%s OK LIST done\r\n", tag);
}

static void
do_status(struct imapd *d, const char *tag, char **tok, size_t n)
{
	struct imapd_mailbox *b = n >= 1 ? find_box(d, tok[0]) : NULL;

	if (d->status_no || b == NULL) {
		out(d, "%s NO STATUS refused\r\n", tag);
		return;
	}
	status_line(d, b);
	out(d, "%s OK STATUS done\r\n", tag);
}

static void
do_examine(struct imapd *d, const char *tag, char **tok, size_t n)
{
	struct imapd_mailbox *b = n >= 1 ? find_box(d, tok[0]) : NULL;

	d->examines++;
	d->selected = NULL;
	if (b != NULL && b->examine_refusal != NULL) {
		out(d, "%s %s\r\n", tag, b->examine_refusal);
		return;
	}
	if (b == NULL || b->examine_no) {
		out(d, "%s NO [NONEXISTENT] no such mailbox\r\n", tag);
		return;
	}
	out(d, "* %zu EXISTS\r\n", b->n_msgs);
	if (!b->no_uidvalidity)
		out(d, "* OK [UIDVALIDITY %u] ok\r\n", b->uidvalidity);
	out(d, "* OK [UIDNEXT %u] ok\r\n", b->uidnext);
	out(d, "%s OK [READ-ONLY] examined\r\n", tag);
	d->selected = b;
}

static uint32_t
set_number(const char **p, uint32_t star)
{
	char *end;
	unsigned long v;

	if (**p == '*') {
		(*p)++;
		return star;
	}
	v = strtoul(*p, &end, 10);
	*p = end;
	return (uint32_t)v;
}

/* Whether uid is in the UID set ("1:*", "3,5:7"); '*' is the highest UID. */
static bool
in_set(const char *set, uint32_t uid, uint32_t star)
{
	const char *p = set;
	uint32_t a, b;

	while (*p != '\0' && *p != ' ') {
		a = b = set_number(&p, star);
		if (*p == ':') {
			p++;
			b = set_number(&p, star);
		}
		if ((uid >= a && uid <= b) || (uid >= b && uid <= a))
			return true;
		if (*p != ',')
			break;
		p++;
	}
	return false;
}

static void
send_body(struct imapd *d, size_t seq, const struct imapd_msg *msg)
{
	const char *date = d->no_internaldate ? "" : " INTERNALDATE "
	    INTERNALDATE;
	size_t len = strlen(msg->body);
	char fl[256] = "", *before = "", *after = "";

	if (d->flags_item != NULL) {
		snprintf(fl, sizeof fl, d->flags_first ? "%s " : " %s",
		    d->flags_item);
		if (d->flags_first)
			before = fl;
		else
			after = fl;
	}

	if (msg->uid == d->nil_uid) {
		out(d, "* %zu FETCH (UID %u INTERNALDATE " INTERNALDATE
		    " RFC822.SIZE %zu BODY[] NIL)\r\n", seq, msg->uid, len);
	} else if (d->string_bodies) {
		out(d, "* %zu FETCH (UID %u%s RFC822.SIZE %zu "
		    "%sBODY[] \"%s\"%s)\r\n", seq, msg->uid, date, len, before,
		    msg->body, after);
	} else if (d->uid_after_body) {
		out(d, "* %zu FETCH (RFC822.SIZE %zu %sBODY[] {%zu}\r\n", seq,
		    len, before, len);
		transport_mem_push(d->conn, msg->body);
		out(d, " UID %u%s%s)\r\n", msg->uid, date, after);
	} else {
		out(d, "* %zu FETCH (UID %u INTERNALDATE " INTERNALDATE
		    " RFC822.SIZE %zu %sBODY[] {%zu}\r\n", seq, msg->uid, len,
		    before, len);
		transport_mem_push(d->conn, msg->body);
		out(d, "%s)\r\n", after);
	}
}

/* The answer to "UID FETCH set (UID RFC822.SIZE)". */
static void
send_sizes(struct imapd *d, const char *tag, const char *set, uint32_t star)
{
	struct imapd_mailbox *b = d->selected;

	if (d->sizes_no) {
		out(d, "%s NO sizes unavailable\r\n", tag);
		return;
	}
	for (size_t k = 0; k < b->n_msgs; k++) {
		size_t i = d->reverse_sizes ? b->n_msgs - 1 - k : k;
		const struct imapd_msg *msg = &b->msgs[i];

		if (in_set(set, msg->uid, star))
			out(d, "* %zu FETCH (UID %u RFC822.SIZE %zu)\r\n",
			    i + 1, msg->uid, strlen(msg->body));
	}
	out(d, "%s OK FETCH done\r\n", tag);
	if (d->arrive_after_sizes != NULL) {
		imapd_add_message(d->selected, d->arrive_after_sizes);
		d->arrive_after_sizes = NULL;
	}
}

static void
do_uid_fetch(struct imapd *d, const char *tag, char **tok, size_t n)
{
	const struct imapd_mailbox *b = d->selected;
	uint32_t star;
	bool bodies;

	if (b == NULL || n < 2) {
		out(d, "%s BAD no mailbox selected\r\n", tag);
		return;
	}
	star = b->n_msgs > 0 ? b->msgs[b->n_msgs - 1].uid : 0;
	bodies = strstr(tok[1], "BODY.PEEK[]") != NULL;
	if (bodies) {
		d->body_fetches++;
		if (d->drop_on_fetch) {
			transport_mem_fail(d->conn, TRANSPORT_ERROR,
			    TRANSPORT_ERR_NETWORK, "connection reset by peer");
			d->gone = true;
			return;
		}
	}
	if (!bodies) {
		send_sizes(d, tag, tok[0], star);
		return;
	}
	if (d->fetch_refusal != NULL) {
		out(d, "%s %s\r\n", tag, d->fetch_refusal);
		return;
	}
	for (size_t i = 0; i < b->n_msgs; i++) {
		const struct imapd_msg *msg = &b->msgs[i];

		if (!in_set(tok[0], msg->uid, star))
			continue;
		if (msg->uid == d->omit_uid)
			continue;
		if (d->unavailable_after > 0 &&
		    d->conn_bodies >= d->unavailable_after) {
			out(d, "%s NO [UNAVAILABLE] enough for now\r\n", tag);
			return;
		}
		send_body(d, i + 1, msg);
		d->conn_bodies++;
		if (d->stall_after > 0 && d->conn_bodies >= d->stall_after) {
			d->gone = true;
			return;
		}
		if (d->bye_after > 0 && d->conn_bodies >= d->bye_after) {
			out(d, "* BYE enough for this session\r\n");
			hang_up(d);
			return;
		}
	}
	out(d, "%s OK FETCH done\r\n", tag);
}

static void
do_login(struct imapd *d, const char *tag, bool ok)
{
	if (d->auth_no || !ok) {
		out(d, "%s NO [AUTHENTICATIONFAILED] invalid credentials\r\n",
		    tag);
		return;
	}
	out(d, "%s OK [CAPABILITY %s] logged in\r\n", tag, d->caps);
}

static void
log_line(struct imapd *d, const char *line)
{
	size_t len = strlen(d->log);

	snprintf(d->log + len, sizeof d->log - len, "%s\n", line);
}

static void
command(struct imapd *d, char *line)
{
	char *tok[TOKENS_MAX], *tag, *verb, *rest;
	size_t n;

	if (d->idle_tag[0] != '\0') {
		log_line(d, line);
		if (strcmp(line, "DONE") == 0) {
			out(d, "%s OK IDLE done\r\n", d->idle_tag);
			d->idle_tag[0] = '\0';
		}
		return;
	}
	tag = line;
	if ((verb = strchr(line, ' ')) == NULL) {
		out(d, "* BAD no command\r\n");
		return;
	}
	*verb++ = '\0';
	log_line(d, verb);
	if ((rest = strchr(verb, ' ')) != NULL)
		*rest++ = '\0';
	else
		rest = verb + strlen(verb);
	if (strcasecmp(verb, "UID") == 0) {
		verb = rest;
		if ((rest = strchr(verb, ' ')) != NULL)
			*rest++ = '\0';
		else
			rest = verb + strlen(verb);
		n = tokenize(rest, tok);
		if (strcasecmp(verb, "FETCH") == 0)
			do_uid_fetch(d, tag, tok, n);
		else
			out(d, "%s BAD read-only here\r\n", tag);
		return;
	}
	n = tokenize(rest, tok);
	if (strcasecmp(verb, "CAPABILITY") == 0) {
		out(d, "* CAPABILITY %s\r\n%s OK done\r\n", d->caps, tag);
	} else if (strcasecmp(verb, "LOGIN") == 0) {
		do_login(d, tag, n == 2 && strcmp(tok[0], d->user) == 0 &&
		    strcmp(tok[1], d->password) == 0);
	} else if (strcasecmp(verb, "AUTHENTICATE") == 0) {
		do_login(d, tag, true);
	} else if (strcasecmp(verb, "LIST") == 0) {
		do_list(d, tag, tok, n);
	} else if (strcasecmp(verb, "STATUS") == 0) {
		do_status(d, tag, tok, n);
	} else if (strcasecmp(verb, "EXAMINE") == 0) {
		do_examine(d, tag, tok, n);
	} else if (strcasecmp(verb, "IDLE") == 0 && d->idle_no) {
		out(d, "%s NO IDLE not now\r\n", tag);
	} else if (strcasecmp(verb, "IDLE") == 0) {
		d->idles++;
		snprintf(d->idle_tag, sizeof d->idle_tag, "%.15s", tag);
		out(d, "+ idling\r\n");
	} else if (strcasecmp(verb, "LOGOUT") == 0 && d->logout_drop) {
		d->logouts++;
		hang_up(d);
	} else if (strcasecmp(verb, "LOGOUT") == 0) {
		d->logouts++;
		out(d, "* BYE logging out\r\n%s OK bye\r\n", tag);
		hang_up(d);
	} else if (strcasecmp(verb, "STARTTLS") == 0) {
		/* The handshake "completes" once the client has started it. */
		out(d, "%s OK begin TLS\r\n", tag);
	} else if (strcasecmp(verb, "NOOP") == 0) {
		out(d, "%s OK noop\r\n", tag);
	} else {
		out(d, "%s BAD unknown command\r\n", tag);
	}
}

/* Before the loop waits: greet a new connection, answer what the client
 * wrote since the last pass. */
static void
serve(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct imapd *d = w->data;
	const char *bytes;
	char *eol;
	size_t len;

	(void)loop;
	(void)revents;
	if (transport_mem_created() != d->seen_created) {
		d->seen_created = transport_mem_created();
		d->conn = transport_mem_last();
		d->in_len = 0;
		d->selected = NULL;
		d->conn_bodies = 0;
		d->idle_tag[0] = '\0';
		d->gone = false;
		if (d->conn == NULL)
			return;
		d->connections++;
		out(d, "* OK [CAPABILITY %s] imapd_mem ready\r\n", d->caps);
	} else if (transport_mem_last() != d->conn) {
		d->conn = NULL;
	}
	if (d->conn == NULL || d->gone)
		return;
	if (transport_mem_tls_started(d->conn))
		transport_mem_tls_ready(d->conn);
	bytes = transport_mem_take(d->conn);
	len = strlen(bytes);
	if (len > sizeof d->in - d->in_len - 1)
		abort();
	memcpy(d->in + d->in_len, bytes, len);
	d->in_len += len;
	d->in[d->in_len] = '\0';
	while (!d->gone && (eol = strstr(d->in, "\r\n")) != NULL) {
		char line[sizeof d->in];

		len = (size_t)(eol - d->in);
		memcpy(line, d->in, len);
		line[len] = '\0';
		memmove(d->in, eol + 2, d->in_len - len - 2 + 1);
		d->in_len -= len + 2;
		command(d, line);
	}
}
