/*
 * The transport against small servers on loopback: verified TLS with a
 * 5 MB echo, every kind of refused certificate, connect failures, the
 * no-progress timeout, STARTTLS, EOF, resumption, name resolution and
 * freeing a transport mid-lookup.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <ev.h>

#include "base64.h"
#include "net/resolve.h"
#include "net/tls.h"
#include "net/transport.h"
#include "net_fixture.h"

#define GUARD_S		120.
#define ECHO_TOTAL	(5 * 1024 * 1024)
#define PENDING_RECORDS	40
#define EXPECT_BULK	(1024 * 1024)
#define EV_BIT(e)	(1u << (e))

static struct net_pki pki;

struct client {
	struct ev_loop *loop;
	struct transport *t;
	unsigned seen;			/* EV_BIT per event seen */
	unsigned counts[TRANSPORT_ERROR + 1];
	unsigned char *rx;
	size_t rx_len;
	size_t rx_cap;
	unsigned reads;
	size_t read_once;		/* >0: one read of this size per event */
	bool free_on_connected;
	bool stuck;
	ev_timer guard;
};

static void
client_cb(struct transport *t, enum transport_event event, void *arg)
{
	/* Odd read sizes, including ones larger than a TLS record. */
	static const size_t sizes[] = { 65537, 13, 4099, 99991, 1, 70001 };
	struct client *c = arg;
	ssize_t n;
	size_t want;

	c->seen |= EV_BIT(event);
	c->counts[event]++;
	if (event == TRANSPORT_CONNECTED && c->free_on_connected) {
		transport_free(&c->t);
		return;
	}
	if (event != TRANSPORT_READABLE)
		return;
	for (;;) {
		want = sizes[c->reads++ % (sizeof sizes / sizeof *sizes)];
		if (c->read_once > 0)
			want = c->read_once;
		if (c->rx_cap - c->rx_len < want) {
			c->rx_cap = (c->rx_len + want) * 2;
			c->rx = realloc(c->rx, c->rx_cap);
			assert_non_null(c->rx);
		}
		n = transport_read(t, c->rx + c->rx_len, want);
		if (n <= 0)
			break;
		c->rx_len += (size_t)n;
		if (c->read_once > 0)
			break;
	}
}

static void
guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = w->data;

	c->stuck = true;
}

#define RUN_UNTIL(c, cond) do {						\
	ev_timer_set(&(c)->guard, GUARD_S, 0.);				\
	ev_timer_start((c)->loop, &(c)->guard);				\
	while (!(cond) && !(c)->stuck)					\
		ev_run((c)->loop, EVRUN_ONCE);				\
	ev_timer_stop((c)->loop, &(c)->guard);				\
	if (!(cond))							\
		fail_msg("gave up waiting for %s (error \"%s\")", #cond,	\
		    (c)->t != NULL ? transport_error((c)->t) : "-");	\
} while (0)

static void
client_init(struct client *c, struct transport_params *p)
{
	memset(c, 0, sizeof *c);
	c->loop = ev_loop_new(EVFLAG_AUTO);
	assert_non_null(c->loop);
	ev_timer_init(&c->guard, guard_cb, GUARD_S, 0.);
	c->guard.data = c;
	c->t = transport_new(c->loop, p, client_cb, c);
	assert_non_null(c->t);
}

static void
client_done(struct client *c)
{
	transport_free(&c->t);
	ev_loop_destroy(c->loop);
	free(c->rx);
}

/* Connects and runs the loop until the connection is up or has failed. */
static void
connect_until_outcome(struct client *c)
{
	assert_int_equal(transport_connect(c->t), 0);
	RUN_UNTIL(c, c->seen & (EV_BIT(TRANSPORT_CONNECTED) |
	    EV_BIT(TRANSPORT_ERROR) | EV_BIT(TRANSPORT_TIMEOUT)));
}

static bool
rx_has(const struct client *c, const char *s)
{
	size_t n = strlen(s);

	if (c->rx_len < n)
		return false;
	for (size_t i = 0; i + n <= c->rx_len; i++)
		if (memcmp(c->rx + i, s, n) == 0)
			return true;
	return false;
}

static void
tls_params(struct transport_params *p, const char *host, uint16_t port)
{
	memset(p, 0, sizeof *p);
	p->host = host;
	p->port = port;
	p->tls = true;
	p->ca_file = pki.ca_file;
	p->timeout = 30;
	p->log_prefix = "test";
}

