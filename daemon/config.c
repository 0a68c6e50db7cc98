/*
 * config: two passes.  The first drives inih through a reader of our own
 * that counts lines (Debian's libinih has no line numbers in its handler
 * callback), refuses lines inih would split, tracks section headers and
 * stores every key as it appears.  The second validates the stored keys and
 * builds the typed struct config.  Every error is reported and counted;
 * loading fails at the end if any was found.  One file of this size because
 * both passes and the cross-field checks share the stored keys and their
 * file:line places.
 */
#include "config.h"

#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base64.h"
#include "util/nameindex.h"
#include "util/num.h"

#define ACCOUNT_NAME_MAX 64
#define HOST_MAX 255
#define DEFAULT_INTERVAL (15 * 60)
#define DEFAULT_TIMEOUT 60
#define DEFAULT_RETRY_MIN 30
#define DEFAULT_RETRY_MAX 3600
#define DEFAULT_MAX_CONNECTIONS 16
#define DEFAULT_IDLE_REFRESH (9 * 60)
#define SYSTEM_CONFIG "/etc/mboxmirror/mboxmirror.ini"

#define IN_GENERAL 1u
#define IN_ACCOUNT 2u

struct raw_entry {
	char *key;
	char *value;		/* NULL: refused already (reported) */
	unsigned line;
};

struct raw_section {
	char *name;
	unsigned line;
	bool ignored;		/* bad or duplicate header: keys are skipped */
	struct raw_entry *entries;
	size_t n_entries;
};

struct error_line {
	unsigned line;		/* 0: about the whole file, sorted last */
	unsigned seq;
	char *text;
};

struct parser {
	const char *path;
	struct error_line *error_lines;	/* emitted in line order at the end */
	size_t n_error_lines;
	const char *text;
	size_t len;
	size_t pos;
	unsigned lineno;
	unsigned errors;
	bool oom;
	struct raw_section *sections;
	size_t n_sections;
	struct nameindex section_index;	/* the sections not ignored */
};

struct key_def {
	const char *name;
	unsigned scope;
};

static const struct key_def key_defs[] = {
	{ "state_dir", IN_GENERAL },
	{ "interval", IN_GENERAL | IN_ACCOUNT },
	{ "timeout", IN_GENERAL },
	{ "max_connections", IN_GENERAL },
	{ "retry_min", IN_GENERAL },
	{ "retry_max", IN_GENERAL },
	{ "idle_refresh", IN_GENERAL },
	{ "log_level", IN_GENERAL },
	{ "metrics_file", IN_GENERAL },
	{ "shard", IN_GENERAL },
	{ "host", IN_ACCOUNT },
	{ "port", IN_ACCOUNT },
	{ "tls", IN_ACCOUNT },
	{ "ca_file", IN_ACCOUNT },
	{ "pin_sha256", IN_ACCOUNT },
	{ "user", IN_ACCOUNT },
	{ "password_command", IN_ACCOUNT },
	{ "password_file", IN_ACCOUNT },
	{ "password", IN_ACCOUNT },
	{ "auth", IN_ACCOUNT },
	{ "mailboxes", IN_ACCOUNT },
	{ "exclude", IN_ACCOUNT },
	{ "output", IN_ACCOUNT },
	{ "idle", IN_ACCOUNT },
	{ "allow_plaintext", IN_ACCOUNT },
	{ "compress", IN_ACCOUNT },
};

static const char *const tls_names[] = { "implicit", "starttls", "none" };
static const char *const auth_names[] = { "auto", "plain", "login",
	"xoauth2", "oauthbearer" };
static const char *const compress_names[] = { "auto", "yes", "no" };

static void report(struct parser *, unsigned, const char *, const char *,
    const char *, ...) MM_PRINTF(5, 6);

static void
report(struct parser *p, unsigned line, const char *section, const char *key,
    const char *fmt, ...)
{
	char where[64], what[1024];
	struct error_line *v;
	char *text = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof where, ":%u", line);
	else
		where[0] = '\0';
	if (section != NULL && key != NULL)
		n = asprintf(&text, "%s%s: [%s] %s: %s", p->path, where,
		    section, key, what);
	else if (section != NULL)
		n = asprintf(&text, "%s%s: [%s]: %s", p->path, where, section,
		    what);
	else if (key != NULL)
		n = asprintf(&text, "%s%s: %s: %s", p->path, where, key, what);
	else
		n = asprintf(&text, "%s%s: %s", p->path, where, what);
	v = n < 0 ? NULL : reallocarray(p->error_lines, p->n_error_lines + 1,
	    sizeof *v);
	if (v == NULL) {
		/* No room to sort it: at least say it now. */
		log_error("%s%s: %s", p->path, where, what);
		if (n >= 0)
			free(text);
	} else {
		p->error_lines = v;
		v[p->n_error_lines].line = line;
		v[p->n_error_lines].seq = p->errors;
		v[p->n_error_lines].text = text;
		p->n_error_lines++;
	}
	p->errors++;
}

static int
error_line_cmp(const void *a, const void *b)
{
	const struct error_line *x = a, *y = b;
	unsigned xl = x->line == 0 ? UINT_MAX : x->line;
	unsigned yl = y->line == 0 ? UINT_MAX : y->line;

	if (xl != yl)
		return xl < yl ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Emits the errors found, in line order. */
static void
flush_errors(struct parser *p)
{
	if (p->n_error_lines > 0)
		qsort(p->error_lines, p->n_error_lines, sizeof *p->error_lines,
		    error_line_cmp);
	for (size_t i = 0; i < p->n_error_lines; i++) {
		log_error("%s", p->error_lines[i].text);
		free(p->error_lines[i].text);
	}
	free(p->error_lines);
	p->error_lines = NULL;
	p->n_error_lines = 0;
}

static char *
p_strdup(struct parser *p, const char *s)
{
	char *d;

	if ((d = strdup(s)) == NULL)
		p->oom = true;
	return d;
}

static char *
p_strndup(struct parser *p, const char *s, size_t n)
{
	char *d;

	if ((d = strndup(s, n)) == NULL)
		p->oom = true;
	return d;
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool
account_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > ACCOUNT_NAME_MAX || name[0] == '.')
		return false;
	for (const char *s = name; *s != '\0'; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("._-@+", c) != NULL))
			return false;
	}
	return true;
}

