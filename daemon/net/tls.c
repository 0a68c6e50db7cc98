/*
 * Trust anchors, the certificate check, handshake failure messages and
 * session resumption for the socket transport (see tls.h).
 */
#include "net/tls.h"

#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "base64.h"
#include "log.h"
#include "util/nameindex.h"

#define TLS_PRIORITY	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Sessions kept at most: one per account and server, for far more
 * accounts than a daemon runs (an entry is about 1-2 KB). */
#define TLS_CACHE_MAX	20000
/* Room for the names a refused certificate holds. */
#define NAMES_MAX	160

/*
 * Trust anchors are shared by every connection that uses the same CA file
 * (or the system store) for the life of the process: parsing the system
 * store takes milliseconds and about a megabyte, which a daemon with many
 * accounts should pay once, not per connection.
 */
struct cred_entry {
	struct cred_entry *next;
	char *ca_file;			/* NULL: the system trust store */
	off_t size;
	struct timespec mtime;
	gnutls_certificate_credentials_t cred;
};

struct tls_cache_entry {
	char *key;
	gnutls_datum_t data;
};

/*
 * The session cache: entries in an array, found by key through a
 * nameindex; when it is full a random entry gives way (the index is then
 * rebuilt: rare, and still cheaper than a handshake).  A random victim,
 * not the oldest: accounts come back in turn, an interval apart, and with
 * more of them than entries the oldest would always be the next one due.
 */
struct tls_cache {
	struct tls_cache_entry *v;
	size_t n, cap;
	struct nameindex index;
};

static struct cred_entry *cred_cache;
static struct tls_cache tls_cache;
/* Parsed once: a session given the string parses it anew and keeps its
 * own copy, about 8 KB, which a thousand push connections would hold. */
static gnutls_priority_t tls_priority;

static int	tls_verify_cb(gnutls_session_t);
static void	tls_cache_forget_all(void);

static bool
is_address_literal(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1;
}

static void
hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

/* Trust anchors */

static gnutls_certificate_credentials_t
cred_load(const char *ca_file, const char *log_prefix, char *error,
    size_t size)
{
	gnutls_certificate_credentials_t cred;
	int ret;

	if ((ret = gnutls_certificate_allocate_credentials(&cred)) < 0) {
		snprintf(error, size, "TLS set-up: %s", gnutls_strerror(ret));
		return NULL;
	}
	if (ca_file != NULL) {
		ret = gnutls_certificate_set_x509_trust_file(cred, ca_file,
		    GNUTLS_X509_FMT_PEM);
		if (ret <= 0) {
			snprintf(error, size, "cannot load CA file %s: %s",
			    ca_file, ret == 0 ? "no certificates in it" :
			    gnutls_strerror(ret));
			gnutls_certificate_free_credentials(cred);
			return NULL;
		}
	} else {
		ret = gnutls_certificate_set_x509_system_trust(cred);
		if (ret < 0) {
			snprintf(error, size, "cannot load the system trust "
			    "store: %s", gnutls_strerror(ret));
			gnutls_certificate_free_credentials(cred);
			return NULL;
		}
		if (ret == 0)
			log_warnx("%s: the system trust store is empty",
			    log_prefix);
	}
	gnutls_certificate_set_verify_function(cred, tls_verify_cb);
	return cred;
}

gnutls_certificate_credentials_t
tls_credentials(const char *ca_file, const char *log_prefix,
    enum transport_error_kind *kind_r, char *error, size_t size)
{
	struct cred_entry *e;
	struct stat st = { 0 };