/* A verified handshake and a 5 MB echo in odd chunk sizes. */
static void
echo_test(const char *addr, const char *host)
{
	static const size_t chunks[] = { 1, 3, 17, 4093, 65537, 100003, 7,
	    16385 };
	struct transport_params p;
	struct net_server srv;
	struct client c;
	unsigned char *payload;
	size_t off = 0, n;
	unsigned x = 12345;

	assert_int_equal(net_server_start(&srv, addr, NET_SRV_TLS_ECHO,
	    pki.good, pki.key, 1), 0);
	tls_params(&p, host, srv.port);
	client_init(&c, &p);

	payload = malloc(ECHO_TOTAL);
	assert_non_null(payload);
	for (size_t i = 0; i < ECHO_TOTAL; i++) {
		x = x * 1103515245u + 12345u;
		payload[i] = (unsigned char)(x >> 16);
	}

	connect_until_outcome(&c);
	assert_true(c.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_true(transport_is_tls(c.t));
	assert_string_equal(transport_error(c.t), "");
	assert_non_null(strstr(transport_description(c.t), "TLS1.3 / TLS_"));

	for (size_t i = 0; off < ECHO_TOTAL; i++) {
		n = chunks[i % (sizeof chunks / sizeof *chunks)];
		if (n > ECHO_TOTAL - off)
			n = ECHO_TOTAL - off;
		assert_int_equal(transport_write(c.t, payload + off, n), 0);
		off += n;
	}
	assert_true(transport_queued(c.t) > 0);
	RUN_UNTIL(&c, c.rx_len >= ECHO_TOTAL ||
	    (c.seen & (EV_BIT(TRANSPORT_ERROR) | EV_BIT(TRANSPORT_EOF))));
	assert_int_equal(c.rx_len, ECHO_TOTAL);
	assert_memory_equal(c.rx, payload, ECHO_TOTAL);
	assert_true(c.seen & EV_BIT(TRANSPORT_DRAINED));
	assert_int_equal(transport_queued(c.t), 0);
	assert_false(c.seen & EV_BIT(TRANSPORT_ERROR));

	transport_close(c.t);
	net_server_join(&srv);
	assert_int_equal(srv.handshakes_ok, 1);
	assert_int_equal(srv.app_bytes, ECHO_TOTAL);
	free(payload);
	client_done(&c);
}

static void
test_tls_echo_v4(void **state)
{
	echo_test("127.0.0.1", "localhost");
}

static void
test_tls_echo_v6(void **state)
{
	/* Also checks an address literal against an IP SAN. */
	echo_test("::1", "::1");
}

/*
 * The server presents crt; the client must refuse with error text
 * containing expect, and the server must see no application data even
 * though the client queued some before connecting.
 */
static void
refuse_host_test(gnutls_x509_crt_t crt, const char *host, const uint8_t *pin,
    const char *expect)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;
	char prefix[128];

	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    crt, pki.key, 1), 0);
	tls_params(&p, host, srv.port);
	p.pin_sha256 = pin;
	client_init(&c, &p);
	assert_int_equal(transport_write(c.t, "a LOGIN user secret\r\n", 21),
	    0);
	connect_until_outcome(&c);
	assert_false(c.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_true(c.seen & EV_BIT(TRANSPORT_ERROR));
	assert_int_equal(c.counts[TRANSPORT_ERROR], 1);
	assert_false(transport_is_tls(c.t));
	if (strstr(transport_error(c.t), expect) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", transport_error(c.t),
		    expect);
	snprintf(prefix, sizeof prefix, "certificate verification failed for "
	    "%s: ", host);
	assert_non_null(strstr(transport_error(c.t), prefix));
	assert_int_equal(transport_error_kind(c.t), TRANSPORT_ERR_TLS_VERIFY);
	assert_int_equal(transport_write(c.t, "x", 1), -1);
	assert_int_equal(transport_read(c.t, (char[4]){ 0 }, 4), -1);
	net_server_join(&srv);
	assert_int_equal(srv.handshakes_ok, 0);
	assert_int_equal(srv.app_bytes, 0);
	client_done(&c);
}

static void
refuse_test(gnutls_x509_crt_t crt, const uint8_t *pin, const char *expect)
{
	refuse_host_test(crt, "localhost", pin, expect);
}

/* A CA file that cannot be read: one clear error naming it, of the TLS
 * kind (it is the configuration's trust, not the network). */
static void
test_missing_ca_file(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	(void)state;
	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    pki.good, pki.key, 1), 0);
	tls_params(&p, "localhost", srv.port);
	p.ca_file = "/nonexistent/mboxmirror-ca.pem";
	client_init(&c, &p);
	connect_until_outcome(&c);
	assert_true(c.seen & EV_BIT(TRANSPORT_ERROR));
	assert_false(c.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_string_equal(transport_error(c.t), "cannot load CA file "
	    "/nonexistent/mboxmirror-ca.pem: No such file or directory");
	assert_int_equal(transport_error_kind(c.t), TRANSPORT_ERR_TLS);
	net_server_join(&srv);
	client_done(&c);
}

/* An unknown issuer points at ca_file, and gives the pin of the key the
 * server presented (the fixture's one key) for pin_sha256. */
static void
test_unknown_issuer_refused(void **state)
{
	char expect[320], *pin;

	pin = base64_encode(pki.good_pin, sizeof pki.good_pin);
	assert_non_null(pin);
	snprintf(expect, sizeof expect, "signer not found (unknown issuer); "
	    "if the server's CA is a private one, set ca_file to its "
	    "certificate (the key presented has pin_sha256 %s; pin it only "
	    "if the server's operator confirms that value)", pin);
	free(pin);
	refuse_test(pki.foreign, NULL, expect);
}

static void
test_expired_refused(void **state)
{
	refuse_test(pki.expired, NULL, "certificate has expired");
}

/* A name that does not match says which names the certificate holds. */
static void
test_wrong_hostname_refused(void **state)
{
	refuse_test(pki.wrong_name, NULL, "hostname does not match; the "
	    "certificate is for wrong.example");
}

/* Any name resolves to 127.0.0.1, where the test servers listen. */
static int
any_name_loopback(const char *host, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo h = *hints;

	h.ai_flags |= AI_NUMERICHOST;
	return getaddrinfo("127.0.0.1", service, &h, res);
}

