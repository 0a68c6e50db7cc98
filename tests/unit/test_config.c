/*
 * config: good files give the documented values and defaults; every bad one
 * fails with one error line naming file:line, the section and the key.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

#define MAX_LINES 64

struct captured {
	enum log_level level[MAX_LINES];
	char *line[MAX_LINES];
	size_t n;
};

static struct captured cap;
static char tmpdir[64];

/* An account that loads: section on line 1, then lines 2-5. */
#define ACC "[a]\nhost = imap.example.org\nuser = alice\n" \
	"password = pw1\noutput = /m/a\n"
#define ACC_B "[b]\nhost = imap.example.org\nuser = bob\n" \
	"password = pw2\noutput = /m/b\n"

static void
capture_sink(enum log_level level, const char *line, void *arg)
{
	(void)arg;
	if (cap.n < MAX_LINES) {
		cap.level[cap.n] = level;
		cap.line[cap.n] = strdup(line);
		cap.n++;
	}
}

static void
capture_reset(void)
{
	for (size_t i = 0; i < cap.n; i++)
		free(cap.line[i]);
	cap.n = 0;
}

static size_t
count_level(enum log_level level)
{
	size_t n = 0;

	for (size_t i = 0; i < cap.n; i++)
		if (cap.level[i] == level)
			n++;
	return n;
}

static int
setup(void **state)
{
	(void)state;
	capture_reset();
	log_set_sink(capture_sink, NULL);
	log_set_level(LOGL_DEBUG);
	setenv("HOME", "/home/tester", 1);
	setenv("STATE_DIRECTORY", "/var/lib/mm", 1);
	unsetenv("XDG_STATE_HOME");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	capture_reset();
	log_set_sink(NULL, NULL);
	return 0;
}

static struct config *
load_ok(const char *text)
{
	struct config *c = NULL;

	if (config_load_string("t.ini", text, &c) != 0) {
		for (size_t i = 0; i < cap.n; i++)
			print_message("unexpected: %s\n", cap.line[i]);
		fail();
	}
	assert_non_null(c);
	assert_int_equal(count_level(LOGL_ERROR), 0);
	return c;
}

/*
 * Loading text fails, and one error line starts with prefix
 * ("t.ini:3: [a] port: ") and contains what.
 */
static void
expect_error(const char *text, const char *prefix, const char *what)
{
	struct config *c = NULL;

	assert_int_equal(config_load_string("t.ini", text, &c), -1);
	assert_null(c);
	for (size_t i = 0; i < cap.n; i++) {
		if (cap.level[i] == LOGL_ERROR &&
		    strncmp(cap.line[i], prefix, strlen(prefix)) == 0 &&
		    strstr(cap.line[i] + strlen(prefix), what) != NULL)
			return;
	}
	for (size_t i = 0; i < cap.n; i++)
		print_message("got: %s\n", cap.line[i]);
	fail_msg("no error line \"%s...%s\"", prefix, what);
}

/* The file is refused with exactly one error line, as expected. */
static void
expect_one_error(const char *text, const char *prefix, const char *what)
{
	expect_error(text, prefix, what);
	if (count_level(LOGL_ERROR) != 1) {
		for (size_t i = 0; i < cap.n; i++)
			print_message("got: %s\n", cap.line[i]);
		fail_msg("expected one error line, got %zu",
		    count_level(LOGL_ERROR));
	}
}

static char *
write_temp(const char *name, const char *text, mode_t mode)
{
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	return path;
}

/* Good files */

static void
test_minimal_defaults(void **state)
{
	struct config *c = load_ok(ACC);
	const struct account *a;

	(void)state;
	assert_string_equal(c->path, "t.ini");
	assert_int_equal(c->n_accounts, 1);
	assert_int_equal(c->interval, 900);
	assert_int_equal(c->timeout, 60);
	assert_int_equal(c->max_connections, 16);
	assert_int_equal(c->retry_min, 30);
	assert_int_equal(c->retry_max, 3600);
	assert_int_equal(c->log_level, LOGL_INFO);
	assert_string_equal(c->state_dir, "/var/lib/mm");
	a = &c->accounts[0];
	assert_string_equal(a->name, "a");
	assert_int_equal(a->line, 1);
	assert_string_equal(a->host, "imap.example.org");
	assert_int_equal(a->port, 993);
	assert_int_equal(a->tls, TLS_IMPLICIT);
	assert_null(a->ca_file);
	assert_false(a->has_pin);
	assert_string_equal(a->user, "alice");
	assert_int_equal(a->secret_source, SECRET_INLINE);
	assert_string_equal(a->secret, "pw1");
	assert_int_equal(a->auth, AUTH_AUTO);
	assert_int_equal(a->mailboxes.n, 1);
	assert_string_equal(a->mailboxes.v[0], "*");
	assert_int_equal(a->exclude.n, 0);
	assert_string_equal(a->output, "/m/a");
	assert_int_equal(a->interval, 900);
	assert_true(a->idle);
	assert_false(a->allow_plaintext);
	assert_int_equal(a->compress, COMPRESS_AUTO);
	assert_ptr_equal(config_find_account(c, "a"), a);
	assert_null(config_find_account(c, "b"));
	config_free(&c);
	assert_null(c);
}

static void
test_every_key(void **state)
{
	struct config *c;
	const struct account *a;

	(void)state;
	c = load_ok(
	    "; a full file\n"
	    "[general]\n"
	    "state_dir = /srv/state\n"
	    "interval = 2h\n"
	    "timeout = 90s\n"
	    "max_connections = 1000\n"
	    "retry_min = 1m\n"
	    "retry_max = 1m\n"
	    "log_level = debug\n"
	    "\n"
	    "[work.mail-1_x@corp+1]\n"
	    "host = mail.corp.example\n"
	    "port = 1143\n"
	    "tls = STARTTLS\n"
	    "ca_file = /etc/ssl/corp.pem\n"
	    "pin_sha256 = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
	    "user = bob@corp.example\n"
	    "password_command = pass show mail/bob\n"
	    "auth = oauthbearer\n"
	    "mailboxes = INBOX, Archive/*\n"
	    "exclude = Trash,Junk , Spam\n"
	    "output = /srv/mail/work/\n"
	    "interval = 30\n"
	    "idle = off\n"
	    "allow_plaintext = no\n"
	    "compress = no\n");
	assert_string_equal(c->state_dir, "/srv/state");
	assert_int_equal(c->interval, 7200);
	assert_int_equal(c->timeout, 90);
	assert_int_equal(c->max_connections, 1000);
	assert_int_equal(c->retry_min, 60);
	assert_int_equal(c->retry_max, 60);
	assert_int_equal(c->log_level, LOGL_DEBUG);
	a = &c->accounts[0];
	assert_string_equal(a->name, "work.mail-1_x@corp+1");
	assert_int_equal(a->line, 11);
	assert_int_equal(a->port, 1143);
	assert_int_equal(a->tls, TLS_STARTTLS);
	assert_string_equal(a->ca_file, "/etc/ssl/corp.pem");
	assert_true(a->has_pin);
	for (int i = 0; i < 32; i++)
		assert_int_equal(a->pin_sha256[i], i);
	assert_int_equal(a->secret_source, SECRET_COMMAND);
	assert_string_equal(a->secret, "pass show mail/bob");
	assert_int_equal(a->auth, AUTH_OAUTHBEARER);
	assert_int_equal(a->mailboxes.n, 2);
	assert_string_equal(a->mailboxes.v[0], "INBOX");
	assert_string_equal(a->mailboxes.v[1], "Archive/*");
	assert_int_equal(a->exclude.n, 3);
	assert_string_equal(a->exclude.v[0], "Trash");
	assert_string_equal(a->exclude.v[1], "Junk");
	assert_string_equal(a->exclude.v[2], "Spam");
	assert_string_equal(a->output, "/srv/mail/work/");
	assert_int_equal(a->interval, 30);
	assert_false(a->idle);
	assert_int_equal(a->compress, COMPRESS_NO);
	config_free(&c);
}

