/*
 * mirror/idle and mirror/account_session through their public headers,
 * against tests/fakes/imapd_mem on the in-memory transport (session_new is
 * wrapped at link time to use it): the events a watch reports, and how an
 * account's tls and auth settings reach the wire.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "../fakes/imapd_mem.h"
#include "../fakes/transport_mem.h"
#include "config.h"
#include "imap/session.h"
#include "log.h"
#include "mirror/idle.h"
#include "mirror/mirror.h"
#include "mirror/state.h"
#include "testdir.h"

#define CAPS_IDLE "IMAP4rev1 AUTH=PLAIN SASL-IR IDLE"

struct session *__real_session_new(struct ev_loop *,
    const struct session_params *, const struct session_callbacks *, void *);
struct session *__wrap_session_new(struct ev_loop *,
    const struct session_params *, const struct session_callbacks *, void *);

static struct session_params last_params;

/* Every session on the in-memory transport; its parameters kept. */
struct session *
__wrap_session_new(struct ev_loop *l, const struct session_params *params,
    const struct session_callbacks *cb, void *arg)
{
	struct session_params p = *params;

	last_params = *params;
	p.transport = &transport_mem_ops;
	return __real_session_new(l, &p, cb, arg);
}

static struct ev_loop *loop;
static struct imapd srv;
static struct config *cfg;
static struct idle_watch *watch;
static enum idle_event events[16];
static unsigned n_events;
static char message[512];
static bool timed_out;
static struct mirror_result fetched;	/* at the last IDLE_FETCHED */
static char dir[64];			/* a push test's state and output */

static void
on_event(struct idle_watch *w, enum idle_event event, const char *msg,
    void *arg)
{
	(void)arg;
	if (n_events < 16)
		events[n_events++] = event;
	if (event == IDLE_FETCHED)
		fetched = *idle_watch_result(w);
	snprintf(message, sizeof message, "%s", msg != NULL ? msg : "");
	ev_break(loop, EVBREAK_ONE);
}

static void
on_watchdog(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	timed_out = true;
}

/* Runs the loop until the watch has reported n events in all. */
static void
wait_events(unsigned n)
{
	ev_timer watchdog;

	timed_out = false;
	ev_timer_init(&watchdog, on_watchdog, 10, 0);
	ev_timer_start(loop, &watchdog);
	while (n_events < n && !timed_out)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &watchdog);
	assert_false(timed_out);
	assert_int_equal(n_events, n);
}

/* Runs the loop until the server has answered what the client sent and
 * the client has read every byte of it. */
static void
pump(void)
{
	for (int i = 0; i < 1000 && (i < 2 || transport_mem_busy()); i++)
		ev_run(loop, EVRUN_NOWAIT);
	assert_false(transport_mem_busy());
}

/* An account "acct" with extra lines; the password unless they give a
 * source of their own. */
static void
configure(const char *extra)
{
	char text[1024];

	config_free(&cfg);
	snprintf(text, sizeof text,
	    "[general]\nstate_dir = /nonexistent/state\ntimeout = 45s\n"
	    "[acct]\nhost = imap.example.org\nuser = user\n%s"
	    "output = /nonexistent/out\n%s", strstr(extra, "password") ? "" :
	    "password = s3cret\n", extra);
	assert_int_equal(config_load_string("t.ini", text, &cfg), 0);
}

static void
start(void)
{
	watch = idle_watch_start(loop, cfg, &cfg->accounts[0], on_event, NULL);
	assert_non_null(watch);
	/* Events come from the loop, never from inside the start. */
	assert_int_equal(n_events, 0);
}

static int
setup(void **state)
{
	(void)state;
	log_set_level(LOGL_ERROR);
	loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(loop);
	transport_mem_reset();
	imapd_init(&srv, loop);
	srv.caps = CAPS_IDLE;
	imapd_add_message(imapd_add_mailbox(&srv, "INBOX"), "a");
	imapd_add_message(&srv.boxes[0], "b");
	imapd_add_message(&srv.boxes[0], "c");
	n_events = 0;
	message[0] = '\0';
	memset(&last_params, 0, sizeof last_params);
	configure("tls = none\nallow_plaintext = yes\n");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	idle_watch_free(&watch);
	assert_null(watch);
	pump();
	imapd_stop(&srv);
	ev_loop_destroy(loop);
	config_free(&cfg);
	return 0;
}

