#include "run.h"
#include "util/num.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "cli.h"
#include "imap/session.h"
#include "log.h"
#include "metrics_file.h"
#include "mirror/account_session.h"
#include "mirror/mirror.h"
#include "net/transport.h"
#include "scheduler.h"

struct once;

struct once_job {
	struct once *once;
	const struct account *account;
	struct sched_job *job;
	struct metrics_account metrics;
};

struct once {
	struct ev_loop *loop;
	struct sched *sched;
	struct once_job *jobs;
	size_t n_jobs, finished;
	const struct config *config;
	struct metrics_file *metrics;	/* NULL: no metrics_file */
	int status;
	ev_signal sigint, sigterm;
};

static void
format_bytes(char *buf, size_t size, unsigned long long bytes)
{
	if (bytes >= 1024ULL * 1024 * 1024)
		snprintf(buf, size, "%.1f GiB", bytes / 1073741824.0);
	else if (bytes >= 1024 * 1024)
		snprintf(buf, size, "%.1f MiB", bytes / 1048576.0);
	else if (bytes >= 1024)
		snprintf(buf, size, "%.1f KiB", bytes / 1024.0);
	else
		snprintf(buf, size, "%llu B", bytes);
}

/* The summary line: true if the sync succeeded. */
static bool
print_summary(const struct account *account, const struct mirror_result *r)
{
	char size[32];
	bool ok = r->error == MIRROR_OK;

	format_bytes(size, sizeof size, r->bytes);
	if (ok) {
		/* -q: nothing on success, so cron mails only failures. */
		if (log_get_level() >= LOGL_INFO)
			printf("%s: ok: %u %s checked, %u opened, %llu %s "
			    "(%s) added in %.1fs\n", account->name,
			    r->mailboxes_checked, num_plural(r->mailboxes_checked,
			    "mailbox", "mailboxes"), r->mailboxes_opened,
			    r->messages, num_plural(r->messages, "message",
			    "messages"), size, r->seconds);
	} else {
		log_error("%s", r->message);
		printf("%s: FAILED (%s): %u %s checked, %llu %s (%s) added "
		    "in %.1fs\n", account->name, mirror_error_name(r->error),
		    r->mailboxes_checked, num_plural(r->mailboxes_checked,
		    "mailbox", "mailboxes"), r->messages, num_plural(
		    r->messages, "message", "messages"), size, r->seconds);
	}
	fflush(stdout);
	return ok;
}

/* Each account runs once: its job is not queued again. */
static void
on_job_done(struct sched_job *job, const struct mirror_result *r, void *arg)
{
	struct once_job *oj = arg;
	struct once *once = oj->once;

	(void)job;
	/* NULL: it could not start, and the scheduler said why. */
	if (r == NULL || !print_summary(oj->account, r))
		once->status = 1;
	if (r != NULL && once->metrics != NULL) {
		oj->metrics.last_duration = r->seconds;
		metrics_file_load_state(&oj->metrics, once->config->state_dir);
		metrics_file_changed(once->metrics);
	}
	if (++once->finished == once->n_jobs)
		ev_break(once->loop, EVBREAK_ALL);
}

static void
free_jobs(struct once *once)
{
	for (size_t i = 0; i < once->n_jobs; i++)
		sched_job_free(&once->jobs[i].job);
}

static void
on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct once *once = w->data;

	(void)revents;
	log_warnx("stopping on signal %d; uncommitted work is rolled back",
	    w->signum);
	/* Freeing a running job starts no queued one. */
	free_jobs(once);
	once->status = 1;
	ev_break(loop, EVBREAK_ALL);
}

static int
collect_metrics(void *arg, struct metrics_process *p,
    const struct metrics_account ***a_r, size_t *n_r)
{
	struct once *once = arg;
	const struct metrics_account **a;

	if ((a = calloc(once->n_jobs + 1, sizeof *a)) == NULL)
		return -1;
	for (size_t i = 0; i < once->n_jobs; i++) {
		struct once_job *oj = &once->jobs[i];

		oj->metrics.syncing = oj->job != NULL &&
		    sched_job_state(oj->job) == SCHED_RUNNING;
		a[i] = &oj->metrics;
	}
	p->shard_k = once->config->shard.k;
	p->shard_n = once->config->shard.n;
	p->accounts = (unsigned)once->n_jobs;
	p->syncs_in_flight = sched_running(once->sched);
	p->connections_open = p->syncs_in_flight;
	*a_r = a;
	*n_r = once->n_jobs;
	return 0;
}

/* The metrics file, from every selected account's state, before any sync
 * starts; written again as each ends, every minute and at the end. */
static void
open_metrics(struct once *once, const struct config *config,
    char *const *names, size_t nnames)
{
	size_t n = 0;

	for (size_t i = 0; i < config->n_accounts; i++) {
		const struct account *a = &config->accounts[i];
		struct metrics_account *m;

		if (!cli_account_selected(names, nnames, a->name))
			continue;
		m = &once->jobs[n++].metrics;
		m->name = a->name;
		m->interval = a->interval;
		m->last_duration = -1;
		if (config->metrics_file != NULL)
			metrics_file_load_state(m, config->state_dir);
	}
	if (config->metrics_file == NULL)
		return;
	if ((once->metrics = metrics_file_new(once->loop,
	    config->metrics_file, config->path, collect_metrics, once)) ==
	    NULL)
		log_error("metrics: out of memory; not writing %s",
		    config->metrics_file);
}