/* The certificate's addresses are named too, in the order it holds them. */
static void
test_wrong_hostname_lists_addresses(void **state)
{
	resolve_set_getaddrinfo(any_name_loopback);
	refuse_host_test(pki.good, "imap.example.org", NULL, "certificate "
	    "verification failed for imap.example.org: hostname does not "
	    "match; the certificate is for localhost, 127.0.0.1, ::1");
	resolve_set_getaddrinfo(NULL);
}

/* What counts as a plain-text answer to a ClientHello: text, not a TLS
 * record (content types 20 to 24) nor binary. */
static void
test_plain_text_detection(void **state)
{
	static const struct {
		const char *bytes;
		size_t len;
		bool plain;
	} cases[] = {
		{ "* OK ready\r\n", 12, true },
		{ "HTTP/1.1 400", 12, true },
		{ "\x16\x03\x03\x00\x7a", 5, false },	/* handshake */
		{ "\x15\x03\x03\x00\x02", 5, false },	/* alert */
		{ "\x17\x03\x03", 3, false },		/* application data */
		{ "\x00\x01", 2, false },
		{ "\xff", 1, false },
		{ "", 0, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		assert_int_equal(tls_looks_like_plain_text(
		    (const unsigned char *)cases[i].bytes, cases[i].len),
		    cases[i].plain);
}

/*
 * Implicit TLS to a server that greets in plain text (a port 143 server):
 * the handshake fails at its first bytes, and the message quotes them and
 * says what to configure, as a TLS error, not a certificate one.
 */
static void
test_plain_text_server_on_tls_port(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;
	char expect[256];

	assert_int_equal(net_server_start(&srv, "127.0.0.1",
	    NET_SRV_PLAIN_GREETING, NULL, NULL, 1), 0);
	tls_params(&p, "localhost", srv.port);
	client_init(&c, &p);
	connect_until_outcome(&c);
	assert_int_equal(c.seen, EV_BIT(TRANSPORT_ERROR));
	snprintf(expect, sizeof expect, "TLS handshake with localhost:%u "
	    "failed: the server answered in plain text (\"%.*s\"): this port "
	    "speaks plain text; use tls = starttls or port 993",
	    (unsigned)srv.port, (int)strlen(NET_PLAIN_GREETING) - 2,
	    NET_PLAIN_GREETING);
	assert_string_equal(transport_error(c.t), expect);
	assert_int_equal(transport_error_kind(c.t), TRANSPORT_ERR_TLS);
	transport_close(c.t);
	net_server_join(&srv);
	assert_int_equal(srv.accepted, 1);
	client_done(&c);
}

static void
test_pin_mismatch_refused(void **state)
{
	uint8_t pin[32];

	memcpy(pin, pki.good_pin, sizeof pin);
	pin[0] ^= 0x01;
	refuse_test(pki.good, pin, "public key pin mismatch");
}

/*
 * An upper layer that stops reading while GnuTLS still holds decrypted
 * bytes, or the transport still holds records it read ahead: the socket
 * is empty, so only the transport can raise READABLE again.  Without that
 * this test would wait for ever.
 */
static void
test_tls_pending_plaintext_wakeup(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;
	char line[1000];

	memset(line, 'x', sizeof line);
	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    pki.good, pki.key, 1), 0);
	tls_params(&p, "localhost", srv.port);
	client_init(&c, &p);
	c.read_once = 7;
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_CONNECTED) |
	    EV_BIT(TRANSPORT_ERROR)));
	assert_int_equal(transport_write(c.t, line, sizeof line), 0);
	RUN_UNTIL(&c, c.rx_len >= sizeof line ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	assert_int_equal(c.rx_len, sizeof line);
	assert_memory_equal(c.rx, line, sizeof line);
	/* One event per 7-byte read at least. */
	assert_true(c.counts[TRANSPORT_READABLE] >= sizeof line / 7);

	/*
	 * Now several records at once: the transport reads the socket in
	 * blocks, so whole records wait in its own buffer, where neither
	 * libev nor GnuTLS sees them.  Reading a byte at a time ends a read
	 * exactly where each record ends.
	 */
	c.read_once = 1;
	for (size_t i = 0; i < PENDING_RECORDS; i++)
		assert_int_equal(transport_write(c.t, line, sizeof line), 0);
	RUN_UNTIL(&c, c.rx_len >= (PENDING_RECORDS + 1) * sizeof line ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	assert_int_equal(c.rx_len, (PENDING_RECORDS + 1) * sizeof line);
	for (size_t i = 0; i <= PENDING_RECORDS; i++)
		assert_memory_equal(c.rx + i * sizeof line, line, sizeof line);
	transport_close(c.t);
	net_server_join(&srv);
	client_done(&c);
}

/*
 * transport_expect(): while a large block is promised the reader is woken
 * per block, and every promised byte still arrives; once nothing is
 * promised, a few bytes wake it at once (else this test would wait for
 * ever).
 */
static void
test_expect_bulk_then_small(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;
	unsigned char *bulk;
	size_t i;

	bulk = malloc(EXPECT_BULK);
	assert_non_null(bulk);
	for (i = 0; i < EXPECT_BULK; i++)
		bulk[i] = (unsigned char)(i * 7 + i / 251);
	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    pki.good, pki.key, 1), 0);
	tls_params(&p, "localhost", srv.port);
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_CONNECTED) |
	    EV_BIT(TRANSPORT_ERROR)));
	assert_true(c.seen & EV_BIT(TRANSPORT_CONNECTED));

	transport_expect(c.t, EXPECT_BULK);
	assert_int_equal(transport_write(c.t, bulk, EXPECT_BULK), 0);
	RUN_UNTIL(&c, c.rx_len >= EXPECT_BULK ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	assert_int_equal(c.rx_len, EXPECT_BULK);
	assert_memory_equal(c.rx, bulk, EXPECT_BULK);

	transport_expect(c.t, 0);
	assert_int_equal(transport_write(c.t, "tail\r\n", 6), 0);
	RUN_UNTIL(&c, c.rx_len >= EXPECT_BULK + 6 ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	assert_int_equal(c.rx_len, EXPECT_BULK + 6);
	assert_memory_equal(c.rx + EXPECT_BULK, "tail\r\n", 6);
	transport_close(c.t);
	net_server_join(&srv);
	free(bulk);
	client_done(&c);
}

static void
test_pin_match_accepted(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    pki.good, pki.key, 1), 0);
	tls_params(&p, "127.0.0.1", srv.port);
	p.pin_sha256 = pki.good_pin;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_CONNECTED) |
	    EV_BIT(TRANSPORT_ERROR)));
	assert_true(c.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_int_equal(transport_write(c.t, "ping\r\n", 6), 0);
	RUN_UNTIL(&c, rx_has(&c, "ping\r\n") ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	transport_close(c.t);
	net_server_join(&srv);
	assert_int_equal(srv.app_bytes, 6);
	client_done(&c);
}

static void
test_connection_refused(void **state)
{
	struct transport_params p;
	struct client c;
	char expect[64];
	uint16_t port = net_free_port();

	assert_int_not_equal(port, 0);
	memset(&p, 0, sizeof p);
	p.host = "127.0.0.1";
	p.port = port;
	p.timeout = 10;
	client_init(&c, &p);
	connect_until_outcome(&c);
	assert_true(c.seen & EV_BIT(TRANSPORT_ERROR));
	snprintf(expect, sizeof expect,
	    "connect to 127.0.0.1:%u: Connection refused", (unsigned)port);
	assert_string_equal(transport_error(c.t), expect);
	assert_int_equal(transport_error_kind(c.t), TRANSPORT_ERR_NETWORK);
	client_done(&c);
}

static void
test_handshake_timeout(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;
	char expect[128];

	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_SILENT,
	    NULL, NULL, 1), 0);
	tls_params(&p, "127.0.0.1", srv.port);
	p.timeout = 1;
	client_init(&c, &p);
	connect_until_outcome(&c);
	assert_int_equal(c.seen, EV_BIT(TRANSPORT_TIMEOUT));
	snprintf(expect, sizeof expect, "TLS handshake with 127.0.0.1:%u "
	    "timed out (no progress for 1 s)", (unsigned)srv.port);
	assert_string_equal(transport_error(c.t), expect);
	assert_int_equal(transport_error_kind(c.t), TRANSPORT_ERR_TIMEOUT);
	transport_close(c.t);
	net_server_join(&srv);
	assert_int_equal(srv.accepted, 1);
	client_done(&c);
}

