/*
 * The daemon (see daemon.h): one runner per account, each with its
 * scheduler job and its push watch; what ends a sync or a push fetch
 * (status, metrics, the next attempt); reload, signals, the descriptor
 * limit and the daemon lock.  Over 900 lines, and one file, because every
 * part acts on the same runners and struct daemon, which no other module
 * needs to see; the decisions are elsewhere and pure (scheduler.c,
 * fdlimit.c, metrics.c, shard.c, mirror/plan.c).
 */
#include "daemon.h"

#include <sys/stat.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli.h"
#include "fdlimit.h"
#include "log.h"
#include "metrics_file.h"
#include "mirror/idle.h"
#include "mirror/mirror.h"
#include "mirror/state.h"
#include "net/transport.h"
#include "notify.h"
#include "scheduler.h"
#include "util/num.h"

/* A config shared by the runners that were started from it. */
struct cfg {
	struct config *config;
	int refs;
};

/* An account's policy: when its next sync is due, its failures, its push
 * connection.  The scheduler queues and runs the syncs (job). */
struct runner {
	struct daemon *d;
	struct runner *next;		/* all runners */
	struct cfg *cfg;
	const struct account *account;
	struct sched_job *job;
	ev_timer timer;			/* the next sync is due */
	unsigned failures;
	bool rerun;			/* new mail came during a run */
	bool last_ok;
	bool ever_ok;
	struct metrics_account metrics;	/* push_connected is kept here */
	/* push */
	struct idle_watch *idle;
	ev_timer idle_timer;		/* restarts the watch after a failure */
	bool push_asked;		/* a fetch on it, not yet reported */
	bool sync_after_push;		/* a sync came due during that fetch */
	unsigned idle_failures;
	bool idle_unsupported;
};

struct daemon {
	struct ev_loop *loop;
	struct cfg *cfg;
	const char *path;
	char *const *names;
	size_t nnames;
	struct shard shard;		/* --shard; n == 0: the config's */
	struct runner *runners;
	struct sched *sched;
	struct metrics_file *metrics;	/* NULL: no metrics_file */
	ev_signal sigterm, sigint, sighup;
	ev_timer watchdog;
	ev_timer trim;		/* gives freed memory back after syncs */
	int lock_fd;		/* the state directory's daemon lock */
	unsigned long fd_limit;	/* RLIMIT_NOFILE, once raised */
	int status;
};

static void schedule(struct runner *, double delay);
static void start_idle(struct runner *);
static void trim_later(struct daemon *);

/* delay * (1 +- fraction), so accounts and retries spread out. */
static double
jitter(double delay, double fraction)
{
	double r = (double)random() / RAND_MAX * 2.0 - 1.0;

	return delay * (1.0 + fraction * r);
}

static struct cfg *
cfg_ref(struct cfg *c)
{
	c->refs++;
	return c;
}

static void
cfg_unref(struct cfg **cp)
{
	struct cfg *c = *cp;

	*cp = NULL;
	if (c != NULL && --c->refs == 0) {
		config_free(&c->config);
		free(c);
	}
}

static void
update_status(struct daemon *d)
{
	unsigned total = 0, ok = 0, failing = 0, syncing = 0, idle = 0;

	for (struct runner *r = d->runners; r != NULL; r = r->next) {
		total++;
		if (sched_job_state(r->job) == SCHED_RUNNING ||
		    idle_watch_fetching(r->idle))
			syncing++;
		if (r->failures > 0)
			failing++;
		else if (r->ever_ok)
			ok++;
		if (r->idle != NULL)
			idle++;
	}
	notify_status("%u %s: %u ok, %u failing, %u syncing, %u on push",
	    total, num_plural(total, "account", "accounts"), ok, failing,
	    syncing, idle);
}

/* For --status; the state file is mirror/'s to write. */
static void
record_next_attempt(struct runner *r, double delay)
{
	char *dir, *error = NULL;

	dir = state_account_dir(r->cfg->config->state_dir, r->account->name);
	if (dir == NULL)
		return;
	if (state_set_next_attempt(dir, time(NULL) + (time_t)delay,
	    &error) == -1)
		log_error("account %s: %s", r->account->name, error);
	free(error);
	free(dir);
}

