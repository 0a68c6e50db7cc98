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
 * timestamp and the level name (both left out in plain mode, below).
 */
typedef void log_sink_fn(enum log_level level, const char *line, void *arg);

/* Reads the environment: journald priority prefixes ("<N>") when
 * JOURNAL_STREAM names the file stderr is (systemd.exec(5)). */
void log_init(void);
/* Whether value ("DEVICE:INODE", as in JOURNAL_STREAM) names the file
 * open as fd. */
bool log_journal_stream_is(const char *value, int fd);
/*
 * While on, the default sink writes no timestamp, and no level name for
 * errors, so that "FILE:LINE: message" lines read as a compiler's do (for
 * the configuration checked at start-up and by --check-config); other levels
 * keep their name ("warning: ...").  The journald "<N>" prefix is written
 * either way.
 */
void log_set_plain(bool on);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error|warning|info|debug"; returns 0, or -1 if unknown. */
int log_level_parse(const char *name, enum log_level *level_r);
const char *log_level_name(enum log_level level);
/* NULL restores the default stderr sink. */
void log_set_sink(log_sink_fn *sink, void *arg);

/*
 * Registers owner's newest secret (a password or token; owner names who uses
 * it, such as the account; NULL stands for ""): from now on every occurrence
 * of it in a log line is replaced by "********".  Each owner keeps its two
 * newest distinct secrets (a connection that fetched the previous one may
 * still be logging in); an older one is wiped and forgotten, so a rotated
 * token does not linger.  There is no limit on the number of owners.
 * Secrets shorter than 3 bytes are ignored (they would mangle ordinary
 * text).  Both strings are copied.  Returns 0, or -1 when out of memory: the
 * secret is then not masked and must not be used.
 */
int log_set_secret(const char *owner, const char *secret);
/* Wipes and forgets owner's secrets (an account stopped or removed). */
void log_forget_secrets(const char *owner);
/* Wipes and forgets every owner's secrets. */
void log_clear_secrets(void);

/* A malloc'ed copy of text with every registered secret masked as in a log
 * line, never cut (NULL when out of memory): for text kept beyond a log
 * line, such as the last error in a state file. */
char *log_redact(const char *text);

/* Replaces control characters in text, in place, with '?': C0 controls,
 * DEL, UTF-8 encoded C1 controls (U+0080..U+009F, a '?' per byte), and
 * every byte that is not part of a strict UTF-8 character, so that text
 * from a server can neither forge a line nor send escape sequences to a
 * terminal (in any locale).  Every log line goes through it. */
void log_sanitize(char *text);

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
