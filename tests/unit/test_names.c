/*
 * mirror/names: mailbox names to paths (safety and injectivity), and LIST
 * pattern matching.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "imap/writer.h"
#include "mirror/names.h"

#define NAME(s) s, sizeof(s) - 1

static const struct {
	const char *name;
	size_t len;
	char delim;
	bool utf8;
	const char *path;
} paths[] = {
	{ NAME("INBOX"), '/', false, "INBOX.mbox" },
	{ NAME("inbox"), '/', false, "INBOX.mbox" },
	{ NAME("InBoX"), '.', true, "INBOX.mbox" },
	{ NAME("Inbox/Sub"), '/', false, "INBOX/Sub.mbox" },
	{ NAME("inbox.Sub"), '.', false, "INBOX/Sub.mbox" },
	{ NAME("inbox.Sub"), '/', false, "inbox.Sub.mbox" },
	{ NAME("a/inbox"), '/', false, "a/inbox.mbox" },
	{ NAME("INBOXES"), '/', false, "INBOXES.mbox" },
	{ NAME("inbox/x"), '\0', false, "inbox%2Fx.mbox" },
	{ NAME("Archive/2023"), '/', false, "Archive/2023.mbox" },
	{ NAME("Archive.2023"), '/', false, "Archive.2023.mbox" },
	{ NAME("Archive.2023"), '.', false, "Archive/2023.mbox" },
	{ NAME("Sent Items"), '/', false, "Sent Items.mbox" },
	/* Leaving the output directory. */
	{ NAME("../x"), '/', false, "%2E./x.mbox" },
	{ NAME("a/../../b"), '/', false, "a/%2E./%2E./b.mbox" },
	{ NAME("../x"), '.', false, "%/%/%2Fx.mbox" },
	{ NAME("a/../../b"), '.', false, "a%2F/%/%2F/%/%2Fb.mbox" },
	{ NAME("/etc/passwd"), '/', false, "%/etc/passwd.mbox" },
	{ NAME("/etc/passwd"), '.', false, "%2Fetc%2Fpasswd.mbox" },
	{ NAME("."), '/', false, "%2E.mbox" },
	{ NAME(".."), '/', false, "%2E..mbox" },
	{ NAME(".."), '\0', false, "%2E..mbox" },
	{ NAME(".hidden"), '/', false, "%2Ehidden.mbox" },
	{ NAME(".hidden"), '.', false, "%/hidden.mbox" },
	{ NAME("a\\..\\b"), '/', false, "a%5C..%5Cb.mbox" },
	/* Empty components. */
	{ NAME(""), '/', false, "%.mbox" },
	{ NAME("/"), '/', false, "%/%.mbox" },
	{ NAME("a//b"), '/', false, "a/%/b.mbox" },
	{ NAME("a/"), '/', false, "a/%.mbox" },
	/* Escaping is one-to-one: '%' itself is escaped. */
	{ NAME("100%"), '/', false, "100%25.mbox" },
	{ NAME("%2E."), '/', false, "%252E..mbox" },
	{ NAME("%"), '/', false, "%25.mbox" },
	/* NUL, controls, 8-bit garbage. */
	{ NAME("a\0b"), '/', false, "a%00b.mbox" },
	{ NAME("a\0b"), '/', true, "a%00b.mbox" },
	{ NAME("\0"), '\0', true, "%00.mbox" },
	{ NAME("tab\there"), '/', true, "tab%09here.mbox" },
	{ NAME("del\x7f"), '/', true, "del%7F.mbox" },
	{ NAME("cr\r\nlf"), '/', true, "cr%0D%0Alf.mbox" },
	{ NAME("\xff\xfe/x"), '/', false, "%FF%FE/x.mbox" },
	{ NAME("\xff\xfe/x"), '/', true, "%FF%FE/x.mbox" },
	{ NAME("\xc0\xaf"), '/', true, "%C0%AF.mbox" },
	{ NAME("\xed\xa0\x80"), '/', true, "%ED%A0%80.mbox" },
	{ NAME("p\xc3\xa4\xc3"), '/', true, "p\xc3\xa4%C3.mbox" },
	/* UTF-8 as such, and 8-bit bytes where modified UTF-7 was due. */
	{ NAME("\xc3\xa4"), '/', true, "\xc3\xa4.mbox" },
	{ NAME("\xc3\xa4"), '/', false, "%C3%A4.mbox" },
	/* Modified UTF-7. */
	{ NAME("&ZeVnLIqe-"), '/', false,
	  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.mbox" },
	{ NAME("~peter/mail/&U,BTFw-/&ZeVnLIqe-"), '/', false,
	  "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.mbox" },
	{ NAME("&AOQ-"), '/', false, "\xc3\xa4.mbox" },
	{ NAME("R&-D"), '/', false, "R&D.mbox" },
	{ NAME("R&-D"), '/', true, "R&-D.mbox" },
	{ NAME("&ZeVnLIqe-"), '/', true, "&ZeVnLIqe-.mbox" },
	/* Undecodable: raw, with '&' escaped so it meets no decoded name. */
	{ NAME("&AOQ"), '/', false, "%26AOQ.mbox" },
	{ NAME("R&D"), '/', false, "R%26D.mbox" },
	{ NAME("&AOQ-&AOQ-"), '/', false, "%26AOQ-%26AOQ-.mbox" },
	{ NAME("a&AAk-"), '/', false, "a%26AAk-.mbox" },
	{ NAME("a\t"), '/', false, "a%09.mbox" },
	{ NAME("&AC8-"), '/', false, "%26AC8-.mbox" },
	/* Names that could meet other files beside an mbox. */
	{ NAME("x.lock"), '/', false, "x%2Elock.mbox" },
	{ NAME("x.LOCK"), '/', false, "x%2ELOCK.mbox" },
	{ NAME("x.mbox"), '/', false, "x%2Embox.mbox" },
	{ NAME("x.mbox/y"), '/', false, "x%2Embox/y.mbox" },
	{ NAME("x.Mbox"), '/', false, "x%2EMbox.mbox" },
	{ NAME("x.mbox.lock"), '/', false, "x%2Embox%2Elock.mbox" },
	{ NAME("x.mbox.tmp123"), '/', false, "x%2Embox.tmp123.mbox" },
	{ NAME("x.uidvalidity-42"), '/', false, "x%2Euidvalidity-42.mbox" },
	{ NAME("x.uidvalidity-42.mbox"), '/', false,
	  "x.uidvalidity-42%2Embox.mbox" },
	{ NAME("x.uidvalidity-42-2"), '/', false,
	  "x%2Euidvalidity-42-2.mbox" },
	{ NAME("x.UNKNOWN-1700000000"), '/', false,
	  "x%2EUNKNOWN-1700000000.mbox" },
	{ NAME("x.unknown-17-3"), '/', false, "x%2Eunknown-17-3.mbox" },
	{ NAME("x.unknown-"), '/', false, "x.unknown-.mbox" },
	{ NAME("x.unknown-a"), '/', false, "x.unknown-a.mbox" },
	{ NAME("x.uidvalidity-"), '/', false, "x.uidvalidity-.mbox" },
	/* U+009B (CSI) decoded: a control, so the raw bytes are used. */
	{ NAME("x&AJs-31m"), '/', false, "x%26AJs-31m.mbox" },
	/* With UTF-8 names, the C1 control itself is escaped. */
	{ NAME("x\xc2\x9b" "31m"), '/', true, "x%C2%9B31m.mbox" },
	{ NAME("x.uidvalidity-4a"), '/', false, "x.uidvalidity-4a.mbox" },
	{ NAME("x.mboxes"), '/', false, "x.mboxes.mbox" },
	{ NAME("x.locked"), '/', false, "x.locked.mbox" },
	{ NAME(".mbox"), '/', false, "%2Embox.mbox" },
	{ NAME("x."), '/', false, "x..mbox" },
};

