/*
 * list: --list, what a sync would mirror.  One connection per account, one
 * at a time: LIST "" "*" (with RFC 5819 LIST-STATUS, the message counts in
 * the same round trip; else one pipelined STATUS per mailbox), then a table
 * on stdout and a warning for every pattern that matches nothing.  It reads
 * the server only: nothing is written, no state is touched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "cli.h"
#include "imap/writer.h"
#include "list.h"
#include "log.h"
#include "mirror/account_session.h"
#include "mirror/mirror.h"
#include "mirror/names.h"
#include "net/transport.h"
#include "util/nameindex.h"

/* As the sync: a server listing more than this is not believed. */
#define LIST_MAX_MAILBOXES 100000

struct listed {
	char *raw;		/* the name as the server sent it */
	char *display;		/* UTF-8 (decoded from modified UTF-7) */
	char *file;		/* the mbox path under output; NULL: none */
	char delimiter;
	bool noselect;
	int include, exclude;	/* the patterns that decided (names_decide) */
	bool has_count;
	uint32_t messages;
};

struct lister {
	struct ev_loop *loop;
	const struct account *account;
	struct listed *v;
	size_t n, cap;
	struct nameindex index;	/* v by raw name */
	struct names_patterns patterns;	/* with what they matched */
	unsigned status_pending;
	bool failed;
	bool too_many;
};

static void
listed_free_all(struct lister *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].raw);
		free(l->v[i].display);
		free(l->v[i].file);
	}
	free(l->v);
	nameindex_free(&l->index);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Names are indexed: a server listing 100,000 mailboxes, each answered by
 * a STATUS, costs no more than reading them. */
static const char *
listed_name(size_t i, void *arg)
{
	const struct lister *l = arg;

	return l->v[i].raw;
}

static struct listed *
find_listed(struct lister *l, const char *raw, size_t len)
{
	size_t i = nameindex_find(&l->index, raw, len);

	return i != SIZE_MAX ? &l->v[i] : NULL;
}

static int
add_listed(struct lister *l, const struct imap_list_item *item)
{
	struct listed *e;

	if (memchr(item->name, '\0', item->name_len) != NULL ||
	    find_listed(l, item->name, item->name_len) != NULL)
		return 0;
	if (l->n == LIST_MAX_MAILBOXES) {
		l->too_many = true;
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct listed *v = reallocarray(l->v, cap, sizeof *v);

		if (v == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	e = &l->v[l->n];
	memset(e, 0, sizeof *e);
	e->delimiter = item->delimiter;
	e->noselect = (item->flags & IMAP_LIST_NOSELECT) != 0;
	if ((e->raw = strndup(item->name, item->name_len)) == NULL)
		return -1;
	if (nameindex_add(&l->index, l->n) != 0) {
		free(e->raw);
		return -1;
	}
	e->display = imap_utf7_decode(item->name, item->name_len);
	if (e->display == NULL)
		e->display = strndup(item->name, item->name_len);
	if (!e->noselect)
		e->file = names_mbox_path(item->name, item->name_len,
		    item->delimiter, false);
	l->n++;
	if (e->display == NULL || (!e->noselect && e->file == NULL))
		return -1;
	/* Decided on the name as the sync sees it, then made printable. */
	e->include = e->exclude = -1;
	if (!e->noselect)
		(void)names_decide(&l->patterns, e->display, e->delimiter,
		    &e->include, &e->exclude);
	log_sanitize(e->display);
	if (e->file != NULL)
		log_sanitize(e->file);
	return 0;
}

static void
note_status(struct lister *l, const struct imap_response *resp)
{
	struct imap_status_item st;
	struct listed *e;

	if (imap_status_decode(resp, &st) != 0 || !st.has_messages)
		return;
	if ((e = find_listed(l, st.name, st.name_len)) == NULL)
		return;
	e->has_count = true;
	e->messages = st.messages;
}

static void
on_untagged(struct session *s, const struct imap_response *resp, void *arg)
{
	struct lister *l = arg;
	struct imap_list_item item;

	if (resp->keyword == NULL)
		return;
	if (strcmp(resp->keyword, "STATUS") == 0) {
		note_status(l, resp);
		return;
	}
	if (strcmp(resp->keyword, "LIST") != 0)
		return;
	if (imap_list_decode(resp, &item) != 0) {
		log_warnx("account %s: ignoring a LIST response of unexpected "
		    "shape", l->account->name);
		return;
	}
	if (add_listed(l, &item) != 0)
		session_abort(s, SESSION_ERR_LOCAL, "out of memory");
}

static void
on_status_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct lister *l = arg;

	/* A mailbox that refuses STATUS shows "-": the listing goes on. */
	(void)tagged;
	if (--l->status_pending == 0)
		session_logout(s);
}

static void
send_statuses(struct session *s, struct lister *l)
{
	struct imap_cmd cmd;

	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].noselect || l->v[i].has_count)
			continue;
		session_cmd_init(s, &cmd, "STATUS");
		imap_cmd_add_string(&cmd, l->v[i].raw, strlen(l->v[i].raw),
		    session_literal_mode(s));
		imap_cmd_add_raw(&cmd, "(MESSAGES)");
		if (session_send(s, &cmd, on_untagged, on_status_done,
		    l) != 0) {
			session_abort(s, SESSION_ERR_LOCAL,
			    "cannot queue STATUS");
			return;
		}
		l->status_pending++;
	}
	if (l->status_pending == 0)
		session_logout(s);
}

