/*
 * main: options, the config, and the dispatch to the mode asked for.
 * Exit statuses follow sysexits.h (DESIGN.md section 1).
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "list.h"
#include "log.h"
#include "restore.h"
#include "run.h"
#include "status.h"
#include "verify.h"

static void
usage_error(const char *message)
{
	fprintf(stderr, "mboxmirror: %s\n", message);
	fprintf(stderr, "try 'mboxmirror --help'\n");
}

static void
apply_verbosity(enum cli_verbosity verbosity, enum log_level fallback)
{
	switch (verbosity) {
	case CLI_VERBOSITY_DEBUG:
		log_set_level(LOGL_DEBUG);
		break;
	case CLI_VERBOSITY_QUIET:
		log_set_level(LOGL_ERROR);
		break;
	case CLI_VERBOSITY_CONFIG:
		log_set_level(fallback);
		break;
	}
}

static void
print_quoted_list(const struct str_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		printf("%s\"%s\"", i == 0 ? "" : ",", l->v[i]);
}

static const char *
tls_description(enum tls_mode mode)
{
	switch (mode) {
	case TLS_IMPLICIT:
		return "implicit TLS";
	case TLS_STARTTLS:
		return "STARTTLS";
	case TLS_NONE:
		return "no TLS (plaintext)";
	}
	return "?";
}

/*
 * --check-config: the files the selected accounts name must be usable (a
 * sync would fail without them); then one line per selected account.
 */
