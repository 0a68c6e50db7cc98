/*
 * transport_mem: an in-memory net/transport for tests.  The test plays the
 * server: it queues the bytes the server sends, reads back what the client
 * wrote, and makes the connection end (EOF, an error of a given kind) or
 * finish a STARTTLS handshake.  Events come from the test's libev loop
 * (an ev_idle), never from inside a transport_* call, as with the real
 * transport.
 */
#ifndef MM_TESTS_TRANSPORT_MEM_H
#define MM_TESTS_TRANSPORT_MEM_H

#include <stdbool.h>
#include <stddef.h>

#include "net/transport.h"

extern const struct transport_ops transport_mem_ops;

struct transport_mem;

/* The one created last (by transport_new with transport_mem_ops), or NULL;
 * transport_mem_reset() forgets it. */
struct transport_mem *transport_mem_last(void);
void transport_mem_reset(void);
/* How many were created so far (a new connection can reuse the address of
 * the one freed before it). */
unsigned transport_mem_created(void);
/* Whether any transport_mem has an event still to deliver. */
bool transport_mem_busy(void);

/* Server bytes, read by the client after the connection is up. */
void transport_mem_push(struct transport_mem *m, const char *bytes);
void transport_mem_push_len(struct transport_mem *m, const void *bytes,
    size_t len);
/* Hands out at most n bytes per transport_read() (0: no limit). */
void transport_mem_set_chunk(struct transport_mem *m, size_t n);
/* The server closes once the client has read everything pushed. */
void transport_mem_eof(struct transport_mem *m);
/* The connection fails now with an ERROR (or TIMEOUT) event. */
void transport_mem_fail(struct transport_mem *m, enum transport_event event,
    enum transport_error_kind kind, const char *message);
/* transport_connect() will fail at once with this error. */
void transport_mem_refuse(struct transport_mem *m,
    enum transport_error_kind kind, const char *message);

/* What the client wrote since the last call (NUL-terminated; valid until
 * the next call). */
const char *transport_mem_take(struct transport_mem *m);

/* transport_start_tls() was called, and TLS_READY is not delivered yet. */
bool transport_mem_tls_started(const struct transport_mem *m);
/* Finishes the STARTTLS handshake: TLS_READY follows. */
void transport_mem_tls_ready(struct transport_mem *m);
/* The last timeout set (transport_new's, or transport_set_timeout()). */
unsigned transport_mem_timeout(const struct transport_mem *m);
/* What transport_peer_is_local() says (default: true). */
void transport_mem_set_local(struct transport_mem *m, bool local);
bool transport_mem_closed(const struct transport_mem *m);

#endif