static void
on_list_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct lister *l = arg;

	if (tagged->status != IMAP_STATUS_OK) {
		log_error("account %s: LIST failed: %s", l->account->name,
		    tagged->text != NULL ? tagged->text : "");
		l->failed = true;
		session_logout(s);
		return;
	}
	if (l->too_many)
		log_warnx("account %s: the server lists more than %d "
		    "mailboxes; the rest are not shown", l->account->name,
		    LIST_MAX_MAILBOXES);
	send_statuses(s, l);
}

static void
on_ready(struct session *s, void *arg)
{
	struct lister *l = arg;
	struct imap_cmd cmd;

	session_cmd_init(s, &cmd, "LIST");
	imap_cmd_add_raw(&cmd, "\"\" \"*\"");
	if (session_has_cap(s, "LIST-STATUS"))
		imap_cmd_add_raw(&cmd, "RETURN (STATUS (MESSAGES))");
	if (session_send(s, &cmd, on_untagged, on_list_done, l) != 0) {
		session_abort(s, SESSION_ERR_LOCAL, "cannot queue LIST");
	}
}

static void
on_failed(struct session *s, enum session_error error, const char *message,
    void *arg)
{
	struct lister *l = arg;

	(void)s;
	log_error("account %s: %s: %s", l->account->name,
	    session_error_name(error), message);
	l->failed = true;
	ev_break(l->loop, EVBREAK_ALL);
}

static void
on_closed(struct session *s, void *arg)
{
	struct lister *l = arg;

	(void)s;
	ev_break(l->loop, EVBREAK_ALL);
}

static int
display_width(const char *s)
{
	int w = 0;

	/* Columns, roughly: UTF-8 continuation bytes take none. */
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* text, then spaces up to width columns (printf pads bytes, not columns). */
static void
print_padded(const char *text, int width)
{
	fputs(text, stdout);
	for (int w = display_width(text); w < width; w++)
		putchar(' ');
}

/* INBOX first, then by name: the order a mail reader shows. */
static int
listed_order(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;
	bool xi = strcmp(x->display, "INBOX") == 0;
	bool yi = strcmp(y->display, "INBOX") == 0;

	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->display, y->display);
}

/* Why a mailbox is or is not mirrored, in words; include_hit and
 * exclude_hit note the patterns that matched it. */
