/*
 * --restore's source side (see restore_int.h): the mirrored mailboxes from
 * the source account's state, their messages from each mailbox's index,
 * and each message read back from its mbox as the connection takes it.
 * Everything here only reads: the files are opened read-only and no lock
 * is taken (a sync of the source appends past the committed size and
 * changes nothing below it).
 */
#include "restore_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "imap/writer.h"
#include "log.h"
#include "mirror/state.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/num.h"

/* The index's flag bits are the ones restore_format_flags() reads. */
_Static_assert(MSGINDEX_SEEN == RESTORE_FLAG_SEEN &&
    MSGINDEX_ANSWERED == RESTORE_FLAG_ANSWERED &&
    MSGINDEX_FLAGGED == RESTORE_FLAG_FLAGGED &&
    MSGINDEX_DELETED == RESTORE_FLAG_DELETED &&
    MSGINDEX_DRAFT == RESTORE_FLAG_DRAFT, "flag bits differ");

void
restore_source_box_free(struct rbox *b)
{
	if (b->msgs == NULL)
		return;
	for (size_t k = 0; k < b->n; k++)
		free(b->msgs[k].e.keywords);
	free(b->msgs);
	b->msgs = NULL;
}

/*
 * Loads the messages of b from its index (only one mailbox's at a time:
 * memory follows the largest mailbox, not the account).  0, or -1 (said).
 */
int
restore_source_box_load(struct restorer *r, struct rbox *b)
{
	struct msgindex_list l = { 0 };
	char *path, *error = NULL;
	int ret;

	b->n = 0;
	if ((path = msgindex_path(r->src_dir, b->file)) == NULL)
		return -1;
	ret = msgindex_load(path, b->file, &l, &error);
	free(path);
	if (ret == 1) {
		if (!b->rebuilt)
			log_info("account %s: mailbox %s has no message index: "
			    "read through one rebuilt from its mbox (flags "
			    "and keywords unknown: none are set; "
			    "INTERNALDATE from the From_ line, in UTC)",
			    r->src->name, b->display);
		b->rebuilt = true;
		ret = msgindex_rebuild(b->mbox_path, b->mbox_size, &l,
		    &error);
	}
	if (ret != 0) {
		log_error("account %s: mailbox %s: %s", r->src->name,
		    b->display, error != NULL ? error : "out of memory");
		free(error);
		return -1;
	}
	if ((b->msgs = calloc(l.n > 0 ? l.n : 1, sizeof *b->msgs)) == NULL) {
		log_error("account %s: mailbox %s: out of memory",
		    r->src->name, b->display);
		msgindex_list_free(&l);
		return -1;
	}
	for (size_t i = 0; i < l.n; i++) {
		/* The index may run ahead of the state after a crash: only
		 * what the state committed is the mirror. */
		if (l.v[i].offset + l.v[i].length > b->mbox_size)
			continue;
		b->msgs[b->n].e = l.v[i];
		l.v[i].keywords = NULL;
		b->n++;
	}
	msgindex_list_free(&l);
	return 0;
}

static bool
box_selected(const struct restorer *r, const struct rbox *b)
{
	return names_decide(&r->patterns, b->display, b->src_delim, NULL,
	    NULL);
}

/* A --mailbox pattern that matches no mirrored mailbox is a mistake: the
 * user asked for mail that is not there.  True when every one matched. */
bool
restore_source_patterns_matched(const struct restorer *r)
{
	bool all = true;

	for (size_t i = 0; i < r->o->n_mailboxes; i++) {
		if (r->patterns.include_hit == NULL ||
		    r->patterns.include_hit[i])
			continue;
		log_error("restore %s -> %s: --mailbox \"%s\" matches no "
		    "mailbox mirrored for account %s", r->src->name,
		    r->dst->name, r->o->mailboxes[i], r->src->name);
		all = false;
	}
	return all;
}

/* INBOX first, then by name: the order a mail reader shows. */
static int
box_order(const void *x, const void *y)
{
	const struct rbox *a = x, *b = y;
	bool ai = strcmp(a->raw, "INBOX") == 0, bi = strcmp(b->raw,
	    "INBOX") == 0;

	if (ai != bi)
		return ai ? -1 : 1;
	return strcmp(a->display, b->display);
}

/* What is left to do for b, for the progress lines' totals. */
static void
count_todo(struct restorer *r, const struct rbox *b)
{
	for (size_t k = 0; k < b->n; k++) {
		const struct rmsg *m = &b->msgs[k];

		if (restore_journal_find(&r->journal, b->box_hash, m->e.offset,
		    m->e.length, restore_digest64(m->e.digest)) ==
		    RESTORE_MARK_DONE)
			continue;
		r->todo_msgs++;
		r->todo_bytes += m->e.size;
	}
}

/*
 * Says so when the mirror of b has mbox files a UIDVALIDITY change kept
 * aside (a sync that met the mailbox recreated before this restore, say):
 * their messages are not restored, and the current mbox may hold few.
 */
