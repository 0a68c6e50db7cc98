/*
 * notify: the service manager notification protocol (sd_notify(3)), spoken
 * directly.
 *
 * Why no libsystemd: a notification is one datagram of "KEY=VALUE" lines
 * sent to the AF_UNIX socket named in $NOTIFY_SOCKET.  Writing that datagram
 * takes a few lines of code; linking libsystemd for it would add a library
 * (and its own dependencies) to every build, and builds without systemd
 * headers would need a second code path.  Spoken directly, the protocol costs
 * nothing where systemd is absent: without $NOTIFY_SOCKET every call below is
 * a no-op that succeeds, so the daemon runs the same from a shell, under
 * another supervisor, or in a container.
 *
 * Failures are never fatal: a service manager that stopped listening must not
 * stop the mirroring.  The first failure is logged at debug level; later ones
 * are silent.
 *
 * Return convention of the senders: 1 the datagram was sent, 0 notification
 * is not enabled (nothing was sent), -1 it could not be sent.
 */
#ifndef MM_NOTIFY_H
#define MM_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"

/* Largest datagram built; STATUS= text is cut to NOTIFY_STATUS_MAX bytes. */
#define NOTIFY_MSG_MAX		4096
#define NOTIFY_STATUS_MAX	512

/*
 * Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, then removes them
 * from the environment so that child processes (password_command) neither
 * inherit nor act on them.  Call once at start-up, before starting children.
 *
 * NOTIFY_SOCKET is either an absolute path or, when it starts with '@', an
 * abstract socket name; anything else (empty, relative, too long) disables
 * notification.  WATCHDOG_USEC must be a positive decimal number; when
 * WATCHDOG_PID is set too it must equal getpid(), otherwise the watchdog is
 * meant for another process and is ignored.  Bad values are ignored (logged
 * at debug).  Returns 1 when notification is enabled, 0 when not; it does not
 * fail.
 */
int notify_init(void);

/* True when notify_init() found a usable $NOTIFY_SOCKET. */
bool notify_enabled(void);

/*
 * The watchdog interval in microseconds, or 0 when no watchdog was asked for
 * (or it belongs to another PID).  The caller sends notify_watchdog() at
 * about half this interval.
 */
uint64_t notify_watchdog_usec(void);

/*
 * Sends one datagram built from fmt: newline-separated assignments, e.g.
 * "READY=1\nSTATUS=idle".  The text is sent as given (no sanitising) and
 * must fit in NOTIFY_MSG_MAX bytes, otherwise nothing is sent and -1 is
 * returned.
 */
int notify_send(const char *fmt, ...) MM_PRINTF(1, 2);

/*
 * "READY=1", plus "STATUS=<status>" when status is not NULL.  Also the way to
 * end a reload started with notify_reloading().
 */
int notify_ready(const char *status);

/*
 * "STATUS=<text>".  Control characters in the formatted text (newlines
 * above all, which would start a new assignment) become spaces; the text is
 * cut to NOTIFY_STATUS_MAX bytes.
 */
int notify_status(const char *fmt, ...) MM_PRINTF(1, 2);

/*
 * "RELOADING=1" and "MONOTONIC_USEC=<now>" (CLOCK_MONOTONIC), the pair that
 * Type=notify-reload services send since systemd 253; older managers ignore
 * the second line.  Send notify_ready() once the reload is done.
 */
int notify_reloading(void);

/* "STOPPING=1": shutdown has begun. */
int notify_stopping(void);

/* "WATCHDOG=1": the main loop is alive. */
int notify_watchdog(void);

#endif
