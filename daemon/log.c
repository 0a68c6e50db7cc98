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

static void
redact_one(char *line, size_t size, const char *secret)
{
	size_t slen = strlen(secret), mlen = strlen(MASK);
	char *p = line;

	while ((p = strstr(p, secret)) != NULL) {
		size_t tail = strlen(p + slen);

		if ((size_t)(p - line) + mlen + tail + 1 > size)
			tail = size - 1 - (size_t)(p - line) - mlen;
		memmove(p + mlen, p + slen, tail);
		p[mlen + tail] = '\0';
		memcpy(p, MASK, mlen);
		p += mlen;
	}
}

void
log_redact(char *line, size_t size)
{
	for (size_t i = 0; i < n_secrets; i++)
		redact_one(line, size, secrets[i]);
}

static void log_vmsg(enum log_level, const char *, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static void
log_vmsg(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n;

	if (level > current_level)
		return;
	n = vsnprintf(line, sizeof line, fmt, ap);
	if (n >= 0 && (size_t)n >= sizeof line)
		memcpy(line + sizeof line - 4, "...", 4);
	if (suffix != NULL) {
		size_t len = strlen(line);
		snprintf(line + len, sizeof line - len, ": %s", suffix);
	}
	/* Control characters from servers must not forge log lines. */
	for (char *p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	log_redact(line, sizeof line);
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
