/*
 * log: leveled logging to stderr (journald priority prefixes under systemd),
 * with a single replaceable sink so tests can capture lines, and redaction of
 * registered secrets from every line.
 */
#ifndef MM_LOG_H
#define MM_LOG_H

#include <stdbool.h>
#include <stddef.h>

#define MM_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum log_level {
	LOGL_ERROR = 0,
	LOGL_WARNING,
	LOGL_INFO,
	LOGL_DEBUG,
};

/* Longest line emitted; longer messages are cut (and marked with "..."). */
#define LOG_LINE_MAX 2048

/*
 * A sink receives every line that passes the level filter, already formatted
 * and redacted, without a trailing newline.  The default sink writes to
 * stderr: "<N>" journald prefix when $JOURNAL_STREAM is set, else a local
 * timestamp and the level name.
 */
typedef void log_sink_fn(enum log_level level, const char *line, void *arg);

/* Reads $JOURNAL_STREAM; call once at start-up. */
void log_init(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error|warning|info|debug"; returns 0, or -1 if unknown. */
int log_level_parse(const char *name, enum log_level *level_r);
const char *log_level_name(enum log_level level);
/* NULL restores the default stderr sink. */
void log_set_sink(log_sink_fn *sink, void *arg);

/*
 * Registers a secret (password, token): from now on every occurrence of it in
 * a log line is replaced by "********".  Secrets shorter than 3 bytes are not
 * registered (they would mangle ordinary text).  The string is copied.
 */
void log_add_secret(const char *secret);
void log_clear_secrets(void);

/* Replaces registered secrets in line (NUL-terminated, at most size bytes
 * including NUL) in place.  Exposed for tests. */
void log_redact(char *line, size_t size);

void log_msg(enum log_level level, const char *fmt, ...) MM_PRINTF(2, 3);
#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warnx(...) log_msg(LOGL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)
/* Like log_warnx, with ": strerror(errno)" appended. */
void log_warn(const char *fmt, ...) MM_PRINTF(1, 2);

/* Not logged but handed back: sets *error_r to the malloc'ed message (NULL
 * when out of memory) and returns -1, for "return log_set_error(...)". */
int log_set_error(char **error_r, const char *fmt, ...) MM_PRINTF(2, 3);

#endif
