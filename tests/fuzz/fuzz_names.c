/*
 * libFuzzer target for mirror/names: server mailbox names to mbox paths.
 *
 * Input: an options byte (bit 0: the names are UTF-8; bits 1-3: the
 * delimiter, from a table or the next byte), a byte that splits the rest
 * into two names, then the two names (they may hold NUL).  Each path must
 * stay inside the output directory: relative, no empty, "." or ".."
 * component, no control byte, components within NAME_MAX, ending in
 * ".mbox"; every '%' must start one of the documented escapes; no
 * component may take a name reserved for the files beside an mbox.  Two
 * different names must give different paths (but for INBOX in any case
 * and the hashed tails of long components), and no path may be the path a
 * mailbox is kept aside under.
 */
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mirror/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* s (len bytes) ends in suffix, in any case. */
static bool
ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && strncasecmp(s + len - n, suffix, n) == 0;
}

/* A name the files beside an mbox use: "x.mbox" (or "x.mbox.<any>"),
 * "x.lock", "x.uidvalidity-<digits and '-'>", "x.unknown-<...>". */
static bool
reserved(const char *c, size_t len)
{
	static const char *const aside[] = { ".uidvalidity-", ".unknown-" };
	size_t i, k, a, n;

	if (ends_with(c, len, ".mbox") || ends_with(c, len, ".lock"))
		return true;
	for (i = 0; i < len; i++) {
		if (c[i] != '.')
			continue;
		if (len - i >= 6 && strncasecmp(c + i, ".mbox.", 6) == 0)
			return true;
		for (a = 0; a < 2; a++) {
			n = strlen(aside[a]);
			if (len - i <= n || strncasecmp(c + i, aside[a], n) != 0)
				continue;
			for (k = i + n; k < len; k++)
				if (!isdigit((unsigned char)c[k]) && c[k] != '-')
					break;
			if (k == len)
				return true;
		}
	}
	return false;
}

/* One component of a path (without ".mbox" for the last one). */
static void
check_component(const char *c, size_t len)
{
	size_t i;

	if (len == 0 || (len == 1 && c[0] == '.') ||
	    (len == 2 && c[0] == '.' && c[1] == '.') || c[0] == '.')
		abort();
	/* Room for ".mbox" and the longest suffix put after it. */
	if (len > NAMES_COMPONENT_MAX)
		abort();
	if (reserved(c, len))
		abort();
	if (len == 1 && c[0] == '%')
		return;
	for (i = 0; i < len; i++) {
		if (c[i] != '%')
			continue;
		if (i + 1 < len && c[i + 1] == '~') {
			/* "%~" and 16 hex digits end the component. */
			if (len - i != 18)
				abort();
			for (i += 2; i < len; i++)
				if (!isxdigit((unsigned char)c[i]))
					abort();
			return;
		}
		if (i + 2 >= len || !is_hex(c[i + 1]) || !is_hex(c[i + 2]))
			abort();
		i += 2;
	}
}

static void
check_path(const char *p)
{
	size_t len = strlen(p), i, start, stem;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			abort();
	if (len <= 5 || strcmp(p + len - 5, ".mbox") != 0 || p[0] == '/')
		abort();
	stem = len - 5;
	for (start = i = 0; i <= stem; i++) {
		if (i < stem && p[i] != '/')
			continue;
		check_component(p + start, i - start);
		start = i + 1;
	}
}

static bool
starts_inbox(const char *p)
{
	return strncmp(p, "INBOX/", 6) == 0 || strcmp(p, "INBOX.mbox") == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char delims[] = { '\0', '/', '.', '\\', '&', '%', '-' };
	char *name[2], *path[2], *old;
	size_t len[2], rest, k;
	char delim;
	bool utf8;
	uint32_t uv;
	int i;

	if (size < 3)
		return 0;
	utf8 = data[0] & 1;
	k = (data[0] >> 1) & 7;
	delim = k < sizeof(delims) ? delims[k] : (char)data[1];
	rest = size - 3;
	len[0] = rest == 0 ? 0 : data[2] % (rest + 1);
	len[1] = rest - len[0];
	uv = (uint32_t)data[1] * 2654435761u;
	/* Exact-size copies: reading past a name is caught. */
	for (i = 0; i < 2; i++) {
		if ((name[i] = malloc(len[i] > 0 ? len[i] : 1)) == NULL)
			abort();
		memcpy(name[i], data + 3 + (i == 0 ? 0 : len[0]), len[i]);
		if ((path[i] = names_mbox_path(name[i], len[i], delim,
		    utf8)) == NULL)
			abort();
		check_path(path[i]);
	}
	if ((len[0] != len[1] || memcmp(name[0], name[1], len[0]) != 0) &&
	    strcmp(path[0], path[1]) == 0 &&
	    !(starts_inbox(path[0]) && starts_inbox(path[1])) &&
	    strstr(path[0], "%~") == NULL)
		abort();
	/* A file kept aside (as layout_keep_aside() names it) is never a
	 * mailbox's. */
	{
		char tag[40];
		size_t base = strlen(path[0]) - 5;	/* ".mbox" */

		names_aside_tag(uv & 1 ? NAMES_ASIDE_UIDVALIDITY :
		    NAMES_ASIDE_UNKNOWN, uv, tag, sizeof tag);
		if (asprintf(&old, "%.*s.%s.mbox", (int)base, path[0],
		    tag) < 0)
			abort();
		if (strcmp(old, path[1]) == 0 || strcmp(old, path[0]) == 0)
			abort();
		free(old);
	}

	/* LIST matching on the name as a C string: "*" takes anything, and
	 * a name without wildcards matches itself. */
	if (memchr(name[0], '\0', len[0]) == NULL) {
		char *s = strndup(name[0], len[0]);

		if (s == NULL)
			abort();
		if (!names_match("*", s, delim))
			abort();
		if (strpbrk(s, "*%") == NULL && !names_match(s, s, delim))
			abort();
		free(s);
	}
	for (i = 0; i < 2; i++) {
		free(name[i]);
		free(path[i]);
	}
	return 0;
}
