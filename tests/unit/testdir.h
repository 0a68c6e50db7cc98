/*
 * testdir: the temporary directories unit tests make, removed with all
 * they hold (symlinks removed, not followed), and the files tests make
 * and read back in them.  Failures to read fail the test.
 */
#ifndef MM_TESTS_TESTDIR_H
#define MM_TESTS_TESTDIR_H

#include <stddef.h>
#include <stdint.h>

/* Makes a new directory "/tmp/<name>.XXXXXX" and puts its path in dir
 * (size bytes); 0, or -1 if it cannot. */
int testdir_make(char *dir, size_t size, const char *name);

/* rm -rf dir; what cannot be removed is left. */
void testdir_remove(const char *dir);

/* A path in dir that no earlier call gave: "<dir>/<n>-<name>", so that
 * each test works on files of its own. */
void testdir_path(char *buf, size_t size, const char *dir, const char *name);

/* The whole file at path (malloc'ed, with room for one more byte after
 * its *len_r bytes). */
unsigned char *testdir_read(const char *path, size_t *len_r);

/* The size of the file at path. */
uint64_t testdir_size(const char *path);

#endif