/* INBOX examined, then IDLE: growth of EXISTS is new mail, the same count
 * again is not, and an EXPUNGE lowers the count it grows from. */
static void
test_watch_and_new_mail(void **state)
{
	(void)state;
	start();
	wait_events(1);
	assert_int_equal(events[0], IDLE_WATCHING);
	pump();
	assert_int_equal(imapd_count(&srv, "EXAMINE INBOX"), 1);
	assert_int_equal(srv.idles, 1);
	assert_int_equal(imapd_count(&srv, "SELECT"), 0);

	imapd_push(&srv, "* 4 EXISTS");
	wait_events(2);
	assert_int_equal(events[1], IDLE_NEW_MAIL);
	imapd_push(&srv, "* 4 EXISTS");
	imapd_push(&srv, "* 3 RECENT");
	pump();
	assert_int_equal(n_events, 2);
	imapd_push(&srv, "* 2 EXPUNGE");
	imapd_push(&srv, "* 4 EXISTS");
	wait_events(3);
	assert_int_equal(events[2], IDLE_NEW_MAIL);
	/* Freed while watching: the connection goes, no event follows. */
	idle_watch_free(&watch);
	pump();
	assert_int_equal(n_events, 3);
}

static void
test_unsupported(void **state)
{
	(void)state;
	srv.caps = "IMAP4rev1 AUTH=PLAIN SASL-IR";
	start();
	wait_events(1);
	assert_int_equal(events[0], IDLE_UNSUPPORTED);
	assert_string_equal(message, "server does not offer IDLE");
	assert_int_equal(srv.examines, 0);
}

/* Refused credentials: FAILED, and the error says it was the login. */
static void
test_auth_refused(void **state)
{
	(void)state;
	srv.auth_no = true;
	start();
	wait_events(1);
	assert_int_equal(events[0], IDLE_FAILED);
	assert_int_equal(idle_watch_error(watch), SESSION_ERR_AUTH);
	assert_non_null(strstr(message, "AUTHENTICATIONFAILED"));
}

static void
test_examine_refused(void **state)
{
	(void)state;
	srv.boxes[0].examine_no = true;
	start();
	wait_events(1);
	assert_int_equal(events[0], IDLE_FAILED);
	assert_string_equal(message, "cannot EXAMINE INBOX");
	assert_int_equal(idle_watch_error(watch), SESSION_OK);
}

static void
test_idle_refused(void **state)
{
	(void)state;
	srv.idle_no = true;
	start();
	/* WATCHING only once the server takes the IDLE: a server that
	 * refuses it never looks like a watch that came up (the owner's
	 * backoff would start again at each reconnection). */
	wait_events(1);
	assert_int_equal(events[0], IDLE_FAILED);
	assert_string_equal(message, "IDLE refused by the server");
	pump();
	assert_int_equal(n_events, 1);
}

/* The server goes away: FAILED, a network error (the caller reconnects). */
static void
test_server_closes(void **state)
{
	(void)state;
	start();
	wait_events(1);
	transport_mem_eof(srv.conn);
	wait_events(2);
	assert_int_equal(events[1], IDLE_FAILED);
	assert_int_equal(idle_watch_error(watch), SESSION_ERR_NETWORK);
	assert_true(transport_mem_closed(srv.conn));
}

/* The account's settings become the session's: host, port, timeout, the
 * TLS mode and the login mechanism the server then sees. */