/* Why a mailbox is or is not mirrored, in words. */
static const char *
verdict(const struct account *a, const struct listed *e, char *buf,
    size_t size)
{
	if (e->noselect)
		return "not selectable (holds only other mailboxes)";
	if (a->mailboxes.n > 0 && e->include < 0)
		return "skipped: matches no pattern in mailboxes";
	if (e->exclude >= 0) {
		snprintf(buf, size, "excluded by \"%s\"",
		    a->exclude.v[e->exclude]);
		return buf;
	}
	if (e->include < 0)
		return "mirrored";
	snprintf(buf, size, "mirrored (mailboxes \"%s\")",
	    a->mailboxes.v[e->include]);
	return buf;
}

static int
print_table(struct lister *l)
{
	const struct account *a = l->account;
	int wname = 7, wfile = 4;
	size_t mirrored = 0;
	char why[512], count[16];

	/* The index holds the order the server gave: no more lookups. */
	nameindex_free(&l->index);
	qsort(l->v, l->n, sizeof *l->v, listed_order);
	for (size_t i = 0; i < l->n; i++) {
		int w = display_width(l->v[i].display);

		wname = w > wname ? w : wname;
		if (l->v[i].file != NULL && (w = display_width(
		    l->v[i].file)) > wfile)
			wfile = w;
	}
	wname = wname > 60 ? 60 : wname;
	wfile = wfile > 60 ? 60 : wfile;
	printf("account %s (%s:%u): %zu mailbox%s, files under %s\n",
	    a->name, a->host, a->port, l->n, l->n == 1 ? "" : "es",
	    a->output);
	fputs("  ", stdout);
	print_padded("mailbox", wname);
	printf(" %8s  ", "messages");
	print_padded("file", wfile);
	printf("  mirrored?\n");
	for (size_t i = 0; i < l->n; i++) {
		const struct listed *e = &l->v[i];
		const char *v = verdict(a, e, why, sizeof why);

		if (strncmp(v, "mirrored", 8) == 0)
			mirrored++;
		if (e->has_count)
			snprintf(count, sizeof count, "%u", e->messages);
		else
			snprintf(count, sizeof count, "-");
		fputs("  ", stdout);
		print_padded(e->display, wname);
		printf(" %8s  ", count);
		print_padded(e->file != NULL ? e->file : "-", wfile);
		printf("  %s\n", v);
	}
	printf("  %zu of %zu mirrored\n", mirrored, l->n);
	fflush(stdout);
	mirror_warn_unmatched(a, l->patterns.include_hit,
	    l->patterns.exclude_hit);
	return 0;
}

static int
list_account(struct ev_loop *loop, const struct config *config,
    const struct account *account)
{
	static const struct session_callbacks cb = {
		.ready = on_ready,
		.failed = on_failed,
		.closed = on_closed,
	};
	struct lister l = { .loop = loop, .account = account };
	struct session *s;

	nameindex_init(&l.index, listed_name, &l);
	if (names_patterns_init(&l.patterns,
	    (const char *const *)account->mailboxes.v, account->mailboxes.n,
	    (const char *const *)account->exclude.v, account->exclude.n) != 0 ||
	    (s = account_session_new(loop, account, config->timeout, &cb,
	    &l)) == NULL) {
		log_error("account %s: out of memory", account->name);
		names_patterns_free(&l.patterns);
		return 1;
	}
	if (session_start(s) == 0)
		ev_run(loop, 0);
	else
		l.failed = true;
	session_free(&s);
	if (!l.failed && print_table(&l) != 0)
		l.failed = true;
	listed_free_all(&l);
	names_patterns_free(&l.patterns);
	return l.failed ? 1 : 0;
}

int
list_run(const struct config *config, char *const *names, size_t nnames)
{
	struct ev_loop *loop;
	int status = 0;

	if (transport_global_init() != 0)
		return 1;
	if ((loop = ev_loop_new(EVFLAG_AUTO)) == NULL) {
		transport_global_deinit();
		return 1;
	}
	for (size_t i = 0; i < config->n_accounts; i++) {
		const struct account *a = &config->accounts[i];

		if (!cli_account_selected(names, nnames, a->name))
			continue;
		if (list_account(loop, config, a) != 0)
			status = 1;
	}
	ev_loop_destroy(loop);
	transport_global_deinit();
	return status;
}