static void
test_starttls(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	assert_int_equal(net_server_start(&srv, "127.0.0.1",
	    NET_SRV_STARTTLS_ECHO, pki.good, pki.key, 1), 0);
	tls_params(&p, "localhost", srv.port);
	p.tls = false;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, rx_has(&c, "* OK hello\r\n") ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	assert_true(c.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_false(transport_is_tls(c.t));
	assert_string_equal(transport_description(c.t), "plain");
	assert_int_equal(transport_write(c.t, "a STARTTLS\r\n", 12), 0);
	RUN_UNTIL(&c, rx_has(&c, "a OK begin TLS\r\n") ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	assert_true(c.seen & EV_BIT(TRANSPORT_DRAINED));

	assert_int_equal(transport_start_tls(c.t), 0);
	/* Queued during the handshake, sent only once TLS is up. */
	assert_int_equal(transport_write(c.t, "over tls\r\n", 10), 0);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_TLS_READY) |
	    EV_BIT(TRANSPORT_ERROR)));
	assert_true(c.seen & EV_BIT(TRANSPORT_TLS_READY));
	assert_true(transport_is_tls(c.t));
	assert_non_null(strstr(transport_description(c.t), "TLS1."));
	assert_int_equal(transport_start_tls(c.t), -1);
	RUN_UNTIL(&c, rx_has(&c, "over tls\r\n") ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	assert_int_equal(c.counts[TRANSPORT_CONNECTED], 1);
	transport_close(c.t);
	net_server_join(&srv);
	assert_int_equal(srv.error[0], '\0');
	assert_int_equal(srv.app_bytes, 10);
	client_done(&c);
}

static void
test_tls_peer_close_eof(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_BYE,
	    pki.good, pki.key, 1), 0);
	tls_params(&p, "localhost", srv.port);
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_EOF) |
	    EV_BIT(TRANSPORT_ERROR)));
	assert_true(c.seen & EV_BIT(TRANSPORT_EOF));
	assert_false(c.seen & EV_BIT(TRANSPORT_ERROR));
	assert_int_equal(c.rx_len, 5);
	assert_memory_equal(c.rx, "bye\r\n", 5);
	assert_int_equal(transport_read(c.t, (char[8]){ 0 }, 8), -1);
	net_server_join(&srv);
	client_done(&c);
}

