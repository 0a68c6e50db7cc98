/*
 * testdir: the temporary directories unit tests make, removed with all
 * they hold (symlinks removed, not followed).
 */
#ifndef MM_TESTS_TESTDIR_H
#define MM_TESTS_TESTDIR_H

/* rm -rf dir; what cannot be removed is left. */
void testdir_remove(const char *dir);

#endif
