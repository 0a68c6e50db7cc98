/*
 * imap/session over tests/fakes/transport_mem: scripted server bytes in,
 * the client's exact bytes checked, on a real libev loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#include "../fakes/transport_mem.h"
#include "imap/sasl.h"
#include "imap/session.h"
#include "log.h"
#include "net/compress.h"

#define PLAIN_IR	"AHVzZXIAczNjcmV0"	/* \0user\0s3cret */
#define XOAUTH2_IR	"dXNlcj11c2VyAWF1dGg9QmVhcmVyIHMzY3JldAEB"
#define OAUTHBEARER_IR	"bixhPXVzZXIsAWhvc3Q9aW1hcC5leGFtcGxlLm9yZwFwb3J0" \
			"PTE0MwFhdXRoPUJlYXJlciBzM2NyZXQBAQ=="
#define OAUTH_ERROR	"eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0="

struct record {
	int ready;
	int closed;
	int failed;
	enum session_error error;
	char message[512];
	int tls_stages;
	int idling;		/* the idling callback */
	char order[64];		/* the tags of completed commands */
	char untagged[256];	/* keywords or statuses seen by a command */
	size_t literal_bytes;
};

static struct ev_loop *loop;
static struct record rec;
static struct session *sess;
static struct transport_mem *mem;
static bool free_in_failed;	/* on_failed frees the session */

/* The credential: delivered from the loop, as secret_fetch_async does. */
static ev_idle cred_idle;
static session_secret_fn *cred_done;
static void *cred_done_arg;
static const char *cred_error;	/* NULL: hand out cred_secret */
static const char *cred_secret;
static int cred_cancelled;

static void
on_cred(struct ev_loop *l, ev_idle *w, int revents)
{
	(void)revents;
	ev_idle_stop(l, w);
	if (cred_error != NULL)
		cred_done(NULL, strdup(cred_error), cred_done_arg);
	else
		cred_done(strdup(cred_secret), NULL, cred_done_arg);
}

static void *
cred_fetch(struct ev_loop *l, void *arg, session_secret_fn *done,
    void *done_arg)
{
	(void)arg;
	cred_done = done;
	cred_done_arg = done_arg;
	ev_idle_start(l, &cred_idle);
	return &cred_idle;
}

static void
cred_cancel(void *job)
{
	ev_idle_stop(loop, job);
	cred_cancelled++;
}

static void
on_ready(struct session *s, void *arg)
{
	(void)s;
	(void)arg;
	rec.ready++;
}

static void
on_failed(struct session *s, enum session_error error, const char *message,
    void *arg)
{
	(void)s;
	(void)arg;
	rec.failed++;
	rec.error = error;
	snprintf(rec.message, sizeof rec.message, "%s", message);
	if (free_in_failed)
		session_free(&sess);
	ev_break(loop, EVBREAK_ALL);
}

static void
on_closed(struct session *s, void *arg)
{
	(void)s;
	(void)arg;
	rec.closed++;
}

static void
on_stage(struct session *s, enum session_stage stage, const char *text,
    void *arg)
{
	(void)s;
	(void)text;
	(void)arg;
	if (stage == SESSION_STAGE_TLS)
		rec.tls_stages++;
}

static void
on_idling(struct session *s, void *arg)
{
	(void)s;
	(void)arg;
	rec.idling++;
}

static const struct session_callbacks callbacks = {
	.ready = on_ready,
	.failed = on_failed,
	.closed = on_closed,
	.stage = on_stage,
	.idling = on_idling,
};

static void
cmd_untagged(struct session *s, const struct imap_response *resp, void *arg)
{
	size_t len = strlen(rec.untagged);

	(void)s;
	snprintf(rec.untagged + len, sizeof rec.untagged - len, "%s%s:%s",
	    len > 0 ? " " : "", (const char *)arg, resp->keyword != NULL ?
	    resp->keyword : resp->text);
}

static void
cmd_done(struct session *s, const struct imap_response *tagged, void *arg)
{
	size_t len = strlen(rec.order);

	(void)s;
	(void)arg;
	snprintf(rec.order + len, sizeof rec.order - len, "%s%s%s",
	    len > 0 ? " " : "", tagged->tag,
	    tagged->status == IMAP_STATUS_OK ? "" : "!");
}

static int
count_sink(void *arg, enum imap_sink_event event,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	(void)arg;
	(void)info;
	(void)data;
	if (event == IMAP_SINK_DATA)
		rec.literal_bytes += len;
	return 0;
}

/* Runs the loop until neither the transport nor the credential has
 * anything left to deliver: every scripted byte has been answered. */
static void
pump(void)
{
	for (int i = 0; i < 100000 && (transport_mem_busy() ||
	    ev_is_active(&cred_idle)); i++)
		ev_run(loop, EVRUN_NOWAIT);
	assert_false(transport_mem_busy());
}

static void
server(const char *bytes)
{
	transport_mem_push(mem, bytes);
	pump();
}

static void
expect_client(const char *bytes)
{
	assert_string_equal(transport_mem_take(mem), bytes);
}

