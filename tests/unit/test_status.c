/*
 * status: --status from state files written with state_save() into a
 * temporary state directory: the table and the JSON, what each says about
 * a good, a failing, a never synced and an unreadable account, each
 * mailbox's figures, whether a daemon runs, and the exit status.
 */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testdir.h"

#include "config.h"
#include "mirror/state.h"
#include "status.h"

/* 2023-11-14T22:13:20Z */
#define T0 1700000000

static char dir[64];
static struct config *cfg;
static char *text;

static void
save(const char *account, const struct account_state *st)
{
	char *sd = state_account_dir(cfg->state_dir, account), *error = NULL;

	assert_non_null(sd);
	if (state_save(sd, st, &error) != 0)
		fail_msg("%s", error);
	free(sd);
}

/* "good": synced, two mailboxes (one without a file yet).  "bad": failing twice in a row, with a
 * server's error text (a quote, a backslash, an escape sequence), messages
 * given up and a hole. */
static void
write_states(void)
{
	struct account_state st = { 0 };
	struct mailbox_state *mb;

	st.last_attempt = T0;
	st.last_success = T0;
	mb = state_get(&st, "INBOX");
	mb->file = strdup("INBOX.mbox");
	mb->uidvalidity = 1;
	mb->last_uid = 3;
	mb->messages = 3;
	mb->mbox_size = 300;
	mb = state_get(&st, "Sent");
	mb->uidvalidity = 1;
	mb->last_uid = 1;
	mb->messages = 1;
	mb->mbox_size = 200;
	save("good", &st);
	state_clear(&st);

	st.last_attempt = T0 + 60;
	st.next_attempt = T0 + 120;
	state_set_error(&st, "server said \"no\" \\ \x1b[31mred", "server",
	    T0 + 60);
	st.failures = 2;
	mb = state_get(&st, "Junk\x1b");
	mb->uidvalidity = 7;
	mb->messages = 1;
	mb->mbox_size = 50;
	mb->hole_uid = 9;
	mb->hole_tries = 1;
	assert_int_equal(state_add_skipped(mb, 5), 0);
	assert_int_equal(state_add_skipped(mb, 7), 0);
	mb->skipped_total = 3;
	save("bad", &st);
	state_clear(&st);
}

/* Runs status_print into text; returns its result. */
static int
run(char *const *names, size_t n, bool json)
{
	size_t len;
	FILE *out;
	int rc;

	free(text);
	text = NULL;
	assert_non_null(out = open_memstream(&text, &len));
	rc = status_print(out, cfg, names, n, json);
	assert_int_equal(fclose(out), 0);
	return rc;
}

static void
expect(const char *want)
{
	if (strstr(text, want) == NULL)
		fail_msg("no \"%s\" in:\n%s", want, text);
}

static int
setup(void **state)
{
	char conf[1024];

	(void)state;
	assert_int_equal(testdir_make(dir, sizeof dir, "mm-status"), 0);
	snprintf(conf, sizeof conf,
	    "[general]\nstate_dir = %s\n"
	    "[good]\nhost = h\nuser = u\npassword = p\noutput = %s/good\n"
	    "[bad]\nhost = h\nuser = u\npassword = p\noutput = %s/bad\n"
	    "[new]\nhost = h\nuser = u\npassword = p\noutput = %s/new\n",
	    dir, dir, dir, dir);
	assert_int_equal(config_load_string("t.ini", conf, &cfg), 0);
	setenv("TZ", "UTC", 1);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	free(text);
	text = NULL;
	testdir_remove(dir);
	return 0;
}

static void
test_table(void **state)
{
	(void)state;
	write_states();
	assert_int_equal(run(NULL, 0, false), 1);
	expect("ACCOUNT          LAST SUCCESS        NEXT ATTEMPT");
	expect("good             2023-11-14 22:13:20 -                   "
	    "        2         4  ok\n"
	    "                   mailbox INBOX: INBOX.mbox, last UID 3, "
	    "3 messages, 300 bytes\n"
	    "                   mailbox Sent: no file yet, last UID 1, "
	    "1 message, 200 bytes\n");
	expect("bad              never               2023-11-14 22:15:20 "
	    "        1         1  FAILING\n");
	/* The server's escape sequence is defused. */
	expect("last error at 2023-11-14 22:14:20 (2 in a row, server): server said "
	    "\"no\" \\ ?[31mred\n");
	assert_null(strchr(text, '\x1b'));
	expect("mailbox Junk?: 3 messages given up, not in the mirror "
	    "(UID 5, 7, ...)\n");
	expect("mailbox Junk?: UID 9 not delivered in 1 of 3 syncs; given up "
	    "after 3\n");
	expect("new              never               -                   "
	    "        0         0  not synced yet\n");
	expect("daemon: not running on ");
}

/* A daemon holding its lock on the state directory is named, with its
 * pid, in both forms. */
/* What --status says of a daemon run by this process. */
static const char *
want2(char *buf, size_t size)
{
	snprintf(buf, size, "daemon: running (pid %ld) on ", (long)getpid());
	return buf;
}

