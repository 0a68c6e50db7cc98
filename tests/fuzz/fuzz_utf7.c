/*
 * libFuzzer target for modified UTF-7 (imap_utf7_decode/encode).
 *
 * The input is tried both ways.  As a mailbox name from a server: whatever
 * the decoder accepts is UTF-8 without NUL, fits the bound the decoder
 * sizes its output by, and encodes back to exactly the input (decoding is
 * one-to-one).  As UTF-8: whatever the encoder accepts is printable ASCII
 * and decodes back to the input.  Each call gets an exact-size heap copy,
 * so reading past the input is caught.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/writer.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* A strict UTF-8 check, independent of the code under test: shortest
 * forms, no surrogates, nothing above U+10FFFF, no NUL. */
static int
valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp, min;

	while (i < len) {
		if (s[i] == 0)
			return 0;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = s[i] & 0x1f;
			min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = s[i] & 0x0f;
			min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = s[i] & 0x07;
			min = 0x10000;
		} else
			return 0;
		if (len - i <= n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy, *dec, *enc, *again;
	size_t i, n;

	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	memcpy(copy, data, size);

	/* Server bytes in. */
	if ((dec = imap_utf7_decode(copy, size)) != NULL) {
		n = strlen(dec);
		if (n > size + size / 8 ||
		    !valid_utf8((const unsigned char *)dec, n))
			abort();
		if ((enc = imap_utf7_encode(dec, n)) == NULL ||
		    strlen(enc) != size || memcmp(enc, data, size) != 0)
			abort();
		free(enc);
		free(dec);
	}

	/* UTF-8 in: the encoder accepts exactly valid UTF-8. */
	enc = imap_utf7_encode(copy, size);
	if ((enc != NULL) != valid_utf8(data, size))
		abort();
	if (enc != NULL) {
		n = strlen(enc);
		for (i = 0; i < n; i++)
			if (enc[i] < 0x20 || enc[i] > 0x7e)
				abort();
		if ((dec = imap_utf7_decode(enc, n)) == NULL ||
		    strlen(dec) != size || memcmp(dec, data, size) != 0)
			abort();
		/* Stable: the decoded name encodes the same again. */
		if ((again = imap_utf7_encode(dec, size)) == NULL ||
		    strcmp(again, enc) != 0)
			abort();
		free(again);
		free(dec);
		free(enc);
	}
	free(copy);
	return 0;
}