static void
wait_outstanding_zero(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	/* Bounded: the worker only has to return and release. */
	for (int i = 0; i < 6000 && resolve_outstanding() != 0; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(resolve_outstanding(), 0);
}

/* "localhost" goes through getaddrinfo on the worker thread. */
static void
test_resolve_localhost_plain_eof(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_PLAIN_BYE,
	    NULL, NULL, 1), 0);
	memset(&p, 0, sizeof p);
	p.host = "localhost";
	p.port = srv.port;
	p.timeout = 30;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_EOF) |
	    EV_BIT(TRANSPORT_ERROR)));
	assert_true(c.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_true(c.seen & EV_BIT(TRANSPORT_EOF));
	assert_int_equal(c.rx_len, 5);
	assert_memory_equal(c.rx, "bye\r\n", 5);
	assert_int_equal(c.counts[TRANSPORT_EOF], 1);
	net_server_join(&srv);
	client_done(&c);
	/* The worker may still be on its way out; it must get there. */
	wait_outstanding_zero();
}

/* ::1 first (nothing listens there), then 127.0.0.1. */
static int
two_addresses(const char *host, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo h = *hints, *v6, *v4;
	int error;

	h.ai_flags |= AI_NUMERICHOST;
	if ((error = getaddrinfo("::1", service, &h, &v6)) != 0)
		return error;
	if ((error = getaddrinfo("127.0.0.1", service, &h, &v4)) != 0) {
		freeaddrinfo(v6);
		return error;
	}
	v6->ai_next = v4;
	*res = v6;
	return 0;
}

static void
test_refused_tries_next_address(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_PLAIN_BYE,
	    NULL, NULL, 1), 0);
	resolve_set_getaddrinfo(two_addresses);
	memset(&p, 0, sizeof p);
	p.host = "two.test";
	p.port = srv.port;
	p.timeout = 30;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_EOF) |
	    EV_BIT(TRANSPORT_ERROR)));
	resolve_set_getaddrinfo(NULL);
	assert_true(c.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_false(c.seen & EV_BIT(TRANSPORT_ERROR));
	assert_int_equal(c.rx_len, 5);
	net_server_join(&srv);
	assert_int_equal(srv.accepted, 1);
	client_done(&c);
}

/*
 * A listener whose accept queue is full: the kernel drops further SYNs,
 * so a connect to it stays in progress until the attempt times out.
 */
struct jam {
	int lfd;
	int cfd;
	uint16_t port;
};

static void
jam_start(struct jam *j)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	j->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(j->lfd != -1);
	assert_int_equal(bind(j->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(j->lfd, 0), 0);
	assert_int_equal(getsockname(j->lfd, (struct sockaddr *)&sin, &len),
	    0);
	j->port = ntohs(sin.sin_port);
	j->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(j->cfd != -1);
	assert_int_equal(connect(j->cfd, (struct sockaddr *)&sin, sizeof sin),
	    0);
}

static void
jam_stop(struct jam *j)
{
	close(j->cfd);
	close(j->lfd);
}

static uint16_t jam_port, good_port;

/* The jammed listener first, then (if good_port) a working server. */
static int
jammed_then_good(const char *host, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo h = *hints, *first, *second;
	char port[8];
	int error;

	h.ai_flags |= AI_NUMERICHOST;
	snprintf(port, sizeof port, "%u", (unsigned)jam_port);
	if ((error = getaddrinfo("127.0.0.1", port, &h, &first)) != 0)
		return error;
	if (good_port != 0) {
		snprintf(port, sizeof port, "%u", (unsigned)good_port);
		if ((error = getaddrinfo("127.0.0.1", port, &h, &second)) !=
		    0) {
			freeaddrinfo(first);
			return error;
		}
		first->ai_next = second;
	}
	*res = first;
	return 0;
}

static void
test_connect_timeout_tries_next_address(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;
	struct jam j;

	jam_start(&j);
	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_PLAIN_BYE,
	    NULL, NULL, 1), 0);
	jam_port = j.port;
	good_port = srv.port;
	resolve_set_getaddrinfo(jammed_then_good);
	memset(&p, 0, sizeof p);
	p.host = "jam.test";
	p.port = srv.port;
	p.timeout = 1;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_EOF) |
	    EV_BIT(TRANSPORT_ERROR) | EV_BIT(TRANSPORT_TIMEOUT)));
	resolve_set_getaddrinfo(NULL);
	assert_true(c.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_true(c.seen & EV_BIT(TRANSPORT_EOF));
	assert_false(c.seen & EV_BIT(TRANSPORT_TIMEOUT));
	assert_int_equal(c.rx_len, 5);
	net_server_join(&srv);
	client_done(&c);
	jam_stop(&j);
}

static void
test_connect_timeout_last_address(void **state)
{
	struct transport_params p;
	struct client c;
	struct jam j;
	char expect[64];

	jam_start(&j);
	jam_port = j.port;
	good_port = 0;
	resolve_set_getaddrinfo(jammed_then_good);
	memset(&p, 0, sizeof p);
	p.host = "jam.test";
	p.port = 993;
	p.timeout = 1;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen != 0);
	resolve_set_getaddrinfo(NULL);
	assert_int_equal(c.seen, EV_BIT(TRANSPORT_TIMEOUT));
	snprintf(expect, sizeof expect, "connect to jam.test:993: %s",
	    strerror(ETIMEDOUT));
	assert_string_equal(transport_error(c.t), expect);
	assert_int_equal(transport_error_kind(c.t), TRANSPORT_ERR_TIMEOUT);
	client_done(&c);
	jam_stop(&j);
}