static int
check_config(const struct config *config, const struct cli_options *opts,
    size_t n_all)
{
	char shard[24];
	char every[16];
	size_t n = 0, problems = 0;

	for (size_t i = 0; i < config->n_accounts; i++)
		if (cli_account_selected(opts->accounts, opts->n_accounts,
		    config->accounts[i].name))
			problems += config_check_account_files(config,
			    &config->accounts[i]);
	if (problems > 0)
		return CONFIG_EXIT_STATUS;
	for (size_t i = 0; i < config->n_accounts; i++) {
		const struct account *a = &config->accounts[i];
		bool v6 = strchr(a->host, ':') != NULL;

		if (!cli_account_selected(opts->accounts, opts->n_accounts,
		    a->name))
			continue;
		printf("%s: %s @ %s%s%s:%u %s%s, auth %s, every %s, %s, "
		    "mailboxes ", a->name, a->user, v6 ? "[" : "", a->host,
		    v6 ? "]" : "", a->port,
		    tls_description(a->tls), a->has_pin ? " (pinned key)" : "",
		    auth_method_name(a->auth),
		    config_format_duration(a->interval, every, sizeof every),
		    a->idle ? "idle" : "no idle");
		print_quoted_list(&a->mailboxes);
		if (a->exclude.n > 0) {
			printf(" minus ");
			print_quoted_list(&a->exclude);
		}
		printf(" -> %s\n", a->output);
		n++;
	}
	printf("state: %s (%s)\n", config->state_dir, config->state_dir_origin);
	/* Which file was read: without -c that depends on the environment. */
	if (config->shard.n != 0)
		printf("configuration OK: %zu account%s (shard %s; %zu in all) "
		    "in %s\n", n, n == 1 ? "" : "s", shard_format(
		    &config->shard, shard, sizeof shard), n_all, config->path);
	else
		printf("configuration OK: %zu account%s in %s\n", n,
		    n == 1 ? "" : "s", config->path);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int refuse_foreign_state(const struct config *);

/* Says so when config has no account name; true then. */
static bool
no_account(const struct config *config, const char *name, const char *path)
{
	if (config_find_account(config, name) != NULL)
		return false;
	fprintf(stderr, "mboxmirror: no account named '%s' in %s\n", name,
	    path);
	return true;
}

/* --restore, under the same root rule as a sync (it writes the target
 * account's state: its lock and the journal). */
static int
run_restore(const struct config *config, const struct cli_options *opts)
{
	struct restore_options o = {
		.from = opts->restore_from,
		.to = opts->restore_to,
		.mailboxes = opts->restore_mailboxes,
		.n_mailboxes = opts->n_restore_mailboxes,
		.dry_run = opts->dry_run,
	};

	if (!opts->dry_run && refuse_foreign_state(config) != 0)
		return 1;
	return restore_run(config, &o);
}

/*
 * Root with a state directory that belongs to someone else (the service's
 * /var/lib/mboxmirror, say, after "sudo mboxmirror --once"): the files a
 * sync writes there would be root's, 0600, and the owner could no longer
 * read its own state.  0 to go on, -1 after saying why not.
 */
static int
refuse_foreign_state(const struct config *config)
{
	struct stat st;

	if (geteuid() != 0 || stat(config->state_dir, &st) != 0 ||
	    st.st_uid == 0)
		return 0;
	log_error("the state directory %s belongs to uid %lu: as root, this "
	    "run would leave files there that its owner cannot read; run "
	    "mboxmirror as that user (for the service's state: systemctl "
	    "start mboxmirror-once.service)", config->state_dir,
	    (unsigned long)st.st_uid);
	return -1;
}

/*
 * The shard: --shard, else [general] shard.  Every -a must name an account
 * of the file, and one of the shard; then the config keeps only the
 * shard's accounts, so no mode touches another's.  --probe looks at any
 * account: it writes nothing.  0, or a usage error's exit status.
 */
static int
select_shard(struct config *config, const struct cli_options *opts,
    const char *path)
{
	struct shard shard = opts->shard.n != 0 ? opts->shard : config->shard;
	char buf[24];

	for (size_t i = 0; i < opts->n_accounts; i++) {
		if (config_find_account(config, opts->accounts[i]) == NULL) {
			fprintf(stderr, "mboxmirror: no account named '%s' in "
			    "%s\n", opts->accounts[i], path);
			return CLI_EXIT_USAGE;
		}
		if (!shard_takes(&shard, opts->accounts[i])) {
			fprintf(stderr, "mboxmirror: account '%s' is in shard "
			    "%u/%u, not in this process's %s\n",
			    opts->accounts[i], shard_of(opts->accounts[i],
			    shard.n), shard.n, shard_format(&shard, buf,
			    sizeof buf));
			return CLI_EXIT_USAGE;
		}
	}
	/* --probe and --restore name their accounts, in any shard. */
	if (opts->mode != CLI_MODE_PROBE && opts->mode != CLI_MODE_RESTORE)
		config_keep_shard(config, &shard);
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli_options opts;
	struct config *config = NULL;
	struct sigaction sa;
	char *error = NULL, *path = NULL;
	size_t n_all;
	int status = 0;

	/* Write errors on closed sockets come back as EPIPE instead. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	/* A core file would hold passwords and tokens. */
	(void)setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	log_init();
	/* Until the configuration is loaded, errors read "FILE:LINE: ...". */
	log_set_plain(true);

	if (cli_parse(argc, argv, &opts, &error) == -1) {
		usage_error(error);
		free(error);
		return CLI_EXIT_USAGE;
	}
	if (opts.mode == CLI_MODE_HELP) {
		cli_usage(stdout);
		goto out;
	}
	if (opts.mode == CLI_MODE_VERSION) {
		printf("mboxmirror %s\n", MM_VERSION);
		goto out;
	}

	/* -v shows debug lines while the config loads, -q hides warnings. */
	apply_verbosity(opts.verbosity, LOGL_INFO);
	path = opts.config_path != NULL ? strdup(opts.config_path) :
	    config_default_path();
	if (path == NULL) {
		log_error("out of memory");
		status = 1;
		goto out;
	}
	if (opts.config_path == NULL && access(path, F_OK) != 0 &&
	    errno == ENOENT && (getenv("MBOXMIRROR_CONFIG") == NULL ||
	    *getenv("MBOXMIRROR_CONFIG") == '\0')) {
		config_report_none_found();
		status = CONFIG_EXIT_STATUS;
		goto out;
	}
	if (config_load(path, &config) == -1) {
		status = CONFIG_EXIT_STATUS;
		goto out;
	}
	apply_verbosity(opts.verbosity, config->log_level);
	if (opts.mode != CLI_MODE_CHECK_CONFIG)
		log_set_plain(false);

	n_all = config->n_accounts;
	if ((status = select_shard(config, &opts, path)) != 0)
		goto out;
	if (opts.mode == CLI_MODE_RESTORE && (no_account(config,
	    opts.restore_from, path) || no_account(config, opts.restore_to,
	    path))) {
		status = CLI_EXIT_USAGE;
		goto out;
	}
	if (opts.mode == CLI_MODE_PROBE &&
	    config_find_account(config, opts.probe_account) == NULL) {
		fprintf(stderr, "mboxmirror: no account named '%s' in %s\n",
		    opts.probe_account, path);
		status = CLI_EXIT_USAGE;
		goto out;
	}

	switch (opts.mode) {
	case CLI_MODE_CHECK_CONFIG:
		status = check_config(config, &opts, n_all);
		break;
	case CLI_MODE_ONCE:
		if (refuse_foreign_state(config) != 0) {
			status = 1;
			break;
		}
		status = run_once(config, opts.accounts, opts.n_accounts);
		break;
	case CLI_MODE_PROBE:
		status = run_probe(config, opts.probe_account);
		break;
	case CLI_MODE_LIST:
		status = list_run(config, opts.accounts, opts.n_accounts);
		break;
	case CLI_MODE_STATUS:
		status = status_print(stdout, config, opts.accounts,
		    opts.n_accounts, opts.json);
		break;
	case CLI_MODE_VERIFY:
		status = verify_run(config, opts.accounts, opts.n_accounts,
		    opts.deep, opts.json);
		break;
	case CLI_MODE_RESTORE:
		status = run_restore(config, &opts);
		break;
	case CLI_MODE_DAEMON:
		if (refuse_foreign_state(config) != 0) {
			status = 1;
			break;
		}
		/* The daemon owns the config from here (reloads replace it). */
		status = daemon_run(config, path, opts.accounts,
		    opts.n_accounts, &opts.shard);
		config = NULL;
		break;
	case CLI_MODE_VERSION:
	case CLI_MODE_HELP:
		break;
	}
 out:
	config_free(&config);
	free(path);
	cli_free(&opts);
	return status;
}
