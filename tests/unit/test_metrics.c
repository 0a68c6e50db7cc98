/*
 * metrics: the exposition text, family by family: # HELP and # TYPE once
 * each before their samples, label values escaped, the state one-hot, no
 * duration before a sync, the process's figures under its shard; and the
 * figures taken from a state.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "mirror/state.h"

static bool
has_line(const char *text, const char *line)
{
	size_t len = strlen(line);

	for (const char *p = text; p != NULL && *p != '\0';
	    p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, len) == 0 && p[len] == '\n')
			return true;
	return false;
}

static void
expect_line(const char *text, const char *line)
{
	if (!has_line(text, line))
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void
expect_no_line(const char *text, const char *line)
{
	if (has_line(text, line))
		fail_msg("unexpected line \"%s\" in:\n%s", line, text);
}

static size_t
count(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static struct metrics_account
account(const char *name)
{
	struct metrics_account a = {
		.name = name,
		.interval = 900,
		.last_success = 1790000000,
		.last_attempt = 1790000100,
		.last_duration = 2.5,
		.failures = 0,
		.messages = 12,
		.bytes = 34567,
	};

	return a;
}

static char *
format(const struct metrics_process *p, const struct metrics_account *a,
    size_t n)
{
	const struct metrics_account *v[4];
	size_t len = 0;
	char *text;

	assert_true(n <= 4);
	for (size_t i = 0; i < n; i++)
		v[i] = &a[i];
	text = metrics_format(p, v, n, &len);
	assert_non_null(text);
	assert_int_equal(len, strlen(text));
	assert_true(len > 0 && text[len - 1] == '\n');
	return text;
}

static void
test_samples(void **state)
{
	struct metrics_account a[2] = { account("personal"), account("work") };
	struct metrics_process p = { .config = "mboxmirror", .accounts = 2,
		.syncs_in_flight = 1, .connections_open = 3 };
	char *text;

	(void)state;
	a[1].failures = 3;
	a[1].last_duration = -1;
	a[1].push_connected = true;
	a[1].messages = 0;
	text = format(&p, a, 2);
	expect_line(text, "mboxmirror_last_success_timestamp_seconds"
	    "{config=\"mboxmirror\",account=\"personal\"} 1790000000");
	expect_line(text, "mboxmirror_last_attempt_timestamp_seconds"
	    "{config=\"mboxmirror\",account=\"work\"} 1790000100");
	expect_line(text, "mboxmirror_last_sync_duration_seconds"
	    "{config=\"mboxmirror\",account=\"personal\"} 2.500");
	/* No sync ended in this process: no duration to tell. */
	assert_int_equal(count(text, "mboxmirror_last_sync_duration_seconds"
	    "{config=\"mboxmirror\",account=\"work\"}"), 0);
	expect_line(text, "mboxmirror_consecutive_failures"
	    "{config=\"mboxmirror\",account=\"work\"} 3");
	expect_line(text, "mboxmirror_consecutive_failures"
	    "{config=\"mboxmirror\",account=\"personal\"} 0");
	expect_line(text, "mboxmirror_interval_seconds"
	    "{config=\"mboxmirror\",account=\"work\"} 900");
	expect_line(text, "mboxmirror_messages_mirrored_total"
	    "{config=\"mboxmirror\",account=\"personal\"} 12");
	expect_line(text, "mboxmirror_messages_mirrored_total"
	    "{config=\"mboxmirror\",account=\"work\"} 0");
	expect_line(text, "mboxmirror_bytes_mirrored_total"
	    "{config=\"mboxmirror\",account=\"personal\"} 34567");
	expect_line(text, "mboxmirror_push_connected"
	    "{config=\"mboxmirror\",account=\"work\"} 1");
	expect_line(text, "mboxmirror_push_connected"
	    "{config=\"mboxmirror\",account=\"personal\"} 0");
	/* One-hot: ok for personal, failing for work. */
	expect_line(text, "mboxmirror_account_state"
	    "{config=\"mboxmirror\",account=\"personal\",state=\"ok\"} 1");
	expect_line(text, "mboxmirror_account_state"
	    "{config=\"mboxmirror\",account=\"personal\",state=\"failing\"} 0");
	expect_line(text, "mboxmirror_account_state"
	    "{config=\"mboxmirror\",account=\"personal\",state=\"syncing\"} 0");
	expect_line(text, "mboxmirror_account_state"
	    "{config=\"mboxmirror\",account=\"work\",state=\"failing\"} 1");
	expect_line(text, "mboxmirror_account_state"
	    "{config=\"mboxmirror\",account=\"work\",state=\"ok\"} 0");
	/* Not sharded: shard 0 of 1. */
	expect_line(text, "mboxmirror_accounts_configured"
	    "{config=\"mboxmirror\",shard=\"0/1\"} 2");
	expect_line(text, "mboxmirror_syncs_in_flight"
	    "{config=\"mboxmirror\",shard=\"0/1\"} 1");
	expect_line(text, "mboxmirror_connections_open"
	    "{config=\"mboxmirror\",shard=\"0/1\"} 3");
	free(text);
}