static void
test_path_table(void **state)
{
	size_t i;
	char *p;

	(void)state;
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		p = names_mbox_path(paths[i].name, paths[i].len,
		    paths[i].delim, paths[i].utf8);
		assert_non_null(p);
		if (strcmp(p, paths[i].path) != 0)
			fail_msg("entry %zu: got \"%s\", want \"%s\"", i, p,
			    paths[i].path);
		free(p);
	}
}

/* The tags files are kept aside under, and no mailbox named like a kept
 * file ("<base>.<tag>[-<k>]") maps onto that file's name. */
static void
test_aside_tag(void **state)
{
	static const enum names_aside why[] = {
		NAMES_ASIDE_UIDVALIDITY, NAMES_ASIDE_UNKNOWN,
	};
	char tag[40], name[64], kept[80], *p;
	const char *r;

	(void)state;
	r = names_aside_tag(NAMES_ASIDE_UIDVALIDITY, UINT32_MAX, tag,
	    sizeof tag);
	assert_ptr_equal(r, tag);
	assert_string_equal(tag, "uidvalidity-4294967295");
	names_aside_tag(NAMES_ASIDE_UNKNOWN, 1700000000, tag, sizeof tag);
	assert_string_equal(tag, "unknown-1700000000");
	for (size_t i = 0; i < sizeof why / sizeof why[0]; i++) {
		names_aside_tag(why[i], 1234, tag, sizeof tag);
		for (int k = 1; k <= 2; k++) {
			snprintf(name, sizeof name, k == 1 ? "a/b.%s" :
			    "a/b.%s-%d", tag, k);
			snprintf(kept, sizeof kept, "%s.mbox", name);
			p = names_mbox_path(name, strlen(name), '/', false);
			assert_non_null(p);
			assert_string_not_equal(p, kept);
			free(p);
		}
	}
}