	*kind_r = TRANSPORT_ERR_TLS;
	if (ca_file != NULL && stat(ca_file, &st) != 0) {
		snprintf(error, size, "cannot load CA file %s: %s", ca_file,
		    strerror(errno));
		return NULL;
	}
	for (e = cred_cache; e != NULL; e = e->next) {
		if ((e->ca_file == NULL) != (ca_file == NULL) ||
		    (e->ca_file != NULL && strcmp(e->ca_file, ca_file) != 0))
			continue;
		if (e->size == st.st_size && e->mtime.tv_sec ==
		    st.st_mtim.tv_sec && e->mtime.tv_nsec == st.st_mtim.tv_nsec)
			return e->cred;
		/* Changed on disk.  Connections still using the old one
		 * keep it: it is freed with the cache, at exit.  Sessions
		 * verified against the old anchors must not resume. */
		tls_cache_forget_all();
		break;
	}
	if ((e = calloc(1, sizeof *e)) == NULL ||
	    (ca_file != NULL && (e->ca_file = strdup(ca_file)) == NULL)) {
		free(e);
		*kind_r = TRANSPORT_ERR_LOCAL;
		snprintf(error, size, "out of memory");
		return NULL;
	}
	if ((e->cred = cred_load(ca_file, log_prefix, error, size)) == NULL) {
		free(e->ca_file);
		free(e);
		return NULL;
	}
	e->size = st.st_size;
	e->mtime = st.st_mtim;
	e->next = cred_cache;
	cred_cache = e;
	return e->cred;
}

/* The certificate check */

/* Appends the reasons in status to buf, separated by ", ". */
static void
verify_reasons(unsigned status, char *buf, size_t size)
{
	static const struct {
		unsigned bit;
		const char *text;
	} reasons[] = {
		{ GNUTLS_CERT_SIGNER_NOT_FOUND,
		    "signer not found (unknown issuer)" },
		{ GNUTLS_CERT_EXPIRED, "certificate has expired" },
		{ GNUTLS_CERT_NOT_ACTIVATED, "certificate is not yet valid" },
		{ GNUTLS_CERT_UNEXPECTED_OWNER, "hostname does not match" },
		{ GNUTLS_CERT_REVOKED, "certificate has been revoked" },
		{ GNUTLS_CERT_SIGNER_NOT_CA, "signer is not a CA" },
		{ GNUTLS_CERT_SIGNATURE_FAILURE, "signature check failed" },
		{ GNUTLS_CERT_INSECURE_ALGORITHM,
		    "signed with an insecure algorithm" },
		{ GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE,
		    "signer constraints violated" },
		{ GNUTLS_CERT_PURPOSE_MISMATCH,
		    "certificate is not for a TLS server" },
		{ GNUTLS_CERT_UNKNOWN_CRIT_EXTENSIONS,
		    "unknown critical extension" },
		{ GNUTLS_CERT_MISMATCH, "certificate mismatch" },
	};
	size_t len = strlen(buf);

	for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++) {
		if ((status & reasons[i].bit) == 0)
			continue;
		status &= ~reasons[i].bit;
		snprintf(buf + len, size - len, "%s%s", len > 0 ? ", " : "",
		    reasons[i].text);
		len = strlen(buf);
	}
	status &= ~GNUTLS_CERT_INVALID;
	if (status != 0 || len == 0)
		snprintf(buf + len, size - len, "%sinvalid certificate",
		    len > 0 ? ", " : "");
}

/* The server's own certificate, parsed; NULL when it sent none. */
static gnutls_x509_crt_t
peer_certificate(gnutls_session_t session)
{
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	unsigned n = 0;

	certs = gnutls_certificate_get_peers(session, &n);
	if (certs == NULL || n == 0 || gnutls_x509_crt_init(&crt) < 0)
		return NULL;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return NULL;
	}
	return crt;
}

/* Appends name to the ", "-separated list in buf when all of it fits. */
static void
append_name(char *buf, size_t size, const char *name)
{
	size_t len = strlen(buf), n = strlen(name), sep = len > 0 ? 2 : 0;

	if (len + sep + n >= size)
		return;
	memcpy(buf + len, ", ", sep);
	memcpy(buf + len + sep, name, n + 1);
}

/*
 * The names the server's certificate holds (DNS names and addresses of its
 * subjectAltName, else its common name), for a host name that matched none
 * of them.  Sanitised: they are the server's words.
 */
