/*
 * mirror/msgindex: records written under the commit protocol and read
 * back, records past the committed size cut, torn appends, corrupt and
 * truncated index files, an index naming another mbox, rebuilds from an
 * mbox (foreign bytes included) and atomic rewrites.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testdir.h"

#include "mbox/mbox.h"
#include "mirror/msgindex.h"

#define DATE	((time_t)1793523903)

static char tmpdir[64];

static const char *const msgs[] = {
	"Message-ID: <a@x>\r\nSubject: one\r\n\r\nFrom here\r\n",
	"Subject: two\r\n\r\nbody two\r\n",
	"Message-ID: <c@x>\r\n\r\nthree, no final newline",
};
#define NMSGS (sizeof msgs / sizeof msgs[0])

/* Writes msgs into a new mbox at path after prefix (may be NULL); their
 * entries into v; returns the file's size. */
static uint64_t
write_mbox(const char *path, const char *prefix, struct mbox_entry *v)
{
	char rec[PATH_MAX + 16], *error = NULL;
	struct mbox *mb;
	uint64_t size;

	if (prefix != NULL) {
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs(prefix, f);
		fclose(f);
	}
	snprintf(rec, sizeof rec, "%s.record", path);
	assert_true(mbox_open(path, rec, prefix != NULL ? MBOX_SIZE_UNKNOWN :
	    0, &mb, &error) == MBOX_OPEN_OK);
	for (size_t i = 0; i < NMSGS; i++) {
		assert_int_equal(mbox_msg_begin(mb, DATE + (time_t)i), 0);
		assert_int_equal(mbox_msg_write(mb, msgs[i], strlen(msgs[i])),
		    0);
		assert_int_equal(mbox_msg_end(mb), 0);
		v[i] = *mbox_last_entry(mb);
	}
	assert_int_equal(mbox_commit(mb, &size), 0);
	mbox_close(&mb);
	return size;
}

/* The record the sync would add for message i. */
static void
sync_entry(struct msgindex_entry *e, const struct mbox_entry *me, size_t i)
{
	static char kw[] = "$Forwarded Junk";

	memset(e, 0, sizeof *e);
	e->uid = (uint32_t)(10 + i);
	e->uidvalidity = 777;
	e->offset = me->offset;
	e->length = me->length;
	e->size = strlen(msgs[i]);
	e->internaldate = DATE + (int64_t)i;
	e->tz_minutes = i == 0 ? -420 : 120;
	e->flags = i == 1 ? MSGINDEX_SEEN | MSGINDEX_FLAGGED : 0;
	e->message_id_hash = me->message_id_hash;
	memcpy(e->digest, me->digest, MSGINDEX_DIGEST_LEN);
	e->keywords = i == 2 ? kw : NULL;
}

static void
assert_entry_equal(const struct msgindex_entry *a,
    const struct msgindex_entry *b)
{
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->uidvalidity, b->uidvalidity);
	assert_int_equal(a->offset, b->offset);
	assert_int_equal(a->length, b->length);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->internaldate, b->internaldate);
	assert_int_equal(a->tz_minutes, b->tz_minutes);
	assert_int_equal(a->flags, b->flags);
	assert_true(a->message_id_hash == b->message_id_hash);
	assert_memory_equal(a->digest, b->digest, MSGINDEX_DIGEST_LEN);
	if (a->keywords == NULL || b->keywords == NULL)
		assert_true(a->keywords == b->keywords);
	else
		assert_string_equal(a->keywords, b->keywords);
}

/* An mbox and its index with every message committed; paths out. */
static void
make_pair(char *mbox, char *index, struct mbox_entry *v,
    struct msgindex_entry *e, uint64_t *size_r)
{
	struct msgindex *ix;
	char *error = NULL;

	testdir_path(mbox, PATH_MAX, tmpdir, "box.mbox");
	testdir_path(index, PATH_MAX, tmpdir, "index");
	*size_r = write_mbox(mbox, NULL, v);
	assert_int_equal(msgindex_open(index, "box.mbox", mbox, 0, &ix,
	    &error), 0);
	assert_int_equal(msgindex_count(ix), 0);
	for (size_t i = 0; i < NMSGS; i++) {
		sync_entry(&e[i], &v[i], i);
		assert_int_equal(msgindex_add(ix, &e[i]), 0);
	}
	assert_int_equal(msgindex_commit(ix, &error), 0);
	assert_int_equal(msgindex_count(ix), NMSGS);
	msgindex_close(&ix);
	assert_null(ix);
}

