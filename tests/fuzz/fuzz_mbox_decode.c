/*
 * libFuzzer target for the mboxrd entry decoder (mbox/decode.h).
 *
 * The input's first byte picks the chunk size; the rest is a message
 * (lone LFs, which the mbox format cannot keep apart from line ends, made
 * 'L').  The writer's encoder stores it; the decoder, fed the entry in
 * those chunks and told about the added LF by the message's size, must
 * give back exactly the message.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mbox/decode.h"
#include "mbox/mboxrd.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static int
buf_out(void *arg, const void *data, size_t len)
{
	struct buf *b = arg;

	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + len)
			cap *= 2;
		if ((b->p = realloc(b->p, cap)) == NULL)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

static int
discard(void *arg, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf entry = { 0 }, out = { 0 };
	struct mbox_decoder d;
	struct mboxrd e;
	unsigned char *msg;
	size_t chunk, len;
	uint64_t full;

	if (size == 0)
		return 0;
	chunk = 1 + data[0] % 64;
	len = size - 1;
	if ((msg = malloc(len > 0 ? len : 1)) == NULL)
		abort();
	memcpy(msg, data + 1, len);
	for (size_t i = 0; i < len; i++)
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			msg[i] = 'L';

	mboxrd_init(&e, buf_out, &entry);
	mboxrd_begin(&e, (time_t)1793523903);
	if (mboxrd_write(&e, msg, len) != 0 || mboxrd_end(&e) != 0)
		abort();
	mboxrd_free(&e);

	mbox_decode_init(&d, discard, NULL);
	if (mbox_decode_write(&d, entry.p, entry.len) != 0 ||
	    mbox_decode_end(&d, false) != 0)
		abort();
	full = mbox_decode_size(&d);

	mbox_decode_init(&d, buf_out, &out);
	for (size_t at = 0; at < entry.len; at += chunk)
		if (mbox_decode_write(&d, entry.p + at, entry.len - at < chunk ?
		    entry.len - at : chunk) != 0)
			abort();
	if (mbox_decode_end(&d, mbox_decode_drop_added(full, len)) != 0)
		abort();
	if (out.len != len || mbox_decode_size(&d) != len ||
	    (len > 0 && memcmp(out.p, msg, len) != 0))
		abort();
	free(out.p);
	free(entry.p);
	free(msg);
	return 0;
}
