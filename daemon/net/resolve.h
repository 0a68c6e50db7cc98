/*
 * net/resolve: host name lookup that does not block the libev loop.
 *
 * Why a thread per lookup calling getaddrinfo(3): it is the only interface
 * that honours nsswitch.conf, /etc/hosts, /etc/gai.conf address ordering and
 * the system resolver configuration exactly as every other program on the
 * machine does, and it needs no extra library (c-ares, getdns).  Its only
 * fault is that it blocks, for as long as the resolver's timeouts and
 * retries add up to.  glibc's getaddrinfo_a would do the same with its own
 * threads but reports through signals or a thread callback, which is worse
 * to integrate.  Lookups are rare (one per connection attempt, a handful of
 * accounts), so the cost of a short-lived detached thread is nothing next
 * to the round trip.  Numeric addresses are converted on the loop thread
 * without starting one.
 *
 * The worker owns its result until the loop side takes it: it hands it over
 * under a mutex and wakes the loop with an ev_async.  Cancelling marks the
 * lookup abandoned and stops the watcher; a worker that finishes afterwards
 * frees its own result and the shared record (the last of the two
 * references frees it), so a caller may cancel at any moment, even while the
 * worker is still inside getaddrinfo, with no use-after-free or leak.
 *
 * The worker blocks all signals, so signal delivery stays with the loop.
 */
#ifndef MM_NET_RESOLVE_H
#define MM_NET_RESOLVE_H

#include <stdint.h>

#include <netdb.h>

#include <ev.h>

struct resolve;

/*
 * Called once on the loop thread with the outcome: error is 0 and res the
 * list (owned by the callee from now on: free it with freeaddrinfo()), or
 * error is a getaddrinfo EAI_* code (gai_strerror() names it) and res is
 * NULL.  When the callback runs the lookup is already finished and its
 * handle released: do not pass it to resolve_cancel().
 */
typedef void resolve_cb(int error, struct addrinfo *res, void *arg);

/*
 * Starts looking up host (name or numeric address) for TCP to port.  The
 * callback never runs before this function has returned.  Returns the
 * handle, or NULL (errno set) when nothing could be started; then the
 * callback is never called.
 */
struct resolve *resolve_start(struct ev_loop *loop, const char *host,
    uint16_t port, resolve_cb *cb, void *arg);

/*
 * Abandons a lookup that has not yet reported: its callback will not run.
 * Safe to call while the worker is still running.  Sets *r to NULL; NULL or
 * a pointer to NULL is accepted.
 */
void resolve_cancel(struct resolve **r);

/* Lookups started and not yet fully released (worker threads included):
 * lets tests and shutdown check that nothing is left behind. */
unsigned resolve_outstanding(void);

/*
 * Testing seam: replaces getaddrinfo(3) in the worker (NULL restores it).
 * Lets tests hold a lookup in flight or return a chosen address list.  The
 * function runs on the worker thread; its result is released with
 * freeaddrinfo(), so it must return a list made by getaddrinfo().
 */
typedef int resolve_getaddrinfo_fn(const char *host, const char *service,
    const struct addrinfo *hints, struct addrinfo **res);
void resolve_set_getaddrinfo(resolve_getaddrinfo_fn *fn);

#endif
