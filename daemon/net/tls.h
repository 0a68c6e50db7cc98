/*
 * net/tls: what the socket transport's TLS needs besides moving bytes,
 * internal to net/: trust anchors (shared per CA file), the certificate
 * check run inside the handshake (chain, host name, optional SPKI pin),
 * the messages saying why a check or handshake failed, and the per-process
 * cache of sessions for resumption (per account and server).  It never touches a socket: the
 * transport stacks the session on its socket (push/pull) itself.
 */
#ifndef MM_NET_TLS_H
#define MM_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "net/transport.h"

#define TLS_PIN_LEN	32

/*
 * One connection's certificate check: what it checks against, and why it
 * refused.  The transport owns it; it must outlive the session it was
 * given to (tls_session_new()).
 */
struct tls_check {
	const char *host;
	const uint8_t *pin;		/* NULL, or TLS_PIN_LEN bytes */
	char error[512];		/* "" until the check refuses */
};

/*
 * The trust anchors for ca_file (NULL: the system trust store), loaded once
 * and shared by every connection that names the same file, loaded anew
 * when the file changed on disk (size or mtime).  They stay valid until
 * tls_caches_clear().  NULL on failure, with *kind_r and error (size
 * bytes) saying why; log_prefix is for the warning about an empty store.
 */
gnutls_certificate_credentials_t tls_credentials(const char *ca_file,
    const char *log_prefix, enum transport_error_kind *kind_r, char *error,
    size_t size);

/*
 * A non-blocking client session with cred: TLS 1.2 or newer, SNI for host
 * names (not address literals), check run once the server's certificate
 * has arrived (a refusal aborts the handshake before our Finished, so no
 * queued data leaves), and the session cached under cache_key, if any, for
 * resumption.  check->error is cleared.  0, or a GnuTLS error code.
 */
int tls_session_new(gnutls_session_t *session_r,
    gnutls_certificate_credentials_t cred, struct tls_check *check,
    const char *cache_key);

/*
 * The cache key of a connection's session: its scope (whose sessions they
 * are, an account's name; NULL: shared by every NULL scope) and every
 * input of the check, so a session verified under one never resumes under
 * another.  A resumed handshake carries no certificate and runs no check:
 * the session was verified, under the same host, CA file and pin, when it
 * was first made, and only that server can resume it.  When a CA file
 * changes on disk every cached session is forgotten.  malloc'ed; NULL
 * when out of memory.
 */
char *tls_cache_key(const char *scope, const char *host, uint16_t port,
    const char *ca_file, const uint8_t *pin);
/* Keeps the session data of an established session under cache_key (in
 * memory only; a random one of TLS_CACHE_MAX entries gives way).  A TLS
 * 1.3 session is kept only once a ticket has arrived: the server sends
 * tickets after the handshake, so the transport saves again at close. */
void tls_session_save(gnutls_session_t session, const char *cache_key);
/* Frees the trust anchors and the session cache (at exit). */
void tls_caches_clear(void);

/*
 * Whether the first bytes a server sent in answer to a ClientHello are not
 * a TLS record but text (an IMAP greeting): a plain-text port.
 */
bool tls_looks_like_plain_text(const unsigned char *data, size_t len);

/*
 * The message of a failed handshake (ret a fatal GnuTLS code) with peer
 * ("host:port"): the certificate check's words when it refused (see
 * struct tls_check), the server's alert, a plain-text answer (plain: its
 * first line, when tls_looks_like_plain_text() said so; implicit: TLS was
 * to start at connect, not after STARTTLS), else GnuTLS's words or
 * io_error (the socket error behind a push or pull failure; 0: none).
 * Returns the kind: TRANSPORT_ERR_TLS_VERIFY or TRANSPORT_ERR_TLS.
 */
enum transport_error_kind tls_handshake_error(gnutls_session_t session,
    int ret, const struct tls_check *check, const char *peer,
    const char *plain, bool implicit, int io_error, char *buf, size_t size);

/* A GnuTLS failure in words, preferring io_error (non-zero) behind a push
 * or pull failure. */
const char *tls_strerror(int ret, int io_error);

#endif
