/*
 * mirror/mirror through its public API (mirror.h): whole syncs of one
 * account against tests/fakes/imapd_mem (an IMAP server on the in-memory
 * transport), into a temporary output and state directory.  The mbox files
 * and the state are checked after each sync, and the commands the server
 * saw.
 *
 * The sessions the engine opens (account_session_new -> session_new) are
 * put on transport_mem by linking with --wrap=session_new.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testdir.h"
#include <ev.h>

#include "../fakes/imapd_mem.h"
#include "../fakes/transport_mem.h"
#include "config.h"
#include "imap/session.h"
#include "log.h"
#include "mbox/mbox.h"
#include "mirror/mirror.h"
#include "mirror/msgindex.h"
#include "mirror/plan.h"
#include "mirror/state.h"

#define MSG1 "Subject: one\r\n\r\nFirst body\r\n"
#define MSG2 "Subject: two\r\n\r\nFrom me to you\r\n"
#define MSG3 "Subject: three\r\n\r\nThird body\r\n"
#define MSG4 "Subject: four\r\n\r\nFourth body\r\n"
#define MSG5 "Subject: five\r\n\r\nFifth body\r\n"

struct session *__real_session_new(struct ev_loop *,
    const struct session_params *, const struct session_callbacks *, void *);
struct session *__wrap_session_new(struct ev_loop *,
    const struct session_params *, const struct session_callbacks *, void *);

/* Every session on the in-memory transport. */
struct session *
__wrap_session_new(struct ev_loop *l, const struct session_params *params,
    const struct session_callbacks *cb, void *arg)
{
	struct session_params p = *params;

	p.transport = &transport_mem_ops;
	return __real_session_new(l, &p, cb, arg);
}

static struct ev_loop *loop;
static struct imapd srv;
static char dir[64];
static char out_dir[128];
static struct config *cfg;
static struct mirror_result res;
static unsigned done_calls;
static char logbuf[65536];
static struct account_state st;

static void
capture(enum log_level level, const char *line, void *arg)
{
	size_t len = strlen(logbuf);

	(void)level;
	(void)arg;
	snprintf(logbuf + len, sizeof logbuf - len, "%s\n", line);
}

static bool
logged(const char *text)
{
	return strstr(logbuf, text) != NULL;
}

static void
on_done(struct mirror *m, const struct mirror_result *r, void *arg)
{
	(void)m;
	(void)arg;
	res = *r;
	done_calls++;
	ev_break(loop, EVBREAK_ALL);
}

static void
on_watchdog(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ALL);
}

/* Loads a config for account "acct" with extra account lines. */
static void
configure(const char *extra)
{
	char text[2048];

	config_free(&cfg);
	snprintf(text, sizeof text,
	    "[general]\nstate_dir = %s/state\ntimeout = 30s\n"
	    "[acct]\nhost = imap.example.org\ntls = none\n"
	    "allow_plaintext = yes\nuser = user\npassword = s3cret\n"
	    "compress = no\noutput = %s\nexclude = Trash\n%s",
	    dir, out_dir, extra);
	assert_int_equal(config_load_string("t.ini", text, &cfg), 0);
}

/* One whole sync: started, run until done is called. */
static void
sync_once(void)
{
	struct mirror *m;
	ev_timer watchdog;
	unsigned before = done_calls;

	memset(&res, 0, sizeof res);
	m = mirror_start(loop, cfg, &cfg->accounts[0], on_done, NULL);
	assert_non_null(m);
	/* done never comes from inside mirror_start. */
	assert_int_equal(done_calls, before);
	ev_timer_init(&watchdog, on_watchdog, 20, 0);
	ev_timer_start(loop, &watchdog);
	ev_run(loop, 0);
	ev_timer_stop(loop, &watchdog);
	mirror_free(&m);
	assert_int_equal(done_calls, before + 1);
}

static void
expect_ok(void)
{
	if (res.error != MIRROR_OK)
		fail_msg("sync failed: %s", res.message);
}

static void
expect_error(enum mirror_error error, const char *words)
{
	assert_int_equal(res.error, error);
	if (strstr(res.message, words) == NULL)
		fail_msg("\"%s\" lacks \"%s\"", res.message, words);
}

static char *
slurp(const char *rel)
{
	char path[256], *buf;
	FILE *f;
	long size;

	snprintf(path, sizeof path, "%s/%s", out_dir, rel);
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	buf[size] = '\0';
	fclose(f);
	return buf;
}

/* Entries of the mbox at rel (lines starting "From "). */
static int
entries(const char *rel)
{
	char *text = slurp(rel);
	int n = 0;

	if (text == NULL)
		return -1;
	for (const char *p = text; p != NULL; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, "From ", 5) == 0)
			n++;
	}
	free(text);
	return n;
}

static bool
exists(const char *rel)
{
	char path[256];
	struct stat sb;

	snprintf(path, sizeof path, "%s/%s", out_dir, rel);
	return stat(path, &sb) == 0;
}