static int
no_such_name(const char *host, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	return EAI_NONAME;
}

static void
test_resolve_failure(void **state)
{
	struct transport_params p;
	struct client c;
	char expect[128];

	resolve_set_getaddrinfo(no_such_name);
	memset(&p, 0, sizeof p);
	p.host = "nowhere.test";
	p.port = 143;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.seen != 0);
	resolve_set_getaddrinfo(NULL);
	assert_int_equal(c.seen, EV_BIT(TRANSPORT_ERROR));
	snprintf(expect, sizeof expect, "resolve nowhere.test: %s",
	    gai_strerror(EAI_NONAME));
	assert_string_equal(transport_error(c.t), expect);
	assert_int_equal(transport_error_kind(c.t), TRANSPORT_ERR_NETWORK);
	client_done(&c);
}

static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static bool hold_entered, hold_released;

/* Stays inside the "lookup" until the test lets it go. */
static int
held_lookup(const char *host, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	pthread_mutex_lock(&hold_lock);
	hold_entered = true;
	pthread_cond_broadcast(&hold_cond);
	while (!hold_released)
		pthread_cond_wait(&hold_cond, &hold_lock);
	pthread_mutex_unlock(&hold_lock);
	return any_name_loopback(host, service, hints, res);
}

static void
test_free_during_resolution(void **state)
{
	struct transport_params p;
	struct client c;

	hold_entered = hold_released = false;
	resolve_set_getaddrinfo(held_lookup);
	memset(&p, 0, sizeof p);
	p.host = "slow.test";
	p.port = 143;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);

	pthread_mutex_lock(&hold_lock);
	while (!hold_entered)
		pthread_cond_wait(&hold_cond, &hold_lock);
	pthread_mutex_unlock(&hold_lock);
	assert_int_equal(resolve_outstanding(), 1);

	/* The worker is inside the lookup: free under its feet. */
	transport_free(&c.t);
	assert_null(c.t);
	pthread_mutex_lock(&hold_lock);
	hold_released = true;
	pthread_cond_broadcast(&hold_cond);
	pthread_mutex_unlock(&hold_lock);

	wait_outstanding_zero();
	for (int i = 0; i < 10; i++)
		ev_run(c.loop, EVRUN_NOWAIT);
	assert_int_equal(c.seen, 0);
	resolve_set_getaddrinfo(NULL);
	client_done(&c);
}

/* Freed after the worker finished, before the loop took the result. */
static void
test_free_after_resolution(void **state)
{
	struct transport_params p;
	struct client c;
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	memset(&p, 0, sizeof p);
	p.host = "localhost";
	p.port = 143;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	/* Give the worker time to finish; correctness does not depend on
	 * whether it has. */
	for (int i = 0; i < 20; i++)
		nanosleep(&ts, NULL);
	transport_free(&c.t);
	wait_outstanding_zero();
	for (int i = 0; i < 10; i++)
		ev_run(c.loop, EVRUN_NOWAIT);
	assert_int_equal(c.seen, 0);
	client_done(&c);
}

static void
test_free_inside_callback(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_PLAIN_BYE,
	    NULL, NULL, 1), 0);
	memset(&p, 0, sizeof p);
	p.host = "127.0.0.1";
	p.port = srv.port;
	p.timeout = 30;
	client_init(&c, &p);
	c.free_on_connected = true;
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, c.t == NULL);
	for (int i = 0; i < 10; i++)
		ev_run(c.loop, EVRUN_NOWAIT);
	assert_int_equal(c.seen, EV_BIT(TRANSPORT_CONNECTED));
	net_server_join(&srv);
	client_done(&c);
}

/* Connects c, and says whether its TLS session was resumed. */
static bool
connect_echo_close(struct client *c)
{
	bool resumed;

	c->seen = 0;
	c->rx_len = 0;
	assert_int_equal(transport_connect(c->t), 0);
	RUN_UNTIL(c, c->seen & (EV_BIT(TRANSPORT_CONNECTED) |
	    EV_BIT(TRANSPORT_ERROR)));
	assert_true(c->seen & EV_BIT(TRANSPORT_CONNECTED));
	resumed = transport_tls_resumed(c->t);
	/* The echo makes sure a TLS 1.3 ticket has come, as an IMAP greeting
	 * would. */
	assert_int_equal(transport_write(c->t, "hi\r\n", 4), 0);
	RUN_UNTIL(c, rx_has(c, "hi\r\n") ||
	    (c->seen & EV_BIT(TRANSPORT_ERROR)));
	transport_close(c->t);
	return resumed;
}

/* Each account resumes its own sessions only: a second account on the
 * same server starts with a full handshake, then resumes its own. */
