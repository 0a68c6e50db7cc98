/*
 * scheduler: the scheduler's decisions with the syncs replaced at link time
 * (mirror_start()/mirror_free() below): queue order, slot accounting, what
 * runs next when a sync ends, could not start or its job is freed, what a
 * done callback may do, the backoff table and when the next sync is due.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scheduler.h"

#define MAX_MIRRORS 64
#define MAX_JOBS 8
#define MIRROR_MESSAGE_SIZE sizeof ((struct mirror_result *)0)->message

/* A sync in progress, as the scheduler sees it. */
struct mirror {
	const struct account *account;
	mirror_done_fn *done;
	void *arg;
	struct mirror_result result;
	bool live;
};

static struct fake {
	struct mirror mirrors[MAX_MIRRORS];
	size_t n_mirrors;
	const char *started[MAX_MIRRORS];	/* account names, in order */
	size_t n_started;
	unsigned freed;
	const char *fail_start;		/* mirror_start() fails for it */
} fake;

struct mirror *
mirror_start(struct ev_loop *loop, const struct config *config,
    const struct account *account, mirror_done_fn *done, void *arg)
{
	struct mirror *m;

	(void)loop;
	(void)config;
	if (fake.fail_start != NULL &&
	    strcmp(fake.fail_start, account->name) == 0)
		return NULL;
	assert_true(fake.n_mirrors < MAX_MIRRORS);
	m = &fake.mirrors[fake.n_mirrors++];
	m->account = account;
	m->done = done;
	m->arg = arg;
	m->live = true;
	snprintf(m->result.message, sizeof m->result.message, "%s ended",
	    account->name);
	fake.started[fake.n_started++] = account->name;
	return m;
}

void
mirror_free(struct mirror **mp)
{
	struct mirror *m = *mp;

	*mp = NULL;
	if (m == NULL)
		return;
	assert_true(m->live);
	m->live = false;
	/* A result read after this would be garbage. */
	memset(&m->result, 0xa5, sizeof m->result);
	fake.freed++;
}

/* The running sync of account name ends with error. */
static void
finish(const char *name, enum mirror_error error)
{
	for (size_t i = 0; i < fake.n_mirrors; i++) {
		struct mirror *m = &fake.mirrors[i];

		if (m->live && strcmp(m->account->name, name) == 0) {
			m->result.error = error;
			m->done(m, &m->result, m->arg);
			return;
		}
	}
	fail_msg("no sync of %s running", name);
}

/* What the done callbacks saw, and what they do. */
struct world {
	struct sched *s;
	struct config config;
	struct account accounts[MAX_JOBS];
	struct sched_job *jobs[MAX_JOBS];
	char names[MAX_JOBS][8];
	const char *done_order[MAX_MIRRORS];
	char done_message[MAX_MIRRORS][MIRROR_MESSAGE_SIZE];
	bool done_null[MAX_MIRRORS];
	size_t n_done;
	unsigned changed;
	enum sched_job_state state_in_done;
	unsigned running_in_done;
	/* per job, what its done callback does: queue the job again (so many
	 * times), free it */
	unsigned requeue[MAX_JOBS];
	bool free_self[MAX_JOBS];
};

static size_t
job_index(struct world *w, struct sched_job *job)
{
	for (size_t i = 0; i < MAX_JOBS; i++)
		if (w->jobs[i] == job)
			return i;
	fail_msg("unknown job");
	return 0;
}

static struct world *current;

static void
on_done(struct sched_job *job, const struct mirror_result *r, void *arg)
{
	struct world *w = arg;
	size_t i = job_index(w, job);

	w->done_order[w->n_done] = sched_job_account(job)->name;
	w->done_null[w->n_done] = r == NULL;
	if (r != NULL)
		snprintf(w->done_message[w->n_done],
		    sizeof w->done_message[0], "%s", r->message);
	w->n_done++;
	w->state_in_done = sched_job_state(job);
	w->running_in_done = sched_running(w->s);
	if (w->requeue[i] > 0) {
		w->requeue[i]--;
		assert_true(sched_enqueue(job));
	}
	if (w->free_self[i])
		sched_job_free(&w->jobs[i]);
}

