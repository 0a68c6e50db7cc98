#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum {
	OPT_ONCE = 256,
	OPT_CHECK_CONFIG,
	OPT_PROBE,
	OPT_LIST,
	OPT_STATUS,
	OPT_JSON,
	OPT_VERIFY,
	OPT_DEEP,
	OPT_VERSION,
	OPT_SHARD,
	OPT_RESTORE,
	OPT_TO,
	OPT_MAILBOX,
	OPT_DRY_RUN,
};

static const struct option long_options[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "account", required_argument, NULL, 'a' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
	{ "probe", required_argument, NULL, OPT_PROBE },
	{ "list", no_argument, NULL, OPT_LIST },
	{ "status", no_argument, NULL, OPT_STATUS },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "deep", no_argument, NULL, OPT_DEEP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "shard", required_argument, NULL, OPT_SHARD },
	{ "restore", required_argument, NULL, OPT_RESTORE },
	{ "to", required_argument, NULL, OPT_TO },
	{ "mailbox", required_argument, NULL, OPT_MAILBOX },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};


const char *
cli_mode_option(enum cli_mode mode)
{
	switch (mode) {
	case CLI_MODE_ONCE:
		return "--once";
	case CLI_MODE_CHECK_CONFIG:
		return "--check-config";
	case CLI_MODE_PROBE:
		return "--probe";
	case CLI_MODE_LIST:
		return "--list";
	case CLI_MODE_STATUS:
		return "--status";
	case CLI_MODE_VERIFY:
		return "--verify";
	case CLI_MODE_RESTORE:
		return "--restore";
	case CLI_MODE_VERSION:
		return "--version";
	case CLI_MODE_HELP:
		return "--help";
	case CLI_MODE_DAEMON:
		break;
	}
	return "";
}

static int
set_mode(struct cli_options *opts, enum cli_mode mode, char **error_r)
{
	if (opts->mode != CLI_MODE_DAEMON && opts->mode != mode)
		return log_set_error(error_r, "%s and %s cannot be used together",
		    cli_mode_option(opts->mode), cli_mode_option(mode));
	opts->mode = mode;
	return 0;
}

static int
add_account(struct cli_options *opts, const char *name, char **error_r)
{
	char **v;

	if (*name == '\0')
		return log_set_error(error_r, "-a needs an account name");
	if (opts->n_accounts > 0 && cli_account_selected(opts->accounts,
	    opts->n_accounts, name))
		return 0;
	v = reallocarray(opts->accounts, opts->n_accounts + 1, sizeof *v);
	if (v == NULL)
		return log_set_error(error_r, "out of memory");
	opts->accounts = v;
	if ((v[opts->n_accounts] = strdup(name)) == NULL)
		return log_set_error(error_r, "out of memory");
	opts->n_accounts++;
	return 0;
}

/* *dst = a copy of the account name arg of option what (once only). */
static int
set_name(char **dst, const char *what, const char *arg, char **error_r)
{
	if (*dst != NULL)
		return log_set_error(error_r, "%s given twice", what);
	if (*arg == '\0')
		return log_set_error(error_r, "%s needs an account name", what);
	if ((*dst = strdup(arg)) == NULL)
		return log_set_error(error_r, "out of memory");
	return 0;
}

static int
add_mailbox_pattern(struct cli_options *opts, const char *pattern,
    char **error_r)
{
	char **v;

	if (*pattern == '\0')
		return log_set_error(error_r, "--mailbox needs a pattern");
	v = reallocarray(opts->restore_mailboxes,
	    opts->n_restore_mailboxes + 1, sizeof *v);
	if (v == NULL)
		return log_set_error(error_r, "out of memory");
	opts->restore_mailboxes = v;
	if ((v[opts->n_restore_mailboxes] = strdup(pattern)) == NULL)
		return log_set_error(error_r, "out of memory");
	opts->n_restore_mailboxes++;
	return 0;
}

/* The options that belong to --restore are given with it only. */
static int
check_restore(const struct cli_options *opts, char **error_r)
{
	if (opts->mode == CLI_MODE_RESTORE) {
		if (opts->restore_to == NULL)
			return log_set_error(error_r,
			    "--restore needs --to NAME2");
		return 0;
	}
	if (opts->restore_to != NULL)
		return log_set_error(error_r, "--to works only with --restore");
	if (opts->n_restore_mailboxes > 0)
		return log_set_error(error_r,
		    "--mailbox works only with --restore");
	if (opts->dry_run)
		return log_set_error(error_r,
		    "--dry-run works only with --restore");
	return 0;
}