static void
warn_kept_aside(const struct restorer *r, const struct rbox *b)
{
	char *dir, *slash;
	const char *base;
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if ((dir = strdup(b->mbox_path)) == NULL)
		return;
	slash = strrchr(dir, '/');
	*slash = '\0';		/* (mbox_path is "<output>/<file>") */
	base = slash + 1;
	if ((d = opendir(dir)) == NULL) {
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (restore_kept_aside(base, de->d_name))
			n++;
	closedir(d);
	if (n > 0)
		log_warnx("account %s: mailbox %s: %zu %s kept aside after a "
		    "UIDVALIDITY change beside %s %s not restored (only the "
		    "current mbox is)", r->src->name, b->display, n,
		    num_plural(n, "file", "files"), b->mbox_path,
		    num_plural(n, "is", "are"));
	free(dir);
}

int
restore_source_load(struct restorer *r)
{
	struct account_state st = { 0 };
	char *error = NULL;
	bool said = false;
	int ret = -1;

	if ((r->src_dir = state_account_dir(r->config->state_dir,
	    r->src->name)) == NULL)
		goto out;
	if (state_load(r->src_dir, &st, &error) != 0) {
		log_error("account %s: %s", r->src->name, error);
		goto out;
	}
	if ((r->boxes = calloc(st.n_mailboxes + 1, sizeof *r->boxes)) == NULL)
		goto out;
	for (size_t i = 0; i < st.n_mailboxes; i++) {
		const struct mailbox_state *ms = &st.mailboxes[i];
		struct rbox *b = &r->boxes[r->n_boxes];

		if (ms->file == NULL)
			continue;
		b->fd = -1;
		b->r = r;
		b->mbox_size = ms->mbox_size;
		b->raw = strdup(ms->name);
		b->file = strdup(ms->file);
		b->display = imap_utf7_decode(ms->name, strlen(ms->name));
		if (b->display == NULL)
			b->display = strdup(ms->name);
		if (asprintf(&b->mbox_path, "%s/%s", r->src->output,
		    ms->file) < 0)
			b->mbox_path = NULL;
		r->n_boxes++;
		if (b->raw == NULL || b->file == NULL || b->display == NULL ||
		    b->mbox_path == NULL)
			goto out;
		log_sanitize(b->display);
		b->box_hash = hash_fnv1a64(b->raw, strlen(b->raw));
		b->src_delim = restore_source_delimiter(b->raw, b->file);
		if (!box_selected(r, b)) {
			r->n_boxes--;
			free(b->raw);
			free(b->file);
			free(b->display);
			free(b->mbox_path);
			memset(b, 0, sizeof *b);
			continue;
		}
		warn_kept_aside(r, b);
		if (restore_source_box_load(r, b) != 0) {
			said = true;
			goto out;
		}
		count_todo(r, b);
		restore_source_box_free(b);
	}
	if (r->n_boxes > 1)
		qsort(r->boxes, r->n_boxes, sizeof *r->boxes, box_order);
	ret = 0;
out:
	if (ret != 0 && error == NULL && !said)
		log_error("account %s: cannot read the mirror (out of memory)",
		    r->src->name);
	free(error);
	state_clear(&st);
	return ret;
}

int
restore_source_open(struct restorer *r, struct rbox *b)
{
	if (b->fd != -1)
		return 0;
	/* Read only, no lock: a sync of the source appends past the
	 * committed size and never changes what is below it. */
	b->fd = fs_open_regular(b->mbox_path, O_RDONLY, 0);
	if (b->fd < 0) {
		log_error("account %s: mailbox %s: %s: %s", r->src->name,
		    b->display, b->mbox_path, b->fd == -2 ?
		    "not a regular file" : strerror(errno));
		b->fd = -1;
		return -1;
	}
	return 0;
}

/* Up to len bytes of the entry at pos into r->raw: >0, or -1 (logged). */
static ssize_t
read_entry(struct restorer *r, struct rbox *b, const struct rmsg *m,
    uint64_t pos)
{
	uint64_t left = m->e.length - pos;
	size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
	ssize_t n;

	do
		n = pread(b->fd, r->raw, want, (off_t)(m->e.offset + pos));
	while (n == -1 && errno == EINTR);
	if (n <= 0) {
		log_error("account %s: mailbox %s: %s: read at %" PRIu64 ": %s",
		    r->src->name, b->display, b->mbox_path, m->e.offset + pos,
		    n == 0 ? "the file ends before the indexed entry" :
		    strerror(errno));
		return -1;
	}
	return n;
}

static int
count_out(void *arg, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return 0;
}

static void
say_changed(struct restorer *r, struct rbox *b, struct append *a,
    const char *what)
{
	log_error("account %s: mailbox %s: %s at offset %" PRIu64 " of %s: "
	    "the mbox changed since it was indexed", r->src->name, b->display,
	    what, a->m->e.offset, b->mbox_path);
}

/* Hashes the bytes of a piece of an entry that follow its From_ line (the
 * bytes its digest was made of); *in_from: still in that line. */
static void
hash_piece(gnutls_hash_hd_t h, bool *in_from, const unsigned char *p,
    size_t n)
{
	const unsigned char *lf;

	if (*in_from) {
		if ((lf = memchr(p, '\n', n)) == NULL)
			return;
		*in_from = false;
		n -= (size_t)(lf + 1 - p);
		p = lf + 1;
	}
	(void)gnutls_hash(h, p, n);
}

/*
 * The first pass over an entry: that it starts like one and holds the
 * bytes the index recorded (its digest: an index pointing elsewhere, or an
 * mbox changed in place, would upload other bytes), and how long it
 * decodes (the literal's size must be known before its first byte).
 */
int
restore_source_measure(struct restorer *r, struct rbox *b, struct append *a)
{
	unsigned char digest[MBOX_DIGEST_LEN];
	struct mbox_decoder d;
	gnutls_hash_hd_t h;
	uint64_t pos = 0, full;
	bool in_from = true;
	ssize_t n;

	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) != 0) {
		log_error("account %s: mailbox %s: cannot start a digest",
		    r->src->name, b->display);
		return -1;
	}
	mbox_decode_init(&d, count_out, NULL);
	while (pos < a->m->e.length) {
		if ((n = read_entry(r, b, a->m, pos)) == -1) {
			gnutls_hash_deinit(h, NULL);
			return -1;
		}
		if (pos == 0 && (n < 5 || memcmp(r->raw, "From ", 5) != 0)) {
			gnutls_hash_deinit(h, NULL);
			say_changed(r, b, a, "no entry");
			return -1;
		}
		hash_piece(h, &in_from, r->raw, (size_t)n);
		(void)mbox_decode_write(&d, r->raw, (size_t)n);
		pos += (uint64_t)n;
	}
	gnutls_hash_deinit(h, digest);
	if (memcmp(digest, a->m->e.digest, MBOX_DIGEST_LEN) != 0) {
		say_changed(r, b, a, "other bytes than indexed");
		return -1;
	}
	(void)mbox_decode_end(&d, false);
	full = mbox_decode_size(&d);
	a->drop_added = mbox_decode_drop_added(full, a->m->e.size);
	a->literal_len = a->drop_added ? full - 2 : full;
	if (a->literal_len != a->m->e.size)
		log_warnx("account %s: mailbox %s: the message at offset %"
		    PRIu64 " reads back as %" PRIu64 " bytes, not the %" PRIu64
		    " the server reported (lone LFs come back as CRLF)",
		    r->src->name, b->display, a->m->e.offset, a->literal_len,
		    a->m->e.size);
	return 0;
}

