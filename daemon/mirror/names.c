/*
 * mirror/names: mailbox names to mbox paths, and LIST pattern matching.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/writer.h"
#include "mirror/names.h"
#include "util/hash.h"
#include "util/utf8.h"

struct sbuf {
	char	*data;
	size_t	 len, cap;
	bool	 failed;
};

/* Why files are kept aside: the one list that both their tags and the
 * names reserved for them come from. */
static const char *const aside_why[] = {
	[NAMES_ASIDE_UIDVALIDITY] = "uidvalidity",
	[NAMES_ASIDE_UNKNOWN] = "unknown",
};

static void	 sb_add(struct sbuf *, const void *, size_t);
static void	 sb_escape(struct sbuf *, unsigned char);
static bool	 ends_reserved_at(const unsigned char *, size_t, size_t);
static void	 add_component(struct sbuf *, const unsigned char *, size_t,
		    bool);
static bool	 is_inbox(const char *, size_t);
static bool	 has_control(const char *);

static void
sb_add(struct sbuf *sb, const void *p, size_t n)
{
	size_t	 ncap;
	char	*d;

	if (sb->failed)
		return;
	if (n > SIZE_MAX / 2 - sb->len) {
		sb->failed = true;
		return;
	}
	if (sb->len + n + 1 > sb->cap) {
		ncap = sb->cap ? sb->cap : 64;
		while (ncap < sb->len + n + 1)
			ncap *= 2;
		if ((d = realloc(sb->data, ncap)) == NULL) {
			sb->failed = true;
			return;
		}
		sb->data = d;
		sb->cap = ncap;
	}
	memcpy(sb->data + sb->len, p, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

static void
sb_escape(struct sbuf *sb, unsigned char c)
{
	char	 e[4];

	snprintf(e, sizeof(e), "%%%02X", c);
	sb_add(sb, e, 3);
}

/*
 * The '.' at c[i] starts a suffix that other files beside the mbox use:
 * ".mbox" at the end or before another '.', ".lock" at the end, or
 * ".uidvalidity-" or ".unknown-" and then only digits and '-' at the end
 * (the names files are kept aside under).
 */
static bool
ends_reserved_at(const unsigned char *c, size_t len, size_t i)
{
	const char *s = (const char *)c + i;
	size_t	 rest = len - i, k, a, n;

	if (rest >= 5 && strncasecmp(s, ".mbox", 5) == 0 &&
	    (rest == 5 || s[5] == '.'))
		return true;
	if (rest == 5 && strncasecmp(s, ".lock", 5) == 0)
		return true;
	for (a = 0; a < sizeof(aside_why) / sizeof(aside_why[0]); a++) {
		/* "." why "-" */
		n = strlen(aside_why[a]) + 2;
		if (rest <= n || strncasecmp(s + 1, aside_why[a], n - 2) != 0 ||
		    s[n - 1] != '-')
			continue;
		for (k = n; k < rest; k++)
			if ((s[k] < '0' || s[k] > '9') && s[k] != '-')
				break;
		if (k == rest)
			return true;
	}
	return false;
}

static void
add_component(struct sbuf *out, const unsigned char *c, size_t len, bool raw)
{
	struct sbuf e = { 0 };
	size_t	 i, n, cut, step;
	uint32_t cp;
	char	 tail[24];

	if (len == 0) {
		sb_add(out, "%", 1);
		return;
	}
	for (i = 0; i < len; i += n) {
		n = 1;
		if (c[i] >= 0x80) {
			if (!raw && (n = utf8_decode(c + i, len - i, &cp)) > 0 &&
			    (cp < 0x80 || cp > 0x9f)) {
				sb_add(&e, c + i, n);
				continue;
			}
			/* A C1 control (no decoded name has one: see
			 * has_control()) is escaped byte by byte. */
			n = 1;
			sb_escape(&e, c[i]);
		} else if (c[i] < 0x20 || c[i] == 0x7f || c[i] == '%' ||
		    c[i] == '/' || c[i] == '\\' || (raw && c[i] == '&') ||
		    (c[i] == '.' && (i == 0 || ends_reserved_at(c, len, i))))
			sb_escape(&e, c[i]);
		else
			sb_add(&e, c + i, 1);
	}
	if (e.failed) {
		out->failed = true;
		goto out;
	}
	if (e.len <= NAMES_COMPONENT_MAX) {
		sb_add(out, e.data, e.len);
		goto out;
	}
	/* Cut between characters: never inside "%XX" or a UTF-8 sequence. */
	snprintf(tail, sizeof(tail), "%%~%016llx",
	    (unsigned long long)hash_fnv1a64(e.data, e.len));
	for (cut = 0; ; cut += step) {
		unsigned char b = e.data[cut];
		step = b == '%' ? 3 : b < 0x80 ? 1 :
		    utf8_decode((unsigned char *)e.data + cut, e.len - cut,
		    &cp);
		if (step == 0)
			step = 1;
		if (cut + step > NAMES_COMPONENT_MAX - strlen(tail))
			break;
	}
	sb_add(out, e.data, cut);
	sb_add(out, tail, strlen(tail));
out:
	free(e.data);
}

static bool
is_inbox(const char *s, size_t len)
{
	return len == 5 && strncasecmp(s, "INBOX", 5) == 0;
}

static bool
has_control(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	/* C0, DEL, and the C1 controls U+0080..U+009F (CSI, OSC...). */
	for (; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 &&
		    p[1] <= 0x9f))
			return true;
	return false;
}

char *
names_mbox_path(const char *name, size_t len, char delimiter, bool utf8)
{
	struct sbuf out = { 0 };
	char	*dec = NULL;
	const char *b = name;
	size_t	 blen = len, start, i;
	bool	 raw = false;
	int	 k;

	if (!utf8) {
		dec = imap_utf7_decode(name, len);
		if (dec != NULL && !has_control(dec)) {
			b = dec;
			blen = strlen(dec);
		} else
			raw = true;
	}
	for (k = 0, start = i = 0; i <= blen; i++) {
		if (i < blen && (delimiter == '\0' || b[i] != delimiter))
			continue;
		if (k > 0)
			sb_add(&out, "/", 1);
		if (k == 0 && is_inbox(b + start, i - start))
			sb_add(&out, "INBOX", 5);
		else
			add_component(&out, (const unsigned char *)b + start,
			    i - start, raw);
		k++;
		start = i + 1;
	}
	sb_add(&out, ".mbox", 5);
	free(dec);
	if (out.failed) {
		free(out.data);
		return NULL;
	}
	return out.data;
}

const char *
names_aside_tag(enum names_aside why, long long n, char *buf, size_t size)
{
	snprintf(buf, size, "%s-%lld", aside_why[why], n);
	return buf;
}

/*
 * Dynamic programming over name positions, one pattern byte at a time:
 * cur[j] says whether the pattern so far matches the first j bytes of the
 * name.  No backtracking, so "*a*a*a*...b" cannot blow up.
 */
bool
names_match(const char *pattern, const char *name, char delimiter)
{
	size_t	 n = strlen(name), j, inbox_len = 0;
	bool	*cur, *next, *t, any, result = false;
	const char *p;

	if (strncasecmp(name, "INBOX", 5) == 0 &&
	    (name[5] == '\0' || (delimiter != '\0' && name[5] == delimiter)))
		inbox_len = 5;
	cur = calloc(n + 1, sizeof(*cur));
	next = calloc(n + 1, sizeof(*next));
	if (cur == NULL || next == NULL)
		goto out;
	cur[0] = true;
	for (p = pattern; *p != '\0'; p++) {
		any = false;
		if (*p == '*') {
			for (j = 0; j <= n; j++)
				next[j] = (any = any || cur[j]);
		} else if (*p == '%') {
			next[0] = cur[0];
			for (j = 1; j <= n; j++) {
				next[j] = cur[j] || (next[j - 1] &&
				    (delimiter == '\0' ||
				    name[j - 1] != delimiter));
				any = any || next[j];
			}
			any = any || next[0];
		} else {
			next[0] = false;
			for (j = 1; j <= n; j++) {
				unsigned char a = *p, c = name[j - 1];
				bool eq = a == c || (j <= inbox_len &&
				    tolower(a) == tolower(c));
				next[j] = cur[j - 1] && eq;
				any = any || next[j];
			}
		}
		t = cur;
		cur = next;
		next = t;
		if (!any)
			break;
	}
	result = *p == '\0' && cur[n];
out:
	free(cur);
	free(next);
	return result;
}

int
names_first_match(const char *const *patterns, size_t n, const char *name,
    char delimiter)
{
	for (size_t i = 0; i < n; i++)
		if (names_match(patterns[i], name, delimiter))
			return (int)i;
	return -1;
}

int
names_patterns_init(struct names_patterns *p, const char *const *include,
    size_t ninclude, const char *const *exclude, size_t nexclude)
{
	p->include = include;
	p->ninclude = ninclude;
	p->exclude = exclude;
	p->nexclude = nexclude;
	p->include_hit = calloc(ninclude + 1, sizeof *p->include_hit);
	p->exclude_hit = calloc(nexclude + 1, sizeof *p->exclude_hit);
	if (p->include_hit != NULL && p->exclude_hit != NULL)
		return 0;
	names_patterns_free(p);
	return -1;
}

void
names_patterns_free(struct names_patterns *p)
{
	free(p->include_hit);
	free(p->exclude_hit);
	p->include_hit = p->exclude_hit = NULL;
}

/* Notes every pattern of the n that matches name in hit (if any); returns
 * the first one's index, or -1. */
static int
match_noting(const char *const *patterns, size_t n, bool *hit,
    const char *name, char delimiter)
{
	int first = -1;

	for (size_t i = 0; i < n; i++) {
		if (!names_match(patterns[i], name, delimiter))
			continue;
		if (first < 0)
			first = (int)i;
		if (hit == NULL)
			break;
		hit[i] = true;
	}
	return first;
}

bool
names_decide(const struct names_patterns *p, const char *name,
    char delimiter, int *include_r, int *exclude_r)
{
	int i = match_noting(p->include, p->ninclude, p->include_hit, name,
	    delimiter);
	int x = -1;

	if (i >= 0 || p->ninclude == 0)
		x = match_noting(p->exclude, p->nexclude, p->exclude_hit, name,
		    delimiter);
	if (include_r != NULL)
		*include_r = i;
	if (exclude_r != NULL)
		*exclude_r = x;
	return (i >= 0 || p->ninclude == 0) && x < 0;
}

bool
names_selected(const char *const *include, size_t ninclude,
    const char *const *exclude, size_t nexclude, const char *name,
    char delimiter)
{
	if (ninclude > 0 && names_first_match(include, ninclude, name,
	    delimiter) < 0)
		return false;
	return names_first_match(exclude, nexclude, name, delimiter) < 0;
}