static const char *
section_name(size_t i, void *arg)
{
	const struct parser *p = arg;

	return p->sections[i].name;
}

/* Hashed: 10,000 accounts would otherwise cost 50 million comparisons. */
static struct raw_section *
find_section(struct parser *p, const char *name)
{
	size_t i;

	if (p->section_index.key == NULL)
		return NULL;
	i = nameindex_find(&p->section_index, name, strlen(name));
	return i == SIZE_MAX ? NULL : &p->sections[i];
}

static struct raw_section *
current_section(struct parser *p)
{
	return p->n_sections == 0 ? NULL : &p->sections[p->n_sections - 1];
}

/* Stores key (value NULL for a refused line), reporting duplicates. */
static void
add_entry(struct parser *p, struct raw_section *s, const char *key,
    const char *value, unsigned line)
{
	struct raw_entry *e;

	for (size_t i = 0; i < s->n_entries; i++) {
		if (strcmp(s->entries[i].key, key) == 0) {
			report(p, line, s->name, key,
			    "duplicate key (first set on line %u)",
			    s->entries[i].line);
			return;
		}
	}
	e = reallocarray(s->entries, s->n_entries + 1, sizeof *e);
	if (e == NULL) {
		p->oom = true;
		return;
	}
	s->entries = e;
	e = &s->entries[s->n_entries];
	e->line = line;
	e->key = p_strdup(p, key);
	e->value = value != NULL ? p_strdup(p, value) : NULL;
	if (e->key == NULL || (value != NULL && e->value == NULL)) {
		free(e->key);
		wipe_free(e->value);
		return;
	}
	s->n_entries++;
}

/* A "[name]" line: a new section, ignored (its keys skipped) when bad. */
static void
section_line(struct parser *p, const char *line, size_t len)
{
	struct raw_section *s, *first;
	const char *close, *rest;
	char *name;
	size_t nlen;
	bool bad = false;

	close = memchr(line, ']', len);
	if (close == NULL) {
		report(p, p->lineno, NULL, NULL,
		    "section header without a closing ']'");
		name = p_strdup(p, "");
		bad = true;
	} else {
		const char *start = line + 1;

		nlen = (size_t)(close - start);
		while (nlen > 0 && is_blank(*start)) {
			start++;
			nlen--;
		}
		while (nlen > 0 && is_blank(start[nlen - 1]))
			nlen--;
		name = p_strndup(p, start, nlen);
		rest = close + 1;
		while (rest < line + len && is_blank(*rest))
			rest++;
		if (name == NULL)
			return;
		if (rest < line + len && *rest != ';' && *rest != '#') {
			report(p, p->lineno, name, NULL,
			    "unexpected text after ']'");
			bad = true;
		} else if (*name == '\0') {
			report(p, p->lineno, NULL, NULL, "empty section name");
			bad = true;
		} else if (strcmp(name, "general") != 0 &&
		    !account_name_ok(name)) {
			report(p, p->lineno, name, NULL, "account name must be "
			    "1-%d letters, digits or . _ - @ +, not starting "
			    "with '.'", ACCOUNT_NAME_MAX);
			bad = true;
		} else if ((first = find_section(p, name)) != NULL) {
			report(p, p->lineno, name, NULL,
			    "duplicate section (first on line %u)",
			    first->line);
			bad = true;
		}
	}
	if (name == NULL)
		return;
	s = reallocarray(p->sections, p->n_sections + 1, sizeof *s);
	if (s == NULL) {
		free(name);
		p->oom = true;
		return;
	}
	p->sections = s;
	s = &p->sections[p->n_sections++];
	memset(s, 0, sizeof *s);
	s->name = name;
	s->line = p->lineno;
	s->ignored = bad;
	if (bad)
		return;
	if (p->section_index.key == NULL)
		nameindex_init(&p->section_index, section_name, p);
	if (nameindex_add(&p->section_index, p->n_sections - 1) != 0)
		p->oom = true;
}

/* Where inih would find "=" or ":" (it stops at an inline " ;" comment). */
static const char *
find_separator(const char *line, size_t len)
{
	bool was_space = false;

	for (size_t i = 0; i < len; i++) {
		if (line[i] == '=' || line[i] == ':')
			return &line[i];
		if (was_space && line[i] == ';')
			return NULL;
		was_space = is_blank(line[i]);
	}
	return NULL;
}

/*
 * A line longer than inih's buffer: refused with an error naming its key
 * when it has one.  The key is stored as refused so that no "missing" error
 * follows from the same mistake.
 */
static void
long_line(struct parser *p, const char *line, size_t len, size_t max)
{
	struct raw_section *s = current_section(p);
	const char *sep;
	char *key = NULL;
	size_t klen;

	if (line[0] != '[' && (sep = find_separator(line, len)) != NULL) {
		klen = (size_t)(sep - line);
		while (klen > 0 && is_blank(line[klen - 1]))
			klen--;
		if (klen > 0 && klen <= 64)
			key = p_strndup(p, line, klen);
	}
	if (key != NULL && s != NULL && !s->ignored) {
		report(p, p->lineno, s->name, key,
		    "line too long (max %zu bytes)", max);
		add_entry(p, s, key, NULL, p->lineno);
	} else if (key != NULL) {
		report(p, p->lineno, NULL, key,
		    "line too long (max %zu bytes)", max);
	} else {
		report(p, p->lineno, NULL, NULL,
		    "line too long (max %zu bytes)", max);
	}
	free(key);
}

/*
 * The ini_reader: hands inih one line at a time, counting them, so the
 * handler knows the line it is called for.  Leading blanks are removed, so
 * inih never sees a continuation line.  Lines that inih would mangle or
 * reject are reported here and replaced by an empty line.
 */