static off_t
file_size(const char *rel)
{
	char path[256];
	struct stat sb;

	snprintf(path, sizeof path, "%s/%s", out_dir, rel);
	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

/* Files in output whose names start with prefix. */
static int
files_like(const char *prefix)
{
	DIR *d = opendir(out_dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static char *
account_dir(void)
{
	char *sd = state_account_dir(cfg->state_dir, "acct");

	assert_non_null(sd);
	return sd;
}

/* Loads the account's saved state into st. */
static void
load_saved(void)
{
	char *sd = account_dir(), *error = NULL;

	state_clear(&st);
	if (state_load(sd, &st, &error) != 0)
		fail_msg("%s", error);
	free(sd);
}

/* The saved state of mailbox name (must exist). */
static const struct mailbox_state *
saved(const char *name)
{
	const struct mailbox_state *ms;

	load_saved();
	ms = state_find(&st, name);
	assert_non_null(ms);
	return ms;
}

static struct imapd_mailbox *
inbox_with(unsigned n)
{
	static const char *const bodies[] = { MSG1, MSG2, MSG3, MSG4, MSG5 };
	struct imapd_mailbox *b = imapd_add_mailbox(&srv, "INBOX");

	for (unsigned i = 0; i < n; i++)
		imapd_add_message(b, bodies[i % 5]);
	return b;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mm-mirror-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(out_dir, sizeof out_dir, "%s/out", dir);
	logbuf[0] = '\0';
	log_set_sink(capture, NULL);
	log_set_level(LOGL_DEBUG);
	loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(loop);
	transport_mem_reset();
	imapd_init(&srv, loop);
	done_calls = 0;
	memset(&st, 0, sizeof st);
	configure("");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	imapd_stop(&srv);
	assert_false(transport_mem_busy());
	ev_loop_destroy(loop);
	config_free(&cfg);
	state_clear(&st);
	log_set_sink(NULL, NULL);
	mbox_set_lock_wait(MBOX_LOCK_WAIT_MSEC_DEFAULT);
	testdir_remove(dir);
	return 0;
}

/* A first sync: every selected mailbox into its mbox, in UID order,
 * mboxrd-quoted, LF line ends; the excluded one left alone; read-only. */
static void
test_first_sync(void **state)
{
	struct imapd_mailbox *work;
	const struct mailbox_state *ms;
	char *text;
	struct stat sb;
	char path[256];

	(void)state;
	inbox_with(3);
	work = imapd_add_mailbox(&srv, "Work/Reports");
	imapd_add_message(work, MSG4);
	imapd_add_message(work, MSG5);
	imapd_add_message(imapd_add_mailbox(&srv, "Trash"), MSG1);
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 5);
	assert_int_equal(res.bytes, strlen(MSG1) + strlen(MSG2) + strlen(MSG3) +
	    strlen(MSG4) + strlen(MSG5));
	assert_int_equal(res.mailboxes_checked, 2);
	assert_int_equal(res.mailboxes_opened, 2);

	assert_int_equal(entries("INBOX.mbox"), 3);
	text = slurp("INBOX.mbox");
	assert_non_null(strstr(text, "Subject: one\n\nFirst body\n"));
	assert_non_null(strstr(text, "\n>From me to you\n"));
	assert_null(strstr(text, "\r"));
	assert_true(strstr(text, "one") < strstr(text, "two"));
	assert_true(strstr(text, "two") < strstr(text, "three"));
	free(text);
	assert_int_equal(entries("Work/Reports.mbox"), 2);
	assert_false(exists("Trash.mbox"));
	snprintf(path, sizeof path, "%s/INBOX.mbox", out_dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	ms = saved("INBOX");
	assert_int_equal(ms->uidvalidity, 1000);
	assert_int_equal(ms->last_uid, 3);
	assert_int_equal(ms->uidnext, 4);
	assert_int_equal(ms->messages, 3);
	assert_int_equal(ms->mbox_size, file_size("INBOX.mbox"));
	assert_string_equal(ms->file, "INBOX.mbox");
	assert_null(st.last_error);
	assert_int_equal(st.failures, 0);
	assert_true(st.last_success > 0);

	/* Read-only: EXAMINE and BODY.PEEK only; the excluded mailbox never
	 * opened; one LOGOUT at the end. */
	assert_int_equal(imapd_count(&srv, "SELECT"), 0);
	assert_int_equal(imapd_count(&srv, "STORE"), 0);
	assert_int_equal(imapd_count(&srv, "BODY[]"), 0);
	assert_int_equal(imapd_count(&srv, "EXAMINE Trash"), 0);
	assert_int_equal(imapd_count(&srv, "EXAMINE"), 2);
	assert_int_equal(srv.logouts, 1);
}

/* Nothing new: STATUS says so, and no mailbox is opened. */
static void
test_nothing_new(void **state)
{
	(void)state;
	inbox_with(2);
	sync_once();
	expect_ok();
	assert_int_equal(srv.examines, 1);
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 0);
	assert_int_equal(res.mailboxes_checked, 1);
	assert_int_equal(res.mailboxes_opened, 0);
	assert_int_equal(srv.examines, 1);
	assert_int_equal(entries("INBOX.mbox"), 2);
}

/* A few new messages come with the EXAMINE (a direct fetch from the last
 * UID), and only they are appended. */
static void
test_incremental_direct(void **state)
{
	struct imapd_mailbox *inbox;
	const struct mailbox_state *ms;

	(void)state;
	inbox = inbox_with(3);
	sync_once();
	expect_ok();
	imapd_add_message(inbox, MSG4);
	imapd_add_message(inbox, MSG5);
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 2);
	assert_int_equal(res.mailboxes_opened, 1);
	assert_int_equal(imapd_count(&srv, "UID FETCH 4:* (UID INTERNALDATE "
	    "RFC822.SIZE FLAGS BODY.PEEK[])"), 1);
	assert_int_equal(entries("INBOX.mbox"), 5);
	ms = saved("INBOX");
	assert_int_equal(ms->last_uid, 5);
	assert_int_equal(ms->messages, 5);
	assert_int_equal(ms->mbox_size, file_size("INBOX.mbox"));
}

/* LIST-STATUS: the plan needs no STATUS command. */
static void
test_list_status(void **state)
{
	(void)state;
	srv.caps = "IMAP4rev1 AUTH=PLAIN SASL-IR LIST-STATUS";
	inbox_with(2);
	imapd_add_message(imapd_add_mailbox(&srv, "Archive"), MSG3);
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 3);
	assert_int_equal(imapd_count(&srv, "RETURN (STATUS (UIDVALIDITY "
	    "UIDNEXT MESSAGES))"), 1);
	assert_int_equal(imapd_count(&srv, "\nSTATUS "), 0);
	assert_int_equal(entries("Archive.mbox"), 1);
}