static struct session_params
default_params(void)
{
	struct session_params p = {
		.name = "test",
		.host = "imap.example.org",
		.port = 143,
		.tls = SESSION_TLS_NONE,
		.user = "user",
		.auth = SESSION_AUTH_AUTO,
		.compress = SESSION_COMPRESS_NO,
		.timeout = 60,
		.credential = { cred_fetch, cred_cancel, NULL },
		.transport = &transport_mem_ops,
	};

	return p;
}

/* Starts a session; the connection comes up on the next pump(). */
static void
start(const struct session_params *p)
{
	sess = session_new(loop, p, &callbacks, NULL);
	assert_non_null(sess);
	session_set_sink(sess, count_sink, NULL);
	assert_int_equal(session_start(sess), 0);
	mem = transport_mem_last();
	assert_non_null(mem);
}

static void
start_connected(const struct session_params *p)
{
	start(p);
	pump();
	expect_client("");
}

/* Logged in with AUTHENTICATE PLAIN and SASL-IR, capabilities from the
 * tagged OK: ready, A1 used. */
static void
start_ready(void)
{
	struct session_params p = default_params();

	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n");
	expect_client("A1 AUTHENTICATE PLAIN " PLAIN_IR "\r\n");
	server("A1 OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] logged in\r\n");
	expect_client("");
	assert_int_equal(rec.ready, 1);
	assert_int_equal(rec.failed, 0);
}

static void
expect_failure(enum session_error error, const char *words)
{
	assert_int_equal(rec.failed, 1);
	assert_int_equal(rec.error, error);
	if (strstr(rec.message, words) == NULL)
		fail_msg("\"%s\" lacks \"%s\"", rec.message, words);
}

static int
setup(void **state)
{
	(void)state;
	memset(&rec, 0, sizeof rec);
	cred_error = NULL;
	cred_secret = "s3cret";
	cred_cancelled = 0;
	free_in_failed = false;
	loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(loop);
	ev_idle_init(&cred_idle, on_cred);
	transport_mem_reset();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	session_free(&sess);
	mem = NULL;
	assert_false(transport_mem_busy());
	ev_loop_destroy(loop);
	return 0;
}

/* Greetings */

static void
test_greeting_caps_asked(void **state)
{
	struct session_params p = default_params();

	(void)state;
	start_connected(&p);
	server("* OK hello\r\n");
	expect_client("A1 CAPABILITY\r\n");
	server("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nA1 OK done\r\n");
	/* No SASL-IR: the response waits for the server's "+". */
	expect_client("A2 AUTHENTICATE PLAIN\r\n");
	server("+ \r\n");
	expect_client(PLAIN_IR "\r\n");
	server("A2 OK logged in\r\n");
	/* Capabilities may change at login: asked again. */
	expect_client("A3 CAPABILITY\r\n");
	assert_int_equal(rec.ready, 0);
	server("* CAPABILITY IMAP4rev1 IDLE\r\nA3 OK done\r\n");
	assert_int_equal(rec.ready, 1);
	assert_true(session_has_cap(sess, "IDLE"));
	assert_false(session_has_cap(sess, "AUTH=PLAIN"));
}

static void
test_greeting_caps_given(void **state)
{
	(void)state;
	start_ready();
	assert_true(session_has_cap(sess, "LITERAL+"));
	assert_int_equal(session_literal_mode(sess), IMAP_LITERAL_PLUS);
}

static void
test_greeting_preauth(void **state)
{
	struct session_params p = default_params();

	(void)state;
	start_connected(&p);
	server("* PREAUTH [CAPABILITY IMAP4rev1] welcome back\r\n");
	expect_client("");
	assert_int_equal(rec.ready, 1);
	/* The secret was never needed, and never sent. */
}

static void
test_greeting_bye(void **state)
{
	struct session_params p = default_params();

	(void)state;
	start_connected(&p);
	server("* BYE too many connections\r\n");
	expect_failure(SESSION_ERR_SERVER, "BYE too many connections");
	expect_client("");
	assert_true(transport_mem_closed(mem));
}

static void
test_greeting_tagged(void **state)
{
	struct session_params p = default_params();

	(void)state;
	start_connected(&p);
	server("A1 OK hello\r\n");
	expect_failure(SESSION_ERR_PROTOCOL, "unknown tag A1");
}

static void
test_preauth_on_starttls_refused(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.tls = SESSION_TLS_STARTTLS;
	start_connected(&p);
	server("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
	expect_failure(SESSION_ERR_TLS, "PREAUTH");
	expect_client("");
}

static void
test_not_imap4(void **state)
{
	struct session_params p = default_params();

	(void)state;
	start_connected(&p);
	server("* OK [CAPABILITY POP3 AUTH=PLAIN] hi\r\n");
	expect_failure(SESSION_ERR_PROTOCOL, "IMAP4rev1");
	expect_client("");
}

/* Authentication */

static void
test_login(void **state)
{
	struct session_params p = default_params();

	(void)state;
	/* The error names the login that failed. */
	p.user = "alice";
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1] hi\r\n");
	expect_client("A1 LOGIN alice s3cret\r\n");
	server("A1 NO [AUTHENTICATIONFAILED] wrong\r\n");
	expect_failure(SESSION_ERR_AUTH,
	    "login as alice failed: [AUTHENTICATIONFAILED] wrong");
}

