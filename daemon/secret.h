/*
 * secret: obtains an account's password or token from its configured source
 * (password_command, password_file or inline password).  The secret is
 * registered with log_add_secret() so it can never reach a log line.
 */
#ifndef MM_SECRET_H
#define MM_SECRET_H

#include "config.h"

/* How long a password_command may run before it is killed. */
#define SECRET_COMMAND_TIMEOUT 30

/*
 * Returns 0 and a malloc'ed secret (first line, without its line end), or -1
 * and a malloc'ed, secret-free error message ("password_command exited with
 * status 1", "password_file /x: No such file or directory", "... timed out",
 * "... gave an empty secret").  The command runs via /bin/sh -c with stdin
 * from /dev/null; its stderr goes to ours.  Free the secret with
 * secret_free(), which wipes it.
 */
int secret_fetch(const struct account *account, char **secret_r,
    char **error_r);
void secret_free(char **secret);

#endif