static void
test_written_and_loaded(void **state)
{
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL, *p;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	struct msgindex *ix;
	uint64_t size;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, NMSGS);
	for (size_t i = 0; i < NMSGS; i++)
		assert_entry_equal(&l.v[i], &e[i]);
	msgindex_list_free(&l);
	/* Tens of bytes a message. */
	assert_true(testdir_size(index) < 30 + NMSGS * 100);

	/* Opened again at the same size: everything kept, appends go on. */
	assert_int_equal(msgindex_open(index, "box.mbox", mbox, size, &ix,
	    &error), 0);
	assert_int_equal(msgindex_count(ix), NMSGS);
	/* Not after the last record: refused. */
	assert_int_equal(msgindex_add(ix, &e[1]), -1);
	msgindex_close(&ix);

	/* No file: 1. */
	assert_int_equal(msgindex_load("/nonexistent/index", NULL, &l,
	    &error), 1);
	assert_int_equal(l.n, 0);

	p = msgindex_path("/s/acct", "INBOX.mbox");
	assert_non_null(p);
	assert_int_equal(strncmp(p, "/s/acct/index-", 14), 0);
	assert_int_equal(strlen(p), 14 + 16);
	free(p);

	assert_int_equal(msgindex_flag_bit("\\seen"), MSGINDEX_SEEN);
	assert_int_equal(msgindex_flag_bit("\\Draft"), MSGINDEX_DRAFT);
	assert_int_equal(msgindex_flag_bit("\\Recent"), 0);
	assert_int_equal(msgindex_flag_bit("$Junk"), 0);
}

static void
test_records_past_committed_cut(void **state)
{
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	struct msgindex *ix;
	uint64_t size, before;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	before = testdir_size(index);
	/* The state recorded the mbox up to the second entry only (a crash
	 * between the index's fdatasync and the state's save). */
	assert_int_equal(msgindex_open(index, "box.mbox", mbox,
	    v[1].offset + v[1].length, &ix, &error), 0);
	assert_int_equal(msgindex_count(ix), 2);
	assert_true(testdir_size(index) < before);
	/* The third message is appended again, where it now goes. */
	assert_int_equal(msgindex_add(ix, &e[2]), 0);
	assert_int_equal(msgindex_commit(ix, &error), 0);
	msgindex_close(&ix);
	assert_int_equal(testdir_size(index), before);
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, NMSGS);
	assert_entry_equal(&l.v[2], &e[2]);
	msgindex_list_free(&l);

	/* A buffered record never committed is not in the file. */
	assert_int_equal(msgindex_open(index, "box.mbox", mbox, 0, &ix,
	    &error), 0);
	assert_int_equal(msgindex_count(ix), 0);
	assert_int_equal(msgindex_add(ix, &e[0]), 0);
	msgindex_close(&ix);
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, 0);
}

static void
test_torn_append_cut(void **state)
{
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	struct msgindex *ix;
	uint64_t size, full;
	int fd;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	full = testdir_size(index);
	/* Half of a fourth record. */
	fd = open(index, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\x01\x02\x03\x04\x05\x06\x07\x08\x09", 9),
	    9);
	close(fd);
	/* A reader (--verify beside a running sync, --restore after a
	 * kill -9) reads what was appended whole: the torn append, or the
	 * one still being written, is left out. */
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, NMSGS);
	for (size_t i = 0; i < NMSGS; i++)
		assert_entry_equal(&l.v[i], &e[i]);
	msgindex_list_free(&l);
	assert_int_equal(msgindex_open(index, "box.mbox", mbox, size, &ix,
	    &error), 0);
	assert_int_equal(msgindex_count(ix), NMSGS);
	msgindex_close(&ix);
	assert_int_equal(testdir_size(index), full);

	/* A whole last record that fails its check: torn too. */
	assert_int_equal(truncate(index, (off_t)(full - 3)), 0);
	fd = open(index, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "zzz", 3), 3);
	close(fd);
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, 2);
	msgindex_list_free(&l);
	/* The third record, whose entry the state counts, is gone: the
	 * index no longer reaches the committed end, and is checked against
	 * the mbox, which gives that entry a rebuilt record. */
	assert_int_equal(msgindex_open(index, "box.mbox", mbox, size, &ix,
	    &error), 0);
	assert_int_equal(msgindex_count(ix), NMSGS);
	msgindex_close(&ix);
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, NMSGS);
	assert_entry_equal(&l.v[1], &e[1]);
	assert_int_equal(l.v[2].flags, MSGINDEX_REBUILT);
	assert_int_equal(l.v[2].offset, v[2].offset);
	msgindex_list_free(&l);
}

