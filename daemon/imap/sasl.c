/*
 * Choosing how to log in, and the SASL initial responses (see sasl.h).
 */
#include "imap/sasl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "imap/writer.h"

int
sasl_choose(enum session_auth auth, const struct imap_caps *caps,
    enum sasl_method *method_r, const char **error_r)
{
	bool plain = imap_caps_has(caps, "AUTH=PLAIN");
	bool login_ok = !imap_caps_has(caps, "LOGINDISABLED");

	*error_r = NULL;
	switch (auth) {
	case SESSION_AUTH_AUTO:
		if (plain || login_ok) {
			*method_r = plain ? SASL_PLAIN : SASL_LOGIN_COMMAND;
			return 0;
		}
		*error_r = "server offers neither AUTH=PLAIN nor LOGIN "
		    "(LOGINDISABLED)";
		return -1;
	case SESSION_AUTH_PLAIN:
		*method_r = SASL_PLAIN;
		if (!plain)
			*error_r = "server does not offer AUTH=PLAIN";
		break;
	case SESSION_AUTH_LOGIN:
		*method_r = SASL_LOGIN_COMMAND;
		if (!login_ok)
			*error_r = "server refuses LOGIN (LOGINDISABLED)";
		break;
	case SESSION_AUTH_XOAUTH2:
		*method_r = SASL_XOAUTH2;
		break;
	case SESSION_AUTH_OAUTHBEARER:
		*method_r = SASL_OAUTHBEARER;
		break;
	}
	return *error_r == NULL ? 0 : -1;
}

const char *
sasl_mechanism_name(enum sasl_method method)
{
	switch (method) {
	case SASL_PLAIN:
		return "PLAIN";
	case SASL_XOAUTH2:
		return "XOAUTH2";
	case SASL_OAUTHBEARER:
		return "OAUTHBEARER";
	case SASL_LOGIN_COMMAND:
		break;
	}
	return NULL;
}

char *
sasl_initial_response(enum sasl_method method,
    const struct sasl_credentials *c)
{
	size_t ulen = strlen(c->user), plen = strlen(c->secret), cap;
	unsigned char *raw;
	char *b64, *gs2 = NULL;
	int n;

	/* The escaped user can be three times as long as the user. */
	if (method == SASL_OAUTHBEARER &&
	    (gs2 = imap_sasl_gs2_header(c->user)) == NULL)
		return NULL;
	cap = ulen + plen + strlen(c->host) + (gs2 != NULL ? strlen(gs2) : 0) +
	    64;
	if ((raw = malloc(cap)) == NULL) {
		free(gs2);
		return NULL;
	}
	switch (method) {
	case SASL_PLAIN:
		/* authzid (empty), authcid, password, NUL-separated */
		raw[0] = '\0';
		memcpy(raw + 1, c->user, ulen);
		raw[1 + ulen] = '\0';
		memcpy(raw + 2 + ulen, c->secret, plen);
		n = (int)(ulen + plen + 2);
		break;
	case SASL_XOAUTH2:
		n = snprintf((char *)raw, cap, "user=%s\001auth=Bearer "
		    "%s\001\001", c->user, c->secret);
		break;
	case SASL_OAUTHBEARER:
		n = snprintf((char *)raw, cap, "%s\001host=%s\001port=%u"
		    "\001auth=Bearer %s\001\001", gs2, c->host,
		    (unsigned)c->port, c->secret);
		break;
	default:
		n = -1;
		break;
	}
	b64 = n >= 0 && (size_t)n < cap ? base64_encode(raw, (size_t)n) : NULL;
	explicit_bzero(raw, cap);
	free(raw);
	free(gs2);
	return b64;
}
