/*
 * scheduler (functions sched_*; not "sched.h", which <pthread.h> includes):
 * what --once and the daemon share.  It owns the queue of accounts waiting
 * for a connection slot (first come, first served), the max_connections
 * limit (syncs at once, all accounts together), starting a sync
 * (mirror_start()) when a slot is free, and telling the account's owner
 * when that sync ended.  When an account is queued is its owner's policy:
 * --once queues every selected account once (run.c); the daemon queues an
 * account when its interval or backoff timer fires or new mail is announced
 * (daemon.c), with the delays sched_backoff() gives.
 *
 * Re-entrancy: a done callback may queue its job again, free it or queue or
 * free others; the scheduler touches the job no more once done is called and
 * gives out the freed slot after done returns.  A job whose sync could not
 * start and that done queues again straight away is tried again in the same
 * pass: an owner retries that from a timer.  sched_free() never from inside
 * a callback.
 */
#ifndef MM_SCHEDULER_H
#define MM_SCHEDULER_H

#include <stdbool.h>

#include <ev.h>

#include "config.h"
#include "mirror/mirror.h"

/* Backoff: the first retry after retry_min seconds, doubling up to
 * retry_max ([general]); authentication failures use SCHED_AUTH_FACTOR
 * times both, capped at SCHED_AUTH_CAP, so the server does not lock the
 * account. */
#define SCHED_AUTH_FACTOR 10
#define SCHED_AUTH_CAP (6 * 3600)

struct sched;
struct sched_job;

enum sched_job_state {
	SCHED_IDLE,		/* neither queued nor syncing */
	SCHED_QUEUED,		/* waiting for a connection slot */
	SCHED_RUNNING,		/* its sync holds a slot */
};

/*
 * The job's sync ended: r is its result (valid during the call only), or
 * NULL when the sync could not start (out of memory, already logged).  The
 * job is SCHED_IDLE again and its slot is free.
 */
typedef void sched_done_fn(struct sched_job *job, const struct mirror_result *r,
    void *arg);
/* Called once the queue has been served (after every sched_enqueue(),
 * sched_fill() and sync end), so the owner can report what is running. */
typedef void sched_changed_fn(struct sched *s, void *arg);

/* A scheduler on loop giving out max_connections slots (0 counts as 1).
 * changed may be NULL.  NULL on allocation failure. */
struct sched *sched_new(struct ev_loop *loop, unsigned max_connections,
    sched_changed_fn *changed, void *arg);
/* Frees the scheduler and every job still in it (their syncs stopped,
 * uncommitted appends rolled back, no done callback): pointers to those
 * jobs go stale.  Sets *s NULL. */
void sched_free(struct sched **s);
/* A new limit, say after a reload: syncs above it run on to their end;
 * free slots are given out at the next sched_fill() or sched_enqueue(). */
void sched_set_max_connections(struct sched *s, unsigned max_connections);
/* Starts queued syncs, oldest first, while slots are free. */
void sched_fill(struct sched *s);
/* Syncs running now. */
unsigned sched_running(const struct sched *s);

/* A job for account (whose config, at least as long as the job, the sync
 * is started with), SCHED_IDLE; done is called at the end of each of its
 * syncs.  NULL on allocation failure. */
struct sched_job *sched_job_new(struct sched *s, const struct config *config,
    const struct account *account, sched_done_fn *done, void *arg);
/* Takes the job out of the queue or stops its sync (uncommitted appends
 * rolled back, done not called) and frees it; the slot it held is given out
 * at the next sched_fill() or sched_enqueue(), so that stopping everything
 * starts nothing.  NULL: nothing.  Sets *job NULL. */
void sched_job_free(struct sched_job **job);
/* A SCHED_IDLE job joins the end of the queue, and the queue is served (it
 * may be SCHED_RUNNING on return, or already done if its sync could not
 * start).  Returns false, doing nothing, for a job queued or running. */
bool sched_enqueue(struct sched_job *job);
enum sched_job_state sched_job_state(const struct sched_job *job);
const struct account *sched_job_account(const struct sched_job *job);

/* The delay before retry number failures (1, 2, ...) of a sync or a push
 * connection, without jitter; auth: the failure was authentication. */
unsigned sched_backoff(const struct config *config, unsigned failures,
    bool auth);

/*
 * When the first sync of account number index (0-based) of count is due, in
 * seconds from the daemon's start, u being random in [0, 1): the first
 * syncs are spread evenly over a window of count / SCHED_FIRST_RATE
 * seconds, at least SCHED_FIRST_MIN and at most the account's interval,
 * each at a random point of its own slot.  So 10,000 accounts do not all
 * log in during the first seconds (the queue would hold them, but their
 * next syncs and push connections would then come in step), and the
 * later syncs, an interval apart, stay spread.
 */
#define SCHED_FIRST_RATE 20	/* first syncs a second, on average */
#define SCHED_FIRST_MIN 2.0	/* seconds: a few accounts start at once */
double sched_first_delay(unsigned index, unsigned count, unsigned interval,
    double u);

/*
 * When an account's next sync is due once one ended with r (NULL: it could
 * not start), in seconds, and in *jitter_r the fraction to spread it by
 * (+-): at once if new mail was announced during a successful one (rerun);
 * its interval (5%) after any other success; sched_backoff() (20%) after
 * failure number failures (counting this one); retry_min (0: not spread,
 * and not a failure) when it could not start.
 */
double sched_next_delay(const struct config *config,
    const struct account *account, const struct mirror_result *r,
    unsigned failures, bool rerun, double *jitter_r);

/*
 * New mail announced on an account's push connection (or the connection
 * just came up: mail may have come since the last sync looked): what the
 * daemon does, given its sync job's state and its consecutive failures.
 * SCHED_PUSH_FETCH: fetch it on the push connection (no new login; only
 * INBOX changed); SCHED_PUSH_RERUN: a sync runs, another follows it at once;
 * SCHED_PUSH_NONE: a sync is queued and will see it; SCHED_PUSH_WAIT: the
 * account is failing, and the retry its backoff timed will see it (a sync
 * started at each announcement would log in as often as the server sends
 * EXISTS, however far the backoff has grown: after a refused password,
 * until the server locks the account).
 */
enum sched_push_step {
	SCHED_PUSH_FETCH,
	SCHED_PUSH_RERUN,
	SCHED_PUSH_NONE,
	SCHED_PUSH_WAIT,
};
enum sched_push_step sched_push_step(enum sched_job_state job,
    unsigned failures);

#endif
