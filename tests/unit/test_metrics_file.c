/*
 * metrics_file: the file is replaced whole (mode 0644, no temporary file
 * left), a failure to write is logged once until it changes or writing
 * works again, writes after a change keep their gap, and the figures come
 * from the account's state file.
 */
#include <sys/stat.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <ev.h>

#include "capture.h"
#include "metrics_file.h"
#include "mirror/state.h"
#include "testdir.h"

struct owner {
	struct metrics_account account;
	unsigned collected;
};

static char dir[64];

static int
collect(void *arg, struct metrics_process *p,
    const struct metrics_account ***a_r, size_t *n_r)
{
	struct owner *o = arg;
	const struct metrics_account **a = calloc(1, sizeof *a);

	if (a == NULL)
		return -1;
	a[0] = &o->account;
	/* Not the owner's to set: the writer's name wins. */
	p->config = "owner";
	p->accounts = 1;
	o->collected++;
	*a_r = a;
	*n_r = 1;
	return 0;
}

static size_t
entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mm-metrics-file.XXXXXX");
	assert_non_null(mkdtemp(dir));
	capture_log_begin(LOGL_DEBUG);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	capture_log_end();
	testdir_remove(dir);
	return 0;
}

static void
test_written_whole(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct owner o = { .account = { .name = "personal", .interval = 60,
		.last_duration = -1, .messages = 7 } };
	struct metrics_file *mf;
	struct stat st;
	char *path, *text;

	(void)state;
	assert_true(asprintf(&path, "%s/m.prom", dir) > 0);
	/* A mode the umask would not give. */
	umask(077);
	mf = metrics_file_new(loop, path, "/etc/mboxmirror/shard0.ini", collect,
	    &o);
	assert_non_null(mf);
	assert_string_equal(metrics_file_path(mf), path);
	metrics_file_write(mf);
	assert_int_equal(o.collected, 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(entries(dir), 1);
	text = capture_file(path);
	/* Labelled with the configuration's name. */
	expect_in(text, "mboxmirror_messages_mirrored_total"
	    "{config=\"shard0\",account=\"personal\"} 7\n", "the file");
	expect_in(text, "mboxmirror_accounts_configured"
	    "{config=\"shard0\",shard=\"0/1\"} 1\n", "the file");
	assert_null(strstr(text, "owner"));
	free(text);
	/* Again: replaced, not appended to. */
	o.account.messages = 8;
	metrics_file_write(mf);
	text = capture_file(path);
	expect_in(text, ",account=\"personal\"} 8\n", "the file");
	assert_null(strstr(text, ",account=\"personal\"} 7\n"));
	free(text);
	assert_int_equal(entries(dir), 1);
	metrics_file_free(&mf);
	assert_null(mf);
	umask(022);
	ev_loop_destroy(loop);
	free(path);
}

/* A directory that is missing: one error line, however many writes; then
 * one line when it works again. */
static void
test_failure_logged_once(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct owner o = { .account = { .name = "a", .last_duration = -1 } };
	struct metrics_file *mf;
	char *sub, *path;

	(void)state;
	assert_true(asprintf(&sub, "%s/missing", dir) > 0);
	assert_true(asprintf(&path, "%s/m.prom", sub) > 0);
	mf = metrics_file_new(loop, path, "m.ini", collect, &o);
	assert_non_null(mf);
	capture_log_clear();
	metrics_file_write(mf);
	expect_log("metrics: cannot create a file beside");
	expect_log(path);
	capture_log_clear();
	metrics_file_write(mf);
	metrics_file_write(mf);
	assert_string_equal(capture_log(), "");
	assert_int_equal(mkdir(sub, 0700), 0);
	metrics_file_write(mf);
	expect_log("writing");
	expect_log("works again");
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(entries(sub), 1);
	metrics_file_free(&mf);
	ev_loop_destroy(loop);
	free(path);
	free(sub);
}

static void
on_stop(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

/* A change right after a write waits for the gap; the changes in between
 * make one write. */
static void
test_changes_keep_the_gap(void **state)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct owner o = { .account = { .name = "a", .last_duration = -1 } };
	struct metrics_file *mf;
	ev_timer stop;
	char *path;

	(void)state;
	assert_true(asprintf(&path, "%s/m.prom", dir) > 0);
	mf = metrics_file_new(loop, path, "m.ini", collect, &o);
	/* The first change writes at once. */
	metrics_file_changed(mf);
	assert_int_equal(o.collected, 1);
	metrics_file_changed(mf);
	metrics_file_changed(mf);
	assert_int_equal(o.collected, 1);
	ev_timer_init(&stop, on_stop, 1.5, 0);
	ev_timer_start(loop, &stop);
	ev_run(loop, 0);
	assert_int_equal(o.collected, 2);
	/* NULL (no metrics_file) is harmless. */
	metrics_file_changed(NULL);
	metrics_file_write(NULL);
	metrics_file_free(&mf);
	ev_loop_destroy(loop);
	free(path);
}

/* The figures from the account's state file; none for an account without
 * one; a corrupt one leaves them as they were. */
static void
test_load_state(void **state)
{
	struct account_state st = { 0 };
	struct mailbox_state *mb;
	struct metrics_account a = { .name = "personal", .failures = 9,
		.messages = 99 };
	char *adir, *error = NULL, *file;
	FILE *fp;

	(void)state;
	metrics_file_load_state(&a, dir);
	assert_int_equal(a.messages, 0);
	assert_int_equal(a.failures, 0);
	assert_non_null(adir = state_account_dir(dir, "personal"));
	mb = state_get(&st, "INBOX");
	assert_non_null(mb);
	mb->uidvalidity = 1;
	mb->last_uid = 4;
	mb->messages = 4;
	mb->mbox_size = 4096;
	st.last_success = 1000;
	st.last_attempt = 1001;
	st.failures = 2;
	assert_int_equal(state_save(adir, &st, &error), 0);
	metrics_file_load_state(&a, dir);
	assert_int_equal(a.messages, 4);
	assert_int_equal(a.bytes, 4096);
	assert_int_equal(a.last_success, 1000);
	assert_int_equal(a.last_attempt, 1001);
	assert_int_equal(a.failures, 2);
	assert_true(asprintf(&file, "%s/state", adir) > 0);
	assert_non_null(fp = fopen(file, "w"));
	fputs("not a state file\n", fp);
	assert_int_equal(fclose(fp), 0);
	metrics_file_load_state(&a, dir);
	assert_int_equal(a.messages, 4);
	state_clear(&st);
	free(file);
	free(adir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_written_whole, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failure_logged_once, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_changes_keep_the_gap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_load_state, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
