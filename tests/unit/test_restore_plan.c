/*
 * mirror/restore_plan: names and delimiters, APPEND arguments, Message-ID
 * extraction, the target's messages as counted keys, the journal and the
 * decision per message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mbox/mbox.h"
#include "mirror/names.h"
#include "mirror/restore_plan.h"

static char
delim_of(const char *raw, char real)
{
	char *file = names_mbox_path(raw, strlen(raw), real, false);
	char d;

	assert_non_null(file);
	d = restore_source_delimiter(raw, file);
	free(file);
	return d;
}

/* The files a UIDVALIDITY change kept aside from a mailbox's mbox, and no
 * other mailbox's mbox or file. */
static void
test_kept_aside(void **state)
{
	(void)state;
	assert_true(restore_kept_aside("INBOX.mbox",
	    "INBOX.uidvalidity-1796308634.mbox"));
	assert_true(restore_kept_aside("INBOX.mbox",
	    "INBOX.uidvalidity-7-2.mbox"));
	assert_true(restore_kept_aside("a.b.mbox", "a.b.uidvalidity-7.mbox"));
	assert_false(restore_kept_aside("INBOX.mbox", "INBOX.mbox"));
	assert_false(restore_kept_aside("INBOX.mbox",
	    "INBOX.unknown-7.mbox"));
	assert_false(restore_kept_aside("INBOX.mbox",
	    "INBOX.uidvalidity-.mbox"));
	assert_false(restore_kept_aside("INBOX.mbox",
	    "INBOX.uidvalidity-7-.mbox"));
	assert_false(restore_kept_aside("INBOX.mbox",
	    "INBOX.uidvalidity-7x.mbox"));
	assert_false(restore_kept_aside("INBOX.mbox",
	    "INBOX.uidvalidity-7.mbox.lock"));
	assert_false(restore_kept_aside("INBOX.mbox",
	    "INBOX2.uidvalidity-7.mbox"));
	assert_false(restore_kept_aside("A.mbox", "INBOX.uidvalidity-7.mbox"));
	assert_false(restore_kept_aside("mbox", "uidvalidity-7.mbox"));
	assert_false(restore_kept_aside(".mbox", ".uidvalidity-7.mbox"));
}

static void
test_source_delimiter(void **state)
{
	(void)state;
	assert_int_equal(delim_of("Archive/2023", '/'), '/');
	assert_int_equal(delim_of("Archive.2023", '.'), '.');
	/* A '.' inside a name whose delimiter is '/'. */
	assert_int_equal(delim_of("Arch.ive/20.23", '/'), '/');
	assert_int_equal(delim_of("Arch.ive/20.23", '.'), '.');
	/* Modified UTF-7 never delimits. */
	assert_int_equal(delim_of("&AMQ-rger/x&AOQ-", '/'), '/');
	/* No delimiter in the name: none needed. */
	assert_int_equal(delim_of("INBOX", '/'), '\0');
	assert_int_equal(restore_source_delimiter("a/b", "elsewhere.mbox"),
	    '\0');
}

static void
expect_name(const char *raw, char src, char dst, int ret, const char *want)
{
	char *name = NULL;

	assert_int_equal(restore_target_name(raw, src, dst, &name), ret);
	if (want == NULL) {
		assert_null(name);
		return;
	}
	assert_non_null(name);
	assert_string_equal(name, want);
	free(name);
}

static void
test_target_name(void **state)
{
	(void)state;
	expect_name("Archive/2023", '/', '/', 0, "Archive/2023");
	expect_name("Archive/2023", '/', '.', 0, "Archive.2023");
	expect_name("Archive.2023", '.', '/', 0, "Archive/2023");
	expect_name("&AMQ-rger/&AOQ-", '/', '.', 0, "&AMQ-rger.&AOQ-");
	expect_name("inbox", '/', '.', 0, "INBOX");
	expect_name("Inbox/Sub", '/', '.', 0, "INBOX.Sub");
	expect_name("Inboxes", '/', '.', 0, "Inboxes");
	/* A '.' in a component cannot be kept where '.' delimits. */
	expect_name("v1.0/notes", '/', '.', 1, NULL);
	expect_name("a/b", '/', '\0', 1, NULL);
	expect_name("flat", '\0', '/', 0, "flat");
}

