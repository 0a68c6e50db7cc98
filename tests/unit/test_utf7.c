/*
 * Modified UTF-7 (RFC 3501 5.1.3): vectors both ways, invalid input, and
 * round trips over every BMP code point and around the surrogate range.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap/writer.h"

static const char mb64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* A NULL side means: converting the other side must fail. */
static const struct {
	const char *utf8;
	const char *mutf7;
} vectors[] = {
	{ "", "" },
	{ "1", "1" },
	{ "word", "word" },
	{ " ~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}", " ~!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}" },
	{ "&", "&-" },
	{ "&&", "&-&-" },
	{ "&&x&&", "&-&-x&-&-" },
	{ "1&1", "1&-1" },
	{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-" },
	{ "\xe5\x8f\xb0\xe5\x8c\x97", "&U,BTFw-" },
	{ "tiet\xc3\xa4j\xc3\xa4", "tiet&AOQ-j&AOQ-" },
	{ "\xc3\xa4", "&AOQ-" },
	{ "\xc3\xa4\xc3\xb6", "&AOQA9g-" },
	{ "\xc3\xa4\xc3\xb6\xc3\xbc", "&AOQA9gD8-" },
	{ "m\xc3\xbcll", "m&APw-ll" },
	{ "\xc3\xbc" "ber", "&APw-ber" },
	{ "\t", "&AAk-" },
	{ "\t&", "&AAk-&-" },
	{ "&\t", "&-&AAk-" },
	{ "\t&\t", "&AAk-&-&AAk-" },
	{ "m\x7fll", "m&AH8-ll" },
	{ "\r\n", "&AA0ACg-" },
	{ "\xc2\x80", "&AIA-" },
	{ "\xe1\xb8\x80", "&HgA-" },
	{ "\xe1\xb8\x80\xe1\xb8\x81", "&HgAeAQ-" },
	{ "\xef\xbf\xbf", "&,,8-" },
	{ "\xef\xbf\xbd", "&,,0-" },
	/* Outside the BMP: UTF-16 surrogate pairs. */
	{ "\xf0\x9f\x98\x82", "&2D3eAg-" },
	{ "\xf0\x9f\x98\x88\xf0\x9f\x98\x8e", "&2D3eCNg93g4-" },
	{ "\xf0\x90\x80\x80", "&2ADcAA-" },
	{ "\xf4\x8f\xbf\xbf", "&2,,f,w-" },
	{ "a\xf0\x9f\x98\x82" "b\xc3\xa4", "a&2D3eAg-b&AOQ-" },
	/* Encoding failures: invalid UTF-8. */
	{ "p\xe4\xe4", NULL },
	{ "\x83\x84", NULL },
	{ "\xc3\xc4", NULL },
	{ "\xc3", NULL },
	{ "\xc0\xaf", NULL },			/* overlong '/' */
	{ "\xc1\xbf", NULL },
	{ "\xe0\x80\xaf", NULL },		/* overlong */
	{ "\xe0\x9f\xbf", NULL },		/* overlong U+07FF */
	{ "\xf0\x8f\xbf\xbf", NULL },		/* overlong U+FFFF */
	{ "\xed\xa0\x80", NULL },		/* surrogate U+D800 */
	{ "\xed\xbf\xbf", NULL },		/* surrogate U+DFFF */
	{ "\xed\xa0\xbd\xed\xb8\x82", NULL },	/* CESU-8 pair */
	{ "\xf4\x90\x80\x80", NULL },		/* U+110000 */
	{ "\xf5\x80\x80\x80", NULL },
	{ "\xf8\x88\x80\x80\x80", NULL },
	{ "\xff", NULL },
	{ "\xe1\xc8\x80", NULL },
	{ "\xe1\xb8", NULL },
	{ "\xf0\x9f\x98", NULL },
	{ "\xf0\x9f\x98\xe2", NULL },
	/* Decoding failures. */
	{ NULL, "&" },
	{ NULL, "a&" },
	{ NULL, "&-&" },
	{ NULL, "&AAk" },			/* unterminated */
	{ NULL, "&Jjo" },
	{ NULL, "&Jjo!" },			/* '!' is not base64 */
	{ NULL, "&AA-" },			/* 12 bits: no whole unit */
	{ NULL, "&A-" },
	{ NULL, "&*Ak-" },
	{ NULL, "&AO/-" },			/* '/' instead of ',' */
	{ NULL, "&AO=-" },			/* padding */
	{ NULL, "&&-" },
	{ NULL, "&AOR-" },			/* non-zero padding bits */
	{ NULL, "&AOQA-" },			/* surplus base64 char */
	{ NULL, "&AOQA9gA-" },			/* surplus 12 bits */
	{ NULL, "&AGE-" },			/* 'a' shifted: non-minimal */
	{ NULL, "&ACY-" },			/* '&' shifted */
	{ NULL, "&ACA-" },			/* ' ' shifted */
	{ NULL, "&AH4-" },			/* '~' shifted */
	{ NULL, "&AOQAYQ-" },			/* 'a' inside a shift */
	{ NULL, "&AAA-" },			/* U+0000 */
	{ NULL, "&U,BTFw-&ZeVnLIqe-" },		/* two shifts in a row */
	{ NULL, "&AOQ-&AOQ-" },
	{ NULL, "&2D0-" },			/* lone high surrogate */
	{ NULL, "&2D3YPQ-" },			/* high, high */
	{ NULL, "&3gI-" },			/* lone low surrogate */
	{ NULL, "&3gLYPQ-" },			/* low, high */
	{ NULL, "&2D0AYQ-" },			/* high, then 'a' */
	{ NULL, "\t" },				/* controls must be shifted */
	{ NULL, "a\x7f" },
	{ NULL, "a\r\nb" },
	{ NULL, "\xc3\xa4" },			/* 8-bit bytes */
	{ NULL, "&AOQ-\xff" },
};

static void
test_vectors(void **state)
{
	size_t i;
	char *out;

	(void)state;
	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *u = vectors[i].utf8, *m = vectors[i].mutf7;

		if (u != NULL) {
			out = imap_utf7_encode(u, strlen(u));
			if (m == NULL) {
				if (out != NULL)
					fail_msg("vector %zu: encoded to %s",
					    i, out);
			} else {
				if (out == NULL)
					fail_msg("vector %zu: encode failed", i);
				assert_string_equal(out, m);
			}
			free(out);
		}
		if (m != NULL) {
			out = imap_utf7_decode(m, strlen(m));
			if (u == NULL) {
				if (out != NULL)
					fail_msg("vector %zu: decoded %s", i, m);
			} else {
				if (out == NULL)
					fail_msg("vector %zu: decode failed", i);
				assert_string_equal(out, u);
			}
			free(out);
		}
	}
}