/* A password no quoted string can carry goes as a synchronising literal:
 * its bytes only after the server's "+". */
static void
test_login_literal(void **state)
{
	struct session_params p = default_params();

	(void)state;
	cred_secret = "p\xc3\xa4ss";
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1] hi\r\n");
	expect_client("A1 LOGIN user {5}\r\n");
	server("+ go ahead\r\n");
	expect_client("p\xc3\xa4ss\r\n");
	server("A1 OK [CAPABILITY IMAP4rev1] in\r\n");
	assert_int_equal(rec.ready, 1);
}

static void
test_logindisabled_obeyed(void **state)
{
	struct session_params p = default_params();

	(void)state;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n");
	expect_failure(SESSION_ERR_AUTH, "LOGINDISABLED");
	expect_client("");
}

static void
test_logindisabled_login_asked(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.auth = SESSION_AUTH_LOGIN;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN LOGINDISABLED] hi\r\n");
	expect_failure(SESSION_ERR_AUTH, "refuses LOGIN");
	expect_client("");
}

static void
test_plain_not_offered(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.auth = SESSION_AUTH_PLAIN;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1] hi\r\n");
	expect_failure(SESSION_ERR_AUTH, "AUTH=PLAIN");
	expect_client("");
}

static void
test_xoauth2_error_challenge(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.auth = SESSION_AUTH_XOAUTH2;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] hi\r\n");
	expect_client("A1 AUTHENTICATE XOAUTH2 " XOAUTH2_IR "\r\n");
	/* The error comes as a challenge, answered empty, then NO. */
	server("+ " OAUTH_ERROR "\r\n");
	expect_client("\r\n");
	assert_int_equal(rec.failed, 0);
	server("A1 NO [AUTHENTICATIONFAILED] invalid token\r\n");
	expect_failure(SESSION_ERR_AUTH, "invalid token");
}

static void
test_xoauth2_ok(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.auth = SESSION_AUTH_XOAUTH2;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] hi\r\n");
	expect_client("A1 AUTHENTICATE XOAUTH2 " XOAUTH2_IR "\r\n");
	server("A1 OK [CAPABILITY IMAP4rev1] welcome\r\n");
	assert_int_equal(rec.ready, 1);
}

static void
test_oauthbearer_no_sasl_ir(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.auth = SESSION_AUTH_OAUTHBEARER;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=OAUTHBEARER] hi\r\n");
	expect_client("A1 AUTHENTICATE OAUTHBEARER\r\n");
	server("+ \r\n");
	expect_client(OAUTHBEARER_IR "\r\n");
	server("+ " OAUTH_ERROR "\r\n");
	expect_client("\r\n");
	server("A1 NO [AUTHENTICATIONFAILED] invalid token\r\n");
	expect_failure(SESSION_ERR_AUTH, "invalid token");
}

static void
test_unexpected_continuation(void **state)
{
	(void)state;
	start_ready();
	server("+ go on\r\n");
	assert_int_equal(rec.failed, 1);
	assert_int_equal(rec.error, SESSION_ERR_PROTOCOL);
	assert_non_null(strstr(rec.message, "unexpected continuation"));
}

/* STARTTLS */

static void
starttls_until_ok(const char *ok)
{
	struct session_params p = default_params();

	p.tls = SESSION_TLS_STARTTLS;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n");
	expect_client("A1 STARTTLS\r\n");
	server(ok);
}

static void
test_starttls(void **state)
{
	(void)state;
	starttls_until_ok("A1 OK begin TLS\r\n");
	assert_true(transport_mem_tls_started(mem));
	expect_client("");
	transport_mem_tls_ready(mem);
	pump();
	/* What was learnt in plaintext is forgotten: asked again. */
	assert_int_equal(rec.tls_stages, 1);
	expect_client("A2 CAPABILITY\r\n");
	assert_false(session_has_cap(sess, "STARTTLS"));
	server("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\nA2 OK\r\n");
	expect_client("A3 AUTHENTICATE PLAIN " PLAIN_IR "\r\n");
	server("A3 OK [CAPABILITY IMAP4rev1] in\r\n");
	assert_int_equal(rec.ready, 1);
}

