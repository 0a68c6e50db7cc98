/*
 * net/transport: one connection to a server on a libev loop, behind a table
 * of operations (struct transport_ops) so that the layer above can be run
 * over an in-memory transport in tests.  The implementation here
 * (transport_socket_ops) does name resolution off the loop, non-blocking
 * connect (IPv6 and IPv4, each address in turn) with a timeout, and
 * optional GnuTLS (implicit, or upgraded later for
 * STARTTLS) with certificate chain, hostname and optional SPKI pin checks.
 *
 * Upward there is one callback with an event.  Reads are pull: on
 * TRANSPORT_READABLE call transport_read() until it returns 0; only then is
 * another READABLE guaranteed (TLS may hold decrypted bytes libev cannot
 * see; the transport drains those itself).  Writes are queued and flushed as
 * the socket allows.
 *
 * The callback may call transport_close() but must not free the transport;
 * free it from outside a callback (or after the callback returns).  (A
 * transport_free() from inside a callback is nevertheless caught: the
 * memory is released once the outermost callback has returned.)
 *
 * Events are delivered from the loop only, never from inside a transport_*
 * call: a failure found by transport_read() or transport_write() is
 * reported by an event on a later loop iteration.  Every implementation
 * keeps these rules.
 *
 * TLS is 1.2 or newer.  The certificate chain is checked against ca_file
 * or the system trust store, the name against host (SNI is sent for names,
 * not for address literals), and, when given, the SPKI SHA-256 pin in
 * addition to the chain.  A failed check aborts the handshake before any
 * queued data is sent.  Session data of a verified connection is kept in
 * memory per scope (an account), host, port, ca_file and pin for TLS
 * resumption on the next connection.
 */
#ifndef MM_NET_TRANSPORT_H
#define MM_NET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

enum transport_event {
	TRANSPORT_CONNECTED,	/* TCP up (plain); for implicit TLS: TLS up */
	TRANSPORT_TLS_READY,	/* transport_start_tls() finished */
	TRANSPORT_READABLE,
	TRANSPORT_DRAINED,	/* the write queue became empty */
	TRANSPORT_EOF,		/* the peer closed */
	TRANSPORT_TIMEOUT,	/* no progress for timeout seconds */
	TRANSPORT_ERROR,	/* see transport_error() */
};

/* What kind of failure transport_error() describes, so that the layer above
 * never has to read the words. */
enum transport_error_kind {
	TRANSPORT_ERR_NONE = 0,
	TRANSPORT_ERR_NETWORK,	/* resolve, connect, read, write, EOF */
	TRANSPORT_ERR_TIMEOUT,	/* no progress (also the TIMEOUT event) */
	TRANSPORT_ERR_TLS_VERIFY, /* certificate chain, name or pin refused */
	TRANSPORT_ERR_TLS,	/* TLS set-up (CA file), handshake, records */
	TRANSPORT_ERR_LOCAL,	/* out of memory, misuse (already connected) */
};

struct transport_ops;

struct transport_params {
	const char *host;
	uint16_t port;
	bool tls;		/* implicit TLS right after connect */
	const char *ca_file;	/* NULL: system trust store */
	const uint8_t *pin_sha256;	/* NULL, or 32 bytes: SPKI SHA-256 */
	unsigned timeout;	/* seconds without progress; 0: none */
	const char *log_prefix;	/* e.g. "account personal" */
	/* Whose TLS sessions resume on this connection (an account's name):
	 * only those of the same scope, host, port, ca_file and pin. */
	const char *tls_cache_scope;
	/* The implementation; NULL: transport_socket_ops. */
	const struct transport_ops *ops;
};

/*
 * Every implementation's connection starts with this, so the functions
 * below can find its operations.  Only implementations look inside.
 */
struct transport {
	const struct transport_ops *ops;
};

typedef void transport_cb(struct transport *t, enum transport_event event,
    void *arg);

/*
 * The operations of one implementation: the functions below, minus the
 * transport_ prefix, with the contracts written there (create is
 * transport_new; free releases what create made and is given a closed
 * transport).  Model: Redis connection.h's ConnectionType.
 *
 * transport_socket_ops (net/transport.c, with net/tls.c) is a TCP socket
 * with optional GnuTLS stacked on it; tests/fakes/transport_mem.c is an
 * in-memory one that a test scripts.
 */