static void
test_tls_resumption_per_scope(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client a, b;

	(void)state;
	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    pki.good, pki.key, 4), 0);
	tls_params(&p, "localhost", srv.port);
	p.tls_cache_scope = "account scope-a";
	client_init(&a, &p);
	p.tls_cache_scope = "account scope-b";
	client_init(&b, &p);
	assert_false(connect_echo_close(&a));
	assert_false(connect_echo_close(&b));
	assert_true(connect_echo_close(&a));
	assert_true(connect_echo_close(&b));
	net_server_join(&srv);
	assert_int_equal(srv.handshakes_ok, 4);
	assert_int_equal(srv.resumed, 2);
	client_done(&a);
	client_done(&b);
}

/* Writes crt, in PEM, to path. */
static void
write_pem(const char *path, gnutls_x509_crt_t crt)
{
	gnutls_datum_t pem = { NULL, 0 };
	FILE *f;

	assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM,
	    &pem), 0);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(pem.data, 1, pem.size, f), pem.size);
	assert_int_equal(fclose(f), 0);
	gnutls_free(pem.data);
}

/*
 * A session verified against a CA file that has changed since does not
 * resume, even when its connection outlived the change and saved its
 * session afterwards (at close, as a TLS 1.3 ticket comes late): the
 * next connection checks the server against the new CA file, which does
 * not hold the server's CA.
 */
static void
test_tls_no_resumption_after_ca_change(void **state)
{
	struct transport_params p;
	struct net_server srv, other;
	struct client a, b, again;
	char ca[PATH_MAX];

	(void)state;
	snprintf(ca, sizeof ca, "%s/ca-changing.pem", pki.dir);
	write_pem(ca, pki.ca);
	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    pki.good, pki.key, 2), 0);
	assert_int_equal(net_server_start(&other, "127.0.0.1",
	    NET_SRV_TLS_ECHO, pki.good, pki.key, 1), 0);
	tls_params(&p, "localhost", srv.port);
	p.ca_file = ca;
	p.tls_cache_scope = "account a";
	client_init(&a, &p);
	assert_int_equal(transport_connect(a.t), 0);
	RUN_UNTIL(&a, a.seen & (EV_BIT(TRANSPORT_CONNECTED) |
	    EV_BIT(TRANSPORT_ERROR)));
	assert_true(a.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_int_equal(transport_write(a.t, "hi\r\n", 4), 0);
	RUN_UNTIL(&a, rx_has(&a, "hi\r\n") ||
	    (a.seen & EV_BIT(TRANSPORT_ERROR)));

	/* The CA file now trusts another CA only; another account's
	 * connection notices. */
	write_pem(ca, pki.other_ca);
	tls_params(&p, "localhost", other.port);
	p.ca_file = ca;
	p.tls_cache_scope = "account b";
	client_init(&b, &p);
	connect_until_outcome(&b);
	assert_true(b.seen & EV_BIT(TRANSPORT_ERROR));
	assert_int_equal(transport_error_kind(b.t), TRANSPORT_ERR_TLS_VERIFY);
	client_done(&b);
	net_server_join(&other);

	/* a's connection, verified under the old file, ends now. */
	transport_close(a.t);
	client_done(&a);

	tls_params(&p, "localhost", srv.port);
	p.ca_file = ca;
	p.tls_cache_scope = "account a";
	client_init(&again, &p);
	connect_until_outcome(&again);
	assert_false(again.seen & EV_BIT(TRANSPORT_CONNECTED));
	assert_int_equal(transport_error_kind(again.t),
	    TRANSPORT_ERR_TLS_VERIFY);
	client_done(&again);
	net_server_join(&srv);
	assert_int_equal(srv.resumed, 0);
	unlink(ca);
}

/* pki.good with names enough to make it about size bytes. */
static gnutls_x509_crt_t
bloated_good_cert(size_t size)
{
	static const uint8_t serial[] = { 0x42 };
	gnutls_x509_crt_t crt;
	time_t now = time(NULL);
	char name[64];

	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(crt, serial,
	    sizeof serial), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt,
	    GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9), 0);
	assert_int_equal(gnutls_x509_crt_set_key(crt, pki.key), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(crt,
	    now - 3600), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(crt,
	    now + 86400), 0);
	assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(crt,
	    GNUTLS_KP_TLS_WWW_SERVER, 0), 0);
	assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt,
	    GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_APPEND), 0);
	for (unsigned i = 0; (size_t)i * 26 < size; i++) {
		snprintf(name, sizeof name, "n%05u.filler.example.org", i);
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt,
		    GNUTLS_SAN_DNSNAME, name, (unsigned)strlen(name),
		    GNUTLS_FSAN_APPEND), 0);
	}
	assert_int_equal(gnutls_x509_crt_sign2(crt, pki.ca, pki.ca_key,
	    GNUTLS_DIG_SHA256, 0), 0);
	return crt;
}

/* A session whose data exceeds TLS_SESSION_DATA_MAX is not kept: each
 * connection makes a full handshake, and nothing of it stays in memory. */
static void
test_tls_big_session_not_kept(void **state)
{
	/* Saved session data larger than TLS_SESSION_DATA_MAX: what a server
	 * can send to fill memory. */
	gnutls_x509_crt_t crt = bloated_good_cert(3 * TLS_SESSION_DATA_MAX / 2);
	struct transport_params p;
	struct net_server srv;
	struct client c;

	(void)state;
	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    crt, pki.key, 2), 0);
	tls_params(&p, "localhost", srv.port);
	p.tls_cache_scope = "account bloated";
	client_init(&c, &p);
	assert_false(connect_echo_close(&c));
	assert_false(connect_echo_close(&c));
	net_server_join(&srv);
	assert_int_equal(srv.handshakes_ok, 2);
	assert_int_equal(srv.resumed, 0);
	client_done(&c);
	gnutls_x509_crt_deinit(crt);
}

