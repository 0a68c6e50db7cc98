#include "util/json.h"

#include <string.h>

#include "util/utf8.h"

void
json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s), n;
	uint32_t cp;

	fputc('"', out);
	while (left > 0) {
		if ((n = utf8_decode(p, left, &cp)) == 0) {
			/* Not a character: a JSON document must be UTF-8. */
			fputs("\\ufffd", out);
			n = 1;
		} else if (cp == '"' || cp == '\\')
			fprintf(out, "\\%c", (int)cp);
		else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			fprintf(out, "\\u%04x", (unsigned)cp);
		else
			fwrite(p, 1, n, out);
		p += n;
		left -= n;
	}
	fputc('"', out);
}