static void
test_format_date(void **state)
{
	char buf[RESTORE_DATE_MAX];

	(void)state;
	/* 1996-07-17 09:44:25 UTC */
	assert_string_equal(restore_format_date(buf, 837596665, -420),
	    "17-Jul-1996 02:44:25 -0700");
	assert_string_equal(restore_format_date(buf, 837596665, 0),
	    "17-Jul-1996 09:44:25 +0000");
	assert_string_equal(restore_format_date(buf, 837596665, 330),
	    "17-Jul-1996 15:14:25 +0530");
	assert_string_equal(restore_format_date(buf, 0, 0),
	    "01-Jan-1970 00:00:00 +0000");
	/* A zone out of range is not believed. */
	assert_string_equal(restore_format_date(buf, 837596665, 100000),
	    "17-Jul-1996 09:44:25 +0000");
}

static void
test_format_flags(void **state)
{
	char *f;
	size_t dropped;

	(void)state;
	f = restore_format_flags(0, NULL, &dropped);
	assert_string_equal(f, "");
	assert_int_equal(dropped, 0);
	free(f);
	f = restore_format_flags(RESTORE_FLAG_SEEN | RESTORE_FLAG_FLAGGED |
	    RESTORE_FLAG_DRAFT, "$Forwarded  $Label1", &dropped);
	assert_string_equal(f, "\\Seen \\Flagged \\Draft $Forwarded $Label1");
	assert_int_equal(dropped, 0);
	free(f);
	f = restore_format_flags(RESTORE_FLAG_ANSWERED | RESTORE_FLAG_DELETED,
	    "\\Recent ok bad(x \"q\" a*", &dropped);
	assert_string_equal(f, "\\Answered \\Deleted ok");
	assert_int_equal(dropped, 4);
	free(f);
}

/* The hash of a FETCHed header is the one the index has for the message:
 * also for a Message-ID longer than a line may be. */
static void
test_message_id_as_indexed(void **state)
{
	static const char *const ids[] = {
		"Message-ID: <a@b.example>\r\n",
		"message-id:\r\n  <folded@x>  (comment)\r\n",
		"Message-Id:<y@z>\r\n",
		NULL,
	};
	char hdr[2100], msg[2200], xs[1501];
	struct mbox_digest *d;
	uint8_t digest[MBOX_DIGEST_LEN];
	uint64_t indexed;
	size_t n;

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		if (ids[i] != NULL) {
			snprintf(hdr, sizeof hdr, "%s\r\n", ids[i]);
		} else {
			memset(xs, 'x', sizeof xs - 1);
			xs[sizeof xs - 1] = '\0';
			snprintf(hdr, sizeof hdr, "Message-ID:\r\n <%s@y>\r\n"
			    "\r\n", xs);
		}
		n = (size_t)snprintf(msg, sizeof msg, "Subject: s\r\n%sbody\r\n",
		    hdr);
		assert_int_equal(mbox_digest_new(&d), 0);
		assert_int_equal(mbox_digest_write(d, msg, n), 0);
		assert_int_equal(mbox_digest_end(d, digest, &indexed), 0);
		mbox_digest_free(&d);
		assert_true(indexed != 0);
		if (restore_message_id_hash(hdr, strlen(hdr)) != indexed)
			fail_msg("header %zu: another hash", i);
	}
}