static void
test_plaintext_allowed_and_port_default(void **state)
{
	struct config *c;

	(void)state;
	c = load_ok(ACC "tls = none\nallow_plaintext = yes\n"
	    ACC_B "tls = starttls\n");
	assert_int_equal(c->accounts[0].tls, TLS_NONE);
	assert_true(c->accounts[0].allow_plaintext);
	assert_int_equal(c->accounts[0].port, 143);
	assert_int_equal(c->accounts[1].port, 143);
	config_free(&c);
}

static void
test_general_interval_inherited(void **state)
{
	struct config *c;

	(void)state;
	/* [general] after the accounts still gives their default. */
	c = load_ok(ACC ACC_B "interval = 1d\n[general]\ninterval = 5m\n");
	assert_int_equal(c->n_accounts, 2);
	assert_string_equal(c->accounts[0].name, "a");
	assert_string_equal(c->accounts[1].name, "b");
	assert_int_equal(c->accounts[0].interval, 300);
	assert_int_equal(c->accounts[1].interval, 86400);
	config_free(&c);
}

static void
test_syntax_tolerance(void **state)
{
	struct config *c;

	(void)state;
	/* BOM, CRLF, comments of both kinds, inline comments, indentation,
	 * "key: value" and a missing final newline. */
	c = load_ok("\xef\xbb\xbf# comment\r\n"
	    "[a] ; the account\r\n"
	    "  host = imap.example.org   ; inline\r\n"
	    "\tuser: alice\r\n"
	    "; password = nope\r\n"
	    "password = a;b#c\r\n"
	    "output = /m/a");
	assert_string_equal(c->accounts[0].host, "imap.example.org");
	assert_string_equal(c->accounts[0].user, "alice");
	assert_string_equal(c->accounts[0].secret, "a;b#c");
	assert_string_equal(c->accounts[0].output, "/m/a");
	config_free(&c);
}

static void
test_booleans(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES" };
	static const char *const no[] = { "no", "false", "off", "0", "Off" };
	char text[256];
	struct config *c;

	(void)state;
	for (size_t i = 0; i < 5; i++) {
		snprintf(text, sizeof text, ACC "idle = %s\n", yes[i]);
		c = load_ok(text);
		assert_true(c->accounts[0].idle);
		config_free(&c);
		snprintf(text, sizeof text, ACC "idle = %s\n", no[i]);
		c = load_ok(text);
		assert_false(c->accounts[0].idle);
		config_free(&c);
	}
}

static void
test_durations(void **state)
{
	static const struct {
		const char *text;
		unsigned seconds;	/* 0: refused */
	} cases[] = {
		{ "90", 90 }, { "30s", 30 }, { "15m", 900 }, { "2h", 7200 },
		{ "1d", 86400 }, { "365d", 365 * 86400 }, { "007", 7 },
		{ "0", 0 }, { "0s", 0 }, { "-5", 0 }, { "+5", 0 }, { "", 0 },
		{ "m", 0 }, { "5x", 0 }, { "5 m", 0 }, { " 5", 0 },
		{ "5mm", 0 }, { "5M", 0 }, { "366d", 0 },
		{ "99999999999999999999999", 0 }, { "4294967296", 0 },
		{ "1.5h", 0 },
	};
	char buf[16];
	unsigned s;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		s = 12345;
		if (cases[i].seconds == 0) {
			assert_int_equal(config_parse_duration(cases[i].text,
			    &s), -1);
			assert_int_equal(s, 12345);
		} else {
			assert_int_equal(config_parse_duration(cases[i].text,
			    &s), 0);
			assert_int_equal(s, cases[i].seconds);
		}
	}
	assert_string_equal(config_format_duration(300, buf, sizeof buf),
	    "5m");
	assert_string_equal(config_format_duration(90, buf, sizeof buf),
	    "90s");
	assert_string_equal(config_format_duration(7200, buf, sizeof buf),
	    "2h");
	assert_string_equal(config_format_duration(172800, buf, sizeof buf),
	    "2d");
}

static void
test_pin_forms(void **state)
{
	struct config *c;

	(void)state;
	/* Unpadded, and with curl's "sha256//" prefix. */
	c = load_ok(ACC "pin_sha256 = sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
	    "GBkaGxwdHh8\n");
	assert_true(c->accounts[0].has_pin);
	assert_int_equal(c->accounts[0].pin_sha256[31], 31);
	config_free(&c);
}

static void
test_state_dir_defaults(void **state)
{
	struct config *c;

	(void)state;
	setenv("STATE_DIRECTORY", "/run/one/:/run/two", 1);
	c = load_ok(ACC);
	assert_string_equal(c->state_dir, "/run/one");
	config_free(&c);

	unsetenv("STATE_DIRECTORY");
	setenv("XDG_STATE_HOME", "/xdg/state", 1);
	c = load_ok(ACC);
	assert_string_equal(c->state_dir, "/xdg/state/mboxmirror");
	config_free(&c);

	/* A relative XDG_STATE_HOME is ignored, as the spec says. */
	setenv("XDG_STATE_HOME", "rel", 1);
	c = load_ok(ACC);
	assert_string_equal(c->state_dir,
	    "/home/tester/.local/state/mboxmirror");
	config_free(&c);

	c = load_ok("[general]\nstate_dir = ~/st\n" ACC);
	assert_string_equal(c->state_dir, "/home/tester/st");
	assert_string_equal(c->state_dir_origin, "state_dir in [general]");
	config_free(&c);
}

static void
test_state_dir_of_a_system_config(void **state)
{
	struct config *c;

	(void)state;
	/* Whoever runs it: a config under /etc keeps the service's state. */
	unsetenv("STATE_DIRECTORY");
	setenv("XDG_STATE_HOME", "/xdg/state", 1);
	assert_int_equal(config_load_string("/etc/mboxmirror/mboxmirror.ini",
	    ACC, &c), 0);
	assert_string_equal(c->state_dir, "/var/lib/mboxmirror");
	assert_non_null(strstr(c->state_dir_origin, "/etc"));
	config_free(&c);
	/* Not a prefix match on the text alone. */
	assert_int_equal(config_load_string("/etcetera/m.ini", ACC, &c), 0);
	assert_string_equal(c->state_dir, "/xdg/state/mboxmirror");
	config_free(&c);
	/* The service's own directory still wins. */
	setenv("STATE_DIRECTORY", "/var/lib/private/mboxmirror", 1);
	assert_int_equal(config_load_string("/etc/mboxmirror/mboxmirror.ini",
	    ACC, &c), 0);
	assert_string_equal(c->state_dir, "/var/lib/private/mboxmirror");
	config_free(&c);
}

static void
test_paths_expanded(void **state)
{
	struct config *c;

	(void)state;
	c = load_ok("[a]\nhost = h\nuser = u\npassword_file = pw\n"
	    "ca_file = ~/ca.pem\noutput = ~\n");
	assert_string_equal(c->accounts[0].output, "/home/tester");
	assert_string_equal(c->accounts[0].ca_file, "/home/tester/ca.pem");
	/* No directory in the name: a relative path stays as written. */
	assert_int_equal(c->accounts[0].secret_source, SECRET_FILE);
	assert_string_equal(c->accounts[0].secret, "pw");
	config_free(&c);

	assert_int_equal(config_load_string("/etc/mm/x.ini",
	    "[a]\nhost = h\nuser = u\npassword_file = secrets/a\n"
	    "output = /m\n", &c), 0);
	assert_string_equal(c->accounts[0].secret, "/etc/mm/secrets/a");
	config_free(&c);
}