/* A new UIDVALIDITY: the old mbox is kept aside under a name carrying the
 * old value, and the mailbox is mirrored afresh. */
static void
test_uidvalidity_change(void **state)
{
	struct imapd_mailbox *inbox;
	const struct mailbox_state *ms;

	(void)state;
	inbox = inbox_with(3);
	sync_once();
	expect_ok();
	inbox->uidvalidity = 2000;
	sync_once();
	expect_ok();
	assert_true(logged("UIDVALIDITY changed from 1000 to 2000"));
	assert_true(exists("INBOX.uidvalidity-1000.mbox"));
	assert_int_equal(entries("INBOX.uidvalidity-1000.mbox"), 3);
	assert_int_equal(entries("INBOX.mbox"), 3);
	ms = saved("INBOX");
	assert_int_equal(ms->uidvalidity, 2000);
	assert_int_equal(ms->last_uid, 3);
}

/* An mbox we have no record of is someone else's: kept, not appended to. */
static void
test_unknown_mirror_refused(void **state)
{
	FILE *f;
	char path[256];
	struct stat before, after;

	(void)state;
	inbox_with(1);
	assert_int_equal(mkdir(out_dir, 0700), 0);
	snprintf(path, sizeof path, "%s/INBOX.mbox", out_dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("not ours\n", f);
	fclose(f);
	assert_int_equal(stat(path, &before), 0);
	sync_once();
	expect_error(MIRROR_ERR_LOCAL, "has no record of");
	assert_non_null(strstr(res.message, "INBOX.mbox"));
	assert_non_null(strstr(res.message, "state_dir"));
	assert_string_equal(srv.log, "");
	assert_int_equal(files_like("INBOX.unknown-"), 0);
	assert_int_equal(stat(path, &after), 0);
	assert_true(after.st_size == before.st_size &&
	    after.st_ino == before.st_ino);
}

/* A state that knows the account: a stranger's file where a new mailbox
 * goes is kept aside, not appended to. */
static void
test_unknown_file_kept(void **state)
{
	struct imapd_mailbox *inbox;
	FILE *f;
	char path[256];

	(void)state;
	imapd_add_message(imapd_add_mailbox(&srv, "Other"), MSG2);
	sync_once();
	expect_ok();
	snprintf(path, sizeof path, "%s/INBOX.mbox", out_dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("not ours\n", f);
	fclose(f);
	inbox = imapd_add_mailbox(&srv, "INBOX");
	imapd_add_message(inbox, MSG1);
	sync_once();
	expect_ok();
	assert_int_equal(files_like("INBOX.unknown-"), 1);
	assert_int_equal(entries("INBOX.mbox"), 1);
	assert_true(logged("kept the previous mirror as"));
}

/* One mailbox cannot be opened: the others are mirrored, the account
 * fails naming it, and the failure is in the state. */
static void
test_examine_refused(void **state)
{
	struct imapd_mailbox *work;

	(void)state;
	inbox_with(2);
	work = imapd_add_mailbox(&srv, "Work");
	imapd_add_message(work, MSG3);
	work->examine_no = true;
	sync_once();
	expect_error(MIRROR_ERR_SERVER, "mailbox Work: EXAMINE failed");
	assert_int_equal(res.messages, 2);
	assert_int_equal(entries("INBOX.mbox"), 2);
	assert_false(exists("Work.mbox"));
	(void)saved("INBOX");
	assert_int_equal(st.failures, 1);
	assert_non_null(st.last_error);
	assert_non_null(strstr(st.last_error, "EXAMINE failed"));
	assert_true(state_find(&st, "Work") == NULL ||
	    state_find(&st, "Work")->last_uid == 0);
}

/* A mailbox without UIDVALIDITY cannot be mirrored safely: skipped. */
static void
test_no_uidvalidity(void **state)
{
	struct imapd_mailbox *inbox;

	(void)state;
	inbox = inbox_with(2);
	inbox->no_uidvalidity = true;
	sync_once();
	expect_error(MIRROR_ERR_PROTOCOL, "the server sent no UIDVALIDITY");
	assert_int_equal(res.messages, 0);
	assert_false(exists("INBOX.mbox"));
	assert_true(logged("STATUS lacks UIDVALIDITY"));
}

/* A message the server sends as NIL is a hole: nothing past it is kept;
 * after PLAN_HOLE_TRIES_MAX syncs it is given up and the rest follows. */
static void
test_hole_given_up(void **state)
{
	const struct mailbox_state *ms;

	(void)state;
	inbox_with(3);
	srv.nil_uid = 2;
	sync_once();
	expect_error(MIRROR_ERR_SERVER, "UID 2: the server sent no body");
	assert_int_equal(res.messages, 1);
	assert_int_equal(entries("INBOX.mbox"), 1);
	ms = saved("INBOX");
	assert_int_equal(ms->last_uid, 1);
	assert_int_equal(ms->hole_uid, 2);
	assert_int_equal(ms->hole_tries, 1);
	for (unsigned i = 2; i < PLAN_HOLE_TRIES_MAX; i++) {
		sync_once();
		expect_error(MIRROR_ERR_SERVER, "UID 2");
		assert_int_equal(saved("INBOX")->hole_tries, i);
	}
	sync_once();
	expect_ok();
	assert_true(logged("given up"));
	assert_int_equal(res.messages, 1);
	ms = saved("INBOX");
	assert_int_equal(ms->last_uid, 3);
	assert_int_equal(ms->hole_uid, 0);
	assert_int_equal(ms->n_skipped, 1);
	assert_int_equal(ms->skipped[0], 2);
	assert_int_equal(entries("INBOX.mbox"), 2);
	/* Given up for good: the next sync has nothing to do. */
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 0);
}

/* A message listed but left out of the answer is a hole too. */
static void
test_message_left_out(void **state)
{
	(void)state;
	inbox_with(3);
	srv.omit_uid = 3;
	sync_once();
	expect_error(MIRROR_ERR_SERVER, "UID 3: the server answered without "
	    "it");
	assert_int_equal(res.messages, 2);
	assert_int_equal(saved("INBOX")->last_uid, 2);
	/* Delivered at last: the hole closes. */
	srv.omit_uid = 0;
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 1);
	assert_int_equal(saved("INBOX")->hole_uid, 0);
	assert_int_equal(entries("INBOX.mbox"), 3);
}

