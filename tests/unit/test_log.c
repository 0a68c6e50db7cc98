/*
 * log: level filtering, redaction of registered secrets (several,
 * overlapping, at the end of a line, across the truncation point, without
 * limit on their number, rotated ones forgotten), and neutralised control
 * characters.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char last[LOG_LINE_MAX + 1];
static enum log_level last_level;
static int n_lines;

static void
capture_sink(enum log_level level, const char *line, void *arg)
{
	(void)arg;
	assert_true(strlen(line) < LOG_LINE_MAX);
	snprintf(last, sizeof last, "%s", line);
	last_level = level;
	n_lines++;
}

static int
setup(void **state)
{
	(void)state;
	log_set_sink(capture_sink, NULL);
	log_set_level(LOGL_DEBUG);
	log_clear_secrets();
	last[0] = '\0';
	n_lines = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_clear_secrets();
	log_set_sink(NULL, NULL);
	log_set_level(LOGL_INFO);
	return 0;
}

static void
test_level_filter(void **state)
{
	(void)state;
	log_set_level(LOGL_WARNING);
	assert_int_equal(log_get_level(), LOGL_WARNING);
	log_info("not shown");
	log_debug("not shown");
	assert_int_equal(n_lines, 0);
	log_warnx("shown %d", 1);
	assert_int_equal(n_lines, 1);
	assert_string_equal(last, "shown 1");
	assert_int_equal(last_level, LOGL_WARNING);
	log_error("also shown");
	assert_int_equal(n_lines, 2);
	assert_int_equal(last_level, LOGL_ERROR);

	log_set_level(LOGL_ERROR);
	log_warnx("hidden");
	assert_int_equal(n_lines, 2);
	log_set_level(LOGL_DEBUG);
	log_debug("debug");
	assert_int_equal(n_lines, 3);
}

static void
test_level_names(void **state)
{
	enum log_level l = LOGL_INFO;

	(void)state;
	assert_int_equal(log_level_parse("error", &l), 0);
	assert_int_equal(l, LOGL_ERROR);
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOGL_DEBUG);
	assert_int_equal(log_level_parse("verbose", &l), -1);
	assert_int_equal(l, LOGL_DEBUG);
	assert_string_equal(log_level_name(LOGL_WARNING), "warning");
}

static void
test_redact_several(void **state)
{
	(void)state;
	log_set_secret("o1", "hunter2");
	log_set_secret("o2", "tok-ABC");
	log_info("user=alice pass=hunter2 token=tok-ABC again hunter2");
	assert_string_equal(last, "user=alice pass=******** token=******** "
	    "again ********");
}

static void
test_redact_overlapping(void **state)
{
	(void)state;
	/* Two secrets sharing bytes: nothing of either survives. */
	log_set_secret("o3", "abcdef");
	log_set_secret("o4", "defghi");
	log_info("x abcdefghi y");
	assert_string_equal(last, "x ******** y");
	/* Repeated occurrences that touch become one mask. */
	log_set_secret("o5", "zzz");
	log_info("[zzzzzz]");
	assert_string_equal(last, "[********]");
}

static void
test_redact_line_end(void **state)
{
	(void)state;
	log_set_secret("o6", "s3cr3t");
	log_info("ends with s3cr3t");
	assert_string_equal(last, "ends with ********");
	log_info("s3cr3t");
	assert_string_equal(last, "********");
}

static void
test_short_secrets_ignored(void **state)
{
	(void)state;
	log_set_secret("o7", "ab");
	log_set_secret("o8", "");
	log_set_secret("o9", NULL);
	log_info("a tab and a cab");
	assert_string_equal(last, "a tab and a cab");
	log_set_secret("o10", "gone-soon");
	log_clear_secrets();
	log_info("gone-soon");
	assert_string_equal(last, "gone-soon");
}