static void
certificate_names(gnutls_session_t session, char *buf, size_t size)
{
	gnutls_x509_crt_t crt;
	char name[256], addr[INET6_ADDRSTRLEN];
	size_t len;
	int type;

	buf[0] = '\0';
	if ((crt = peer_certificate(session)) == NULL)
		return;
	for (unsigned i = 0;; i++) {
		len = sizeof name - 1;
		type = gnutls_x509_crt_get_subject_alt_name(crt, i, name, &len,
		    NULL);
		if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
			continue;
		if (type < 0)
			break;
		if (type == GNUTLS_SAN_DNSNAME) {
			name[len] = '\0';
			append_name(buf, size, name);
		} else if (type == GNUTLS_SAN_IPADDRESS && (len == 4 ||
		    len == 16) && inet_ntop(len == 4 ? AF_INET : AF_INET6,
		    name, addr, sizeof addr) != NULL) {
			append_name(buf, size, addr);
		}
	}
	len = sizeof name;
	if (buf[0] == '\0' && gnutls_x509_crt_get_dn_by_oid(crt,
	    GNUTLS_OID_X520_COMMON_NAME, 0, 0, name, &len) == 0)
		append_name(buf, size, name);
	gnutls_x509_crt_deinit(crt);
	log_sanitize(buf);
}

/* SHA-256 of the server's SubjectPublicKeyInfo; 0, or -1. */
static int
peer_spki_sha256(gnutls_session_t session, uint8_t digest[TLS_PIN_LEN])
{
	const gnutls_datum_t *certs;
	gnutls_pubkey_t pubkey = NULL;
	gnutls_datum_t spki = { NULL, 0 };
	unsigned n = 0;
	int ret = -1;

	certs = gnutls_certificate_get_peers(session, &n);
	if (certs == NULL || n == 0)
		goto out;
	if (gnutls_pubkey_init(&pubkey) < 0)
		goto out;
	if (gnutls_pubkey_import_x509_raw(pubkey, &certs[0],
	    GNUTLS_X509_FMT_DER, 0) < 0)
		goto out;
	if (gnutls_pubkey_export2(pubkey, GNUTLS_X509_FMT_DER, &spki) < 0)
		goto out;
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size,
	    digest) < 0)
		goto out;
	ret = 0;
out:
	gnutls_free(spki.data);
	if (pubkey != NULL)
		gnutls_pubkey_deinit(pubkey);
	return ret;
}

/*
 * What to do about an unknown issuer: name the setting, and give the key's
 * pin so that it can be checked against what the server's operator says.
 */
static void
unknown_issuer_hint(gnutls_session_t session, char *buf, size_t size)
{
	uint8_t digest[TLS_PIN_LEN];
	size_t len = strlen(buf);
	char *pin = NULL;

	if (peer_spki_sha256(session, digest) == 0)
		pin = base64_encode(digest, sizeof digest);
	/* The key shown is whoever answered, maybe a man in the middle: to
	 * compare with what the server's operator publishes, not to copy. */
	snprintf(buf + len, size - len, "; if the server's CA is a private "
	    "one, set ca_file to its certificate%s%s%s", pin != NULL ?
	    " (the key presented has pin_sha256 " : "", pin != NULL ? pin : "",
	    pin != NULL ? "; pin it only if the server's operator confirms "
	    "that value)" : "");
	free(pin);
}

/*
 * Runs inside the handshake once the server's certificate has arrived: a
 * non-zero return aborts the handshake before our Finished message, so
 * nothing queued by the upper layer can leave.
 */
static int
tls_verify_cb(gnutls_session_t session)
{
	struct tls_check *check = gnutls_session_get_ptr(session);
	char reasons[sizeof check->error] = "", names[NAMES_MAX];
	uint8_t digest[TLS_PIN_LEN];
	unsigned status = 0;
	size_t len;
	int ret;

	ret = gnutls_certificate_verify_peers3(session, check->host, &status);
	if (ret < 0) {
		snprintf(check->error, sizeof check->error, "certificate "
		    "verification failed for %s: %s", check->host,
		    gnutls_strerror(ret));
		return GNUTLS_E_CERTIFICATE_ERROR;
	}
	if (status != 0) {
		verify_reasons(status, reasons, sizeof reasons);
		len = strlen(reasons);
		if ((status & GNUTLS_CERT_UNEXPECTED_OWNER) != 0) {
			certificate_names(session, names, sizeof names);
			snprintf(reasons + len, sizeof reasons - len, "; the "
			    "certificate is for %s", names[0] != '\0' ? names :
			    "no name at all");
		}
		if ((status & GNUTLS_CERT_SIGNER_NOT_FOUND) != 0)
			unknown_issuer_hint(session, reasons, sizeof reasons);
		/* A long list of names may be cut: the start says enough. */
		if (snprintf(check->error, sizeof check->error, "certificate "
		    "verification failed for %s: %s", check->host,
		    reasons) >= (int)sizeof check->error)
			log_debug("%s: certificate error message cut", check->host);
		return GNUTLS_E_CERTIFICATE_ERROR;
	}
	if (check->pin != NULL && (peer_spki_sha256(session, digest) != 0 ||
	    memcmp(digest, check->pin, TLS_PIN_LEN) != 0)) {
		snprintf(check->error, sizeof check->error, "certificate "
		    "verification failed for %s: public key pin mismatch",
		    check->host);
		return GNUTLS_E_CERTIFICATE_ERROR;
	}
	return 0;
}