/* A server that ends each session after two messages: what came whole is
 * committed, and new connections go on until everything is in, each
 * message once. */
static void
test_reconnect_after_bye(void **state)
{
	char *text;

	(void)state;
	inbox_with(5);
	srv.bye_after = 2;
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 5);
	assert_int_equal(srv.connections, 3);
	assert_true(logged("reconnecting"));
	assert_int_equal(entries("INBOX.mbox"), 5);
	text = slurp("INBOX.mbox");
	assert_non_null(strstr(text, "Subject: five"));
	assert_null(strstr(strstr(text, "Subject: one") + 1, "Subject: one"));
	free(text);
	assert_int_equal(saved("INBOX")->last_uid, 5);
}

/* NO [UNAVAILABLE] after so many messages: the same, by refusal. */
static void
test_reconnect_after_unavailable(void **state)
{
	(void)state;
	inbox_with(5);
	srv.unavailable_after = 2;
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 5);
	assert_int_equal(srv.connections, 3);
	assert_int_equal(entries("INBOX.mbox"), 5);
}

/* A connection lost before it delivered anything fails the run; nothing
 * is appended, and the failure is recorded. */
static void
test_connection_lost(void **state)
{
	(void)state;
	inbox_with(2);
	srv.drop_on_fetch = true;
	sync_once();
	expect_error(MIRROR_ERR_NETWORK, "connection reset by peer");
	assert_int_equal(res.messages, 0);
	assert_int_equal(srv.connections, 1);
	assert_int_equal(saved("INBOX")->last_uid, 0);
	assert_int_equal(st.failures, 1);
}

static void
test_auth_refused(void **state)
{
	char *sd, *error = NULL;

	(void)state;
	inbox_with(1);
	srv.auth_no = true;
	sync_once();
	expect_error(MIRROR_ERR_AUTH, "AUTHENTICATIONFAILED");
	assert_false(exists("INBOX.mbox"));
	sd = account_dir();
	assert_int_equal(state_load(sd, &st, &error), 0);
	free(sd);
	assert_int_equal(st.failures, 1);
	assert_non_null(st.last_error);
	/* The password never reaches the state file. */
	assert_null(strstr(st.last_error, "s3cret"));
}

static void
test_list_refused(void **state)
{
	(void)state;
	inbox_with(1);
	srv.list_no = true;
	sync_once();
	expect_error(MIRROR_ERR_SERVER, "LIST failed: LIST is not for you");
	assert_int_equal(srv.examines, 0);
}

