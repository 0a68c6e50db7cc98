/*
 * verify: --verify (see verify.h).  Per account, one after another: the
 * state is read once (what it had committed then is what is checked), each
 * mailbox's file is compared with its index without the server, then one
 * connection asks each mailbox's UIDs and sizes (EXAMINE and UID FETCH
 * pipelined, a few mailboxes ahead), and with --deep, each mailbox's
 * bodies again in batches, each hashed as it streams in.  Files are read
 * with pread on descriptors opened read-only; nothing is written.
 */
#include "verify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <gnutls/crypto.h>

#include "cli.h"
#include "imap/writer.h"
#include "log.h"
#include "mbox/mbox.h"
#include "mirror/account_session.h"
#include "mirror/layout.h"
#include "mirror/msgindex.h"
#include "mirror/state.h"
#include "net/transport.h"
#include "util/json.h"
#include "util/num.h"
#include "verify_compare.h"

/* Mailboxes whose EXAMINE and size query are in flight at once. */
#define VERIFY_MAILBOXES_AHEAD 4
/* UIDs a size query may list beyond EXISTS before the server counts as
 * listing without end. */
#define VERIFY_LISTED_SLACK 100000
/* --deep: a batch of bodies, and how many batches in flight. */
#define DEEP_BATCH_MESSAGES 500
#define DEEP_BATCH_BYTES (16ULL * 1024 * 1024)
#define DEEP_IN_FLIGHT 2
/* Seconds between --deep progress lines. */
#define DEEP_PROGRESS_SECS 5.0
#define READ_CHUNK (256 * 1024)

struct verifier;
struct uid_at;

/*
 * Where an account's check stands; set_step() is the only way to change
 * it.  LOCAL (the files) -> CONNECTING -> LISTING (EXAMINE and the size
 * query per mailbox) -> [DEEP (the bodies again) ->] LOGOUT -> DONE;
 * DONE from anywhere once the session has ended.
 */
enum verify_step {
	VS_LOCAL,
	VS_CONNECTING,
	VS_LISTING,
	VS_DEEP,
	VS_LOGOUT,
	VS_DONE,
};

enum index_origin {
	INDEX_NONE,		/* no file to check (nothing committed) */
	INDEX_LOADED,		/* the index file */
	INDEX_REBUILT,		/* none: rebuilt in memory from the file */
	INDEX_FAILED,		/* neither (file_error says why) */
};

struct vmbx {
	struct verifier *vf;
	const struct mailbox_state *ms;
	char *display;		/* UTF-8, made printable */
	char *path;		/* the mbox; NULL: no file yet */
	enum index_origin index;
	struct verify_indexed *ix;
	size_t nix;
	uint64_t file_size;
	char *file_error;	/* the file could not be read: a problem */
	/* Against the server */
	bool examined;		/* EXAMINE answered OK */
	uint32_t uidvalidity, exists;
	struct verify_listed *listed;
	size_t nlisted, cap_listed;
	bool server_checked;
	char *server_error;	/* could not be checked there */
	bool gone;		/* EXAMINE refused: not on the server */
	struct verify_server_counts counts;
	/* --deep */
	struct uid_at *byuid;	/* ix by UID, for --deep */
	bool deep_done;
	size_t deep_checked;
	struct verify_problems problems;
};

struct verifier {
	enum verify_step step;
	struct ev_loop *loop;
	const struct config *config;
	const struct account *account;
	bool deep;
	char *state_dir;
	struct account_state st;
	char *state_error;
	long sync_pid;
	bool sync_running;
	struct vmbx *v;
	size_t n;
	/* The connection */
	struct session *s;
	char *connect_error;	/* the session failed */
	size_t next_send, pending;
	/* --deep: the mailbox being fetched, its UIDs and where they stand */
	size_t deep_cur;
	bool deep_examined;
	uint32_t *deep_uids;
	uint64_t *deep_sizes;
	size_t deep_n, deep_next;
	size_t in_flight;
	struct mbox_digest *digest;
	bool digesting;
	uint32_t digest_msgno;
	uint8_t pending_digest[MBOX_DIGEST_LEN];
	bool have_pending;
	uint8_t (*server_digests)[VERIFY_DIGEST_LEN];	/* rebuilt index */
	size_t n_server_digests;
	ev_timer progress;
	ev_tstamp deep_started;
	uint64_t deep_total_bytes, deep_bytes;
	size_t deep_total_messages, deep_messages;
};

static const char *
step_name(enum verify_step step)
{
	switch (step) {
	case VS_LOCAL:
		return "local";
	case VS_CONNECTING:
		return "connecting";
	case VS_LISTING:
		return "listing";
	case VS_DEEP:
		return "deep";
	case VS_LOGOUT:
		return "logout";
	case VS_DONE:
		return "done";
	}
	return "?";
}

static void
set_step(struct verifier *vf, enum verify_step step)
{
	if (vf->step == step)
		return;
	log_debug("account %s: verify %s -> %s", vf->account->name,
	    step_name(vf->step), step_name(step));
	vf->step = step;
}

static void send_examines(struct verifier *);
static void server_phase_done(struct verifier *);
static void deep_next_mailbox(struct verifier *);

/* Reading the file */

/* The n bytes at offset, all of them (a shorter read: -1, EIO). */
static int
read_at(int fd, void *buf, size_t n, uint64_t offset)
{
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = pread(fd, (char *)buf + done, n - done,
		    (off_t)(offset + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		done += (size_t)r;
	}
	return 0;
}

/* Where the bytes at an indexed entry's place stand: its From_ line, then
 * the bytes its digest was made of.  -1 on a read error. */
static int
entry_at(int fd, uint64_t file_size, struct verify_indexed *e,
    enum verify_at *at_r)
{
	unsigned char *buf, digest[MBOX_DIGEST_LEN];
	gnutls_hash_hd_t h;
	uint64_t pos, end = e->offset + e->length;
	size_t n, line;
	unsigned char *lf;
	int r = -1;

	if (end > file_size || e->length < 6) {
		*at_r = end > file_size ? VERIFY_AT_PAST_END :
		    VERIFY_AT_NO_FROM;
		return 0;
	}
	if ((buf = malloc(READ_CHUNK)) == NULL)
		return -1;
	n = e->length < MBOX_FROM_LINE_MAX ? e->length : MBOX_FROM_LINE_MAX;
	if (read_at(fd, buf, n, e->offset) != 0)
		goto out;
	lf = memchr(buf, '\n', n);
	if (memcmp(buf, "From ", 5) != 0 || lf == NULL) {
		*at_r = VERIFY_AT_NO_FROM;
		r = 0;
		goto out;
	}
	line = (size_t)(lf - buf) + 1;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) != 0)
		goto out;
	for (pos = e->offset + line; pos < end; pos += n) {
		n = end - pos < READ_CHUNK ? (size_t)(end - pos) : READ_CHUNK;
		if (read_at(fd, buf, n, pos) != 0) {
			gnutls_hash_deinit(h, NULL);
			goto out;
		}
		(void)gnutls_hash(h, buf, n);
	}
	gnutls_hash_deinit(h, digest);
	*at_r = memcmp(digest, e->digest, MBOX_DIGEST_LEN) == 0 ?
	    VERIFY_AT_INTACT : VERIFY_AT_DIFFERS;
	memcpy(e->file_digest, digest, VERIFY_DIGEST_LEN);
	e->has_file_digest = true;
	r = 0;