static void
test_starttls_injection(void **state)
{
	(void)state;
	/* Plaintext after the OK, in the same read: an attacker's. */
	starttls_until_ok("A1 OK begin TLS\r\n"
	    "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
	expect_failure(SESSION_ERR_PROTOCOL, "after the STARTTLS response");
	expect_client("");
}

static void
test_starttls_injection_partial(void **state)
{
	(void)state;
	/* Even a partial line counts. */
	starttls_until_ok("A1 OK begin TLS\r\n* CAPA");
	expect_failure(SESSION_ERR_PROTOCOL, "after the STARTTLS response");
}

static void
test_starttls_refused(void **state)
{
	(void)state;
	starttls_until_ok("A1 NO not now\r\n");
	expect_failure(SESSION_ERR_TLS, "STARTTLS failed: not now");
	assert_false(transport_mem_tls_started(mem));
}

static void
test_starttls_not_offered(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.tls = SESSION_TLS_STARTTLS;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
	expect_failure(SESSION_ERR_TLS, "does not offer STARTTLS");
	expect_client("");
}

/* Commands */

static void
send_cmd(const char *verb, const char *name)
{
	struct imap_cmd cmd;

	session_cmd_init(sess, &cmd, verb);
	assert_int_equal(session_send(sess, &cmd, cmd_untagged, cmd_done,
	    (void *)name), 0);
}

static void
test_pipelined_in_order(void **state)
{
	(void)state;
	start_ready();
	send_cmd("NOOP", "a");
	send_cmd("CHECK", "b");
	send_cmd("NOOP", "c");
	/* All three written at once, before any answer. */
	expect_client("A2 NOOP\r\nA3 CHECK\r\nA4 NOOP\r\n");
	/* Untagged responses belong to the oldest command in flight. */
	server("* 4 EXISTS\r\nA2 OK\r\n* 5 EXISTS\r\nA3 NO full\r\n");
	assert_string_equal(rec.order, "A2 A3!");
	assert_string_equal(rec.untagged, "a:EXISTS b:EXISTS");
	server("A4 OK\r\n");
	assert_string_equal(rec.order, "A2 A3! A4");
	assert_int_equal(rec.failed, 0);
}

/* Streamed literals (APPEND) */

static struct {
	const char *data;
	size_t len, at, piece;
	bool fail;
} body_src;

static ssize_t
body_read(void *arg, void *buf, size_t size)
{
	size_t n = body_src.len - body_src.at;

	(void)arg;
	if (body_src.fail)
		return -1;
	if (n > size)
		n = size;
	if (body_src.piece > 0 && n > body_src.piece)
		n = body_src.piece;
	memcpy(buf, body_src.data + body_src.at, n);
	body_src.at += n;
	return (ssize_t)n;
}

static void
send_append(const char *text, size_t piece)
{
	struct imap_cmd cmd;

	body_src.data = text;
	body_src.len = strlen(text);
	body_src.at = 0;
	body_src.piece = piece;
	body_src.fail = false;
	session_cmd_init(sess, &cmd, "APPEND");
	imap_cmd_add_atom(&cmd, "INBOX");
	assert_int_equal(session_send_literal(sess, &cmd, body_src.len,
	    body_read, cmd_untagged, cmd_done, "x"), 0);
}

/* Ready with the given capabilities (after login). */
static void
start_ready_caps(const char *caps)
{
	struct session_params p = default_params();
	char line[256];

	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n");
	expect_client("A1 AUTHENTICATE PLAIN " PLAIN_IR "\r\n");
	snprintf(line, sizeof line, "A1 OK [CAPABILITY %s] logged in\r\n",
	    caps);
	server(line);
	assert_int_equal(rec.ready, 1);
}

static void
test_literal_plus_streamed(void **state)
{
	(void)state;
	start_ready();
	send_append("hello, world", 5);
	send_append("second", 0);
	pump();
	/* Both at once, bodies read in pieces: no round trip. */
	expect_client("A2 APPEND INBOX {12+}\r\nhello, world\r\n"
	    "A3 APPEND INBOX {6+}\r\nsecond\r\n");
	server("A2 OK [APPENDUID 7 1] done\r\nA3 OK [APPENDUID 7 2] done\r\n");
	assert_string_equal(rec.order, "A2 A3");
	assert_int_equal(rec.failed, 0);
}

static void
test_literal_sync_waits(void **state)
{
	(void)state;
	start_ready_caps("IMAP4rev1");
	send_append("hello", 0);
	send_cmd("NOOP", "n");
	pump();
	expect_client("A2 APPEND INBOX {5}\r\n");
	server("+ go ahead\r\n");
	expect_client("hello\r\nA3 NOOP\r\n");
	server("A2 OK done\r\nA3 OK\r\n");
	assert_string_equal(rec.order, "A2 A3");
	assert_int_equal(rec.failed, 0);
}

/* LITERAL-: non-synchronising up to 4096 bytes only. */
static void
test_literal_minus(void **state)
{
	static char big[5000];

	(void)state;
	memset(big, 'a', sizeof big - 1);
	start_ready_caps("IMAP4rev1 LITERAL-");
	send_append("tiny", 0);
	pump();
	expect_client("A2 APPEND INBOX {4+}\r\ntiny\r\n");
	send_append(big, 0);
	pump();
	expect_client("A3 APPEND INBOX {4999}\r\n");
	server("A2 OK\r\n+ \r\n");
	assert_int_equal(strlen(transport_mem_take(mem)), 4999 + 2);
	server("A3 OK\r\n");
	assert_string_equal(rec.order, "A2 A3");
}

/* A NO instead of "+": the body is never sent, the next command goes. */
static void
test_literal_sync_refused(void **state)
{
	(void)state;
	start_ready_caps("IMAP4rev1");
	send_append("hello", 0);
	send_cmd("NOOP", "n");
	pump();
	expect_client("A2 APPEND INBOX {5}\r\n");
	server("A2 NO [TOOBIG] too big\r\n");
	expect_client("A3 NOOP\r\n");
	server("A3 OK\r\n");
	assert_string_equal(rec.order, "A2! A3");
	assert_int_equal(rec.failed, 0);
}

/* An OK instead of "+": the message was never sent, so the command cannot
 * have succeeded; taking the OK would count it as stored. */
static void
test_literal_sync_ok_unsent(void **state)
{
	(void)state;
	start_ready_caps("IMAP4rev1");
	send_append("hello", 0);
	pump();
	expect_client("A2 APPEND INBOX {5}\r\n");
	server("A2 OK [APPENDUID 7 1] done\r\n");
	assert_string_equal(rec.order, "");
	expect_failure(SESSION_ERR_PROTOCOL, "before its literal was sent");
}

static void
test_literal_source_fails(void **state)
{
	struct imap_cmd cmd;

	(void)state;
	start_ready();
	body_src.data = "abc";
	body_src.len = 3;
	body_src.at = 0;
	body_src.fail = true;
	session_cmd_init(sess, &cmd, "APPEND");
	imap_cmd_add_atom(&cmd, "INBOX");
	assert_int_equal(session_send_literal(sess, &cmd, 3, body_read,
	    cmd_untagged, cmd_done, "x"), 0);
	pump();
	expect_failure(SESSION_ERR_LOCAL, "cannot read the literal of A2");
}

static void
test_tag_never_sent(void **state)
{
	(void)state;
	start_ready();
	send_cmd("NOOP", "a");
	expect_client("A2 NOOP\r\n");
	server("A7 OK what\r\n");
	assert_int_equal(rec.failed, 1);
	assert_int_equal(rec.error, SESSION_ERR_PROTOCOL);
	assert_non_null(strstr(rec.message, "unknown tag A7"));
	assert_string_equal(rec.order, "");
}

static void
test_tag_completed_twice(void **state)
{
	(void)state;
	start_ready();
	send_cmd("NOOP", "a");
	server("A2 OK\r\nA2 OK\r\n");
	assert_string_equal(rec.order, "A2");
	assert_int_equal(rec.failed, 1);
	assert_int_equal(rec.error, SESSION_ERR_PROTOCOL);
}

static void
test_bye_inside_literal_is_data(void **state)
{
	(void)state;
	start_ready();
	send_cmd("UID FETCH 1 BODY.PEEK[]", "f");
	expect_client("A2 UID FETCH 1 BODY.PEEK[]\r\n");
	/* "* BYE" inside the literal is message text, not a BYE; then the
	 * server goes away in the middle of it. */
	transport_mem_set_chunk(mem, 7);
	server("* 1 FETCH (UID 1 BODY[] {60}\r\n"
	    "Subject: x\r\n\r\n* BYE not really\r\n");
	assert_int_equal(rec.failed, 0);
	assert_int_equal(rec.literal_bytes, 32);
	transport_mem_eof(mem);
	pump();
	expect_failure(SESSION_ERR_NETWORK, "closed the connection "
	    "unexpectedly");
	assert_string_equal(rec.order, "");
}

static void
test_bye_then_eof(void **state)
{
	(void)state;
	start_ready();
	send_cmd("UID FETCH 1 BODY.PEEK[]", "f");
	server("* 1 FETCH (UID 1 BODY[] {60}\r\nSubject: x\r\n\r\nabc");
	transport_mem_push(mem, "def");
	transport_mem_eof(mem);
	pump();
	expect_failure(SESSION_ERR_NETWORK, "unexpectedly");

	/* A real BYE before the end makes it the server's doing. */
	session_free(&sess);
	memset(&rec, 0, sizeof rec);
	start_ready();
	send_cmd("NOOP", "n");
	server("* BYE server shutting down\r\n");
	transport_mem_eof(mem);
	pump();
	expect_failure(SESSION_ERR_SERVER, "BYE server shutting down");
}

static void
test_literal_split_bytewise(void **state)
{
	(void)state;
	start_ready();
	send_cmd("UID FETCH 1 BODY.PEEK[]", "f");
	transport_mem_set_chunk(mem, 1);
	server("* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\nA2 OK done\r\n");
	assert_int_equal(rec.literal_bytes, 5);
	assert_string_equal(rec.order, "A2");
	assert_int_equal(rec.failed, 0);
}

/* IDLE */

static void
test_idle(void **state)
{
	(void)state;
	start_ready();
	assert_int_equal(transport_mem_timeout(mem), 0);
	assert_int_equal(session_idle_start(sess, cmd_untagged, cmd_done,
	    "i"), 0);
	expect_client("A2 IDLE\r\n");
	/* Waiting for "+": a reply is due. */
	assert_int_equal(transport_mem_timeout(mem), 60);
	assert_int_equal(rec.idling, 0);
	server("+ idling\r\n");
	/* Idling: no reply is due, however long it takes; the owner knows
	 * the server took the IDLE. */
	assert_int_equal(transport_mem_timeout(mem), 0);
	assert_int_equal(rec.idling, 1);
	server("* 7 EXISTS\r\n");
	assert_string_equal(rec.untagged, "i:EXISTS");
	/* A command queued meanwhile waits for DONE. */
	send_cmd("NOOP", "n");
	expect_client("");
	session_idle_stop(sess);
	expect_client("DONE\r\nA3 NOOP\r\n");
	server("A2 OK idle done\r\nA3 OK\r\n");
	assert_string_equal(rec.order, "A2 A3");
	assert_int_equal(rec.failed, 0);
}

static void
test_idle_stop_before_continuation(void **state)
{
	(void)state;
	start_ready();
	assert_int_equal(session_idle_start(sess, cmd_untagged, cmd_done,
	    "i"), 0);
	expect_client("A2 IDLE\r\n");
	session_idle_stop(sess);
	/* DONE only once the server has accepted the IDLE. */
	expect_client("");
	server("+ idling\r\n");
	expect_client("DONE\r\n");
	server("A2 OK\r\n");
	assert_string_equal(rec.order, "A2");
	/* The server took it all the same. */
	assert_int_equal(rec.idling, 1);
}

/* Timeouts and transport failures */

static void
on_guard(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(l, EVBREAK_ALL);
}

static void
test_no_progress_timeout(void **state)
{
	struct session_params p = default_params();
	ev_timer guard;

	(void)state;
	p.timeout = 1;
	start_connected(&p);
	/* No greeting: the session's own no-progress timer fires. */
	ev_timer_init(&guard, on_guard, 10., 0.);
	ev_timer_start(loop, &guard);
	ev_run(loop, 0);
	ev_timer_stop(loop, &guard);
	expect_failure(SESSION_ERR_TIMEOUT, "no response from "
	    "imap.example.org:143 for 1s (in state greeting)");
	assert_true(transport_mem_closed(mem));
}

static void
test_transport_error_kinds(void **state)
{
	static const struct {
		enum transport_event event;
		enum transport_error_kind kind;
		const char *message;
		enum session_error expect;
	} cases[] = {
		/* Words that once made a refused connection a TLS error. */
		{ TRANSPORT_ERROR, TRANSPORT_ERR_NETWORK, "connect to "
		    "spinach.example.org:993: Connection refused",
		    SESSION_ERR_NETWORK },
		{ TRANSPORT_ERROR, TRANSPORT_ERR_NETWORK, "read from "
		    "TLSnet.example:993: Connection reset by peer",
		    SESSION_ERR_NETWORK },
		{ TRANSPORT_ERROR, TRANSPORT_ERR_TLS_VERIFY, "the server's "
		    "key is not the one expected", SESSION_ERR_TLS },
		{ TRANSPORT_ERROR, TRANSPORT_ERR_TLS, "handshake failed",
		    SESSION_ERR_TLS },
		{ TRANSPORT_ERROR, TRANSPORT_ERR_LOCAL, "out of memory",
		    SESSION_ERR_LOCAL },
		{ TRANSPORT_TIMEOUT, TRANSPORT_ERR_TIMEOUT, "no progress",
		    SESSION_ERR_TIMEOUT },
	};
	struct session_params p = default_params();

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		memset(&rec, 0, sizeof rec);
		start_connected(&p);
		server("* OK hi\r\n");
		transport_mem_fail(mem, cases[i].event, cases[i].kind,
		    cases[i].message);
		pump();
		assert_int_equal(rec.failed, 1);
		assert_int_equal(rec.error, cases[i].expect);
		if (cases[i].event == TRANSPORT_ERROR)
			assert_string_equal(rec.message, cases[i].message);
		session_free(&sess);
	}
}

