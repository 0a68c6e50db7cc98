/*
 * secret: obtains an account's password or token from its configured source
 * (password_command, password_file or inline password).  The secret is
 * registered with log_add_secret() so it can never reach a log line.
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
 * with log_add_secret().  Free it with secret_free(), which wipes it.
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

/* Wipes and frees *secret, and sets it to NULL. */
void secret_free(char **secret);

#endif