/* STATUS refused: the mailbox is opened anyway. */
static void
test_status_refused(void **state)
{
	(void)state;
	inbox_with(2);
	srv.status_no = true;
	sync_once();
	expect_ok();
	assert_true(logged("STATUS failed, opening a mailbox anyway"));
	assert_int_equal(res.messages, 2);
	/* Without STATUS, each sync looks inside. */
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 0);
	assert_int_equal(srv.examines, 2);
}

static void
test_no_mailbox_matches(void **state)
{
	(void)state;
	configure("mailboxes = Nothing*\n");
	inbox_with(1);
	sync_once();
	expect_ok();
	assert_true(logged("no mailbox matches"));
	assert_int_equal(res.mailboxes_checked, 0);
	assert_false(exists("INBOX.mbox"));
}

/* Bodies as quoted strings, and bodies whose UID comes after them
 * (spooled until the response is whole). */
static void
test_string_and_spooled_bodies(void **state)
{
	struct imapd_mailbox *b;
	char *text;

	(void)state;
	b = imapd_add_mailbox(&srv, "INBOX");
	imapd_add_message(b, "Subject: quoted");
	srv.string_bodies = true;
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 1);
	srv.string_bodies = false;
	srv.uid_after_body = true;
	imapd_add_message(b, MSG2);
	imapd_add_message(b, MSG3);
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 2);
	assert_int_equal(entries("INBOX.mbox"), 3);
	text = slurp("INBOX.mbox");
	assert_non_null(strstr(text, "Subject: quoted\n"));
	assert_non_null(strstr(text, "Subject: three\n\nThird body\n"));
	free(text);
}

/* The index records of INBOX.mbox (must load). */
static void
load_index(struct msgindex_list *l)
{
	char *sd = account_dir(), *path, *error = NULL;

	path = msgindex_path(sd, "INBOX.mbox");
	assert_non_null(path);
	if (msgindex_load(path, "INBOX.mbox", l, &error) != 0)
		fail_msg("%s", error != NULL ? error : "no index");
	free(path);
	free(sd);
}

/* FLAGS before or after a streamed body, with a quoted-string body and
 * with a spooled one: each record has them, and its entry's place. */
static void
test_index_flags_anywhere(void **state)
{
	struct imapd_mailbox *b;
	struct msgindex_list l;
	uint64_t end = 0;

	(void)state;
	b = imapd_add_mailbox(&srv, "INBOX");
	imapd_add_message(b, MSG1);
	srv.flags_item = "FLAGS (\\Seen $Forwarded \\Recent)";
	srv.flags_first = false;
	sync_once();
	expect_ok();
	imapd_add_message(b, MSG2);
	srv.flags_item = "FLAGS (\\Flagged)";
	srv.flags_first = true;
	sync_once();
	expect_ok();
	imapd_add_message(b, "Subject: quoted");
	srv.flags_item = "FLAGS (\\Answered \\Draft)";
	srv.flags_first = false;
	srv.string_bodies = true;
	sync_once();
	expect_ok();
	imapd_add_message(b, MSG4);
	srv.flags_item = "FLAGS (\\Deleted Junk)";
	srv.string_bodies = false;
	srv.uid_after_body = true;
	sync_once();
	expect_ok();
	srv.flags_item = NULL;
	srv.uid_after_body = false;
	imapd_add_message(b, MSG5);
	sync_once();
	expect_ok();

	load_index(&l);
	assert_int_equal(l.n, 5);
	for (size_t i = 0; i < l.n; i++) {
		assert_int_equal(l.v[i].uid, i + 1);
		assert_int_equal(l.v[i].uidvalidity, saved("INBOX")->uidvalidity);
		assert_int_equal(l.v[i].offset, end);
		end += l.v[i].length;
	}
	assert_int_equal(end, saved("INBOX")->mbox_size);
	assert_int_equal(l.v[0].flags, MSGINDEX_SEEN);
	assert_string_equal(l.v[0].keywords, "$Forwarded");
	assert_int_equal(l.v[1].flags, MSGINDEX_FLAGGED);
	assert_null(l.v[1].keywords);
	assert_int_equal(l.v[2].flags, MSGINDEX_ANSWERED | MSGINDEX_DRAFT);
	assert_int_equal(l.v[3].flags, MSGINDEX_DELETED);
	assert_string_equal(l.v[3].keywords, "Junk");
	assert_int_equal(l.v[4].flags, 0);
	assert_int_equal(l.v[0].size, strlen(MSG1));
	msgindex_list_free(&l);
}

/* Another process syncing the account (holding its lock): skipped at
 * once, naming it, without touching the state or the server. */
static void
test_account_locked(void **state)
{
	char *sd = account_dir(), *error = NULL, want[64];
	long holder = 0;
	int fd = -1;

	(void)state;
	inbox_with(1);
	assert_int_equal(state_lock(sd, &fd, &holder, &error), 0);
	sync_once();
	snprintf(want, sizeof want, "(pid %ld)", (long)getpid());
	/* Not a server's doing, nor a local failure: someone else's turn. */
	expect_error(MIRROR_ERR_BUSY, want);
	assert_int_equal(srv.connections, 0);
	state_unlock(&fd);
	free(sd);
}

/* Someone appended to the mbox after our last commit: kept, and new mail
 * goes after it. */