/* Lengths are taken as given: an embedded NUL is refused both ways. */
static void
test_nul(void **state)
{
	(void)state;
	assert_null(imap_utf7_encode("a\0b", 3));
	assert_null(imap_utf7_decode("a\0b", 3));
	assert_null(imap_utf7_decode("&AOQ-\0", 6));
	/* A shorter length stops before the rest. */
	char *s = imap_utf7_decode("ab&AOQ-", 2);
	assert_non_null(s);
	assert_string_equal(s, "ab");
	free(s);
	s = imap_utf7_decode("&AOQ-", 3);
	assert_null(s);
}

/* Every single printable ASCII character: it stands for itself, and its
 * shifted form is refused (after Dovecot's "unnecessary" test). */
static void
test_printable_not_shifted(void **state)
{
	char in[2] = { 0 }, sh[6];
	char *out;
	unsigned c;

	(void)state;
	for (c = 0x20; c < 0x7f; c++) {
		sh[0] = '&';
		sh[1] = mb64[0];
		sh[2] = mb64[c >> 4];
		sh[3] = mb64[(c & 0x0f) << 2];
		sh[4] = '-';
		sh[5] = '\0';
		assert_null(imap_utf7_decode(sh, 5));
		if (c == '&')
			continue;
		in[0] = c;
		out = imap_utf7_encode(in, 1);
		assert_non_null(out);
		assert_string_equal(out, in);
		free(out);
		out = imap_utf7_decode(in, 1);
		assert_non_null(out);
		assert_string_equal(out, in);
		free(out);
	}
	/* Controls are shifted, and only accepted shifted. */
	for (c = 1; c < 0x20; c++) {
		in[0] = c;
		assert_null(imap_utf7_decode(in, 1));
		out = imap_utf7_encode(in, 1);
		assert_non_null(out);
		assert_int_equal(out[0], '&');
		free(out);
	}
}

/* Shifts holding one 8-bit octet are not UTF-16 (after Dovecot). */
static void
test_odd_octets(void **state)
{
	char s[8];
	unsigned i;

	(void)state;
	for (i = 0; i < 256; i++) {
		s[0] = '&';
		s[1] = mb64[i >> 2];
		s[2] = mb64[(i & 3) << 4];
		s[3] = '-';
		s[4] = '\0';
		assert_null(imap_utf7_decode(s, 4));
		/* U+00E4 followed by one odd octet. */
		s[1] = mb64[0];
		s[2] = mb64[0xe4 >> 4];
		s[3] = mb64[((0xe4 & 0x0f) << 2) | (i >> 6)];
		s[4] = mb64[i & 0x3f];
		s[5] = '-';
		s[6] = '\0';
		assert_null(imap_utf7_decode(s, 6));
	}
}