/* The length of text without a final '.': a server's "Authentication
 * failed." ends a sentence that "; retrying" goes on. */
static size_t
without_full_stop(const char *text)
{
	size_t len = strlen(text);

	return len > 0 && text[len - 1] == '.' ? len - 1 : len;
}

/* A sync or a push fetch ended with res: what it saved in the state
 * (times, counts, failures) goes to the metrics. */
static void
note_metrics(struct runner *r, const struct mirror_result *res)
{
	uint64_t messages = r->metrics.messages, bytes = r->metrics.bytes;
	bool counted = r->metrics.counted;

	if (r->d->metrics == NULL)
		return;
	r->metrics.last_duration = res->seconds;
	metrics_file_load_state(&r->metrics, r->cfg->config->state_dir);
	/* (A mailbox the run mirrored afresh lowered the state's sums.) */
	if (counted)
		metrics_count_run(&r->metrics, messages, bytes, res->messages,
		    res->bytes);
	metrics_file_changed(r->d->metrics);
}

/* A sync, or a fetch on the push connection (push), succeeded. */
static void
note_success(struct runner *r, const struct mirror_result *res, bool push)
{
	if (r->failures > 0)
		log_info("account %s: recovered after %u failed attempts",
		    r->account->name, r->failures);
	r->failures = 0;
	r->ever_ok = true;
	if (res->messages > 0)
		log_info("account %s: %llu new %s (%llu %s) in %.1fs%s",
		    r->account->name, res->messages, num_plural(res->messages,
		    "message", "messages"), res->bytes, num_plural(res->bytes,
		    "byte", "bytes"), res->seconds, push ? " by push" : "");
}

/* Metrics */

static int
collect_metrics(void *arg, struct metrics_process *p,
    const struct metrics_account ***a_r, size_t *n_r)
{
	struct daemon *d = arg;
	const struct metrics_account **a;
	struct runner *r;
	size_t n = 0, push = 0;

	for (r = d->runners; r != NULL; r = r->next)
		n++;
	if ((a = calloc(n + 1, sizeof *a)) == NULL)
		return -1;
	/* Runners are listed newest first; the file lists them oldest
	 * first (the config's order until a reload adds some). */
	n = 0;
	for (r = d->runners; r != NULL; r = r->next) {
		r->metrics.syncing = sched_job_state(r->job) == SCHED_RUNNING ||
		    idle_watch_fetching(r->idle);
		if (r->idle != NULL)
			push++;
		a[n++] = &r->metrics;
	}
	for (size_t i = 0; i < n / 2; i++) {
		const struct metrics_account *t = a[i];

		a[i] = a[n - 1 - i];
		a[n - 1 - i] = t;
	}
	p->shard_k = d->cfg->config->shard.k;
	p->shard_n = d->cfg->config->shard.n;
	p->accounts = (unsigned)n;
	p->syncs_in_flight = sched_running(d->sched);
	p->connections_open = p->syncs_in_flight + (unsigned)push;
	*a_r = a;
	*n_r = n;
	return 0;
}

/* The file of the config in force: a reload may name another or none.
 * A new writer starts from every account's state. */
static void
open_metrics(struct daemon *d)
{
	const char *path = d->cfg->config->metrics_file;

	if (d->metrics != NULL && path != NULL &&
	    strcmp(metrics_file_path(d->metrics), path) == 0)
		return;
	metrics_file_free(&d->metrics);
	if (path == NULL)
		return;
	if ((d->metrics = metrics_file_new(d->loop, path, d->path,
	    collect_metrics, d)) == NULL) {
		log_error("metrics: out of memory; not writing %s", path);
		return;
	}
	for (struct runner *r = d->runners; r != NULL; r = r->next)
		metrics_file_load_state(&r->metrics,
		    r->cfg->config->state_dir);
	metrics_file_write(d->metrics);
}

