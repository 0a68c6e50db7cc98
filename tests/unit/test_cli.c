/*
 * cli: every mode and option combination that is allowed, and each kind of
 * usage error as one clear line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

#define MAX_ARGS 16

/* Parses a NULL-terminated list of arguments after "mboxmirror". */
static int
parse(struct cli_options *opts, char **error_r, ...)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0, ret;
	const char *arg;
	va_list ap;

	argv[argc++] = strdup("mboxmirror");
	va_start(ap, error_r);
	while ((arg = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS)
		argv[argc++] = strdup(arg);
	va_end(ap);
	argv[argc] = NULL;
	ret = cli_parse(argc, argv, opts, error_r);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return ret;
}

static void
expect_usage_error(const char *what, ...)
{
	struct cli_options opts;
	char *argv[MAX_ARGS + 1], *error = NULL;
	const char *arg;
	int argc = 0;
	va_list ap;

	argv[argc++] = strdup("mboxmirror");
	va_start(ap, what);
	while ((arg = va_arg(ap, const char *)) != NULL && argc < MAX_ARGS)
		argv[argc++] = strdup(arg);
	va_end(ap);
	argv[argc] = NULL;
	assert_int_equal(cli_parse(argc, argv, &opts, &error), -1);
	assert_non_null(error);
	if (strstr(error, what) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", error, what);
	assert_null(strchr(error, '\n'));
	/* Nothing is left allocated in opts after a failure. */
	assert_null(opts.config_path);
	assert_null(opts.accounts);
	assert_null(opts.probe_account);
	free(error);
	cli_free(&opts);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
}

static void
test_no_arguments(void **state)
{
	struct cli_options opts;
	char *error = NULL;

	(void)state;
	assert_int_equal(parse(&opts, &error, NULL), 0);
	assert_null(error);
	assert_int_equal(opts.mode, CLI_MODE_DAEMON);
	assert_null(opts.config_path);
	assert_int_equal(opts.n_accounts, 0);
	assert_int_equal(opts.verbosity, CLI_VERBOSITY_CONFIG);
	assert_false(opts.json);
	cli_free(&opts);
}

static void
test_once_with_accounts(void **state)
{
	struct cli_options opts;
	char *error = NULL;

	(void)state;
	assert_int_equal(parse(&opts, &error, "-c", "/etc/x.ini", "--once",
	    "-a", "personal", "--account", "work", "-a", "personal",
	    "--account=extra", "-v", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_ONCE);
	assert_string_equal(opts.config_path, "/etc/x.ini");
	/* Repeats are dropped, order kept. */
	assert_int_equal(opts.n_accounts, 3);
	assert_string_equal(opts.accounts[0], "personal");
	assert_string_equal(opts.accounts[1], "work");
	assert_string_equal(opts.accounts[2], "extra");
	assert_int_equal(opts.verbosity, CLI_VERBOSITY_DEBUG);
	assert_true(cli_account_selected(opts.accounts, opts.n_accounts,
	    "work"));
	assert_false(cli_account_selected(opts.accounts, opts.n_accounts,
	    "Work"));
	assert_false(cli_account_selected(opts.accounts, opts.n_accounts,
	    "other"));
	cli_free(&opts);
	assert_null(opts.accounts);
	assert_int_equal(opts.n_accounts, 0);
	/* No -a: every account. */
	assert_true(cli_account_selected(opts.accounts, opts.n_accounts,
	    "other"));
}

static void
test_daemon_quiet_long_config(void **state)
{
	struct cli_options opts;
	char *error = NULL;

	(void)state;
	assert_int_equal(parse(&opts, &error, "--config=/c.ini", "--quiet",
	    "-aone", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_DAEMON);
	assert_string_equal(opts.config_path, "/c.ini");
	assert_int_equal(opts.verbosity, CLI_VERBOSITY_QUIET);
	assert_int_equal(opts.n_accounts, 1);
	assert_string_equal(opts.accounts[0], "one");
	cli_free(&opts);
}

static void
test_other_modes(void **state)
{
	struct cli_options opts;
	char *error = NULL;

	(void)state;
	assert_int_equal(parse(&opts, &error, "--check-config", "-a", "x",
	    NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_CHECK_CONFIG);
	assert_int_equal(opts.n_accounts, 1);
	cli_free(&opts);

	assert_int_equal(parse(&opts, &error, "--probe", "personal", "-v",
	    NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_PROBE);
	assert_string_equal(opts.probe_account, "personal");
	cli_free(&opts);

	assert_int_equal(parse(&opts, &error, "--status", "--json", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_STATUS);
	assert_true(opts.json);
	cli_free(&opts);

	assert_int_equal(parse(&opts, &error, "--verify", "-a", "x", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_VERIFY);
	assert_false(opts.deep);
	assert_false(opts.json);
	assert_int_equal(opts.n_accounts, 1);
	cli_free(&opts);

	assert_int_equal(parse(&opts, &error, "--deep", "--json", "--verify",
	    "--shard", "1/3", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_VERIFY);
	assert_true(opts.deep);
	assert_true(opts.json);
	assert_int_equal(opts.shard.k, 1);
	assert_int_equal(opts.shard.n, 3);
	cli_free(&opts);

	assert_int_equal(parse(&opts, &error, "--version", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_VERSION);
	cli_free(&opts);

	assert_int_equal(parse(&opts, &error, "-h", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_HELP);
	cli_free(&opts);

	/* The same mode twice is harmless. */
	assert_int_equal(parse(&opts, &error, "--once", "--once", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_ONCE);
	cli_free(&opts);
}

static void
test_unknown_options(void **state)
{
	(void)state;
	expect_usage_error("unknown or ambiguous option '--frobnicate'",
	    "--frobnicate", NULL);
	expect_usage_error("unknown or ambiguous option '--bogus'",
	    "--bogus=1", NULL);
	expect_usage_error("unknown option '-x'", "-x", NULL);
}

static void
test_missing_arguments(void **state)
{
	(void)state;
	expect_usage_error("option '-c' needs an argument", "-c", NULL);
	expect_usage_error("option '--config' needs an argument", "--config",
	    NULL);
	expect_usage_error("option '--probe' needs an argument", "--probe",
	    NULL);
	expect_usage_error("option '-a' needs an argument", "--once", "-a",
	    NULL);
	expect_usage_error("--probe needs an account name", "--probe", "",
	    NULL);
	expect_usage_error("-c/--config needs a file name", "-c", "", NULL);
}

static void
test_extra_argument(void **state)
{
	(void)state;
	expect_usage_error("unexpected argument 'personal'", "--once",
	    "personal", NULL);
}

static void
test_exclusive_modes(void **state)
{
	(void)state;
	expect_usage_error("--once and --probe cannot be used together",
	    "--once", "--probe", "x", NULL);
	expect_usage_error("--check-config and --status cannot be used "
	    "together", "--check-config", "--status", NULL);
	expect_usage_error("--version and --help cannot be used together",
	    "--version", "--help", NULL);
	expect_usage_error("--probe given twice", "--probe", "a", "--probe",
	    "b", NULL);
}

static void
test_bad_combinations(void **state)
{
	(void)state;
	expect_usage_error("-a/--account cannot be used with --probe",
	    "-a", "x", "--probe", "y", NULL);
	expect_usage_error("-v/--verbose and -q/--quiet cannot be used "
	    "together", "-v", "-q", NULL);
	expect_usage_error("--json works only with --status or --verify",
	    "--json", NULL);
	expect_usage_error("--json works only with --status or --verify",
	    "--once", "--json", NULL);
	expect_usage_error("--deep works only with --verify", "--deep", NULL);
	expect_usage_error("--deep works only with --verify", "--status",
	    "--deep", NULL);
	expect_usage_error("--verify and --list cannot be used together",
	    "--verify", "--list", NULL);
	expect_usage_error("-c/--config given twice", "-c", "a", "-c", "b",
	    NULL);
}

/* --shard K/N with every mode that takes accounts; 0-based, K < N. */
static void
test_shard(void **state)
{
	static const char *const modes[] = { "--once", "--check-config",
		"--list", "--status" };
	struct cli_options opts;
	char *error = NULL;

	(void)state;
	assert_int_equal(parse(&opts, &error, "--shard", "2/3", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_DAEMON);
	assert_int_equal(opts.shard.k, 2);
	assert_int_equal(opts.shard.n, 3);
	cli_free(&opts);
	assert_int_equal(opts.shard.n, 0);
	for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
		assert_int_equal(parse(&opts, &error, modes[i], "--shard=0/1",
		    "-a", "x", NULL), 0);
		assert_int_equal(opts.shard.k, 0);
		assert_int_equal(opts.shard.n, 1);
		assert_int_equal(opts.n_accounts, 1);
		cli_free(&opts);
	}
	/* Without --shard: not sharded (the config may say otherwise). */
	assert_int_equal(parse(&opts, &error, "--once", NULL), 0);
	assert_int_equal(opts.shard.n, 0);
	cli_free(&opts);

	expect_usage_error("--shard '3/3' needs K below N", "--shard", "3/3",
	    NULL);
	expect_usage_error("--shard '1' is not K/N", "--once", "--shard", "1",
	    NULL);
	expect_usage_error("--shard '0/0' needs N from 1", "--shard", "0/0",
	    NULL);
	expect_usage_error("--shard '-1/2' is not K/N", "--shard", "-1/2",
	    NULL);
	expect_usage_error("--shard given twice", "--shard", "0/2", "--shard",
	    "1/2", NULL);
	expect_usage_error("--shard cannot be used with --probe", "--probe",
	    "x", "--shard", "0/2", NULL);
	expect_usage_error("--shard cannot be used with --version",
	    "--shard", "0/2", "--version", NULL);
	expect_usage_error("option '--shard' needs an argument", "--shard",
	    NULL);
}

static void
test_restore(void **state)
{
	struct cli_options opts;
	char *error = NULL;

	(void)state;
	assert_int_equal(parse(&opts, &error, "--restore", "old", "--to",
	    "new", "--mailbox", "Archive/*", "--mailbox", "INBOX",
	    "--dry-run", NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_RESTORE);
	assert_string_equal(opts.restore_from, "old");
	assert_string_equal(opts.restore_to, "new");
	assert_int_equal(opts.n_restore_mailboxes, 2);
	assert_string_equal(opts.restore_mailboxes[0], "Archive/*");
	assert_string_equal(opts.restore_mailboxes[1], "INBOX");
	assert_true(opts.dry_run);
	cli_free(&opts);
	assert_null(opts.restore_from);

	/* Into the same account: the disaster-recovery case. */
	assert_int_equal(parse(&opts, &error, "--to", "a", "--restore", "a",
	    NULL), 0);
	assert_int_equal(opts.mode, CLI_MODE_RESTORE);
	assert_false(opts.dry_run);
	assert_int_equal(opts.n_restore_mailboxes, 0);
	cli_free(&opts);
	assert_string_equal(cli_mode_option(CLI_MODE_RESTORE), "--restore");
}

static void
test_restore_usage_errors(void **state)
{
	(void)state;
	expect_usage_error("--restore needs --to NAME2", "--restore", "a",
	    NULL);
	expect_usage_error("--to works only with --restore", "--to", "a",
	    NULL);
	expect_usage_error("--mailbox works only with --restore", "--once",
	    "--mailbox", "INBOX", NULL);
	expect_usage_error("--dry-run works only with --restore",
	    "--dry-run", NULL);
	expect_usage_error("--restore given twice", "--restore", "a",
	    "--restore", "b", "--to", "c", NULL);
	expect_usage_error("--to given twice", "--restore", "a", "--to", "b",
	    "--to", "c", NULL);
	expect_usage_error("--restore needs an account name", "--restore",
	    "", "--to", "c", NULL);
	expect_usage_error("--to needs an account name", "--restore", "a",
	    "--to", "", NULL);
	expect_usage_error("--mailbox needs a pattern", "--restore", "a",
	    "--to", "b", "--mailbox", "", NULL);
	expect_usage_error("--once and --restore cannot be used together",
	    "--once", "--restore", "a", "--to", "b", NULL);
	expect_usage_error("-a/--account cannot be used with --restore",
	    "-a", "x", "--restore", "a", "--to", "b", NULL);
	expect_usage_error("--shard cannot be used with --restore",
	    "--shard", "0/2", "--restore", "a", "--to", "b", NULL);
	expect_usage_error("option '--to' needs an argument", "--restore",
	    "a", "--to", NULL);
}

static void
test_usage_text(void **state)
{
	static const char *const must[] = { "--config FILE", "--once",
		"--account NAME", "--verbose", "--quiet", "--check-config",
		"--probe NAME", "--status", "--json", "--version", "--help",
		"--verify", "--deep", "1 a problem was found",
		"--shard K/N", "[general] shard",
		"--restore NAME", "--to NAME2", "--mailbox PATTERN",
		"--dry-run",
		"64 usage error", "78 configuration error", "0 success" };
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	(void)state;
	fp = open_memstream(&text, &len);
	assert_non_null(fp);
	cli_usage(fp);
	assert_int_equal(fclose(fp), 0);
	for (size_t i = 0; i < sizeof must / sizeof *must; i++)
		if (strstr(text, must[i]) == NULL)
			fail_msg("help lacks \"%s\"", must[i]);
	free(text);
	assert_string_equal(cli_mode_option(CLI_MODE_STATUS), "--status");
	assert_string_equal(cli_mode_option(CLI_MODE_VERIFY), "--verify");
	assert_string_equal(cli_mode_option(CLI_MODE_DAEMON), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_arguments),
		cmocka_unit_test(test_once_with_accounts),
		cmocka_unit_test(test_daemon_quiet_long_config),
		cmocka_unit_test(test_other_modes),
		cmocka_unit_test(test_unknown_options),
		cmocka_unit_test(test_missing_arguments),
		cmocka_unit_test(test_extra_argument),
		cmocka_unit_test(test_exclusive_modes),
		cmocka_unit_test(test_bad_combinations),
		cmocka_unit_test(test_shard),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_restore_usage_errors),
		cmocka_unit_test(test_usage_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
