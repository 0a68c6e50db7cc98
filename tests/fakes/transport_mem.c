#include "transport_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_EVENTS_MAX 8

struct transport_mem {
	struct transport base;
	struct ev_loop *loop;
	transport_cb *cb;
	void *arg;
	ev_idle kick;

	bool implicit_tls;
	bool open;		/* connected, until closed or failed */
	bool tls;
	bool tls_started;
	bool local;
	unsigned timeout;
	size_t chunk;
	unsigned depth;
	bool free_pending;

	enum transport_event events[MEM_EVENTS_MAX];
	size_t n_events;

	char *in;		/* pushed by the test, not read yet */
	size_t in_len, in_off;
	bool eof;

	char *out;		/* written by the client, not taken yet */
	size_t out_len;
	char *taken;

	enum transport_error_kind kind;
	char refuse[256];
	enum transport_error_kind refuse_kind;
	char error[256];
};

static struct transport_mem *last;
static unsigned busy;
static unsigned created;

static void
mem_arm(struct transport_mem *m)
{
	if (!ev_is_active(&m->kick)) {
		ev_idle_start(m->loop, &m->kick);
		busy++;
	}
}

static void
mem_disarm(struct transport_mem *m)
{
	if (ev_is_active(&m->kick)) {
		ev_idle_stop(m->loop, &m->kick);
		busy--;
	}
}

static void
mem_queue(struct transport_mem *m, enum transport_event event)
{
	if (m->n_events < MEM_EVENTS_MAX)
		m->events[m->n_events++] = event;
	mem_arm(m);
}

static void
mem_destroy(struct transport_mem *m)
{
	mem_disarm(m);
	if (last == m)
		last = NULL;
	free(m->in);
	free(m->out);
	free(m->taken);
	free(m);
}

/* Like the real transport: a free from inside the callback is deferred. */
static bool
mem_emit(struct transport_mem *m, enum transport_event event)
{
	m->depth++;
	m->cb(&m->base, event, m->arg);
	m->depth--;
	if (m->free_pending) {
		if (m->depth == 0)
			mem_destroy(m);
		return false;
	}
	return true;
}

static bool
mem_has_work(const struct transport_mem *m)
{
	return m->n_events > 0 || (m->open && !m->tls_started &&
	    (m->in_off < m->in_len || m->eof));
}

/* One event per loop iteration, as an ev_idle, the way the real
 * transport delivers its deferred ones. */
static void
mem_kick(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct transport_mem *m = w->data;
	enum transport_event event = TRANSPORT_READABLE;

	(void)loop;
	(void)revents;
	mem_disarm(m);
	if (m->n_events > 0) {
		event = m->events[0];
		memmove(m->events, m->events + 1,
		    --m->n_events * sizeof *m->events);
	} else if (!mem_has_work(m)) {
		return;
	}
	if (mem_emit(m, event) && mem_has_work(m))
		mem_arm(m);
}

static struct transport *
mem_create(struct ev_loop *loop, const struct transport_params *params,
    transport_cb *cb, void *arg)
{
	struct transport_mem *m;

	if ((m = calloc(1, sizeof *m)) == NULL)
		return NULL;
	m->base.ops = &transport_mem_ops;
	m->loop = loop;
	m->cb = cb;
	m->arg = arg;
	m->implicit_tls = params->tls;
	m->timeout = params->timeout;
	m->local = true;
	ev_idle_init(&m->kick, mem_kick);
	m->kick.data = m;
	last = m;
	created++;
	return &m->base;
}

static void
mem_free(struct transport *t)
{
	struct transport_mem *m = (struct transport_mem *)t;

	if (m->depth > 0) {
		m->free_pending = true;
		return;
	}
	mem_destroy(m);
}

static int
mem_connect(struct transport *t)
{
	struct transport_mem *m = (struct transport_mem *)t;

	if (m->refuse[0] != '\0') {
		snprintf(m->error, sizeof m->error, "%s", m->refuse);
		m->kind = m->refuse_kind;
		return -1;
	}
	m->open = true;
	m->tls = m->implicit_tls;
	mem_queue(m, TRANSPORT_CONNECTED);
	return 0;
}

static int
mem_start_tls(struct transport *t)
{
	struct transport_mem *m = (struct transport_mem *)t;

	if (!m->open || m->tls) {
		snprintf(m->error, sizeof m->error, "STARTTLS: %s",
		    m->tls ? "TLS is already on" : "not connected");
		m->kind = TRANSPORT_ERR_LOCAL;
		return -1;
	}
	m->tls_started = true;
	return 0;
}

static ssize_t
mem_read(struct transport *t, void *buf, size_t len)
{
	struct transport_mem *m = (struct transport_mem *)t;
	size_t n = m->in_len - m->in_off;

	if (!m->open)
		return -1;
	if (n == 0) {
		if (!m->eof)
			return 0;
		m->open = false;
		snprintf(m->error, sizeof m->error, "connection closed by peer");
		m->kind = TRANSPORT_ERR_NETWORK;
		m->n_events = 0;
		mem_queue(m, TRANSPORT_EOF);
		return -1;
	}
	if (n > len)
		n = len;
	if (m->chunk > 0 && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->in + m->in_off, n);
	m->in_off += n;
	return (ssize_t)n;
}

