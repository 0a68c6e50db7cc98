#include "mbox/hashbuf.h"

#include <errno.h>
#include <string.h>

static int
hash_now(gnutls_hash_hd_t hash, const void *data, size_t len)
{
	if (len > 0 && gnutls_hash(hash, data, len) < 0) {
		errno = EIO;
		return -1;
	}
	return 0;
}

int
hashbuf_flush(struct hashbuf *b, gnutls_hash_hd_t hash)
{
	size_t len = b->len;

	b->len = 0;
	return hash_now(hash, b->buf, len);
}

int
hashbuf_feed(struct hashbuf *b, gnutls_hash_hd_t hash, const void *data,
    size_t len)
{
	if (b->len + len > sizeof b->buf) {
		if (hashbuf_flush(b, hash) == -1)
			return -1;
		/* A big piece goes straight in: copying it gains nothing. */
		if (len >= sizeof b->buf / 2)
			return hash_now(hash, data, len);
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	return 0;
}