static void
test_default_path(void **state)
{
	char *p, *home, *file;

	(void)state;
	setenv("MBOXMIRROR_CONFIG", "/x/y.ini", 1);
	p = config_default_path();
	assert_string_equal(p, "/x/y.ini");
	free(p);
	unsetenv("MBOXMIRROR_CONFIG");

	/* No per-user file: the system one. */
	setenv("XDG_CONFIG_HOME", tmpdir, 1);
	p = config_default_path();
	assert_string_equal(p, "/etc/mboxmirror/mboxmirror.ini");
	free(p);

	assert_true(asprintf(&home, "%s/mboxmirror", tmpdir) > 0);
	assert_int_equal(mkdir(home, 0700), 0);
	file = write_temp("mboxmirror/config.ini", ACC, 0600);
	p = config_default_path();
	assert_string_equal(p, file);
	free(p);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(rmdir(home), 0);
	free(file);
	free(home);
	unsetenv("XDG_CONFIG_HOME");

	/* Without XDG_CONFIG_HOME: ~/.config. */
	setenv("HOME", tmpdir, 1);
	assert_true(asprintf(&home, "%s/.config", tmpdir) > 0);
	assert_int_equal(mkdir(home, 0700), 0);
	free(home);
	assert_true(asprintf(&home, "%s/.config/mboxmirror", tmpdir) > 0);
	assert_int_equal(mkdir(home, 0700), 0);
	file = write_temp(".config/mboxmirror/config.ini", ACC, 0600);
	p = config_default_path();
	assert_string_equal(p, file);
	free(p);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(rmdir(home), 0);
	free(home);
	assert_true(asprintf(&home, "%s/.config", tmpdir) > 0);
	assert_int_equal(rmdir(home), 0);
	free(home);
	free(file);
}

/* With no file found, one error names every path searched and where to
 * start from. */
static void
test_report_none_found(void **state)
{
	(void)state;
	setenv("XDG_CONFIG_HOME", "/cfg", 1);
	config_report_none_found();
	assert_int_equal(cap.n, 1);
	assert_int_equal(cap.level[0], LOGL_ERROR);
	assert_non_null(strstr(cap.line[0], "looked for "
	    "/cfg/mboxmirror/config.ini and /etc/mboxmirror/mboxmirror.ini"));
	assert_non_null(strstr(cap.line[0], "mboxmirror.ini.example"));
	assert_non_null(strstr(cap.line[0], "-c FILE"));
	unsetenv("XDG_CONFIG_HOME");
}

/* The names --check-config prints are the config file's spellings. */
static void
test_mode_names(void **state)
{
	static const char *const tls[] = { "implicit", "starttls", "none" };
	static const char *const auth[] = { "auto", "plain", "login",
	    "xoauth2", "oauthbearer" };
	static const char *const compress[] = { "auto", "yes", "no" };
	char text[256];
	struct config *c;

	(void)state;
	assert_string_equal(tls_mode_name(TLS_STARTTLS), "starttls");
	assert_string_equal(auth_method_name(AUTH_OAUTHBEARER),
	    "oauthbearer");
	assert_string_equal(compress_mode_name(COMPRESS_NO), "no");
	assert_string_equal(tls_mode_name((enum tls_mode)3), "?");
	assert_string_equal(auth_method_name((enum auth_method)5), "?");
	assert_string_equal(compress_mode_name((enum compress_mode)3), "?");
	/* Each name loads as the mode it names. */
	for (size_t i = 0; i < 3; i++) {
		snprintf(text, sizeof text, ACC "tls = %s\nport = 993\n"
		    "allow_plaintext = yes\ncompress = %s\n", tls[i],
		    compress[i]);
		c = load_ok(text);
		assert_string_equal(tls_mode_name(c->accounts[0].tls), tls[i]);
		assert_string_equal(compress_mode_name(
		    c->accounts[0].compress), compress[i]);
		config_free(&c);
	}
	for (size_t i = 0; i < 5; i++) {
		snprintf(text, sizeof text, ACC "auth = %s\n", auth[i]);
		c = load_ok(text);
		assert_string_equal(auth_method_name(c->accounts[0].auth),
		    auth[i]);
		config_free(&c);
	}
}

/* Bad files: each names file:line, section and key. */

/* [general] metrics_file: an absolute path, "~" expanded; never a
 * directory. */
static void
test_metrics_file(void **state)
{
	static const char *account = "[a]\nhost = h\nuser = u\n"
	    "password = p\noutput = /o\n";
	struct config *c;
	char *text;

	(void)state;
	c = load_ok(account);
	assert_null(c->metrics_file);
	config_free(&c);
	assert_true(asprintf(&text, "[general]\nmetrics_file = "
	    "/var/lib/node_exporter/mboxmirror.prom\n%s", account) > 0);
	c = load_ok(text);
	assert_string_equal(c->metrics_file,
	    "/var/lib/node_exporter/mboxmirror.prom");
	config_free(&c);
	free(text);
	assert_true(asprintf(&text, "[general]\nmetrics_file = m.prom\n%s",
	    account) > 0);
	expect_one_error(text, "t.ini:2: [general] metrics_file: ",
	    "not an absolute path");
	free(text);
	assert_true(asprintf(&text, "[general]\nmetrics_file = /tmp/\n%s",
	    account) > 0);
	capture_reset();
	expect_one_error(text, "t.ini:2: [general] metrics_file: ",
	    "names a directory");
	free(text);
}

/* n accounts "user<i>" (from first), [general] holding general. */
static char *
accounts_text(const char *general, unsigned first, unsigned n)
{
	char *text = NULL, *more;

	assert_true(asprintf(&text, "[general]\n%s\n", general) > 0);
	for (unsigned i = first; i < first + n; i++) {
		assert_true(asprintf(&more, "%s[user%u]\nhost = h\nuser = u\n"
		    "password = p\noutput = /o/%u\n", text, i, i) > 0);
		free(text);
		text = more;
	}
	return text;
}

static bool
has_account(const struct config *c, const char *name)
{
	return config_find_account(c, name) != NULL;
}

/*
 * [general] shard = K/N, and config_keep_shard(): the shards of a file
 * together hold every account once, in file order, and an added account
 * moves none of the others.
 */
