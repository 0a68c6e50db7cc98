#include "fdlimit.h"

#include <sys/resource.h>

#include <errno.h>

struct fdlimit_need
fdlimit_needed(unsigned push_accounts, unsigned max_connections)
{
	struct fdlimit_need n;

	if (max_connections == 0)
		max_connections = 1;
	n.push = (unsigned long)push_accounts * FDLIMIT_PER_PUSH;
	n.sessions = (unsigned long)max_connections * FDLIMIT_PER_SESSION;
	n.base = FDLIMIT_BASE;
	n.margin = FDLIMIT_MARGIN_MIN + (n.push + n.sessions + n.base) / 10;
	n.total = n.push + n.sessions + n.base + n.margin;
	return n;
}

int
fdlimit_raise(unsigned long *soft_before_r, unsigned long *soft_r)
{
	struct rlimit rl;

	*soft_before_r = *soft_r = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	*soft_before_r = *soft_r = (unsigned long)rl.rlim_cur;
	if (rl.rlim_cur == rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	*soft_r = (unsigned long)rl.rlim_cur;
	return 0;
}