static size_t
count_corrupt_asides(const char *index)
{
	const char *base = strrchr(index, '/') + 1;
	struct dirent *d;
	size_t n = 0;
	DIR *dir;

	dir = opendir(tmpdir);
	assert_non_null(dir);
	while ((d = readdir(dir)) != NULL)
		if (strncmp(d->d_name, base, strlen(base)) == 0 &&
		    strstr(d->d_name, ".corrupt-") != NULL)
			n++;
	closedir(dir);
	return n;
}

static void
check_rebuilt(const char *index, const struct mbox_entry *v, size_t n)
{
	struct msgindex_list l;
	char *error = NULL;

	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(l.v[i].uid, 0);
		assert_int_equal(l.v[i].uidvalidity, 0);
		assert_int_equal(l.v[i].flags, MSGINDEX_REBUILT);
		assert_null(l.v[i].keywords);
		assert_int_equal(l.v[i].offset, v[i].offset);
		assert_int_equal(l.v[i].length, v[i].length);
		assert_memory_equal(l.v[i].digest, v[i].digest,
		    MSGINDEX_DIGEST_LEN);
		assert_true(l.v[i].message_id_hash == v[i].message_id_hash);
		assert_int_equal(l.v[i].internaldate, DATE + (int64_t)i);
	}
	/* LFs counted as CRLF: the size the server had for CRLF mail
	 * (the third one gained an LF at its end). */
	assert_int_equal(l.v[0].size, strlen(msgs[0]));
	assert_int_equal(l.v[1].size, strlen(msgs[1]));
	assert_int_equal(l.v[2].size, strlen(msgs[2]) + 2);
	msgindex_list_free(&l);
}

static void
test_corrupt_index_rebuilt(void **state)
{
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL, *aside = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	struct msgindex *ix;
	uint64_t size;
	size_t rebuilt;
	int fd;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	/* A flipped byte in the first record's digest. */
	fd = open(index, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 24 + strlen("box.mbox") + 60), 1);
	close(fd);
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), -1);
	assert_non_null(strstr(error, "record 1: bad check"));
	free(error);
	error = NULL;
	assert_int_equal(msgindex_open_ex(index, "box.mbox", mbox, size, &ix,
	    &rebuilt, &aside, &error), 0);
	assert_int_equal(rebuilt, NMSGS);
	assert_non_null(aside);
	assert_non_null(strstr(aside, ".corrupt-"));
	assert_int_equal(access(aside, F_OK), 0);
	free(aside);
	msgindex_close(&ix);
	assert_int_equal(count_corrupt_asides(index), 1);
	check_rebuilt(index, v, NMSGS);

	/* A truncated header. */
	assert_int_equal(truncate(index, 10), 0);
	assert_int_equal(msgindex_load(index, NULL, &l, &error), -1);
	assert_non_null(strstr(error, "header: truncated"));
	free(error);
	error = NULL;
	/* Not an index at all. */
	fd = open(index, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "hello, world, this is not it\n", 29), 29);
	close(fd);
	assert_int_equal(msgindex_load(index, NULL, &l, &error), -1);
	assert_non_null(strstr(error, "not a message index"));
	free(error);
	error = NULL;
	assert_int_equal(msgindex_open(index, "box.mbox", mbox, size, &ix,
	    &error), 0);
	msgindex_close(&ix);
	check_rebuilt(index, v, NMSGS);
}