static void
test_shard(void **state)
{
	struct config *all, *part[3], *more;
	char *text, *bigger;
	size_t total = 0;

	(void)state;
	text = accounts_text("shard = 1/3", 0, 30);
	all = load_ok(text);
	assert_int_equal(all->shard.k, 1);
	assert_int_equal(all->shard.n, 3);
	/* Loading keeps every account: the shard is applied afterwards. */
	assert_int_equal(all->n_accounts, 30);
	for (unsigned k = 0; k < 3; k++) {
		struct shard s = { k, 3 };

		part[k] = load_ok(text);
		config_keep_shard(part[k], &s);
		assert_int_equal(part[k]->shard.k, k);
		assert_true(part[k]->n_accounts > 0);
		total += part[k]->n_accounts;
		for (size_t i = 1; i < part[k]->n_accounts; i++)
			assert_true(part[k]->accounts[i - 1].line <
			    part[k]->accounts[i].line);
	}
	assert_int_equal(total, 30);
	for (size_t i = 0; i < all->n_accounts; i++) {
		const char *name = all->accounts[i].name;

		assert_int_equal(has_account(part[0], name) +
		    has_account(part[1], name) + has_account(part[2], name), 1);
	}
	/* One more account: everyone else stays where it was. */
	bigger = accounts_text("", 0, 31);
	for (unsigned k = 0; k < 3; k++) {
		struct shard s = { k, 3 };

		more = load_ok(bigger);
		config_keep_shard(more, &s);
		for (size_t i = 0; i < all->n_accounts; i++) {
			const char *name = all->accounts[i].name;

			assert_int_equal(has_account(more, name),
			    has_account(part[k], name));
		}
		config_free(&more);
	}
	/* Not sharded: all of them. */
	more = load_ok(bigger);
	config_keep_shard(more, &(struct shard){ 0, 0 });
	assert_int_equal(more->n_accounts, 31);
	config_free(&more);
	for (unsigned k = 0; k < 3; k++)
		config_free(&part[k]);
	config_free(&all);
	free(text);
	free(bigger);

	text = accounts_text("shard = 3/3", 0, 1);
	expect_one_error(text, "t.ini:2: [general] shard: ", "K below N");
	free(text);
	text = accounts_text("shard = 1", 0, 1);
	capture_reset();
	expect_one_error(text, "t.ini:2: [general] shard: ", "is not K/N");
	free(text);
}

static void
test_bad_port(void **state)
{
	(void)state;
	expect_one_error(ACC "port = 99999\n", "t.ini:6: [a] port: ",
	    "\"99999\" is not a port (1-65535)");
	capture_reset();
	expect_one_error(ACC "port = 0\n", "t.ini:6: [a] port: ",
	    "not a port");
	capture_reset();
	expect_one_error(ACC "port = 99x\n", "t.ini:6: [a] port: ",
	    "not a port");
	capture_reset();
	expect_one_error(ACC "port = -1\n", "t.ini:6: [a] port: ",
	    "not a port");
}

static void
test_unknown_key(void **state)
{
	(void)state;
	expect_one_error(ACC "colour = blue\n", "t.ini:6: [a] colour: ",
	    "unknown key");
}

static void
test_unknown_general_key(void **state)
{
	(void)state;
	expect_one_error("[general]\nverbosity = 3\n" ACC,
	    "t.ini:2: [general] verbosity: ", "unknown key in [general]");
}

static void
test_account_key_in_general(void **state)
{
	(void)state;
	expect_one_error("[general]\n\nhost = x\n" ACC,
	    "t.ini:3: [general] host: ", "account setting");
}

static void
test_general_key_in_account(void **state)
{
	(void)state;
	expect_one_error(ACC "timeout = 5m\n", "t.ini:6: [a] timeout: ",
	    "only allowed in [general]");
}

static void
test_missing_host(void **state)
{
	(void)state;
	expect_one_error("[general]\n[a]\nuser = u\npassword = p\n"
	    "output = /m\n", "t.ini:2: [a] host: ", "missing (required)");
}

static void
test_missing_user_and_output(void **state)
{
	(void)state;
	expect_error("[a]\nhost = h\npassword = p\n", "t.ini:1: [a] user: ",
	    "missing (required)");
	assert_int_equal(count_level(LOGL_ERROR), 2);
	assert_string_equal(cap.line[1],
	    "t.ini:1: [a] output: missing (required)");
}

static void
test_no_password(void **state)
{
	(void)state;
	expect_one_error("[a]\nhost = h\nuser = u\noutput = /m\n",
	    "t.ini:1: [a]: ", "no password_command, password_file or "
	    "password");
}

static void
test_two_passwords(void **state)
{
	(void)state;
	expect_one_error(ACC "password_command = pass x\n",
	    "t.ini:6: [a] password_command: ", "conflicts with password "
	    "(line 4)");
	capture_reset();
	expect_one_error("[a]\npassword_file = /p\nhost = h\nuser = u\n"
	    "output = /m\npassword = x\n", "t.ini:6: [a] password: ",
	    "conflicts with password_file (line 2)");
}

static void
test_duplicate_key(void **state)
{
	(void)state;
	expect_one_error(ACC "\nhost = other\n", "t.ini:7: [a] host: ",
	    "duplicate key (first set on line 2)");
}

static void
test_duplicate_section(void **state)
{
	(void)state;
	expect_one_error(ACC "[a]\nhost = x\n", "t.ini:6: [a]: ",
	    "duplicate section (first on line 1)");
}

static void
test_bad_account_names(void **state)
{
	(void)state;
	expect_one_error(ACC "[my account]\nhost = x\n",
	    "t.ini:6: [my account]: ", "account name must be");
	capture_reset();
	expect_one_error(ACC "[.hidden]\n", "t.ini:6: [.hidden]: ",
	    "not starting with '.'");
	capture_reset();
	expect_one_error(ACC "[a/b]\n", "t.ini:6: [a/b]: ",
	    "account name must be");
	capture_reset();
	expect_one_error(ACC "[]\n", "t.ini:6: ", "empty section name");
}

static void
test_bad_enums(void **state)
{
	(void)state;
	expect_one_error(ACC "tls = ssl\n", "t.ini:6: [a] tls: ",
	    "\"ssl\" is not one of implicit, starttls or none");
	capture_reset();
	expect_one_error(ACC "auth = cram-md5\n", "t.ini:6: [a] auth: ",
	    "is not one of auto, plain, login, xoauth2 or oauthbearer");
	capture_reset();
	expect_one_error(ACC "compress = maybe\n", "t.ini:6: [a] compress: ",
	    "is not one of auto, yes or no");
	capture_reset();
	expect_one_error("[general]\nlog_level = loud\n" ACC,
	    "t.ini:2: [general] log_level: ", "\"loud\" is not one of");
}

static void
test_bad_boolean(void **state)
{
	(void)state;
	expect_one_error(ACC "idle = sometimes\n", "t.ini:6: [a] idle: ",
	    "is not a boolean");
	capture_reset();
	expect_one_error(ACC "allow_plaintext = 2\n",
	    "t.ini:6: [a] allow_plaintext: ", "is not a boolean");
}

static void
test_plaintext_refused(void **state)
{
	(void)state;
	expect_one_error(ACC "tls = none\n", "t.ini:6: [a] tls: ",
	    "set allow_plaintext = yes");
	capture_reset();
	expect_one_error(ACC "tls = none\nallow_plaintext = no\n",
	    "t.ini:6: [a] tls: ", "clear text");
}

static void
test_bad_durations(void **state)
{
	(void)state;
	expect_one_error(ACC "interval = 0\n", "t.ini:6: [a] interval: ",
	    "must be more than zero");
	capture_reset();
	expect_one_error(ACC "interval = -5m\n", "t.ini:6: [a] interval: ",
	    "is not a duration");
	capture_reset();
	expect_one_error("[general]\ntimeout = 10 s\n" ACC,
	    "t.ini:2: [general] timeout: ", "\"10 s\" is not a duration");
	capture_reset();
	expect_one_error("[general]\ninterval = 99999999999999d\n" ACC,
	    "t.ini:2: [general] interval: ", "is too long");
	capture_reset();
	expect_one_error(ACC "interval = 5w\n", "t.ini:6: [a] interval: ",
	    "is not a duration");
}

