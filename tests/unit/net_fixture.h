/*
 * Test fixtures for the transport: a throw-away PKI made with GnuTLS's x509
 * API, and small blocking servers in threads on loopback.
 */
#ifndef MM_TESTS_NET_FIXTURE_H
#define MM_TESTS_NET_FIXTURE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

struct net_pki {
	gnutls_x509_privkey_t ca_key;
	gnutls_x509_privkey_t other_ca_key;
	gnutls_x509_privkey_t key;	/* shared by the server certificates */
	gnutls_x509_crt_t ca;
	gnutls_x509_crt_t other_ca;
	gnutls_x509_crt_t good;		/* localhost, 127.0.0.1, ::1 */
	gnutls_x509_crt_t expired;	/* like good, expired yesterday */
	gnutls_x509_crt_t foreign;	/* like good, signed by other_ca */
	gnutls_x509_crt_t wrong_name;	/* wrong.example */
	uint8_t good_pin[32];		/* SPKI SHA-256 of key */
	char dir[64];
	char ca_file[PATH_MAX];
};

/* Returns 0, or -1. */
int net_pki_create(struct net_pki *pki);
void net_pki_destroy(struct net_pki *pki);

/* What NET_SRV_PLAIN_GREETING sends first. */
#define NET_PLAIN_GREETING	"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"

enum net_server_mode {
	NET_SRV_TLS_ECHO,	/* TLS, then echo until EOF */
	NET_SRV_SILENT,		/* accept, never answer */
	NET_SRV_STARTTLS_ECHO,	/* greeting, "a STARTTLS", TLS, echo */
	NET_SRV_PLAIN_BYE,	/* send "bye\r\n", close */
	NET_SRV_TLS_BYE,	/* TLS, send "bye\r\n", close_notify, close */
	NET_SRV_PLAIN_GREETING,	/* an IMAP greeting in plain text, then
				 * read until the client closes */
};

struct net_server {
	int lfd;
	uint16_t port;
	pthread_t thread;
	bool started;
	enum net_server_mode mode;
	unsigned connections;	/* to accept, one after the other */
	gnutls_certificate_credentials_t cred;
	gnutls_datum_t ticket_key;

	/* Results, valid after net_server_join(). */
	unsigned accepted;
	unsigned handshakes_ok;
	unsigned resumed;
	size_t app_bytes;	/* application bytes received, all conns */
	char error[256];	/* the last handshake error */
};

/* Listens on addr ("127.0.0.1" or "::1") port 0 and serves in a thread.
 * crt/key may be NULL for plain modes.  Returns 0, or -1. */
int net_server_start(struct net_server *s, const char *addr,
    enum net_server_mode mode, gnutls_x509_crt_t crt,
    gnutls_x509_privkey_t key, unsigned connections);
void net_server_join(struct net_server *s);

/* A loopback TCP port with nothing listening on it. */
uint16_t net_free_port(void);

#endif