static void
test_account_settings(void **state)
{
	static const struct {
		const char *conf;
		enum session_tls tls;
		enum session_auth auth;
		enum session_compress compress;
		const char *wire;	/* what the server must have seen */
	} cases[] = {
		{ "tls = implicit\nauth = login\ncompress = yes\n",
		  SESSION_TLS_IMPLICIT, SESSION_AUTH_LOGIN,
		  SESSION_COMPRESS_YES, "LOGIN user s3cret" },
		{ "tls = starttls\nport = 143\nauth = plain\ncompress = no\n",
		  SESSION_TLS_STARTTLS, SESSION_AUTH_PLAIN,
		  SESSION_COMPRESS_NO, "AUTHENTICATE PLAIN" },
		{ "tls = implicit\nauth = xoauth2\n", SESSION_TLS_IMPLICIT,
		  SESSION_AUTH_XOAUTH2, SESSION_COMPRESS_AUTO,
		  "AUTHENTICATE XOAUTH2" },
		{ "tls = implicit\nauth = oauthbearer\n",
		  SESSION_TLS_IMPLICIT, SESSION_AUTH_OAUTHBEARER,
		  SESSION_COMPRESS_AUTO, "AUTHENTICATE OAUTHBEARER" },
		{ "tls = none\nallow_plaintext = yes\n", SESSION_TLS_NONE,
		  SESSION_AUTH_AUTO, SESSION_COMPRESS_AUTO,
		  "AUTHENTICATE PLAIN" },
	};

	(void)state;
	srv.caps = CAPS_IDLE " STARTTLS AUTH=XOAUTH2 AUTH=OAUTHBEARER";
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		configure(cases[i].conf);
		srv.log[0] = '\0';
		n_events = 0;
		start();
		wait_events(1);
		if (events[0] != IDLE_WATCHING)
			fail_msg("case %zu: %s", i, message);
		assert_string_equal(last_params.host, "imap.example.org");
		assert_string_equal(last_params.name, "acct");
		assert_string_equal(last_params.user, "user");
		assert_int_equal(last_params.port, cfg->accounts[0].port);
		assert_int_equal(last_params.timeout, 45);
		assert_null(last_params.pin_sha256);
		assert_int_equal(last_params.tls, cases[i].tls);
		assert_int_equal(last_params.auth, cases[i].auth);
		assert_int_equal(last_params.compress, cases[i].compress);
		if (imapd_count(&srv, cases[i].wire) != 1)
			fail_msg("case %zu: no \"%s\" in:\n%s", i,
			    cases[i].wire, srv.log);
		assert_int_equal(imapd_count(&srv, "STARTTLS"),
		    cases[i].tls == SESSION_TLS_STARTTLS);
		idle_watch_free(&watch);
		pump();
	}
}

/* A secret that cannot be had fails the watch before any connection. */
static void
test_secret_unavailable(void **state)
{
	(void)state;
	configure("tls = none\nallow_plaintext = yes\npassword_file = "
	    "/nonexistent/secret\n");
	start();
	wait_events(1);
	assert_int_equal(events[0], IDLE_FAILED);
	assert_int_equal(idle_watch_error(watch), SESSION_ERR_SECRET);
	assert_non_null(strstr(message, "/nonexistent/secret"));
	/* Nothing was sent: no login without a secret. */
	assert_string_equal(srv.log, "");
}

/* Push fetches: a state and an output of their own, INBOX mirrored by a
 * full sync first (its connection ends before the watch's begins). */
static void
on_sync_done(struct mirror *m, const struct mirror_result *r, void *arg)
{
	(void)m;
	*(struct mirror_result *)arg = *r;
	ev_break(loop, EVBREAK_ONE);
}

static void
push_configure(void)
{
	char text[512];

	snprintf(dir, sizeof dir, "/tmp/mm-idle-XXXXXX");
	assert_non_null(mkdtemp(dir));
	config_free(&cfg);
	snprintf(text, sizeof text,
	    "[general]\nstate_dir = %s/state\ntimeout = 45s\n"
	    "[acct]\nhost = imap.example.org\nuser = user\npassword = s3cret\n"
	    "tls = none\nallow_plaintext = yes\ncompress = no\n"
	    "output = %s/out\n", dir, dir);
	assert_int_equal(config_load_string("t.ini", text, &cfg), 0);
}

static void
full_sync(void)
{
	struct mirror_result r = { .error = MIRROR_ERR_LOCAL };
	struct mirror *m;

	m = mirror_start(loop, cfg, &cfg->accounts[0], on_sync_done, &r);
	assert_non_null(m);
	ev_run(loop, 0);
	mirror_free(&m);
	assert_int_equal(r.error, MIRROR_OK);
	pump();
}

static uint32_t
inbox_last_uid(void)
{
	struct account_state st = { 0 };
	char *sd = state_account_dir(cfg->state_dir, "acct"), *error = NULL;
	const struct mailbox_state *ms;
	uint32_t uid;

	assert_int_equal(state_load(sd, &st, &error), 0);
	ms = state_find(&st, "INBOX");
	uid = ms != NULL ? ms->last_uid : 0;
	state_clear(&st);
	free(sd);
	return uid;
}