/* Sessions */

static const char *
tls_cache_entry_key(size_t i, void *arg)
{
	(void)arg;
	return tls_cache.v[i].key;
}

static struct tls_cache_entry *
tls_cache_find(const char *key)
{
	size_t i;

	if (tls_cache.index.key == NULL)
		return NULL;
	i = nameindex_find(&tls_cache.index, key, strlen(key));
	return i == SIZE_MAX ? NULL : &tls_cache.v[i];
}

/* An entry for a key not in the cache: a new one, or a random one given
 * up.  NULL when out of memory. */
static struct tls_cache_entry *
tls_cache_slot(char *key)
{
	struct tls_cache_entry *v, *e;
	size_t cap, i;

	if (tls_cache.index.key == NULL)
		nameindex_init(&tls_cache.index, tls_cache_entry_key, NULL);
	if (tls_cache.n < TLS_CACHE_MAX) {
		if (tls_cache.n == tls_cache.cap) {
			cap = tls_cache.cap > 0 ? 2 * tls_cache.cap : 16;
			if ((v = realloc(tls_cache.v, cap * sizeof *v)) == NULL)
				return NULL;
			tls_cache.v = v;
			tls_cache.cap = cap;
		}
		e = &tls_cache.v[tls_cache.n];
		e->key = key;
		e->data.data = NULL;
		e->data.size = 0;
		if (nameindex_add(&tls_cache.index, tls_cache.n) != 0)
			return NULL;
		tls_cache.n++;
		return e;
	}
	e = &tls_cache.v[(size_t)random() % tls_cache.n];
	free(e->key);
	e->key = key;
	gnutls_free(e->data.data);
	e->data.data = NULL;
	e->data.size = 0;
	nameindex_free(&tls_cache.index);
	nameindex_init(&tls_cache.index, tls_cache_entry_key, NULL);
	for (i = 0; i < tls_cache.n; i++)
		if (nameindex_add(&tls_cache.index, i) != 0) {
			/* Out of memory: the cache starts again, empty. */
			tls_cache_forget_all();
			return NULL;
		}
	return e;
}

static void
tls_cache_store(const char *key, gnutls_datum_t *data)
{
	struct tls_cache_entry *e;
	char *copy;

	if ((e = tls_cache_find(key)) == NULL) {
		if ((copy = strdup(key)) == NULL ||
		    (e = tls_cache_slot(copy)) == NULL) {
			free(copy);
			gnutls_free(data->data);
			return;
		}
	}
	gnutls_free(e->data.data);
	e->data = *data;
	data->data = NULL;
}

static void
tls_cache_forget_all(void)
{
	for (size_t i = 0; i < tls_cache.n; i++) {
		free(tls_cache.v[i].key);
		gnutls_free(tls_cache.v[i].data.data);
	}
	free(tls_cache.v);
	nameindex_free(&tls_cache.index);
	memset(&tls_cache, 0, sizeof tls_cache);
}

char *
tls_cache_key(const char *scope, const char *host, uint16_t port,
    const char *ca_file, const uint8_t *pin)
{
	char pinhex[2 * TLS_PIN_LEN + 1] = "";
	char *key;

	if (pin != NULL)
		hex_encode(pin, TLS_PIN_LEN, pinhex);
	/* The scope last: an account's name may hold anything but NUL. */
	if (asprintf(&key, "%s\n%u\n%s\n%s\n%s", host, (unsigned)port,
	    ca_file != NULL ? ca_file : "", pinhex, scope != NULL ? scope :
	    "") == -1)
		return NULL;
	return key;
}