static void
test_other_mbox_and_missing(void **state)
{
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	struct msgindex *ix;
	uint64_t size;
	size_t rebuilt;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	assert_int_equal(msgindex_load(index, "other.mbox", &l, &error), -1);
	assert_non_null(strstr(error, "the index of box.mbox, not of "
	    "other.mbox"));
	free(error);
	error = NULL;
	/* Opened for another mbox: made anew for it. */
	assert_int_equal(msgindex_open_ex(index, "other.mbox", mbox, 0, &ix,
	    &rebuilt, NULL, &error), 0);
	assert_int_equal(msgindex_count(ix), 0);
	assert_int_equal(rebuilt, (size_t)-1);
	msgindex_close(&ix);
	assert_int_equal(msgindex_load(index, "other.mbox", &l, &error), 0);
	assert_int_equal(l.n, 0);

	/* Missing, with committed bytes: rebuilt from them. */
	assert_int_equal(unlink(index), 0);
	assert_int_equal(msgindex_open_ex(index, "box.mbox", mbox, size, &ix,
	    &rebuilt, NULL, &error), 0);
	assert_int_equal(rebuilt, NMSGS);
	assert_int_equal(msgindex_count(ix), NMSGS);
	msgindex_close(&ix);
	check_rebuilt(index, v, NMSGS);
	/* ...and only from the committed bytes. */
	assert_int_equal(unlink(index), 0);
	assert_int_equal(msgindex_open_ex(index, "box.mbox", mbox,
	    v[1].offset + v[1].length, &ix, &rebuilt, NULL, &error), 0);
	assert_int_equal(rebuilt, 2);
	msgindex_close(&ix);
}

static void
test_rebuild_foreign_bytes(void **state)
{
	static const char foreign[] = "X-Junk: not mbox\nFrom nobody\nno end";
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_list l;
	struct msgindex *ix;
	uint64_t size;
	FILE *f;

	(void)state;
	testdir_path(mbox, sizeof mbox, tmpdir, "box.mbox");
	testdir_path(index, sizeof index, tmpdir, "index");
	size = write_mbox(mbox, foreign, v);
	assert_int_equal(msgindex_rebuild(mbox, size, &l, &error), 0);
	assert_int_equal(l.n, NMSGS);
	assert_int_equal(l.v[0].offset, sizeof foreign - 1 + 2);
	msgindex_list_free(&l);
	assert_int_equal(msgindex_open(index, "box.mbox", mbox, size, &ix,
	    &error), 0);
	msgindex_close(&ix);
	check_rebuilt(index, v, NMSGS);

	/* Another program's message appended after ours: an entry too. */
	f = fopen(mbox, "a");
	assert_non_null(f);
	fputs("From reader@example.org Sun Nov  1 09:05:03 2026\n"
	    "Subject: theirs\n\nhello\n\n", f);
	fclose(f);
	assert_int_equal(msgindex_rebuild(mbox, testdir_size(mbox), &l, &error),
	    0);
	assert_int_equal(l.n, NMSGS + 1);
	assert_int_equal(l.v[NMSGS].offset, size);
	assert_int_equal(l.v[NMSGS].length, testdir_size(mbox) - size);
	msgindex_list_free(&l);

	/* An mbox that is gone: an error naming it. */
	assert_int_equal(unlink(mbox), 0);
	assert_int_equal(msgindex_rebuild(mbox, size, &l, &error), -1);
	assert_non_null(strstr(error, mbox));
	free(error);
}

static void
test_rewrite(void **state)
{
	char mbox[PATH_MAX], index[PATH_MAX], moved[PATH_MAX], *error = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	uint64_t size;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	e[0].uid = 99;
	e[0].uidvalidity = 1234;
	assert_int_equal(msgindex_rewrite(index, "box.mbox", e, 1, &error), 0);
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, 1);
	assert_entry_equal(&l.v[0], &e[0]);
	msgindex_list_free(&l);
	/* No temporary file is left behind. */
	assert_int_equal(count_corrupt_asides(index), 0);

	/* Moved with its mbox: under the new name, the old one gone. */
	testdir_path(moved, sizeof moved, tmpdir, "index-moved");
	assert_int_equal(msgindex_move(index, moved, "box.aside.mbox",
	    &error), 0);
	assert_int_equal(access(index, F_OK), -1);
	assert_int_equal(msgindex_load(moved, "box.aside.mbox", &l, &error),
	    0);
	assert_int_equal(l.n, 1);
	msgindex_list_free(&l);
	/* Nothing to move: fine. */
	assert_int_equal(msgindex_move(index, moved, "x.mbox", &error), 0);
}