out:
	free(buf);
	return r;
}

struct lf_reader {
	int fd;
	bool failed;
};

static bool
only_lf(uint64_t offset, uint64_t len, void *arg)
{
	struct lf_reader *rd = arg;
	unsigned char buf[4096];

	while (len > 0) {
		size_t n = len < sizeof buf ? (size_t)len : sizeof buf;

		if (read_at(rd->fd, buf, n, offset) != 0) {
			rd->failed = true;
			return true;
		}
		for (size_t i = 0; i < n; i++)
			if (buf[i] != '\n')
				return false;
		offset += n;
		len -= n;
	}
	return true;
}

static int
add_found(struct verify_found **v, size_t *n, size_t *cap,
    const struct verify_found *f)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct verify_found *p = reallocarray(*v, c, sizeof *p);

		if (p == NULL)
			return -1;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = *f;
	return 0;
}

/* The entries the file holds, in file order, from 0 to file_size. */
static int
scan_file(struct vmbx *mb, struct verify_found **found_r, size_t *n_r,
    char **error_r)
{
	struct mbox_scan *scan;
	struct mbox_scan_entry e;
	struct verify_found f;
	size_t cap = 0;
	int r;

	*found_r = NULL;
	*n_r = 0;
	if (mbox_scan_open(mb->path, mb->file_size, &scan, error_r) != 0)
		return -1;
	while ((r = mbox_scan_next(scan, &e, error_r)) == 1) {
		if (e.skipped > 0) {
			memset(&f, 0, sizeof f);
			f.offset = e.entry.offset - e.skipped;
			f.length = e.skipped;
			if (add_found(found_r, n_r, &cap, &f) != 0)
				goto oom;
		}
		f.offset = e.entry.offset;
		f.length = e.entry.length;
		f.from_line = true;
		memcpy(f.digest, e.entry.digest, VERIFY_DIGEST_LEN);
		if (add_found(found_r, n_r, &cap, &f) != 0)
			goto oom;
	}
	mbox_scan_close(&scan);
	return r;
oom:
	mbox_scan_close(&scan);
	return log_set_error(error_r, "out of memory");
}

/* The index's entries this check covers: committed ones, of the
 * mailbox's UIDVALIDITY (or of none known: rebuilt). */
static int
take_index(struct vmbx *mb, const struct msgindex_list *l)
{
	uint64_t committed = mb->ms->mbox_size;

	if ((mb->ix = calloc(l->n ? l->n : 1, sizeof *mb->ix)) == NULL)
		return -1;
	for (size_t i = 0; i < l->n; i++) {
		const struct msgindex_entry *e = &l->v[i];
		struct verify_indexed *x = &mb->ix[mb->nix];

		if (e->offset + e->length > committed || (e->uidvalidity !=
		    0 && e->uidvalidity != mb->ms->uidvalidity))
			continue;
		x->uid = e->uid;
		x->size = e->size;
		x->offset = e->offset;
		x->length = e->length;
		memcpy(x->digest, e->digest, VERIFY_DIGEST_LEN);
		mb->nix++;
	}
	return 0;
}

/* "what: detail", or detail alone (what NULL). */
static void
set_file_error(struct vmbx *mb, const char *what, const char *detail)
{
	free(mb->file_error);
	if (asprintf(&mb->file_error, "%s%s%s", what != NULL ? what : "",
	    what != NULL ? ": " : "", detail) == -1)
		mb->file_error = NULL;
	if (mb->file_error != NULL)
		log_sanitize(mb->file_error);
}

/* Loads the index, or rebuilds one from the mbox when there is none. */
static int
load_index(struct verifier *vf, struct vmbx *mb)
{
	struct msgindex_list l = { 0 };
	char *ipath, *error = NULL;
	int r;

	if ((ipath = msgindex_path(vf->state_dir, mb->ms->file)) == NULL)
		return -1;
	r = msgindex_load(ipath, mb->ms->file, &l, &error);
	free(ipath);
	if (r == 1 && mb->ms->mbox_size == 0) {
		/* Nothing committed: nothing to index. */
		mb->index = INDEX_LOADED;
		r = 0;
	} else if (r == 1) {
		log_info("account %s: mailbox %s: no index; rebuilt from the "
		    "mbox in memory: the file's entries can only be counted, "
		    "not checked (their UIDs and digests were never recorded)",
		    vf->account->name, mb->display);
		r = msgindex_rebuild(mb->path, mb->ms->mbox_size <
		    mb->file_size ? mb->ms->mbox_size : mb->file_size, &l,
		    &error);
		mb->index = INDEX_REBUILT;
	} else {
		mb->index = INDEX_LOADED;
	}
	if (r != 0) {
		set_file_error(mb, NULL, error != NULL ? error :
		    "out of memory");
		mb->index = INDEX_FAILED;
		free(error);
		msgindex_list_free(&l);
		return 0;
	}
	r = take_index(mb, &l);
	msgindex_list_free(&l);
	return r;
}