static void
test_mbox_changed_by_others(void **state)
{
	struct imapd_mailbox *inbox;
	char path[256], *text;
	FILE *f;

	(void)state;
	inbox = inbox_with(1);
	sync_once();
	expect_ok();
	snprintf(path, sizeof path, "%s/INBOX.mbox", out_dir);
	assert_non_null(f = fopen(path, "a"));
	fputs("From someone Sat Nov 21 09:05:03 2026\nhand-made\n\n", f);
	fclose(f);
	imapd_add_message(inbox, MSG2);
	sync_once();
	expect_ok();
	assert_true(logged("was changed since mboxmirror left it"));
	text = slurp("INBOX.mbox");
	assert_non_null(strstr(text, "hand-made"));
	assert_true(strstr(text, "hand-made") < strstr(text, "Subject: two"));
	free(text);
	assert_int_equal(saved("INBOX")->mbox_size, file_size("INBOX.mbox"));
}

/* Someone cut the mbox short: warned, appended at its end. */
static void
test_mbox_shortened_by_others(void **state)
{
	struct imapd_mailbox *inbox;
	char path[256];

	(void)state;
	inbox = inbox_with(2);
	sync_once();
	expect_ok();
	snprintf(path, sizeof path, "%s/INBOX.mbox", out_dir);
	assert_int_equal(truncate(path, 0), 0);
	imapd_add_message(inbox, MSG3);
	sync_once();
	expect_ok();
	assert_true(logged("is shorter than mboxmirror left it"));
	assert_int_equal(entries("INBOX.mbox"), 1);
	assert_int_equal(saved("INBOX")->mbox_size, file_size("INBOX.mbox"));
}

/* A mail reader holding the mbox's dotlock: the mailbox waits, then is
 * skipped until the next sync; the others are not held up. */
static void
test_mbox_locked_by_reader(void **state)
{
	struct imapd_mailbox *inbox;
	char path[256];
	int fd;

	(void)state;
	inbox = inbox_with(1);
	imapd_add_message(imapd_add_mailbox(&srv, "Other"), MSG1);
	sync_once();
	expect_ok();
	imapd_add_message(inbox, MSG2);
	imapd_add_message(&srv.boxes[1], MSG3);
	snprintf(path, sizeof path, "%s/INBOX.mbox.lock", out_dir);
	assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	mbox_set_lock_wait(300);
	sync_once();
	expect_error(MIRROR_ERR_BUSY, "is locked by another program");
	assert_true(logged("is locked by another program; waiting"));
	assert_int_equal(res.messages, 1);
	assert_int_equal(entries("Other.mbox"), 2);
	assert_int_equal(entries("INBOX.mbox"), 1);
	/* Lock gone: the next sync brings it. */
	assert_int_equal(unlink(path), 0);
	sync_once();
	expect_ok();
	assert_int_equal(entries("INBOX.mbox"), 2);
}

/* Sizes listed highest UID first: the mbox still gets UID order. */
static void
test_sizes_out_of_order(void **state)
{
	char *text;

	(void)state;
	inbox_with(5);
	srv.reverse_sizes = true;
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 5);
	text = slurp("INBOX.mbox");
	assert_true(strstr(text, "one") < strstr(text, "two"));
	assert_true(strstr(text, "two") < strstr(text, "three"));
	assert_true(strstr(text, "four") < strstr(text, "five"));
	free(text);
	assert_int_equal(saved("INBOX")->last_uid, 5);
}

/* The size query refused: the mailbox is over for this run, nothing
 * counted against any message. */
static void
test_sizes_refused(void **state)
{
	const struct mailbox_state *ms;

	(void)state;
	inbox_with(2);
	srv.sizes_no = true;
	sync_once();
	expect_error(MIRROR_ERR_SERVER, "UID FETCH failed: sizes "
	    "unavailable");
	assert_int_equal(res.messages, 0);
	ms = saved("INBOX");
	assert_int_equal(ms->last_uid, 0);
	assert_int_equal(ms->hole_uid, 0);
}

/* A body fetch refused outright counts a try against its first message
 * (a server that cannot deliver one corrupt message) ... */
static void
test_fetch_refused_counts_try(void **state)
{
	const struct mailbox_state *ms;

	(void)state;
	inbox_with(2);
	srv.fetch_refusal = "NO broken item";
	sync_once();
	expect_error(MIRROR_ERR_SERVER, "UID 1: UID FETCH failed: broken "
	    "item");
	ms = saved("INBOX");
	assert_int_equal(ms->hole_uid, 1);
	assert_int_equal(ms->hole_tries, 1);
	assert_int_equal(srv.connections, 1);
}

/* ... but one that says "not now" does not. */
static void
test_fetch_refused_transient(void **state)
{
	(void)state;
	inbox_with(2);
	srv.fetch_refusal = "NO [UNAVAILABLE] later";
	sync_once();
	expect_error(MIRROR_ERR_SERVER, "UID FETCH failed");
	assert_non_null(strstr(res.message, "later"));
	assert_int_equal(saved("INBOX")->hole_uid, 0);
	assert_int_equal(res.messages, 0);
}

/* A corrupt state file: the run fails before any connection, and the
 * file is left for a person to look at. */