/* sasl_choose(): every configured method against the capabilities that
 * decide it; NULL error: chosen. */
static void
test_sasl_choose(void **state)
{
	static const struct {
		enum session_auth auth;
		bool plain, logindisabled;
		enum sasl_method method;
		const char *error;
	} cases[] = {
		{ SESSION_AUTH_AUTO, true, false, SASL_PLAIN, NULL },
		{ SESSION_AUTH_AUTO, true, true, SASL_PLAIN, NULL },
		{ SESSION_AUTH_AUTO, false, false, SASL_LOGIN_COMMAND, NULL },
		{ SESSION_AUTH_AUTO, false, true, 0, "server offers neither "
		    "AUTH=PLAIN nor LOGIN (LOGINDISABLED)" },
		{ SESSION_AUTH_PLAIN, true, true, SASL_PLAIN, NULL },
		{ SESSION_AUTH_PLAIN, false, false, 0, "server does not offer "
		    "AUTH=PLAIN" },
		{ SESSION_AUTH_LOGIN, true, false, SASL_LOGIN_COMMAND, NULL },
		{ SESSION_AUTH_LOGIN, true, true, 0, "server refuses LOGIN "
		    "(LOGINDISABLED)" },
		{ SESSION_AUTH_XOAUTH2, false, true, SASL_XOAUTH2, NULL },
		{ SESSION_AUTH_OAUTHBEARER, false, true, SASL_OAUTHBEARER,
		    NULL },
	};
	char plain[] = "AUTH=PLAIN", disabled[] = "LOGINDISABLED";
	enum sasl_method method;
	const char *error;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct imap_caps caps = { .n = 0 };

		if (cases[i].plain)
			caps.names[caps.n++] = plain;
		if (cases[i].logindisabled)
			caps.names[caps.n++] = disabled;
		method = (enum sasl_method)-1;
		if (cases[i].error == NULL) {
			assert_int_equal(sasl_choose(cases[i].auth, &caps,
			    &method, &error), 0);
			assert_int_equal(method, cases[i].method);
			assert_null(error);
		} else {
			assert_int_equal(sasl_choose(cases[i].auth, &caps,
			    &method, &error), -1);
			assert_string_equal(error, cases[i].error);
		}
	}
	assert_string_equal(sasl_mechanism_name(SASL_PLAIN), "PLAIN");
	assert_string_equal(sasl_mechanism_name(SASL_XOAUTH2), "XOAUTH2");
	assert_string_equal(sasl_mechanism_name(SASL_OAUTHBEARER),
	    "OAUTHBEARER");
	assert_null(sasl_mechanism_name(SASL_LOGIN_COMMAND));
}

