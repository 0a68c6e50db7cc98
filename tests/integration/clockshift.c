/*
 * clockshift: an LD_PRELOAD module for tests.  time() runs ahead of the real
 * clock by the whole seconds written in the file named by
 * $MM_CLOCK_SHIFT_FILE, read at every call (missing, empty or unreadable: no
 * shift), so that a test can let a minute pass for a running process in an
 * instant.  Only time() moves: clock_gettime(), and with it libev's timers
 * and every timeout, keeps the real clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long
shift_seconds(void)
{
	const char *path = getenv("MM_CLOCK_SHIFT_FILE");
	FILE *fp;
	long s;

	if (path == NULL || (fp = fopen(path, "re")) == NULL)
		return 0;
	if (fscanf(fp, "%ld", &s) != 1)
		s = 0;
	fclose(fp);
	return s;
}

time_t
time(time_t *t_r)
{
	struct timespec ts;
	time_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = ts.tv_sec + (time_t)shift_seconds();
	if (t_r != NULL)
		*t_r = now;
	return now;
}
