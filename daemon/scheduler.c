#include "scheduler.h"

#include <stdlib.h>

#include "log.h"

struct sched_job {
	struct sched *s;
	struct sched_job *next;		/* every job of s */
	struct sched_job *qnext;	/* the queue */
	const struct config *config;
	const struct account *account;
	enum sched_job_state state;
	struct mirror *mirror;		/* while SCHED_RUNNING */
	sched_done_fn *done;
	void *arg;
};

struct sched {
	struct ev_loop *loop;
	unsigned max_connections;
	unsigned running;
	struct sched_job *jobs;
	struct sched_job *qhead, **qtail;
	bool filling;			/* sched_fill() is on the stack */
	sched_changed_fn *changed;
	void *changed_arg;
};

static const char *job_state_name(enum sched_job_state);
static void job_set_state(struct sched_job *, enum sched_job_state);
static struct sched_job *dequeue(struct sched *);
static void unqueue(struct sched_job *);
static void start(struct sched_job *);
static void on_mirror_done(struct mirror *, const struct mirror_result *,
    void *);

static const char *
job_state_name(enum sched_job_state state)
{
	switch (state) {
	case SCHED_IDLE:
		return "idle";
	case SCHED_QUEUED:
		return "queued";
	case SCHED_RUNNING:
		return "running";
	}
	return "?";
}

static void
job_set_state(struct sched_job *job, enum sched_job_state state)
{
	log_debug("account %s: sync %s -> %s", job->account->name,
	    job_state_name(job->state), job_state_name(state));
	job->state = state;
}

struct sched *
sched_new(struct ev_loop *loop, unsigned max_connections,
    sched_changed_fn *changed, void *arg)
{
	struct sched *s;

	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->loop = loop;
	s->qtail = &s->qhead;
	s->changed = changed;
	s->changed_arg = arg;
	sched_set_max_connections(s, max_connections);
	return s;
}

void
sched_free(struct sched **sp)
{
	struct sched *s = *sp;

	*sp = NULL;
	if (s == NULL)
		return;
	while (s->jobs != NULL) {
		struct sched_job *job = s->jobs;

		sched_job_free(&job);
	}
	free(s);
}

void
sched_set_max_connections(struct sched *s, unsigned max_connections)
{
	s->max_connections = max_connections > 0 ? max_connections : 1;
}

unsigned
sched_running(const struct sched *s)
{
	return s->running;
}

static struct sched_job *
dequeue(struct sched *s)
{
	struct sched_job *job = s->qhead;

	s->qhead = job->qnext;
	if (s->qhead == NULL)
		s->qtail = &s->qhead;
	job->qnext = NULL;
	return job;
}

static void
unqueue(struct sched_job *job)
{
	struct sched *s = job->s;
	struct sched_job **pp;

	for (pp = &s->qhead; *pp != NULL; pp = &(*pp)->qnext)
		if (*pp == job) {
			*pp = job->qnext;
			break;
		}
	job->qnext = NULL;
	s->qtail = &s->qhead;
	while (*s->qtail != NULL)
		s->qtail = &(*s->qtail)->qnext;
}

/* The job's done may run from here (a sync that could not start) and free
 * the job: nothing touches it afterwards. */
static void
start(struct sched_job *job)
{
	struct sched *s = job->s;

	job->mirror = mirror_start(s->loop, job->config, job->account,
	    on_mirror_done, job);
	if (job->mirror == NULL) {
		log_error("account %s: out of memory", job->account->name);
		job_set_state(job, SCHED_IDLE);
		job->done(job, NULL, job->arg);
		return;
	}
	job_set_state(job, SCHED_RUNNING);
	s->running++;
}

void
sched_fill(struct sched *s)
{
	/* A done callback run from start() may queue jobs: the loop below
	 * serves them, so a nested call has nothing to do. */
	if (s->filling)
		return;
	s->filling = true;
	while (s->qhead != NULL && s->running < s->max_connections)
		start(dequeue(s));
	s->filling = false;
	if (s->changed != NULL)
		s->changed(s, s->changed_arg);
}

