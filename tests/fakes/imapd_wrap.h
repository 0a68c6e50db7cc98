/*
 * imapd_wrap: tests/fakes/imapd_mem for code that makes its own libev loop
 * (--once, --probe, --list, the daemon).  Linked with
 * -Wl,--wrap=session_new,--wrap=ev_loop_destroy: every session goes on the
 * in-memory transport, the server joins the loop the session was made on
 * and leaves it when that loop is destroyed.  A test can also act each
 * time that loop is about to wait (an ev_prepare), to stop the code under
 * test (a signal) once what it waits for has happened.
 */
#ifndef MM_TESTS_IMAPD_WRAP_H
#define MM_TESTS_IMAPD_WRAP_H

#include "imapd_mem.h"

/* d serves every session made from now on; each_pass (NULL: none) runs
 * before the loop d serves on waits, every time. */
void imapd_wrap_serve(struct imapd *d, void (*each_pass)(void));
/* imapd_wrap_serve() of d made new (imapd_init(), no mailboxes yet), on
 * an in-memory transport with no connections left from before. */
void imapd_wrap_start(struct imapd *d, void (*each_pass)(void));

#endif
