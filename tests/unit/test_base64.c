/*
 * base64: RFC 4648's test vectors for the encoder, and every byte's value in
 * both alphabets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

static void
test_encode_rfc4648_vectors(void **state)
{
	static const char *const vectors[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	char *out;

	(void)state;
	for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
		out = base64_encode((const unsigned char *)vectors[i][0],
		    strlen(vectors[i][0]));
		assert_non_null(out);
		assert_string_equal(out, vectors[i][1]);
		free(out);
	}
	/* Every byte value, and the two characters that differ. */
	out = base64_encode((const unsigned char *)"\xfb\xff\xfe", 3);
	assert_string_equal(out, "+//+");
	free(out);
}

static void
test_value_both_alphabets(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		const char *s = memchr(base64_std, c, 64);
		const char *m = memchr(base64_imap, c, 64);

		assert_int_equal(base64_value(base64_std, (unsigned char)c),
		    c != 0 && s != NULL ? s - base64_std : -1);
		assert_int_equal(base64_value(base64_imap, (unsigned char)c),
		    c != 0 && m != NULL ? m - base64_imap : -1);
	}
	assert_int_equal(base64_value(base64_std, '/'), 63);
	assert_int_equal(base64_value(base64_imap, '/'), -1);
	assert_int_equal(base64_value(base64_imap, ','), 63);
	assert_int_equal(base64_value(base64_std, '='), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_rfc4648_vectors),
		cmocka_unit_test(test_value_both_alphabets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