/* The file against its index (verify_compare_local()). */
static int
check_entries(struct vmbx *mb, int fd)
{
	struct verify_found *found = NULL;
	struct lf_reader rd = { .fd = fd };
	char *error = NULL;
	size_t nfound = 0, f = 0;
	int r = -1;

	if (scan_file(mb, &found, &nfound, &error) != 0) {
		set_file_error(mb, NULL, error != NULL ? error :
		    "out of memory");
		free(error);
		return 0;
	}
	for (size_t i = 0; i < mb->nix; i++) {
		struct verify_indexed *e = &mb->ix[i];

		/* Most entries are where the scan found them: their digest
		 * is the scan's, no second read. */
		while (f < nfound && found[f].offset < e->offset)
			f++;
		if (f < nfound && found[f].offset == e->offset &&
		    found[f].length == e->length) {
			e->at = memcmp(found[f].digest, e->digest,
			    VERIFY_DIGEST_LEN) == 0 ? VERIFY_AT_INTACT :
			    VERIFY_AT_DIFFERS;
			memcpy(e->file_digest, found[f].digest,
			    VERIFY_DIGEST_LEN);
			e->has_file_digest = true;
			continue;
		}
		if (entry_at(fd, mb->file_size, e, &e->at) != 0) {
			set_file_error(mb, "read", strerror(errno));
			goto out;
		}
	}
	if (verify_compare_local(mb->ix, mb->nix, found, nfound,
	    mb->ms->mbox_size, mb->file_size, only_lf, &rd,
	    &mb->problems) != 0)
		goto out;
	if (rd.failed)
		set_file_error(mb, "read", strerror(errno));
	r = 0;
out:
	free(found);
	return r;
}

/*
 * The local check of one mailbox.  -1 only when out of memory; what is
 * wrong with the file is in mb.
 */
static int
check_file(struct verifier *vf, struct vmbx *mb)
{
	struct stat st;
	struct verify_problem tail = { .kind = VERIFY_TAIL };
	int fd;

	if (mb->ms->file == NULL || mb->ms->uidvalidity == 0)
		return 0;	/* nothing mirrored yet */
	if ((mb->path = layout_path(vf->account->output, mb->ms->file)) ==
	    NULL)
		return -1;
	fd = open(mb->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT && mb->ms->mbox_size == 0)
		return 0;	/* an empty mailbox never made one */
	if (fd == -1 || fstat(fd, &st) != 0) {
		set_file_error(mb, NULL, strerror(errno));
		if (fd != -1)
			(void)close(fd);
		mb->index = INDEX_FAILED;
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		set_file_error(mb, NULL, "not a regular file");
		(void)close(fd);
		mb->index = INDEX_FAILED;
		return 0;
	}
	mb->file_size = (uint64_t)st.st_size;
	if (load_index(vf, mb) != 0) {
		(void)close(fd);
		return -1;
	}
	if (mb->index == INDEX_LOADED) {
		if (check_entries(mb, fd) != 0 && mb->file_error == NULL) {
			(void)close(fd);
			return -1;
		}
	} else if (mb->index == INDEX_REBUILT &&
	    mb->file_size != mb->ms->mbox_size) {
		/* Rebuilt from the file itself: only its size tells. */
		tail.kind = mb->file_size > mb->ms->mbox_size ? VERIFY_TAIL :
		    VERIFY_SHORT;
		tail.offset = tail.kind == VERIFY_TAIL ? mb->ms->mbox_size :
		    mb->file_size;
		tail.length = mb->file_size > mb->ms->mbox_size ?
		    mb->file_size - mb->ms->mbox_size : 0;
		tail.a = mb->file_size;
		tail.b = mb->ms->mbox_size;
		if (verify_problems_add(&mb->problems, &tail) != 0) {
			(void)close(fd);
			return -1;
		}
	}
	(void)close(fd);
	/* A sync appending right now: its bytes past the committed end are
	 * expected, not a problem. */
	if (vf->sync_running)
		for (size_t i = 0; i < mb->problems.n; i++)
			if (mb->problems.v[i].kind == VERIFY_TAIL) {
				mb->problems.v[i] = mb->problems.v[
				    --mb->problems.n];
				i--;
			}
	return 0;
}

/* Against the server */

static struct vmbx *
next_to_examine(struct verifier *vf)
{
	while (vf->next_send < vf->n) {
		struct vmbx *mb = &vf->v[vf->next_send++];

		if (mb->ms->uidvalidity != 0)
			return mb;
	}
	return NULL;
}

static void
on_examine_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct vmbx *mb = arg;
	uint32_t v;

	(void)s;
	if (resp->keyword != NULL && strcmp(resp->keyword, "EXISTS") == 0 &&
	    resp->has_number) {
		mb->exists = resp->number;
		return;
	}
	if (resp->status == IMAP_STATUS_OK && resp->code != NULL &&
	    strcmp(resp->code, "UIDVALIDITY") == 0 && resp->code_nargs >= 1 &&
	    imap_arg_uint32(&resp->code_args[0], &v) == 0)
		mb->uidvalidity = v;
}

static void
on_examine_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct vmbx *mb = arg;
	char text[300];

	(void)s;
	if (tagged->status == IMAP_STATUS_OK) {
		mb->examined = true;
		return;
	}
	mb->gone = true;
	free(mb->server_error);
	if (asprintf(&mb->server_error, "EXAMINE failed: %s",
	    imap_response_text(tagged, text, sizeof text)) == -1)
		mb->server_error = NULL;
	else
		log_sanitize(mb->server_error);
}

/* The items of an untagged "* n FETCH (...)" response. */
static int
decode_fetch(const struct imap_response *resp, struct imap_fetch_item *item)
{
	if (resp->keyword == NULL || strcmp(resp->keyword, "FETCH") != 0 ||
	    !resp->has_number || resp->nargs != 1 ||
	    resp->args[0].type != IMAP_ARG_LIST)
		return -1;
	return imap_fetch_decode(resp->number, resp->args[0].list,
	    resp->args[0].count, item);
}

static void
on_sizes_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct vmbx *mb = arg;
	struct imap_fetch_item item;

	if (mb->vf->step != VS_LISTING || !mb->examined ||
	    decode_fetch(resp, &item) != 0 || !item.has_uid)
		return;
	if (mb->nlisted >= (size_t)mb->exists + VERIFY_LISTED_SLACK) {
		session_abort(s, SESSION_ERR_PROTOCOL, "the server listed more "
		    "messages than the mailbox holds (%u)", mb->exists);
		return;
	}
	if (mb->nlisted == mb->cap_listed) {
		size_t cap = mb->cap_listed ? mb->cap_listed * 2 : 256;
		struct verify_listed *v = reallocarray(mb->listed, cap,
		    sizeof *v);

		if (v == NULL) {
			session_abort(s, SESSION_ERR_LOCAL, "out of memory");
			return;
		}
		mb->listed = v;
		mb->cap_listed = cap;
	}
	mb->listed[mb->nlisted].uid = item.uid;
	mb->listed[mb->nlisted++].size = item.has_size ? item.size : 0;
}