static void
test_present(void **state)
{
	struct restore_present p = { 0 };

	(void)state;
	assert_int_equal(restore_present_add(&p, 11, 100, 5000), 0);
	assert_int_equal(restore_present_add(&p, 11, 100, 5000), 0);
	assert_int_equal(restore_present_add(&p, 0, 300, 7000), 0);
	assert_int_equal(restore_present_add(&p, 12, 200, 6000), 0);
	/* Two copies: two takes. */
	assert_true(restore_present_take_id(&p, 11, 100));
	assert_true(restore_present_take_id(&p, 11, 100));
	assert_false(restore_present_take_id(&p, 11, 100));
	/* Same id, other size: another message. */
	assert_false(restore_present_take_id(&p, 12, 201));
	assert_false(restore_present_take_id(&p, 0, 300));
	assert_true(restore_present_take_date(&p, 300, 7000));
	assert_false(restore_present_take_date(&p, 300, 7000));
	assert_false(restore_present_take_date(&p, 300, 7001));
	restore_present_free(&p);
	assert_false(restore_present_take_id(&p, 12, 200));
}

static void
test_decide(void **state)
{
	struct restore_present p = { 0 };

	(void)state;
	assert_int_equal(restore_present_add(&p, 7, 10, 1), 0);
	assert_int_equal(restore_present_add(&p, 0, 20, 2), 0);
	assert_int_equal(restore_present_add(&p, 0, 30, 3), 0);
	assert_int_equal(restore_decide(RESTORE_MARK_DONE, &p, 7, 10, 1),
	    RESTORE_SKIP_DONE);
	assert_int_equal(restore_decide(RESTORE_MARK_NONE, &p, 7, 10, 1),
	    RESTORE_SKIP_PRESENT);
	/* Used up. */
	assert_int_equal(restore_decide(RESTORE_MARK_SENDING, &p, 7, 10, 1),
	    RESTORE_UPLOAD);
	/* Without Message-ID: by size and date. */
	assert_int_equal(restore_decide(RESTORE_MARK_SENDING, &p, 0, 20, 2),
	    RESTORE_SKIP_SENT);
	assert_int_equal(restore_decide(RESTORE_MARK_NONE, &p, 0, 20, 2),
	    RESTORE_UPLOAD);
	assert_int_equal(restore_decide(RESTORE_MARK_SENDING, &p, 0, 30, 4),
	    RESTORE_UPLOAD);
	assert_int_equal(restore_decide(RESTORE_MARK_NONE, &p, 0, 30, 3),
	    RESTORE_SKIP_PRESENT);
	/* A Message-ID is never matched by date. */
	assert_int_equal(restore_present_add(&p, 0, 40, 5), 0);
	assert_int_equal(restore_decide(RESTORE_MARK_SENDING, &p, 9, 40, 5),
	    RESTORE_UPLOAD);
	assert_string_equal(restore_action_name(RESTORE_SKIP_SENT), "sent");
	restore_present_free(&p);
}

/* Two equal messages in the source; an earlier run uploaded the second
 * (done) and was killed sending the first: the target's one copy is the
 * second's, so the first goes again. */
static void
test_decide_copies(void **state)
{
	struct restore_present p = { 0 };

	(void)state;
	assert_int_equal(restore_present_add(&p, 7, 10, 1), 0);
	assert_true(restore_present_take(&p, 7, 10, 1));
	assert_int_equal(restore_decide(RESTORE_MARK_SENDING, &p, 7, 10, 1),
	    RESTORE_UPLOAD);
	assert_int_equal(restore_decide(RESTORE_MARK_DONE, &p, 7, 10, 1),
	    RESTORE_SKIP_DONE);
	/* Two copies on the target, one done: the other is present. */
	assert_int_equal(restore_present_add(&p, 0, 30, 3), 0);
	assert_int_equal(restore_present_add(&p, 0, 30, 3), 0);
	assert_true(restore_present_take(&p, 0, 30, 3));
	assert_int_equal(restore_decide(RESTORE_MARK_SENDING, &p, 0, 30, 3),
	    RESTORE_SKIP_SENT);
	assert_false(restore_present_take(&p, 0, 30, 3));
	restore_present_free(&p);
}