/* Checks the shape of one path: relative, every component a plain name. */
static void
check_path_safe(const char *p)
{
	const char *c = p, *e;
	size_t n;

	assert_true(strlen(p) > strlen(".mbox"));
	assert_string_equal(p + strlen(p) - 5, ".mbox");
	assert_true(p[0] != '/');
	for (;;) {
		e = strchr(c, '/');
		n = e ? (size_t)(e - c) : strlen(c);
		assert_true(n > 0);
		assert_true(n <= NAMES_COMPONENT_MAX + (e ? 0 : 5));
		assert_false(c[0] == '.');
		assert_false(n == 2 && c[0] == '.' && c[1] == '.');
		for (size_t i = 0; i < n; i++)
			assert_true((unsigned char)c[i] >= 0x20 && c[i] != 0x7f &&
			    c[i] != '\\');
		if (e == NULL)
			break;
		c = e + 1;
	}
}

struct entry {
	char name[40];
	size_t len;
	char *path;
};

static int
entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return strcmp(x->path, y->path);
}

/* The same mailbox: equal, or equal but for the case of a leading INBOX. */
static bool
same_mailbox(const struct entry *a, const struct entry *b, char delim)
{
	if (a->len != b->len)
		return false;
	if (a->len >= 5 && strncasecmp(a->name, "INBOX", 5) == 0 &&
	    strncasecmp(b->name, "INBOX", 5) == 0 &&
	    (a->len == 5 || (delim != '\0' && a->name[5] == delim)))
		return memcmp(a->name + 5, b->name + 5, a->len - 5) == 0;
	return memcmp(a->name, b->name, a->len) == 0;
}

struct file {
	char *path;
	int kind;		/* 0 directory, 1 mbox, 2 dotlock, 3 aside */
	const struct entry *owner;
};

static int
file_cmp(const void *a, const void *b)
{
	const struct file *x = a, *y = b;

	return strcmp(x->path, y->path);
}

/*
 * No mailbox's directory, mbox, dotlock or old-UIDVALIDITY mbox is the same
 * file as another mailbox's (directories may be shared: "a/b" and "a/c").
 */