static char *
read_line(char *buf, int num, void *stream)
{
	struct parser *p = stream;
	const char *line, *nl;
	size_t len, max;

	if (p->pos >= p->len || num < 3)
		return NULL;
	line = p->text + p->pos;
	nl = memchr(line, '\n', p->len - p->pos);
	len = nl != NULL ? (size_t)(nl - line) : p->len - p->pos;
	p->pos += len + (nl != NULL);
	p->lineno++;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (p->lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		len -= 3;
	}
	while (len > 0 && is_blank(*line)) {
		line++;
		len--;
	}
	/* Room for the line, its '\n' and the NUL. */
	max = (size_t)num - 2;
	strcpy(buf, "\n");
	if (len == 0 || line[0] == ';' || line[0] == '#')
		return buf;
	if (memchr(line, '\0', len) != NULL)
		report(p, p->lineno, NULL, NULL, "contains a NUL byte");
	else if (len > max)
		long_line(p, line, len, max);
	else if (line[0] == '[')
		section_line(p, line, len);
	else if (find_separator(line, len) == NULL)
		report(p, p->lineno, NULL, NULL,
		    "expected \"key = value\" or \"[section]\"");
	else {
		memcpy(buf, line, len);
		buf[len] = '\n';
		buf[len + 1] = '\0';
	}
	return buf;
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parser *p = user;
	struct raw_section *s = current_section(p);

	(void)section;	/* ours is not truncated to inih's 50 bytes */
	if (p->oom)
		return 1;
	if (s == NULL) {
		report(p, p->lineno, NULL, *name != '\0' ? name : NULL,
		    "is outside any [section]");
		return 1;
	}
	if (s->ignored)
		return 1;
	if (*name == '\0') {
		report(p, p->lineno, s->name, NULL,
		    "a line starts with '=' or ':' (no key name)");
		return 1;
	}
	add_entry(p, s, name, value, p->lineno);
	return 1;
}

static const struct key_def *
key_def_find(const char *name)
{
	for (size_t i = 0; i < sizeof key_defs / sizeof *key_defs; i++)
		if (strcmp(key_defs[i].name, name) == 0)
			return &key_defs[i];
	return NULL;
}

/* Unknown keys, keys in the wrong kind of section, empty values. */
static void
check_keys(struct parser *p, struct raw_section *s, unsigned scope)
{
	for (size_t i = 0; i < s->n_entries; i++) {
		struct raw_entry *e = &s->entries[i];
		const struct key_def *def = key_def_find(e->key);

		if (def == NULL)
			report(p, e->line, s->name, e->key, scope == IN_GENERAL ?
			    "unknown key in [general]" : "unknown key");
		else if ((def->scope & scope) == 0 && scope == IN_GENERAL)
			report(p, e->line, s->name, e->key, "is an account "
			    "setting; it belongs in an account section");
		else if ((def->scope & scope) == 0)
			report(p, e->line, s->name, e->key,
			    "is only allowed in [general]");
		else if (e->value != NULL && *e->value == '\0') {
			report(p, e->line, s->name, e->key, "has no value");
			free(e->value);
			e->value = NULL;
		}
	}
}

/* The entry for key, refused ones included, or NULL. */
static struct raw_entry *
entry_find(struct raw_section *s, const char *key)
{
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < s->n_entries; i++)
		if (strcmp(s->entries[i].key, key) == 0)
			return &s->entries[i];
	return NULL;
}

/* The entry for key when it has a usable value, else NULL. */
static struct raw_entry *
entry_value(struct raw_section *s, const char *key)
{
	struct raw_entry *e = entry_find(s, key);

	return e != NULL && e->value != NULL ? e : NULL;
}

static const char *
duration_problem(const char *text, unsigned *seconds_r)
{
	size_t digits = strspn(text, "0123456789");
	const char *s = text + digits;
	uint64_t n, mult = 1;

	if (digits == 0)
		return "is not a duration (a number with an optional s, m, h "
		    "or d suffix)";
	if (num_parse_u64n(text, digits, CONFIG_DURATION_MAX, &n) == -1)
		return "is too long (at most 365d)";
	switch (*s) {
	case '\0':
		break;
	case 's':
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		return "is not a duration (a number with an optional s, m, h "
		    "or d suffix)";
	}
	if (*s != '\0' && s[1] != '\0')
		return "is not a duration (a number with an optional s, m, h "
		    "or d suffix)";
	if (n == 0)
		return "must be more than zero";
	if (n * mult > CONFIG_DURATION_MAX)
		return "is too long (at most 365d)";
	*seconds_r = (unsigned)(n * mult);
	return NULL;
}

int
config_parse_duration(const char *text, unsigned *seconds_r)
{
	return duration_problem(text, seconds_r) == NULL ? 0 : -1;
}

const char *
config_format_duration(unsigned seconds, char *buf, size_t size)
{
	if (seconds != 0 && seconds % 86400 == 0)
		snprintf(buf, size, "%ud", seconds / 86400);
	else if (seconds != 0 && seconds % 3600 == 0)
		snprintf(buf, size, "%uh", seconds / 3600);
	else if (seconds != 0 && seconds % 60 == 0)
		snprintf(buf, size, "%um", seconds / 60);
	else
		snprintf(buf, size, "%us", seconds);
	return buf;
}

static void
get_duration(struct parser *p, struct raw_section *s, const char *key,
    unsigned *seconds)
{
	struct raw_entry *e = entry_value(s, key);
	const char *problem;

	if (e == NULL)
		return;
	if ((problem = duration_problem(e->value, seconds)) != NULL)
		report(p, e->line, s->name, key, "\"%.64s\" %s", e->value,
		    problem);
}

static int
parse_enum(const char *text, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(text, names[i]) == 0)
			return (int)i;
	return -1;
}

static void
get_enum(struct parser *p, struct raw_section *s, const char *key,
    const char *const *names, size_t n, int *value)
{
	struct raw_entry *e = entry_value(s, key);
	char allowed[256];
	size_t len = 0;
	int v;

	if (e == NULL)
		return;
	if ((v = parse_enum(e->value, names, n)) >= 0) {
		*value = v;
		return;
	}
	allowed[0] = '\0';
	for (size_t i = 0; i < n && len < sizeof allowed; i++)
		len += (size_t)snprintf(allowed + len, sizeof allowed - len,
		    "%s%s", i == 0 ? "" : (i + 1 == n ? " or " : ", "),
		    names[i]);
	report(p, e->line, s->name, key, "\"%.64s\" is not one of %s",
	    e->value, allowed);
}

static void
get_bool(struct parser *p, struct raw_section *s, const char *key,
    bool *value)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	struct raw_entry *e = entry_value(s, key);

	if (e == NULL)
		return;
	if (parse_enum(e->value, yes, 4) >= 0)
		*value = true;
	else if (parse_enum(e->value, no, 4) >= 0)
		*value = false;
	else
		report(p, e->line, s->name, key, "\"%.64s\" is not a boolean "
		    "(yes/no, true/false, on/off, 1/0)", e->value);
}