static void
test_state_corrupt(void **state)
{
	char *sd = account_dir(), path[256];
	FILE *f;

	(void)state;
	inbox_with(1);
	assert_int_equal(mkdir(cfg->state_dir, 0700), 0);
	assert_int_equal(mkdir(sd, 0700), 0);
	snprintf(path, sizeof path, "%s/state", sd);
	free(sd);
	assert_non_null(f = fopen(path, "w"));
	fputs("garbage\n", f);
	fclose(f);
	sync_once();
	expect_error(MIRROR_ERR_LOCAL, path);
	assert_string_equal(srv.log, "");
	assert_false(exists("INBOX.mbox"));
}

/* An output directory that cannot be made: the run fails, and says so
 * in the state. */
static void
test_output_unusable(void **state)
{
	char path[128];
	FILE *f;

	(void)state;
	inbox_with(1);
	snprintf(path, sizeof path, "%s/file", dir);
	assert_non_null(f = fopen(path, "w"));
	fclose(f);
	snprintf(out_dir, sizeof out_dir, "%s/file/out", dir);
	configure("");
	sync_once();
	expect_error(MIRROR_ERR_LOCAL, "cannot create");
	assert_string_equal(srv.log, "");
	load_saved();
	assert_int_equal(st.failures, 1);
	assert_non_null(strstr(st.last_error, "cannot create"));
}

/* The mbox replaced by a symlink: that mailbox is skipped (nothing written
 * through the link), the others go on, the account fails naming it. */
static void
test_mbox_symlink_refused(void **state)
{
	struct imapd_mailbox *inbox;
	char path[256], target[256];
	struct stat sb;
	FILE *f;

	(void)state;
	inbox = inbox_with(1);
	imapd_add_mailbox(&srv, "Other");
	sync_once();
	expect_ok();
	snprintf(target, sizeof target, "%s/elsewhere", dir);
	assert_non_null(f = fopen(target, "w"));
	fclose(f);
	snprintf(path, sizeof path, "%s/INBOX.mbox", out_dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(target, path), 0);
	imapd_add_message(inbox, MSG2);
	imapd_add_message(&srv.boxes[1], MSG3);
	sync_once();
	expect_error(MIRROR_ERR_LOCAL, "mailbox INBOX: ");
	assert_int_equal(res.messages, 1);
	assert_int_equal(entries("Other.mbox"), 1);
	/* Nothing went through the link. */
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_size, 0);
}

/* Everything expunged on the server: nothing to open, the mirror keeps
 * what it has (backup semantics) and remembers the new UIDNEXT. */
static void
test_mailbox_emptied(void **state)
{
	struct imapd_mailbox *inbox;

	(void)state;
	inbox = inbox_with(2);
	sync_once();
	expect_ok();
	inbox->n_msgs = 0;
	inbox->uidnext = 5;
	sync_once();
	expect_ok();
	assert_int_equal(srv.examines, 1);
	assert_int_equal(saved("INBOX")->uidnext, 5);
	assert_int_equal(entries("INBOX.mbox"), 2);
}

/* Many mailboxes (the name table grows), and a \Noselect one that only
 * holds others: never opened. */
static void
test_many_mailboxes(void **state)
{
	struct imapd_mailbox *b;
	char name[32];

	(void)state;
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof name, "Box%02d", i);
		imapd_add_message(imapd_add_mailbox(&srv, name), MSG1);
	}
	b = imapd_add_mailbox(&srv, "Parent");
	b->flags = "\\Noselect \\HasChildren";
	sync_once();
	expect_ok();
	assert_int_equal(res.mailboxes_checked, 30);
	assert_int_equal(res.messages, 30);
	assert_int_equal(entries("Box00.mbox"), 1);
	assert_int_equal(entries("Box29.mbox"), 1);
	assert_int_equal(imapd_count(&srv, "Parent"), 0);
	assert_false(exists("Parent.mbox"));
}

/* Stopped in the middle of a batch (the server fell silent after two of
 * its five messages): no done call, the appended but uncommitted messages
 * are rolled back, and the next sync brings every message exactly once. */
static void
test_free_mid_batch(void **state)
{
	struct mirror *m;
	char *text;

	(void)state;
	inbox_with(5);
	srv.stall_after = 2;
	m = mirror_start(loop, cfg, &cfg->accounts[0], on_done, NULL);
	assert_non_null(m);
	for (int i = 0; i < 1000 && (srv.body_fetches == 0 ||
	    transport_mem_busy()); i++)
		ev_run(loop, EVRUN_NOWAIT);
	assert_int_equal(srv.body_fetches, 1);
	/* Two messages read and appended, none committed. */
	assert_false(transport_mem_busy());
	assert_int_equal(done_calls, 0);
	mirror_free(&m);
	assert_int_equal(done_calls, 0);
	assert_int_equal(file_size("INBOX.mbox"), 0);
	assert_int_equal(saved("INBOX")->mbox_size, 0);

	srv.stall_after = 0;
	sync_once();
	expect_ok();
	assert_int_equal(entries("INBOX.mbox"), 5);
	text = slurp("INBOX.mbox");
	assert_null(strstr(strstr(text, "Subject: one") + 1, "Subject: one"));
	assert_null(strstr(strstr(text, "Subject: two") + 1, "Subject: two"));
	free(text);
}