/* Entries ("From " lines) of the INBOX mirror. */
static int
inbox_entries(void)
{
	char path[128], line[256];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof path, "%s/out/INBOX.mbox", dir);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "From ", 5) == 0)
			n++;
	fclose(f);
	return n;
}

static int
push_teardown(void **state)
{
	int r = teardown(state);

	testdir_remove(dir);
	return r;
}

/* New mail fetched on the watch's own connection: DONE, EXAMINE with the
 * size query, the body, IDLE again; no second connection, no login. */
static void
test_push_fetch(void **state)
{
	(void)state;
	push_configure();
	full_sync();
	assert_int_equal(srv.connections, 1);
	start();
	wait_events(1);
	assert_int_equal(events[0], IDLE_WATCHING);
	imapd_add_message(&srv.boxes[0], "d");
	imapd_push(&srv, "* 4 EXISTS");
	wait_events(2);
	assert_int_equal(events[1], IDLE_NEW_MAIL);
	assert_false(idle_watch_fetching(watch));
	assert_int_equal(idle_watch_fetch(watch), 0);
	assert_true(idle_watch_fetching(watch));
	/* Not twice at once. */
	assert_int_equal(idle_watch_fetch(watch), -1);
	wait_events(3);
	assert_int_equal(events[2], IDLE_FETCHED);
	assert_int_equal(fetched.error, MIRROR_OK);
	assert_false(fetched.declined);
	assert_int_equal(fetched.messages, 1);
	assert_int_equal(inbox_entries(), 4);
	assert_int_equal(inbox_last_uid(), 4);
	pump();
	assert_false(idle_watch_fetching(watch));
	assert_int_equal(srv.connections, 2);
	assert_int_equal(srv.idles, 2);
	/* The body of UID 4 alone, asked once. */
	assert_int_equal(imapd_count(&srv, "UID FETCH 4 (UID INTERNALDATE "),
	    1);
	assert_int_equal(srv.body_fetches, 2);	/* the sync's and this */
	assert_int_equal(srv.logouts, 1);	/* the sync's alone */
	/* Watching again, from the count the fetch saw. */
	imapd_add_message(&srv.boxes[0], "e");
	imapd_push(&srv, "* 5 EXISTS");
	wait_events(4);
	assert_int_equal(events[3], IDLE_NEW_MAIL);
	assert_int_equal(idle_watch_fetch(watch), 0);
	wait_events(5);
	assert_int_equal(fetched.messages, 1);
	assert_int_equal(inbox_entries(), 5);
	assert_int_equal(srv.connections, 2);
}

/* INBOX never mirrored: the push run leaves it to a full sync, touching
 * neither the state nor the connection, which goes back to IDLE. */
static void
test_push_declined(void **state)
{
	(void)state;
	push_configure();
	start();
	wait_events(1);
	assert_int_equal(idle_watch_fetch(watch), 0);
	wait_events(2);
	assert_int_equal(events[1], IDLE_FETCHED);
	assert_true(fetched.declined);
	assert_int_equal(fetched.error, MIRROR_OK);
	assert_int_equal(inbox_entries(), -1);
	pump();
	assert_int_equal(srv.idles, 2);
	assert_int_equal(imapd_count(&srv, "EXAMINE INBOX"), 1);
	assert_int_equal(srv.connections, 1);
}

/* Another sync holds the account: the push run says so without touching
 * the state or the connection, which goes back to IDLE. */
static void
test_push_busy(void **state)
{
	char *sd, *error = NULL;
	long holder = 0;
	int fd = -1;

	(void)state;
	push_configure();
	full_sync();
	sd = state_account_dir(cfg->state_dir, "acct");
	assert_int_equal(state_lock(sd, &fd, &holder, &error), 0);
	start();
	wait_events(1);
	imapd_add_message(&srv.boxes[0], "d");
	assert_int_equal(idle_watch_fetch(watch), 0);
	wait_events(2);
	assert_int_equal(events[1], IDLE_FETCHED);
	assert_int_equal(fetched.error, MIRROR_ERR_BUSY);
	assert_int_equal(inbox_entries(), 3);
	pump();
	assert_int_equal(srv.idles, 2);
	/* The sync's and the watch's: none for a push run. */
	assert_int_equal(imapd_count(&srv, "EXAMINE INBOX"), 2);
	state_unlock(&fd);
	free(sd);
}

/* The link fails in the middle of a push fetch: the run says so, then the
 * watch fails; nothing half-fetched is committed. */