static const char *
home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (home != NULL && home[0] == '/')
		return home;
	if ((pw = getpwuid(getuid())) != NULL && pw->pw_dir != NULL &&
	    pw->pw_dir[0] == '/')
		return pw->pw_dir;
	return NULL;
}

/*
 * "~" and "~/..." become the home directory; a relative path is refused
 * (absolute_only) or taken relative to the config file's directory.
 */
static char *
expand_path(struct parser *p, struct raw_section *s, struct raw_entry *e,
    bool absolute_only)
{
	const char *v = e->value, *home, *slash;
	char *out = NULL;
	int n = 0;

	if (v[0] == '~') {
		if (v[1] != '\0' && v[1] != '/') {
			report(p, e->line, s->name, e->key, "\"%.64s\": ~user "
			    "is not supported; write the full path", v);
			return NULL;
		}
		if ((home = home_dir()) == NULL) {
			report(p, e->line, s->name, e->key, "\"%.64s\": cannot "
			    "expand '~' (no home directory)", v);
			return NULL;
		}
		n = asprintf(&out, "%s%s", home, v + 1);
	} else if (v[0] == '/') {
		n = (out = strdup(v)) == NULL ? -1 : 0;
	} else if (absolute_only) {
		report(p, e->line, s->name, e->key,
		    "\"%.64s\" is not an absolute path", v);
		return NULL;
	} else if ((slash = strrchr(p->path, '/')) != NULL) {
		n = asprintf(&out, "%.*s/%s", (int)(slash - p->path), p->path,
		    v);
	} else
		n = (out = strdup(v)) == NULL ? -1 : 0;
	if (n < 0) {
		p->oom = true;
		return NULL;
	}
	return out;
}