/* Every family: HELP then TYPE, once, before its first sample; the
 * counters end in _total; no sample of a family after another began; every
 * sample's first label is the config. */
static void
test_structure(void **state)
{
	struct metrics_account a[1] = { account("x") };
	struct metrics_process p = { .config = "mboxmirror", .accounts = 1 };
	char *text, *line, *save = NULL, family[128] = "", seen[2048] = " ";
	const char *first_label = "{config=\"mboxmirror\",";
	char *copy;

	(void)state;
	text = format(&p, a, 1);
	copy = strdup(text);
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char name[128], type[32], key[132];

		if (sscanf(line, "# HELP %127s", name) == 1) {
			snprintf(key, sizeof key, " %s ", name);
			if (strstr(seen, key) != NULL)
				fail_msg("%s twice", name);
			assert_true(strlen(seen) + strlen(name) + 2 <
			    sizeof seen);
			strcat(seen, name);
			strcat(seen, " ");
			snprintf(family, sizeof family, "%s", name);
			continue;
		}
		if (sscanf(line, "# TYPE %127s %31s", name, type) == 2) {
			assert_string_equal(name, family);
			assert_true(strcmp(type, "gauge") == 0 ||
			    strcmp(type, "counter") == 0);
			if (strcmp(type, "counter") == 0)
				assert_non_null(strstr(name, "_total"));
			continue;
		}
		assert_int_equal(strncmp(line, family, strlen(family)), 0);
		if (strncmp(line + strlen(family), first_label,
		    strlen(first_label)) != 0)
			fail_msg("no config label first: %s", line);
	}
	assert_int_equal(count(text, "# HELP "), 12);
	assert_int_equal(count(text, "# TYPE "), 12);
	assert_int_equal(count(text, "# TYPE mboxmirror_messages_mirrored_total"
	    " counter\n"), 1);
	assert_int_equal(count(text, "# TYPE mboxmirror_account_state gauge\n"),
	    1);
	free(copy);
	free(text);
}

/* Backslash, double quote and line feed in a label value, the account's
 * or the config's, are escaped; UTF-8 goes as it is. */
static void
test_label_escaping(void **state)
{
	struct metrics_account a[1] = { account("we\"ird\\na\nme h\xc3\xa9") };
	struct metrics_process p = { .config = "c\"o\\n\nf\xc3\xa9",
		.accounts = 1 };
	char *text;

	(void)state;
	text = format(&p, a, 1);
	expect_line(text, "mboxmirror_consecutive_failures"
	    "{config=\"c\\\"o\\\\n\\nf\xc3\xa9\","
	    "account=\"we\\\"ird\\\\na\\nme h\xc3\xa9\"} 0");
	expect_line(text, "mboxmirror_accounts_configured"
	    "{config=\"c\\\"o\\\\n\\nf\xc3\xa9\",shard=\"0/1\"} 1");
	/* No raw line feed inside a sample. */
	expect_no_line(text, "me h\xc3\xa9\"} 0");
	assert_int_equal(count(text, "c\"o"), 0);
	free(text);
}

