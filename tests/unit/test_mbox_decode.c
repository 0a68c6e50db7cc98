/*
 * mbox/decode: every message encoded by the writer's mboxrd encoder decodes
 * back to its exact bytes, whatever the chunking on either side, with the
 * added final LF told apart by RFC822.SIZE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mbox/decode.h"
#include "mbox/mboxrd.h"

struct buf {
	unsigned char *p;
	size_t len, cap;
	long fail_after;	/* calls until out fails; <0: never */
};

static int
buf_out(void *arg, const void *data, size_t len)
{
	struct buf *b = arg;

	if (b->fail_after == 0)
		return -1;
	if (b->fail_after > 0)
		b->fail_after--;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < b->len + len)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

static void
buf_init(struct buf *b)
{
	memset(b, 0, sizeof *b);
	b->fail_after = -1;
}

/* The entry the writer stores for msg (From_ line included). */
static void
encode(const void *msg, size_t len, struct buf *entry)
{
	struct mboxrd e;

	buf_init(entry);
	mboxrd_init(&e, buf_out, entry);
	mboxrd_begin(&e, (time_t)1793523903);
	assert_int_equal(mboxrd_write(&e, msg, len), 0);
	assert_int_equal(mboxrd_end(&e), 0);
	mboxrd_free(&e);
}

/* Decodes entry fed in chunks of chunk bytes (0: whole), dropping the
 * added LF as the size rule says for a message of msg_size bytes. */
static void
decode(const struct buf *entry, size_t chunk, uint64_t msg_size,
    struct buf *out)
{
	struct mbox_decoder d;
	struct buf count;
	bool drop;

	/* Pass one: the full decode's size. */
	buf_init(&count);
	mbox_decode_init(&d, buf_out, &count);
	assert_int_equal(mbox_decode_write(&d, entry->p, entry->len), 0);
	assert_int_equal(mbox_decode_end(&d, false), 0);
	assert_int_equal(mbox_decode_size(&d), count.len);
	drop = mbox_decode_drop_added(count.len, msg_size);
	free(count.p);

	buf_init(out);
	mbox_decode_init(&d, buf_out, out);
	if (chunk == 0)
		chunk = entry->len ? entry->len : 1;
	for (size_t at = 0; at < entry->len; at += chunk) {
		size_t n = entry->len - at < chunk ? entry->len - at : chunk;

		assert_int_equal(mbox_decode_write(&d, entry->p + at, n), 0);
	}
	assert_int_equal(mbox_decode_end(&d, drop), 0);
	assert_int_equal(mbox_decode_size(&d), out->len);
}

static void
assert_round_trip_msg(const void *msg, size_t len)
{
	struct buf entry, out;
	static const size_t chunks[] = { 0, 1, 2, 3, 5, 7, 64 };

	encode(msg, len, &entry);
	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		decode(&entry, chunks[i], len, &out);
		if (out.len != len || (len > 0 && memcmp(out.p, msg, len) != 0))
			fail_msg("chunk %zu: decoded %zu bytes \"%.*s\", want %zu "
			    "\"%.*s\"", chunks[i], out.len, (int)out.len,
			    out.p != NULL ? (char *)out.p : "", len, (int)len,
			    (const char *)msg);
		free(out.p);
	}
	free(entry.p);
}

#define RT(s) assert_round_trip_msg((s), sizeof(s) - 1)

static void
test_crlf(void **state)
{
	(void)state;
	RT("Subject: x\r\n\r\nbody\r\n");
	RT("Subject: x\r\n\r\nline 1\r\nline 2\r\n\r\n\r\n");
	RT("\r\n");
	RT("\r\n\r\n");
	RT("Subject: x\r\n\r\n\r\n\r\n\r\nend\r\n");
}

static void
test_lone_cr(void **state)
{
	(void)state;
	RT("Subject: x\r\n\r\na\rb\r\n");
	RT("Subject: x\r\n\r\nends in CR\r");
	RT("Subject: x\r\n\r\nCR CRLF\r\r\n");
	RT("\r");
	RT("\r\r\r\n\r");
}

static void
test_8bit(void **state)
{
	static const unsigned char msg[] = "Subject: =?utf-8?q?x?=\r\n\r\n"
	    "\xc3\xa4rger \xff\xfe\x00\x01 nul\r\n\x80\r\n";

	(void)state;
	assert_round_trip_msg(msg, sizeof msg - 1);
}

static void
test_from_quoting(void **state)
{
	(void)state;
	RT("Subject: x\r\n\r\nFrom here\r\n>From there\r\n>>From far\r\n");
	RT("From the start\r\n\r\nbody\r\n");
	RT(">From the start\r\n");
	RT("Subject: x\r\n\r\nFrom\r\nFro\r\n>Fro\r\n>\r\n>>\r\n> From x\r\n");
	RT("Subject: x\r\n\r\n>>>From");
	RT("Subject: x\r\n\r\n>From ");
	RT("Subject: x\r\n\r\nFrom ");
	RT("Subject: x\r\n\r\n>");
	RT("Subject: x\r\n\r\nFr");
	RT("Subject: x\r\n\r\nFrom x\r\n\r\nFrom y\r\n");
}