static void
test_redact_across_truncation(void **state)
{
	static const char secret[] = "TopSecretValue42";
	char *msg;
	size_t fill;

	(void)state;
	log_set_secret("o11", secret);
	/* The secret straddles the cut at LOG_LINE_MAX: no prefix of it may
	 * remain in the line. */
	for (fill = LOG_LINE_MAX - 12; fill < LOG_LINE_MAX + 2; fill++) {
		msg = malloc(fill + sizeof secret + 8);
		memset(msg, 'x', fill);
		memcpy(msg + fill, secret, sizeof secret);
		log_info("%s", msg);
		free(msg);
		assert_true(strlen(last) <= LOG_LINE_MAX - 1);
		assert_null(strstr(last, "Top"));
		assert_true(strncmp(last, "xxxx", 4) == 0);
	}
}

static void
test_redact_copy_never_cut(void **state)
{
	char *copy;

	(void)state;
	assert_int_equal(log_set_secret("o12", "abc"), 0);
	/* The 8-byte mask is longer than the 3-byte secret it replaces. */
	copy = log_redact("abcabcXabcXabc");
	assert_non_null(copy);
	assert_string_equal(copy, "********X********X********");
	free(copy);
	copy = log_redact("");
	assert_string_equal(copy, "");
	free(copy);
}

static void
test_control_characters(void **state)
{
	char text[] = "a\x1b[2Jb\xc2\x9b" "31mc\x7f\xc3\xa9\xc2\xa0" "d\te";

	(void)state;
	log_info("line1\nforged: error\r\x1b[31mred\x7f");
	assert_string_equal(last, "line1?forged: error??[31mred?");
	/* A secret with a tab in it is still found (redaction comes first). */
	log_set_secret("o13", "tab\tbed");
	log_info("pw=tab\tbed");
	assert_string_equal(last, "pw=********");
	/* C1 controls (CSI as U+009B) go too; other UTF-8 stays. */
	log_sanitize(text);
	assert_string_equal(text, "a?[2Jb??31mc?\xc3\xa9\xc2\xa0" "d?e");
	log_info("x\xc2\x9b" "1m");
	assert_string_equal(last, "x??1m");
	/* Bytes that are no UTF-8 (a raw 0x9b is CSI to a terminal in an
	 * 8-bit locale) go as well, one '?' each. */
	log_info("y\x9b" "2Jz\xff\xe2\x82 \xe2\x82\xac");
	assert_string_equal(last, "y?2Jz??? \xe2\x82\xac");
}

/* Far more secrets than any fixed table would hold: every one is masked. */
static void
test_many_secrets_all_masked(void **state)
{
	char owner[32], secret[32];

	(void)state;
	for (int i = 0; i < 2000; i++) {
		snprintf(owner, sizeof owner, "account%d", i);
		snprintf(secret, sizeof secret, "pw-%d-end", i);
		assert_int_equal(log_set_secret(owner, secret), 0);
	}
	log_info("first pw-0-end middle pw-1000-end last pw-1999-end");
	assert_string_equal(last, "first ******** middle ******** last ********");
}

/* A rotated token stays masked while a connection may still use it, then
 * is forgotten; a token used again is kept. */
static void
test_rotated_secret_forgotten(void **state)
{
	(void)state;
	assert_int_equal(log_set_secret("acct", "token-1"), 0);
	assert_int_equal(log_set_secret("acct", "token-2"), 0);
	log_info("token-1 token-2");
	assert_string_equal(last, "******** ********");
	assert_int_equal(log_set_secret("acct", "token-3"), 0);
	log_info("token-1 token-2 token-3");
	assert_string_equal(last, "token-1 ******** ********");
	/* token-2 again: now the newest, token-3 the previous one. */
	assert_int_equal(log_set_secret("acct", "token-2"), 0);
	assert_int_equal(log_set_secret("acct", "token-4"), 0);
	log_info("token-2 token-3 token-4");
	assert_string_equal(last, "******** token-3 ********");
	/* The same token twice in a row counts once. */
	assert_int_equal(log_set_secret("acct", "token-4"), 0);
	log_info("token-2 token-4");
	assert_string_equal(last, "******** ********");
}

