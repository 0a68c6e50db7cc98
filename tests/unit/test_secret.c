/*
 * secret: password_command (first line, exit status, timeout that kills
 * the whole process group), password_file, inline; no error text ever holds
 * the secret, and a fetched secret is redacted from the log.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <semaphore.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <ev.h>

#include "secret.h"

#define SHORT_TIMEOUT_MS 1000

static char tmpdir[64];
static char last_line[LOG_LINE_MAX];

static void
capture_sink(enum log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	snprintf(last_line, sizeof last_line, "%s", line);
}

static void
run_ok(const char *command, const char *want)
{
	char *secret = NULL, *error = NULL;

	if (secret_run_command(command, 10000, &secret, &error) != 0)
		fail_msg("%s: %s", command, error);
	assert_null(error);
	assert_string_equal(secret, want);
	secret_free(&secret);
	assert_null(secret);
}

/* Fails with an error containing what, and never containing leak. */
static void
run_fail(const char *command, unsigned timeout_ms, const char *what,
    const char *leak)
{
	char *secret = NULL, *error = NULL;

	assert_int_equal(secret_run_command(command, timeout_ms, &secret,
	    &error), -1);
	assert_null(secret);
	assert_non_null(error);
	if (strstr(error, what) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", error, what);
	if (leak != NULL)
		assert_null(strstr(error, leak));
	assert_null(strchr(error, '\n'));
	free(error);
}

static char *
write_file(const char *name, const char *text, size_t len)
{
	char *path;
	int fd;

	assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return path;
}

static void
test_command_first_line(void **state)
{
	(void)state;
	run_ok("printf 'line-one\\nline-two\\n'", "line-one");
	run_ok("printf 'crlf-secret\\r\\nmore\\r\\n'", "crlf-secret");
	run_ok("printf no-newline", "no-newline");
	run_ok("echo 'with spaces  '", "with spaces  ");
}

static void
test_command_large_output_drained(void **state)
{
	(void)state;
	/* Far more than a pipe holds after the first line: still read to the
	 * end, so the command exits and its status counts. */
	run_ok("echo tok; head -c 300000 /dev/zero", "tok");
}

static void
test_command_first_line_too_long(void **state)
{
	(void)state;
	run_fail("head -c 70000 /dev/zero | tr '\\000' a", 10000,
	    "first line is longer than 65536 bytes", "aaaa");
}

static void
test_command_exit_status(void **state)
{
	(void)state;
	run_fail("echo hunter2-leaked; exit 3", 10000,
	    "password_command exited with status 3", "hunter2");
	run_fail("/nonexistent/helper", 10000, "status 127", NULL);
}

static void
test_command_killed(void **state)
{
	(void)state;
	run_fail("echo s3cret-value; kill -9 $$", 10000,
	    "password_command was killed by signal 9", "s3cret");
}

static void
test_command_empty(void **state)
{
	(void)state;
	run_fail("true", 10000, "password_command gave an empty secret",
	    NULL);
	run_fail("echo; echo second", 10000, "gave an empty secret",
	    "second");
	/* stdin is /dev/null: cat sees EOF at once instead of hanging. */
	run_fail("cat", 10000, "gave an empty secret", NULL);
}

static void
test_command_timeout_kills_group(void **state)
{
	char *pidfile, cmd[256], buf[32];
	int status, fd;
	ssize_t n;
	pid_t bg;

	(void)state;
	run_fail("sleep 30", 250, "password_command timed out after 250ms "
	    "and was killed", NULL);

	/* Orphans of the command come to us, so we can see how they end. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	assert_true(asprintf(&pidfile, "%s/bg.pid", tmpdir) > 0);
	snprintf(cmd, sizeof cmd, "sleep 60 & echo $! > %s; echo partial; "
	    "wait", pidfile);
	run_fail(cmd, SHORT_TIMEOUT_MS, "timed out after 1s", "partial");

	/* The background sleep was in the group and got SIGKILL. */
	fd = open(pidfile, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof buf - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	close(fd);
	bg = (pid_t)atoi(buf);
	assert_true(bg > 0);
	assert_int_equal(waitpid(bg, &status, 0), bg);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	/* The command itself was reaped: no child is left. */
	assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	unlink(pidfile);
	free(pidfile);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

static void
test_command_sigpipe_default(void **state)
{
	struct sigaction sa, old;
	char *secret = NULL, *error = NULL;
	unsigned long long ignored;

	(void)state;
	/* The daemon ignores SIGPIPE; its commands must not inherit that. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
	assert_int_equal(secret_run_command("sed -n 's/^SigIgn:[[:space:]]*//p'"
	    " /proc/self/status", 10000, &secret, &error), 0);
	assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
	ignored = strtoull(secret, NULL, 16);
	assert_int_equal(ignored & (1ull << (SIGPIPE - 1)), 0);
	secret_free(&secret);
}

static void
test_file_first_line_crlf(void **state)
{
	struct account a;
	char *path, *secret = NULL, *error = NULL;

	(void)state;
	path = write_file("pw", "filesecret\r\nsecond line\r\n", 25);
	memset(&a, 0, sizeof a);
	a.secret_source = SECRET_FILE;
	a.secret = path;
	assert_int_equal(secret_fetch(&a, &secret, &error), 0);
	assert_string_equal(secret, "filesecret");
	secret_free(&secret);
	unlink(path);
	free(path);
}

static void
test_file_errors(void **state)
{
	struct account a;
	char *path, *secret = NULL, *error = NULL;

	(void)state;
	memset(&a, 0, sizeof a);
	a.secret_source = SECRET_FILE;
	assert_true(asprintf(&a.secret, "%s/missing", tmpdir) > 0);
	assert_int_equal(secret_fetch(&a, &secret, &error), -1);
	assert_null(secret);
	assert_true(strncmp(error, "password_file /", 15) == 0);
	assert_non_null(strstr(error, "/missing: No such file or directory"));
	free(error);
	free(a.secret);

	path = write_file("empty", "\nsecond-line-not-used\n", 22);
	a.secret = path;
	assert_int_equal(secret_fetch(&a, &secret, &error), -1);
	assert_non_null(strstr(error, "gave an empty secret"));
	assert_null(strstr(error, "second-line"));
	free(error);
	unlink(path);
	free(path);

	a.secret = tmpdir;
	assert_int_equal(secret_fetch(&a, &secret, &error), -1);
	assert_non_null(strstr(error, "not a regular file"));
	free(error);
}

static void
test_inline_and_redaction(void **state)
{
	struct account a;
	char *secret = NULL, *error = NULL;

	(void)state;
	log_set_sink(capture_sink, NULL);
	memset(&a, 0, sizeof a);
	a.secret_source = SECRET_INLINE;
	a.secret = "inline-pass-123";
	assert_int_equal(secret_fetch(&a, &secret, &error), 0);
	assert_string_equal(secret, "inline-pass-123");
	assert_ptr_not_equal(secret, a.secret);
	log_error("login as u with %s failed", secret);
	assert_string_equal(last_line, "login as u with ******** failed");
	secret_free(&secret);

	/* A fetched command secret is registered too. */
	a.secret_source = SECRET_COMMAND;
	a.secret = "echo cmd-token-xyz";
	assert_int_equal(secret_fetch(&a, &secret, &error), 0);
	log_error("token=%s", secret);
	assert_string_equal(last_line, "token=********");
	secret_free(&secret);
	log_clear_secrets();
	log_set_sink(NULL, NULL);
}

static int
group_setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/mm-test-secret-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

/* The asynchronous form: the loop keeps running while the command does. */
struct async_result {
	int calls;
	char *secret;
	char *error;
};

static void
async_done(char *secret, char *error, void *arg)
{
	struct async_result *r = arg;

	r->calls++;
	r->secret = secret;
	r->error = error;
}

static void
on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	int *ticks = t->data;

	(void)loop;
	(void)revents;
	(*ticks)++;
}

