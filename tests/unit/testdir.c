#include "testdir.h"

#include <sys/stat.h>

#include <ftw.h>
#include <stdio.h>

static int
remove_entry(const char *path, const struct stat *sb, int flag,
    struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	(void)remove(path);
	return 0;
}

void
testdir_remove(const char *dir)
{
	(void)nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
