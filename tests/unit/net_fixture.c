#include "net_fixture.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#define DAY		(24 * 60 * 60)
#define IO_TIMEOUT_S	30

static int
make_key(gnutls_x509_privkey_t *key)
{
	if (gnutls_x509_privkey_init(key) < 0)
		return -1;
	return gnutls_x509_privkey_generate(*key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ? -1 : 0;
}

/*
 * Makes a certificate for key, signed by issuer/issuer_key (self-signed when
 * issuer is NULL).  names: DNS names; ips: with_ips adds 127.0.0.1 and ::1.
 */
static int
make_cert(gnutls_x509_crt_t *crt, gnutls_x509_privkey_t key, const char *cn,
    bool ca, const char *dns, bool with_ips, time_t from, time_t until,
    unsigned serial, gnutls_x509_crt_t issuer,
    gnutls_x509_privkey_t issuer_key)
{
	static const uint8_t v4[4] = { 127, 0, 0, 1 };
	static const uint8_t v6[16] = { [15] = 1 };
	uint8_t serial_bytes[4];

	serial_bytes[0] = (uint8_t)(serial >> 24);
	serial_bytes[1] = (uint8_t)(serial >> 16);
	serial_bytes[2] = (uint8_t)(serial >> 8);
	serial_bytes[3] = (uint8_t)serial;

	if (gnutls_x509_crt_init(crt) < 0)
		return -1;
	if (gnutls_x509_crt_set_version(*crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(*crt, serial_bytes,
	    sizeof serial_bytes) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(*crt, GNUTLS_OID_X520_COMMON_NAME, 0,
	    cn, (unsigned)strlen(cn)) < 0 ||
	    gnutls_x509_crt_set_key(*crt, key) < 0 ||
	    gnutls_x509_crt_set_activation_time(*crt, from) < 0 ||
	    gnutls_x509_crt_set_expiration_time(*crt, until) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(*crt, ca ? 1 : 0, -1) < 0)
		return -1;
	if (ca) {
		if (gnutls_x509_crt_set_key_usage(*crt,
		    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN) < 0)
			return -1;
	} else {
		if (gnutls_x509_crt_set_key_usage(*crt,
		    GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
		    gnutls_x509_crt_set_key_purpose_oid(*crt,
		    GNUTLS_KP_TLS_WWW_SERVER, 0) < 0)
			return -1;
		if (gnutls_x509_crt_set_subject_alt_name(*crt,
		    GNUTLS_SAN_DNSNAME, dns, (unsigned)strlen(dns),
		    GNUTLS_FSAN_APPEND) < 0)
			return -1;
		if (with_ips && (gnutls_x509_crt_set_subject_alt_name(*crt,
		    GNUTLS_SAN_IPADDRESS, v4, sizeof v4,
		    GNUTLS_FSAN_APPEND) < 0 ||
		    gnutls_x509_crt_set_subject_alt_name(*crt,
		    GNUTLS_SAN_IPADDRESS, v6, sizeof v6,
		    GNUTLS_FSAN_APPEND) < 0))
			return -1;
	}
	if (gnutls_x509_crt_set_subject_key_id(*crt, (const uint8_t *)cn,
	    strlen(cn)) < 0)
		return -1;
	if (issuer == NULL) {
		issuer = *crt;
		issuer_key = key;
	}
	return gnutls_x509_crt_sign2(*crt, issuer, issuer_key,
	    GNUTLS_DIG_SHA256, 0) < 0 ? -1 : 0;
}

int
net_pki_create(struct net_pki *pki)
{
	gnutls_datum_t pem = { NULL, 0 };
	size_t len = sizeof pki->good_pin;
	time_t now = time(NULL);
	FILE *f = NULL;
	int ret = -1;

	memset(pki, 0, sizeof *pki);
	snprintf(pki->dir, sizeof pki->dir, "/tmp/mm-net-XXXXXX");
	if (mkdtemp(pki->dir) == NULL)
		goto out;
	snprintf(pki->ca_file, sizeof pki->ca_file, "%s/ca.pem", pki->dir);

	if (make_key(&pki->ca_key) < 0 || make_key(&pki->other_ca_key) < 0 ||
	    make_key(&pki->key) < 0)
		goto out;
	if (make_cert(&pki->ca, pki->ca_key, "mm test CA", true, NULL, false,
	    now - DAY, now + 30 * DAY, 1, NULL, NULL) < 0 ||
	    make_cert(&pki->other_ca, pki->other_ca_key, "mm other CA", true,
	    NULL, false, now - DAY, now + 30 * DAY, 2, NULL, NULL) < 0 ||
	    make_cert(&pki->good, pki->key, "localhost", false, "localhost",
	    true, now - DAY, now + 30 * DAY, 3, pki->ca, pki->ca_key) < 0 ||
	    make_cert(&pki->expired, pki->key, "localhost", false, "localhost",
	    true, now - 3 * DAY, now - DAY, 4, pki->ca, pki->ca_key) < 0 ||
	    make_cert(&pki->foreign, pki->key, "localhost", false, "localhost",
	    true, now - DAY, now + 30 * DAY, 5, pki->other_ca,
	    pki->other_ca_key) < 0 ||
	    make_cert(&pki->wrong_name, pki->key, "wrong.example", false,
	    "wrong.example", false, now - DAY, now + 30 * DAY, 6, pki->ca,
	    pki->ca_key) < 0)
		goto out;
	if (gnutls_x509_crt_get_key_id(pki->good, GNUTLS_KEYID_USE_SHA256,
	    pki->good_pin, &len) < 0 || len != sizeof pki->good_pin)
		goto out;

	if (gnutls_x509_crt_export2(pki->ca, GNUTLS_X509_FMT_PEM, &pem) < 0)
		goto out;
	if ((f = fopen(pki->ca_file, "w")) == NULL)
		goto out;
	if (fwrite(pem.data, 1, pem.size, f) != pem.size)
		goto out;
	ret = 0;
out:
	if (f != NULL && fclose(f) != 0)
		ret = -1;
	gnutls_free(pem.data);
	return ret;
}

void
net_pki_destroy(struct net_pki *pki)
{
	gnutls_x509_crt_t *crts[] = { &pki->ca, &pki->other_ca, &pki->good,
	    &pki->expired, &pki->foreign, &pki->wrong_name };
	gnutls_x509_privkey_t *keys[] = { &pki->ca_key, &pki->other_ca_key,
	    &pki->key };

	for (size_t i = 0; i < sizeof crts / sizeof *crts; i++)
		if (*crts[i] != NULL)
			gnutls_x509_crt_deinit(*crts[i]);
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (*keys[i] != NULL)
			gnutls_x509_privkey_deinit(*keys[i]);
	unlink(pki->ca_file);
	rmdir(pki->dir);
	memset(pki, 0, sizeof *pki);
}

static int
server_accept(struct net_server *s)
{
	struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int fd;

	if (poll(&pfd, 1, IO_TIMEOUT_S * 1000) != 1)
		return -1;
	if ((fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
		return -1;
	/* A test that goes wrong must not hang the thread for ever. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	s->accepted++;
	return fd;
}

static int
send_all(int fd, const char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = send(fd, data, len, MSG_NOSIGNAL)) <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
tls_send_all(gnutls_session_t session, const char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = gnutls_record_send(session, data, len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Runs a server handshake on fd; NULL on failure (s->error says why). */
static gnutls_session_t
server_tls(struct net_server *s, int fd)
{
	gnutls_session_t session;
	int ret;

	if (gnutls_init(&session, GNUTLS_SERVER | GNUTLS_NO_SIGNAL) < 0)
		return NULL;
	gnutls_set_default_priority(session);
	gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, s->cred);
	gnutls_session_ticket_enable_server(session, &s->ticket_key);
	gnutls_transport_set_int(session, fd);
	do {
		ret = gnutls_handshake(session);
	} while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0) {
		snprintf(s->error, sizeof s->error, "%s",
		    gnutls_strerror(ret));
		gnutls_deinit(session);
		return NULL;
	}
	s->handshakes_ok++;
	if (gnutls_session_is_resumed(session))
		s->resumed++;
	return session;
}

static void
server_echo(struct net_server *s, gnutls_session_t session)
{
	char buf[16384];
	ssize_t n;

	for (;;) {
		n = gnutls_record_recv(session, buf, sizeof buf);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n <= 0)
			break;
		s->app_bytes += (size_t)n;
		if (tls_send_all(session, buf, (size_t)n) < 0)
			break;
	}
}

/* Reads one line byte by byte, so nothing after it is consumed. */
static int
read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		if (recv(fd, buf + len, 1, 0) != 1)
			return -1;
		if (buf[len++] == '\n')
			break;
	}
	buf[len] = '\0';
	return 0;
}

static void
server_conn(struct net_server *s, int fd)
{
	gnutls_session_t session = NULL;
	char line[256], buf[256];
	ssize_t n;

	switch (s->mode) {
	case NET_SRV_TLS_ECHO:
		if ((session = server_tls(s, fd)) != NULL)
			server_echo(s, session);
		else
			/* Nothing can be decrypted now: wait for the close. */
			while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
				;
		break;
	case NET_SRV_SILENT:
		while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
			;
		break;
	case NET_SRV_STARTTLS_ECHO:
		if (send_all(fd, "* OK hello\r\n", 12) < 0 ||
		    read_line(fd, line, sizeof line) < 0)
			break;
		if (strcmp(line, "a STARTTLS\r\n") != 0) {
			snprintf(s->error, sizeof s->error, "unexpected %.200s",
			    line);
			break;
		}
		if (send_all(fd, "a OK begin TLS\r\n", 16) < 0)
			break;
		if ((session = server_tls(s, fd)) != NULL)
			server_echo(s, session);
		break;
	case NET_SRV_PLAIN_BYE:
		(void)send_all(fd, "bye\r\n", 5);
		break;
	case NET_SRV_PLAIN_GREETING:
		if (send_all(fd, NET_PLAIN_GREETING,
		    strlen(NET_PLAIN_GREETING)) < 0)
			break;
		while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
			;
		break;
	case NET_SRV_TLS_BYE:
		if ((session = server_tls(s, fd)) != NULL) {
			(void)tls_send_all(session, "bye\r\n", 5);
			(void)gnutls_bye(session, GNUTLS_SHUT_WR);
		}
		break;
	}
	if (session != NULL)
		gnutls_deinit(session);
	close(fd);
}

static void *
server_main(void *arg)
{
	struct net_server *s = arg;
	int fd;

	for (unsigned i = 0; i < s->connections; i++) {
		if ((fd = server_accept(s)) == -1)
			break;
		server_conn(s, fd);
	}
	return NULL;
}

int
net_server_start(struct net_server *s, const char *addr,
    enum net_server_mode mode, gnutls_x509_crt_t crt,
    gnutls_x509_privkey_t key, unsigned connections)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int one = 1;

	memset(s, 0, sizeof *s);
	s->lfd = -1;
	s->mode = mode;
	s->connections = connections;
	memset(&ss, 0, sizeof ss);
	if (strchr(addr, ':') != NULL) {
		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
			return -1;
		len = sizeof *sin6;
	} else {
		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
			return -1;
		len = sizeof *sin;
	}
	if ((s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) ==
	    -1)
		return -1;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s->lfd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(s->lfd, 8) == -1 ||
	    getsockname(s->lfd, (struct sockaddr *)&ss, &len) == -1)
		goto fail;
	s->port = ntohs(ss.ss_family == AF_INET6 ? sin6->sin6_port :
	    sin->sin_port);
	if (crt != NULL) {
		if (gnutls_certificate_allocate_credentials(&s->cred) < 0)
			goto fail;
		if (gnutls_certificate_set_x509_key(s->cred, &crt, 1, key) < 0)
			goto fail;
		if (gnutls_session_ticket_key_generate(&s->ticket_key) < 0)
			goto fail;
	}
	if (pthread_create(&s->thread, NULL, server_main, s) != 0)
		goto fail;
	s->started = true;
	return 0;
fail:
	close(s->lfd);
	s->lfd = -1;
	return -1;
}

void
net_server_join(struct net_server *s)
{
	if (s->started)
		pthread_join(s->thread, NULL);
	s->started = false;
	if (s->lfd != -1)
		close(s->lfd);
	s->lfd = -1;
	if (s->cred != NULL)
		gnutls_certificate_free_credentials(s->cred);
	s->cred = NULL;
	gnutls_free(s->ticket_key.data);
	s->ticket_key.data = NULL;
}

uint16_t
net_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	uint16_t port = 0;
	int fd;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}