/*
 * A certificate of more than a TLS record (16 KB) arrives whole in one
 * read on loopback: GnuTLS may stop between its records, asking for more,
 * while the rest waits in the read-ahead block, not in the socket.
 */
static void
test_tls_certificate_over_two_records(void **state)
{
	gnutls_x509_crt_t crt = bloated_good_cert(24 * 1024);
	struct transport_params p;
	struct net_server srv;
	struct client c;

	(void)state;
	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    crt, pki.key, 1), 0);
	tls_params(&p, "localhost", srv.port);
	client_init(&c, &p);
	(void)connect_echo_close(&c);
	net_server_join(&srv);
	assert_int_equal(srv.handshakes_ok, 1);
	client_done(&c);
	gnutls_x509_crt_deinit(crt);
}

static void
test_tls_resumption(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	assert_int_equal(net_server_start(&srv, "127.0.0.1", NET_SRV_TLS_ECHO,
	    pki.good, pki.key, 2), 0);
	tls_params(&p, "localhost", srv.port);
	client_init(&c, &p);
	for (int round = 0; round < 2; round++) {
		c.seen = 0;
		c.rx_len = 0;
		assert_int_equal(transport_connect(c.t), 0);
		RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_CONNECTED) |
		    EV_BIT(TRANSPORT_ERROR)));
		assert_true(c.seen & EV_BIT(TRANSPORT_CONNECTED));
		assert_int_equal(transport_tls_resumed(c.t), round == 1);
		assert_int_equal(transport_write(c.t, "hi\r\n", 4), 0);
		RUN_UNTIL(&c, rx_has(&c, "hi\r\n") ||
		    (c.seen & EV_BIT(TRANSPORT_ERROR)));
		transport_close(c.t);
	}
	net_server_join(&srv);
	assert_int_equal(srv.handshakes_ok, 2);
	assert_int_equal(srv.resumed, 1);
	client_done(&c);
}

static void
test_set_timeout_on_open_connection(void **state)
{
	struct transport_params p;
	struct net_server srv;
	struct client c;

	/* The STARTTLS server greets, then waits for a line for ever. */
	assert_int_equal(net_server_start(&srv, "127.0.0.1",
	    NET_SRV_STARTTLS_ECHO, NULL, NULL, 1), 0);
	memset(&p, 0, sizeof p);
	p.host = "127.0.0.1";
	p.port = srv.port;
	p.timeout = 0;
	client_init(&c, &p);
	assert_int_equal(transport_connect(c.t), 0);
	RUN_UNTIL(&c, rx_has(&c, "* OK hello\r\n") ||
	    (c.seen & EV_BIT(TRANSPORT_ERROR)));
	transport_set_timeout(c.t, 1);
	RUN_UNTIL(&c, c.seen & (EV_BIT(TRANSPORT_TIMEOUT) |
	    EV_BIT(TRANSPORT_ERROR) | EV_BIT(TRANSPORT_EOF)));
	assert_true(c.seen & EV_BIT(TRANSPORT_TIMEOUT));
	assert_non_null(strstr(transport_error(c.t), "no progress for 1 s"));
	net_server_join(&srv);
	client_done(&c);
}

static int
group_setup(void **state)
{
	if (transport_global_init() != 0)
		return -1;
	return net_pki_create(&pki);
}

static int
group_teardown(void **state)
{
	net_pki_destroy(&pki);
	transport_global_deinit();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_echo_v4),
		cmocka_unit_test(test_tls_echo_v6),
		cmocka_unit_test(test_missing_ca_file),
		cmocka_unit_test(test_unknown_issuer_refused),
		cmocka_unit_test(test_expired_refused),
		cmocka_unit_test(test_wrong_hostname_refused),
		cmocka_unit_test(test_wrong_hostname_lists_addresses),
		cmocka_unit_test(test_plain_text_detection),
		cmocka_unit_test(test_plain_text_server_on_tls_port),
		cmocka_unit_test(test_pin_mismatch_refused),
		cmocka_unit_test(test_pin_match_accepted),
		cmocka_unit_test(test_tls_pending_plaintext_wakeup),
		cmocka_unit_test(test_expect_bulk_then_small),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_tls_peer_close_eof),
		cmocka_unit_test(test_resolve_localhost_plain_eof),
		cmocka_unit_test(test_refused_tries_next_address),
		cmocka_unit_test(test_resolve_failure),
		cmocka_unit_test(test_connect_timeout_tries_next_address),
		cmocka_unit_test(test_connect_timeout_last_address),
		cmocka_unit_test(test_free_during_resolution),
		cmocka_unit_test(test_free_after_resolution),
		cmocka_unit_test(test_free_inside_callback),
		cmocka_unit_test(test_tls_resumption),
		cmocka_unit_test(test_tls_resumption_per_scope),
		cmocka_unit_test(test_tls_no_resumption_after_ca_change),
		cmocka_unit_test(test_tls_big_session_not_kept),
		cmocka_unit_test(test_tls_certificate_over_two_records),
		cmocka_unit_test(test_set_timeout_on_open_connection),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
