/*
 * cli: the command line (DESIGN.md section 1) -> struct cli_options.
 * No side effects: nothing is printed and nothing exits here.
 */
#ifndef MM_CLI_H
#define MM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "shard.h"

/* sysexits.h EX_USAGE: the exit status for a usage error. */
#define CLI_EXIT_USAGE 64

/* What to do; exactly one per run. */
enum cli_mode {
	CLI_MODE_DAEMON = 0,	/* no mode option: run in the foreground */
	CLI_MODE_ONCE,		/* --once */
	CLI_MODE_CHECK_CONFIG,	/* --check-config */
	CLI_MODE_PROBE,		/* --probe NAME */
	CLI_MODE_LIST,		/* --list */
	CLI_MODE_STATUS,	/* --status [--json] */
	CLI_MODE_VERIFY,	/* --verify [--deep] [--json] */
	CLI_MODE_RESTORE,	/* --restore NAME --to NAME2 */
	CLI_MODE_VERSION,	/* --version */
	CLI_MODE_HELP,		/* -h, --help */
};

enum cli_verbosity {
	CLI_VERBOSITY_CONFIG = 0,	/* the config's log_level */
	CLI_VERBOSITY_DEBUG,		/* -v */
	CLI_VERBOSITY_QUIET,		/* -q: errors only */
};

struct cli_options {
	enum cli_mode mode;
	char *config_path;		/* -c; NULL: config_default_path() */
	char **accounts;		/* -a, in order, without repeats */
	size_t n_accounts;
	char *probe_account;		/* --probe NAME */
	enum cli_verbosity verbosity;
	bool json;			/* --json (with --status or --verify) */
	bool deep;			/* --deep (with --verify only) */
	struct shard shard;		/* --shard K/N; n == 0: not given */
	char *restore_from;		/* --restore NAME */
	char *restore_to;		/* --to NAME2 */
	char **restore_mailboxes;	/* --mailbox PATTERN, in order */
	size_t n_restore_mailboxes;
	bool dry_run;			/* --dry-run (with --restore only) */
};

/*
 * Parses argv (which getopt may permute).  Returns 0 and fills opts, or -1
 * and a malloc'ed one-line message without a trailing newline in *error_r
 * (opts is then empty).  Usage errors: unknown options, missing arguments,
 * extra arguments, two modes at once, -a or --shard with a mode that
 * takes no account list (--probe, --restore, --version, --help), -v with
 * -q, --json without --status or --verify, --deep without --verify, -c or
 * --shard given twice, a --shard that is not K/N with 0 <= K < N
 * (shard.h), --restore without --to, --to, --mailbox or --dry-run without
 * --restore, --restore or --to given twice, an empty --mailbox pattern.
 * Always call cli_free() afterwards.
 */
int cli_parse(int argc, char **argv, struct cli_options *opts,
    char **error_r);

/* Prints the help text: every option on one line, then the exit statuses. */
void cli_usage(FILE *fp);

/* The option that selects mode ("--once"); "" for the daemon mode. */
const char *cli_mode_option(enum cli_mode mode);

/* Whether the n account names given with -a (cli_options' accounts)
 * select the account name: every account when there are none. */
bool cli_account_selected(char *const *names, size_t n, const char *name);

/* Frees what cli_parse() allocated and empties opts. */
void cli_free(struct cli_options *opts);

#endif
