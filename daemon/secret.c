/*
 * secret: password_command, password_file or inline password.  Buffers that
 * held a secret are wiped before they are freed, and no error message ever
 * quotes what a command printed or a file held.
 */
#include "secret.h"

#include <pthread.h>

#include <ev.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The first line of buf (without CR/LF) as a new string. */
static int
first_line(const char *what, const char *buf, size_t len, char **secret_r,
    char **error_r)
{
	const char *nl = memchr(buf, '\n', len);
	size_t n = nl != NULL ? (size_t)(nl - buf) : len;

	if (nl == NULL && len == SECRET_MAX)
		return log_set_error(error_r, "%s: the first line is longer than %d "
		    "bytes", what, SECRET_MAX);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (memchr(buf, '\0', n) != NULL)
		return log_set_error(error_r, "%s: the secret contains a NUL byte",
		    what);
	if (n == 0)
		return log_set_error(error_r, "%s gave an empty secret", what);
	if ((*secret_r = strndup(buf, n)) == NULL)
		return log_set_error(error_r, "%s: out of memory", what);
	return 0;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the child: never returns. */
static void
exec_command(const char *command, int devnull, int out)
{
	struct sigaction sa;
	sigset_t none;

	setpgid(0, 0);
	/* An ignored SIGPIPE would survive exec and confuse the command. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(devnull, STDIN_FILENO) == -1 ||
	    dup2(out, STDOUT_FILENO) == -1)
		_exit(127);
	execl("/bin/sh", "sh", "-c", command, (char *)NULL);
	_exit(127);
}

/*
 * Reads the child's stdout until EOF or the deadline; keeps the first
 * SECRET_MAX bytes and drains the rest so the command never blocks on a
 * full pipe.  Returns 0 at EOF, 1 on timeout, -1 with errno on error.
 */
static int
read_output(int fd, long long deadline, char *buf, size_t *len_r)
{
	char discard[4096];
	struct pollfd pfd;
	long long left;
	ssize_t n;
	int ret = 0;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0) {
			ret = 1;
			break;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			ret = -1;
			break;
		}
		if (n == 0)
			continue;
		if (*len_r < SECRET_MAX)
			n = read(fd, buf + *len_r, SECRET_MAX - *len_r);
		else
			n = read(fd, discard, sizeof discard);
		if (n == 0)
			break;
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1) {
			ret = -1;
			break;
		}
		if (*len_r < SECRET_MAX)
			*len_r += (size_t)n;
	}
	explicit_bzero(discard, sizeof discard);
	return ret;
}

/* Waits for pid until the deadline: 0 and its status, 1 on timeout, -1. */
static int
wait_child(pid_t pid, long long deadline, int *status)
{
	struct timespec pause = { 0, 5 * 1000 * 1000 };
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline)
			return 1;
		nanosleep(&pause, NULL);
	}
}

