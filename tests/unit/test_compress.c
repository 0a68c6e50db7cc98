/* net/compress: RFC 4978 raw DEFLATE both ways, chunked, and corrupt input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "net/compress.h"

struct sink {
	unsigned char *data;
	size_t len, cap;
	size_t calls;
	size_t max_chunk;
};

static int
collect(void *arg, const unsigned char *data, size_t len)
{
	struct sink *s = arg;

	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->data = realloc(s->data, s->cap);
		assert_non_null(s->data);
	}
	memcpy(s->data + s->len, data, len);
	s->len += len;
	s->calls++;
	if (len > s->max_chunk)
		s->max_chunk = len;
	return 0;
}

static unsigned char *
sample(size_t len, unsigned seed)
{
	unsigned char *p = malloc(len);

	assert_non_null(p);
	srand(seed);
	for (size_t i = 0; i < len; i++)
		p[i] = i % 7 == 0 ? (unsigned char)rand() : "IMAP text\r\n"[i % 11];
	return p;
}

/* What one side deflates, the other inflates, whatever the chunking. */
static void
test_round_trip_any_chunking(void **state)
{
	struct compress *a = compress_new(6), *b = compress_new(1);
	size_t len = 3 * 1024 * 1024 + 17, steps[] = { 1, 7, 4096, 65536 };
	unsigned char *plain = sample(len, 1);
	struct sink wire = { 0 }, out = { 0 };

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	/* Several writes, each flushed: each is decodable on its own. */
	for (size_t off = 0; off < len; off += 100000) {
		size_t n = len - off < 100000 ? len - off : 100000;

		assert_int_equal(compress_deflate(a, plain + off, n, collect,
		    &wire), 0);
	}
	assert_true(wire.len < len / 2);
	for (size_t k = 0, off = 0; off < wire.len; k++) {
		size_t n = steps[k % 4];

		if (n > wire.len - off)
			n = wire.len - off;
		assert_int_equal(compress_inflate(b, wire.data + off, n,
		    collect, &out), 0);
		off += n;
	}
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, plain, len);
	/* Output comes in bounded chunks, never as one big buffer. */
	assert_true(out.max_chunk <= COMPRESS_CHUNK);
	free(plain);
	free(wire.data);
	free(out.data);
	compress_free(&a);
	compress_free(&b);
	assert_null(a);
}

/* A sync flush after each write: the peer can decode a command at once. */
static void
test_each_write_is_flushed(void **state)
{
	struct compress *a = compress_new(1);
	struct sink wire = { 0 };
	unsigned char out[64];
	z_stream zs = { 0 };

	(void)state;
	assert_int_equal(compress_deflate(a, "A1 NOOP\r\n", 9, collect, &wire),
	    0);
	assert_int_equal(inflateInit2(&zs, -15), Z_OK);
	zs.next_in = wire.data;
	zs.avail_in = (uInt)wire.len;
	zs.next_out = out;
	zs.avail_out = sizeof out;
	assert_int_equal(inflate(&zs, Z_SYNC_FLUSH), Z_OK);
	assert_int_equal(sizeof out - zs.avail_out, 9);
	assert_memory_equal(out, "A1 NOOP\r\n", 9);
	inflateEnd(&zs);
	free(wire.data);
	compress_free(&a);
}

static void
test_corrupt_input_is_an_error(void **state)
{
	struct compress *b = compress_new(1);
	static const unsigned char junk[] = { 0xff, 0xff, 0xff, 0xff, 0x00,
	    0x13, 0x37 };
	struct sink out = { 0 };

	(void)state;
	assert_int_equal(compress_inflate(b, junk, sizeof junk, collect, &out),
	    -1);
	assert_non_null(strstr(compress_error(b), "corrupt"));
	free(out.data);
	compress_free(&b);
}

static int
refuse(void *arg, const unsigned char *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return -1;
}

static void
test_consumer_can_stop(void **state)
{
	struct compress *a = compress_new(1), *b = compress_new(1);
	struct sink wire = { 0 };
	uint64_t raw_in, plain_in, plain_out, raw_out;

	(void)state;
	assert_int_equal(compress_deflate(a, "x", 1, collect, &wire), 0);
	assert_int_equal(compress_inflate(b, wire.data, wire.len, refuse, NULL),
	    -1);
	compress_stats(a, &raw_in, &plain_in, &plain_out, &raw_out);
	assert_int_equal(plain_out, 1);
	assert_int_equal(raw_out, wire.len);
	free(wire.data);
	compress_free(&a);
	compress_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_any_chunking),
		cmocka_unit_test(test_each_write_is_flushed),
		cmocka_unit_test(test_corrupt_input_is_an_error),
		cmocka_unit_test(test_consumer_can_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