/* Rewrites mbox path with its entries v[idx[0..n)], in that order (a
 * reader deleting or moving messages); returns its new size. */
static uint64_t
rewrite_mbox(const char *path, const struct mbox_entry *v,
    const size_t *idx, size_t n)
{
	char buf[4 * 4096];
	uint64_t out = 0;
	int fd;

	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (size_t i = 0; i < n; i++) {
		const struct mbox_entry *me = &v[idx[i]];

		assert_true(out + me->length <= sizeof buf);
		assert_int_equal(pread(fd, buf + out, me->length,
		    (off_t)me->offset), (ssize_t)me->length);
		out += me->length;
	}
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, buf, out, 0), (ssize_t)out);
	close(fd);
	return out;
}

/* Every record of the index at path describes the mbox's bytes: what a
 * scan of its first size bytes finds, in order. */
static void
assert_index_matches_mbox(const char *index, const char *mbox,
    uint64_t size, struct msgindex_list *l)
{
	struct msgindex_list scan;
	char *error = NULL;

	assert_int_equal(msgindex_load(index, "box.mbox", l, &error), 0);
	assert_int_equal(msgindex_rebuild(mbox, size, &scan, &error), 0);
	assert_int_equal(l->n, scan.n);
	for (size_t i = 0; i < l->n; i++) {
		assert_int_equal(l->v[i].offset, scan.v[i].offset);
		assert_int_equal(l->v[i].length, scan.v[i].length);
		assert_memory_equal(l->v[i].digest, scan.v[i].digest,
		    MSGINDEX_DIGEST_LEN);
	}
	msgindex_list_free(&scan);
}

/* A reader deleted the first message (the file is shorter) or appended
 * one of its own (longer): the index is checked against the file, and a
 * record keeps what the sync knew when its entry is still there. */
static void
test_mbox_changed_by_another_program(void **state)
{
	static const size_t two_three[] = { 1, 2 };
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	struct msgindex *ix;
	uint64_t size, shorter;
	size_t rebuilt;
	FILE *f;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	shorter = rewrite_mbox(mbox, v, two_three, 2);
	assert_true(shorter < size);
	/* Here the second record happens to end where the file now does:
	 * only a check of the bytes, which the sync asks for when the mbox
	 * is not the size it left, sees the change. */
	assert_int_equal(msgindex_check(index, "box.mbox", mbox, shorter,
	    &rebuilt, &error), 0);
	assert_int_equal(rebuilt, 0);
	assert_int_equal(msgindex_open(index, "box.mbox", mbox, shorter, &ix,
	    &error), 0);
	assert_int_equal(msgindex_count(ix), 2);
	msgindex_close(&ix);
	assert_index_matches_mbox(index, mbox, shorter, &l);
	assert_int_equal(l.v[0].uid, e[1].uid);
	assert_int_equal(l.v[0].flags, e[1].flags);
	assert_int_equal(l.v[1].uid, e[2].uid);
	assert_string_equal(l.v[1].keywords, e[2].keywords);
	msgindex_list_free(&l);

	/* Another program's message after ours. */
	f = fopen(mbox, "a");
	assert_non_null(f);
	fputs("From reader@example.org Sun Nov  1 09:05:03 2026\n"
	    "Subject: theirs\n\nhello\n\n", f);
	fclose(f);
	assert_int_equal(msgindex_open_ex(index, "box.mbox", mbox,
	    testdir_size(mbox), &ix, &rebuilt, NULL, &error), 0);
	assert_int_equal(msgindex_count(ix), 3);
	assert_int_equal(rebuilt, 1);
	msgindex_close(&ix);
	assert_index_matches_mbox(index, mbox, testdir_size(mbox), &l);
	assert_int_equal(l.v[1].uid, e[2].uid);
	assert_int_equal(l.v[2].uid, 0);
	assert_int_equal(l.v[2].flags, MSGINDEX_REBUILT);
	msgindex_list_free(&l);
}

/* A rewrite that keeps the size (two messages swapped) is only seen by a
 * check of the bytes: msgindex_check(), for an mbox known to be changed. */
