/*
 * mbox/hashbuf: SHA-256 fed in blocks, internal to mbox/.  The entry digest
 * is computed over output that comes a line at a time, a few dozen bytes
 * each; one gnutls_hash() call per line cost more CPU than the hashing, so
 * small pieces are gathered first and hashed HASHBUF_SIZE bytes at a time.
 */
#ifndef MM_MBOX_HASHBUF_H
#define MM_MBOX_HASHBUF_H

#include <stddef.h>

#include <gnutls/crypto.h>

#define HASHBUF_SIZE	8192

struct hashbuf {
	size_t		 len;
	unsigned char	 buf[HASHBUF_SIZE];
};

/* len bytes at data into hash, through b.  0, or -1 with errno EIO. */
int hashbuf_feed(struct hashbuf *b, gnutls_hash_hd_t hash, const void *data,
    size_t len);
/* What b holds, into hash (before the digest is read).  0, or -1 (EIO). */
int hashbuf_flush(struct hashbuf *b, gnutls_hash_hd_t hash);

#endif
