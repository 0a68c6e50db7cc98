/*
 * net/transport: one connection to a server on a libev loop: name resolution
 * off the loop, non-blocking connect (IPv6 and IPv4, each address in turn)
 * with a timeout, and optional GnuTLS (implicit, or upgraded later for
 * STARTTLS) with certificate chain, hostname and optional SPKI pin checks.
 *
 * Upward there is one callback with an event.  Reads are pull: on
 * TRANSPORT_READABLE call transport_read() until it returns 0; only then is
 * another READABLE guaranteed (TLS may hold decrypted bytes libev cannot
 * see; the transport drains those itself).  Writes are queued and flushed as
 * the socket allows.
 *
 * The callback may call transport_close() but must not free the transport;
 * free it from outside a callback (or after the callback returns).
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

struct transport_params {
	const char *host;
	uint16_t port;
	bool tls;		/* implicit TLS right after connect */
	const char *ca_file;	/* NULL: system trust store */
	const uint8_t *pin_sha256;	/* NULL, or 32 bytes: SPKI SHA-256 */
	unsigned timeout;	/* seconds without progress; 0: none */
	const char *log_prefix;	/* e.g. "account personal" */
};

struct transport;
typedef void transport_cb(struct transport *t, enum transport_event event,
    void *arg);

/* Copies params.  Nothing happens until transport_connect(). */
struct transport *transport_new(struct ev_loop *loop,
    const struct transport_params *params, transport_cb *cb, void *arg);
void transport_free(struct transport **t);

/* Starts resolving and connecting; the outcome comes as CONNECTED or
 * ERROR/TIMEOUT.  Returns 0, or -1 on immediate failure. */
int transport_connect(struct transport *t);
/* Starts a TLS handshake on a plain connection (STARTTLS); TLS_READY or
 * ERROR follows.  Only call with nothing left unread. */
int transport_start_tls(struct transport *t);

/* >0 bytes read, 0 nothing more for now, -1 error or EOF (an event says
 * which has been or will be delivered). */
ssize_t transport_read(struct transport *t, void *buf, size_t len);
/* Queues len bytes; 0, or -1 on a dead connection. */
int transport_write(struct transport *t, const void *data, size_t len);
size_t transport_queued(const struct transport *t);

/* Changes the no-progress timeout (seconds, 0: none) from now on. */
void transport_set_timeout(struct transport *t, unsigned timeout);
/* Closes the socket (sending TLS close_notify when possible); no more
 * events afterwards. */
void transport_close(struct transport *t);

bool transport_is_tls(const struct transport *t);
/* e.g. "TLS1.3 AES-256-GCM", or "plain". */
const char *transport_description(const struct transport *t);
/* The last error, e.g. "certificate verification failed: certificate has
 * expired", "connect to imap.example.org:993: Connection refused". */
const char *transport_error(const struct transport *t);

/* Process-wide GnuTLS set-up and tear-down. */
int transport_global_init(void);
void transport_global_deinit(void);

#endif