/* A mailbox's listing is complete: compare it with its index. */
static int
compare_listing(struct vmbx *mb)
{
	struct verify_problem p = { .kind = VERIFY_UIDVALIDITY };

	if (mb->uidvalidity != mb->ms->uidvalidity) {
		p.a = mb->uidvalidity;
		p.b = mb->ms->uidvalidity;
		mb->server_checked = true;
		return verify_problems_add(&mb->problems, &p);
	}
	if (mb->index == INDEX_FAILED || mb->index == INDEX_NONE) {
		/* Nothing indexed to compare with (the file's error is told
		 * already); a mailbox that never made a file must be
		 * empty up to the last UID. */
		if (mb->index == INDEX_FAILED)
			return 0;
	}
	mb->server_checked = true;
	return verify_compare_server(mb->listed, mb->nlisted, mb->ix, mb->nix,
	    mb->ms->last_uid, mb->ms->skipped, mb->ms->n_skipped,
	    &mb->problems, &mb->counts);
}



static void
on_sizes_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct vmbx *mb = arg;
	struct verifier *vf = mb->vf;
	char text[300];

	vf->pending--;
	if (mb->examined && (tagged->status == IMAP_STATUS_OK ||
	    mb->exists == 0)) {
		if (compare_listing(mb) != 0) {
			session_abort(s, SESSION_ERR_LOCAL, "out of memory");
			return;
		}
	} else if (mb->examined) {
		free(mb->server_error);
		if (asprintf(&mb->server_error, "UID FETCH failed: %s",
		    imap_response_text(tagged, text, sizeof text)) == -1)
			mb->server_error = NULL;
		else
			log_sanitize(mb->server_error);
	}
	send_examines(vf);
}

/* EXAMINE and the size query of the next mailboxes, a few ahead. */
static void
send_examines(struct verifier *vf)
{
	struct imap_cmd cmd;
	struct vmbx *mb;

	while (vf->pending < VERIFY_MAILBOXES_AHEAD &&
	    (mb = next_to_examine(vf)) != NULL) {
		session_cmd_init(vf->s, &cmd, "EXAMINE");
		imap_cmd_add_string(&cmd, mb->ms->name, strlen(mb->ms->name),
		    session_literal_mode(vf->s));
		if (session_send(vf->s, &cmd, on_examine_untagged,
		    on_examine_done, mb) != 0)
			goto fail;
		session_cmd_init(vf->s, &cmd, "UID FETCH");
		imap_cmd_add_raw(&cmd, "1:* (UID RFC822.SIZE)");
		if (session_send(vf->s, &cmd, on_sizes_untagged, on_sizes_done,
		    mb) != 0)
			goto fail;
		vf->pending++;
	}
	if (vf->pending == 0)
		server_phase_done(vf);
	return;
fail:
	session_abort(vf->s, SESSION_ERR_LOCAL, "cannot queue a command");
}

/* --deep */

struct uid_at {
	uint32_t uid;
	size_t i;		/* in mb->ix */
};

