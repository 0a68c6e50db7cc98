#include "net/resolve.h"

#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct resolve {
	pthread_mutex_t lock;
	atomic_uint refs;	/* the loop side and the worker */
	bool abandoned;		/* under lock: cancelled or delivered */
	bool done;		/* under lock: error/result are set */
	int error;
	struct addrinfo *result;

	struct ev_loop *loop;
	ev_async async;
	resolve_cb *cb;
	void *arg;
	char *host;
	char service[8];
};

static atomic_uint outstanding;
static _Atomic(resolve_getaddrinfo_fn *) lookup_fn;

static void	resolve_unref(struct resolve *);
static void	resolve_async_cb(struct ev_loop *, ev_async *, int);
static void	*resolve_worker(void *);

static void
resolve_hints(struct addrinfo *hints, int flags)
{
	memset(hints, 0, sizeof *hints);
	/*
	 * No AI_ADDRCONFIG: it hides ::1 and 127.0.0.1 on hosts without a
	 * non-loopback address of that family; an address that cannot be
	 * reached fails at once and the next one is tried.
	 */
	hints->ai_family = AF_UNSPEC;
	hints->ai_socktype = SOCK_STREAM;
	hints->ai_protocol = IPPROTO_TCP;
	hints->ai_flags = AI_NUMERICSERV | flags;
}

struct resolve *
resolve_start(struct ev_loop *loop, const char *host, uint16_t port,
    resolve_cb *cb, void *arg)
{
	struct resolve *r;
	struct addrinfo hints;
	sigset_t all, old;
	pthread_t thread;
	pthread_attr_t attr;
	int error;

	if ((r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	if ((r->host = strdup(host)) == NULL) {
		free(r);
		return NULL;
	}
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r->host);
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(r->service, sizeof r->service, "%u", (unsigned)port);
	r->loop = loop;
	r->cb = cb;
	r->arg = arg;
	atomic_init(&r->refs, 1);
	atomic_fetch_add(&outstanding, 1);
	ev_async_init(&r->async, resolve_async_cb);
	r->async.data = r;
	ev_async_start(loop, &r->async);

	/* A numeric address needs no lookup: answer from the loop. */
	resolve_hints(&hints, AI_NUMERICHOST);
	if (getaddrinfo(r->host, r->service, &hints, &r->result) == 0) {
		r->done = true;
		ev_async_send(loop, &r->async);
		return r;
	}
	r->result = NULL;

	atomic_fetch_add(&r->refs, 1);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	error = pthread_attr_init(&attr);
	if (error == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		error = pthread_create(&thread, &attr, resolve_worker, r);
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error != 0) {
		/* Report it like a resolver failure, from the loop. */
		atomic_fetch_sub(&r->refs, 1);
		r->error = EAI_AGAIN;
		r->done = true;
		ev_async_send(loop, &r->async);
	}
	return r;
}

static void *
resolve_worker(void *arg)
{
	struct resolve *r = arg;
	struct addrinfo hints, *res = NULL;
	resolve_getaddrinfo_fn *fn;
	int error;

	resolve_hints(&hints, 0);
	fn = atomic_load(&lookup_fn);
	error = (fn != NULL ? fn : getaddrinfo)(r->host, r->service, &hints,
	    &res);
	if (error != 0)
		res = NULL;

	pthread_mutex_lock(&r->lock);
	if (r->abandoned) {
		pthread_mutex_unlock(&r->lock);
		if (res != NULL)
			freeaddrinfo(res);
	} else {
		r->error = error;
		r->result = res;
		r->done = true;
		/* Under the lock: cancel cannot stop the watcher meanwhile. */
		ev_async_send(r->loop, &r->async);
		pthread_mutex_unlock(&r->lock);
	}
	resolve_unref(r);
	return NULL;
}

static void
resolve_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct resolve *r = w->data;
	struct addrinfo *res;
	resolve_cb *cb;
	void *arg;
	int error;

	pthread_mutex_lock(&r->lock);
	if (!r->done) {
		/* Not ours: cannot happen, but never deliver twice. */
		pthread_mutex_unlock(&r->lock);
		return;
	}
	r->abandoned = true;
	error = r->error;
	res = r->result;
	r->result = NULL;
	pthread_mutex_unlock(&r->lock);

	ev_async_stop(loop, &r->async);
	cb = r->cb;
	arg = r->arg;
	resolve_unref(r);
	cb(error, res, arg);
}

void
resolve_cancel(struct resolve **rp)
{
	struct resolve *r;
	struct addrinfo *res;

	if (rp == NULL || (r = *rp) == NULL)
		return;
	*rp = NULL;

	pthread_mutex_lock(&r->lock);
	r->abandoned = true;
	res = r->result;
	r->result = NULL;
	pthread_mutex_unlock(&r->lock);

	ev_async_stop(r->loop, &r->async);
	if (res != NULL)
		freeaddrinfo(res);
	resolve_unref(r);
}

static void
resolve_unref(struct resolve *r)
{
	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->host);
	free(r);
	atomic_fetch_sub(&outstanding, 1);
}

unsigned
resolve_outstanding(void)
{
	return atomic_load(&outstanding);
}

void
resolve_set_getaddrinfo(resolve_getaddrinfo_fn *fn)
{
	atomic_store(&lookup_fn, fn);
}