static void
check_files_apart(const struct entry *t, size_t n, char delim)
{
	struct file *f;
	size_t i, nf = 0, cap = n * 5, len;
	char *slash, tag[40];

	for (i = 0; i < n; i++)
		for (slash = t[i].path; (slash = strchr(slash, '/')) != NULL;
		    slash++)
			cap++;
	f = calloc(cap, sizeof(*f));
	assert_non_null(f);
	for (i = 0; i < n; i++) {
		f[nf++] = (struct file){ strdup(t[i].path), 1, &t[i] };
		assert_int_not_equal(asprintf(&f[nf].path, "%s.lock",
		    t[i].path), -1);
		f[nf].kind = 2;
		f[nf++].owner = &t[i];
		/* The names the mirror keeps files aside under. */
		len = strlen(t[i].path) - 5;
		names_aside_tag(NAMES_ASIDE_UIDVALIDITY, 7, tag, sizeof tag);
		assert_int_not_equal(asprintf(&f[nf].path, "%.*s.%s.mbox",
		    (int)len, t[i].path, tag), -1);
		f[nf].kind = 3;
		f[nf++].owner = &t[i];
		assert_int_not_equal(asprintf(&f[nf].path, "%.*s.%s-2.mbox",
		    (int)len, t[i].path, tag), -1);
		f[nf].kind = 3;
		f[nf++].owner = &t[i];
		names_aside_tag(NAMES_ASIDE_UNKNOWN, 9, tag, sizeof tag);
		assert_int_not_equal(asprintf(&f[nf].path, "%.*s.%s.mbox",
		    (int)len, t[i].path, tag), -1);
		f[nf].kind = 3;
		f[nf++].owner = &t[i];
		for (slash = strchr(t[i].path, '/'); slash != NULL;
		    slash = strchr(slash + 1, '/'))
			f[nf++] = (struct file){ strndup(t[i].path,
			    slash - t[i].path), 0, &t[i] };
	}
	qsort(f, nf, sizeof(*f), file_cmp);
	for (i = 1; i < nf; i++) {
		assert_non_null(f[i].path);
		if (strcmp(f[i - 1].path, f[i].path) != 0)
			continue;
		if (f[i - 1].kind == 0 && f[i].kind == 0)
			continue;
		if (f[i - 1].kind == f[i].kind &&
		    same_mailbox(f[i - 1].owner, f[i].owner, delim))
			continue;
		fail_msg("\"%.*s\" and \"%.*s\" both use %s",
		    (int)f[i - 1].owner->len, f[i - 1].owner->name,
		    (int)f[i].owner->len, f[i].owner->name, f[i].path);
	}
	for (i = 0; i < nf; i++)
		free(f[i].path);
	free(f);
}

