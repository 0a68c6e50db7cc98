/*
 * metrics_file: writing [general] metrics_file; see metrics_file.h.
 */
#include "metrics_file.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mirror/state.h"
#include "util/fs.h"

struct metrics_file {
	struct ev_loop *loop;
	char *path;
	char *config;		/* metrics_config_name() */
	metrics_collect_fn *collect;
	void *arg;
	ev_timer period;	/* every METRICS_FILE_PERIOD seconds */
	ev_timer pending;	/* a change waits for the gap to pass */
	ev_tstamp last_write;	/* ev_now() of the last write; 0: none */
	unsigned gap;		/* metrics_write_gap() at the last write */
	char *last_error;	/* logged already; NULL: the last write worked */
};

static void write_now(struct metrics_file *);

/* Logs error unless it is the one logged last; NULL: writing works. */
static void
note_error(struct metrics_file *mf, char *error)
{
	if (error == NULL) {
		if (mf->last_error != NULL)
			log_info("metrics: writing %s works again", mf->path);
		free(mf->last_error);
		mf->last_error = NULL;
		return;
	}
	if (mf->last_error == NULL || strcmp(mf->last_error, error) != 0)
		log_error("metrics: %s", error);
	free(mf->last_error);
	mf->last_error = error;
}

/* The temporary file's name: ".NAME.XXXXXX" beside path. */
static char *
temp_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *t;

	if (slash == NULL)
		return asprintf(&t, ".%s.XXXXXX", path) == -1 ? NULL : t;
	return asprintf(&t, "%.*s/.%s.XXXXXX", (int)(slash - path), path,
	    slash + 1) == -1 ? NULL : t;
}

/* Replaces path with text by rename.  0, or -1 with *error_r. */
static int
replace_file(const char *path, const char *text, size_t len, char **error_r)
{
	char *tmp = temp_name(path);
	const char *step;
	int fd;

	*error_r = NULL;
	if (tmp == NULL)
		return log_set_error(error_r, "out of memory");
	/* O_CLOEXEC: the secret worker's thread may fork a password_command
	 * meanwhile, which must not inherit the file. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		(void)log_set_error(error_r, "cannot create a file beside %s: "
		    "%s", path, strerror(errno));
		free(tmp);
		return -1;
	}
	step = fchmod(fd, 0644) != 0 ? "chmod" :
	    fs_write_all(fd, text, len) != 0 ? "write" : NULL;
	if (close(fd) != 0 && step == NULL)
		step = "close";
	if (step == NULL && rename(tmp, path) != 0)
		step = "rename";
	if (step != NULL) {
		(void)log_set_error(error_r, "%s: %s %s: %s", path, step, tmp,
		    strerror(errno));
		(void)unlink(tmp);
	}
	free(tmp);
	return step == NULL ? 0 : -1;
}

static void
write_now(struct metrics_file *mf)
{
	struct metrics_process p = { 0 };
	const struct metrics_account **a = NULL;
	size_t n = 0, len = 0;
	char *text, *error = NULL;

	ev_timer_stop(mf->loop, &mf->pending);
	mf->last_write = ev_now(mf->loop);
	if (mf->collect(mf->arg, &p, &a, &n) != 0) {
		note_error(mf, strdup("out of memory"));
		return;
	}
	p.config = mf->config;
	mf->gap = metrics_write_gap(n);
	text = metrics_format(&p, a, n, &len);
	free(a);
	if (text == NULL) {
		note_error(mf, strdup("out of memory"));
		return;
	}
	if (replace_file(mf->path, text, len, &error) == 0)
		note_error(mf, NULL);
	else
		note_error(mf, error != NULL ? error : strdup("out of memory"));
	free(text);
}

static void
on_period(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	write_now(t->data);
}

static void
on_pending(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	write_now(t->data);
}

struct metrics_file *
metrics_file_new(struct ev_loop *loop, const char *path,
    const char *config_path, metrics_collect_fn *collect, void *arg)
{
	struct metrics_file *mf;

	if ((mf = calloc(1, sizeof *mf)) == NULL)
		return NULL;
	if ((mf->path = strdup(path)) == NULL ||
	    (mf->config = metrics_config_name(config_path)) == NULL) {
		free(mf->path);
		free(mf);
		return NULL;
	}
	mf->loop = loop;
	mf->collect = collect;
	mf->arg = arg;
	mf->gap = 1;
	ev_timer_init(&mf->period, on_period, METRICS_FILE_PERIOD,
	    METRICS_FILE_PERIOD);
	mf->period.data = mf;
	ev_timer_start(loop, &mf->period);
	/* The timer is not refreshed by changes: a write at least every
	 * period, whatever else happens. */
	ev_init(&mf->pending, on_pending);
	mf->pending.data = mf;
	return mf;
}

void
metrics_file_free(struct metrics_file **mfp)
{
	struct metrics_file *mf = *mfp;

	if (mf == NULL)
		return;
	*mfp = NULL;
	ev_timer_stop(mf->loop, &mf->period);
	ev_timer_stop(mf->loop, &mf->pending);
	free(mf->last_error);
	free(mf->config);
	free(mf->path);
	free(mf);
}

void
metrics_file_changed(struct metrics_file *mf)
{
	ev_tstamp due;

	if (mf == NULL || ev_is_active(&mf->pending))
		return;
	due = mf->last_write + mf->gap - ev_now(mf->loop);
	if (mf->last_write == 0 || due <= 0) {
		write_now(mf);
		return;
	}
	ev_timer_set(&mf->pending, due, 0);
	ev_timer_start(mf->loop, &mf->pending);
}

void
metrics_file_write(struct metrics_file *mf)
{
	if (mf != NULL)
		write_now(mf);
}

const char *
metrics_file_path(const struct metrics_file *mf)
{
	return mf->path;
}

void
metrics_file_load_state(struct metrics_account *a, const char *state_dir)
{
	struct account_state st = { 0 };
	char *dir, *error = NULL;

	if ((dir = state_account_dir(state_dir, a->name)) == NULL)
		return;
	if (state_load(dir, &st, &error) == 0)
		metrics_from_state(a, &st);
	else
		log_debug("metrics: account %s: %s", a->name,
		    error != NULL ? error : "out of memory");
	state_clear(&st);
	free(error);
	free(dir);
}