/* Every selected account gets a job, queued in config order. */
static int
queue_selected(struct once *once, const struct config *config,
    char *const *names, size_t nnames)
{
	for (size_t i = 0; i < config->n_accounts; i++) {
		struct once_job *oj;

		if (!cli_account_selected(names, nnames,
		    config->accounts[i].name))
			continue;
		oj = &once->jobs[once->n_jobs];
		oj->once = once;
		oj->account = &config->accounts[i];
		oj->job = sched_job_new(once->sched, config, oj->account,
		    on_job_done, oj);
		if (oj->job == NULL)
			return -1;
		once->n_jobs++;
	}
	for (size_t i = 0; i < once->n_jobs; i++)
		(void)sched_enqueue(once->jobs[i].job);
	return 0;
}

int
run_once(const struct config *config, char *const *names, size_t nnames)
{
	struct once once = { 0 };

	if (transport_global_init() != 0) {
		log_error("cannot initialise TLS");
		return 1;
	}
	/* Not the default loop: that one reaps every child, including a
	 * password_command's that the secret worker waits for. */
	once.loop = ev_loop_new(EVFLAG_AUTO);
	if (once.loop == NULL) {
		transport_global_deinit();
		return 1;
	}
	once.config = config;
	once.jobs = calloc(config->n_accounts, sizeof *once.jobs);
	once.sched = sched_new(once.loop, config->max_connections, NULL, NULL);
	if (once.jobs == NULL || once.sched == NULL) {
		log_error("out of memory");
		once.status = 1;
		goto out;
	}
	ev_signal_init(&once.sigint, on_stop_signal, SIGINT);
	ev_signal_init(&once.sigterm, on_stop_signal, SIGTERM);
	once.sigint.data = once.sigterm.data = &once;
	ev_signal_start(once.loop, &once.sigint);
	ev_signal_start(once.loop, &once.sigterm);
	open_metrics(&once, config, names, nnames);
	if (queue_selected(&once, config, names, nnames) != 0) {
		log_error("out of memory");
		once.status = 1;
	} else if (once.finished < once.n_jobs) {
		metrics_file_write(once.metrics);
		ev_run(once.loop, 0);
	}
	ev_signal_stop(once.loop, &once.sigint);
	ev_signal_stop(once.loop, &once.sigterm);
	metrics_file_write(once.metrics);
	metrics_file_free(&once.metrics);
out:
	if (once.jobs != NULL)
		free_jobs(&once);
	sched_free(&once.sched);
	free(once.jobs);
	ev_loop_destroy(once.loop);
	transport_global_deinit();
	return once.status;
}

/* --probe */

struct probe {
	struct ev_loop *loop;
	const struct account *account;
	int status;
};

/* Server text on a terminal: control bytes must not reach it. */
static void
print_clean(const char *label, const char *text)
{
	fputs(label, stdout);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
	putchar('\n');
}

static void
print_caps(struct session *s, const char *when)
{
	const struct imap_caps *caps = session_caps(s);

	printf("capabilities %s:\n", when);
	for (size_t i = 0; i < caps->n; i++)
		print_clean("  ", caps->names[i]);
}

static void
on_probe_stage(struct session *s, enum session_stage stage, const char *text,
    void *arg)
{
	const struct probe *p = arg;

	switch (stage) {
	case SESSION_STAGE_GREETING:
		print_clean("greeting: ", text);
		break;
	case SESSION_STAGE_CAPS:
		print_caps(s, "before TLS");
		break;
	case SESSION_STAGE_TLS:
		printf("TLS: %s\n", text);
		break;
	case SESSION_STAGE_CAPS_TLS:
		print_caps(s, p->account->tls == TLS_NONE ?
		    "(no TLS)" : "after TLS");
		break;
	case SESSION_STAGE_CAPS_AUTH:
		print_caps(s, "after login");
		break;
	case SESSION_STAGE_COMPRESS:
		printf("compression: %s\n", text);
		break;
	}
	fflush(stdout);
}

static void
on_probe_ready(struct session *s, void *arg)
{
	(void)arg;
	printf("login: ok\n");
	session_logout(s);
}

static void
on_probe_failed(struct session *s, enum session_error error,
    const char *message, void *arg)
{
	struct probe *p = arg;

	(void)s;
	log_error("account %s: %s: %s", p->account->name,
	    session_error_name(error), message);
	p->status = 1;
	ev_break(p->loop, EVBREAK_ALL);
}

static void
on_probe_closed(struct session *s, void *arg)
{
	struct probe *p = arg;

	(void)s;
	printf("logout: ok\n");
	ev_break(p->loop, EVBREAK_ALL);
}

int
run_probe(const struct config *config, const char *name)
{
	static const struct session_callbacks cb = {
		.ready = on_probe_ready,
		.failed = on_probe_failed,
		.closed = on_probe_closed,
		.stage = on_probe_stage,
	};
	const struct account *account = config_find_account(config, name);
	struct probe p = { .account = account, .status = 0 };
	struct session *s;

	if (account == NULL) {
		log_error("no account named %s", name);
		return 1;
	}
	if (transport_global_init() != 0)
		return 1;
	if ((p.loop = ev_loop_new(EVFLAG_AUTO)) == NULL)
		return 1;
	printf("server: %s:%u (%s)\n", account->host, account->port,
	    tls_mode_name(account->tls));
	if ((s = account_session_new(p.loop, account, config->timeout, &cb,
	    &p)) == NULL)
		return 1;
	if (session_start(s) == 0)
		ev_run(p.loop, 0);
	session_free(&s);
	ev_loop_destroy(p.loop);
	transport_global_deinit();
	return p.status;
}