static void
property_run(char delim, bool utf8)
{
	static const char alpha[] = "&-AOQkZ+,/.%2EFmbxlckuidv4INBOXinbo\\ \t"
	    "\x7f\xc3\xa4\xff\xe6";
	enum { N = 60000 };
	struct entry *t;
	unsigned seed = 0x5eed ^ (unsigned)delim ^ (utf8 ? 77 : 0);
	size_t i, j, len;

	t = calloc(N, sizeof(*t));
	assert_non_null(t);
	for (i = 0; i < N; i++) {
		seed = seed * 1103515245 + 12345;
		len = (seed >> 16) % 13;
		if (i % 5 == 0) {
			/* A valid encoding of random text, so decoded names
			 * meet raw ones. */
			char text[16], *enc;
			size_t k;
			for (k = 0; k < len / 2; k++) {
				seed = seed * 1103515245 + 12345;
				text[k] = "aA.&/ \t%"[(seed >> 16) % 8];
			}
			if (k > 0 && (seed >> 20) % 2)
				memcpy(text + --k, "\xc3\xa4", 2), k += 2;
			enc = imap_utf7_encode(text, k);
			assert_non_null(enc);
			len = strlen(enc) < sizeof(t[i].name) ?
			    strlen(enc) : sizeof(t[i].name) - 1;
			memcpy(t[i].name, enc, len);
			free(enc);
		} else if (i % 5 == 1) {
			/* Mixed case INBOX prefixes. */
			for (j = 0; j < 5; j++) {
				seed = seed * 1103515245 + 12345;
				t[i].name[j] = ((seed >> 16) & 1 ? "INBOX" :
				    "inbox")[j];
			}
			for (j = 5; j < 5 + len % 4; j++) {
				seed = seed * 1103515245 + 12345;
				t[i].name[j] = alpha[(seed >> 16) % 8];
			}
			len = j;
		} else if (i % 5 == 2) {
			/* Pieces that look like the files beside an mbox. */
			static const char *tok[] = { "x", ".mbox", ".lock",
			    ".uidvalidity-7", "/", ".unknown-9", "-2",
			    "INBOX" };
			size_t k, tl;
			for (k = 0, j = 0; k < len % 6 + 1; k++) {
				seed = seed * 1103515245 + 12345;
				tl = strlen(tok[(seed >> 16) % 8]);
				if (j + tl >= sizeof(t[i].name))
					break;
				memcpy(t[i].name + j, tok[(seed >> 16) % 8], tl);
				j += tl;
			}
			len = j;
		} else {
			for (j = 0; j < len; j++) {
				seed = seed * 1103515245 + 12345;
				t[i].name[j] = (seed >> 16) % 17 == 0 ? '\0' :
				    alpha[(seed >> 16) % (sizeof(alpha) - 1)];
			}
		}
		t[i].len = len;
		t[i].path = names_mbox_path(t[i].name, len, delim, utf8);
		assert_non_null(t[i].path);
		check_path_safe(t[i].path);
	}
	qsort(t, N, sizeof(*t), entry_cmp);
	for (i = 1; i < N; i++) {
		if (strcmp(t[i - 1].path, t[i].path) != 0)
			continue;
		if (!same_mailbox(&t[i - 1], &t[i], delim))
			fail_msg("\"%.*s\" and \"%.*s\" share %s",
			    (int)t[i - 1].len, t[i - 1].name, (int)t[i].len,
			    t[i].name, t[i].path);
	}
	check_files_apart(t, N, delim);
	for (i = 0; i < N; i++)
		free(t[i].path);
	free(t);
}

static void
test_property_random(void **state)
{
	(void)state;
	property_run('/', false);
	property_run('.', false);
	property_run('\0', false);
	property_run('/', true);
	property_run('.', true);
}

/* Long components are shortened, stay distinct, and stay valid UTF-8 and
 * whole escapes. */
static void
test_long_components(void **state)
{
	enum { N = 600 };
	char name[1200], *p[N], *c;
	size_t i, j, len;

	(void)state;
	for (i = 0; i < N; i++) {
		len = 180 + i % 300;
		for (j = 0; j < len; j++)
			name[j] = i % 3 == 0 ? 'a' : i % 3 == 1 ? '%' :
			    "\xc3\xa4"[j % 2];
		/* Differ late, after the part that is kept. */
		snprintf(name + len, sizeof(name) - len, "%zu", i);
		len = strlen(name);
		p[i] = names_mbox_path(name, len, '/', true);
		assert_non_null(p[i]);
		check_path_safe(p[i]);
		assert_true(strlen(p[i]) <= NAMES_COMPONENT_MAX + 5);
		c = strstr(p[i], "%~");
		assert_non_null(c);
		assert_int_equal(strlen(c), 2 + 16 + 5);
		for (j = 0; j < i; j++)
			assert_string_not_equal(p[i], p[j]);
	}
	for (i = 0; i < N; i++)
		free(p[i]);

	/* Exactly at the limit: kept whole.  One more: shortened. */
	memset(name, 'b', NAMES_COMPONENT_MAX);
	c = names_mbox_path(name, NAMES_COMPONENT_MAX, '/', false);
	assert_non_null(c);
	assert_int_equal(strlen(c), NAMES_COMPONENT_MAX + 5);
	assert_null(strstr(c, "%~"));
	free(c);
	memset(name, 'b', NAMES_COMPONENT_MAX + 1);
	c = names_mbox_path(name, NAMES_COMPONENT_MAX + 1, '/', false);
	assert_non_null(c);
	assert_non_null(strstr(c, "%~"));
	free(c);

	/* Many components, each kept to its own limit. */
	for (j = 0; j < 1000; j++)
		name[j] = j % 250 == 249 ? '/' : 'c';
	c = names_mbox_path(name, 1000, '/', false);
	assert_non_null(c);
	check_path_safe(c);
	free(c);
}

