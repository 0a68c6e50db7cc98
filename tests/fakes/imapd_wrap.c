#include "imapd_wrap.h"

#include <stddef.h>

#include "imap/session.h"
#include "transport_mem.h"

struct session *__real_session_new(struct ev_loop *,
    const struct session_params *, const struct session_callbacks *, void *);
struct session *__wrap_session_new(struct ev_loop *,
    const struct session_params *, const struct session_callbacks *, void *);
void __real_ev_loop_destroy(struct ev_loop *);
void __wrap_ev_loop_destroy(struct ev_loop *);

static struct imapd *served;
static void (*pass_fn)(void);
static ev_prepare pass;

static void
on_pass(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	pass_fn();
}

void
imapd_wrap_serve(struct imapd *d, void (*each_pass)(void))
{
	served = d;
	pass_fn = each_pass;
	ev_prepare_init(&pass, on_pass);
}

void
imapd_wrap_start(struct imapd *d, void (*each_pass)(void))
{
	transport_mem_reset();
	imapd_init(d, NULL);
	imapd_wrap_serve(d, each_pass);
}

struct session *
__wrap_session_new(struct ev_loop *l, const struct session_params *params,
    const struct session_callbacks *cb, void *arg)
{
	struct session_params p = *params;

	if (served->loop != l) {
		imapd_attach(served, l);
		if (pass_fn != NULL)
			ev_prepare_start(l, &pass);
	}
	p.transport = &transport_mem_ops;
	return __real_session_new(l, &p, cb, arg);
}

void
__wrap_ev_loop_destroy(struct ev_loop *l)
{
	if (served != NULL && served->loop == l) {
		imapd_stop(served);
		if (ev_is_active(&pass))
			ev_prepare_stop(l, &pass);
		served->loop = NULL;
	}
	__real_ev_loop_destroy(l);
}
