/*
 * verify: --verify (see verify.h).  Per account, one after another: the
 * state is read once (what it had committed then is what is checked), each
 * mailbox's file is compared with its index without the server, then one
 * connection asks each mailbox's UIDs and sizes (EXAMINE and UID FETCH
 * pipelined, a few mailboxes ahead), and with --deep, each mailbox's
 * bodies again in batches, each hashed as it streams in.  Files are read
 * with pread on descriptors opened read-only; nothing is written.  This
 * file holds the account's part: the state, the session, the listing;
 * verify_int.h says where the rest is.
 */
#include "verify.h"
#include "verify_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "cli.h"
#include "imap/writer.h"
#include "log.h"
#include "mirror/account_session.h"
#include "net/transport.h"

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

void
verify_set_step(struct verifier *vf, enum verify_step step)
{
	if (vf->step == step)
		return;
	log_debug("account %s: verify %s -> %s", vf->account->name,
	    step_name(vf->step), step_name(step));
	vf->step = step;
}

static void send_examines(struct verifier *);
static void server_phase_done(struct verifier *);

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

void
verify_on_examine_untagged(struct session *s, const struct imap_response *resp,
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
	/* Refused for a while, or not allowed: not checked, not gone. */
	mb->gone = verify_refusal_gone(tagged->status == IMAP_STATUS_NO,
	    tagged->code);
	free(mb->server_error);
	if (asprintf(&mb->server_error, "EXAMINE failed: %s",
	    imap_response_text(tagged, text, sizeof text)) == -1)
		mb->server_error = NULL;
	else
		log_sanitize(mb->server_error);
}

static void
on_sizes_untagged(struct session *s, const struct imap_response *resp,
    void *arg)
{
	struct vmbx *mb = arg;
	struct imap_fetch_item item;

	if (mb->vf->step != VS_LISTING || !mb->examined ||
	    imap_fetch_response_decode(resp, &item) != 0 || !item.has_uid)
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

	if (mb->uidvalidity == 0) {
		/* A broken server: UIDs that cannot be compared, which is
		 * not the mirror's fault. */
		free(mb->server_error);
		mb->server_error = strdup("EXAMINE gave no UIDVALIDITY");
		return 0;
	}
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

	if (mb->examined && tagged->status != IMAP_STATUS_OK &&
	    mb->exists != 0) {
		mb->sizes_failed = true;
		free(mb->server_error);
		if (asprintf(&mb->server_error, "UID FETCH failed: %s",
		    imap_response_text(tagged, text, sizeof text)) == -1)
			mb->server_error = NULL;
		else
			log_sanitize(mb->server_error);
	}
	if (--mb->sizes_pending > 0)
		return;
	vf->pending--;
	if (mb->examined && !mb->sizes_failed && compare_listing(mb) != 0) {
		session_abort(s, SESSION_ERR_LOCAL, "out of memory");
		return;
	}
	send_examines(vf);
}

/* The size queries of mb (verify_size_ranges()), behind its EXAMINE.  0 or
 * -1. */
static int
send_size_queries(struct verifier *vf, struct vmbx *mb)
{
	struct imap_cmd cmd;
	uint32_t *ends;
	size_t n;
	int r = 0;

	if (verify_size_ranges(mb->ix, mb->nix, VERIFY_SIZES_CHUNK, &ends,
	    &n) != 0)
		return -1;
	for (size_t k = 0; k < n && r == 0; k++) {
		uint32_t from = k == 0 ? 1 : ends[k - 1] + 1;

		session_cmd_init(vf->s, &cmd, "UID FETCH");
		if (ends[k] == 0)
			imap_cmd_add_raw(&cmd, "%u:* (UID RFC822.SIZE)", from);
		else
			imap_cmd_add_raw(&cmd, "%u:%u (UID RFC822.SIZE)", from,
			    ends[k]);
		r = session_send(vf->s, &cmd, on_sizes_untagged,
		    on_sizes_done, mb);
		if (r == 0)
			mb->sizes_pending++;
	}
	free(ends);
	return r;
}

/* EXAMINE and the size queries of the next mailboxes, a few ahead. */
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
		if (session_send(vf->s, &cmd, verify_on_examine_untagged,
		    on_examine_done, mb) != 0 || send_size_queries(vf, mb) != 0)
			goto fail;
		vf->pending++;
	}
	if (vf->pending == 0)
		server_phase_done(vf);
	return;
fail:
	session_abort(vf->s, SESSION_ERR_LOCAL, "cannot queue a command");
}

static void
server_phase_done(struct verifier *vf)
{
	if (vf->deep) {
		verify_deep_start(vf);
		return;
	}
	verify_set_step(vf, VS_LOGOUT);
	session_logout(vf->s);
}

/* The session */

static void
on_ready(struct session *s, void *arg)
{
	struct verifier *vf = arg;

	(void)s;
	verify_set_step(vf, VS_LISTING);
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
	verify_set_step(vf, VS_DONE);
	ev_break(vf->loop, EVBREAK_ALL);
}

static void
on_closed(struct session *s, void *arg)
{
	struct verifier *vf = arg;

	(void)s;
	verify_set_step(vf, VS_DONE);
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
	verify_set_step(vf, VS_CONNECTING);
	if (session_start(vf->s) == 0)
		ev_run(vf->loop, 0);
	verify_set_step(vf, VS_DONE);
	ev_timer_stop(vf->loop, &vf->progress);
	session_free(&vf->s);
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

	if ((vf->state_dir = state_account_dir(vf->config->state_dir,
	    name)) == NULL)
		return -1;
	if (state_load(vf->state_dir, &vf->st, &vf->state_error) != 0) {
		if (vf->state_error == NULL)
			return -1;
		log_sanitize(vf->state_error);
		return 0;
	}
	/* The account lock is a state_lock() like the daemon's: looked at
	 * the same way, without taking it. */
	if (state_daemon_running_in(vf->state_dir, &vf->sync_pid) == 1) {
		vf->sync_running = true;
		log_info("account %s: a sync is running (pid %ld): what it "
		    "appends after the state read now is not checked", name,
		    vf->sync_pid);
	}
	if (take_mailboxes(vf) != 0)
		return -1;
	for (size_t i = 0; i < vf->n; i++)
		if (verify_check_file(vf, &vf->v[i]) != 0)
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
		verify_tally(&vf, &t);
		if (vf.state_error != NULL)
			t.incomplete = true;
		problem = problem || t.problems > 0;
		incomplete = incomplete || t.incomplete;
		if (json)
			verify_print_json(&vf, &t, first);
		else
			verify_print_text(&vf, &t);
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