static const struct {
	const char *pattern, *name;
	char delim;
	bool match;
} matches[] = {
	{ "*", "anything/at/all", '/', true },
	{ "*", "", '/', true },
	{ "%", "", '/', true },
	{ "", "", '/', true },
	{ "", "a", '/', false },
	{ "a", "", '/', false },
	{ "%", "a", '/', true },
	{ "%", "a/b", '/', false },
	{ "%", "a/b", '\0', true },
	{ "%", "a.b", '/', true },
	{ "%", "a.b", '.', false },
	{ "%/%", "a/b", '/', true },
	{ "%/%", "a/b/c", '/', false },
	{ "%/*", "a/b/c", '/', true },
	{ "a/*", "a/b/c", '/', true },
	{ "a/*", "a", '/', false },
	{ "a*", "a", '/', true },
	{ "a/%", "a/", '/', true },
	{ "a*c", "abc", '/', true },
	{ "a*c", "a/b/c", '/', true },
	{ "a*c", "a/b/cd", '/', false },
	{ "a%c", "a/c", '/', false },
	{ "a%c", "abbc", '/', true },
	{ "*/Sent", "x/y/Sent", '/', true },
	{ "%/Sent", "x/y/Sent", '/', false },
	{ "*b*", "abc", '/', true },
	{ "**%%", "x", '/', true },
	{ "Archive/2023", "Archive/2023", '/', true },
	{ "Archive/2023", "Archive/20234", '/', false },
	{ "Trash", "trash", '/', false },
	{ "Trash", "Trash/x", '/', false },
	{ "INBOX", "inbox", '/', true },
	{ "inbox", "INBOX", '/', true },
	{ "InBox", "INBOX", '/', true },
	{ "Inbox/%", "INBOX/a", '/', true },
	{ "inbox/%", "inbox/a", '/', true },
	{ "inbox/a", "INBOX/A", '/', false },
	{ "inbox.%", "INBOX.a", '.', true },
	{ "in*", "INBOX", '/', true },
	{ "in*", "Inbound", '/', false },
	{ "INBOX", "INBOXES", '/', false },
	{ "inboxes", "INBOXES", '/', false },
	{ "INBOX*", "inboxes", '/', false },
	{ "INBOX", "inbox/x", '\0', false },
	{ "\xe6\x97\xa5*", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", '/', true },
	{ "%\xe8\xaa\x9e", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", '/', true },
	{ "R&D", "R&D", '/', true },
};

static void
test_match_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(matches) / sizeof(matches[0]); i++)
		if (names_match(matches[i].pattern, matches[i].name,
		    matches[i].delim) != matches[i].match)
			fail_msg("entry %zu: \"%s\" vs \"%s\"", i,
			    matches[i].pattern, matches[i].name);
}

/* Patterns that make backtracking matchers take exponential time. */
static void
test_match_pathological(void **state)
{
	char *name, *pat;
	size_t i, n = 20000;

	(void)state;
	name = malloc(n + 1);
	pat = malloc(2 * 400 + 2);
	assert_non_null(name);
	assert_non_null(pat);
	memset(name, 'a', n);
	name[n] = '\0';
	for (i = 0; i < 400; i++) {
		pat[2 * i] = i % 2 ? '%' : '*';
		pat[2 * i + 1] = 'a';
	}
	pat[800] = 'b';
	pat[801] = '\0';
	assert_false(names_match(pat, name, '/'));
	pat[800] = '\0';
	assert_true(names_match(pat, name, '/'));
	/* Delimiters break the '%'s. */
	for (i = 999; i < n; i += 1000)
		name[i] = '/';
	memset(pat, '%', 30);
	pat[30] = '\0';
	assert_false(names_match(pat, name, '/'));
	pat[29] = '*';
	assert_true(names_match(pat, name, '/'));
	free(pat);
	free(name);
}