struct transport_ops {
	struct transport *(*create)(struct ev_loop *loop,
	    const struct transport_params *params, transport_cb *cb,
	    void *arg);
	void (*free)(struct transport *t);
	int (*connect)(struct transport *t);
	int (*start_tls)(struct transport *t);
	ssize_t (*read)(struct transport *t, void *buf, size_t len);
	int (*write)(struct transport *t, const void *data, size_t len);
	size_t (*queued)(const struct transport *t);
	void (*expect)(struct transport *t, uint64_t bytes);
	void (*set_timeout)(struct transport *t, unsigned timeout);
	void (*close)(struct transport *t);
	bool (*is_tls)(const struct transport *t);
	bool (*peer_is_local)(const struct transport *t);
	bool (*tls_resumed)(const struct transport *t);
	const char *(*description)(const struct transport *t);
	const char *(*error)(const struct transport *t);
	enum transport_error_kind (*error_kind)(const struct transport *t);
};

extern const struct transport_ops transport_socket_ops;

/* Copies params.  Nothing happens until transport_connect().  Returns NULL
 * when out of memory. */
struct transport *transport_new(struct ev_loop *loop,
    const struct transport_params *params, transport_cb *cb, void *arg);
void transport_free(struct transport **t);

/* Starts resolving and connecting; the outcome comes as CONNECTED or
 * ERROR/TIMEOUT.  Every address of host is tried in the resolver's order,
 * each attempt getting the full timeout.  Also valid again after an error
 * or transport_close() (a reconnect).  Returns 0, or -1 on immediate
 * failure (transport_error() says why; no event follows). */
int transport_connect(struct transport *t);
/* Starts a TLS handshake on a plain connection (STARTTLS); TLS_READY or
 * ERROR/TIMEOUT follows.  Only call with nothing left unread and nothing
 * queued.  Returns 0, or -1 (transport_error() says why; the plain
 * connection is left as it was). */
int transport_start_tls(struct transport *t);

/* >0 bytes read, 0 nothing more for now, -1 error or EOF (an event says
 * which has been or will be delivered). */
ssize_t transport_read(struct transport *t, void *buf, size_t len);
/* Queues len bytes (copied); they are sent once connected (after the TLS
 * handshake for TLS).  0, or -1 on a closed connection or out of memory. */
int transport_write(struct transport *t, const void *data, size_t len);
size_t transport_queued(const struct transport *t);

/* At least bytes more of input are certain to come (e.g. the rest of a
 * literal; 0: nothing is known); counted down as transport_read() returns
 * input.  Lets the transport wake the reader once per large block instead
 * of for every packet. */
void transport_expect(struct transport *t, uint64_t bytes);
/* Changes the no-progress timeout (seconds, 0: none) from now on. */
void transport_set_timeout(struct transport *t, unsigned timeout);
/* Closes the socket (sending TLS close_notify when possible) and drops
 * anything queued; no more events afterwards.  transport_connect() may be
 * called again. */
void transport_close(struct transport *t);

bool transport_is_tls(const struct transport *t);
/* The connected peer is on loopback, a link-local or a private network. */
bool transport_peer_is_local(const struct transport *t);
/* Whether the TLS session was resumed from an earlier connection's. */
bool transport_tls_resumed(const struct transport *t);
/* e.g. "TLS1.3 / TLS_AES_256_GCM_SHA384", or "plain"; stays valid until
 * the next transport_connect() or transport_start_tls(). */
const char *transport_description(const struct transport *t);
/* The last error, e.g. "certificate verification failed for
 * imap.example.org: certificate has expired", "connect to
 * imap.example.org:993: Connection refused"; "" when none.  For people,
 * with what to do where the cause is known: the names a certificate holds
 * when the host name matches none of them, ca_file and the key's
 * pin_sha256 for an unknown issuer, "this port speaks plain text" when a
 * plain-text server answers a TLS handshake, "TLS handshake ... timed out"
 * for a stalled one.  Decisions go by transport_error_kind(). */
const char *transport_error(const struct transport *t);
/* The kind of the last error (TRANSPORT_ERR_NONE when none); set together
 * with transport_error(), by the same failures. */
enum transport_error_kind transport_error_kind(const struct transport *t);

/* Process-wide GnuTLS set-up and tear-down (the latter also drops the TLS
 * session cache and the loaded trust anchors).  transport_global_init
 * returns 0, or -1. */
int transport_global_init(void);
void transport_global_deinit(void);

#endif
