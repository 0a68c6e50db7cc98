#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SECRETS 256
#define MASK "********"

static enum log_level current_level = LOGL_INFO;
static bool journal;
static log_sink_fn *sink;
static void *sink_arg;
static char *secrets[MAX_SECRETS];
static size_t n_secrets;

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
	now = time(NULL);
	localtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s %s: %s\n", stamp, level_names[level], line);
}

void
log_init(void)
{
	journal = getenv("JOURNAL_STREAM") != NULL;
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

void
log_add_secret(const char *secret)
{
	if (secret == NULL || strlen(secret) < 3 || n_secrets == MAX_SECRETS)
		return;
	for (size_t i = 0; i < n_secrets; i++)
		if (strcmp(secrets[i], secret) == 0)
			return;
	if ((secrets[n_secrets] = strdup(secret)) != NULL)
		n_secrets++;
}

void
log_clear_secrets(void)
{
	for (size_t i = 0; i < n_secrets; i++) {
		/* volatile-ish wipe: the secret should not linger in freed memory */
		explicit_bzero(secrets[i], strlen(secrets[i]));
		free(secrets[i]);
	}
	n_secrets = 0;
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
		for (size_t k = 0; k < n_secrets; k++) {
			size_t slen = strlen(secrets[k]);

			if (i + slen > covered &&
			    strncmp(src + i, secrets[k], slen) == 0)
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

void
log_redact(char *line, size_t size)
{
	char *copy;

	if (n_secrets == 0 || size == 0)
		return;
	if ((copy = strdup(line)) != NULL) {
		redact_copy(copy, line, size);
		explicit_bzero(copy, strlen(copy));
		free(copy);
		return;
	}
	/* Out of memory: mask in place without growing the line. */
	for (size_t k = 0; k < n_secrets; k++) {
		size_t slen = strlen(secrets[k]);
		char *p = line;

		while ((p = strstr(p, secrets[k])) != NULL)
			memset(p, '*', slen);
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
	for (char *p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
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