static void
test_bad_retry(void **state)
{
	(void)state;
	expect_one_error("[general]\nretry_min = 10m\nretry_max = 5m\n" ACC,
	    "t.ini:3: [general] retry_max: ", "is shorter than retry_min");
	capture_reset();
	expect_one_error("[general]\nretry_min = 0\n" ACC,
	    "t.ini:2: [general] retry_min: ", "must be more than zero");
	capture_reset();
	expect_one_error(ACC "retry_max = 1h\n", "t.ini:6: [a] retry_max: ",
	    "only allowed in [general]");
}

static void
test_bad_pins(void **state)
{
	(void)state;
	/* 31 bytes */
	expect_one_error(ACC "pin_sha256 = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBka"
	    "GxwdHg==\n", "t.ini:6: [a] pin_sha256: ", "base64 of 32 bytes");
	capture_reset();
	/* not base64 */
	expect_one_error(ACC "pin_sha256 = AAECAwQFBgcICQoLDA0ODxAREhMUFRYX!Bka"
	    "GxwdHh8=\n", "t.ini:6: [a] pin_sha256: ", "base64 of 32 bytes");
	capture_reset();
	/* hex, as some people paste it */
	expect_one_error(ACC "pin_sha256 = 000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f\n", "t.ini:6: [a] pin_sha256: ",
	    "base64 of 32 bytes");
	capture_reset();
	/* trailing bits set: not canonical */
	expect_one_error(ACC "pin_sha256 = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBka"
	    "GxwdHh9=\n", "t.ini:6: [a] pin_sha256: ", "base64 of 32 bytes");
}

static void
test_bad_lists(void **state)
{
	(void)state;
	expect_one_error(ACC "mailboxes = INBOX,, Sent\n",
	    "t.ini:6: [a] mailboxes: ", "item 2 of the list is empty");
	capture_reset();
	expect_one_error(ACC "exclude = Trash,\n", "t.ini:6: [a] exclude: ",
	    "item 2 of the list is empty");
	capture_reset();
	expect_one_error(ACC "exclude = , Trash\n", "t.ini:6: [a] exclude: ",
	    "item 1 of the list is empty");
}

static void
test_bad_max_connections(void **state)
{
	(void)state;
	expect_one_error("[general]\nmax_connections = 0\n" ACC,
	    "t.ini:2: [general] max_connections: ", "not a number from 1 to "
	    "1000");
	capture_reset();
	expect_one_error("[general]\nmax_connections = 1001\n" ACC,
	    "t.ini:2: [general] max_connections: ", "\"1001\"");
	capture_reset();
	expect_one_error("[general]\nmax_connections = lots\n" ACC,
	    "t.ini:2: [general] max_connections: ", "\"lots\"");
}

static void
test_relative_paths_refused(void **state)
{
	(void)state;
	expect_one_error("[a]\nhost = h\nuser = u\npassword = p\n"
	    "output = mail/a\n", "t.ini:5: [a] output: ",
	    "\"mail/a\" is not an absolute path");
	capture_reset();
	expect_one_error("[general]\nstate_dir = state\n" ACC,
	    "t.ini:2: [general] state_dir: ", "is not an absolute path");
	capture_reset();
	expect_one_error("[a]\nhost = h\nuser = u\npassword = p\n"
	    "output = ~bob/mail\n", "t.ini:5: [a] output: ",
	    "~user is not supported");
}

static void
test_same_output(void **state)
{
	(void)state;
	expect_one_error(ACC "[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = /m//a/\n", "t.ini:10: [b] output: ",
	    "is also the output of [a] (line 5)");
	capture_reset();
	expect_one_error(ACC "[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = /m/a/./sub\n", "t.ini:10: [b] output: ",
	    "is inside the output of [a] (line 5)");
	capture_reset();
	expect_one_error(ACC "[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = /m\n", "t.ini:10: [b] output: ",
	    "contains the output of [a]");
}

/* The outputs are compared sorted, not in pairs: a directory between a
 * parent and its child in plain byte order ("/m/a b") hides nothing, a
 * clash far apart in the file is found, and each is reported once, at
 * the later account. */
/* text loads with n accounts. */
static void
config_free_ok(const char *text, size_t n)
{
	struct config *c = load_ok(text);

	assert_int_equal(c->n_accounts, n);
	config_free(&c);
}

static void
test_outputs_sorted(void **state)
{
	char *text = NULL, *more;
	size_t len = 0;
	FILE *f;

	(void)state;
	expect_one_error(ACC "[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = /m/a b\n[c]\nhost = h\nuser = u\npassword = p\n"
	    "output = /m/a/c\n", "t.ini:15: [c] output: ",
	    "is inside the output of [a] (line 5)");
	capture_reset();
	/* A chain: each later one is inside both earlier ones. */
	expect_error("[x]\nhost = h\nuser = u\npassword = p\noutput = /m/x/y/z\n"
	    "[y]\nhost = h\nuser = u\npassword = p\noutput = /m/x\n"
	    "[z]\nhost = h\nuser = u\npassword = p\noutput = /m/x/y\n",
	    "t.ini:10: [y] output: ", "contains the output of [x] (line 5)");
	assert_int_equal(count_level(LOGL_ERROR), 3);
	capture_reset();

	assert_non_null(f = open_memstream(&text, &len));
	for (unsigned i = 0; i < 3000; i++)
		fprintf(f, "[a%04u]\nhost = h\nuser = u\npassword = p\n"
		    "output = /m/a%04u%s\n", i, i == 2999 ? 5 : i,
		    i == 2999 ? "/in" : "");
	assert_int_equal(fclose(f), 0);
	expect_one_error(text, "t.ini:15000: [a2999] output: ",
	    "is inside the output of [a0005] (line 30)");
	capture_reset();
	/* Without the clash they all load. */
	assert_non_null(more = strstr(text, "/m/a0005/in"));
	memcpy(more, "/m/a3000/", 9);
	config_free_ok(text, 3000);
	free(text);
}

static void
test_similar_outputs_fine(void **state)
{
	struct config *c;

	(void)state;
	/* /m/a and /m/ab share a prefix but not a directory. */
	c = load_ok(ACC "[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = /m/ab\n");
	assert_int_equal(c->n_accounts, 2);
	config_free(&c);
}

static void
test_zero_accounts(void **state)
{
	(void)state;
	expect_one_error("[general]\ninterval = 5m\n", "t.ini: ",
	    "no accounts configured");
	capture_reset();
	expect_one_error("", "t.ini: ", "no accounts configured");
}

static void
test_key_outside_section(void **state)
{
	(void)state;
	expect_one_error("host = h\n" ACC, "t.ini:1: host: ",
	    "is outside any [section]");
}

static void
test_syntax_errors(void **state)
{
	(void)state;
	expect_one_error(ACC "just some words\n", "t.ini:6: ",
	    "expected \"key = value\" or \"[section]\"");
	capture_reset();
	expect_one_error(ACC "[b\nhost = h\n", "t.ini:6: ",
	    "section header without a closing ']'");
	capture_reset();
	expect_one_error(ACC "[b] junk\n", "t.ini:6: [b]: ",
	    "unexpected text after ']'");
	capture_reset();
	expect_one_error(ACC "= value\n", "t.ini:6: [a]: ", "no key name");
}

static void
test_empty_value(void **state)
{
	(void)state;
	expect_one_error("[a]\nhost =\nuser = u\npassword = p\noutput = /m\n",
	    "t.ini:2: [a] host: ", "has no value");
	capture_reset();
	expect_one_error(ACC "exclude =   \n", "t.ini:6: [a] exclude: ",
	    "has no value");
}