void
tls_session_save(gnutls_session_t session, const char *cache_key)
{
	gnutls_datum_t data = { NULL, 0 };

	/* TLS 1.3 data is resumable only once a ticket has arrived. */
	if (gnutls_protocol_get_version(session) == GNUTLS_TLS1_3 &&
	    (gnutls_session_get_flags(session) &
	    GNUTLS_SFLAGS_SESSION_TICKET) == 0)
		return;
	if (gnutls_session_get_data2(session, &data) == 0 && data.size > 0)
		tls_cache_store(cache_key, &data);
	else
		gnutls_free(data.data);
}

int
tls_session_new(gnutls_session_t *session_r,
    gnutls_certificate_credentials_t cred, struct tls_check *check,
    const char *cache_key)
{
	const struct tls_cache_entry *cached;
	gnutls_session_t session;
	int ret;

	*session_r = NULL;
	ret = gnutls_init(&session, GNUTLS_CLIENT | GNUTLS_NONBLOCK |
	    GNUTLS_NO_SIGNAL);
	if (ret < 0)
		return ret;
	if (tls_priority == NULL && (ret = gnutls_priority_init(&tls_priority,
	    TLS_PRIORITY, NULL)) < 0) {
		tls_priority = NULL;
		goto fail;
	}
	if ((ret = gnutls_priority_set(session, tls_priority)) < 0)
		goto fail;
	if (!is_address_literal(check->host) &&
	    (ret = gnutls_server_name_set(session, GNUTLS_NAME_DNS,
	    check->host, strlen(check->host))) < 0)
		goto fail;
	if ((ret = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
	    cred)) < 0)
		goto fail;
	gnutls_session_set_ptr(session, check);
	if (cache_key != NULL && (cached = tls_cache_find(cache_key)) != NULL &&
	    cached->data.data != NULL)
		gnutls_session_set_data(session, cached->data.data,
		    cached->data.size);
	check->error[0] = '\0';
	*session_r = session;
	return 0;
fail:
	gnutls_deinit(session);
	return ret;
}

void
tls_caches_clear(void)
{
	struct cred_entry *e;

	tls_cache_forget_all();
	if (tls_priority != NULL) {
		gnutls_priority_deinit(tls_priority);
		tls_priority = NULL;
	}
	while ((e = cred_cache) != NULL) {
		cred_cache = e->next;
		gnutls_certificate_free_credentials(e->cred);
		free(e->ca_file);
		free(e);
	}
}

/* Handshake failures */

/*
 * A TLS record starts with its content type, 20 to 24 (23: application
 * data); an IMAP greeting starts with "* OK".  Any byte outside that
 * range is not TLS; a printable one means the server is talking text.
 */
bool
tls_looks_like_plain_text(const unsigned char *data, size_t len)
{
	return len > 0 && (data[0] < 20 || data[0] > 24) &&
	    data[0] >= 0x20 && data[0] < 0x7f;
}

const char *
tls_strerror(int ret, int io_error)
{
	if ((ret == GNUTLS_E_PUSH_ERROR || ret == GNUTLS_E_PULL_ERROR) &&
	    io_error != 0)
		return strerror(io_error);
	return gnutls_strerror(ret);
}

enum transport_error_kind
tls_handshake_error(gnutls_session_t session, int ret,
    const struct tls_check *check, const char *peer, const char *plain,
    bool implicit, int io_error, char *buf, size_t size)
{
	if (check->error[0] != '\0') {
		snprintf(buf, size, "%s", check->error);
		return TRANSPORT_ERR_TLS_VERIFY;
	}
	if (plain != NULL && implicit)
		snprintf(buf, size, "TLS handshake with %s failed: the server "
		    "answered in plain text (\"%s\"): this port speaks plain "
		    "text; use tls = starttls or port 993", peer, plain);
	else if (plain != NULL)
		snprintf(buf, size, "TLS handshake with %s failed: the server "
		    "answered in plain text (\"%s\")", peer, plain);
	else if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
		snprintf(buf, size, "TLS handshake with %s failed: the server "
		    "sent alert: %s", peer,
		    gnutls_alert_get_name(gnutls_alert_get(session)));
	else
		snprintf(buf, size, "TLS handshake with %s failed: %s", peer,
		    tls_strerror(ret, io_error));
	return TRANSPORT_ERR_TLS;
}