/* The initial responses on their own: the same bytes the transcripts
 * expect, whoever sends them. */
static void
test_sasl_initial_responses(void **state)
{
	static const struct {
		enum sasl_method method;
		const char *b64;
	} cases[] = {
		{ SASL_PLAIN, PLAIN_IR },
		{ SASL_XOAUTH2, XOAUTH2_IR },
		{ SASL_OAUTHBEARER, OAUTHBEARER_IR },
	};
	const struct sasl_credentials creds = {
		.user = "user", .secret = "s3cret",
		.host = "imap.example.org", .port = 143,
	};
	char *b64;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		b64 = sasl_initial_response(cases[i].method, &creds);
		assert_non_null(b64);
		assert_string_equal(b64, cases[i].b64);
		free(b64);
	}
	assert_null(sasl_initial_response(SASL_LOGIN_COMMAND, &creds));
}

/*
 * A TLS handshake that stalls is named by the transport ("TLS handshake
 * ... timed out"), not as a silent server in state tls-handshake.
 */
static void
test_tls_handshake_timeout_named(void **state)
{
	static const char words[] = "TLS handshake with "
	    "imap.example.org:143 timed out (no progress for 60 s)";

	(void)state;
	starttls_until_ok("A1 OK begin TLS\r\n");
	assert_true(transport_mem_tls_started(mem));
	transport_mem_fail(mem, TRANSPORT_TIMEOUT, TRANSPORT_ERR_TIMEOUT,
	    words);
	pump();
	expect_failure(SESSION_ERR_TIMEOUT, words);
	assert_null(strstr(rec.message, "in state"));
}