static void
str_list_free(struct str_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
str_list_add(struct parser *p, struct str_list *l, const char *s, size_t len)
{
	char **v, *item;

	if ((item = p_strndup(p, s, len)) == NULL)
		return -1;
	if ((v = reallocarray(l->v, l->n + 1, sizeof *v)) == NULL) {
		free(item);
		p->oom = true;
		return -1;
	}
	l->v = v;
	l->v[l->n++] = item;
	return 0;
}

/* "a, b ,c": items trimmed; an empty item is an error. */
static void
get_list(struct parser *p, struct raw_section *s, const char *key,
    struct str_list *list)
{
	struct raw_entry *e = entry_value(s, key);
	struct str_list l = { NULL, 0 };
	const char *item = NULL, *end;
	size_t n = 0, len;

	if (e == NULL)
		return;
	for (item = e->value;; item = end + 1) {
		n++;
		if ((end = strchr(item, ',')) == NULL)
			end = item + strlen(item);
		len = (size_t)(end - item);
		while (len > 0 && is_blank(*item)) {
			item++;
			len--;
		}
		while (len > 0 && is_blank(item[len - 1]))
			len--;
		if (len == 0) {
			report(p, e->line, s->name, key,
			    "item %zu of the list is empty", n);
			str_list_free(&l);
			return;
		}
		if (str_list_add(p, &l, item, len) == -1) {
			str_list_free(&l);
			return;
		}
		if (*end == '\0')
			break;
	}
	str_list_free(list);
	*list = l;
}

/* Base64 of exactly 32 bytes (43 characters, then an optional '='),
 * optionally prefixed "sha256//" as curl writes pins. */
static int
decode_pin(const char *text, uint8_t out[32])
{
	uint32_t acc = 0;
	size_t len, n = 0;
	int bits = 0;

	if (strncmp(text, "sha256//", 8) == 0)
		text += 8;
	len = strlen(text);
	if (len == 44 && text[43] == '=')
		len = 43;
	else if (len != 43)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = base64_value(base64_std, (unsigned char)text[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* The two bits left over must be zero in canonical base64. */
	return n == 32 && acc == 0 ? 0 : -1;
}

/* The state directory of a system-wide configuration: the services'
 * StateDirectory=mboxmirror. */
#define SYSTEM_STATE_DIR "/var/lib/mboxmirror"

/* Whether path names a file under /etc, once made absolute and resolved. */
static bool
is_system_config(const char *path)
{
	char *real = realpath(path, NULL);
	bool under_etc;

	under_etc = strncmp(real != NULL ? real : path, "/etc/", 5) == 0;
	free(real);
	return under_etc;
}

/*
 * The state directory when state_dir is not set, and why it is that one: a
 * property of the configuration, not of who runs the command, so that a
 * "sudo mboxmirror --once" with the service's config uses the service's
 * state (and does not take its mirror for unknown files).
 */
static int
default_state_dir(const char *config_path, char **dir_r,
    const char **origin_r)
{
	const char *env, *home;
	size_t len;

	*dir_r = NULL;
	if ((env = getenv("STATE_DIRECTORY")) != NULL && env[0] == '/') {
		len = strcspn(env, ":");
		while (len > 1 && env[len - 1] == '/')
			len--;
		*dir_r = strndup(env, len);
		*origin_r = "$STATE_DIRECTORY, from the service";
	} else if (is_system_config(config_path)) {
		*dir_r = strdup(SYSTEM_STATE_DIR);
		*origin_r = "the default for a configuration under /etc";
	} else if ((env = getenv("XDG_STATE_HOME")) != NULL && env[0] == '/') {
		if (asprintf(dir_r, "%s/mboxmirror", env) < 0)
			*dir_r = NULL;
		*origin_r = "$XDG_STATE_HOME/mboxmirror";
	} else if ((home = home_dir()) != NULL) {
		if (asprintf(dir_r, "%s/.local/state/mboxmirror", home) < 0)
			*dir_r = NULL;
		*origin_r = "the default for a user's configuration";
	} else
		return -1;
	return 0;
}

static void
validate_general(struct parser *p, struct raw_section *g, struct config *c)
{
	struct raw_entry *e;
	uint64_t n;
	int level;

	c->interval = DEFAULT_INTERVAL;
	c->timeout = DEFAULT_TIMEOUT;
	c->max_connections = DEFAULT_MAX_CONNECTIONS;
	c->retry_min = DEFAULT_RETRY_MIN;
	c->retry_max = DEFAULT_RETRY_MAX;
	c->idle_refresh = DEFAULT_IDLE_REFRESH;
	c->log_level = LOGL_INFO;
	if (g != NULL)
		check_keys(p, g, IN_GENERAL);
	get_duration(p, g, "interval", &c->interval);
	get_duration(p, g, "timeout", &c->timeout);
	get_duration(p, g, "retry_min", &c->retry_min);
	get_duration(p, g, "retry_max", &c->retry_max);
	if (c->retry_max < c->retry_min && (e = entry_value(g,
	    "retry_max")) != NULL)
		report(p, e->line, g->name, e->key, "is shorter than "
		    "retry_min");
	get_duration(p, g, "idle_refresh", &c->idle_refresh);
	if (c->idle_refresh > CONFIG_IDLE_REFRESH_MAX && (e = entry_value(g,
	    "idle_refresh")) != NULL)
		report(p, e->line, g->name, e->key, "is longer than 29m (RFC "
		    "2177 lets servers end an IDLE after 30 minutes)");
	if ((e = entry_value(g, "max_connections")) != NULL) {
		if (num_parse_u64(e->value, CONFIG_MAX_CONNECTIONS_MAX,
		    &n) == 0 && n >= 1)
			c->max_connections = (unsigned)n;
		else
			report(p, e->line, g->name, e->key, "\"%.64s\" is not "
			    "a number from 1 to %d", e->value,
			    CONFIG_MAX_CONNECTIONS_MAX);
	}
	if ((e = entry_value(g, "log_level")) != NULL) {
		enum log_level l;

		level = log_level_parse(e->value, &l);
		if (level == 0)
			c->log_level = l;
		else
			report(p, e->line, g->name, e->key, "\"%.64s\" is not "
			    "one of error, warning, info or debug", e->value);
	}
	if ((e = entry_value(g, "shard")) != NULL) {
		const char *problem;

		if (shard_parse(e->value, &c->shard, &problem) == -1)
			report(p, e->line, g->name, e->key, "\"%.64s\" %s",
			    e->value, problem);
	}
	if ((e = entry_value(g, "metrics_file")) != NULL) {
		c->metrics_file = expand_path(p, g, e, true);
		if (c->metrics_file != NULL && c->metrics_file[
		    strlen(c->metrics_file) - 1] == '/')
			report(p, e->line, g->name, e->key, "\"%.64s\" names "
			    "a directory, not a file", e->value);
	}
	if ((e = entry_value(g, "state_dir")) != NULL) {
		c->state_dir = expand_path(p, g, e, true);
		c->state_dir_origin = "state_dir in [general]";
	} else if (entry_find(g, "state_dir") == NULL) {
		if (default_state_dir(p->path, &c->state_dir,
		    &c->state_dir_origin) == -1)
			report(p, 0, "general", "state_dir", "no default (none "
			    "of $STATE_DIRECTORY, $XDG_STATE_HOME, $HOME is "
			    "usable); set it");
		else if (c->state_dir == NULL)
			p->oom = true;
	}
}

static void
account_free(struct account *a)
{
	free(a->name);
	free(a->host);
	free(a->ca_file);
	free(a->user);
	wipe_free(a->secret);
	str_list_free(&a->mailboxes);
	str_list_free(&a->exclude);
	free(a->output);
	explicit_bzero(a, sizeof *a);
}

static bool
host_ok(const char *host)
{
	if (strlen(host) > HOST_MAX)
		return false;
	for (const unsigned char *s = (const unsigned char *)host; *s; s++)
		if (*s <= ' ' || *s == 0x7f || *s == '/')
			return false;
	return true;
}

/* An IPv6 address, with an optional "%zone" (fe80::1%eth0). */
static bool
ipv6_literal(const char *text, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in6_addr addr;
	size_t alen = len;
	const char *zone = memchr(text, '%', len);

	if (zone != NULL) {
		alen = (size_t)(zone - text);
		for (const char *z = zone + 1; z < text + len; z++)
			if ((unsigned char)*z <= ' ' || *z == '/' || *z == '%')
				return false;
		if (zone + 1 == text + len || len - alen > 16)
			return false;
	}
	if (alen == 0 || alen >= sizeof buf)
		return false;
	memcpy(buf, text, alen);
	buf[alen] = '\0';
	return inet_pton(AF_INET6, buf, &addr) == 1;
}

static bool
all_digits(const char *s)
{
	return *s != '\0' && s[strspn(s, "0123456789")] == '\0';
}

/*
 * host: a name, an IPv4 address, or an IPv6 address bare or in brackets
 * (kept without them, as the resolver wants it).  "name:port" and
 * "[v6]:port" are refused with a pointer to port =: the port would end up
 * in the name looked up, and the summary would show "name:port:993".
 */
static void
account_host(struct parser *p, struct raw_section *s, struct raw_entry *e,
    struct account *a)
{
	const char *v = e->value, *colon, *close, *name = v, *port = NULL;
	size_t nlen = strlen(v);

	if (v[0] == '[') {
		close = strchr(v, ']');
		if (close == NULL || !ipv6_literal(v + 1,
		    (size_t)(close - v - 1)))
			goto bad;
		name = v + 1;
		nlen = (size_t)(close - name);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			goto bad;
	} else if ((colon = strchr(v, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		nlen = (size_t)(colon - v);
		port = colon + 1;
	} else if (colon != NULL && !ipv6_literal(v, nlen))
		goto bad;
	if (port != NULL) {
		if (nlen == 0 || !all_digits(port))
			goto bad;
		report(p, e->line, s->name, e->key, "\"%.64s\" holds a port; "
		    "write host = %.*s and port = %.16s", v, (int)nlen, name,
		    port);
		return;
	}
	if (!host_ok(v))
		goto bad;
	a->host = p_strndup(p, name, nlen);
	return;
 bad:
	report(p, e->line, s->name, e->key, "\"%.64s\" is not a host name "
	    "(an IPv6 address may be in brackets; the port goes in port =)",
	    v);
}

static void
require(struct parser *p, struct raw_section *s, const char *key)
{
	if (entry_find(s, key) == NULL)
		report(p, s->line, s->name, key, "missing (required)");
}

/*
 * A password_file others can read gives the password away; one others can
 * write lets them choose it.  Only a warning: the file may be fixed before
 * it is read, and a missing one is reported when it is.
 */
static void
check_secret_file(struct parser *p, struct raw_section *s,
    struct raw_entry *e, const char *path)
{
	struct stat st;
	const char *how;
	bool readable, writable;

	if (stat(path, &st) == -1 || !S_ISREG(st.st_mode))
		return;
	readable = (st.st_mode & S_IROTH) != 0;
	writable = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
	if (!readable && !writable)
		return;
	how = !writable ? "readable by others" : !readable ?
	    "writable by group or others" :
	    "readable by others and writable by group or others";
	log_warnx("%s:%u: [%s] %s: %s is %s (mode %04o); run chmod 600 %s",
	    p->path, e->line, s->name, e->key, path, how,
	    (unsigned)(st.st_mode & 07777), path);
}

static void
account_secret(struct parser *p, struct raw_section *s, struct account *a)
{
	static const char *const keys[] = { "password_command",
		"password_file", "password" };
	static const enum secret_source sources[] = { SECRET_COMMAND,
		SECRET_FILE, SECRET_INLINE };
	struct raw_entry *first = NULL, *e;
	size_t chosen = 0;

	for (size_t i = 0; i < 3; i++) {
		if ((e = entry_find(s, keys[i])) == NULL)
			continue;
		if (first == NULL) {
			first = e;
			chosen = i;
		} else {
			/* Name the later line: the first one wins. */
			struct raw_entry *later = e->line > first->line ?
			    e : first;
			struct raw_entry *earlier = later == e ? first : e;

			report(p, later->line, s->name, later->key,
			    "conflicts with %s (line %u); set exactly one of "
			    "password_command, password_file, password",
			    earlier->key, earlier->line);
		}
	}
	if (first == NULL) {
		report(p, s->line, s->name, NULL, "no password_command, "
		    "password_file or password; set exactly one");
		return;
	}
	if (first->value == NULL)
		return;
	a->secret_source = sources[chosen];
	a->secret_line = first->line;
	if (a->secret_source == SECRET_FILE) {
		a->secret = expand_path(p, s, first, false);
		if (a->secret != NULL)
			check_secret_file(p, s, first, a->secret);
	} else
		a->secret = p_strdup(p, first->value);
}

static void
validate_account(struct parser *p, struct raw_section *s, struct config *c,
    struct account *a, unsigned *output_line)
{
	struct raw_entry *e;
	uint64_t n;
	int v;

	check_keys(p, s, IN_ACCOUNT);
	a->name = p_strdup(p, s->name);
	a->line = s->line;
	a->tls = TLS_IMPLICIT;
	a->auth = AUTH_AUTO;
	a->interval = c->interval;
	a->idle = true;
	a->allow_plaintext = false;
	a->compress = COMPRESS_AUTO;
	*output_line = 0;

	require(p, s, "host");
	require(p, s, "user");
	require(p, s, "output");
	if ((e = entry_value(s, "host")) != NULL)
		account_host(p, s, e, a);
	v = (int)a->tls;
	get_enum(p, s, "tls", tls_names, 3, &v);
	a->tls = (enum tls_mode)v;
	get_bool(p, s, "allow_plaintext", &a->allow_plaintext);
	if (a->tls == TLS_NONE && !a->allow_plaintext) {
		e = entry_find(s, "tls");
		report(p, e->line, s->name, "tls", "\"none\" would send the "
		    "password in clear text; set allow_plaintext = yes to "
		    "allow it");
	}
	a->port = a->tls == TLS_IMPLICIT ? 993 : 143;
	if ((e = entry_value(s, "port")) != NULL) {
		if (num_parse_u64(e->value, 65535, &n) == 0 && n >= 1)
			a->port = (uint16_t)n;
		else
			report(p, e->line, s->name, e->key,
			    "\"%.64s\" is not a port (1-65535)", e->value);
	}
	if ((e = entry_value(s, "ca_file")) != NULL) {
		a->ca_file = expand_path(p, s, e, false);
		a->ca_file_line = e->line;
	}
	if ((e = entry_value(s, "pin_sha256")) != NULL) {
		if (decode_pin(e->value, a->pin_sha256) == 0)
			a->has_pin = true;
		else
			report(p, e->line, s->name, e->key, "\"%.64s\" is not "
			    "the base64 of 32 bytes (a SHA-256 digest)",
			    e->value);
	}
	if ((e = entry_value(s, "user")) != NULL)
		a->user = p_strdup(p, e->value);
	account_secret(p, s, a);
	v = (int)a->auth;
	get_enum(p, s, "auth", auth_names, 5, &v);
	a->auth = (enum auth_method)v;
	if (str_list_add(p, &a->mailboxes, "*", 1) == 0)
		get_list(p, s, "mailboxes", &a->mailboxes);
	get_list(p, s, "exclude", &a->exclude);
	if ((e = entry_value(s, "output")) != NULL) {
		a->output = expand_path(p, s, e, true);
		*output_line = e->line;
	}
	get_duration(p, s, "interval", &a->interval);
	get_bool(p, s, "idle", &a->idle);
	v = (int)a->compress;
	get_enum(p, s, "compress", compress_names, 3, &v);
	a->compress = (enum compress_mode)v;
}

/* Drops the last component of the resolved path in out ("" is "/"). */
static void
path_pop(char *out)
{
	char *slash = strrchr(out, '/');

	if (slash != NULL)
		*slash = '\0';
}

char *
config_resolve_path(const char *path)
{
	size_t size = PATH_MAX + strlen(path) + 2, len, n;
	const char *c = path;
	char *out, *real;

	/* out holds the path without a trailing '/', "" for the root; it
	 * never outgrows the longest realpath plus the rest of path. */
	if ((out = malloc(size)) == NULL)
		return NULL;
	out[0] = '\0';
	for (;;) {
		c += strspn(c, "/");
		if (*c == '\0')
			break;
		n = strcspn(c, "/");
		if (n == 2 && c[0] == '.' && c[1] == '.')
			path_pop(out);
		else if (n != 1 || c[0] != '.') {
			len = strlen(out);
			out[len] = '/';
			memcpy(out + len + 1, c, n);
			out[len + 1 + n] = '\0';
			/* Only what exists can be a symlink; the rest (not
			 * made yet) is taken as written. */
			if ((real = realpath(out, NULL)) != NULL) {
				if (strlen(real) < PATH_MAX)
					snprintf(out, size, "%s",
					    strcmp(real, "/") == 0 ? "" : real);
				free(real);
			}
		}
		c += n;
	}
	if (out[0] == '\0')
		snprintf(out, size, "/");
	return out;
}

bool
config_path_within(const char *outer, const char *inner)
{
	size_t len = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(outer, inner, len) == 0 &&
	    (inner[len] == '\0' || inner[len] == '/');
}

/* Where account i's and j's outputs lead, when one is not as written (a
 * symlink, ".."), for the error; else "". */
static void
where_resolved(const struct config *c, char *const *norm, size_t i,
    size_t j, char *buf, size_t size)
{
	buf[0] = '\0';
	if (strcmp(norm[i], c->accounts[i].output) != 0 ||
	    strcmp(norm[j], c->accounts[j].output) != 0)
		snprintf(buf, size, " (resolved: %.128s and %.128s)", norm[i],
		    norm[j]);
}

/* Account i's output, resolved, for sorting. */
struct output_ref {
	const char *path;
	size_t i;
};

static int
path_rank(unsigned char c)
{
	return c == '\0' ? 0 : c == '/' ? 1 : c + 1;
}

/* Path order with '/' before every other byte: a directory is followed at
 * once by everything inside it ("/a", "/a/b", "/a b"). */
static int
output_cmp(const void *va, const void *vb)
{
	const unsigned char *a = (const unsigned char *)((const struct
	    output_ref *)va)->path;
	const unsigned char *b = (const unsigned char *)((const struct
	    output_ref *)vb)->path;
	size_t ia = ((const struct output_ref *)va)->i;
	size_t ib = ((const struct output_ref *)vb)->i;

	for (; *a != '\0' && *a == *b; a++, b++)
		;
	if (*a != *b)
		return path_rank(*a) - path_rank(*b);
	return ia < ib ? -1 : ia > ib;
}

static int
pair_cmp(const void *va, const void *vb)
{
	const size_t *a = va, *b = vb;

	if (a[0] != b[0])
		return a[0] < b[0] ? -1 : 1;
	return a[1] < b[1] ? -1 : a[1] > b[1];
}

/* Account i's output against an earlier account j's. */
static void
report_outputs(struct parser *p, const struct config *c, char *const *norm,
    const unsigned *lines, size_t i, size_t j)
{
	char where[300];
	const char *what;

	if (strcmp(norm[i], norm[j]) == 0)
		what = "is also the output of";
	else if (config_path_within(norm[j], norm[i]))
		what = "is inside the output of";
	else
		what = "contains the output of";
	where_resolved(c, norm, i, j, where, sizeof where);
	report(p, lines[i], c->accounts[i].name, "output",
	    "\"%.64s\" %s [%s] (line %u)%s; each account needs a directory "
	    "of its own", c->accounts[i].output, what, c->accounts[j].name,
	    lines[j], where);
}

/*
 * Two accounts writing into the same directory would mix their files, and
 * each would rename the other's mbox files as ones it has no record of.
 * The outputs are sorted so that each meets only the directories holding
 * it (a stack of them), not every other account's: 10,000 accounts took
 * a second comparing pairs.  Each clash is reported at the later account
 * in the file, in file order.
 */
static void
check_outputs(struct parser *p, struct config *c, const unsigned *lines)
{
	struct output_ref *refs = NULL;
	size_t *stack = NULL, depth = 0, n = 0, *pairs = NULL, npairs = 0;
	size_t cap = 0, *np;
	char **norm;

	if ((norm = calloc(c->n_accounts, sizeof *norm)) == NULL ||
	    (refs = calloc(c->n_accounts, sizeof *refs)) == NULL ||
	    (stack = calloc(c->n_accounts, sizeof *stack)) == NULL) {
		p->oom = true;
		goto out;
	}
	for (size_t i = 0; i < c->n_accounts; i++) {
		if (c->accounts[i].output == NULL)
			continue;
		if ((norm[i] = config_resolve_path(c->accounts[i].output)) ==
		    NULL) {
			p->oom = true;
			goto out;
		}
		refs[n].path = norm[i];
		refs[n++].i = i;
	}
	if (n > 1)
		qsort(refs, n, sizeof *refs, output_cmp);
	for (size_t k = 0; k < n; k++) {
		while (depth > 0 && !config_path_within(refs[stack[depth -
		    1]].path, refs[k].path))
			depth--;
		for (size_t d = 0; d < depth; d++) {
			size_t a = refs[stack[d]].i, b = refs[k].i;

			if (npairs == cap) {
				cap = cap > 0 ? 2 * cap : 16;
				if ((np = reallocarray(pairs, cap, 2 *
				    sizeof *pairs)) == NULL) {
					p->oom = true;
					goto out;
				}
				pairs = np;
			}
			pairs[2 * npairs] = a > b ? a : b;
			pairs[2 * npairs + 1] = a > b ? b : a;
			npairs++;
		}
		stack[depth++] = k;
	}
	if (npairs > 1)
		qsort(pairs, npairs, 2 * sizeof *pairs, pair_cmp);
	for (size_t k = 0; k < npairs; k++)
		report_outputs(p, c, norm, lines, pairs[2 * k],
		    pairs[2 * k + 1]);
 out:
	if (norm != NULL)
		for (size_t i = 0; i < c->n_accounts; i++)
			free(norm[i]);
	free(norm);
	free(refs);
	free(stack);
	free(pairs);
}

static bool
has_inline_password(struct parser *p)
{
	for (size_t i = 0; i < p->n_sections; i++)
		if (strcmp(p->sections[i].name, "general") != 0 &&
		    entry_find(&p->sections[i], "password") != NULL)
			return true;
	return false;
}

static void
parser_free(struct parser *p)
{
	for (size_t i = 0; i < p->n_sections; i++) {
		struct raw_section *s = &p->sections[i];

		for (size_t j = 0; j < s->n_entries; j++) {
			free(s->entries[j].key);
			wipe_free(s->entries[j].value);
		}
		free(s->entries);
		free(s->name);
	}
	free(p->sections);
	nameindex_free(&p->section_index);
}

static int
load(const char *name, const char *text, size_t len, const struct stat *st,
    struct config **config_r)
{
	struct parser p;
	struct config *c = NULL;
	struct raw_section *general;
	unsigned *output_lines = NULL;
	size_t n_sections = 0;
	int rc, ret = -1;

	*config_r = NULL;
	memset(&p, 0, sizeof p);
	p.path = name;
	p.text = text;
	p.len = len;
	rc = ini_parse_stream(read_line, &p, on_key, &p);
	if (rc == -2)
		p.oom = true;
	else if (rc != 0 && p.errors == 0)
		report(&p, rc > 0 ? (unsigned)rc : 0, NULL, NULL,
		    "syntax error");
	if (p.oom)
		goto out;

	if (st != NULL && (st->st_mode & (S_IRGRP | S_IROTH)) != 0 &&
	    has_inline_password(&p))
		log_warnx("%s: holds an inline password but is readable by "
		    "group or others (mode %04o); run chmod 600 %s, or use "
		    "password_file or password_command", name,
		    (unsigned)(st->st_mode & 07777), name);
	/* Whoever can write the config can choose the password_command the
	 * daemon runs: as good as running code as its user. */
	if (st != NULL && (st->st_mode & S_IWOTH) != 0)
		log_warnx("%s: writable by anyone (mode %04o): any user can set "
		    "a password_command and have it run as this user; run "
		    "chmod 600 %s", name, (unsigned)(st->st_mode & 07777),
		    name);

	if ((c = calloc(1, sizeof *c)) == NULL ||
	    (c->path = strdup(name)) == NULL) {
		p.oom = true;
		goto out;
	}
	c->inline_password_warned = st != NULL &&
	    (st->st_mode & (S_IRGRP | S_IROTH)) != 0 && has_inline_password(&p);
	general = find_section(&p, "general");
	validate_general(&p, general, c);

	for (size_t i = 0; i < p.n_sections; i++)
		if (strcmp(p.sections[i].name, "general") != 0)
			n_sections++;
	c->accounts = calloc(n_sections + 1, sizeof *c->accounts);
	output_lines = calloc(n_sections + 1, sizeof *output_lines);
	if (c->accounts == NULL || output_lines == NULL) {
		p.oom = true;
		goto out;
	}
	for (size_t i = 0; i < p.n_sections && !p.oom; i++) {
		struct raw_section *s = &p.sections[i];

		if (s->ignored || strcmp(s->name, "general") == 0)
			continue;
		validate_account(&p, s, c, &c->accounts[c->n_accounts],
		    &output_lines[c->n_accounts]);
		c->n_accounts++;
	}
	if (p.oom)
		goto out;
	check_outputs(&p, c, output_lines);
	if (n_sections == 0)
		report(&p, 0, NULL, NULL, "no accounts configured (add a "
		    "section such as [personal])");
	if (p.errors == 0 && !p.oom) {
		*config_r = c;
		c = NULL;
		ret = 0;
	}
 out:
	flush_errors(&p);
	if (p.oom)
		log_error("%s: out of memory while loading the configuration",
		    name);
	free(output_lines);
	config_free(&c);
	parser_free(&p);
	return ret;
}

int
config_load_string(const char *name, const char *text,
    struct config **config_r)
{
	return load(name, text, strlen(text), NULL, config_r);
}

int
config_load(const char *path, struct config **config_r)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret = -1;

	*config_r = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		log_error("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		log_error("%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("%s: not a regular file", path);
		goto out;
	}
	if ((buf = malloc(CONFIG_FILE_MAX + 1)) == NULL) {
		log_error("%s: out of memory", path);
		goto out;
	}
	while ((n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			log_error("%s: read: %s", path, strerror(errno));
			goto out;
		}
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			log_error("%s: larger than %d bytes", path,
			    CONFIG_FILE_MAX);
			goto out;
		}
	}
	ret = load(path, buf, len, &st, config_r);
 out:
	if (buf != NULL) {
		explicit_bzero(buf, len);
		free(buf);
	}
	close(fd);
	return ret;
}

void
config_free(struct config **config)
{
	struct config *c = *config;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_accounts; i++)
		account_free(&c->accounts[i]);
	free(c->accounts);
	free(c->path);
	free(c->state_dir);
	free(c->metrics_file);
	free(c);
	*config = NULL;
}

/* The per-user config path ($XDG_CONFIG_HOME or ~/.config), or NULL. */
static char *
user_config_path(void)
{
	const char *env, *home;
	char *path = NULL;

	if ((env = getenv("XDG_CONFIG_HOME")) != NULL && env[0] == '/') {
		if (asprintf(&path, "%s/mboxmirror/config.ini", env) < 0)
			path = NULL;
	} else if ((home = home_dir()) != NULL) {
		if (asprintf(&path, "%s/.config/mboxmirror/config.ini",
		    home) < 0)
			path = NULL;
	}
	return path;
}

char *
config_default_path(void)
{
	const char *env;
	char *path;

	if ((env = getenv("MBOXMIRROR_CONFIG")) != NULL && *env != '\0')
		return strdup(env);
	path = user_config_path();
	if (path != NULL && access(path, F_OK) == 0)
		return path;
	free(path);
	return strdup(SYSTEM_CONFIG);
}

void
config_report_none_found(void)
{
	char *user = user_config_path();

	log_error("no configuration file: looked for %s%s%s (and "
	    "$MBOXMIRROR_CONFIG is not set); start from the example "
	    "(mboxmirror.ini.example: installed under share/doc/mboxmirror, "
	    "config/ in the source tree) or name a file with -c FILE",
	    user != NULL ? user : "", user != NULL ? " and " : "",
	    SYSTEM_CONFIG);
	free(user);
}

const struct account *
config_find_account(const struct config *config, const char *name)
{
	for (size_t i = 0; i < config->n_accounts; i++)
		if (strcmp(config->accounts[i].name, name) == 0)
			return &config->accounts[i];
	return NULL;
}

void
config_keep_shard(struct config *config, const struct shard *shard)
{
	size_t kept = 0;

	for (size_t i = 0; i < config->n_accounts; i++) {
		if (!shard_takes(shard, config->accounts[i].name)) {
			account_free(&config->accounts[i]);
			continue;
		}
		if (kept != i)
			config->accounts[kept] = config->accounts[i];
		kept++;
	}
	config->n_accounts = kept;
	config->shard = *shard;
}

const char *
tls_mode_name(enum tls_mode mode)
{
	return (unsigned)mode < 3 ? tls_names[mode] : "?";
}

const char *
auth_method_name(enum auth_method method)
{
	return (unsigned)method < 5 ? auth_names[method] : "?";
}

const char *
compress_mode_name(enum compress_mode mode)
{
	return (unsigned)mode < 3 ? compress_names[mode] : "?";
}