/* Forgetting an owner leaves another owner's copy of the same secret. */
static void
test_forget_secrets(void **state)
{
	(void)state;
	assert_int_equal(log_set_secret("a", "shared-pw"), 0);
	assert_int_equal(log_set_secret("b", "shared-pw"), 0);
	assert_int_equal(log_set_secret("b", "b-only-pw"), 0);
	log_forget_secrets("b");
	log_info("shared-pw b-only-pw");
	assert_string_equal(last, "******** b-only-pw");
	log_forget_secrets("a");
	log_forget_secrets("nobody");
	log_info("shared-pw");
	assert_string_equal(last, "shared-pw");
	/* An unnamed owner is one owner too. */
	assert_int_equal(log_set_secret(NULL, "no-owner"), 0);
	log_info("no-owner");
	assert_string_equal(last, "********");
	log_forget_secrets(NULL);
	log_info("no-owner");
	assert_string_equal(last, "no-owner");
}

static void
test_warn_appends_errno(void **state)
{
	(void)state;
	errno = ENOENT;
	log_warn("open %s", "/x");
	assert_string_equal(last, "open /x: No such file or directory");
	assert_int_equal(last_level, LOGL_WARNING);
}

static void
test_long_line_truncated(void **state)
{
	char *msg;

	(void)state;
	msg = malloc(3 * LOG_LINE_MAX);
	memset(msg, 'y', 3 * LOG_LINE_MAX - 1);
	msg[3 * LOG_LINE_MAX - 1] = '\0';
	log_error("%s", msg);
	free(msg);
	assert_int_equal(strlen(last), LOG_LINE_MAX - 1);
	assert_string_equal(last + LOG_LINE_MAX - 4, "...");
}

/* JOURNAL_STREAM counts only while it names the file (device and inode)
 * that is open: not a stale value inherited by a shell. */
static void
test_journal_stream_matches_fd(void **state)
{
	char path[] = "/tmp/test_log.XXXXXX", value[64];
	struct stat st;
	int fd;

	(void)state;
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(value, sizeof value, "%llu:%llu",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	assert_true(log_journal_stream_is(value, fd));
	snprintf(value, sizeof value, "%llu:%llu",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino + 1);
	assert_false(log_journal_stream_is(value, fd));
	assert_false(log_journal_stream_is("", fd));
	assert_false(log_journal_stream_is("12", fd));
	assert_false(log_journal_stream_is("1:x", fd));
	assert_false(log_journal_stream_is(" 1:2", fd));
	assert_false(log_journal_stream_is(NULL, fd));
	close(fd);
	unlink(path);
}

/* Plain mode (the configuration at start-up): errors as a compiler writes
 * them, other levels named, no timestamp; under the journal the "<N>"
 * priority prefix stays either way. */
static void
test_plain_mode(void **state)
{
	char path[] = "/tmp/test_log.XXXXXX", value[64], got[256];
	struct stat st;
	ssize_t n;
	int fd, saved;

	(void)state;
	assert_true((fd = mkstemp(path)) >= 0);
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	fflush(stderr);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	log_set_sink(NULL, NULL);
	log_set_level(LOGL_INFO);
	unsetenv("JOURNAL_STREAM");
	log_init();
	log_set_plain(true);
	log_error("t.ini:3: [a] host: bad");
	log_warnx("t.ini: readable");
	log_debug("not shown");
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(value, sizeof value, "%llu:%llu",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", value, 1);
	log_init();
	log_error("t.ini:3: [a] host: bad");
	log_warnx("t.ini: readable");
	log_set_plain(false);
	log_error("daemon");
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	log_init();

	n = pread(fd, got, sizeof got - 1, 0);
	assert_true(n >= 0);
	got[n] = '\0';
	assert_string_equal(got, "t.ini:3: [a] host: bad\n"
	    "warning: t.ini: readable\n"
	    "<3>t.ini:3: [a] host: bad\n"
	    "<4>t.ini: readable\n"
	    "<3>daemon\n");
	close(fd);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_level_filter, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_level_names, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_redact_several, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_redact_overlapping, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_redact_line_end, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_short_secrets_ignored,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_redact_across_truncation,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_redact_copy_never_cut, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_control_characters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_warn_appends_errno, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_long_line_truncated, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_many_secrets_all_masked,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotated_secret_forgotten,
		    setup, teardown),
		cmocka_unit_test(test_journal_stream_matches_fd),
		cmocka_unit_test_setup_teardown(test_plain_mode, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_forget_secrets, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