static void
test_async_command_does_not_block(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct account a = { .secret_source = SECRET_COMMAND,
	    .secret = "sleep 0.5; echo async-s3cret" };
	struct async_result r = { 0 };
	struct secret_job *job;
	ev_timer tick;
	int ticks = 0;

	(void)state;
	ev_timer_init(&tick, on_tick, 0.05, 0.05);
	tick.data = &ticks;
	ev_timer_start(loop, &tick);
	job = secret_fetch_async(loop, &a, async_done, &r);
	assert_non_null(job);
	assert_int_equal(r.calls, 0);	/* never from inside the call */
	while (r.calls == 0)
		ev_run(loop, EVRUN_ONCE);
	assert_int_equal(r.calls, 1);
	assert_null(r.error);
	assert_string_equal(r.secret, "async-s3cret");
	/* The loop went on while the command slept. */
	assert_true(ticks >= 5);
	secret_free(&r.secret);
	ev_timer_stop(loop, &tick);
	ev_loop_destroy(loop);
}

static void
test_async_error_and_inline(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct account bad = { .secret_source = SECRET_COMMAND,
	    .secret = "exit 3" };
	struct account inl = { .secret_source = SECRET_INLINE,
	    .secret = "inline-pw" };
	struct async_result r1 = { 0 }, r2 = { 0 };

	(void)state;
	assert_non_null(secret_fetch_async(loop, &bad, async_done, &r1));
	assert_non_null(secret_fetch_async(loop, &inl, async_done, &r2));
	assert_int_equal(r2.calls, 0);
	while (r1.calls == 0 || r2.calls == 0)
		ev_run(loop, EVRUN_ONCE);
	assert_null(r1.secret);
	assert_non_null(r1.error);
	assert_non_null(strstr(r1.error, "status 3"));
	assert_string_equal(r2.secret, "inline-pw");
	free(r1.error);
	secret_free(&r2.secret);
	ev_loop_destroy(loop);
}