static int
mem_write(struct transport *t, const void *data, size_t len)
{
	struct transport_mem *m = (struct transport_mem *)t;
	char *p;

	if (!m->open)
		return -1;
	if ((p = realloc(m->out, m->out_len + len + 1)) == NULL)
		return -1;
	m->out = p;
	memcpy(m->out + m->out_len, data, len);
	m->out_len += len;
	m->out[m->out_len] = '\0';
	return 0;
}

static size_t
mem_queued(const struct transport *t)
{
	(void)t;
	return 0;
}

static void
mem_expect(struct transport *t, uint64_t bytes)
{
	(void)t;
	(void)bytes;
}

static void
mem_set_timeout(struct transport *t, unsigned timeout)
{
	((struct transport_mem *)t)->timeout = timeout;
}

static void
mem_close(struct transport *t)
{
	struct transport_mem *m = (struct transport_mem *)t;

	m->open = false;
	m->n_events = 0;
	mem_disarm(m);
}

static bool
mem_is_tls(const struct transport *t)
{
	return ((const struct transport_mem *)t)->tls;
}

static bool
mem_peer_is_local(const struct transport *t)
{
	return ((const struct transport_mem *)t)->local;
}

static bool
mem_tls_resumed(const struct transport *t)
{
	(void)t;
	return false;
}

static const char *
mem_description(const struct transport *t)
{
	return ((const struct transport_mem *)t)->tls ? "TLS (in memory)" :
	    "plain";
}

static const char *
mem_error(const struct transport *t)
{
	return ((const struct transport_mem *)t)->error;
}

static enum transport_error_kind
mem_error_kind(const struct transport *t)
{
	return ((const struct transport_mem *)t)->kind;
}

const struct transport_ops transport_mem_ops = {
	.create = mem_create,
	.free = mem_free,
	.connect = mem_connect,
	.start_tls = mem_start_tls,
	.read = mem_read,
	.write = mem_write,
	.queued = mem_queued,
	.expect = mem_expect,
	.set_timeout = mem_set_timeout,
	.close = mem_close,
	.is_tls = mem_is_tls,
	.peer_is_local = mem_peer_is_local,
	.tls_resumed = mem_tls_resumed,
	.description = mem_description,
	.error = mem_error,
	.error_kind = mem_error_kind,
};

struct transport_mem *
transport_mem_last(void)
{
	return last;
}

unsigned
transport_mem_created(void)
{
	return created;
}

void
transport_mem_reset(void)
{
	last = NULL;
}

bool
transport_mem_busy(void)
{
	return busy > 0;
}

void
transport_mem_push_len(struct transport_mem *m, const void *bytes,
    size_t len)
{
	char *p;

	if ((p = realloc(m->in, m->in_len + len)) == NULL)
		abort();
	m->in = p;
	memcpy(m->in + m->in_len, bytes, len);
	m->in_len += len;
	if (m->open && !m->tls_started)
		mem_arm(m);
}

void
transport_mem_push(struct transport_mem *m, const char *bytes)
{
	transport_mem_push_len(m, bytes, strlen(bytes));
}

void
transport_mem_set_chunk(struct transport_mem *m, size_t n)
{
	m->chunk = n;
}

void
transport_mem_eof(struct transport_mem *m)
{
	m->eof = true;
	if (m->open && !m->tls_started)
		mem_arm(m);
}

void
transport_mem_fail(struct transport_mem *m, enum transport_event event,
    enum transport_error_kind kind, const char *message)
{
	snprintf(m->error, sizeof m->error, "%s", message);
	m->kind = kind;
	m->open = false;
	m->n_events = 0;
	mem_queue(m, event);
}

void
transport_mem_refuse(struct transport_mem *m, enum transport_error_kind kind,
    const char *message)
{
	snprintf(m->refuse, sizeof m->refuse, "%s", message);
	m->refuse_kind = kind;
}

const char *
transport_mem_take(struct transport_mem *m)
{
	free(m->taken);
	m->taken = m->out != NULL ? m->out : strdup("");
	m->out = NULL;
	m->out_len = 0;
	return m->taken;
}

bool
transport_mem_tls_started(const struct transport_mem *m)
{
	return m->tls_started;
}

void
transport_mem_tls_ready(struct transport_mem *m)
{
	m->tls_started = false;
	m->tls = true;
	mem_queue(m, TRANSPORT_TLS_READY);
}

unsigned
transport_mem_timeout(const struct transport_mem *m)
{
	return m->timeout;
}

void
transport_mem_set_local(struct transport_mem *m, bool local)
{
	m->local = local;
}

bool
transport_mem_closed(const struct transport_mem *m)
{
	return !m->open;
}
