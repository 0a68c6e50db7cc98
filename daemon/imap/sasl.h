/*
 * imap/sasl: how a session logs in, without doing it: the choice between
 * AUTHENTICATE with a SASL mechanism and the LOGIN command (from the
 * configured method and the server's capabilities), and the mechanisms'
 * initial responses: PLAIN (RFC 4616), XOAUTH2 (Google's) and OAUTHBEARER
 * (RFC 7628).  Pure functions; the session sends what they give.
 */
#ifndef MM_IMAP_SASL_H
#define MM_IMAP_SASL_H

#include <stdint.h>

#include "imap/response.h"
#include "imap/session.h"

enum sasl_method {
	SASL_LOGIN_COMMAND,	/* the LOGIN command, not SASL */
	SASL_PLAIN,
	SASL_XOAUTH2,
	SASL_OAUTHBEARER,
};

/* What the initial responses carry; none of it is copied or kept. */
struct sasl_credentials {
	const char *user;
	const char *secret;	/* a password, or an OAuth 2 access token */
	const char *host;	/* OAUTHBEARER names the server... */
	uint16_t port;		/* ...and its port */
};

/*
 * The way to log in for auth given the server's caps: "auto" takes
 * AUTHENTICATE PLAIN where AUTH=PLAIN is offered, else LOGIN; "plain" and
 * "login" insist on theirs; the OAuth 2 mechanisms are tried whatever the
 * capabilities say (servers do not always list them).  0, or -1 with
 * *error_r (static text) saying what the server lacks.
 */
int sasl_choose(enum session_auth auth, const struct imap_caps *caps,
    enum sasl_method *method_r, const char **error_r);

/* The mechanism's name for AUTHENTICATE; NULL for SASL_LOGIN_COMMAND. */
const char *sasl_mechanism_name(enum sasl_method method);

/* The initial response of method, base64: a malloc'ed string for the
 * caller to wipe and free; NULL when out of memory, and for
 * SASL_LOGIN_COMMAND.  The unencoded bytes are wiped before it returns. */
char *sasl_initial_response(enum sasl_method method,
    const struct sasl_credentials *creds);

#endif