static void
test_connect_refused_at_once(void **state)
{
	struct session_params p = default_params();

	(void)state;
	start(&p);
	transport_mem_refuse(mem, TRANSPORT_ERR_NETWORK, "resolve "
	    "pinot.example: Name or service not known");
	pump();
	expect_failure(SESSION_ERR_NETWORK, "pinot.example");
}

/* The secret */

static void
test_secret_unavailable(void **state)
{
	struct session_params p = default_params();

	(void)state;
	cred_error = "password_command exited with status 1";
	start(&p);
	pump();
	expect_failure(SESSION_ERR_SECRET, "exited with status 1");
	/* Never connected. */
	expect_client("");
	assert_int_equal(cred_cancelled, 0);
}

static void
test_secret_cancelled_on_free(void **state)
{
	struct session_params p = default_params();

	(void)state;
	start(&p);
	session_free(&sess);
	assert_int_equal(cred_cancelled, 1);
	assert_false(ev_is_active(&cred_idle));
}

static void
test_secret_cannot_start(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.credential.fetch = NULL;
	sess = session_new(loop, &p, &callbacks, NULL);
	assert_non_null(sess);
	assert_int_equal(session_start(sess), -1);
	expect_failure(SESSION_ERR_LOCAL, "secret");
}

/* Freed from inside its failed callback while more input was waiting:
 * released on the way out, nothing touched afterwards (AddressSanitizer
 * would see it), no callback follows. */
static void
test_free_inside_callback(void **state)
{
	(void)state;
	start_ready();
	free_in_failed = true;
	send_cmd("NOOP", "a");
	server("A9 OK unknown\r\n* 3 EXISTS\r\nA2 OK\r\n");
	assert_null(sess);
	assert_int_equal(rec.failed, 1);
	assert_int_equal(rec.error, SESSION_ERR_PROTOCOL);
	assert_string_equal(rec.order, "");
	assert_string_equal(rec.untagged, "");
}

/* Logout */

static void
test_logout(void **state)
{
	(void)state;
	start_ready();
	session_logout(sess);
	expect_client("A2 LOGOUT\r\n");
	server("* BYE bye\r\nA2 OK\r\n");
	assert_int_equal(rec.closed, 1);
	assert_int_equal(rec.failed, 0);
}