static void
on_sync_done(struct sched_job *job, const struct mirror_result *res,
    void *arg)
{
	struct runner *r = arg;
	struct daemon *d = r->d;
	double delay, fraction;
	bool auth;

	(void)job;
	if (res != NULL && res->error != MIRROR_OK)
		r->failures++;
	if (res != NULL)
		note_metrics(r, res);
	delay = sched_next_delay(d->cfg->config, r->account, res, r->failures,
	    r->rerun, &fraction);
	if (fraction > 0)
		delay = jitter(delay, fraction);
	if (res == NULL) {
		/* It could not start: again soon, not counted as a failure. */
		schedule(r, delay);
		return;
	}
	if (res->error == MIRROR_OK) {
		note_success(r, res, false);
		r->rerun = false;
		if (r->account->idle && mirror_push_watches(r->account) &&
		    r->idle == NULL &&
		    !r->idle_unsupported && !ev_is_active(&r->idle_timer))
			start_idle(r);
	} else {
		auth = res->error == MIRROR_ERR_AUTH;
		/* A push connection waiting to log in again would fail the
		 * same way, at the push pace: as after its own refused login,
		 * push waits for a sync that succeeds. */
		if (auth && r->idle == NULL && ev_is_active(&r->idle_timer)) {
			ev_timer_stop(d->loop, &r->idle_timer);
			log_info("account %s: push is off until a sync "
			    "succeeds", r->account->name);
		}
		log_error("%.*s; retrying in %.0fs (failure %u%s)",
		    (int)without_full_stop(res->message), res->message,
		    delay, r->failures, auth ? ", authentication: backing "
		    "off slowly so the server does not lock the account" : "");
	}
	/* The slot it freed is given out once this returns. */
	schedule(r, delay);
	record_next_attempt(r, delay);
	update_status(d);
	trim_later(d);
}

/*
 * Syncs and push fetches come and go between what stays (push connections, saved TLS
 * sessions): the heap pages they freed in between stay resident unless
 * handed back, which a thousand push connections made 40 MB.  2 s after a
 * sync ended, so at most every 2 s while syncs run (a few milliseconds
 * each) and never while nothing happens.
 */
static void
on_trim(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
#ifdef __GLIBC__
	(void)malloc_trim(0);
#endif
}

/* A sync or push fetch ended: on_trim() in 2 s, unless one is due. */
static void
trim_later(struct daemon *d)
{
	if (!ev_is_active(&d->trim))
		ev_timer_start(d->loop, &d->trim);
}

static void
on_sched_changed(struct sched *s, void *arg)
{
	(void)s;
	update_status(arg);
}

/* Due now: to the scheduler's queue, unless already there or syncing.
 * During a fetch on the push connection (which holds the account's lock)
 * the sync waits for its end. */
static void
enqueue(struct runner *r)
{
	if (sched_job_state(r->job) != SCHED_IDLE)
		return;
	if (idle_watch_fetching(r->idle)) {
		r->sync_after_push = true;
		return;
	}
	ev_timer_stop(r->d->loop, &r->timer);
	(void)sched_enqueue(r->job);
}

static void
on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	enqueue(t->data);
}

static void
schedule(struct runner *r, double delay)
{
	ev_timer_stop(r->d->loop, &r->timer);
	ev_timer_set(&r->timer, delay > 0 ? delay : 0, 0);
	ev_timer_start(r->d->loop, &r->timer);
}

/* Push */

/* The push connection is gone (freed already): a fetch asked on it that
 * never reported, or a sync that waited for it, is a sync's now. */
static void
after_lost_push(struct runner *r)
{
	bool sync = r->push_asked || r->sync_after_push;

	r->push_asked = r->sync_after_push = false;
	if (sync)
		enqueue(r);
}

static void
on_idle_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	start_idle(t->data);
}

/* New mail in INBOX (or push just came up): fetched on the push
 * connection when nothing else is under way (sched_push_step()). */
static void
on_new_mail(struct runner *r)
{
	switch (sched_push_step(sched_job_state(r->job), r->failures)) {
	case SCHED_PUSH_FETCH:
		/* One under way examines INBOX after this. */
		if (idle_watch_fetching(r->idle))
			return;
		if (idle_watch_fetch(r->idle) == 0) {
			r->push_asked = true;
			update_status(r->d);
			return;
		}
		/* Not in IDLE just now: a sync, then. */
		enqueue(r);
		return;
	case SCHED_PUSH_RERUN:
		r->rerun = true;
		return;
	case SCHED_PUSH_NONE:
		return;
	case SCHED_PUSH_WAIT:
		log_debug("account %s: new mail left to the retry due in %.0fs",
		    r->account->name, ev_timer_remaining(r->d->loop,
		    &r->timer));
		return;
	}
}

