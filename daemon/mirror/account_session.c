#include "mirror/account_session.h"

#include "secret.h"

static void *
fetch_secret(struct ev_loop *loop, void *arg, session_secret_fn *done,
    void *done_arg)
{
	return secret_fetch_async(loop, arg, done, done_arg);
}

static void
cancel_secret(void *job)
{
	struct secret_job *j = job;

	secret_job_cancel(&j);
}

struct session *
account_session_new(struct ev_loop *loop, const struct account *account,
    unsigned timeout, const struct session_callbacks *cb, void *arg)
{
	struct session_params params = {
		.name = account->name,
		.host = account->host,
		.port = account->port,
		.ca_file = account->ca_file,
		.pin_sha256 = account->has_pin ? account->pin_sha256 : NULL,
		.user = account->user,
		.timeout = timeout,
		.credential = {
			.fetch = fetch_secret,
			.cancel = cancel_secret,
			/* secret_fetch_async copies what it needs. */
			.arg = (void *)account,
		},
	};

	switch (account->tls) {
	case TLS_IMPLICIT:
		params.tls = SESSION_TLS_IMPLICIT;
		break;
	case TLS_STARTTLS:
		params.tls = SESSION_TLS_STARTTLS;
		break;
	case TLS_NONE:
		params.tls = SESSION_TLS_NONE;
		break;
	}
	switch (account->auth) {
	case AUTH_AUTO:
		params.auth = SESSION_AUTH_AUTO;
		break;
	case AUTH_PLAIN:
		params.auth = SESSION_AUTH_PLAIN;
		break;
	case AUTH_LOGIN:
		params.auth = SESSION_AUTH_LOGIN;
		break;
	case AUTH_XOAUTH2:
		params.auth = SESSION_AUTH_XOAUTH2;
		break;
	case AUTH_OAUTHBEARER:
		params.auth = SESSION_AUTH_OAUTHBEARER;
		break;
	}
	switch (account->compress) {
	case COMPRESS_AUTO:
		params.compress = SESSION_COMPRESS_AUTO;
		break;
	case COMPRESS_YES:
		params.compress = SESSION_COMPRESS_YES;
		break;
	case COMPRESS_NO:
		params.compress = SESSION_COMPRESS_NO;
		break;
	}
	return session_new(loop, &params, cb, arg);
}
