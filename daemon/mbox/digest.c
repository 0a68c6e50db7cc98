/*
 * mbox_digest_* (see mbox.h): the writer's encoder with its output thrown
 * away, so that the digest of raw message bytes is the one the writer
 * gives the entry it writes from them, by construction.
 */
#include "mbox/mbox.h"

#include <stdlib.h>
#include <string.h>

#include "mbox/mboxrd.h"

struct mbox_digest {
	struct mboxrd	enc;
	bool		open;	/* a message begun */
};

static int
discard(void *arg, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return 0;
}

int
mbox_digest_new(struct mbox_digest **d_r)
{
	struct mbox_digest *d;

	*d_r = NULL;
	if ((d = calloc(1, sizeof *d)) == NULL)
		return -1;
	mboxrd_init(&d->enc, discard, NULL);
	*d_r = d;
	return 0;
}

/* The From_ line is not part of the digest: its date does not matter. */
static int
ensure_open(struct mbox_digest *d)
{
	if (d->open)
		return 0;
	if (mboxrd_begin(&d->enc, 0) == -1)
		return -1;
	d->open = true;
	return 0;
}

int
mbox_digest_write(struct mbox_digest *d, const void *data, size_t len)
{
	if (ensure_open(d) == -1)
		return -1;
	return mboxrd_write(&d->enc, data, len);
}

int
mbox_digest_end(struct mbox_digest *d, uint8_t digest[MBOX_DIGEST_LEN],
    uint64_t *message_id_hash_r)
{
	if (ensure_open(d) == -1)
		return -1;
	d->open = false;
	if (mboxrd_end(&d->enc) == -1)
		return -1;
	memcpy(digest, d->enc.entry_digest, MBOX_DIGEST_LEN);
	if (message_id_hash_r != NULL)
		*message_id_hash_r = d->enc.message_id_hash;
	return 0;
}

void
mbox_digest_free(struct mbox_digest **dp)
{
	if (*dp == NULL)
		return;
	mboxrd_free(&(*dp)->enc);
	free(*dp);
	*dp = NULL;
}