/* The fetch on the push connection ended.  What it did not do (it left
 * the mail to a full sync, failed, found the account busy) a sync does. */
static void
on_push_fetched(struct runner *r, const struct mirror_result *res)
{
	r->push_asked = false;
	if (!res->declined)
		note_metrics(r, res);
	if (res->declined) {
		log_debug("account %s: new mail left to a full sync",
		    r->account->name);
		enqueue(r);
	} else if (res->error != MIRROR_OK) {
		log_warnx("%.*s; a full sync follows",
		    (int)without_full_stop(res->message), res->message);
		enqueue(r);
	} else {
		note_success(r, res, true);
	}
	if (r->sync_after_push) {
		r->sync_after_push = false;
		enqueue(r);
	}
	update_status(r->d);
	trim_later(r->d);
}

static void
on_idle_event(struct idle_watch *w, enum idle_event event, const char *message,
    void *arg)
{
	struct runner *r = arg;
	double delay;

	switch (event) {
	case IDLE_WATCHING:
		if (r->idle_failures > 0)
			log_info("account %s: push restored", r->account->name);
		else
			log_info("account %s: waiting for new mail (IDLE)",
			    r->account->name);
		r->idle_failures = 0;
		r->metrics.push_connected = true;
		metrics_file_changed(r->d->metrics);
		/* Mail that came after the last sync looked at INBOX and
		 * before this connection examined it raised no EXISTS here:
		 * one more look catches it (cheap when nothing is new). */
		on_new_mail(r);
		update_status(r->d);
		return;
	case IDLE_NEW_MAIL:
		log_debug("account %s: new mail announced", r->account->name);
		on_new_mail(r);
		return;
	case IDLE_FETCHED:
		on_push_fetched(r, idle_watch_result(w));
		return;
	case IDLE_UNSUPPORTED:
		log_info("account %s: %s; polling every %us",
		    r->account->name, message, r->account->interval);
		r->idle_unsupported = true;
		r->metrics.push_connected = false;
		idle_watch_free(&r->idle);
		update_status(r->d);
		return;
	case IDLE_FAILED:
		if (idle_watch_error(w) == SESSION_ERR_AUTH) {
			/* Retrying at the push pace could get the account
			 * locked: push waits for a sync that logs in again
			 * (syncs back off slowly on authentication failures). */
			log_error("account %s: push connection: %s; push is "
			    "off until a sync succeeds", r->account->name,
			    message);
			r->metrics.push_connected = false;
			idle_watch_free(&r->idle);
			after_lost_push(r);
			update_status(r->d);
			return;
		}
		r->idle_failures++;
		delay = jitter(sched_backoff(r->d->cfg->config, r->idle_failures,
		    false), 0.2);
		log_warnx("account %s: push connection lost (%s); reconnecting "
		    "in %.0fs", r->account->name, message, delay);
		r->metrics.push_connected = false;
		metrics_file_changed(r->d->metrics);
		idle_watch_free(&r->idle);
		after_lost_push(r);
		ev_timer_set(&r->idle_timer, delay, 0);
		ev_timer_start(r->d->loop, &r->idle_timer);
		update_status(r->d);
		return;
	}
}

static void
start_idle(struct runner *r)
{
	ev_timer_stop(r->d->loop, &r->idle_timer);
	r->idle = idle_watch_start(r->d->loop, r->cfg->config, r->account,
	    on_idle_event, r);
}

/* Runners */

/* first: which of how many selected accounts it is, for the spread of the
 * first syncs (sched_first_delay()). */