static int
uid_at_cmp(const void *x, const void *y)
{
	const struct uid_at *a = x, *b = y;

	if (a->uid != b->uid)
		return a->uid < b->uid ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* mb->byuid: mb->ix's UIDs in order, with where each is.  0 or -1. */
static int
sort_by_uid(struct vmbx *mb)
{
	if (mb->byuid != NULL)
		return 0;
	if ((mb->byuid = calloc(mb->nix + 1, sizeof *mb->byuid)) == NULL)
		return -1;
	for (size_t i = 0; i < mb->nix; i++) {
		mb->byuid[i].uid = mb->ix[i].uid;
		mb->byuid[i].i = i;
	}
	if (mb->nix > 0)
		qsort(mb->byuid, mb->nix, sizeof *mb->byuid, uid_at_cmp);
	return 0;
}

/* The first position in mb->byuid with uid, or SIZE_MAX. */
static size_t
find_uid(const struct vmbx *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->nix;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mb->byuid[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mb->nix && mb->byuid[lo].uid == uid ? lo : SIZE_MAX;
}

/* The UIDs whose bodies --deep fetches for mb, ascending, with their
 * sizes: the indexed ones the server still lists (an index without UIDs:
 * every one listed up to the last committed, not given up). */
static int
deep_uids(struct vmbx *mb, uint32_t **uids_r, uint64_t **sizes_r,
    size_t *n_r)
{
	bool rebuilt = mb->counts.uids_unknown;
	size_t n = 0;

	*uids_r = NULL;
	*sizes_r = NULL;
	*n_r = 0;
	if (!mb->server_checked || mb->uidvalidity != mb->ms->uidvalidity ||
	    mb->nix == 0 || (mb->index != INDEX_LOADED &&
	    mb->index != INDEX_REBUILT))
		return 0;
	*uids_r = calloc(mb->nlisted + 1, sizeof **uids_r);
	*sizes_r = calloc(mb->nlisted + 1, sizeof **sizes_r);
	if (*uids_r == NULL || *sizes_r == NULL || sort_by_uid(mb) != 0)
		return -1;
	/* listed is sorted by UID (verify_compare_server()). */
	for (size_t i = 0; i < mb->nlisted; i++) {
		const struct verify_listed *l = &mb->listed[i];
		bool take = false;

		if (l->uid > mb->ms->last_uid || (n > 0 &&
		    (*uids_r)[n - 1] == l->uid))
			continue;
		if (rebuilt)
			take = !state_is_skipped(mb->ms, l->uid);
		else
			take = find_uid(mb, l->uid) != SIZE_MAX;
		if (!take)
			continue;
		(*uids_r)[n] = l->uid;
		(*sizes_r)[n++] = l->size;
	}
	*n_r = n;
	return 0;
}

static void
on_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct verifier *vf = w->data;
	ev_tstamp elapsed = ev_now(loop) - vf->deep_started;
	double rate = elapsed > 0 ? vf->deep_bytes / elapsed : 0;
	double left = vf->deep_total_bytes > vf->deep_bytes ?
	    (double)(vf->deep_total_bytes - vf->deep_bytes) : 0;

	(void)revents;
	if (vf->deep_cur >= vf->n)
		return;
	log_info("account %s: --deep: mailbox %s: %zu/%zu messages; account: "
	    "%zu/%zu messages, %.1f/%.1f MB, %.2f MB/s, about %.0fs left",
	    vf->account->name, vf->v[vf->deep_cur].display,
	    vf->v[vf->deep_cur].deep_checked, vf->deep_n, vf->deep_messages,
	    vf->deep_total_messages, vf->deep_bytes / 1e6,
	    vf->deep_total_bytes / 1e6, rate / 1e6,
	    rate > 0 ? left / rate : 0);
}

/* The server's digest of uid (--deep), compared with the index's. */
static int
deep_compare(struct verifier *vf, struct vmbx *mb, uint32_t uid,
    const uint8_t digest[MBOX_DIGEST_LEN], uint64_t size)
{
	struct verify_problem p = { .kind = VERIFY_DEEP_DIFFERS, .uid = uid };

	vf->deep_messages++;
	vf->deep_bytes += size;
	mb->deep_checked++;
	if (mb->counts.uids_unknown) {
		memcpy(vf->server_digests[vf->n_server_digests++], digest,
		    VERIFY_DIGEST_LEN);
		return 0;
	}
	for (size_t k = find_uid(mb, uid); k < mb->nix &&
	    mb->byuid[k].uid == uid; k++) {
		const struct verify_indexed *e = &mb->ix[mb->byuid[k].i];

		/* The file's bytes, not the index's record of them: an entry
		 * changed on disk differs; one not in the file at all is
		 * told by the local check already. */
		if (!e->has_file_digest || memcmp(e->file_digest, digest,
		    VERIFY_DIGEST_LEN) == 0)
			continue;
		p.offset = e->offset;
		p.length = e->length;
		if (verify_problems_add(&mb->problems, &p) != 0)
			return -1;
	}
	return 0;
}

/* Whether uid is one this mailbox's --deep asked for (and not yet had). */
static bool
deep_asked(const struct verifier *vf, uint32_t uid, size_t *pos_r)
{
	size_t lo = 0, hi = vf->deep_next;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (vf->deep_uids[mid] == uid) {
			*pos_r = mid;
			return vf->deep_sizes[mid] != UINT64_MAX;
		}
		if (vf->deep_uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void
deep_got(struct session *s, struct verifier *vf, uint32_t uid,
    const uint8_t digest[MBOX_DIGEST_LEN])
{
	struct vmbx *mb = &vf->v[vf->deep_cur];
	uint64_t size;
	size_t pos;

	/* Each asked UID counts once, whatever a server repeats. */
	if (!deep_asked(vf, uid, &pos))
		return;
	size = vf->deep_sizes[pos];
	vf->deep_sizes[pos] = UINT64_MAX;
	if (deep_compare(vf, mb, uid, digest, size) != 0)
		session_abort(s, SESSION_ERR_LOCAL, "out of memory");
}

/* The value of the body item of a FETCH response, or NULL. */
static const struct imap_arg *
fetch_body(const struct imap_response *resp)
{
	const struct imap_arg *items = resp->args[0].list;

	for (size_t i = 0; i + 1 < resp->args[0].count; i += 2)
		if (items[i].type == IMAP_ARG_ATOM &&
		    strcasecmp(items[i].str, "BODY[]") == 0)
			return &items[i + 1];
	return NULL;
}

static void
on_deep_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct verifier *vf = arg;
	struct imap_fetch_item item;
	const struct imap_arg *body;
	uint8_t digest[MBOX_DIGEST_LEN];
	bool pending = vf->have_pending && resp->has_number &&
	    resp->number == vf->digest_msgno;

	if (vf->step != VS_DEEP || !vf->deep_examined ||
	    decode_fetch(resp, &item) != 0 || !item.has_uid)
		return;
	if (pending) {
		vf->have_pending = false;
		deep_got(s, vf, item.uid, vf->pending_digest);
		return;
	}
	if ((body = fetch_body(resp)) == NULL ||
	    body->type != IMAP_ARG_STRING)
		return;
	/* A body sent as a quoted string: hashed here. */
	if (mbox_digest_write(vf->digest, body->str, body->len) != 0 ||
	    mbox_digest_end(vf->digest, digest, NULL) != 0) {
		session_abort(s, SESSION_ERR_LOCAL, "cannot hash a message");
		return;
	}
	deep_got(s, vf, item.uid, digest);
}

static int
deep_sink(void *arg, enum imap_sink_event event,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	struct verifier *vf = arg;

	switch (event) {
	case IMAP_SINK_BEGIN:
		vf->digesting = vf->step == VS_DEEP && vf->deep_examined &&
		    vf->in_flight > 0 &&
		    strcmp(info->item, "BODY[]") == 0;
		vf->have_pending = false;
		vf->digest_msgno = info->msgno;
		return 0;
	case IMAP_SINK_DATA:
		if (!vf->digesting)
			return 0;
		return mbox_digest_write(vf->digest, data, len);
	case IMAP_SINK_END:
		if (!vf->digesting)
			return 0;
		vf->digesting = false;
		if (mbox_digest_end(vf->digest, vf->pending_digest, NULL) != 0)
			return -1;
		vf->have_pending = true;
		return 0;
	}
	return 0;
}

static void on_deep_batch_done(struct session *, const struct imap_response *,
    void *);

static void
deep_send_batch(struct verifier *vf)
{
	struct imap_cmd cmd;
	size_t first = vf->deep_next, n = 0, need;
	uint64_t bytes = 0;
	char *set;

	while (first + n < vf->deep_n && n < DEEP_BATCH_MESSAGES &&
	    (n == 0 || bytes + vf->deep_sizes[first + n] <= DEEP_BATCH_BYTES))
		bytes += vf->deep_sizes[first + n++];
	need = imap_seqset_format(NULL, 0, vf->deep_uids + first, n) + 1;
	if ((set = malloc(need)) == NULL) {
		session_abort(vf->s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	imap_seqset_format(set, need, vf->deep_uids + first, n);
	session_cmd_init(vf->s, &cmd, "UID FETCH");
	imap_cmd_add_raw(&cmd, "%s (UID BODY.PEEK[])", set);
	free(set);
	if (session_send(vf->s, &cmd, on_deep_untagged, on_deep_batch_done,
	    vf) != 0) {
		session_abort(vf->s, SESSION_ERR_LOCAL,
		    "cannot queue UID FETCH");
		return;
	}
	vf->deep_next += n;
	vf->in_flight++;
}

static void
deep_send_batches(struct verifier *vf)
{
	while (vf->in_flight < DEEP_IN_FLIGHT && vf->deep_next < vf->deep_n)
		deep_send_batch(vf);
}

/* A mailbox's bodies are all in (or refused): what is left to say. */
static int
deep_mailbox_done(struct verifier *vf)
{
	struct vmbx *mb = &vf->v[vf->deep_cur];
	size_t missed = vf->deep_n - mb->deep_checked;

	mb->deep_done = true;
	if (missed > 0) {
		free(mb->server_error);
		if (asprintf(&mb->server_error, "--deep: the server did not "
		    "deliver %zu of %zu messages", missed, vf->deep_n) == -1)
			mb->server_error = NULL;
	}
	if (mb->counts.uids_unknown && verify_compare_digests(mb->ix, mb->nix,
	    vf->server_digests, vf->n_server_digests, &mb->problems) != 0)
		return -1;
	return 0;
}

static void
on_deep_batch_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct verifier *vf = arg;
	char text[300];

	vf->in_flight--;
	if (tagged->status != IMAP_STATUS_OK)
		log_warnx("account %s: mailbox %s: --deep: UID FETCH failed: "
		    "%s", vf->account->name, vf->v[vf->deep_cur].display,
		    imap_response_text(tagged, text, sizeof text));
	deep_send_batches(vf);
	if (vf->in_flight > 0)
		return;
	if (deep_mailbox_done(vf) != 0) {
		session_abort(s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	vf->deep_cur++;
	deep_next_mailbox(vf);
}

static void
on_deep_examine_done(struct session *s, const struct imap_response *tagged,
    void *arg)
{
	struct vmbx *mb = arg;
	struct verifier *vf = mb->vf;
	char text[300];

	(void)s;
	if (tagged->status == IMAP_STATUS_OK && mb->uidvalidity ==
	    mb->ms->uidvalidity) {
		vf->deep_examined = true;
		return;
	}
	/* The batches sent behind it fail (no mailbox selected) or are
	 * ignored. */
	free(mb->server_error);
	if (asprintf(&mb->server_error, "--deep: EXAMINE failed: %s",
	    imap_response_text(tagged, text, sizeof text)) == -1)
		mb->server_error = NULL;
	else
		log_sanitize(mb->server_error);
}

static void
deep_next_mailbox(struct verifier *vf)
{
	struct imap_cmd cmd;
	struct vmbx *mb;

	for (; vf->deep_cur < vf->n; vf->deep_cur++) {
		mb = &vf->v[vf->deep_cur];
		free(vf->deep_uids);
		free(vf->deep_sizes);
		free(vf->server_digests);
		vf->server_digests = NULL;
		vf->n_server_digests = 0;
		if (deep_uids(mb, &vf->deep_uids, &vf->deep_sizes,
		    &vf->deep_n) != 0 || (vf->deep_n > 0 &&
		    (vf->server_digests = calloc(vf->deep_n,
		    sizeof *vf->server_digests)) == NULL)) {
			session_abort(vf->s, SESSION_ERR_LOCAL,
			    "out of memory");
			return;
		}
		if (vf->deep_n == 0)
			continue;
		vf->deep_next = 0;
		vf->deep_examined = false;
		session_cmd_init(vf->s, &cmd, "EXAMINE");
		imap_cmd_add_string(&cmd, mb->ms->name, strlen(mb->ms->name),
		    session_literal_mode(vf->s));
		if (session_send(vf->s, &cmd, on_examine_untagged,
		    on_deep_examine_done, mb) != 0) {
			session_abort(vf->s, SESSION_ERR_LOCAL,
			    "cannot queue EXAMINE");
			return;
		}
		deep_send_batches(vf);
		return;
	}
	ev_timer_stop(vf->loop, &vf->progress);
	set_step(vf, VS_LOGOUT);
	session_logout(vf->s);
}

/* The totals for the progress lines, then the first mailbox. */
static void
deep_start(struct verifier *vf)
{
	uint32_t *uids;
	uint64_t *sizes;
	size_t n;

	for (size_t i = 0; i < vf->n; i++) {
		if (deep_uids(&vf->v[i], &uids, &sizes, &n) != 0) {
			free(uids);
			free(sizes);
			session_abort(vf->s, SESSION_ERR_LOCAL,
			    "out of memory");
			return;
		}
		vf->deep_total_messages += n;
		for (size_t k = 0; k < n; k++)
			vf->deep_total_bytes += sizes[k];
		free(uids);
		free(sizes);
	}
	if (mbox_digest_new(&vf->digest) != 0) {
		session_abort(vf->s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	set_step(vf, VS_DEEP);
	session_set_sink(vf->s, deep_sink, vf);
	log_info("account %s: --deep: downloading %zu %s again, %.1f MB; a "
	    "progress line every %.0f s", vf->account->name,
	    vf->deep_total_messages, num_plural(vf->deep_total_messages,
	    "message", "messages"), vf->deep_total_bytes / 1e6,
	    DEEP_PROGRESS_SECS);
	vf->deep_started = ev_now(vf->loop);
	ev_timer_init(&vf->progress, on_progress, DEEP_PROGRESS_SECS,
	    DEEP_PROGRESS_SECS);
	vf->progress.data = vf;
	ev_timer_start(vf->loop, &vf->progress);
	vf->deep_cur = 0;
	deep_next_mailbox(vf);
}

static void
server_phase_done(struct verifier *vf)
{
	if (vf->deep) {
		deep_start(vf);
		return;
	}
	set_step(vf, VS_LOGOUT);
	session_logout(vf->s);
}

/* The session */

static void
on_ready(struct session *s, void *arg)
{
	struct verifier *vf = arg;

	(void)s;
	set_step(vf, VS_LISTING);
	send_examines(vf);
}

static void
on_failed(struct session *s, enum session_error error, const char *message,
    void *arg)
{
	struct verifier *vf = arg;

	(void)s;
	free(vf->connect_error);
	if (asprintf(&vf->connect_error, "%s: %s", session_error_name(error),
	    message) == -1)
		vf->connect_error = NULL;
	else
		log_sanitize(vf->connect_error);
	set_step(vf, VS_DONE);
	ev_break(vf->loop, EVBREAK_ALL);
}

static void
on_closed(struct session *s, void *arg)
{
	struct verifier *vf = arg;

	(void)s;
	set_step(vf, VS_DONE);
	ev_break(vf->loop, EVBREAK_ALL);
}

static bool
any_to_examine(const struct verifier *vf)
{
	for (size_t i = 0; i < vf->n; i++)
		if (vf->v[i].ms->uidvalidity != 0)
			return true;
	return false;
}

static void
check_server(struct verifier *vf)
{
	static const struct session_callbacks cb = {
		.ready = on_ready,
		.failed = on_failed,
		.closed = on_closed,
	};

	if (!any_to_examine(vf))
		return;
	vf->s = account_session_new(vf->loop, vf->account,
	    vf->config->timeout, &cb, vf);
	if (vf->s == NULL) {
		vf->connect_error = strdup("out of memory");
		return;
	}
	set_step(vf, VS_CONNECTING);
	if (session_start(vf->s) == 0)
		ev_run(vf->loop, 0);
	set_step(vf, VS_DONE);
	ev_timer_stop(vf->loop, &vf->progress);
	session_free(&vf->s);
}

/* The report */

/* What an account's check found, added up. */
struct tally {
	size_t mailboxes, messages, problems, deleted, newer, given_up;
	size_t deep_checked, rebuilt, gone;
	bool incomplete;
	bool never_synced;	/* no state yet: nothing to verify */
};

static void
tally(const struct verifier *vf, struct tally *t)
{
	memset(t, 0, sizeof *t);
	t->incomplete = vf->state_error != NULL || vf->connect_error != NULL;
	t->never_synced = vf->state_error == NULL && vf->st.n_mailboxes == 0 &&
	    vf->st.last_success == 0;
	t->incomplete = t->incomplete || t->never_synced;
	for (size_t i = 0; i < vf->n; i++) {
		const struct vmbx *mb = &vf->v[i];

		t->mailboxes++;
		t->messages += mb->nix;
		t->problems += mb->problems.n + (mb->file_error != NULL);
		t->deleted += mb->counts.deleted;
		t->newer += mb->counts.newer;
		t->given_up += mb->counts.given_up;
		t->deep_checked += mb->deep_checked;
		t->rebuilt += mb->index == INDEX_REBUILT;
		t->gone += mb->gone;
		if (mb->server_error != NULL && !mb->gone)
			t->incomplete = true;
		if (mb->ms->uidvalidity != 0 && !mb->server_checked &&
		    !mb->gone)
			t->incomplete = true;
	}
}

static void
print_problem(const struct verifier *vf, const struct vmbx *mb,
    const struct verify_problem *p)
{
	char text[512];

	printf("account %s: mailbox %s: ", vf->account->name, mb->display);
	if (p->uid != 0)
		printf("UID %u: ", p->uid);
	printf("%s\n", verify_problem_text(p, text, sizeof text));
}

static void
print_text(const struct verifier *vf, const struct tally *t)
{
	const char *name = vf->account->name;

	if (vf->state_error != NULL) {
		printf("account %s: INCOMPLETE: not verified: the state cannot "
		    "be read: %s\n", name, vf->state_error);
		return;
	}
	if (t->never_synced) {
		printf("account %s: INCOMPLETE: not synced yet, nothing to "
		    "verify\n", name);
		return;
	}
	for (size_t i = 0; i < vf->n; i++) {
		const struct vmbx *mb = &vf->v[i];

		if (mb->file_error != NULL)
			printf("account %s: mailbox %s: %s: %s\n", name,
			    mb->display, mb->path != NULL ? mb->path : "file",
			    mb->file_error);
		for (size_t k = 0; k < mb->problems.n; k++)
			print_problem(vf, mb, &mb->problems.v[k]);
		if (mb->server_error != NULL && !mb->gone)
			log_warnx("account %s: mailbox %s: not checked against "
			    "the server: %s", name, mb->display,
			    mb->server_error);
		else if (mb->gone)
			log_info("account %s: mailbox %s: not on the server "
			    "any more (%s); its mirror is kept", name,
			    mb->display, mb->server_error != NULL ?
			    mb->server_error : "");
	}
	if (vf->connect_error != NULL)
		log_warnx("account %s: not checked against the server: %s",
		    name, vf->connect_error);
	printf("account %s: %s: %zu mailbox%s, %zu message%s in the mirror",
	    name, t->problems > 0 ? "PROBLEMS" : t->incomplete ?
	    "INCOMPLETE" : "whole", t->mailboxes,
	    t->mailboxes == 1 ? "" : "es", t->messages,
	    t->messages == 1 ? "" : "s");
	if (t->problems > 0)
		printf(", %zu problem%s", t->problems,
		    t->problems == 1 ? "" : "s");
	if (t->deleted > 0)
		printf(", %zu deleted on the server (kept)", t->deleted);
	if (t->newer > 0)
		printf(", %zu new on the server (not synced yet)", t->newer);
	if (t->given_up > 0)
		printf(", %zu given up by the sync", t->given_up);
	if (t->gone > 0)
		printf(", %zu mailbox%s not on the server any more (kept)",
		    t->gone, t->gone == 1 ? "" : "es");
	if (vf->deep)
		printf(", %zu compared with the server's bytes",
		    t->deep_checked);
	if (t->rebuilt > 0)
		printf(", %zu index%s rebuilt (entries only counted)",
		    t->rebuilt, t->rebuilt == 1 ? "" : "es");
	if (t->incomplete)
		printf(", %s", vf->connect_error != NULL ?
		    "not checked against the server" :
		    "some mailboxes not checked against the server");
	printf("\n");
}

static void
json_opt_string(FILE *out, const char *key, const char *value)
{
	fprintf(out, ", \"%s\": ", key);
	if (value != NULL)
		json_string(out, value);
	else
		fputs("null", out);
}

static const char *
index_origin_name(enum index_origin o)
{
	switch (o) {
	case INDEX_NONE:
		return "none";
	case INDEX_LOADED:
		return "loaded";
	case INDEX_REBUILT:
		return "rebuilt";
	case INDEX_FAILED:
		return "failed";
	}
	return "?";
}

static void
json_problem(FILE *out, const struct verify_problem *p, bool first)
{
	char text[512];

	fprintf(out, "%s{\"kind\": \"%s\", \"uid\": ", first ? "" : ", ",
	    verify_kind_name(p->kind));
	if (p->uid != 0)
		fprintf(out, "%u", p->uid);
	else
		fputs("null", out);
	if (p->kind == VERIFY_MOVED)
		fprintf(out, ", \"uid_last\": %u, \"entries\": %llu, "
		    "\"shift\": %lld", p->uid_last, (unsigned long long)p->a,
		    (long long)p->shift);
	fprintf(out, ", \"offset\": %llu, \"length\": %llu, \"text\": ",
	    (unsigned long long)p->offset, (unsigned long long)p->length);
	json_string(out, verify_problem_text(p, text, sizeof text));
	fputc('}', out);
}

static void
json_mailbox(FILE *out, const struct vmbx *mb, bool deep, bool first)
{
	const struct verify_server_counts *c = &mb->counts;

	fputs(first ? "{\"mailbox\": " : ", {\"mailbox\": ", out);
	json_string(out, mb->display);
	json_opt_string(out, "file", mb->ms->file);
	fprintf(out, ", \"index\": \"%s\", \"messages\": %zu, "
	    "\"file_bytes\": %llu, \"committed_bytes\": %llu",
	    index_origin_name(mb->index), mb->nix,
	    (unsigned long long)mb->file_size,
	    (unsigned long long)mb->ms->mbox_size);
	json_opt_string(out, "file_error", mb->file_error);
	fprintf(out, ", \"server_checked\": %s, \"on_server\": %s",
	    mb->server_checked ? "true" : "false", mb->gone ? "false" : "true");
	json_opt_string(out, "server_error", mb->server_error);
	fprintf(out, ", \"listed\": %zu, \"deleted_on_server\": %zu, "
	    "\"new_on_server\": %zu, \"given_up\": %zu", c->listed,
	    c->deleted, c->newer, c->given_up);
	if (deep)
		fprintf(out, ", \"deep_checked\": %zu", mb->deep_checked);
	fputs(", \"problems\": [", out);
	for (size_t k = 0; k < mb->problems.n; k++)
		json_problem(out, &mb->problems.v[k], k == 0);
	fputs("]}", out);
}

static void
print_json(const struct verifier *vf, const struct tally *t, bool first)
{
	FILE *out = stdout;

	fputs(first ? "  {\"account\": " : ",\n  {\"account\": ", out);
	json_string(out, vf->account->name);
	fprintf(out, ", \"whole\": %s, \"complete\": %s",
	    t->problems == 0 && !t->incomplete ? "true" : "false",
	    t->incomplete ? "false" : "true");
	json_opt_string(out, "state_error", vf->state_error);
	json_opt_string(out, "server_error", vf->connect_error);
	fprintf(out, ", \"never_synced\": %s", t->never_synced ? "true" :
	    "false");
	fprintf(out, ", \"sync_running\": %s, \"problems\": %zu, "
	    "\"messages\": %zu, \"deleted_on_server\": %zu, "
	    "\"new_on_server\": %zu, \"given_up\": %zu",
	    vf->sync_running ? "true" : "false", t->problems, t->messages,
	    t->deleted, t->newer, t->given_up);
	if (vf->deep)
		fprintf(out, ", \"deep_checked\": %zu", t->deep_checked);
	fputs(", \"mailboxes\": [", out);
	for (size_t i = 0; i < vf->n; i++)
		json_mailbox(out, &vf->v[i], vf->deep, i == 0);
	fputs("]}", out);
}

/* One account */

static void
verifier_free(struct verifier *vf)
{
	for (size_t i = 0; i < vf->n; i++) {
		struct vmbx *mb = &vf->v[i];

		free(mb->display);
		free(mb->path);
		free(mb->ix);
		free(mb->byuid);
		free(mb->listed);
		free(mb->file_error);
		free(mb->server_error);
		verify_problems_free(&mb->problems);
	}
	free(vf->v);
	free(vf->state_dir);
	free(vf->state_error);
	free(vf->connect_error);
	free(vf->deep_uids);
	free(vf->deep_sizes);
	free(vf->server_digests);
	mbox_digest_free(&vf->digest);
	state_clear(&vf->st);
}

/* The state's mailboxes, each with the name people read. */
static int
take_mailboxes(struct verifier *vf)
{
	if ((vf->v = calloc(vf->st.n_mailboxes + 1, sizeof *vf->v)) == NULL)
		return -1;
	for (size_t i = 0; i < vf->st.n_mailboxes; i++) {
		struct vmbx *mb = &vf->v[vf->n++];
		const char *name = vf->st.mailboxes[i].name;

		mb->vf = vf;
		mb->ms = &vf->st.mailboxes[i];
		mb->display = imap_utf7_decode(name, strlen(name));
		if (mb->display == NULL)
			mb->display = strdup(name);
		if (mb->display == NULL)
			return -1;
		log_sanitize(mb->display);
	}
	return 0;
}

/* Returns -1 only when out of memory; what was found is in vf. */
static int
verify_account(struct verifier *vf)
{
	const char *name = vf->account->name;
	int r;

	if ((vf->state_dir = state_account_dir(vf->config->state_dir,
	    name)) == NULL)
		return -1;
	if (state_load(vf->state_dir, &vf->st, &vf->state_error) != 0) {
		if (vf->state_error == NULL)
			return -1;
		log_sanitize(vf->state_error);
		return 0;
	}
	if ((r = state_lock_held(vf->state_dir, &vf->sync_pid)) == 1) {
		vf->sync_running = true;
		log_info("account %s: a sync is running (pid %ld): what it "
		    "appends after the state read now is not checked", name,
		    vf->sync_pid);
	}
	if (take_mailboxes(vf) != 0)
		return -1;
	for (size_t i = 0; i < vf->n; i++)
		if (check_file(vf, &vf->v[i]) != 0)
			return -1;
	check_server(vf);
	return 0;
}

int
verify_run(const struct config *config, char *const *names, size_t nnames,
    bool deep, bool json)
{
	struct ev_loop *loop;
	struct tally t;
	bool first = true, problem = false, incomplete = false;

	if (transport_global_init() != 0)
		return VERIFY_EXIT_INCOMPLETE;
	if ((loop = ev_loop_new(EVFLAG_AUTO)) == NULL) {
		transport_global_deinit();
		return VERIFY_EXIT_INCOMPLETE;
	}
	if (json)
		fputs("{\"accounts\": [\n", stdout);
	for (size_t i = 0; i < config->n_accounts; i++) {
		struct verifier vf = { .loop = loop, .config = config,
		    .account = &config->accounts[i], .deep = deep };

		if (!cli_account_selected(names, nnames, vf.account->name))
			continue;
		if (verify_account(&vf) != 0 && vf.state_error == NULL)
			vf.state_error = strdup("out of memory");
		tally(&vf, &t);
		if (vf.state_error != NULL)
			t.incomplete = true;
		problem = problem || t.problems > 0;
		incomplete = incomplete || t.incomplete;
		if (json)
			print_json(&vf, &t, first);
		else
			print_text(&vf, &t);
		first = false;
		fflush(stdout);
		verifier_free(&vf);
	}
	if (json)
		printf("\n], \"whole\": %s, \"exit_status\": %d}\n",
		    !problem && !incomplete ? "true" : "false", problem ?
		    VERIFY_EXIT_PROBLEM : incomplete ?
		    VERIFY_EXIT_INCOMPLETE : 0);
	fflush(stdout);
	ev_loop_destroy(loop);
	transport_global_deinit();
	return problem ? VERIFY_EXIT_PROBLEM : incomplete ?
	    VERIFY_EXIT_INCOMPLETE : 0;
}
