/*
 * net/compress: the COMPRESS=DEFLATE stream transform of RFC 4978, raw
 * DEFLATE (no zlib header) in both directions, with a sync flush after each
 * write so every command reaches the server whole.  zlib does the work: a
 * well-kept, everywhere-installed library, where writing DEFLATE by hand
 * would be long and risky.  Memory stays bounded whatever the server sends:
 * output is handed on in chunks, never accumulated.
 */
#ifndef MM_NET_COMPRESS_H
#define MM_NET_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

/* Size of the chunks handed to the output callback. */
#define COMPRESS_CHUNK (128 * 1024)

struct compress;

/* Gets output bytes in order; returns 0, or -1 to stop (the call that
 * produced them then returns -1 too). */
typedef int compress_out_fn(void *arg, const unsigned char *data, size_t len);

/* level: 1 (fast) to 9 (small); our side sends only commands. */
struct compress *compress_new(int level);
void compress_free(struct compress **z);

/* Inflates len bytes received; 0, or -1 on corrupt data (see
 * compress_error) or when out said stop. */
int compress_inflate(struct compress *z, const void *in, size_t len,
    compress_out_fn *out, void *arg);
/* Deflates len bytes to send, followed by a sync flush. 0 or -1. */
int compress_deflate(struct compress *z, const void *in, size_t len,
    compress_out_fn *out, void *arg);
const char *compress_error(const struct compress *z);
/* Bytes seen on each side, for the figures in the log. */
void compress_stats(const struct compress *z, uint64_t *raw_in,
    uint64_t *plain_in, uint64_t *plain_out, uint64_t *raw_out);

#endif