/* A NUL inside the first line is refused: a secret cut short there would
 * be another secret. */
static void
test_file_nul(void **state)
{
	struct account a;
	char *path, *secret = NULL, *error = NULL;

	(void)state;
	path = write_file("nul", "ab\0cd\n", 6);
	memset(&a, 0, sizeof a);
	a.secret_source = SECRET_FILE;
	a.secret = path;
	assert_int_equal(secret_fetch(&a, &secret, &error), -1);
	assert_null(secret);
	assert_non_null(strstr(error, "contains a NUL byte"));
	free(error);
	unlink(path);
	free(path);
}

/* An empty inline password and an unknown source are errors, both
 * directly and off the loop. */
static void
test_inline_empty_and_no_source(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct account a = { .name = "acct", .secret_source = SECRET_INLINE,
	    .secret = "" };
	struct async_result r = { 0 };
	char *secret = NULL, *error = NULL;

	(void)state;
	assert_int_equal(secret_fetch(&a, &secret, &error), -1);
	assert_null(secret);
	assert_string_equal(error, "password is empty");
	free(error);

	assert_non_null(secret_fetch_async(loop, &a, async_done, &r));
	while (r.calls == 0)
		ev_run(loop, EVRUN_ONCE);
	assert_null(r.secret);
	assert_string_equal(r.error, "password is empty");
	free(r.error);
	ev_loop_destroy(loop);

	a.secret_source = (enum secret_source)7;
	a.secret = "x";
	assert_int_equal(secret_fetch(&a, &secret, &error), -1);
	assert_null(secret);
	assert_string_equal(error, "no secret source");
	free(error);
}

static void
test_async_cancel(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct account a = { .secret_source = SECRET_COMMAND,
	    .secret = "sleep 0.2; echo late" };
	struct async_result r = { 0 };
	struct secret_job *job;

	(void)state;
	job = secret_fetch_async(loop, &a, async_done, &r);
	assert_non_null(job);
	secret_job_cancel(&job);
	assert_null(job);
	/* The worker finishes and frees on its own; done never comes. */
	usleep(400 * 1000);
	ev_run(loop, EVRUN_NOWAIT);
	assert_int_equal(r.calls, 0);
	ev_loop_destroy(loop);
}

/* A password_command that yields a new token each time: the account's
 * older tokens are forgotten by the log, another account's are not. */
static void
test_async_rotated_token_forgotten(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct account a = { .name = "rot", .secret_source = SECRET_COMMAND };
	struct account other = { .name = "other",
	    .secret_source = SECRET_INLINE, .secret = "rot-token-1" };
	static const char *const commands[] = { "echo rot-token-1",
	    "echo rot-token-2", "echo rot-token-3" };
	struct async_result r;

	(void)state;
	log_set_sink(capture_sink, NULL);
	for (size_t i = 0; i < 3; i++) {
		a.secret = (char *)commands[i];
		memset(&r, 0, sizeof r);
		assert_non_null(secret_fetch_async(loop, &a, async_done, &r));
		while (r.calls == 0)
			ev_run(loop, EVRUN_ONCE);
		assert_non_null(r.secret);
		secret_free(&r.secret);
		if (i == 1) {
			log_error("1=rot-token-1 2=rot-token-2");
			assert_string_equal(last_line, "1=******** 2=********");
		}
	}
	log_error("1=rot-token-1 2=rot-token-2 3=rot-token-3");
	assert_string_equal(last_line, "1=rot-token-1 2=******** 3=********");
	/* The same string as another account's password stays masked. */
	memset(&r, 0, sizeof r);
	assert_non_null(secret_fetch_async(loop, &other, async_done, &r));
	while (r.calls == 0)
		ev_run(loop, EVRUN_ONCE);
	secret_free(&r.secret);
	log_error("1=rot-token-1");
	assert_string_equal(last_line, "1=********");
	log_clear_secrets();
	log_set_sink(NULL, NULL);
	ev_loop_destroy(loop);
}