static void
test_bad_host(void **state)
{
	(void)state;
	expect_one_error("[a]\nhost = imap example org\nuser = u\n"
	    "password = p\noutput = /m\n", "t.ini:2: [a] host: ",
	    "is not a host name");
}

static void
test_nul_byte(void **state)
{
	static const char text[] = ACC "user2\0x = y\n";
	struct config *c = NULL;
	char *path;
	int fd;

	(void)state;
	/* Only a file can hold a NUL; the string form stops at the first. */

	assert_true(asprintf(&path, "%s/nul.ini", tmpdir) > 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof text - 1),
	    (ssize_t)(sizeof text - 1));
	close(fd);
	assert_int_equal(config_load(path, &c), -1);
	assert_int_equal(cap.n, 1);
	assert_non_null(strstr(cap.line[0], "nul.ini:6: "));
	assert_non_null(strstr(cap.line[0], "contains a NUL byte"));
	unlink(path);
	free(path);
}

static void
test_all_errors_in_line_order(void **state)
{
	(void)state;
	expect_error("[general]\n"
	    "timeout = soon\n"
	    "[a]\n"
	    "host = h\n"
	    "port = 0\n"
	    "user = u\n"
	    "password = p\n"
	    "output = /m\n"
	    "bogus = 1\n"
	    "[b]\n"
	    "tls = none\n", "t.ini:2: [general] timeout: ", "not a duration");
	/* b: missing host, user, output and a password; tls = none. */
	assert_int_equal(count_level(LOGL_ERROR), 8);
	assert_true(strncmp(cap.line[0], "t.ini:2:", 8) == 0);
	assert_true(strncmp(cap.line[1], "t.ini:5:", 8) == 0);
	assert_true(strncmp(cap.line[2], "t.ini:9:", 8) == 0);
	for (size_t i = 3; i < 7; i++)
		assert_true(strncmp(cap.line[i], "t.ini:10: [b]", 13) == 0);
	assert_true(strncmp(cap.line[7], "t.ini:11: [b] tls:", 18) == 0);
}

static void
test_secret_not_echoed(void **state)
{
	(void)state;
	/* A mistyped key holding a password: its value stays out of the
	 * log. */
	expect_one_error(ACC "passwd = Tr0ub4dor&3\n", "t.ini:6: [a] passwd: ",
	    "unknown key");
	assert_null(strstr(cap.line[0], "Tr0ub4dor"));
}

/* Real files */

static void
test_long_line(void **state)
{
	size_t max = INI_MAX_LINE - 2;
	char *text, *path, *cmd;
	struct config *c = NULL;

	(void)state;
	/* A line of exactly max bytes is fine... */
	cmd = malloc(max + 1);
	memset(cmd, 'x', max);
	memcpy(cmd, "password_command = echo ", 24);
	cmd[max] = '\0';
	assert_true(asprintf(&text, "[a]\nhost = h\nuser = u\n%s\n"
	    "output = /m\n", cmd) > 0);
	path = write_temp("long.ini", text, 0600);
	assert_int_equal(config_load(path, &c), 0);
	assert_int_equal(strlen(c->accounts[0].secret), max - 19);
	config_free(&c);
	free(text);
	free(path);

	/* ...one more is refused with its key named, not split. */
	cmd = realloc(cmd, max + 2);
	memset(cmd + 24, 'y', max + 1 - 24);
	cmd[max + 1] = '\0';
	assert_true(asprintf(&text, "[a]\nhost = h\nuser = u\n%s\n"
	    "output = /m\n", cmd) > 0);
	path = write_temp("long.ini", text, 0600);
	assert_int_equal(config_load(path, &c), -1);
	assert_int_equal(cap.n, 1);
	{
		char *want;

		assert_true(asprintf(&want, "%s:4: [a] password_command: line "
		    "too long (max %zu bytes)", path, max) > 0);
		assert_string_equal(cap.line[0], want);
		free(want);
	}
	unlink(path);
	free(text);
	free(path);
	free(cmd);
}

static void
test_long_comment_ignored(void **state)
{
	char *text, *path, *comment;
	struct config *c = NULL;

	(void)state;
	comment = malloc(1001);
	memset(comment, '-', 1000);
	comment[0] = '#';
	comment[1000] = '\0';
	assert_true(asprintf(&text, "%s\n" ACC, comment) > 0);
	path = write_temp("comment.ini", text, 0600);
	assert_int_equal(config_load(path, &c), 0);
	assert_int_equal(c->accounts[0].line, 2);
	config_free(&c);
	unlink(path);
	free(text);
	free(path);
	free(comment);
}

static void
test_tilde_from_file(void **state)
{
	struct config *c = NULL;
	char *path, *want;

	(void)state;
	setenv("HOME", tmpdir, 1);
	path = write_temp("tilde.ini", "[a]\nhost = h\nuser = u\n"
	    "password_file = ~/pw\noutput = ~/mail/a\n", 0600);
	assert_int_equal(config_load(path, &c), 0);
	assert_true(asprintf(&want, "%s/mail/a", tmpdir) > 0);
	assert_string_equal(c->accounts[0].output, want);
	free(want);
	assert_true(asprintf(&want, "%s/pw", tmpdir) > 0);
	assert_string_equal(c->accounts[0].secret, want);
	free(want);
	config_free(&c);
	unlink(path);
	free(path);
}

static void
test_permission_warning(void **state)
{
	struct config *c = NULL;
	char *path;

	(void)state;
	path = write_temp("perm.ini", ACC, 0644);
	assert_int_equal(config_load(path, &c), 0);
	assert_true(c->inline_password_warned);
	assert_int_equal(count_level(LOGL_WARNING), 1);
	assert_true(strncmp(cap.line[0], path, strlen(path)) == 0);
	assert_non_null(strstr(cap.line[0], "inline password"));
	assert_non_null(strstr(cap.line[0], "0644"));
	assert_null(strstr(cap.line[0], "pw1"));
	config_free(&c);
	free(path);

	/* Private file: no warning. */
	capture_reset();
	path = write_temp("perm.ini", ACC, 0600);
	assert_int_equal(config_load(path, &c), 0);
	assert_false(c->inline_password_warned);
	assert_int_equal(cap.n, 0);
	config_free(&c);
	free(path);

	/* Readable, but no inline password: no warning. */
	path = write_temp("perm.ini", "[a]\nhost = h\nuser = u\n"
	    "password_command = pass x\noutput = /m\n", 0640);
	assert_int_equal(config_load(path, &c), 0);
	assert_int_equal(cap.n, 0);
	config_free(&c);
	unlink(path);
	free(path);
}

/* Only warning lines: line i of the capture, which must be a warning. */
static const char *
warning_line(size_t i)
{
	assert_true(i < cap.n);
	assert_int_equal(cap.level[i], LOGL_WARNING);
	return cap.line[i];
}

/* Anyone who can write the config can choose the password_command. */
static void
test_world_writable_config_warning(void **state)
{
	static const char text[] = "[a]\nhost = h\nuser = u\n"
	    "password_command = pass x\noutput = /m\n";
	struct config *c = NULL;
	char *path, *want;

	(void)state;
	path = write_temp("open.ini", text, 0646);
	assert_int_equal(config_load(path, &c), 0);
	assert_int_equal(cap.n, 1);
	assert_true(strncmp(warning_line(0), path, strlen(path)) == 0);
	assert_non_null(strstr(cap.line[0], "writable by anyone (mode 0646)"));
	assert_non_null(strstr(cap.line[0], "password_command"));
	assert_true(asprintf(&want, "run chmod 600 %s", path) > 0);
	assert_non_null(strstr(cap.line[0], want));
	free(want);
	config_free(&c);
	free(path);

	/* Group-writable, private, or read-only for others: no warning. */
	for (size_t i = 0; i < 3; i++) {
		static const mode_t modes[] = { 0660, 0600, 0444 };

		capture_reset();
		path = write_temp("open.ini", text, modes[i]);
		assert_int_equal(config_load(path, &c), 0);
		assert_int_equal(cap.n, 0);
		config_free(&c);
		unlink(path);
		free(path);
	}
}

