/*
 * Progress lines while a mailbox's bodies come in: every PROGRESS_INTERVAL
 * seconds, from a timer that runs only while a mailbox is being fetched
 * (none while a run waits or idles), the mailbox's messages and bytes
 * received of those listed, the rate and the time left, and the run's
 * totals with a rough time left for the account (its remaining mailboxes
 * counted by STATUS).  At "info" for a first sync or a big one, at "debug"
 * for a small incremental one (plan_progress_loud()).
 */
#include "mirror/mirror_int.h"

#include "log.h"
#include "util/num.h"

static void
on_progress_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mirror *m = w->data;
	ev_tstamp elapsed = ev_now(loop) - m->mbx_started;
	double rate, mbx_left = 0, run_left = 0, avg;
	unsigned long long run_more = 0;

	(void)revents;
	if (m->step != MS_FETCHING || m->ms == NULL || elapsed <= 0)
		return;
	rate = m->mbx_recv_bytes / elapsed;
	if (m->todo_bytes > m->mbx_recv_bytes)
		mbx_left = (double)(m->todo_bytes - m->mbx_recv_bytes);
	if (m->run_expected > m->run_recv_messages)
		run_more = m->run_expected - m->run_recv_messages;
	avg = m->run_recv_messages > 0 ? (double)m->run_recv_bytes /
	    m->run_recv_messages : 0;
	run_left = run_more * avg > mbx_left ? run_more * avg : mbx_left;
	log_msg(plan_progress_loud(m->first_sync, m->n_todo, m->todo_bytes) ?
	    LOGL_INFO : LOGL_DEBUG, "%s: mailbox %s: %llu/%zu messages, "
	    "%.1f/%.1f MB, %.2f MB/s, about %.0fs left; account: %llu "
	    "%s, %.1f MB, mailbox %zu of %zu, about %.0fs left",
	    m->prefix, m->mbxs[m->cur].display, m->mbx_recv_messages,
	    m->n_todo, m->mbx_recv_bytes / 1e6, m->todo_bytes / 1e6,
	    rate / 1e6, rate > 0 ? mbx_left / rate : 0, m->run_recv_messages,
	    num_plural(m->run_recv_messages, "message", "messages"),
	    m->run_recv_bytes / 1e6, m->cur + 1, m->n_mbxs,
	    rate > 0 ? run_left / rate : 0);
}

void
progress_init(struct mirror *m)
{
	ev_timer_init(&m->progress_timer, on_progress_timer, PROGRESS_INTERVAL,
	    PROGRESS_INTERVAL);
	m->progress_timer.data = m;
}

/* The plan is known: about how many messages the run brings. */
void
progress_plan_ready(struct mirror *m)
{
	struct plan_status st;
	struct plan_known known;

	m->run_expected = 0;
	for (size_t i = 0; i < m->n_mbxs; i++) {
		mailboxes_plan_view(m, &m->mbxs[i], &st, &known);
		m->run_expected += plan_new_estimate(&st, &known);
	}
}

/* A mailbox's batches begin: a line every PROGRESS_INTERVAL from now. */
void
progress_start(struct mirror *m)
{
	ev_timer_stop(m->loop, &m->progress_timer);
	ev_timer_set(&m->progress_timer, PROGRESS_INTERVAL, PROGRESS_INTERVAL);
	ev_timer_start(m->loop, &m->progress_timer);
}

/* len bytes of a message body written; whole: its last. */
void
progress_received(struct mirror *m, size_t len, bool whole)
{
	m->mbx_recv_bytes += len;
	m->run_recv_bytes += len;
	if (whole) {
		m->mbx_recv_messages++;
		m->run_recv_messages++;
	}
}

void
progress_stop(struct mirror *m)
{
	ev_timer_stop(m->loop, &m->progress_timer);
}