static void
on_changed(struct sched *s, void *arg)
{
	struct world *w = arg;

	assert_ptr_equal(s, w->s);
	w->changed++;
}

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof *w);

	assert_non_null(w);
	memset(&fake, 0, sizeof fake);
	w->config.retry_min = 30;
	w->config.retry_max = 3600;
	w->s = sched_new(NULL, 2, on_changed, w);
	assert_non_null(w->s);
	for (size_t i = 0; i < MAX_JOBS; i++) {
		snprintf(w->names[i], sizeof w->names[i], "a%zu", i);
		w->accounts[i].name = w->names[i];
		w->jobs[i] = sched_job_new(w->s, &w->config, &w->accounts[i],
		    on_done, w);
		assert_non_null(w->jobs[i]);
		assert_int_equal(sched_job_state(w->jobs[i]), SCHED_IDLE);
	}
	current = w;
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	sched_free(&w->s);
	assert_null(w->s);
	free(w);
	return 0;
}

static void
assert_started(size_t n, const char *const *names)
{
	assert_int_equal(fake.n_started, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(fake.started[i], names[i]);
}

/* Two slots: the first two queued run, the rest wait in order and each
 * takes the slot the next ending sync frees. */
static void
test_fifo_and_slots(void **state)
{
	struct world *w = *state;

	for (size_t i = 0; i < 4; i++)
		assert_true(sched_enqueue(w->jobs[i]));
	assert_started(2, (const char *[]){ "a0", "a1" });
	assert_int_equal(sched_running(w->s), 2);
	assert_int_equal(sched_job_state(w->jobs[0]), SCHED_RUNNING);
	assert_int_equal(sched_job_state(w->jobs[1]), SCHED_RUNNING);
	assert_int_equal(sched_job_state(w->jobs[2]), SCHED_QUEUED);
	assert_int_equal(sched_job_state(w->jobs[3]), SCHED_QUEUED);

	finish("a1", MIRROR_OK);
	assert_started(3, (const char *[]){ "a0", "a1", "a2" });
	assert_int_equal(sched_job_state(w->jobs[1]), SCHED_IDLE);
	assert_int_equal(sched_running(w->s), 2);

	finish("a0", MIRROR_ERR_AUTH);
	finish("a2", MIRROR_OK);
	assert_started(4, (const char *[]){ "a0", "a1", "a2", "a3" });
	assert_int_equal(sched_running(w->s), 1);
	finish("a3", MIRROR_OK);
	assert_int_equal(sched_running(w->s), 0);
	assert_int_equal(w->n_done, 4);
	assert_string_equal(w->done_order[0], "a1");
	assert_string_equal(w->done_order[1], "a0");
	assert_string_equal(w->done_order[2], "a2");
	assert_string_equal(w->done_order[3], "a3");
	assert_int_equal(fake.freed, 4);
}

/* done sees the result after the sync is freed (a copy), the job idle and
 * its slot already free. */
static void
test_done_sees_copy_idle_and_free_slot(void **state)
{
	struct world *w = *state;

	assert_true(sched_enqueue(w->jobs[0]));
	assert_true(sched_enqueue(w->jobs[1]));
	finish("a0", MIRROR_ERR_NETWORK);
	assert_int_equal(w->n_done, 1);
	assert_false(w->done_null[0]);
	assert_string_equal(w->done_message[0], "a0 ended");
	assert_int_equal(w->state_in_done, SCHED_IDLE);
	assert_int_equal(w->running_in_done, 1);
	assert_int_equal(fake.freed, 1);
}

/* A job queued or running is not queued twice. */
static void
test_enqueue_only_idle(void **state)
{
	struct world *w = *state;

	sched_set_max_connections(w->s, 1);
	assert_true(sched_enqueue(w->jobs[0]));
	assert_true(sched_enqueue(w->jobs[1]));
	assert_false(sched_enqueue(w->jobs[0]));
	assert_false(sched_enqueue(w->jobs[1]));
	finish("a0", MIRROR_OK);
	finish("a1", MIRROR_OK);
	assert_started(2, (const char *[]){ "a0", "a1" });
	assert_int_equal(sched_running(w->s), 0);
}

/* Queued again from its own done, a job goes behind those already
 * waiting. */
static void
test_requeue_from_done_is_fair(void **state)
{
	struct world *w = *state;

	sched_set_max_connections(w->s, 1);
	w->requeue[0] = 1;
	assert_true(sched_enqueue(w->jobs[0]));
	assert_true(sched_enqueue(w->jobs[1]));
	finish("a0", MIRROR_OK);
	assert_int_equal(sched_job_state(w->jobs[1]), SCHED_RUNNING);
	assert_int_equal(sched_job_state(w->jobs[0]), SCHED_QUEUED);
	finish("a1", MIRROR_OK);
	assert_started(3, (const char *[]){ "a0", "a1", "a0" });
	finish("a0", MIRROR_OK);
	assert_int_equal(sched_running(w->s), 0);
}

/* A sync that cannot start takes no slot: done(NULL) at once, and the next
 * in the queue starts in the same pass. */
static void
test_start_failure(void **state)
{
	struct world *w = *state;

	sched_set_max_connections(w->s, 1);
	fake.fail_start = "a0";
	assert_true(sched_enqueue(w->jobs[0]));
	assert_int_equal(w->n_done, 1);
	assert_true(w->done_null[0]);
	assert_int_equal(sched_job_state(w->jobs[0]), SCHED_IDLE);
	assert_int_equal(sched_running(w->s), 0);

	/* Behind a running one: it fails when its turn comes. */
	fake.fail_start = "a2";
	assert_true(sched_enqueue(w->jobs[1]));
	assert_true(sched_enqueue(w->jobs[2]));
	assert_true(sched_enqueue(w->jobs[3]));
	finish("a1", MIRROR_OK);
	assert_int_equal(w->n_done, 3);
	assert_string_equal(w->done_order[2], "a2");
	assert_true(w->done_null[2]);
	assert_int_equal(sched_job_state(w->jobs[3]), SCHED_RUNNING);
	assert_started(2, (const char *[]){ "a1", "a3" });
}

/* A done that queues its job again when the sync could not start, from
 * inside the pass that tried it: the job goes behind those waiting, and a
 * pass with a free slot and nothing else waiting tries it again itself (no
 * recursion). */
static void
test_start_failure_requeue_in_pass(void **state)
{
	struct world *w = *state;

	sched_set_max_connections(w->s, 1);
	assert_true(sched_enqueue(w->jobs[1]));
	assert_true(sched_enqueue(w->jobs[0]));
	assert_true(sched_enqueue(w->jobs[2]));
	fake.fail_start = "a0";
	w->requeue[0] = 2;
	finish("a1", MIRROR_OK);
	assert_int_equal(w->n_done, 2);
	assert_string_equal(w->done_order[1], "a0");
	assert_true(w->done_null[1]);
	assert_int_equal(sched_job_state(w->jobs[2]), SCHED_RUNNING);
	assert_int_equal(sched_job_state(w->jobs[0]), SCHED_QUEUED);

	/* a0 fails, is queued again, and the same pass tries it once more. */
	finish("a2", MIRROR_OK);
	assert_int_equal(w->n_done, 5);
	assert_string_equal(w->done_order[2], "a2");
	for (size_t i = 3; i < 5; i++) {
		assert_string_equal(w->done_order[i], "a0");
		assert_true(w->done_null[i]);
	}
	assert_int_equal(w->requeue[0], 0);
	assert_int_equal(sched_job_state(w->jobs[0]), SCHED_IDLE);
	assert_int_equal(sched_running(w->s), 0);
	assert_started(2, (const char *[]){ "a1", "a2" });
}

/* Freeing a running job frees its slot but starts nothing: stopping every
 * job must not start the queued ones.  sched_fill() gives the slot out. */
static void
test_free_running_starts_nothing(void **state)
{
	struct world *w = *state;

	assert_true(sched_enqueue(w->jobs[0]));
	assert_true(sched_enqueue(w->jobs[1]));
	assert_true(sched_enqueue(w->jobs[2]));
	sched_job_free(&w->jobs[0]);
	assert_null(w->jobs[0]);
	assert_int_equal(fake.freed, 1);
	assert_int_equal(sched_running(w->s), 1);
	assert_int_equal(sched_job_state(w->jobs[2]), SCHED_QUEUED);
	assert_int_equal(w->n_done, 0);
	sched_fill(w->s);
	assert_int_equal(sched_job_state(w->jobs[2]), SCHED_RUNNING);
	assert_int_equal(sched_running(w->s), 2);
}

/* A queued job leaves the queue from anywhere in it; the others keep their
 * order and the tail stays right. */
static void
test_free_queued(void **state)
{
	struct world *w = *state;

	sched_set_max_connections(w->s, 1);
	for (size_t i = 0; i < 4; i++)
		assert_true(sched_enqueue(w->jobs[i]));
	sched_job_free(&w->jobs[2]);	/* the middle */
	sched_job_free(&w->jobs[3]);	/* the tail */
	assert_true(sched_enqueue(w->jobs[4]));
	finish("a0", MIRROR_OK);
	finish("a1", MIRROR_OK);
	finish("a4", MIRROR_OK);
	assert_started(3, (const char *[]){ "a0", "a1", "a4" });
	assert_int_equal(fake.freed, 3);
}

/* A done callback may free its own job; the slot still goes on. */
static void
test_done_frees_own_job(void **state)
{
	struct world *w = *state;

	sched_set_max_connections(w->s, 1);
	w->free_self[0] = true;
	assert_true(sched_enqueue(w->jobs[0]));
	assert_true(sched_enqueue(w->jobs[1]));
	finish("a0", MIRROR_OK);
	assert_null(w->jobs[0]);
	assert_int_equal(sched_job_state(w->jobs[1]), SCHED_RUNNING);
	assert_int_equal(sched_running(w->s), 1);
}

/* A lower limit lets running syncs end; a higher one gives out slots at the
 * next fill. */
static void
test_limit_changes(void **state)
{
	struct world *w = *state;

	for (size_t i = 0; i < 5; i++)
		assert_true(sched_enqueue(w->jobs[i]));
	sched_set_max_connections(w->s, 1);
	assert_int_equal(sched_running(w->s), 2);
	finish("a0", MIRROR_OK);
	assert_int_equal(sched_running(w->s), 1);
	assert_int_equal(sched_job_state(w->jobs[2]), SCHED_QUEUED);
	finish("a1", MIRROR_OK);
	assert_int_equal(sched_job_state(w->jobs[2]), SCHED_RUNNING);
	sched_set_max_connections(w->s, 3);
	assert_int_equal(sched_running(w->s), 1);
	sched_fill(w->s);
	assert_int_equal(sched_running(w->s), 3);
	assert_started(5, (const char *[]){ "a0", "a1", "a2", "a3", "a4" });
	/* 0 would stop everything for good: it counts as 1. */
	sched_set_max_connections(w->s, 0);
	finish("a2", MIRROR_OK);
	finish("a3", MIRROR_OK);
	finish("a4", MIRROR_OK);
	assert_true(sched_enqueue(w->jobs[0]));
	assert_int_equal(sched_running(w->s), 1);
}

/* The owner hears once per pass over the queue. */
static void
test_changed_once_per_pass(void **state)
{
	struct world *w = *state;

	assert_true(sched_enqueue(w->jobs[0]));
	assert_int_equal(w->changed, 1);
	assert_true(sched_enqueue(w->jobs[1]));
	assert_int_equal(w->changed, 2);
	/* The requeue inside done is a pass, and so is the one after it. */
	w->requeue[0] = 1;
	finish("a0", MIRROR_OK);
	assert_int_equal(w->changed, 4);
	assert_false(sched_enqueue(w->jobs[0]));
	assert_int_equal(w->changed, 4);
}

/* Freeing the scheduler stops every sync without a done callback. */
static void
test_free_stops_all(void **state)
{
	struct world *w = *state;

	for (size_t i = 0; i < 4; i++)
		assert_true(sched_enqueue(w->jobs[i]));
	sched_free(&w->s);
	assert_int_equal(fake.freed, 2);
	assert_int_equal(w->n_done, 0);
	for (size_t i = 0; i < fake.n_mirrors; i++)
		assert_false(fake.mirrors[i].live);
}

static void
test_backoff(void **state)
{
	struct config c = { .retry_min = 30, .retry_max = 3600 };
	static const unsigned plain[] = { 30, 60, 120, 240, 480, 960, 1920,
	    3600, 3600 };
	static const unsigned auth[] = { 300, 600, 1200, 2400, 4800, 9600,
	    19200, 21600, 21600 };

	(void)state;
	for (unsigned i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		assert_int_equal(sched_backoff(&c, i + 1, false), plain[i]);
		assert_int_equal(sched_backoff(&c, i + 1, true), auth[i]);
	}
	assert_int_equal(sched_backoff(&c, 1000000, false), 3600);
	/* retry_max below the authentication start: that start is the cap. */
	c.retry_min = c.retry_max = 60;
	assert_int_equal(sched_backoff(&c, 1, false), 60);
	assert_int_equal(sched_backoff(&c, 5, false), 60);
	assert_int_equal(sched_backoff(&c, 1, true), 600);
	assert_int_equal(sched_backoff(&c, 5, true), 600);
	/* Both past the cap. */
	c.retry_min = 3 * 3600;
	c.retry_max = 24 * 3600;
	assert_int_equal(sched_backoff(&c, 1, true), SCHED_AUTH_CAP);
	assert_int_equal(sched_backoff(&c, 2, false), 6 * 3600);
}

/* After a sync: at once for mail announced during a good one, the
 * interval after a success, the backoff after a failure (slower for
 * authentication), retry_min unspread when it could not start. */
static void
test_next_delay(void **state)
{
	struct config c = { .retry_min = 30, .retry_max = 3600 };
	struct account a = { .name = "a", .interval = 900 };
	struct mirror_result r = { .error = MIRROR_OK };
	double fraction = -1;

	(void)state;
	assert_true(sched_next_delay(&c, &a, &r, 0, false, &fraction) == 900);
	assert_true(fraction == 0.05);
	assert_true(sched_next_delay(&c, &a, &r, 0, true, &fraction) == 0);
	assert_true(fraction == 0);

	r.error = MIRROR_ERR_NETWORK;
	assert_true(sched_next_delay(&c, &a, &r, 1, false, &fraction) == 30);
	assert_true(fraction == 0.2);
	/* New mail during a failed sync does not skip the backoff. */
	assert_true(sched_next_delay(&c, &a, &r, 3, true, &fraction) == 120);
	assert_true(fraction == 0.2);
	r.error = MIRROR_ERR_AUTH;
	assert_true(sched_next_delay(&c, &a, &r, 1, false, &fraction) == 300);
	assert_true(fraction == 0.2);

	assert_true(sched_next_delay(&c, &a, NULL, 5, true, &fraction) == 30);
	assert_true(fraction == 0);
}

/* New mail on the push connection: fetched there only while nothing else
 * is under way and the account is not failing; a failing account's mail
 * waits for its retry, never a login sooner than the backoff allows. */
static void
test_push_step(void **state)
{
	(void)state;
	assert_int_equal(sched_push_step(SCHED_IDLE, 0), SCHED_PUSH_FETCH);
	assert_int_equal(sched_push_step(SCHED_RUNNING, 0), SCHED_PUSH_RERUN);
	assert_int_equal(sched_push_step(SCHED_RUNNING, 3), SCHED_PUSH_RERUN);
	assert_int_equal(sched_push_step(SCHED_QUEUED, 0), SCHED_PUSH_NONE);
	assert_int_equal(sched_push_step(SCHED_QUEUED, 2), SCHED_PUSH_NONE);
	/* Failing: the retry the backoff timed sees the mail; announcements
	 * (as many as the server likes) log in no sooner. */
	assert_int_equal(sched_push_step(SCHED_IDLE, 1), SCHED_PUSH_WAIT);
	assert_int_equal(sched_push_step(SCHED_IDLE, 7), SCHED_PUSH_WAIT);
}

/* The first syncs: a few accounts within SCHED_FIRST_MIN; many over
 * count / SCHED_FIRST_RATE seconds, never past an account's interval; each
 * in its own slot, so no second holds more than its share. */
static void
test_first_delay(void **state)
{
	unsigned per_second[600] = { 0 };
	double d, prev = -1;

	(void)state;
	assert_true(sched_first_delay(0, 1, 900, 0) == 0);
	assert_true(sched_first_delay(0, 1, 900, 0.5) == 0.5 * SCHED_FIRST_MIN);
	assert_true(sched_first_delay(2, 3, 900, 0.999) < SCHED_FIRST_MIN);
	/* 1,000 accounts: 50 s; 10,000: 500 s; an interval of 60 s caps it. */
	assert_true(sched_first_delay(999, 1000, 900, 0.999) < 50.0);
	assert_true(sched_first_delay(999, 1000, 900, 0.999) > 49.9);
	assert_true(sched_first_delay(9999, 10000, 900, 0.999) > 499.9);
	assert_true(sched_first_delay(9999, 10000, 60, 0.999) < 60.0);
	assert_true(sched_first_delay(9999, 10000, 60, 0.999) > 59.9);
	assert_true(sched_first_delay(5000, 10000, 60, 0) == 30.0);
	/* Out-of-range arguments stay in the window. */
	assert_true(sched_first_delay(7, 0, 900, 0.5) < SCHED_FIRST_MIN);
	assert_true(sched_first_delay(20000, 10000, 900, 0.5) < 500.0);
	assert_true(sched_first_delay(0, 10, 900, 1.0) == 0);
	assert_true(sched_first_delay(0, 10, 900, -3) == 0);

	/* Ordered by index whatever the random part, and 10,000 accounts
	 * start at most SCHED_FIRST_RATE (+1 at a slot's edge) a second. */
	for (unsigned i = 0; i < 10000; i++) {
		d = sched_first_delay(i, 10000, 3600,
		    (double)((i * 7919u) % 1000) / 1000);
		assert_true(d > prev);
		assert_true(d < 500.0);
		per_second[(unsigned)d]++;
		prev = d;
	}
	for (unsigned s = 0; s < 500; s++) {
		assert_true(per_second[s] >= SCHED_FIRST_RATE - 1);
		assert_true(per_second[s] <= SCHED_FIRST_RATE + 1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_fifo_and_slots),
		T(test_done_sees_copy_idle_and_free_slot),
		T(test_enqueue_only_idle),
		T(test_requeue_from_done_is_fair),
		T(test_start_failure),
		T(test_start_failure_requeue_in_pass),
		T(test_free_running_starts_nothing),
		T(test_free_queued),
		T(test_done_frees_own_job),
		T(test_limit_changes),
		T(test_changed_once_per_pass),
		T(test_free_stops_all),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_next_delay),
		cmocka_unit_test(test_push_step),
		cmocka_unit_test(test_first_delay),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
