#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "util/num.h"
#include "util/utf8.h"

#define MASK "********"
/* Secrets kept per owner: a connection that fetched the previous one may
 * still be logging in while another has fetched a rotated one. */
#define OWNER_SECRETS 2

static enum log_level current_level = LOGL_INFO;
static bool journal;
static bool plain;
static log_sink_fn *sink;
static void *sink_arg;

/* Who registered which secrets; secrets[0] is the newest, unused slots are
 * NULL.  Grows without limit: masking never silently stops. */
struct secret_owner {
	char *name;
	char *secrets[OWNER_SECRETS];
};
static struct secret_owner *owners;
static size_t n_owners, owners_size;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
/* syslog priorities: err, warning, info, debug */
static const int level_prio[] = { 3, 4, 6, 7 };

static void
stderr_sink(enum log_level level, const char *line, void *arg)
{
	char stamp[32];
	struct tm tm;
	time_t now;

	(void)arg;
	if (journal) {
		fprintf(stderr, "<%d>%s\n", level_prio[level], line);
		return;
	}
	if (plain) {
		if (level == LOGL_ERROR)
			fprintf(stderr, "%s\n", line);
		else
			fprintf(stderr, "%s: %s\n", level_names[level], line);
		return;
	}
	now = time(NULL);
	localtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s %s: %s\n", stamp, level_names[level], line);
}