/* The state: syncing over failing over ok; the process's shard. */
static void
test_state_and_shard(void **state)
{
	struct metrics_account a[1] = { account("s") };
	struct metrics_process p = { .config = "shard2", .shard_k = 2,
		.shard_n = 3, .accounts = 1, .syncs_in_flight = 1,
		.connections_open = 1 };
	char *text;

	(void)state;
	assert_int_equal(metrics_account_state(&a[0]), METRICS_OK);
	a[0].failures = 1;
	assert_int_equal(metrics_account_state(&a[0]), METRICS_FAILING);
	a[0].syncing = true;
	assert_int_equal(metrics_account_state(&a[0]), METRICS_SYNCING);
	text = format(&p, a, 1);
	expect_line(text, "mboxmirror_account_state"
	    "{config=\"shard2\",account=\"s\",state=\"syncing\"} 1");
	expect_line(text, "mboxmirror_account_state"
	    "{config=\"shard2\",account=\"s\",state=\"failing\"} 0");
	expect_line(text, "mboxmirror_accounts_configured"
	    "{config=\"shard2\",shard=\"2/3\"} 1");
	free(text);
	/* No account at all: the process's figures still. */
	p.accounts = 0;
	text = format(&p, a, 0);
	expect_line(text, "mboxmirror_accounts_configured"
	    "{config=\"shard2\",shard=\"2/3\"} 0");
	assert_int_equal(count(text, "account=\""), 0);
	free(text);
}

/* Whether text has a sample of line's series: all of it before the
 * value, the space included. */
static bool
series_in(const char *text, const char *line)
{
	size_t len = (size_t)(strrchr(line, ' ') - line) + 1;

	for (const char *p = text; *p != '\0'; p++) {
		if (strncmp(p, line, len) == 0)
			return true;
		if ((p = strchr(p, '\n')) == NULL)
			break;
	}
	return false;
}

/* No sample of one text has its series (name and labels) in the other. */
static void
expect_no_common_series(const char *one, const char *other)
{
	char *copy = strdup(one), *line, *save = NULL;
	size_t samples = 0;

	assert_non_null(copy);
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			continue;
		samples++;
		if (series_in(other, line))
			fail_msg("both hold %s", line);
	}
	assert_true(samples > 0);
	free(copy);
}

/* Two configurations on one host, both unsharded and with an account of
 * the same name, hold no series in common; nor do two shards of one. */
static void
test_configs_never_share_series(void **state)
{
	struct metrics_account a[2] = { account("alice"), account("bob") };
	struct metrics_process one = { .config = "mboxmirror", .accounts = 2 };
	struct metrics_process two = { .config = "shard0", .accounts = 1 };
	struct metrics_process s0 = { .config = "big", .shard_k = 0,
		.shard_n = 2, .accounts = 1 };
	struct metrics_process s1 = { .config = "big", .shard_k = 1,
		.shard_n = 2, .accounts = 1 };
	char *t1, *t2;

	(void)state;
	t1 = format(&one, a, 2);
	t2 = format(&two, a, 1);
	/* The check can fail: the same config again shares them all. */
	assert_true(series_in(t1, "mboxmirror_consecutive_failures"
	    "{config=\"mboxmirror\",account=\"alice\"} 7"));
	expect_no_common_series(t1, t2);
	expect_no_common_series(t2, t1);
	free(t1);
	free(t2);
	t1 = format(&s0, &a[0], 1);
	t2 = format(&s1, &a[1], 1);
	expect_no_common_series(t1, t2);
	expect_no_common_series(t2, t1);
	free(t1);
	free(t2);
}