static struct runner *
runner_new(struct daemon *d, const struct account *account, unsigned first,
    unsigned of)
{
	struct runner *r;

	if ((r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	r->d = d;
	r->account = account;
	r->job = sched_job_new(d->sched, d->cfg->config, account, on_sync_done,
	    r);
	if (r->job == NULL) {
		free(r);
		return NULL;
	}
	r->cfg = cfg_ref(d->cfg);
	r->metrics.name = account->name;
	r->metrics.interval = account->interval;
	r->metrics.last_duration = -1;
	if (d->metrics != NULL)
		metrics_file_load_state(&r->metrics, d->cfg->config->state_dir);
	ev_init(&r->timer, on_timer);
	r->timer.data = r;
	ev_init(&r->idle_timer, on_idle_timer);
	r->idle_timer.data = r;
	r->next = d->runners;
	d->runners = r;
	if (account->idle && !mirror_push_watches(account))
		log_info("account %s: INBOX is not among its mailboxes, so no "
		    "push connection watches it; polling every %us",
		    account->name, account->interval);
	/* Start soon, spread so that many accounts do not log in at once; its
	 * push connection follows its first sync. */
	schedule(r, sched_first_delay(first, of, account->interval,
	    (double)random() / ((double)RAND_MAX + 1)));
	return r;
}

static void
runner_free(struct runner *r)
{
	struct daemon *d = r->d;
	struct runner **pp;

	ev_timer_stop(d->loop, &r->timer);
	ev_timer_stop(d->loop, &r->idle_timer);
	/* Its sync stops; the slot goes to the queue at the next fill. */
	sched_job_free(&r->job);
	for (pp = &d->runners; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	idle_watch_free(&r->idle);
	cfg_unref(&r->cfg);
	free(r);
}

static bool
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL &&
	    strcmp(a, b) == 0);
}

static bool
list_eq(const struct str_list *a, const struct str_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

static bool
account_eq(const struct account *a, const struct account *b)
{
	return str_eq(a->host, b->host) && a->port == b->port &&
	    a->tls == b->tls && str_eq(a->ca_file, b->ca_file) &&
	    a->has_pin == b->has_pin && memcmp(a->pin_sha256, b->pin_sha256,
	    sizeof a->pin_sha256) == 0 && str_eq(a->user, b->user) &&
	    a->secret_source == b->secret_source &&
	    str_eq(a->secret, b->secret) && a->auth == b->auth &&
	    list_eq(&a->mailboxes, &b->mailboxes) &&
	    list_eq(&a->exclude, &b->exclude) &&
	    str_eq(a->output, b->output) && a->interval == b->interval &&
	    a->idle == b->idle && a->allow_plaintext == b->allow_plaintext &&
	    a->compress == b->compress;
}

/* [general] settings that every session depends on. */
static bool
general_eq(const struct config *a, const struct config *b)
{
	return str_eq(a->state_dir, b->state_dir) && a->timeout == b->timeout;
}

static unsigned
selected_accounts(const struct daemon *d, const struct config *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < c->n_accounts; i++)
		if (cli_account_selected(d->names, d->nnames,
		    c->accounts[i].name))
			n++;
	return n;
}

static void
start_runners(struct daemon *d)
{
	const struct config *c = d->cfg->config;
	unsigned n = selected_accounts(d, c), k = 0;

	for (size_t i = 0; i < c->n_accounts; i++)
		if (cli_account_selected(d->names, d->nnames,
		    c->accounts[i].name))
			runner_new(d, &c->accounts[i], k++, n);
}

/*
 * Refuses (-1, the lock given back) when a daemon of another layout runs
 * on the same state directory: beside it, some accounts would be both's
 * and others nobody's.  Taken first, checked after, so of two daemons
 * starting at once at least one sees the other.  mine: a daemon lock this
 * process holds already (-1: none).
 */
static int
check_layout(const char *state_dir, const struct shard *shard, int mine,
    int *fd_r)
{
	char *who = NULL, buf[24];
	long pid = 0;
	int r;

	r = state_daemon_other_layout(state_dir, shard->n, mine, &who, &pid);
	if (r == -1)
		log_warnx("cannot tell whether daemons of other shards run with "
		    "the state directory %s; going on", state_dir);
	if (r != 1)
		return 0;
	log_error("%s (pid %ld) runs with the state directory %s, and this "
	    "daemon would be %s%s: they would both take some accounts and "
	    "leave others to none; give every daemon of one state directory "
	    "the same number of shards (or none)", who, pid, state_dir,
	    shard->n != 0 ? "shard " : "", shard->n != 0 ? shard_format(shard,
	    buf, sizeof buf) : "the one not sharded");
	free(who);
	state_unlock(fd_r);
	return -1;
}

/*
 * A daemon holds its state directory's daemon lock for its life, so that
 * --status can say it runs and a second daemon on the same state stops
 * here instead of competing for every account.  0 with *fd_r, or -1.
 */
static int
take_daemon_lock(const char *state_dir, const struct shard *shard, int mine,
    int *fd_r)
{
	char *dir = state_shard_daemon_dir(state_dir, shard->k, shard->n);
	char *error = NULL;
	long holder = 0;
	int r = -1;

	if (dir == NULL) {
		log_error("out of memory");
		return -1;
	}
	for (int tries = 0; tries < 3; tries++) {
		if ((r = state_lock(dir, fd_r, &holder, &error)) != 1)
			break;
		/* --status holds it shared for an instant when it looks. */
		usleep(100 * 1000);
	}
	if (r == 1 && holder > 0)
		log_error("another mboxmirror daemon (pid %ld) runs with the "
		    "state directory %s; not starting a second one", holder,
		    state_dir);
	else if (r == 1)
		log_error("another mboxmirror daemon runs with the state "
		    "directory %s; not starting a second one",
		    state_dir);
	else if (r == -1)
		log_error("%s", error != NULL ? error : "out of memory");
	free(error);
	free(dir);
	if (r != 0)
		return -1;
	return check_layout(state_dir, shard, mine, fd_r);
}

/* The accounts of config that this daemon runs with a push connection. */
static unsigned
push_accounts(const struct config *config, char *const *names, size_t nnames)
{
	unsigned n = 0;

	for (size_t i = 0; i < config->n_accounts; i++)
		if (config->accounts[i].idle &&
		    mirror_push_watches(&config->accounts[i]) &&
		    cli_account_selected(names, nnames,
		    config->accounts[i].name))
			n++;
	return n;
}

/*
 * Whether config's push connections and sync sessions fit in limit
 * descriptors (RLIMIT_NOFILE); says what is needed and how to get it when
 * they do not.  A daemon that ran out would fail connections one by one,
 * at random, long after it started.
 */
static bool
descriptors_fit(const struct config *config, char *const *names,
    size_t nnames, unsigned long limit)
{
	unsigned push = push_accounts(config, names, nnames);
	struct fdlimit_need n = fdlimit_needed(push, config->max_connections);

	log_debug("file descriptors: %lu needed (%u push %s, %u sync "
	    "%s x %d, %lu for the process, %lu spare), limit %lu", n.total,
	    push, num_plural(push, "connection", "connections"),
	    config->max_connections, num_plural(config->max_connections,
	    "session", "sessions"), FDLIMIT_PER_SESSION, n.base, n.margin,
	    limit);
	if (n.total <= limit)
		return true;
	log_error("too many accounts for the file descriptor limit: %u push "
	    "%s (idle = yes) and max_connections = %u need %lu descriptors, "
	    "but RLIMIT_NOFILE allows %lu; raise it (LimitNOFILE=%lu or more "
	    "in the service unit, ulimit -n in a shell) or set idle = no on "
	    "some accounts", push, num_plural(push, "connection",
	    "connections"), config->max_connections, n.total, limit, n.total);
	return false;
}

/* The soft descriptor limit raised to the hard one; the limit in force. */
static unsigned long
raise_descriptor_limit(void)
{
	unsigned long before, after;

	if (fdlimit_raise(&before, &after) != 0)
		log_warn("cannot raise the file descriptor limit (soft limit "
		    "%lu)", after);
	else if (after != before)
		log_info("file descriptor limit raised from %lu to %lu",
		    before, after);
	else
		log_debug("file descriptor limit %lu", after);
	return after;
}

/* A new state_dir: the daemon lock goes with it, or the reload does not
 * happen (another daemon runs there). */
static int
move_daemon_lock(struct daemon *d, const struct config *config)
{
	struct stat a, b;
	int fd = -1;

	/* The same directory, however it is spelled, keeps its lock, unless
	 * the shard (whose lock it is) changed. */
	if ((strcmp(config->state_dir, d->cfg->config->state_dir) == 0 ||
	    (stat(config->state_dir, &a) == 0 && stat(d->cfg->config->state_dir,
	    &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)) &&
	    config->shard.k == d->cfg->config->shard.k &&
	    config->shard.n == d->cfg->config->shard.n)
		return 0;
	if (take_daemon_lock(config->state_dir, &config->shard, d->lock_fd,
	    &fd) != 0)
		return -1;
	state_unlock(&d->lock_fd);
	d->lock_fd = fd;
	return 0;
}

/* A selected account of the config that has no runner yet. */
static bool
wants_runner(const struct daemon *d, const struct account *a)
{
	if (!cli_account_selected(d->names, d->nnames, a->name))
		return false;
	for (const struct runner *r = d->runners; r != NULL; r = r->next)
		if (strcmp(r->account->name, a->name) == 0)
			return false;
	return true;
}

static void
reload(struct daemon *d)
{
	struct config *config = NULL;
	struct runner *r, *next;
	struct cfg *fresh;
	const struct account *a;
	unsigned added = 0, removed = 0, changed = 0, nfresh = 0, k = 0;

	notify_reloading();
	log_info("reloading %s", d->path);
	if (config_load(d->path, &config) != 0) {
		log_error("the new configuration has errors; keeping the "
		    "running one");
		notify_ready(NULL);
		return;
	}
	config_keep_shard(config, d->shard.n != 0 ? &d->shard :
	    &config->shard);
	if (!descriptors_fit(config, d->names, d->nnames, d->fd_limit)) {
		log_error("keeping the running configuration");
		config_free(&config);
		notify_ready(NULL);
		return;
	}
	if ((fresh = calloc(1, sizeof *fresh)) == NULL) {
		config_free(&config);
		notify_ready(NULL);
		return;
	}
	/* Last of what may fail: nothing to undo after it. */
	if (move_daemon_lock(d, config) != 0) {
		log_error("keeping the running configuration");
		free(fresh);
		config_free(&config);
		notify_ready(NULL);
		return;
	}
	log_set_level(config->log_level);
	fresh->config = config;
	fresh->refs = 1;
	for (r = d->runners; r != NULL; r = next) {
		next = r->next;
		a = config_find_account(config, r->account->name);
		if (a != NULL && cli_account_selected(d->names, d->nnames,
		    a->name) && account_eq(a, r->account) &&
		    general_eq(config, r->cfg->config))
			continue;
		if (a != NULL && cli_account_selected(d->names, d->nnames,
		    a->name))
			changed++;
		else
			removed++;
		log_info("account %s: %s", r->account->name, a != NULL ?
		    "changed, restarting" : "removed, stopping");
		/* Its connections go with it; a restart fetches afresh. */
		log_forget_secrets(r->account->name);
		runner_free(r);
	}
	cfg_unref(&d->cfg);
	d->cfg = fresh;
	sched_set_max_connections(d->sched, config->max_connections);
	/* The accounts new to this daemon (or restarted) are spread among
	 * themselves, as at a start: every runner left has its account
	 * among those selected. */
	nfresh = selected_accounts(d, config);
	for (r = d->runners; r != NULL; r = r->next)
		nfresh--;
	for (size_t i = 0; i < config->n_accounts; i++) {
		if (!wants_runner(d, &config->accounts[i]))
			continue;
		if (runner_new(d, &config->accounts[i], k++, nfresh) == NULL)
			continue;
		/* changed ones were counted above */
		added++;
	}
	added -= changed;
	log_info("configuration reloaded: %u added, %u removed, %u changed",
	    added, removed, changed);
	open_metrics(d);
	metrics_file_changed(d->metrics);
	notify_ready(NULL);
	update_status(d);
	sched_fill(d->sched);
}

/* Signals and the watchdog */

static void
on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	log_info("stopping on signal %d", w->signum);
	notify_stopping();
	ev_break(loop, EVBREAK_ALL);
}

static void
on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	reload(w->data);
}