int
secret_run_command(const char *command, unsigned timeout_ms, char **secret_r,
    char **error_r)
{
	int pipefd[2] = { -1, -1 }, devnull = -1, status = 0, r, ret = -1;
	long long deadline;
	char *buf = NULL;
	size_t len = 0;
	pid_t pid = -1;

	*secret_r = NULL;
	*error_r = NULL;
	if ((buf = malloc(SECRET_MAX)) == NULL) {
		log_set_error(error_r, "password_command: out of memory");
		goto out;
	}
	if (pipe2(pipefd, O_CLOEXEC) == -1 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		log_set_error(error_r, "password_command: %s", strerror(errno));
		goto out;
	}
	if ((pid = fork()) == -1) {
		log_set_error(error_r, "password_command: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		exec_command(command, devnull, pipefd[1]);
	/* Also here, so a kill(-pid) cannot race the child's own setpgid. */
	setpgid(pid, pid);
	close(pipefd[1]);
	pipefd[1] = -1;

	deadline = now_ms() + timeout_ms;
	r = read_output(pipefd[0], deadline, buf, &len);
	if (r == 0)
		r = wait_child(pid, deadline, &status);
	if (r != 0) {
		int saved = errno;

		kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			continue;
		if (r == 1 && timeout_ms % 1000 == 0)
			log_set_error(error_r, "password_command timed out after %us "
			    "and was killed", timeout_ms / 1000);
		else if (r == 1)
			log_set_error(error_r, "password_command timed out after %ums "
			    "and was killed", timeout_ms);
		else
			log_set_error(error_r, "password_command: %s", strerror(saved));
		goto out;
	}
	if (WIFSIGNALED(status)) {
		log_set_error(error_r, "password_command was killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		log_set_error(error_r, "password_command exited with status %d%s",
		    WEXITSTATUS(status), WEXITSTATUS(status) == 127 ?
		    " (command not found?)" : "");
		goto out;
	}
	ret = first_line("password_command", buf, len, secret_r, error_r);
 out:
	if (buf != NULL) {
		explicit_bzero(buf, SECRET_MAX);
		free(buf);
	}
	if (pipefd[0] != -1)
		close(pipefd[0]);
	if (pipefd[1] != -1)
		close(pipefd[1]);
	if (devnull != -1)
		close(devnull);
	return ret;
}

static int
read_secret_file(const char *path, char **secret_r, char **error_r)
{
	struct stat st;
	char *buf = NULL, *what = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, ret = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return log_set_error(error_r, "password_file %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) == -1) {
		log_set_error(error_r, "password_file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_set_error(error_r, "password_file %s: not a regular file", path);
		goto out;
	}
	if ((buf = malloc(SECRET_MAX)) == NULL) {
		log_set_error(error_r, "password_file %s: out of memory", path);
		goto out;
	}
	while (len < SECRET_MAX && memchr(buf, '\n', len) == NULL) {
		n = read(fd, buf + len, SECRET_MAX - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			log_set_error(error_r, "password_file %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (asprintf(&what, "password_file %s", path) < 0) {
		what = NULL;
		log_set_error(error_r, "password_file: out of memory");
		goto out;
	}
	ret = first_line(what, buf, len, secret_r, error_r);
 out:
	if (buf != NULL) {
		explicit_bzero(buf, SECRET_MAX);
		free(buf);
	}
	free(what);
	close(fd);
	return ret;
}

int
secret_fetch(const struct account *account, char **secret_r, char **error_r)
{
	int ret;

	*secret_r = NULL;
	*error_r = NULL;
	switch (account->secret_source) {
	case SECRET_COMMAND:
		ret = secret_run_command(account->secret,
		    SECRET_COMMAND_TIMEOUT * 1000, secret_r, error_r);
		break;
	case SECRET_FILE:
		ret = read_secret_file(account->secret, secret_r, error_r);
		break;
	case SECRET_INLINE:
		if (account->secret == NULL || *account->secret == '\0')
			ret = log_set_error(error_r, "password is empty");
		else if ((*secret_r = strdup(account->secret)) == NULL)
			ret = log_set_error(error_r, "password: out of memory");
		else
			ret = 0;
		break;
	default:
		ret = log_set_error(error_r, "no secret source");
		break;
	}
	if (ret == 0 && log_set_secret(account->name, *secret_r) != 0) {
		/* A secret the log cannot mask is not used. */
		secret_free(secret_r);
		ret = log_set_error(error_r, "no memory to keep the secret out "
		    "of the log");
	}
	return ret;
}

void
secret_free(char **secret)
{
	if (*secret == NULL)
		return;
	explicit_bzero(*secret, strlen(*secret));
	free(*secret);
	*secret = NULL;
}

/* The asynchronous form */

/*
 * Two parties hold a job: the loop side (until done is called or the job is
 * cancelled) and, for a password_command, the worker thread.  Whoever lets
 * go last frees it, so neither touches memory the other has released.
 */
struct secret_job {
	pthread_mutex_t lock;
	atomic_uint refs;	/* the loop side and the worker */
	bool abandoned;		/* under lock: cancelled or delivered */
	bool finished;		/* under lock: secret or error is set */
	char *secret, *error;	/* under lock */

	struct ev_loop *loop;
	ev_async wake;
	struct account account;	/* the fields secret_fetch reads, and name */
	secret_done_fn *done;
	void *arg;
};

static _Atomic(secret_worker_hook_fn *) worker_hook;

void
secret_set_worker_hook(secret_worker_hook_fn *fn)
{
	atomic_store(&worker_hook, fn);
}

static void
call_worker_hook(enum secret_worker_point point)
{
	secret_worker_hook_fn *fn = atomic_load(&worker_hook);

	if (fn != NULL)
		fn(point);
}

static void
job_unref(struct secret_job *job)
{
	if (atomic_fetch_sub(&job->refs, 1) != 1)
		return;
	secret_free(&job->secret);
	free(job->error);
	free(job->account.name);
	free(job->account.secret);
	pthread_mutex_destroy(&job->lock);
	free(job);
}

static void
on_job_wake(struct ev_loop *loop, ev_async *w, int revents)
{
	struct secret_job *job = w->data;
	secret_done_fn *done;
	char *secret, *error;
	void *arg;

	(void)revents;
	pthread_mutex_lock(&job->lock);
	if (!job->finished || job->abandoned) {
		/* Not ours: never deliver twice. */
		pthread_mutex_unlock(&job->lock);
		return;
	}
	job->abandoned = true;
	secret = job->secret;
	error = job->error;
	job->secret = job->error = NULL;
	pthread_mutex_unlock(&job->lock);

	ev_async_stop(loop, w);
	/* Registered here, on the loop's thread: the log is not shared. */
	if (secret != NULL && log_set_secret(job->account.name, secret) != 0) {
		secret_free(&secret);
		log_set_error(&error, "no memory to keep the secret out of the "
		    "log");
	}
	done = job->done;
	arg = job->arg;
	job_unref(job);
	done(secret, error, arg);
}

static void
run_job(const struct account *account, char **secret_r, char **error_r)
{
	*secret_r = *error_r = NULL;
	if (account->secret_source == SECRET_COMMAND)
		secret_run_command(account->secret,
		    SECRET_COMMAND_TIMEOUT * 1000, secret_r, error_r);
	else if (account->secret_source == SECRET_FILE)
		read_secret_file(account->secret, secret_r, error_r);
	else if ((*secret_r = strdup(account->secret)) == NULL)
		log_set_error(error_r, "password: out of memory");
	else if (**secret_r == '\0') {
		secret_free(secret_r);
		log_set_error(error_r, "password is empty");
	}
}

static void *
job_thread(void *arg)
{
	struct secret_job *job = arg;
	char *secret, *error;

	run_job(&job->account, &secret, &error);
	pthread_mutex_lock(&job->lock);
	if (!job->abandoned) {
		job->secret = secret;
		job->error = error;
		secret = error = NULL;
		job->finished = true;
		/* Under the lock: cancel cannot stop the watcher meanwhile. */
		ev_async_send(job->loop, &job->wake);
	}
	pthread_mutex_unlock(&job->lock);
	/* Cancelled: nobody wants them. */
	secret_free(&secret);
	free(error);
	call_worker_hook(SECRET_WORKER_SIGNALLED);
	job_unref(job);
	call_worker_hook(SECRET_WORKER_EXITING);
	return NULL;
}

struct secret_job *
secret_fetch_async(struct ev_loop *loop, const struct account *account,
    secret_done_fn *done, void *arg)
{
	struct secret_job *job;
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t thread;
	int rc;

	if ((job = calloc(1, sizeof *job)) == NULL)
		return NULL;
	if (pthread_mutex_init(&job->lock, NULL) != 0) {
		free(job);
		return NULL;
	}
	atomic_init(&job->refs, 1);
	job->loop = loop;
	job->done = done;
	job->arg = arg;
	job->account.secret_source = account->secret_source;
	if ((job->account.secret = strdup(account->secret != NULL ?
	    account->secret : "")) == NULL ||
	    (job->account.name = strdup(account->name != NULL ?
	    account->name : "")) == NULL) {
		job_unref(job);
		return NULL;
	}
	ev_async_init(&job->wake, on_job_wake);
	job->wake.data = job;
	ev_async_start(loop, &job->wake);
	if (account->secret_source != SECRET_COMMAND) {
		/* Nothing slow: done comes from the next loop iteration. */
		run_job(&job->account, &job->secret, &job->error);
		job->finished = true;
		ev_async_send(loop, &job->wake);
		return job;
	}
	atomic_fetch_add(&job->refs, 1);
	/* Signals stay with the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if ((rc = pthread_attr_init(&attr)) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&thread, &attr, job_thread, job);
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		ev_async_stop(loop, &job->wake);
		atomic_fetch_sub(&job->refs, 1);
		job_unref(job);
		return NULL;
	}
	return job;
}

void
secret_job_cancel(struct secret_job **jobp)
{
	struct secret_job *job = *jobp;
	char *secret, *error;

	*jobp = NULL;
	if (job == NULL)
		return;
	pthread_mutex_lock(&job->lock);
	job->abandoned = true;
	secret = job->secret;
	error = job->error;
	job->secret = job->error = NULL;
	pthread_mutex_unlock(&job->lock);

	ev_async_stop(job->loop, &job->wake);
	secret_free(&secret);
	free(error);
	job_unref(job);
}