static void
test_check_same_size(void **state)
{
	static const size_t swapped[] = { 1, 0, 2 };
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	uint64_t size;
	size_t rebuilt;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	assert_int_equal(rewrite_mbox(mbox, v, swapped, NMSGS), size);
	assert_int_equal(msgindex_check(index, "box.mbox", mbox, size,
	    &rebuilt, &error), 0);
	assert_int_equal(rebuilt, 0);
	assert_index_matches_mbox(index, mbox, size, &l);
	assert_int_equal(l.v[0].uid, e[1].uid);
	assert_int_equal(l.v[1].uid, e[0].uid);
	assert_int_equal(l.v[2].uid, e[2].uid);
	msgindex_list_free(&l);

	/* No index: made from the mbox. */
	assert_int_equal(unlink(index), 0);
	assert_int_equal(msgindex_check(index, "box.mbox", mbox, size,
	    &rebuilt, &error), 0);
	assert_int_equal(rebuilt, NMSGS);
}

/* Records past the committed size are leftovers of an append the state
 * never recorded, torn or not: a bad one among them (unsynced blocks after
 * a power cut) is cut with them, not taken for a corrupt index. */
static void
test_bad_record_past_committed_cut(void **state)
{
	char mbox[PATH_MAX], index[PATH_MAX], *error = NULL, *aside = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	struct msgindex *ix;
	uint64_t size, rec2;
	size_t rebuilt;
	int fd;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	/* Zeros where the second record's bytes should be. */
	rec2 = 24 + strlen("box.mbox") + MSGINDEX_RECORD_SIZE;
	fd = open(index, O_RDWR);
	assert_true(fd >= 0);
	{
		unsigned char zero[MSGINDEX_RECORD_SIZE] = { 0 };

		assert_int_equal(pwrite(fd, zero, sizeof zero, (off_t)rec2),
		    (ssize_t)sizeof zero);
	}
	close(fd);
	assert_int_equal(msgindex_open_ex(index, "box.mbox", mbox,
	    v[0].offset + v[0].length, &ix, &rebuilt, &aside, &error), 0);
	assert_null(aside);
	assert_int_equal(rebuilt, (size_t)-1);
	assert_int_equal(msgindex_count(ix), 1);
	msgindex_close(&ix);
	assert_int_equal(testdir_size(index), rec2);
	assert_int_equal(msgindex_load(index, "box.mbox", &l, &error), 0);
	assert_int_equal(l.n, 1);
	assert_entry_equal(&l.v[0], &e[0]);
	msgindex_list_free(&l);
}

/* The index of a file kept aside after a crash tore its last append: the
 * records before the torn one go with the file. */
static void
test_move_torn_index(void **state)
{
	char mbox[PATH_MAX], index[PATH_MAX], moved[PATH_MAX], *error = NULL;
	struct mbox_entry v[NMSGS];
	struct msgindex_entry e[NMSGS];
	struct msgindex_list l;
	uint64_t size;
	int fd;

	(void)state;
	make_pair(mbox, index, v, e, &size);
	fd = open(index, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\x01\x02\x03\x04\x05", 5), 5);
	close(fd);
	testdir_path(moved, sizeof moved, tmpdir, "index-moved");
	assert_int_equal(msgindex_move(index, moved, "box.aside.mbox",
	    &error), 0);
	assert_int_equal(access(index, F_OK), -1);
	assert_int_equal(msgindex_load(moved, "box.aside.mbox", &l, &error),
	    0);
	assert_int_equal(l.n, NMSGS);
	for (size_t i = 0; i < NMSGS; i++)
		assert_entry_equal(&l.v[i], &e[i]);
	msgindex_list_free(&l);
}

static int
group_setup(void **state)
{
	(void)state;
	return testdir_make(tmpdir, sizeof tmpdir, "test_msgindex");
}

static int
group_teardown(void **state)
{
	(void)state;
	testdir_remove(tmpdir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_written_and_loaded),
		cmocka_unit_test(test_records_past_committed_cut),
		cmocka_unit_test(test_torn_append_cut),
		cmocka_unit_test(test_corrupt_index_rebuilt),
		cmocka_unit_test(test_other_mbox_and_missing),
		cmocka_unit_test(test_rebuild_foreign_bytes),
		cmocka_unit_test(test_rewrite),
		cmocka_unit_test(test_mbox_changed_by_another_program),
		cmocka_unit_test(test_check_same_size),
		cmocka_unit_test(test_bad_record_past_committed_cut),
		cmocka_unit_test(test_move_torn_index),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