static int
pend_out(void *arg, const void *data, size_t len)
{
	struct append *a = arg;

	if (a->pend_len + len > a->pend_cap) {
		size_t cap = a->pend_cap ? a->pend_cap : 2 * READ_CHUNK;
		unsigned char *p;

		while (cap < a->pend_len + len)
			cap *= 2;
		if ((p = realloc(a->pend, cap)) == NULL)
			return -1;
		a->pend = p;
		a->pend_cap = cap;
	}
	memcpy(a->pend + a->pend_len, data, len);
	a->pend_len += len;
	return 0;
}

/* The literal of an APPEND, decoded from the mbox as the session asks. */
ssize_t
restore_source_body(void *arg, void *buf, size_t size)
{
	struct append *a = arg;
	struct restorer *r = a->r;
	size_t n;
	ssize_t got;

	while (a->pend_off == a->pend_len) {
		a->pend_off = a->pend_len = 0;
		if (a->raw_pos < a->m->e.length) {
			if ((got = read_entry(r, a->b, a->m, a->raw_pos)) == -1)
				return -1;
			a->raw_pos += (uint64_t)got;
			if (mbox_decode_write(&a->dec, r->raw,
			    (size_t)got) != 0)
				return -1;
		} else if (!a->ended) {
			a->ended = true;
			if (mbox_decode_end(&a->dec, a->drop_added) != 0)
				return -1;
		} else {
			return -1;
		}
	}
	n = a->pend_len - a->pend_off;
	if (n > size)
		n = size;
	memcpy(buf, a->pend + a->pend_off, n);
	a->pend_off += n;
	r->sent_bytes += n;
	r->box_sent_bytes += n;
	return (ssize_t)n;
}

struct append *
restore_append_new(struct restorer *r, struct rbox *b, struct rmsg *m)
{
	struct append *a;

	if ((a = calloc(1, sizeof *a)) == NULL)
		return NULL;
	a->r = r;
	a->b = b;
	a->m = m;
	mbox_decode_init(&a->dec, pend_out, a);
	a->next = r->appends;
	if (a->next != NULL)
		a->next->prevp = &a->next;
	a->prevp = &r->appends;
	r->appends = a;
	return a;
}

void
restore_append_free(struct append *a)
{
	if (a->next != NULL)
		a->next->prevp = a->prevp;
	*a->prevp = a->next;
	free(a->pend);
	free(a);
}
