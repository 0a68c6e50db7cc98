/*
 * mirror/error: the kinds of trouble that end a sync, for the engine, its
 * pure decisions (plan) and whoever reports the result.
 */
#ifndef MM_MIRROR_ERROR_H
#define MM_MIRROR_ERROR_H

/*
 * What ended a sync: the session's kinds of trouble, and the mirror's own
 * (this side of the connection: the disk, the state, a lock another holds).
 */
enum mirror_error {
	MIRROR_OK = 0,
	MIRROR_ERR_NETWORK,	/* resolve, connect, reset, EOF */
	MIRROR_ERR_TIMEOUT,	/* no progress for the timeout */
	MIRROR_ERR_TLS,		/* handshake or verification */
	MIRROR_ERR_AUTH,	/* credentials rejected */
	MIRROR_ERR_SECRET,	/* the secret could not be obtained */
	MIRROR_ERR_PROTOCOL,	/* unparseable or unexpected server data */
	MIRROR_ERR_SERVER,	/* BYE, NO/BAD where OK was needed */
	MIRROR_ERR_LOCAL,	/* disk full, the state, the output */
	MIRROR_ERR_BUSY,	/* another process holds the account or mbox */
};

/* For people: "network error", "busy", ... */
const char *mirror_error_name(enum mirror_error error);
/* For scripts and the state file: "network", "busy", ... (one word). */
const char *mirror_error_kind(enum mirror_error error);

#endif