static void
test_journal(void **state)
{
	struct restore_journal j = { 0 };
	struct restore_record r = { .box = 0xabcdef0123456789ull,
	    .offset = 100, .length = 50, .digest = 0x00ff00ff00ff00ffull,
	    .mark = RESTORE_MARK_SENDING };
	static const uint8_t digest[32] = { 0x00, 0xff, 0x00, 0xff, 0x00,
	    0xff, 0x00, 0xff, 0x12 };
	char buf[4096], line[RESTORE_LINE_MAX], *error = NULL;
	size_t len;

	(void)state;
	assert_true(restore_digest64(digest) == r.digest);
	len = (size_t)snprintf(buf, sizeof buf, "%s", RESTORE_JOURNAL_HEADER);
	len += restore_journal_line(buf + len, &r);
	assert_string_equal(buf + strlen(RESTORE_JOURNAL_HEADER),
	    "S abcdef0123456789 100 50 00ff00ff00ff00ff\n");
	r.offset = 150;
	len += restore_journal_line(buf + len, &r);
	r.mark = RESTORE_MARK_DONE;
	r.uidvalidity = 7;
	r.uid = 42;
	r.offset = 100;
	len += restore_journal_line(buf + len, &r);
	restore_journal_line(line, &r);
	assert_string_equal(line,
	    "D abcdef0123456789 100 50 00ff00ff00ff00ff 7 42\n");
	/* The longest line fits. */
	r.box = r.offset = r.length = r.digest = UINT64_MAX;
	r.uidvalidity = r.uid = UINT32_MAX;
	assert_true(restore_journal_line(line, &r) < RESTORE_LINE_MAX - 1);
	r.box = 0xabcdef0123456789ull;
	r.digest = 0x00ff00ff00ff00ffull;
	/* A line cut short by a crash is not a record. */
	len += (size_t)snprintf(buf + len, sizeof buf - len, "S abcdef01");
	assert_int_equal(restore_journal_parse(buf, len, "j", &j, &error), 0);
	assert_int_equal(j.n, 2);
	assert_int_equal(restore_journal_find(&j, r.box, 100, 50, r.digest),
	    RESTORE_MARK_DONE);
	assert_int_equal(restore_journal_find(&j, r.box, 150, 50, r.digest),
	    RESTORE_MARK_SENDING);
	assert_int_equal(restore_journal_find(&j, r.box, 150, 51, r.digest),
	    RESTORE_MARK_NONE);
	assert_int_equal(restore_journal_find(&j, 1, 100, 50, r.digest),
	    RESTORE_MARK_NONE);
	/* Another message at the same place (an mbox begun again). */
	assert_int_equal(restore_journal_find(&j, r.box, 100, 50, 1),
	    RESTORE_MARK_NONE);

	/* Only the header, or part of it: an empty journal. */
	assert_int_equal(restore_journal_parse("mboxmirror-re", 13, "j", &j,
	    &error), 0);
	assert_int_equal(j.n, 0);

	assert_int_equal(restore_journal_parse("garbage\n", 8, "j", &j,
	    &error), -1);
	assert_string_equal(error, "j:1: not a restore journal");
	free(error);
	len = (size_t)snprintf(buf, sizeof buf, "%sS 12 1 2 0000000000000000\n",
	    RESTORE_JOURNAL_HEADER);
	assert_int_equal(restore_journal_parse(buf, len, "j", &j, &error), -1);
	assert_string_equal(error, "j:2: unreadable record");
	free(error);
	len = (size_t)snprintf(buf, sizeof buf, "%sS 0000000000000001 1 2\n",
	    RESTORE_JOURNAL_HEADER);
	assert_int_equal(restore_journal_parse(buf, len, "j", &j, &error), -1);
	free(error);
	len = (size_t)snprintf(buf, sizeof buf,
	    "%sD 0000000000000001 1 2 0000000000000000 x 3\n",
	    RESTORE_JOURNAL_HEADER);
	assert_int_equal(restore_journal_parse(buf, len, "j", &j, &error), -1);
	free(error);
	restore_journal_free(&j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_aside),
		cmocka_unit_test(test_source_delimiter),
		cmocka_unit_test(test_target_name),
		cmocka_unit_test(test_format_date),
		cmocka_unit_test(test_format_flags),
		cmocka_unit_test(test_message_id_as_indexed),
		cmocka_unit_test(test_present),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_decide_copies),
		cmocka_unit_test(test_journal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
