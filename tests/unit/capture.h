/*
 * capture: what the code under test prints, for a test to assert on: its
 * stdout (through a temporary file put on fd 1) and its log lines (a log
 * sink, "level: line\n" each), and the files it wrote.  Failures to set
 * any of them up fail the test.
 */
#ifndef MM_TESTS_CAPTURE_H
#define MM_TESTS_CAPTURE_H

#include "log.h"

/* From now on stdout goes to a temporary file... */
void capture_stdout_begin(void);
/* ...until this, which puts it back and returns what was printed
 * (malloc'ed, NUL-terminated). */
char *capture_stdout_end(void);

/* Log lines up to level kept from now on (the buffer emptied). */
void capture_log_begin(enum log_level level);
/* What was logged since capture_log_begin() or capture_log_clear(). */
const char *capture_log(void);
void capture_log_clear(void);
/* Back to the default sink. */
void capture_log_end(void);

/* The whole file at path (malloc'ed, NUL-terminated), or NULL if it
 * cannot be opened. */
char *capture_file(const char *path);

/* Fails the test, showing text, unless want is in text (what: "stdout",
 * "the log"). */
void expect_in(const char *text, const char *want, const char *what);
/* expect_in() on what was logged since capture_log_begin(). */
void expect_log(const char *want);

#endif