bool
log_journal_stream_is(const char *value, int fd)
{
	const char *colon;
	uint64_t dev, ino;
	struct stat st;

	if (value == NULL || (colon = strchr(value, ':')) == NULL ||
	    num_parse_u64n(value, (size_t)(colon - value), UINT64_MAX,
	    &dev) != 0 || num_parse_u64(colon + 1, UINT64_MAX, &ino) != 0 ||
	    fstat(fd, &st) != 0)
		return false;
	return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

void
log_init(void)
{
	/* Only while stderr is still the journal's stream: a shell started
	 * from a unit inherits the variable with stderr elsewhere. */
	journal = log_journal_stream_is(getenv("JOURNAL_STREAM"),
	    STDERR_FILENO);
}

void
log_set_plain(bool on)
{
	plain = on;
}

void
log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level
log_get_level(void)
{
	return current_level;
}

int
log_level_parse(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof level_names / sizeof *level_names; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

void
log_set_sink(log_sink_fn *fn, void *arg)
{
	sink = fn;
	sink_arg = arg;
}

static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static struct secret_owner *
find_owner(const char *name)
{
	for (size_t i = 0; i < n_owners; i++)
		if (strcmp(owners[i].name, name) == 0)
			return &owners[i];
	return NULL;
}

int
log_set_secret(const char *owner, const char *secret)
{
	struct secret_owner *o, *grown;
	char *copy, *swap;
	size_t size;

	if (secret == NULL || strlen(secret) < 3)
		return 0;
	if (owner == NULL)
		owner = "";
	if ((o = find_owner(owner)) == NULL) {
		if (n_owners == owners_size) {
			size = owners_size == 0 ? 8 : owners_size * 2;
			if ((grown = reallocarray(owners, size,
			    sizeof *owners)) == NULL)
				return -1;
			owners = grown;
			owners_size = size;
		}
		o = &owners[n_owners];
		memset(o, 0, sizeof *o);
		if ((o->name = strdup(owner)) == NULL)
			return -1;
		n_owners++;
	}
	if (o->secrets[0] != NULL && strcmp(o->secrets[0], secret) == 0)
		return 0;
	for (size_t k = 1; k < OWNER_SECRETS; k++) {
		if (o->secrets[k] == NULL || strcmp(o->secrets[k], secret) != 0)
			continue;
		/* Used again: the newest once more. */
		swap = o->secrets[k];
		memmove(&o->secrets[1], &o->secrets[0], k * sizeof *o->secrets);
		o->secrets[0] = swap;
		return 0;
	}
	if ((copy = strdup(secret)) == NULL)
		return -1;
	wipe_free(o->secrets[OWNER_SECRETS - 1]);
	memmove(&o->secrets[1], &o->secrets[0],
	    (OWNER_SECRETS - 1) * sizeof *o->secrets);
	o->secrets[0] = copy;
	return 0;
}

void
log_forget_secrets(const char *owner)
{
	struct secret_owner *o;

	if ((o = find_owner(owner != NULL ? owner : "")) == NULL)
		return;
	for (size_t k = 0; k < OWNER_SECRETS; k++)
		wipe_free(o->secrets[k]);
	free(o->name);
	*o = owners[--n_owners];
}

void
log_clear_secrets(void)
{
	while (n_owners > 0)
		log_forget_secrets(owners[n_owners - 1].name);
	free(owners);
	owners = NULL;
	owners_size = 0;
}

/* The i-th registered secret, for i below 2 * n_owners; NULL if unused. */
static const char *
secret_at(size_t i)
{
	return owners[i / OWNER_SECRETS].secrets[i % OWNER_SECRETS];
}

/*
 * Copies src to dst (size bytes, NUL included) with every byte covered by
 * an occurrence of a registered secret masked; overlapping or adjacent
 * occurrences become one mask.  Redaction happens before any truncation, so
 * a cut can never leave a secret's prefix behind.  Output that does not fit
 * ends in "...".
 */
static void
redact_copy(const char *src, char *dst, size_t size)
{
	size_t mlen = strlen(MASK), o = 0, covered = 0, i;
	bool masking = false, cut = false;

	if (size == 0)
		return;
	for (i = 0; src[i] != '\0'; i++) {
		for (size_t k = 0; k < n_owners * OWNER_SECRETS; k++) {
			const char *secret = secret_at(k);
			size_t slen;

			if (secret == NULL)
				continue;
			slen = strlen(secret);
			if (i + slen > covered &&
			    strncmp(src + i, secret, slen) == 0)
				covered = i + slen;
		}
		if (i < covered) {
			if (masking)
				continue;
			masking = true;
			if (o + mlen >= size) {
				cut = true;
				break;
			}
			memcpy(dst + o, MASK, mlen);
			o += mlen;
			continue;
		}
		masking = false;
		if (o + 1 >= size) {
			cut = true;
			break;
		}
		dst[o++] = src[i];
	}
	dst[o] = '\0';
	if (cut && size >= 4) {
		if (o > size - 4)
			o = size - 4;
		memcpy(dst + o, "...", 4);
	}
}

char *
log_redact(const char *text)
{
	/* Each masked run is at least 3 bytes long and becomes 8. */
	size_t size = strlen(text) * 3 + 1;
	char *copy;

	if ((copy = malloc(size)) != NULL)
		redact_copy(text, copy, size);
	return copy;
}

void
log_sanitize(char *text)
{
	unsigned char *p = (unsigned char *)text;
	size_t left = strlen(text), n;
	uint32_t cp;

	while (left > 0) {
		if ((n = utf8_decode(p, left, &cp)) == 0) {
			/* No UTF-8: a lone 0x9b is CSI in an 8-bit locale. */
			*p = '?';
			n = 1;
		} else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 &&
		    cp <= 0x9f)) {
			/* C0, DEL, C1 (U+009B is CSI as well) */
			memset(p, '?', n);
		}
		p += n;
		left -= n;
	}
}

static void log_vmsg(enum log_level, const char *, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static void
log_vmsg(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX], *full;
	size_t len, extra;
	va_list aq;
	int n;

	if (level > current_level)
		return;
	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	extra = suffix != NULL ? strlen(suffix) + 2 : 0;
	if (n < 0 || (full = malloc((size_t)n + extra + 1)) == NULL) {
		snprintf(line, sizeof line, "(log message dropped: %s)",
		    n < 0 ? "bad format" : "out of memory");
		(sink != NULL ? sink : stderr_sink)(level, line, sink_arg);
		return;
	}
	vsnprintf(full, (size_t)n + 1, fmt, ap);
	if (suffix != NULL) {
		len = (size_t)n;
		snprintf(full + len, extra + 1, ": %s", suffix);
	}
	/* Redact first: a secret must match before it is cut or altered. */
	redact_copy(full, line, sizeof line);
	explicit_bzero(full, strlen(full));
	free(full);
	/* Control characters from servers must not forge log lines. */
	log_sanitize(line);
	(sink != NULL ? sink : stderr_sink)(level, line, sink_arg);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOGL_WARNING, strerror(saved), fmt, ap);
	va_end(ap);
}

int
log_set_error(char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(error_r, fmt, ap) < 0)
		*error_r = NULL;
	va_end(ap);
	return -1;
}