/* A password_file others can read (or write) draws a warning naming the
 * file, the config line, the mode and the fix; never the password. */
static void
test_password_file_permissions(void **state)
{
	static const struct {
		mode_t mode;
		const char *how;	/* NULL: no warning */
	} cases[] = {
		{ 0644, "is readable by others (mode 0644)" },
		{ 0604, "is readable by others (mode 0604)" },
		{ 0620, "is writable by group or others (mode 0620)" },
		{ 0602, "is writable by group or others (mode 0602)" },
		{ 0666, "is readable by others and writable by group or "
		    "others (mode 0666)" },
		{ 0640, NULL },
		{ 0600, NULL },
		{ 0400, NULL },
	};
	struct config *c = NULL;
	char *pw, *text, *want;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		capture_reset();
		pw = write_temp("pw", "file-s3cret\n", cases[i].mode);
		assert_true(asprintf(&text, "[a]\nhost = h\nuser = u\n"
		    "password_file = %s\noutput = /m\n", pw) > 0);
		c = load_ok(text);
		if (cases[i].how == NULL) {
			assert_int_equal(cap.n, 0);
		} else {
			assert_int_equal(cap.n, 1);
			assert_true(asprintf(&want, "t.ini:4: [a] password_file: "
			    "%s %s; run chmod 600 %s", pw, cases[i].how,
			    pw) > 0);
			assert_string_equal(warning_line(0), want);
			free(want);
		}
		config_free(&c);
		free(text);
		unlink(pw);
		free(pw);
	}

	/* A missing file is for the read to report. */
	capture_reset();
	c = load_ok("[a]\nhost = h\nuser = u\npassword_file = /nonexistent/pw\n"
	    "output = /m\n");
	assert_int_equal(cap.n, 0);
	config_free(&c);
}

static void
test_missing_file(void **state)
{
	struct config *c = NULL;
	char *path;

	(void)state;
	assert_true(asprintf(&path, "%s/absent.ini", tmpdir) > 0);
	assert_int_equal(config_load(path, &c), -1);
	assert_null(c);
	assert_int_equal(cap.n, 1);
	assert_true(strncmp(cap.line[0], path, strlen(path)) == 0);
	assert_non_null(strstr(cap.line[0], strerror(ENOENT)));
	free(path);

	capture_reset();
	assert_int_equal(config_load(tmpdir, &c), -1);
	assert_non_null(strstr(cap.line[0], "not a regular file"));
}

static void
test_example_file(void **state)
{
	struct config *c = NULL;

	(void)state;
	assert_int_equal(config_load(MM_EXAMPLE_CONFIG, &c), 0);
	assert_int_equal(cap.n, 0);
	assert_int_equal(c->n_accounts, 1);
	assert_string_equal(c->accounts[0].name, "personal");
	assert_int_equal(c->accounts[0].secret_source, SECRET_COMMAND);
	assert_int_equal(c->accounts[0].exclude.n, 3);
	config_free(&c);
}

/* "host = name:port" is refused with the port = it should be; IPv6
 * addresses, bare or in brackets, are hosts. */
static void
test_host_port(void **state)
{
	static const struct {
		const char *value;
		const char *host;	/* NULL: refused with what */
		const char *what;
	} cases[] = {
		{ "127.0.0.1:42039", NULL, "holds a port; write host = "
		    "127.0.0.1 and port = 42039" },
		{ "imap.example.org:993", NULL, "write host = "
		    "imap.example.org and port = 993" },
		{ "[::1]:993", NULL, "write host = ::1 and port = 993" },
		{ "imap.example.org:imaps", NULL, "is not a host name" },
		{ ":993", NULL, "is not a host name" },
		{ "a:b:c", NULL, "is not a host name" },
		{ "[imap.example.org]", NULL, "is not a host name" },
		{ "[::1]x", NULL, "is not a host name" },
		{ "[::1", NULL, "is not a host name" },
		{ "::1", "::1", NULL },
		{ "[::1]", "::1", NULL },
		{ "2001:db8::25", "2001:db8::25", NULL },
		{ "[fe80::1%eth0]", "fe80::1%eth0", NULL },
		{ "127.0.0.1", "127.0.0.1", NULL },
		{ "imap.example.org", "imap.example.org", NULL },
	};
	struct config *c;
	char *text, prefix[] = "t.ini:2: [a] host: ";

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		capture_reset();
		assert_true(asprintf(&text, "[a]\nhost = %s\nuser = u\n"
		    "password = p\noutput = /m\n", cases[i].value) > 0);
		if (cases[i].host == NULL) {
			expect_one_error(text, prefix, cases[i].what);
		} else {
			c = load_ok(text);
			assert_string_equal(c->accounts[0].host,
			    cases[i].host);
			config_free(&c);
		}
		free(text);
	}
}

static void
expect_resolved(const char *path, const char *want)
{
	char *got = config_resolve_path(path);

	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("%s resolved to %s, not %s", path, got, want);
	free(got);
}

/* Where nothing exists, only the text counts. */
static void
test_resolve_path_lexical(void **state)
{
	(void)state;
	expect_resolved("/", "/");
	expect_resolved("//", "/");
	expect_resolved("/..", "/");
	expect_resolved("/nonexistent-mm/a/../b", "/nonexistent-mm/b");
	expect_resolved("/nonexistent-mm//a/./b/", "/nonexistent-mm/a/b");
	expect_resolved("/nonexistent-mm/a/../../..", "/");
	expect_resolved("/nonexistent-mm/..a/.b", "/nonexistent-mm/..a/.b");
}

/* What exists is resolved as the kernel would: "link/.." is the parent of
 * the link's target, not the directory holding the link. */
static void
test_resolve_path_symlinks(void **state)
{
	char *real, *deep, *link, *p, *want;

	(void)state;
	real = realpath(tmpdir, NULL);
	assert_non_null(real);
	assert_true(asprintf(&deep, "%s/x/deep", tmpdir) > 0);
	assert_true(asprintf(&link, "%s/link", tmpdir) > 0);
	assert_true(asprintf(&p, "%s/x", tmpdir) > 0);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(mkdir(deep, 0700), 0);
	assert_int_equal(symlink(deep, link), 0);

	free(p);
	assert_true(asprintf(&p, "%s/link/new/../mail", tmpdir) > 0);
	assert_true(asprintf(&want, "%s/x/deep/mail", real) > 0);
	expect_resolved(p, want);
	free(p);
	free(want);
	assert_true(asprintf(&p, "%s/link/../other", tmpdir) > 0);
	assert_true(asprintf(&want, "%s/x/other", real) > 0);
	expect_resolved(p, want);
	free(p);
	free(want);

	assert_int_equal(unlink(link), 0);
	assert_int_equal(rmdir(deep), 0);
	assert_true(asprintf(&p, "%s/x", tmpdir) > 0);
	assert_int_equal(rmdir(p), 0);
	free(p);
	free(link);
	free(deep);
	free(real);
}

