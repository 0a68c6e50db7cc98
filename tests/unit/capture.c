#include "capture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static FILE *tmp;
static int saved_fd = -1;
static char logbuf[65536];

void
capture_stdout_begin(void)
{
	assert_null(tmp);
	assert_non_null(tmp = tmpfile());
	fflush(stdout);
	assert_true((saved_fd = dup(STDOUT_FILENO)) >= 0);
	assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
}

char *
capture_stdout_end(void)
{
	long size;
	char *text;

	assert_non_null(tmp);
	fflush(stdout);
	assert_true(dup2(saved_fd, STDOUT_FILENO) >= 0);
	close(saved_fd);
	saved_fd = -1;
	assert_true((size = ftell(tmp)) >= 0);
	rewind(tmp);
	assert_non_null(text = malloc((size_t)size + 1));
	assert_int_equal(fread(text, 1, (size_t)size, tmp), (size_t)size);
	text[size] = '\0';
	fclose(tmp);
	tmp = NULL;
	return text;
}

static void
sink(enum log_level level, const char *line, void *arg)
{
	size_t len = strlen(logbuf);

	(void)arg;
	snprintf(logbuf + len, sizeof logbuf - len, "%s: %s\n",
	    log_level_name(level), line);
}

void
capture_log_begin(enum log_level level)
{
	logbuf[0] = '\0';
	log_set_sink(sink, NULL);
	log_set_level(level);
}

const char *
capture_log(void)
{
	return logbuf;
}

void
capture_log_clear(void)
{
	logbuf[0] = '\0';
}

void
capture_log_end(void)
{
	log_set_sink(NULL, NULL);
}

void
expect_in(const char *text, const char *want, const char *what)
{
	if (strstr(text, want) == NULL)
		fail_msg("no \"%s\" in %s:\n%s", want, what, text);
}

char *
capture_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *text;
	long size;

	if (f == NULL)
		return NULL;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	assert_true((size = ftell(f)) >= 0);
	rewind(f);
	assert_non_null(text = malloc((size_t)size + 1));
	assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
	text[size] = '\0';
	fclose(f);
	return text;
}

void
expect_log(const char *want)
{
	expect_in(capture_log(), want, "the log");
}
