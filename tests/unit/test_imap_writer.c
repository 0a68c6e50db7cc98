/*
 * imap/writer: command building, argument forms, literals, tags and
 * sequence sets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "imap/writer.h"

/* Builds "A1 X <value>\r\n" and checks the bytes; NULL expected: fails. */
static void
check_string(const char *value, size_t len, enum imap_literal_mode mode,
    const char *expected, size_t nsplits)
{
	struct imap_tagger tagger = { 0 };
	struct imap_cmd cmd;
	int ret;

	imap_cmd_init(&cmd, &tagger, "X");
	imap_cmd_add_string(&cmd, value, len, mode);
	ret = imap_cmd_finish(&cmd);
	if (expected == NULL) {
		assert_int_equal(ret, -1);
		assert_true(cmd.failed);
	} else {
		assert_int_equal(ret, 0);
		assert_int_equal(cmd.len, strlen(expected));
		assert_memory_equal(cmd.data, expected, cmd.len);
		assert_int_equal(cmd.nsplits, nsplits);
	}
	imap_cmd_free(&cmd);
}

static void
test_quoting_table(void **state)
{
	static const struct {
		const char *value;
		size_t len;		/* 0: strlen(value) */
		const char *expected;	/* NULL: the command fails */
	} t[] = {
		{ "INBOX", 0, "A1 X INBOX\r\n" },
		{ "alice@example.org", 0, "A1 X alice@example.org\r\n" },
		{ "a]b", 0, "A1 X a]b\r\n" },		/* ']' is ASTRING-CHAR */
		{ "&-", 0, "A1 X &-\r\n" },
		{ "", 0, "A1 X \"\"\r\n" },
		{ "two words", 0, "A1 X \"two words\"\r\n" },
		{ "a\"b", 0, "A1 X \"a\\\"b\"\r\n" },
		{ "a\\b", 0, "A1 X \"a\\\\b\"\r\n" },
		{ "\"\\", 0, "A1 X \"\\\"\\\\\"\r\n" },
		{ "a(b", 0, "A1 X \"a(b\"\r\n" },
		{ "a)b", 0, "A1 X \"a)b\"\r\n" },
		{ "a{b", 0, "A1 X \"a{b\"\r\n" },
		{ "50%", 0, "A1 X \"50%\"\r\n" },
		{ "*", 0, "A1 X \"*\"\r\n" },
		{ "tab\there", 0, "A1 X \"tab\there\"\r\n" },
		{ "del\x7f", 0, "A1 X \"del\x7f\"\r\n" },
		{ "p\xc3\xa4\xc3\xa4", 0, "A1 X {5+}\r\np\xc3\xa4\xc3\xa4\r\n" },
		{ "line\r\nbreak", 0, "A1 X {11+}\r\nline\r\nbreak\r\n" },
		{ "cr\r", 0, "A1 X {3+}\r\ncr\r\r\n" },
		{ "lf\n", 0, "A1 X {3+}\r\nlf\n\r\n" },
		{ "nul\0x", 5, NULL },
		{ "\0", 1, NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		check_string(t[i].value, t[i].len ? t[i].len :
		    strlen(t[i].value), IMAP_LITERAL_PLUS, t[i].expected, 0);
}

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void
test_long_strings(void **state)
{
	char *v, *exp;
	size_t n;

	(void)state;
	/* 1024 bytes: still an atom; 1025: a literal. */
	v = repeat('a', IMAP_QUOTED_MAX);
	assert_int_not_equal(asprintf(&exp, "A1 X %s\r\n", v), -1);
	check_string(v, IMAP_QUOTED_MAX, IMAP_LITERAL_PLUS, exp, 0);
	free(exp);
	free(v);

	v = repeat(' ', IMAP_QUOTED_MAX);
	assert_int_not_equal(asprintf(&exp, "A1 X \"%s\"\r\n", v), -1);
	check_string(v, IMAP_QUOTED_MAX, IMAP_LITERAL_PLUS, exp, 0);
	free(exp);
	free(v);

	n = IMAP_QUOTED_MAX + 1;
	v = repeat('a', n);
	assert_int_not_equal(asprintf(&exp, "A1 X {%zu+}\r\n%s\r\n", n, v),
	    -1);
	check_string(v, n, IMAP_LITERAL_PLUS, exp, 0);
	free(exp);
	assert_int_not_equal(asprintf(&exp, "A1 X {%zu}\r\n%s\r\n", n, v),
	    -1);
	check_string(v, n, IMAP_LITERAL_SYNC, exp, 1);
	free(exp);
	free(v);
}

static void
test_literal_minus(void **state)
{
	char *v, *exp;

	(void)state;
	v = repeat('\n', IMAP_LITERAL_MINUS_MAX + 1);
	assert_int_not_equal(asprintf(&exp, "A1 X {%d+}\r\n%.*s\r\n",
	    IMAP_LITERAL_MINUS_MAX, IMAP_LITERAL_MINUS_MAX, v), -1);
	check_string(v, IMAP_LITERAL_MINUS_MAX, IMAP_LITERAL_MINUS, exp, 0);
	free(exp);
	assert_int_not_equal(asprintf(&exp, "A1 X {%d}\r\n%s\r\n",
	    IMAP_LITERAL_MINUS_MAX + 1, v), -1);
	check_string(v, IMAP_LITERAL_MINUS_MAX + 1, IMAP_LITERAL_MINUS, exp,
	    1);
	free(exp);
	assert_int_not_equal(asprintf(&exp, "A1 X {%d+}\r\n%s\r\n",
	    IMAP_LITERAL_MINUS_MAX + 1, v), -1);
	check_string(v, IMAP_LITERAL_MINUS_MAX + 1, IMAP_LITERAL_PLUS, exp,
	    0);
	free(exp);
	free(v);
}

static void
test_sync_literal_splits(void **state)
{
	struct imap_tagger tagger = { 0 };
	struct imap_cmd cmd;
	const char *part;
	size_t len;

	(void)state;
	imap_cmd_init(&cmd, &tagger, "LOGIN");
	imap_cmd_add_string(&cmd, "us\xc3\xa9r", 5, IMAP_LITERAL_SYNC);
	imap_cmd_add_string(&cmd, "pa ss\r\n", 7, IMAP_LITERAL_SYNC);
	assert_int_equal(imap_cmd_finish(&cmd), 0);
	assert_string_equal(cmd.data,
	    "A1 LOGIN {5}\r\nus\xc3\xa9r {7}\r\npa ss\r\n\r\n");
	assert_int_equal(cmd.nsplits, 2);
	assert_int_equal(cmd.splits[0], strlen("A1 LOGIN {5}\r\n"));
	assert_int_equal(cmd.splits[1],
	    strlen("A1 LOGIN {5}\r\nus\xc3\xa9r {7}\r\n"));
	assert_int_equal(imap_cmd_nparts(&cmd), 3);
	part = imap_cmd_part(&cmd, 0, &len);
	assert_int_equal(len, 14);
	assert_memory_equal(part, "A1 LOGIN {5}\r\n", len);
	part = imap_cmd_part(&cmd, 1, &len);
	assert_int_equal(len, 11);
	assert_memory_equal(part, "us\xc3\xa9r {7}\r\n", len);
	part = imap_cmd_part(&cmd, 2, &len);
	assert_int_equal(len, 9);
	assert_memory_equal(part, "pa ss\r\n\r\n", len);
	assert_null(imap_cmd_part(&cmd, 3, &len));
	assert_int_equal(len, 0);
	imap_cmd_free(&cmd);

	/* No literal: one part, the whole command. */
	imap_cmd_init(&cmd, &tagger, "NOOP");
	assert_int_equal(imap_cmd_finish(&cmd), 0);
	assert_int_equal(imap_cmd_nparts(&cmd), 1);
	part = imap_cmd_part(&cmd, 0, &len);
	assert_int_equal(len, strlen("A2 NOOP\r\n"));
	assert_memory_equal(part, "A2 NOOP\r\n", len);
	imap_cmd_free(&cmd);
}

static void
test_tags(void **state)
{
	struct imap_tagger tagger = { 0 }, other = { 0 };
	struct imap_cmd cmd;
	char prev[IMAP_TAG_MAX] = "";
	unsigned i, n;

	(void)state;
	for (i = 1; i <= 1000; i++) {
		imap_cmd_init(&cmd, &tagger, "NOOP");
		assert_int_equal(sscanf(cmd.tag, "A%u", &n), 1);
		assert_int_equal(n, i);
		assert_string_not_equal(cmd.tag, prev);
		strcpy(prev, cmd.tag);
		assert_int_equal(strncmp(cmd.data, cmd.tag, strlen(cmd.tag)), 0);
		imap_cmd_free(&cmd);
	}
	/* Each connection counts on its own. */
	imap_cmd_init(&cmd, &other, "NOOP");
	assert_string_equal(cmd.tag, "A1");
	imap_cmd_free(&cmd);
	/* Wrapping skips 0 and still fits. */
	tagger.next = UINT32_MAX;
	imap_cmd_init(&cmd, &tagger, "NOOP");
	assert_string_equal(cmd.tag, "A4294967295");
	imap_cmd_free(&cmd);
	imap_cmd_init(&cmd, &tagger, "NOOP");
	assert_string_equal(cmd.tag, "A1");
	imap_cmd_free(&cmd);
}

static void
test_command_shapes(void **state)
{
	struct imap_tagger tagger = { 0 };
	struct imap_cmd cmd;
	uint32_t uids[] = { 1, 2, 3, 7 };
	char set[64];

	(void)state;
	imap_seqset_format(set, sizeof(set), uids, 4);
	imap_cmd_init(&cmd, &tagger, "UID FETCH");
	imap_cmd_add_atom(&cmd, set);
	imap_cmd_add_raw(&cmd, "(UID RFC822.SIZE %s)", "BODY.PEEK[]");
	assert_int_equal(imap_cmd_finish(&cmd), 0);
	assert_string_equal(cmd.data,
	    "A1 UID FETCH 1:3,7 (UID RFC822.SIZE BODY.PEEK[])\r\n");
	imap_cmd_free(&cmd);

	imap_cmd_init(&cmd, &tagger, "EXAMINE");
	imap_cmd_add_mailbox(&cmd, "inbox", false, IMAP_LITERAL_SYNC);
	assert_int_equal(imap_cmd_finish(&cmd), 0);
	assert_string_equal(cmd.data, "A2 EXAMINE INBOX\r\n");
	imap_cmd_free(&cmd);

	/* Freeing twice, or a zeroed command, is harmless. */
	imap_cmd_free(&cmd);
	memset(&cmd, 0, sizeof(cmd));
	imap_cmd_free(&cmd);
}

static void
check_mailbox(const char *name, bool utf8, enum imap_literal_mode mode,
    const char *expected)
{
	struct imap_tagger tagger = { 0 };
	struct imap_cmd cmd;
	int ret;

	imap_cmd_init(&cmd, &tagger, "STATUS");
	imap_cmd_add_mailbox(&cmd, name, utf8, mode);
	ret = imap_cmd_finish(&cmd);
	if (expected == NULL) {
		assert_int_equal(ret, -1);
	} else {
		assert_int_equal(ret, 0);
		assert_string_equal(cmd.data, expected);
	}
	imap_cmd_free(&cmd);
}

static void
test_mailbox_args(void **state)
{
	(void)state;
	check_mailbox("INBOX", false, IMAP_LITERAL_SYNC, "A1 STATUS INBOX\r\n");
	check_mailbox("InBoX", false, IMAP_LITERAL_SYNC, "A1 STATUS INBOX\r\n");
	check_mailbox("inbox", true, IMAP_LITERAL_SYNC, "A1 STATUS INBOX\r\n");
	/* Only the whole name is INBOX; children keep their case. */
	check_mailbox("inbox/x", false, IMAP_LITERAL_SYNC,
	    "A1 STATUS inbox/x\r\n");
	check_mailbox("INBOXES", false, IMAP_LITERAL_SYNC,
	    "A1 STATUS INBOXES\r\n");
	check_mailbox("Sent Items", false, IMAP_LITERAL_SYNC,
	    "A1 STATUS \"Sent Items\"\r\n");
	check_mailbox("R&D", false, IMAP_LITERAL_SYNC, "A1 STATUS R&-D\r\n");
	check_mailbox("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", false, IMAP_LITERAL_SYNC,
	    "A1 STATUS ~peter/mail/&U,BTFw-/&ZeVnLIqe-\r\n");
	check_mailbox("\xc3\xa4 b", false, IMAP_LITERAL_SYNC,
	    "A1 STATUS \"&AOQ- b\"\r\n");
	/* UTF8=ACCEPT: the bytes themselves, as a literal. */
	check_mailbox("\xc3\xa4", true, IMAP_LITERAL_PLUS,
	    "A1 STATUS {2+}\r\n\xc3\xa4\r\n");
	check_mailbox("R&D", true, IMAP_LITERAL_PLUS, "A1 STATUS R&D\r\n");
	/* Invalid UTF-8 is never sent. */
	check_mailbox("p\xe4\xe4", false, IMAP_LITERAL_PLUS, NULL);
	check_mailbox("p\xe4\xe4", true, IMAP_LITERAL_PLUS, NULL);
	check_mailbox("\xed\xa0\x80", true, IMAP_LITERAL_PLUS, NULL);
}

static void
test_injection_refused(void **state)
{
	struct imap_tagger tagger = { 0 };
	struct imap_cmd cmd;

	(void)state;
	imap_cmd_init(&cmd, &tagger, "SELECT");
	imap_cmd_add_atom(&cmd, "x\r\nA9 DELETE y");
	assert_int_equal(imap_cmd_finish(&cmd), -1);
	imap_cmd_free(&cmd);

	imap_cmd_init(&cmd, &tagger, "SELECT");
	imap_cmd_add_atom(&cmd, "");
	assert_int_equal(imap_cmd_finish(&cmd), -1);
	imap_cmd_free(&cmd);

	imap_cmd_init(&cmd, &tagger, "X");
	imap_cmd_add_raw(&cmd, "(%s)", "a\nb");
	assert_int_equal(imap_cmd_finish(&cmd), -1);
	imap_cmd_free(&cmd);

	imap_cmd_init(&cmd, &tagger, "X");
	imap_cmd_add_raw(&cmd, "a%cb", 0);
	assert_int_equal(imap_cmd_finish(&cmd), -1);
	imap_cmd_free(&cmd);

	imap_cmd_init(&cmd, &tagger, "NOOP\r\nA1 LOGOUT");
	assert_int_equal(imap_cmd_finish(&cmd), -1);
	imap_cmd_free(&cmd);

	/* A failure sticks: later arguments are not appended. */
	imap_cmd_init(&cmd, &tagger, "X");
	imap_cmd_add_string(&cmd, "a\0b", 3, IMAP_LITERAL_PLUS);
	imap_cmd_add_atom(&cmd, "more");
	assert_null(strstr(cmd.data, "more"));
	assert_int_equal(imap_cmd_finish(&cmd), -1);
	imap_cmd_free(&cmd);
}

static void
test_raw_long(void **state)
{
	struct imap_tagger tagger = { 0 };
	struct imap_cmd cmd;
	char *v = repeat('x', 5000);

	(void)state;
	imap_cmd_init(&cmd, &tagger, "X");
	imap_cmd_add_raw(&cmd, "(%s)", v);
	assert_int_equal(imap_cmd_finish(&cmd), 0);
	assert_int_equal(cmd.len, strlen("A1 X ()\r\n") + 5000);
	assert_memory_equal(cmd.data + 6, v, 5000);
	imap_cmd_free(&cmd);
	free(v);
}

static void
test_size_bound(void **state)
{
	struct imap_tagger tagger = { 0 };
	struct imap_cmd cmd;
	size_t n = IMAP_CMD_MAX / 2 + 1;
	char *v = repeat('\n', n);

	(void)state;
	imap_cmd_init(&cmd, &tagger, "X");
	imap_cmd_add_string(&cmd, v, n, IMAP_LITERAL_PLUS);
	assert_false(cmd.failed);
	imap_cmd_add_string(&cmd, v, n, IMAP_LITERAL_PLUS);
	assert_true(cmd.failed);
	assert_true(cmd.len <= IMAP_CMD_MAX);
	assert_int_equal(imap_cmd_finish(&cmd), -1);
	imap_cmd_free(&cmd);
	free(v);
}

static void
check_seqset(const uint32_t *uids, size_t n, const char *expected)
{
	char buf[256];

	assert_int_equal(imap_seqset_format(buf, sizeof(buf), uids, n),
	    strlen(expected));
	assert_string_equal(buf, expected);
	assert_int_equal(imap_seqset_format(NULL, 0, uids, n),
	    strlen(expected));
}

static void
test_seqset(void **state)
{
	static const uint32_t a[] = { 1, 2, 3, 4, 5, 9, 12, UINT32_MAX };
	static const uint32_t b[] = { 7 };
	static const uint32_t c[] = { 1, 3, 5 };
	static const uint32_t d[] = { UINT32_MAX };
	static const uint32_t e[] = { UINT32_MAX - 1, UINT32_MAX };
	static const uint32_t f[] = { 4294967294u };
	static const uint32_t g[] = { 10, 11, 20, 21, 22, 30 };
	static const uint32_t h[] = { 12, 13, 14, UINT32_MAX };
	static const uint32_t u[] = { 5, 3, 4 };
	uint32_t big[1000];
	char buf[16];
	size_t i;

	(void)state;
	check_seqset(a, 0, "");
	check_seqset(a, 8, "1:5,9,12,*");
	check_seqset(b, 1, "7");
	check_seqset(c, 3, "1,3,5");
	check_seqset(d, 1, "*");
	check_seqset(e, 2, "4294967294:*");
	check_seqset(f, 1, "4294967294");
	check_seqset(g, 6, "10:11,20:22,30");
	check_seqset(h, 4, "12:14,*");
	/* Unsorted input still gives a set naming the same UIDs. */
	check_seqset(u, 3, "5,3:4");

	for (i = 0; i < 1000; i++)
		big[i] = 12 + i;
	big[999] = UINT32_MAX;
	check_seqset(big, 999, "12:1010");
	big[998] = UINT32_MAX - 1;
	check_seqset(big, 1000, "12:1009,4294967294:*");

	/* Truncation: like snprintf, NUL-terminated, needed length back. */
	memset(buf, 'Z', sizeof(buf));
	assert_int_equal(imap_seqset_format(buf, 5, a, 8), 10);
	assert_string_equal(buf, "1:5,");
	assert_int_equal(buf[5], 'Z');
	assert_int_equal(imap_seqset_format(buf, 1, a, 8), 10);
	assert_string_equal(buf, "");
	assert_int_equal(imap_seqset_format(buf, 11, a, 8), 10);
	assert_string_equal(buf, "1:5,9,12,*");
	assert_int_equal(imap_seqset_format(buf, 10, a, 8), 10);
	assert_string_equal(buf, "1:5,9,12,");
}

/* RFC 5801 4 saslname: ',' and '=' are escaped, nothing else. */
static void
test_gs2_header(void **state)
{
	static const struct {
		const char *authzid, *header;
	} cases[] = {
		{ "alice@example.org", "n,a=alice@example.org," },
		{ "", "n,a=," },
		{ ",", "n,a==2C," },
		{ "=", "n,a==3D," },
		{ "a,b=c", "n,a=a=2Cb=3Dc," },
		{ ",,==", "n,a==2C=2C=3D=3D," },
		{ "=2C", "n,a==3D2C," },
		{ "caf\xc3\xa9 x", "n,a=caf\xc3\xa9 x," },
	};
	char *h;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		h = imap_sasl_gs2_header(cases[i].authzid);
		assert_non_null(h);
		assert_string_equal(h, cases[i].header);
		free(h);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quoting_table),
		cmocka_unit_test(test_long_strings),
		cmocka_unit_test(test_literal_minus),
		cmocka_unit_test(test_sync_literal_splits),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_command_shapes),
		cmocka_unit_test(test_mailbox_args),
		cmocka_unit_test(test_injection_refused),
		cmocka_unit_test(test_raw_long),
		cmocka_unit_test(test_size_bound),
		cmocka_unit_test(test_seqset),
		cmocka_unit_test(test_gs2_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