static size_t
put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = 0xc0 | (cp >> 6);
		o[1] = 0x80 | (cp & 0x3f);
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = 0xe0 | (cp >> 12);
		o[1] = 0x80 | ((cp >> 6) & 0x3f);
		o[2] = 0x80 | (cp & 0x3f);
		return 3;
	}
	o[0] = 0xf0 | (cp >> 18);
	o[1] = 0x80 | ((cp >> 12) & 0x3f);
	o[2] = 0x80 | ((cp >> 6) & 0x3f);
	o[3] = 0x80 | (cp & 0x3f);
	return 4;
}

static void
round_trip(const char *s, size_t len)
{
	char *enc, *dec, *again;

	enc = imap_utf7_encode(s, len);
	assert_non_null(enc);
	/* The encoding is 7-bit printable, whatever went in. */
	for (const char *p = enc; *p != '\0'; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	dec = imap_utf7_decode(enc, strlen(enc));
	assert_non_null(dec);
	assert_int_equal(strlen(dec), len);
	assert_memory_equal(dec, s, len);
	/* One-to-one: encoding the decoded string gives the same bytes. */
	again = imap_utf7_encode(dec, strlen(dec));
	assert_non_null(again);
	assert_string_equal(again, enc);
	free(again);
	free(dec);
	free(enc);
}

/* Every code point, alone and mixed with '&' and ASCII, at every
 * alignment of the base64 bit stream. */
static void
test_round_trip_all(void **state)
{
	char buf[64];
	size_t n;
	uint32_t cp;
	int j, k;

	(void)state;
	for (cp = 1; cp <= 0x10ffff; cp++) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		/* Beyond the BMP, test the planes' edges and a sample. */
		if (cp > 0x10010 && cp < 0x10fff0 && cp % 4099 != 0)
			continue;
		n = put_utf8(buf, cp);
		round_trip(buf, n);
		if (cp % 7 != 0 && cp > 0x7f && cp < 0xffff - 16)
			continue;
		for (k = 1; k <= 4; k++) {
			n = 0;
			for (j = 0; j < k; j++) {
				if (j % 3 == 0)
					buf[n++] = 'x';
				if (j % 2 == 1)
					buf[n++] = '&';
				n += put_utf8(buf + n, cp);
				n += put_utf8(buf + n, 0x10000 + cp % 0x100000);
			}
			round_trip(buf, n);
		}
	}
}

/*
 * A long shift decodes to more bytes than it has: every 8 base64 characters
 * are three UTF-16 units, up to 9 bytes of UTF-8.  A CJK name of n
 * characters is about 8n/3 + 2 bytes of modified UTF-7 and 3n of UTF-8;
 * under ASan a decoder that sizes its output from its input overflows.
 */
static void
test_long_names(void **state)
{
	static const uint32_t cps[] = { 0x65e5, 0x672c, 0x8a9e, 0x4e2d,
	    0xac00, 0xffef, 0x1f602, 0x2000b, 0x10fffd };
	char *utf8, *enc, *dec;
	size_t n, len, i, k;

	(void)state;
	for (n = 1; n <= 300; n++) {
		for (k = 0; k < 3; k++) {
			/* k 0: all CJK; 1: all beyond the BMP (surrogate
			 * pairs); 2: mixed, with ASCII between shifts. */
			if ((utf8 = malloc(n * 5 + 1)) == NULL)
				fail();
			for (len = i = 0; i < n; i++) {
				uint32_t cp = k == 0 ? cps[i % 6] :
				    k == 1 ? cps[6 + i % 3] : cps[i % 9];

				if (k == 2 && i % 37 == 36)
					utf8[len++] = 'x';
				len += put_utf8(utf8 + len, cp);
			}
			utf8[len] = '\0';
			enc = imap_utf7_encode(utf8, len);
			assert_non_null(enc);
			dec = imap_utf7_decode(enc, strlen(enc));
			assert_non_null(dec);
			assert_string_equal(dec, utf8);
			free(dec);
			free(enc);
			free(utf8);
		}
	}
}

/* Random garbage never crashes the decoder, and whatever it accepts
 * encodes back to exactly the input (decoding is one-to-one). */
static void
test_decode_garbage(void **state)
{
	static const char alpha[] = "&-AZaz09+,/ \x01\x80";
	char in[16], *dec, *enc;
	unsigned seed = 12345;
	size_t len, i;
	int round, accepted = 0;

	(void)state;
	for (round = 0; round < 200000; round++) {
		len = (seed = seed * 1103515245 + 12345) % sizeof(in);
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			in[i] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		dec = imap_utf7_decode(in, len);
		if (dec == NULL)
			continue;
		accepted++;
		enc = imap_utf7_encode(dec, strlen(dec));
		assert_non_null(enc);
		assert_int_equal(strlen(enc), len);
		assert_memory_equal(enc, in, len);
		free(enc);
		free(dec);
	}
	assert_true(accepted > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_printable_not_shifted),
		cmocka_unit_test(test_odd_octets),
		cmocka_unit_test(test_round_trip_all),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_decode_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
