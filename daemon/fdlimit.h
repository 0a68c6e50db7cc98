/*
 * fdlimit: the file descriptors the daemon needs for a configuration, and
 * RLIMIT_NOFILE.  fdlimit_needed() is the arithmetic (pure, unit-tested);
 * fdlimit_raise() lifts the soft limit to the hard one, once at start.
 *
 * A push connection (idle = yes) holds one socket for as long as the daemon
 * runs; a sync session holds, at its busiest, FDLIMIT_PER_SESSION: its
 * socket and a name lookup's, the account lock, the spool file, a mbox file
 * and its directory, the dotlock, the append record, the state file being
 * replaced and its directory, and a password_command's pipe and /dev/null.
 * FDLIMIT_BASE is the process's own (standard streams, the loop's epoll,
 * signal and wake-up descriptors, the daemon lock, the notify socket, the
 * config and state files read at start or reload, GnuTLS's).  The margin,
 * FDLIMIT_MARGIN_MIN plus a tenth, covers what comes and goes beside them
 * (a push connection's reconnect lookup, files opened for a moment).
 */
#ifndef MM_FDLIMIT_H
#define MM_FDLIMIT_H

#define FDLIMIT_BASE		24
#define FDLIMIT_PER_PUSH	1
#define FDLIMIT_PER_SESSION	12
#define FDLIMIT_MARGIN_MIN	64

struct fdlimit_need {
	unsigned long push;	/* push connections: push_accounts x PER_PUSH */
	unsigned long sessions;	/* max_connections x PER_SESSION */
	unsigned long base;	/* FDLIMIT_BASE */
	unsigned long margin;
	unsigned long total;	/* the sum: what RLIMIT_NOFILE must allow */
};

/* The descriptors a daemon with push_accounts accounts on push and
 * max_connections sync sessions (0 counts as 1) needs at most. */
struct fdlimit_need fdlimit_needed(unsigned push_accounts,
    unsigned max_connections);

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit.  *soft_before_r,
 * *soft_r: the soft limit before and after.  0; -1 with errno when it could not
 * be read or raised (*soft_r is then the limit in force).
 */
int fdlimit_raise(unsigned long *soft_before_r, unsigned long *soft_r);

#endif
