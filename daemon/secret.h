/*
 * secret: obtains an account's password or token from its configured source
 * (password_command, password_file or inline password).  The secret is
 * registered with log_set_secret() as its account's newest, so it can never
 * reach a log line.
 */
#ifndef MM_SECRET_H
#define MM_SECRET_H

#include "config.h"

/* How long a password_command may run before it is killed (seconds). */
#define SECRET_COMMAND_TIMEOUT 30
/* Most bytes read from a password_command or password_file; the rest of a
 * longer output is read and discarded. */
#define SECRET_MAX 65536

/*
 * Returns 0 and a malloc'ed secret (first line, without its line end), or -1
 * and a malloc'ed, secret-free error message ("password_command exited with
 * status 1", "password_file /x: No such file or directory", "... timed out",
 * "... gave an empty secret").  The command runs via /bin/sh -c with stdin
 * from /dev/null; its stderr goes to ours.  A command blocks the caller for
 * up to SECRET_COMMAND_TIMEOUT seconds.  On success the secret is registered
 * with log_set_secret() under the account's name (a secret the log cannot
 * register is an error, never handed out).  Free it with secret_free(),
 * which wipes it.
 */
int secret_fetch(const struct account *account, char **secret_r,
    char **error_r);

/*
 * Runs command as a password_command with a timeout in milliseconds (what
 * secret_fetch does with SECRET_COMMAND_TIMEOUT; exposed so tests can use a
 * short one).  It blocks the caller.  The command runs in a process group of
 * its own; on timeout the whole group is killed with SIGKILL and the child
 * reaped before returning.  Returns as secret_fetch(); the secret is not
 * registered with the log.
 */
int secret_run_command(const char *command, unsigned timeout_ms,
    char **secret_r, char **error_r);

/*
 * secret_fetch() off the event loop: a password_command (which may wait on
 * a gpg-agent or a slow vault for up to SECRET_COMMAND_TIMEOUT) runs in a
 * worker thread, so one account's slow secret never stalls the others.
 * done is called on the loop, never from inside this call, with either the
 * secret (registered with the log as secret_fetch does; the callee frees it
 * with secret_free) or an error (the callee frees it).  The account's fields
 * are copied, so the account may go away meanwhile.  The loop must not reap
 * children it did not start (use ev_loop_new, not the default loop, which
 * waits for every child).  NULL on allocation failure.
 */
struct secret_job;
typedef void secret_done_fn(char *secret, char *error, void *arg);
struct ev_loop;
struct secret_job *secret_fetch_async(struct ev_loop *loop,
    const struct account *account, secret_done_fn *done, void *arg);
/*
 * Stops caring: done will not be called.  The job is shared by the loop and
 * the worker and freed by whichever lets go last, so this may be called
 * at any point, even after the worker has finished and signalled.
 */
void secret_job_cancel(struct secret_job **job);

/*
 * Testing seam: fn (NULL: none) is called on a password_command's worker
 * thread at two points: SIGNALLED once it has told the loop that the job is
 * done, while it still holds its part of the job, and EXITING after its last
 * touch of the job.  Lets tests widen the window between the two, where the
 * loop may deliver and release the job.  Not for use outside tests.
 */
enum secret_worker_point { SECRET_WORKER_SIGNALLED, SECRET_WORKER_EXITING };
typedef void secret_worker_hook_fn(enum secret_worker_point point);
void secret_set_worker_hook(secret_worker_hook_fn *fn);

/* Wipes and frees *secret, and sets it to NULL. */
void secret_free(char **secret);

#endif