static void
test_config_name(void **state)
{
	static const char *const cases[][2] = {
		{ "/etc/mboxmirror/mboxmirror.ini", "mboxmirror" },
		{ "/etc/mboxmirror/shard0.ini", "shard0" },
		{ "/home/u/.config/mboxmirror/config.ini", "config" },
		{ "relative.ini", "relative" },
		{ "./a.b.ini", "a.b" },
		{ "/etc/other.conf", "other.conf" },
		{ "/etc/x.ini.bak", "x.ini.bak" },
		{ "/etc/x.INI", "x.INI" },
		/* Nothing would be left: the base name as it is. */
		{ "/etc/.ini", ".ini" },
		{ "we\"ird\n.ini", "we\"ird\n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *name = metrics_config_name(cases[i][0]);

		assert_non_null(name);
		assert_string_equal(name, cases[i][1]);
		free(name);
	}
}

static void
test_from_state(void **state)
{
	struct mailbox_state mb[2] = {
		{ .messages = 10, .mbox_size = 1000 },
		{ .messages = 5, .mbox_size = 4294967296ULL },
	};
	struct account_state st = { .mailboxes = mb, .n_mailboxes = 2,
		.last_attempt = 200, .last_success = 100, .failures = 2 };
	struct metrics_account a = account("f");

	(void)state;
	a.push_connected = true;
	metrics_from_state(&a, &st);
	assert_int_equal(a.messages, 15);
	assert_int_equal(a.bytes, 4294968296ULL);
	assert_int_equal(a.last_attempt, 200);
	assert_int_equal(a.last_success, 100);
	assert_int_equal(a.failures, 2);
	/* What the state does not hold is left alone. */
	assert_true(a.push_connected);
	assert_string_equal(a.name, "f");
	assert_int_equal(a.interval, 900);
}

/* The counters never go down within a process: a mailbox whose mirror
 * starts afresh (a new UIDVALIDITY, an mbox cut short by someone) takes
 * nothing back from them, and what is mirrored after it counts. */
static void
test_from_state_counters_never_decrease(void **state)
{
	struct mailbox_state mb[2] = {
		{ .messages = 10, .mbox_size = 1000 },
		{ .messages = 5, .mbox_size = 500 },
	};
	struct account_state st = { .mailboxes = mb, .n_mailboxes = 2 };
	struct metrics_account a = account("g");

	(void)state;
	metrics_from_state(&a, &st);
	assert_int_equal(a.messages, 15);
	assert_int_equal(a.bytes, 1500);
	/* The first mailbox starts afresh with 2 messages. */
	mb[0].messages = 2;
	mb[0].mbox_size = 200;
	metrics_from_state(&a, &st);
	assert_int_equal(a.messages, 15);
	assert_int_equal(a.bytes, 1500);
	/* Both grow: only the growth is added. */
	mb[0].messages = 6;
	mb[0].mbox_size = 600;
	mb[1].messages = 6;
	mb[1].mbox_size = 600;
	metrics_from_state(&a, &st);
	assert_int_equal(a.messages, 15 + 4 + 1);
	assert_int_equal(a.bytes, 1500 + 400 + 100);
	/* The same state again adds nothing. */
	metrics_from_state(&a, &st);
	assert_int_equal(a.messages, 20);
	assert_int_equal(a.bytes, 2000);
}

/* A run that started a mailbox afresh and filled it: its state sums went
 * down, yet what it appended counts. */
static void
test_run_counts_what_it_appended(void **state)
{
	struct mailbox_state mb[2] = {
		{ .messages = 10, .mbox_size = 1000 },
		{ .messages = 5, .mbox_size = 500 },
	};
	struct account_state st = { .mailboxes = mb, .n_mailboxes = 2 };
	struct metrics_account a = account("h");
	uint64_t messages, bytes;

	(void)state;
	metrics_from_state(&a, &st);
	/* The first mailbox mirrored afresh: 3 messages of 300 bytes. */
	messages = a.messages;
	bytes = a.bytes;
	mb[0].messages = 3;
	mb[0].mbox_size = 300;
	metrics_from_state(&a, &st);
	metrics_count_run(&a, messages, bytes, 3, 290);
	assert_int_equal(a.messages, 18);
	assert_int_equal(a.bytes, 1790);
	/* A run whose appends the state sums show already adds nothing. */
	messages = a.messages;
	bytes = a.bytes;
	mb[1].messages = 7;
	mb[1].mbox_size = 700;
	metrics_from_state(&a, &st);
	metrics_count_run(&a, messages, bytes, 2, 190);
	assert_int_equal(a.messages, 20);
	assert_int_equal(a.bytes, 1990);
	/* Nor does one that appended nothing. */
	metrics_count_run(&a, a.messages, a.bytes, 0, 0);
	assert_int_equal(a.messages, 20);
	assert_int_equal(a.bytes, 1990);
}

static void
test_write_gap(void **state)
{
	(void)state;
	assert_int_equal(metrics_write_gap(0), 1);
	assert_int_equal(metrics_write_gap(999), 1);
	assert_int_equal(metrics_write_gap(1000), 2);
	assert_int_equal(metrics_write_gap(10000), 11);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_state_and_shard),
		cmocka_unit_test(test_configs_never_share_series),
		cmocka_unit_test(test_config_name),
		cmocka_unit_test(test_from_state),
		cmocka_unit_test(test_from_state_counters_never_decrease),
		cmocka_unit_test(test_run_counts_what_it_appended),
		cmocka_unit_test(test_write_gap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