static void
test_logout_eof_without_tagged(void **state)
{
	(void)state;
	start_ready();
	session_logout(sess);
	expect_client("A2 LOGOUT\r\n");
	server("* BYE bye\r\n");
	transport_mem_eof(mem);
	pump();
	assert_int_equal(rec.closed, 1);
	assert_int_equal(rec.failed, 0);
}

/* Compression is only asked for when wanted and offered. */
static void
test_compress_refused(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.compress = SESSION_COMPRESS_YES;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n");
	expect_client("A1 AUTHENTICATE PLAIN " PLAIN_IR "\r\n");
	server("A1 OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] in\r\n");
	expect_client("A2 COMPRESS DEFLATE\r\n");
	assert_int_equal(rec.ready, 0);
	server("A2 NO not today\r\n");
	assert_int_equal(rec.ready, 1);
}

static void
test_compress_auto_local_peer(void **state)
{
	struct session_params p = default_params();

	(void)state;
	p.compress = SESSION_COMPRESS_AUTO;
	start_connected(&p);
	/* The fake's peer is local: auto does not compress. */
	server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n");
	expect_client("A1 AUTHENTICATE PLAIN " PLAIN_IR "\r\n");
	server("A1 OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] in\r\n");
	expect_client("");
	assert_int_equal(rec.ready, 1);
}

static int
collect(void *arg, const unsigned char *data, size_t len)
{
	char *buf = arg;
	size_t have = strlen(buf);

	assert_true(have + len < 256);
	memcpy(buf + have, data, len);
	buf[have + len] = '\0';
	return 0;
}

static int
to_server(void *arg, const unsigned char *data, size_t len)
{
	(void)arg;
	transport_mem_push_len(mem, data, len);
	return 0;
}

/* Once COMPRESS is on, both directions are DEFLATE streams. */
static void
test_compress_on(void **state)
{
	struct session_params p = default_params();
	struct compress *server_z;
	const char *wire;
	char plain[256] = "";

	(void)state;
	p.compress = SESSION_COMPRESS_YES;
	start_connected(&p);
	server("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi\r\n");
	expect_client("A1 AUTHENTICATE PLAIN " PLAIN_IR "\r\n");
	server("A1 OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] in\r\n");
	expect_client("A2 COMPRESS DEFLATE\r\n");
	server("A2 OK deflating\r\n");
	assert_int_equal(rec.ready, 1);
	server_z = compress_new(1);
	assert_non_null(server_z);
	send_cmd("NOOP", "n");
	wire = transport_mem_take(mem);
	assert_string_not_equal(wire, "A3 NOOP\r\n");
	assert_int_equal(compress_inflate(server_z, wire, strlen(wire),
	    collect, plain), 0);
	assert_string_equal(plain, "A3 NOOP\r\n");
	assert_int_equal(compress_deflate(server_z, "* 2 EXISTS\r\nA3 OK\r\n",
	    20, to_server, NULL), 0);
	pump();
	assert_string_equal(rec.untagged, "n:EXISTS");
	assert_string_equal(rec.order, "A3");
	/* Garbage where DEFLATE is due ends the session. */
	server("\xff\xff\xff\xff");
	expect_failure(SESSION_ERR_PROTOCOL, "");
	compress_free(&server_z);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_greeting_caps_asked),
		T(test_greeting_caps_given),
		T(test_greeting_preauth),
		T(test_greeting_bye),
		T(test_greeting_tagged),
		T(test_preauth_on_starttls_refused),
		T(test_not_imap4),
		T(test_login),
		T(test_login_literal),
		T(test_logindisabled_obeyed),
		T(test_logindisabled_login_asked),
		T(test_plain_not_offered),
		T(test_xoauth2_error_challenge),
		T(test_xoauth2_ok),
		T(test_oauthbearer_no_sasl_ir),
		T(test_unexpected_continuation),
		T(test_starttls),
		T(test_starttls_injection),
		T(test_starttls_injection_partial),
		T(test_starttls_refused),
		T(test_starttls_not_offered),
		T(test_pipelined_in_order),
		T(test_tag_never_sent),
		T(test_literal_plus_streamed),
		T(test_literal_sync_waits),
		T(test_literal_minus),
		T(test_literal_sync_refused),
		T(test_literal_sync_ok_unsent),
		T(test_literal_source_fails),
		T(test_tag_completed_twice),
		T(test_bye_inside_literal_is_data),
		T(test_bye_then_eof),
		T(test_literal_split_bytewise),
		T(test_idle),
		T(test_idle_stop_before_continuation),
		T(test_no_progress_timeout),
		T(test_transport_error_kinds),
		T(test_tls_handshake_timeout_named),
		cmocka_unit_test(test_sasl_choose),
		cmocka_unit_test(test_sasl_initial_responses),
		T(test_connect_refused_at_once),
		T(test_secret_unavailable),
		T(test_secret_cancelled_on_free),
		T(test_secret_cannot_start),
		T(test_free_inside_callback),
		T(test_logout),
		T(test_logout_eof_without_tagged),
		T(test_compress_on),
		T(test_compress_refused),
		T(test_compress_auto_local_peer),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