static void
test_no_final_newline(void **state)
{
	(void)state;
	RT("Subject: x\r\n\r\nno newline");
	RT("x");
	RT("Subject: x");
	RT("Subject: x\r\n\r\nlast line\r\n\r\nno newline");
}

static void
test_empty(void **state)
{
	struct buf entry, out;

	(void)state;
	RT("");
	/* The entry of an empty message is its From_ line and the empty
	 * line. */
	encode("", 0, &entry);
	assert_non_null(memchr(entry.p, '\n', entry.len));
	assert_int_equal((unsigned char *)memchr(entry.p, '\n', entry.len) -
	    entry.p + 2, entry.len);
	decode(&entry, 0, 0, &out);
	assert_int_equal(out.len, 0);
	free(out.p);
	free(entry.p);
}

/* "x" and "x\r\n" are stored alike: only the size tells them apart. */
static void
test_size_decides(void **state)
{
	struct buf a, b, out;

	(void)state;
	encode("x", 1, &a);
	encode("x\r\n", 3, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.p, b.p, a.len);
	decode(&a, 0, 1, &out);
	assert_int_equal(out.len, 1);
	free(out.p);
	decode(&a, 0, 3, &out);
	assert_int_equal(out.len, 3);
	assert_memory_equal(out.p, "x\r\n", 3);
	free(out.p);
	free(a.p);
	free(b.p);

	assert_true(mbox_decode_drop_added(5, 3));
	assert_false(mbox_decode_drop_added(5, 5));
	assert_false(mbox_decode_drop_added(1, 0));
	assert_false(mbox_decode_drop_added(0, 0));
	assert_true(mbox_decode_drop_added(2, 0));
}

/* Random messages of CRLF, LF, CR, '>', "From " pieces and bytes. */
static void
test_random(void **state)
{
	static const char *const pieces[] = {
		"\r\n", "\r\n", "\r", "\n", ">", ">>", "From ", "From",
		"x", "Fro", " ", "\xc3\xa4", "\x00",
	};
	unsigned seed = 12345;
	unsigned char msg[512];

	(void)state;
	for (int round = 0; round < 3000; round++) {
		size_t len = 0, n;

		seed = seed * 1103515245 + 12345;
		n = (seed >> 16) % 40;
		for (size_t i = 0; i < n; i++) {
			const char *p;
			size_t plen;

			seed = seed * 1103515245 + 12345;
			p = pieces[(seed >> 16) % (sizeof pieces /
			    sizeof pieces[0])];
			plen = *p == '\0' ? 1 : strlen(p);
			if (len + plen > sizeof msg)
				break;
			memcpy(msg + len, p, plen);
			len += plen;
		}
		/* Lone LFs cannot round-trip (see decode.h): not here. */
		for (size_t i = 0; i < len; i++)
			if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
				msg[i] = 'L';
		assert_round_trip_msg(msg, len);
	}
}

/* A lone LF comes back as CRLF: one byte more than RFC822.SIZE. */
static void
test_lone_lf(void **state)
{
	struct buf entry, out;

	(void)state;
	encode("a\nb\r\n", 5, &entry);
	decode(&entry, 0, 5, &out);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.p, "a\r\nb\r\n", 6);
	free(out.p);
	free(entry.p);
}

static void
test_big(void **state)
{
	size_t len = 3 * 1024 * 1024;
	unsigned char *msg = malloc(len);

	(void)state;
	assert_non_null(msg);
	for (size_t i = 0; i < len; i++)
		msg[i] = (unsigned char)(i % 77 == 75 ? '\r' : i % 77 == 76 ?
		    '\n' : i % 1001 == 0 ? '>' : 'a' + i % 26);
	memcpy(msg + 1000 * 77, "From ", 5);
	{
		struct buf entry, out;

		encode(msg, len, &entry);
		decode(&entry, 65536, len, &out);
		assert_int_equal(out.len, len);
		assert_memory_equal(out.p, msg, len);
		free(out.p);
		free(entry.p);
	}
	free(msg);
}

static void
test_out_fails(void **state)
{
	struct buf entry, out;
	struct mbox_decoder d;

	(void)state;
	encode("Subject: x\r\n\r\nbody\r\n", 20, &entry);
	buf_init(&out);
	out.fail_after = 1;
	mbox_decode_init(&d, buf_out, &out);
	assert_int_equal(mbox_decode_write(&d, entry.p, entry.len), -1);
	free(out.p);
	free(entry.p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_lone_cr),
		cmocka_unit_test(test_8bit),
		cmocka_unit_test(test_from_quoting),
		cmocka_unit_test(test_no_final_newline),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_size_decides),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_lone_lf),
		cmocka_unit_test(test_big),
		cmocka_unit_test(test_out_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