static void
on_mirror_done(struct mirror *m, const struct mirror_result *result,
    void *arg)
{
	struct sched_job *job = arg;
	struct sched *s = job->s;
	/* result lives inside the mirror, which goes first. */
	struct mirror_result copy = *result;

	(void)m;
	mirror_free(&job->mirror);
	s->running--;
	job_set_state(job, SCHED_IDLE);
	job->done(job, &copy, job->arg);
	sched_fill(s);
}

struct sched_job *
sched_job_new(struct sched *s, const struct config *config,
    const struct account *account, sched_done_fn *done, void *arg)
{
	struct sched_job *job;

	if ((job = calloc(1, sizeof *job)) == NULL)
		return NULL;
	job->s = s;
	job->config = config;
	job->account = account;
	job->state = SCHED_IDLE;
	job->done = done;
	job->arg = arg;
	job->next = s->jobs;
	s->jobs = job;
	return job;
}

void
sched_job_free(struct sched_job **jobp)
{
	struct sched_job *job = *jobp;
	struct sched_job **pp;
	struct sched *s;

	*jobp = NULL;
	if (job == NULL)
		return;
	s = job->s;
	if (job->state == SCHED_QUEUED)
		unqueue(job);
	if (job->state == SCHED_RUNNING)
		s->running--;
	mirror_free(&job->mirror);
	for (pp = &s->jobs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			break;
		}
	free(job);
}

bool
sched_enqueue(struct sched_job *job)
{
	struct sched *s = job->s;

	if (job->state != SCHED_IDLE)
		return false;
	job_set_state(job, SCHED_QUEUED);
	*s->qtail = job;
	s->qtail = &job->qnext;
	sched_fill(s);
	return true;
}

enum sched_job_state
sched_job_state(const struct sched_job *job)
{
	return job->state;
}

const struct account *
sched_job_account(const struct sched_job *job)
{
	return job->account;
}

unsigned
sched_backoff(const struct config *config, unsigned failures, bool auth)
{
	unsigned delay = config->retry_min, max = config->retry_max;

	if (auth) {
		delay = delay * SCHED_AUTH_FACTOR < SCHED_AUTH_CAP ?
		    delay * SCHED_AUTH_FACTOR : SCHED_AUTH_CAP;
		max = max * SCHED_AUTH_FACTOR < SCHED_AUTH_CAP ?
		    max * SCHED_AUTH_FACTOR : SCHED_AUTH_CAP;
		if (max < delay)
			max = delay;
	}

	for (unsigned i = 1; i < failures && delay < max; i++)
		delay *= 2;
	return delay < max ? delay : max;
}

double
sched_next_delay(const struct config *config, const struct account *account,
    const struct mirror_result *r, unsigned failures, bool rerun,
    double *jitter_r)
{
	*jitter_r = 0;
	if (r == NULL)
		return config->retry_min;
	if (r->error != MIRROR_OK) {
		*jitter_r = 0.2;
		return sched_backoff(config, failures,
		    r->error == MIRROR_ERR_AUTH);
	}
	if (rerun)
		return 0;
	*jitter_r = 0.05;
	return account->interval;
}

enum sched_push_step
sched_push_step(enum sched_job_state job, unsigned failures)
{
	switch (job) {
	case SCHED_RUNNING:
		return SCHED_PUSH_RERUN;
	case SCHED_QUEUED:
		return SCHED_PUSH_NONE;
	case SCHED_IDLE:
		break;
	}
	return failures > 0 ? SCHED_PUSH_WAIT : SCHED_PUSH_FETCH;
}

double
sched_first_delay(unsigned index, unsigned count, unsigned interval, double u)
{
	double window;

	if (count == 0)
		count = 1;
	if (index >= count)
		index = count - 1;
	if (!(u >= 0 && u < 1))
		u = 0;
	window = (double)count / SCHED_FIRST_RATE;
	if (window < SCHED_FIRST_MIN)
		window = SCHED_FIRST_MIN;
	if (interval > 0 && window > interval)
		window = interval;
	return window * (index + u) / count;
}