static void
on_watchdog(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	notify_watchdog();
}

int
daemon_run(struct config *config, const char *path, char *const *names,
    size_t nnames, const struct shard *shard)
{
	struct daemon d = { .lock_fd = -1 };
	char shard_text[24];
	uint64_t wd;

	d.shard = *shard;
	if (take_daemon_lock(config->state_dir, &config->shard, -1,
	    &d.lock_fd) != 0) {
		config_free(&config);
		return 1;
	}
	/*
	 * Buffers of 64 KiB and more (a session's read buffer, TLS's read
	 * block) are mapped each on its own, not carved from the heap: a push
	 * connection touches a page or two of them, where heap pages reused
	 * from syncs that filled theirs would all stay resident (80 KB a push
	 * connection).  Set, the threshold no longer grows as glibc's does by
	 * default when such a buffer is freed.
	 */
#ifdef __GLIBC__
	(void)mallopt(M_MMAP_THRESHOLD, 64 * 1024);
#endif
	d.fd_limit = raise_descriptor_limit();
	if (!descriptors_fit(config, names, nnames, d.fd_limit)) {
		state_unlock(&d.lock_fd);
		config_free(&config);
		return CONFIG_EXIT_STATUS;
	}
	if (transport_global_init() != 0) {
		log_error("cannot initialise TLS");
		state_unlock(&d.lock_fd);
		config_free(&config);
		return 1;
	}
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	/* Not the default loop: that one reaps every child, including a
	 * password_command's that the secret worker waits for. */
	if ((d.loop = ev_loop_new(EVFLAG_AUTO)) == NULL) {
		state_unlock(&d.lock_fd);
		config_free(&config);
		transport_global_deinit();
		return 1;
	}
	d.path = path;
	d.names = names;
	d.nnames = nnames;
	d.sched = sched_new(d.loop, config->max_connections, on_sched_changed,
	    &d);
	if (d.sched == NULL || (d.cfg = calloc(1, sizeof *d.cfg)) == NULL) {
		sched_free(&d.sched);
		state_unlock(&d.lock_fd);
		config_free(&config);
		return 1;
	}
	d.cfg->config = config;
	d.cfg->refs = 1;
	notify_init();
	ev_signal_init(&d.sigterm, on_stop, SIGTERM);
	ev_signal_init(&d.sigint, on_stop, SIGINT);
	ev_signal_init(&d.sighup, on_hup, SIGHUP);
	d.sighup.data = &d;
	ev_signal_start(d.loop, &d.sigterm);
	ev_signal_start(d.loop, &d.sigint);
	ev_signal_start(d.loop, &d.sighup);
	if ((wd = notify_watchdog_usec()) > 0) {
		ev_timer_init(&d.watchdog, on_watchdog, 0, wd / 2e6);
		ev_timer_again(d.loop, &d.watchdog);
	}
	ev_timer_init(&d.trim, on_trim, 2., 0.);
	start_runners(&d);
	open_metrics(&d);
	log_info("mboxmirror %s running: %zu %s%s%s", MM_VERSION,
	    config->n_accounts, num_plural(config->n_accounts, "account",
	    "accounts"), config->shard.n != 0 ? " in shard " : "",
	    config->shard.n != 0 ? shard_format(&config->shard, shard_text,
	    sizeof shard_text) : "");
	notify_ready(NULL);
	update_status(&d);
	ev_run(d.loop, 0);

	/* Uncommitted appends are rolled back by the mirrors' teardown. */
	metrics_file_free(&d.metrics);
	while (d.runners != NULL)
		runner_free(d.runners);
	sched_free(&d.sched);
	ev_timer_stop(d.loop, &d.watchdog);
	ev_timer_stop(d.loop, &d.trim);
	ev_signal_stop(d.loop, &d.sigterm);
	ev_signal_stop(d.loop, &d.sigint);
	ev_signal_stop(d.loop, &d.sighup);
	cfg_unref(&d.cfg);
	ev_loop_destroy(d.loop);
	transport_global_deinit();
	state_unlock(&d.lock_fd);
	log_info("stopped");
	return d.status;
}