static void
test_selected(void **state)
{
	const char *inc[] = { "*" }, *inc2[] = { "INBOX", "Lists/%" };
	const char *exc[] = { "Trash", "Junk", "Spam*" };

	(void)state;
	assert_true(names_selected(inc, 1, exc, 3, "INBOX", '/'));
	assert_false(names_selected(inc, 1, exc, 3, "Trash", '/'));
	assert_true(names_selected(inc, 1, exc, 3, "Trash/Old", '/'));
	assert_false(names_selected(inc, 1, exc, 3, "Spam/2024", '/'));
	assert_true(names_selected(inc, 1, NULL, 0, "Trash", '/'));
	assert_true(names_selected(NULL, 0, NULL, 0, "x", '/'));
	assert_false(names_selected(NULL, 0, exc, 3, "Junk", '/'));
	assert_true(names_selected(inc2, 2, exc, 3, "inbox", '/'));
	assert_true(names_selected(inc2, 2, exc, 3, "Lists/debian", '/'));
	assert_false(names_selected(inc2, 2, exc, 3, "Lists/a/b", '/'));
	assert_false(names_selected(inc2, 2, exc, 3, "Sent", '/'));
}

static void
test_first_match(void **state)
{
	const char *pats[] = { "Lists/%", "*", "INBOX" };

	(void)state;
	/* The first that matches wins, though a later one matches too. */
	assert_int_equal(names_first_match(pats, 3, "Lists/debian", '/'), 0);
	assert_int_equal(names_first_match(pats, 3, "Lists/a/b", '/'), 1);
	assert_int_equal(names_first_match(pats, 3, "inbox", '/'), 1);
	assert_int_equal(names_first_match(pats + 2, 1, "inbox", '/'), 0);
	assert_int_equal(names_first_match(pats + 2, 1, "Sent", '/'), -1);
	assert_int_equal(names_first_match(NULL, 0, "INBOX", '/'), -1);
}

static void
test_decide(void **state)
{
	const char *inc[] = { "INBOX", "Lists/*", "Inbox2", "INBOX*" };
	const char *exc[] = { "Lists/spam", "Nothing*", "Trash" };
	bool ih[4] = { false }, xh[3] = { false };
	struct names_patterns p = { inc, 4, exc, 3, ih, xh };
	int i, x;

	(void)state;
	assert_true(names_decide(&p, "INBOX", '/', &i, &x));
	assert_int_equal(i, 0);
	assert_int_equal(x, -1);
	assert_false(names_decide(&p, "Lists/spam", '/', &i, &x));
	assert_int_equal(i, 1);
	assert_int_equal(x, 0);
	/* Trash is not taken by any include: its exclude decided nothing. */
	assert_false(names_decide(&p, "Trash", '/', &i, &x));
	assert_int_equal(i, -1);
	assert_int_equal(x, -1);
	/* INBOX* matched INBOX too, though INBOX decided it. */
	assert_true(ih[0] && ih[1] && !ih[2] && ih[3]);
	assert_true(xh[0] && !xh[1] && !xh[2]);
	/* No includes: everything is taken, so excludes decide. */
	p.ninclude = 0;
	assert_false(names_decide(&p, "Trash", '/', NULL, NULL));
	assert_true(xh[2]);
	assert_true(names_decide(&p, "Sent", '/', NULL, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_aside_tag),
		cmocka_unit_test(test_property_random),
		cmocka_unit_test(test_long_components),
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_match_pathological),
		cmocka_unit_test(test_selected),
		cmocka_unit_test(test_first_match),
		cmocka_unit_test(test_decide),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