static int
set_shard(struct cli_options *opts, const char *text, char **error_r)
{
	const char *problem;

	if (opts->shard.n != 0)
		return log_set_error(error_r, "--shard given twice");
	if (shard_parse(text, &opts->shard, &problem) == -1)
		return log_set_error(error_r, "--shard '%.64s' %s", text,
		    problem);
	return 0;
}

static int
parse_options(int argc, char **argv, struct cli_options *opts,
    char **error_r)
{
	bool verbose = false, quiet = false;
	int c;

	/* Reset getopt fully, so the parser can run more than once. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:a:vqh", long_options,
	    NULL)) != -1) {
		switch (c) {
		case 'c':
			if (opts->config_path != NULL)
				return log_set_error(error_r,
				    "-c/--config given twice");
			if (*optarg == '\0')
				return log_set_error(error_r,
				    "-c/--config needs a file name");
			if ((opts->config_path = strdup(optarg)) == NULL)
				return log_set_error(error_r, "out of memory");
			break;
		case 'a':
			if (add_account(opts, optarg, error_r) == -1)
				return -1;
			break;
		case 'v':
			verbose = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			if (set_mode(opts, CLI_MODE_HELP, error_r) == -1)
				return -1;
			break;
		case OPT_ONCE:
			if (set_mode(opts, CLI_MODE_ONCE, error_r) == -1)
				return -1;
			break;
		case OPT_CHECK_CONFIG:
			if (set_mode(opts, CLI_MODE_CHECK_CONFIG, error_r) == -1)
				return -1;
			break;
		case OPT_PROBE:
			if (opts->probe_account != NULL)
				return log_set_error(error_r,
				    "--probe given twice");
			if (set_mode(opts, CLI_MODE_PROBE, error_r) == -1)
				return -1;
			if (*optarg == '\0')
				return log_set_error(error_r,
				    "--probe needs an account name");
			if ((opts->probe_account = strdup(optarg)) == NULL)
				return log_set_error(error_r, "out of memory");
			break;
		case OPT_LIST:
			if (set_mode(opts, CLI_MODE_LIST, error_r) == -1)
				return -1;
			break;
		case OPT_STATUS:
			if (set_mode(opts, CLI_MODE_STATUS, error_r) == -1)
				return -1;
			break;
		case OPT_JSON:
			opts->json = true;
			break;
		case OPT_VERIFY:
			if (set_mode(opts, CLI_MODE_VERIFY, error_r) == -1)
				return -1;
			break;
		case OPT_DEEP:
			opts->deep = true;
			break;
		case OPT_VERSION:
			if (set_mode(opts, CLI_MODE_VERSION, error_r) == -1)
				return -1;
			break;
		case OPT_SHARD:
			if (set_shard(opts, optarg, error_r) == -1)
				return -1;
			break;
		case OPT_RESTORE:
			if (set_mode(opts, CLI_MODE_RESTORE, error_r) == -1 ||
			    set_name(&opts->restore_from, "--restore", optarg,
			    error_r) == -1)
				return -1;
			break;
		case OPT_TO:
			if (set_name(&opts->restore_to, "--to", optarg,
			    error_r) == -1)
				return -1;
			break;
		case OPT_MAILBOX:
			if (add_mailbox_pattern(opts, optarg, error_r) == -1)
				return -1;
			break;
		case OPT_DRY_RUN:
			opts->dry_run = true;
			break;
		case ':':
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				return log_set_error(error_r,
				    "option '%s' needs an argument",
				    argv[optind - 1]);
			return log_set_error(error_r,
			    "option '-%c' needs an argument", optopt);
		default:
			if (optopt != 0)
				return log_set_error(error_r,
				    "unknown option '-%c'", optopt);
			return log_set_error(error_r,
			    "unknown or ambiguous option '%.*s'",
			    (int)strcspn(argv[optind - 1], "="),
			    argv[optind - 1]);
		}
	}
	if (optind < argc)
		return log_set_error(error_r, "unexpected argument '%s'",
		    argv[optind]);
	if (verbose && quiet)
		return log_set_error(error_r,
		    "-v/--verbose and -q/--quiet cannot be used together");
	opts->verbosity = verbose ? CLI_VERBOSITY_DEBUG :
	    quiet ? CLI_VERBOSITY_QUIET : CLI_VERBOSITY_CONFIG;
	if (opts->json && opts->mode != CLI_MODE_STATUS &&
	    opts->mode != CLI_MODE_VERIFY)
		return log_set_error(error_r,
		    "--json works only with --status or --verify");
	if (opts->deep && opts->mode != CLI_MODE_VERIFY)
		return log_set_error(error_r, "--deep works only with --verify");
	if (check_restore(opts, error_r) == -1)
		return -1;
	if ((opts->n_accounts > 0 || opts->shard.n != 0) &&
	    (opts->mode == CLI_MODE_PROBE || opts->mode == CLI_MODE_RESTORE ||
	    opts->mode == CLI_MODE_VERSION || opts->mode == CLI_MODE_HELP))
		return log_set_error(error_r, "%s cannot be used with %s",
		    opts->n_accounts > 0 ? "-a/--account" : "--shard",
		    cli_mode_option(opts->mode));
	return 0;
}

int
cli_parse(int argc, char **argv, struct cli_options *opts, char **error_r)
{
	memset(opts, 0, sizeof *opts);
	*error_r = NULL;
	if (parse_options(argc, argv, opts, error_r) == 0)
		return 0;
	cli_free(opts);
	if (*error_r == NULL)
		*error_r = strdup("out of memory");
	return -1;
}

void
cli_usage(FILE *fp)
{
	fputs(
"usage: mboxmirror [-c FILE] [--once] [--shard K/N] [-a NAME]... [-v|-q]\n"
"       mboxmirror [-c FILE] --check-config [--shard K/N] [-a NAME]...\n"
"       mboxmirror [-c FILE] --probe NAME\n"
"       mboxmirror [-c FILE] --list [--shard K/N] [-a NAME]...\n"
"       mboxmirror [-c FILE] --status [--json] [--shard K/N] [-a NAME]...\n"
"       mboxmirror [-c FILE] --verify [--deep] [--json] [--shard K/N]\n"
"                  [-a NAME]...\n"
"       mboxmirror [-c FILE] --restore NAME --to NAME2 [--mailbox PATTERN]...\n"
"                  [--dry-run]\n"
"       mboxmirror --version | --help\n"
"\n"
"Keeps crash-safe mbox mirrors of IMAP accounts.\n"
"\n"
"  -c, --config FILE   read the configuration from FILE (default below)\n"
"      --once          sync the selected accounts once, then exit\n"
"  -a, --account NAME  only this account (repeatable)\n"
"      --shard K/N     only the accounts of shard K of N (0 <= K < N), by a\n"
"                      hash of the account name; overrides [general] shard\n"
"  -v, --verbose       log debug messages\n"
"  -q, --quiet         log errors only\n"
"      --check-config  validate the config, print one line per account\n"
"      --probe NAME    show what the account's server offers, then log out\n"
"      --list          show each server's mailboxes: which are mirrored, to\n"
"                      which file, and why (the mailboxes/exclude patterns)\n"
"      --status        show each account's last sync\n"
"      --verify        check that each mirror is whole: every message the\n"
"                      server has is in its mbox once, intact; changes nothing\n"
"      --deep          with --verify: also download every message again and\n"
"                      compare it with the mirror's bytes (slow)\n"
"      --json          with --status or --verify: print JSON\n"
"      --restore NAME  upload the mirror of account NAME to the server of\n"
"                      the account given with --to (NAME itself allowed)\n"
"      --to NAME2      with --restore: the account to upload into\n"
"      --mailbox PATTERN  with --restore: only mailboxes matching PATTERN\n"
"                      (as in the config's mailboxes; repeatable)\n"
"      --dry-run       with --restore: say what would be uploaded, change\n"
"                      nothing\n"
"      --version       print the version\n"
"  -h, --help          print this help\n"
"\n"
"Without --once, --check-config, --probe, --list, --status, --verify or\n"
"--restore, runs in the foreground until SIGTERM or SIGINT; SIGHUP reloads the\n"
"config.\n"
"\n"
"Default configuration: $MBOXMIRROR_CONFIG, else\n"
"$XDG_CONFIG_HOME/mboxmirror/config.ini (~/.config/...) if it exists, else\n"
"/etc/mboxmirror/mboxmirror.ini.\n"
"\n"
"Exit status: 0 success; 1 an account failed (--once, --probe, --list), or\n"
"--restore left messages not uploaded;\n"
"--verify: 0 every mirror is whole, 1 a problem was found, 2 nothing wrong was\n"
"found but a check could not be made (server, state);\n"
"64 usage error; 78 configuration error.\n", fp);
}

bool
cli_account_selected(char *const *names, size_t n, const char *name)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

void
cli_free(struct cli_options *opts)
{
	for (size_t i = 0; i < opts->n_accounts; i++)
		free(opts->accounts[i]);
	free(opts->accounts);
	free(opts->config_path);
	free(opts->probe_account);
	free(opts->restore_from);
	free(opts->restore_to);
	for (size_t i = 0; i < opts->n_restore_mailboxes; i++)
		free(opts->restore_mailboxes[i]);
	free(opts->restore_mailboxes);
	memset(opts, 0, sizeof *opts);
}
