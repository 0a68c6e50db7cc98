#include "net/compress.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

struct compress {
	z_stream in, out;
	bool in_ready, out_ready;
	unsigned char *buf;		/* COMPRESS_CHUNK bytes of output */
	char error[128];
	uint64_t raw_in, plain_in, plain_out, raw_out;
};

struct compress *
compress_new(int level)
{
	struct compress *z;

	if ((z = calloc(1, sizeof *z)) == NULL)
		return NULL;
	if ((z->buf = malloc(COMPRESS_CHUNK)) == NULL)
		goto fail;
	/* Negative window bits: raw DEFLATE, as RFC 4978 requires. */
	if (inflateInit2(&z->in, -15) != Z_OK)
		goto fail;
	z->in_ready = true;
	if (deflateInit2(&z->out, level, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		goto fail;
	z->out_ready = true;
	return z;
fail:
	compress_free(&z);
	return NULL;
}

void
compress_free(struct compress **zp)
{
	struct compress *z = *zp;

	*zp = NULL;
	if (z == NULL)
		return;
	if (z->in_ready)
		inflateEnd(&z->in);
	if (z->out_ready)
		deflateEnd(&z->out);
	free(z->buf);
	free(z);
}

int
compress_inflate(struct compress *z, const void *in, size_t len,
    compress_out_fn *out, void *arg)
{
	size_t produced;
	int r;

	z->raw_in += len;
	z->in.next_in = (Bytef *)(uintptr_t)in;
	z->in.avail_in = (uInt)len;
	do {
		z->in.next_out = z->buf;
		z->in.avail_out = COMPRESS_CHUNK;
		r = inflate(&z->in, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
			snprintf(z->error, sizeof z->error, "corrupt "
			    "compressed data from the server: %s",
			    z->in.msg != NULL ? z->in.msg : "inflate failed");
			return -1;
		}
		if (r == Z_STREAM_END && z->in.avail_in > 0) {
			snprintf(z->error, sizeof z->error, "the server "
			    "ended its compressed stream early");
			return -1;
		}
		produced = COMPRESS_CHUNK - z->in.avail_out;
		z->plain_in += produced;
		if (produced > 0 && out(arg, z->buf, produced) != 0)
			return -1;
	} while (z->in.avail_in > 0 || z->in.avail_out == 0);
	return 0;
}

int
compress_deflate(struct compress *z, const void *in, size_t len,
    compress_out_fn *out, void *arg)
{
	size_t produced;

	z->plain_out += len;
	z->out.next_in = (Bytef *)(uintptr_t)in;
	z->out.avail_in = (uInt)len;
	do {
		z->out.next_out = z->buf;
		z->out.avail_out = COMPRESS_CHUNK;
		if (deflate(&z->out, Z_SYNC_FLUSH) == Z_STREAM_ERROR) {
			snprintf(z->error, sizeof z->error, "compression "
			    "failed");
			return -1;
		}
		produced = COMPRESS_CHUNK - z->out.avail_out;
		z->raw_out += produced;
		if (produced > 0 && out(arg, z->buf, produced) != 0)
			return -1;
	} while (z->out.avail_out == 0);
	return 0;
}

const char *
compress_error(const struct compress *z)
{
	return z->error;
}

void
compress_stats(const struct compress *z, uint64_t *raw_in, uint64_t *plain_in,
    uint64_t *plain_out, uint64_t *raw_out)
{
	*raw_in = z->raw_in;
	*plain_in = z->plain_in;
	*plain_out = z->plain_out;
	*raw_out = z->raw_out;
}
