#include "base64.h"

#include <stdlib.h>

const char base64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const char base64_imap[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int
base64_value(const char *alphabet, unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (unsigned char)alphabet[62])
		return 62;
	if (c == (unsigned char)alphabet[63])
		return 63;
	return -1;
}

char *
base64_encode(const unsigned char *in, size_t len)
{
	const char *a = base64_std;
	char *out, *p;
	size_t i;

	if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	for (i = 0, p = out; i + 2 < len; i += 3) {
		*p++ = a[in[i] >> 2];
		*p++ = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*p++ = a[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*p++ = a[in[i + 2] & 63];
	}
	if (i < len) {
		*p++ = a[in[i] >> 2];
		if (i + 1 < len) {
			*p++ = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*p++ = a[(in[i + 1] & 15) << 2];
		} else {
			*p++ = a[(in[i] & 3) << 4];
			*p++ = '=';
		}
		*p++ = '=';
	}
	*p = '\0';
	return out;
}