/*
 * The worker stops right after signalling the loop, until the test lets it
 * go: the loop gets every chance to deliver (or cancel) and release the job
 * first.  The worker must touch nothing of the job that the loop let go.
 */
static sem_t worker_signalled, worker_go, worker_exited;

static void
hold_worker(enum secret_worker_point point)
{
	if (point == SECRET_WORKER_SIGNALLED) {
		sem_post(&worker_signalled);
		while (sem_wait(&worker_go) == -1 && errno == EINTR)
			continue;
	} else
		sem_post(&worker_exited);
}

static void
wait_sem(sem_t *sem)
{
	while (sem_wait(sem) == -1 && errno == EINTR)
		continue;
}

static void
test_async_worker_outlives_delivery(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct account a = { .name = "uaf", .secret_source = SECRET_COMMAND,
	    .secret = "echo uaf-s3cret" };
	struct async_result r;

	(void)state;
	sem_init(&worker_signalled, 0, 0);
	sem_init(&worker_go, 0, 0);
	sem_init(&worker_exited, 0, 0);
	secret_set_worker_hook(hold_worker);
	for (int i = 0; i < 20; i++) {
		memset(&r, 0, sizeof r);
		assert_non_null(secret_fetch_async(loop, &a, async_done, &r));
		/* Delivered, and the loop's side of the job let go... */
		while (r.calls == 0)
			ev_run(loop, EVRUN_ONCE);
		assert_string_equal(r.secret, "uaf-s3cret");
		secret_free(&r.secret);
		wait_sem(&worker_signalled);
		/* ...before the worker goes on. */
		sem_post(&worker_go);
		wait_sem(&worker_exited);
	}
	secret_set_worker_hook(NULL);
	ev_loop_destroy(loop);
}

static void
test_async_cancel_after_signal(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct account a = { .name = "uaf", .secret_source = SECRET_COMMAND,
	    .secret = "echo late-s3cret" };
	struct async_result r = { 0 };
	struct secret_job *job;

	(void)state;
	sem_init(&worker_signalled, 0, 0);
	sem_init(&worker_go, 0, 0);
	sem_init(&worker_exited, 0, 0);
	secret_set_worker_hook(hold_worker);
	for (int i = 0; i < 20; i++) {
		job = secret_fetch_async(loop, &a, async_done, &r);
		assert_non_null(job);
		/* Signalled but not delivered: the owner gives up. */
		wait_sem(&worker_signalled);
		secret_job_cancel(&job);
		sem_post(&worker_go);
		wait_sem(&worker_exited);
		ev_run(loop, EVRUN_NOWAIT);
		assert_int_equal(r.calls, 0);
	}
	secret_set_worker_hook(NULL);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_first_line),
		cmocka_unit_test(test_command_large_output_drained),
		cmocka_unit_test(test_command_first_line_too_long),
		cmocka_unit_test(test_command_exit_status),
		cmocka_unit_test(test_command_killed),
		cmocka_unit_test(test_command_empty),
		cmocka_unit_test(test_command_timeout_kills_group),
		cmocka_unit_test(test_command_sigpipe_default),
		cmocka_unit_test(test_file_first_line_crlf),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_file_nul),
		cmocka_unit_test(test_inline_empty_and_no_source),
		cmocka_unit_test(test_inline_and_redaction),
		cmocka_unit_test(test_async_command_does_not_block),
		cmocka_unit_test(test_async_error_and_inline),
		cmocka_unit_test(test_async_cancel),
		cmocka_unit_test(test_async_rotated_token_forgotten),
		cmocka_unit_test(test_async_worker_outlives_delivery),
		cmocka_unit_test(test_async_cancel_after_signal),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