static void
test_push_fetch_link_lost(void **state)
{
	(void)state;
	push_configure();
	full_sync();
	start();
	wait_events(1);
	imapd_add_message(&srv.boxes[0], "d");
	srv.drop_on_fetch = true;
	assert_int_equal(idle_watch_fetch(watch), 0);
	wait_events(3);
	assert_int_equal(events[1], IDLE_FETCHED);
	assert_int_not_equal(fetched.error, MIRROR_OK);
	assert_int_equal(events[2], IDLE_FAILED);
	assert_int_equal(inbox_entries(), 3);
	assert_int_equal(inbox_last_uid(), 3);
}


static bool
account_locked(void)
{
	char *sd = state_account_dir(cfg->state_dir, "acct"), *error = NULL;
	long holder = 0;
	int fd = -1, r;

	r = state_lock(sd, &fd, &holder, &error);
	state_unlock(&fd);
	free(error);
	free(sd);
	return r == 1;
}

/* The watch freed (reload, SIGTERM) while its push run waits for a body
 * that never ends: what came is not committed, the account's lock goes,
 * and nothing of the run is called again. */
static void
test_push_freed_mid_fetch(void **state)
{
	(void)state;
	push_configure();
	full_sync();
	start();
	wait_events(1);
	imapd_add_message(&srv.boxes[0], "d");
	imapd_add_message(&srv.boxes[0], "e");
	srv.stall_after = 1;
	assert_int_equal(idle_watch_fetch(watch), 0);
	pump();
	assert_true(idle_watch_fetching(watch));
	assert_true(account_locked());
	idle_watch_free(&watch);
	pump();
	assert_int_equal(n_events, 1);
	assert_false(account_locked());
	assert_int_equal(inbox_entries(), 3);
	assert_int_equal(inbox_last_uid(), 3);
}

/* INBOX's UIDVALIDITY changed between the watch's EXAMINE and the push
 * run's: the run leaves it to a full sync with the state as it was, and
 * the connection goes back to IDLE. */
static void
test_push_uidvalidity_changed(void **state)
{
	(void)state;
	push_configure();
	full_sync();
	start();
	wait_events(1);
	imapd_add_message(&srv.boxes[0], "d");
	srv.boxes[0].uidvalidity = 2000;
	assert_int_equal(idle_watch_fetch(watch), 0);
	wait_events(2);
	assert_int_equal(events[1], IDLE_FETCHED);
	assert_true(fetched.declined);
	assert_int_equal(fetched.error, MIRROR_OK);
	assert_int_equal(inbox_entries(), 3);
	assert_int_equal(inbox_last_uid(), 3);
	pump();
	assert_int_equal(srv.idles, 2);
	assert_false(account_locked());
	assert_int_equal(srv.body_fetches, 1);	/* the sync's alone */
}


/* A push connection only for an account that mirrors INBOX: on any other
 * it would bring nothing but a full sync at each new mail. */
static void
test_push_watches_inbox(void **state)
{
	static const struct {
		const char *conf;
		bool watched;
	} cases[] = {
		{ "", true },
		{ "mailboxes = inbox, Archive/*\n", true },
		{ "mailboxes = *\n", true },
		{ "mailboxes = Archive/*\n", false },
		{ "mailboxes = *\nexclude = INBOX\n", false },
		{ "exclude = In*\n", false },
	};
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		snprintf(text, sizeof text, "tls = none\nallow_plaintext = "
		    "yes\n%s", cases[i].conf);
		configure(text);
		if (mirror_push_watches(&cfg->accounts[0]) != cases[i].watched)
			fail_msg("case %zu: %s", i, cases[i].conf);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_watch_and_new_mail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unsupported, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_examine_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_idle_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_closes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_account_settings, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_secret_unavailable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_push_fetch, setup,
		    push_teardown),
		cmocka_unit_test_setup_teardown(test_push_declined, setup,
		    push_teardown),
		cmocka_unit_test_setup_teardown(test_push_busy, setup,
		    push_teardown),
		cmocka_unit_test_setup_teardown(test_push_fetch_link_lost,
		    setup, push_teardown),
		cmocka_unit_test_setup_teardown(test_push_watches_inbox, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_push_freed_mid_fetch,
		    setup, push_teardown),
		cmocka_unit_test_setup_teardown(test_push_uidvalidity_changed,
		    setup, push_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