/* A message that arrives between the size query and the direct fetch
 * pipelined with it: it directly follows the listed ones, so it is
 * committed; the next sync finds nothing new and appends nothing twice. */
static void
test_mail_arrives_during_fetch(void **state)
{
	struct imapd_mailbox *inbox;

	(void)state;
	inbox = inbox_with(3);
	sync_once();
	expect_ok();
	imapd_add_message(inbox, MSG4);
	imapd_add_message(inbox, MSG5);
	srv.arrive_after_sizes = "Subject: six\r\n\r\nSixth\r\n";
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 3);
	assert_int_equal(saved("INBOX")->last_uid, 6);
	assert_int_equal(entries("INBOX.mbox"), 6);
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 0);
	assert_int_equal(entries("INBOX.mbox"), 6);
}

/* Without STATUS the fetch sent with EXAMINE trusts the state; when
 * EXAMINE then shows a new UIDVALIDITY, its answer is ignored and the
 * mailbox fetched again from the start. */
static void
test_stale_pipelined_fetch(void **state)
{
	struct imapd_mailbox *inbox;

	(void)state;
	inbox = inbox_with(3);
	srv.status_no = true;
	sync_once();
	expect_ok();
	inbox->uidvalidity = 2000;
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 3);
	assert_int_equal(imapd_count(&srv, "UID FETCH 4:* (UID RFC822.SIZE)"),
	    1);
	assert_int_equal(imapd_count(&srv, "UID FETCH 1:* (UID RFC822.SIZE)"),
	    2);
	assert_int_equal(entries("INBOX.uidvalidity-1000.mbox"), 3);
	assert_int_equal(entries("INBOX.mbox"), 3);
	assert_int_equal(saved("INBOX")->uidvalidity, 2000);
}

/* A connection lost after LOGOUT was sent: everything was committed and
 * recorded before, so the run still succeeds. */
static void
test_logout_unanswered(void **state)
{
	(void)state;
	inbox_with(2);
	srv.logout_drop = true;
	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 2);
	assert_int_equal(srv.logouts, 1);
	(void)saved("INBOX");
	assert_null(st.last_error);
}

/* A body without INTERNALDATE cannot get its From_ line: a protocol
 * error, nothing appended (as a quoted string, and spooled). */
static void
test_body_without_internaldate(void **state)
{
	(void)state;
	imapd_add_message(imapd_add_mailbox(&srv, "INBOX"), "Subject: x");
	srv.no_internaldate = true;
	srv.string_bodies = true;
	sync_once();
	expect_error(MIRROR_ERR_PROTOCOL, "UID 1: FETCH response without "
	    "INTERNALDATE");
	assert_int_equal(res.messages, 0);
	srv.string_bodies = false;
	srv.uid_after_body = true;
	sync_once();
	expect_error(MIRROR_ERR_PROTOCOL, "FETCH response without UID or "
	    "INTERNALDATE");
	assert_int_equal(res.messages, 0);
	assert_int_equal(saved("INBOX")->last_uid, 0);
	assert_int_equal(file_size("INBOX.mbox"), 0);
}

/* The disk fills up (a file size limit) while a message is appended: the
 * run fails naming the file and the cause, the mbox is cut back to what
 * the state says, and once there is room the next sync brings the
 * message, once. */
static void
test_disk_full(void **state)
{
	struct imapd_mailbox *inbox;
	struct rlimit old, small;
	static char big[8192];
	void (*old_handler)(int);
	off_t committed;

	(void)state;
	inbox = inbox_with(1);
	sync_once();
	expect_ok();
	committed = file_size("INBOX.mbox");
	memset(big, 'x', sizeof big - 1);
	memcpy(big, "Subject: big\r\n\r\n", 16);
	imapd_add_message(inbox, big);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small = old;
	small.rlim_cur = 4096;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	sync_once();
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
	expect_error(MIRROR_ERR_LOCAL, "mailbox INBOX: write ");
	expect_error(MIRROR_ERR_LOCAL, "INBOX.mbox: File too large");
	assert_int_equal(res.messages, 0);
	assert_int_equal(file_size("INBOX.mbox"), committed);
	assert_int_equal(saved("INBOX")->last_uid, 1);
	assert_int_equal(saved("INBOX")->mbox_size, committed);

	sync_once();
	expect_ok();
	assert_int_equal(res.messages, 1);
	assert_int_equal(entries("INBOX.mbox"), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_sync, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nothing_new, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_incremental_direct, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list_status, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_uidvalidity_change, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unknown_mirror_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_file_kept, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_examine_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_uidvalidity, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hole_given_up, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_message_left_out, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_after_bye, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_reconnect_after_unavailable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_lost, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_status_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_mailbox_matches, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_string_and_spooled_bodies,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_flags_anywhere,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_account_locked, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mbox_changed_by_others,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mbox_shortened_by_others,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mbox_locked_by_reader,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes_out_of_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sizes_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fetch_refused_counts_try,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_refused_transient,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_corrupt, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_output_unusable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mbox_symlink_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_emptied, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_many_mailboxes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mail_arrives_during_fetch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_pipelined_fetch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_logout_unanswered, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_body_without_internaldate,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_mid_batch, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