static void
test_path_within(void **state)
{
	(void)state;
	assert_true(config_path_within("/m/a", "/m/a"));
	assert_true(config_path_within("/m/a", "/m/a/b"));
	assert_true(config_path_within("/", "/m"));
	assert_false(config_path_within("/m/a", "/m/ab"));
	assert_false(config_path_within("/m/a", "/m"));
	assert_false(config_path_within("/m/a/b", "/m/a"));
}

/* "a/../b" is beside a, not inside it; the same written with "~". */
static void
test_output_dotdot(void **state)
{
	struct config *c;

	(void)state;
	c = load_ok(ACC "[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = /m/a/../b\n");
	assert_int_equal(c->n_accounts, 2);
	config_free(&c);
	c = load_ok("[a]\nhost = h\nuser = u\npassword = p\n"
	    "output = ~/mail/a\n[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = ~/mail/a/../b\n");
	config_free(&c);
	expect_one_error(ACC "[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = /m/b/../a/x\n", "t.ini:10: [b] output: ",
	    "is inside the output of [a] (line 5) (resolved: /m/a/x and "
	    "/m/a)");
}

/* Two names for one directory: each account would rename the other's
 * mbox files as files it has no record of. */
static void
test_output_through_symlink(void **state)
{
	char *dir, *link, *text, *real;

	(void)state;
	real = realpath(tmpdir, NULL);
	assert_non_null(real);
	assert_true(asprintf(&dir, "%s/mail", tmpdir) > 0);
	assert_true(asprintf(&link, "%s/alias", tmpdir) > 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(symlink("mail", link), 0);
	assert_true(asprintf(&text, "[a]\nhost = h\nuser = u\npassword = p\n"
	    "output = %s\n[b]\nhost = h\nuser = u\npassword = p\n"
	    "output = %s/\n", dir, link) > 0);
	expect_one_error(text, "t.ini:10: [b] output: ",
	    "is also the output of [a] (line 5)");
	assert_non_null(strstr(cap.line[0], real));
	free(text);
	assert_int_equal(unlink(link), 0);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
	free(link);
	free(real);
}

/* A self-signed CA certificate (Ed25519, made with certtool). */
static const char test_ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBOTCB7KADAgECAhQOhsfUd0EnmKsl32UqzMmAu9zJ7TAFBgMrZXAwGjEYMBYG\n"
    "A1UEAxMPbW0gdW5pdCB0ZXN0IENBMCAXDTI2MTIwMzEwMTQ1N1oYDzIxMjYxMTA5\n"
    "MTAxNDU3WjAaMRgwFgYDVQQDEw9tbSB1bml0IHRlc3QgQ0EwKjAFBgMrZXADIQCu\n"
    "hko9ASAutx2YMnhyqff6KSagrKJINVaALiHuPdm+qaNCMEAwDwYDVR0TAQH/BAUw\n"
    "AwEB/zAOBgNVHQ8BAf8EBAMCAgQwHQYDVR0OBBYEFJexh1/WKUuslYNS4hC5gF4v\n"
    "HEGuMAUGAytlcANBADX8amV+N5FATB2YVD2GRAO8fSx7DF928wjS/1/jpYN6Q4qT\n"
    "Cv4eC/poJk4io6DaRPzAPx7xSmbkdJRFxYqrmgQ=\n"
    "-----END CERTIFICATE-----\n";

/*
 * Loads one account naming key = value (after "~" and relative paths are
 * expanded), runs the file check on it and returns how many problems it
 * found; the lines are in cap.
 */
static size_t
check_files(const char *key, const char *value)
{
	struct config *c;
	char *text;
	size_t n;

	assert_true(asprintf(&text, "[a]\nhost = h\nuser = u\n%s%s = %s\n"
	    "output = /m\n", strcmp(key, "ca_file") == 0 ?
	    "password = p\n" : "", key, value) > 0);
	capture_reset();
	c = load_ok(text);
	free(text);
	capture_reset();
	n = config_check_account_files(c, &c->accounts[0]);
	assert_int_equal(count_level(LOGL_ERROR), n);
	config_free(&c);
	return n;
}

static void
expect_file_problem(const char *key, const char *value, const char *prefix,
    const char *what)
{
	assert_int_equal(check_files(key, value), 1);
	if (strncmp(cap.line[0], prefix, strlen(prefix)) != 0 ||
	    strstr(cap.line[0], what) == NULL)
		fail_msg("got \"%s\", wanted \"%s...%s\"", cap.line[0], prefix,
		    what);
}

static void
test_check_password_file(void **state)
{
	char *pw, *missing;

	(void)state;
	pw = write_temp("pw", "secret\n", 0600);
	assert_int_equal(check_files("password_file", pw), 0);
	assert_true(asprintf(&missing, "%s/absent", tmpdir) > 0);
	expect_file_problem("password_file", missing,
	    "t.ini:4: [a] password_file: ", strerror(ENOENT));
	expect_file_problem("password_file", tmpdir,
	    "t.ini:4: [a] password_file: ", "is a directory");
	/* Root reads any file: mode 000 stops only others. */
	if (geteuid() != 0) {
		assert_int_equal(chmod(pw, 0), 0);
		expect_file_problem("password_file", pw,
		    "t.ini:4: [a] password_file: ", strerror(EACCES));
	}
	assert_int_equal(unlink(pw), 0);
	free(pw);
	free(missing);
}

static void
test_check_ca_file(void **state)
{
	char *ca, *bad, *empty, *missing;

	(void)state;
	ca = write_temp("ca.pem", test_ca_pem, 0644);
	bad = write_temp("bad.pem", "not a certificate\n", 0644);
	empty = write_temp("empty.pem", "", 0644);
	assert_true(asprintf(&missing, "%s/absent.pem", tmpdir) > 0);
	assert_int_equal(check_files("ca_file", ca), 0);
	expect_file_problem("ca_file", missing, "t.ini:5: [a] ca_file: ",
	    strerror(ENOENT));
	expect_file_problem("ca_file", bad, "t.ini:5: [a] ca_file: ",
	    "no PEM certificate in it");
	expect_file_problem("ca_file", empty, "t.ini:5: [a] ca_file: ",
	    "certificate");
	expect_file_problem("ca_file", tmpdir, "t.ini:5: [a] ca_file: ",
	    "is a directory");
	/* A relative name is taken from the config file's directory. */
	assert_int_equal(check_files("ca_file", "ca.pem"), 1);
	assert_non_null(strstr(cap.line[0], "ca.pem: "));
	unlink(ca);
	unlink(bad);
	unlink(empty);
	free(ca);
	free(bad);
	free(empty);
	free(missing);
}

static int
group_setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/mm-test-config-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_minimal_defaults, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_every_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_plaintext_allowed_and_port_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_general_interval_inherited,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_syntax_tolerance, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_booleans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_durations, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pin_forms, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_defaults, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_state_dir_of_a_system_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths_expanded, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_default_path, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_report_none_found, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mode_names, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_metrics_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_shard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unknown_general_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_account_key_in_general,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_general_key_in_account,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_host, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_missing_user_and_output,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_password, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_two_passwords, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_section, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_account_names, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_enums, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_boolean, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_plaintext_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_durations, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_retry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_pins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_lists, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_max_connections, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relative_paths_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_output, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_outputs_sorted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_similar_outputs_fine,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_accounts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_key_outside_section, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_syntax_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_empty_value, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_errors_in_line_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_not_echoed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_long_comment_ignored,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_tilde_from_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_permission_warning, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_world_writable_config_warning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_password_file_permissions,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_example_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_host_port, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_resolve_path_lexical, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_resolve_path_symlinks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_path_within, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_output_dotdot, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_output_through_symlink, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_check_password_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_check_ca_file, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