static void
test_daemon_running(void **state)
{
	char *names[] = { "good" }, *dd, *error = NULL, want[64];
	long holder;
	int fd = -1;

	(void)state;
	write_states();
	assert_int_equal(run(names, 1, false), 0);
	expect("daemon: not running on ");
	assert_int_equal(run(names, 1, true), 0);
	expect("\"daemon_running\": false");
	assert_non_null(dd = state_daemon_dir(cfg->state_dir));
	assert_int_equal(state_lock(dd, &fd, &holder, &error), 0);
	snprintf(want, sizeof want, "daemon: running (pid %ld) on ",
	    (long)getpid());
	assert_int_equal(run(names, 1, false), 0);
	expect(want);
	assert_int_equal(run(names, 1, true), 0);
	snprintf(want, sizeof want, "\"daemon_running\": true, "
	    "\"daemon_pid\": %ld", (long)getpid());
	expect(want);
	state_unlock(&fd);
	free(dd);

	/* A sharded config looks at its shard's daemon only. */
	cfg->shard.k = 1;
	cfg->shard.n = 3;
	assert_non_null(dd = state_shard_daemon_dir(cfg->state_dir, 0, 3));
	assert_non_null(strstr(dd, "/.daemon/shard-0-of-3"));
	assert_int_equal(state_lock(dd, &fd, &holder, &error), 0);
	assert_int_equal(run(names, 1, false), 0);
	expect("daemon: not running on ");
	state_unlock(&fd);
	free(dd);
	assert_non_null(dd = state_shard_daemon_dir(cfg->state_dir, 1, 3));
	assert_int_equal(state_lock(dd, &fd, &holder, &error), 0);
	assert_int_equal(run(names, 1, false), 0);
	expect(want2(want, sizeof want));
	state_unlock(&fd);
	free(dd);
	cfg->shard.n = 0;
	cfg->shard.k = 0;
}

static void
test_json(void **state)
{
	(void)state;
	write_states();
	assert_int_equal(run(NULL, 0, true), 1);
	assert_int_equal(text[0], '[');
	expect("  {\"account\": \"good\", \"daemon_running\": false, "
	    "\"last_attempt\": \"2023-11-14T22:13:20Z\", \"last_success\": "
	    "\"2023-11-14T22:13:20Z\", \"last_error\": null, "
	    "\"last_error_kind\": null, "
	    "\"last_error_time\": null, \"next_attempt\": null, "
	    "\"per_mailbox\": [{\"mailbox\": \"INBOX\", \"file\": "
	    "\"INBOX.mbox\", \"uidvalidity\": 1, \"last_uid\": 3, "
	    "\"messages\": 3, \"mbox_bytes\": 300}, {\"mailbox\": \"Sent\", "
	    "\"file\": null, \"uidvalidity\": 1, \"last_uid\": 1, "
	    "\"messages\": 1, \"mbox_bytes\": 200}], "
	    "\"mailboxes_incomplete\": [], \"consecutive_failures\": 0, "
	    "\"mailboxes\": 2, \"messages\": 4, \"mbox_bytes\": 500, "
	    "\"ok\": true},\n");
	expect("\"last_error\": \"server said \\\"no\\\" \\\\ ?[31mred\", "
	    "\"last_error_kind\": \"server\"");
	expect("\"mailboxes_incomplete\": [{\"mailbox\": \"Junk?\", "
	    "\"given_up\": 3, \"given_up_uids\": [5, 7], "
	    "\"not_delivered_uid\": 9, \"not_delivered_syncs\": 1}]");
	expect("\"consecutive_failures\": 2");
	expect("\"next_attempt\": \"2023-11-14T22:15:20Z\"");
	expect("{\"account\": \"new\", \"daemon_running\": false, "
	    "\"last_attempt\": null");
	/* The last entry has no comma after it. */
	expect("\"ok\": false}\n]\n");
}

/* Only the accounts asked for; a good one alone exits 0. */
static void
test_selected(void **state)
{
	char *names[] = { "good" };

	(void)state;
	write_states();
	assert_int_equal(run(names, 1, false), 0);
	expect("good ");
	assert_null(strstr(text, "bad"));
	assert_null(strstr(text, "new"));
}

/* A state file that cannot be read: said, in both forms, and exit 1. */
static void
test_unreadable(void **state)
{
	char *names[] = { "good" }, *sd, path[256];
	FILE *f;

	(void)state;
	sd = state_account_dir(cfg->state_dir, "good");
	assert_int_equal(mkdir(sd, 0700), 0);
	snprintf(path, sizeof path, "%s/state", sd);
	free(sd);
	assert_non_null(f = fopen(path, "w"));
	fputs("this is not a state file\n", f);
	fclose(f);
	assert_int_equal(run(names, 1, false), 1);
	expect("good             state unreadable: ");
	assert_int_equal(run(names, 1, true), 1);
	expect("[\n  {\"account\": \"good\", \"daemon_running\": false, "
	    "\"state_error\": \"");
	expect("\"}\n]\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_selected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_running, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
