/*
 * Tests of imap/response: the typed views over parsed responses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parser.h"
#include "imap/response.h"

static int
setup(void **state)
{
	*state = imap_parser_new();
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	struct imap_parser *p = *state;

	imap_parser_free(&p);
	return 0;
}

static const struct imap_response *
parse(void **state, const char *text)
{
	const struct imap_response *resp = NULL;
	size_t consumed;

	assert_int_equal(imap_parser_feed(*state, (const unsigned char *)text,
	    strlen(text), &consumed, &resp), IMAP_PARSE_RESPONSE);
	assert_int_equal(consumed, strlen(text));
	return resp;
}

static void
test_response_text(void **state)
{
	const struct imap_response *r;
	char buf[64], small[8];

	r = parse(state, "A1 NO [TRYCREATE] no such mailbox\r\n");
	assert_string_equal(imap_response_text(r, buf, sizeof buf),
	    "[TRYCREATE] no such mailbox");
	r = parse(state, "A2 BAD [BADCHARSET (UTF-8)] huh\r\n");
	assert_string_equal(imap_response_text(r, buf, sizeof buf),
	    "[BADCHARSET] huh");
	r = parse(state, "A3 NO go away\r\n");
	assert_string_equal(imap_response_text(r, buf, sizeof buf),
	    "go away");
	r = parse(state, "* BYE [ALERT] shutting down now\r\n");
	assert_ptr_equal(imap_response_text(r, small, sizeof small), small);
	assert_string_equal(small, "[ALERT]");
}

/* The whole status response, the code's arguments included. */
static void
test_response_status_line(void **state)
{
	const struct imap_response *r;
	char buf[64], small[10];

	r = parse(state, "* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n");
	assert_string_equal(imap_response_status_line(r, buf, sizeof buf),
	    "OK [CAPABILITY IMAP4rev1 IDLE] ready");
	r = parse(state, "A1 NO [TRYCREATE] no such mailbox\r\n");
	assert_string_equal(imap_response_status_line(r, buf, sizeof buf),
	    "NO [TRYCREATE] no such mailbox");
	r = parse(state, "* PREAUTH welcome\r\n");
	assert_string_equal(imap_response_status_line(r, buf, sizeof buf),
	    "PREAUTH welcome");
	r = parse(state, "* 3 EXISTS\r\n");
	assert_string_equal(imap_response_status_line(r, buf, sizeof buf),
	    "? ");
	r = parse(state, "* BYE [ALERT] shutting down now\r\n");
	assert_ptr_equal(imap_response_status_line(r, small, sizeof small),
	    small);
	assert_string_equal(small, "BYE [ALER");
}

static void
test_arg_helpers(void **state)
{
	const struct imap_response *r;
	uint32_t v;
	uint64_t v64;

	r = parse(state, "* X 4294967295 4294967296 18446744073709551615 "
	    "18446744073709551616 12a \"7\" NIL 0 007 ()\r\n");
	assert_int_equal(imap_arg_uint32(&r->args[0], &v), 0);
	assert_int_equal(v, UINT32_MAX);
	assert_int_equal(imap_arg_uint32(&r->args[1], &v), -1);
	assert_int_equal(imap_arg_uint64(&r->args[1], &v64), 0);
	assert_int_equal(v64, 4294967296ull);
	assert_int_equal(imap_arg_uint64(&r->args[2], &v64), 0);
	assert_int_equal(v64, UINT64_MAX);
	assert_int_equal(imap_arg_uint64(&r->args[3], &v64), -1);
	assert_int_equal(imap_arg_uint32(&r->args[4], &v), -1);
	assert_int_equal(imap_arg_uint32(&r->args[5], &v), -1);
	assert_int_equal(imap_arg_uint32(&r->args[6], &v), -1);
	assert_int_equal(imap_arg_uint32(&r->args[7], &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(imap_arg_uint32(&r->args[8], &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(imap_arg_uint32(&r->args[9], &v), -1);

	assert_string_equal(imap_arg_string(&r->args[4]), "12a");
	assert_string_equal(imap_arg_string(&r->args[5]), "7");
	assert_null(imap_arg_string(&r->args[6]));
	assert_null(imap_arg_string(&r->args[9]));
	assert_true(imap_arg_is_atom(&r->args[4], "12A"));
	assert_false(imap_arg_is_atom(&r->args[5], "7"));
	assert_false(imap_arg_is_atom(&r->args[6], "NIL"));
	assert_false(imap_arg_is_atom(NULL, "X"));
}

static void
test_caps(void **state)
{
	struct imap_caps caps;
	const struct imap_response *r;

	memset(&caps, 0, sizeof(caps));
	r = parse(state, "* OK [CAPABILITY IMAP4rev1 STARTTLS auth=plain] "
	    "Dovecot ready.\r\n");
	assert_int_equal(imap_caps_update(&caps, r), 1);
	assert_int_equal(caps.n, 3);
	assert_string_equal(caps.names[2], "AUTH=PLAIN");
	assert_true(imap_caps_has(&caps, "starttls"));
	assert_true(imap_caps_has(&caps, "AUTH=PLAIN"));
	assert_false(imap_caps_has(&caps, "IDLE"));

	/* Responses without capabilities leave them alone. */
	r = parse(state, "a1 OK done\r\n");
	assert_int_equal(imap_caps_update(&caps, r), 0);
	r = parse(state, "* 1 EXISTS\r\n");
	assert_int_equal(imap_caps_update(&caps, r), 0);
	assert_int_equal(caps.n, 3);

	/* An untagged CAPABILITY replaces them. */
	r = parse(state, "* capability IMAP4rev2 IDLE LITERAL- "
	    "UIDPLUS \r\n");
	assert_int_equal(imap_caps_update(&caps, r), 1);
	assert_int_equal(caps.n, 4);
	assert_false(imap_caps_has(&caps, "STARTTLS"));
	assert_true(imap_caps_has(&caps, "LITERAL-"));

	/* And so does a tagged OK with the code. */
	r = parse(state, "a2 OK [CAPABILITY IMAP4rev1 CONDSTORE] Logged "
	    "in\r\n");
	assert_int_equal(imap_caps_update(&caps, r), 1);
	assert_int_equal(caps.n, 2);
	assert_true(imap_caps_has(&caps, "CONDSTORE"));
	imap_caps_clear(&caps);
	assert_int_equal(caps.n, 0);
	assert_false(imap_caps_has(&caps, "CONDSTORE"));
	imap_caps_clear(&caps);
}

static void
test_list(void **state)
{
	struct imap_list_item it;
	const struct imap_response *r;

	r = parse(state, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n");
	assert_int_equal(imap_list_decode(r, &it), 0);
	assert_int_equal(it.flags, 0);
	assert_int_equal(it.delimiter, '/');
	assert_string_equal(it.name, "INBOX");
	assert_int_equal(it.name_len, 5);

	r = parse(state, "* LIST (\\Noselect \\HasChildren) NIL \"\"\r\n");
	assert_int_equal(imap_list_decode(r, &it), 0);
	assert_int_equal(it.flags, IMAP_LIST_NOSELECT | IMAP_LIST_HASCHILDREN);
	assert_int_equal(it.delimiter, '\0');
	assert_string_equal(it.name, "");

	r = parse(state, "* LIST (\\Subscribed \\NonExistent) \".\" "
	    "\"a \\\"q\\\" b\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
	assert_int_equal(imap_list_decode(r, &it), 0);
	assert_int_equal(it.flags, IMAP_LIST_NOSELECT);
	assert_int_equal(it.delimiter, '.');
	assert_string_equal(it.name, "a \"q\" b");

	r = parse(state, "* LSUB () \"\\\\\" {8}\r\nFoo\\Bär\r\n");
	assert_int_equal(imap_list_decode(r, &it), 0);
	assert_int_equal(it.delimiter, '\\');
	assert_int_equal(it.name_len, 8);
	assert_memory_equal(it.name, "Foo\\B\xc3\xa4r", 8);

	r = parse(state, "* list (\\hasnochildren) \"/\" &AOQ-pfel\r\n");
	assert_int_equal(imap_list_decode(r, &it), 0);
	assert_string_equal(it.name, "&AOQ-pfel");

	/* Wrong shapes. */
	r = parse(state, "* LIST () \"//\" INBOX\r\n");
	assert_int_equal(imap_list_decode(r, &it), -1);
	r = parse(state, "* LIST () \"/\"\r\n");
	assert_int_equal(imap_list_decode(r, &it), -1);
	r = parse(state, "* LIST \\Noselect \"/\" x\r\n");
	assert_int_equal(imap_list_decode(r, &it), -1);
	r = parse(state, "* LIST () \"/\" (x)\r\n");
	assert_int_equal(imap_list_decode(r, &it), -1);
	r = parse(state, "* STATUS x (MESSAGES 1)\r\n");
	assert_int_equal(imap_list_decode(r, &it), -1);
	r = parse(state, "* OK LIST\r\n");
	assert_int_equal(imap_list_decode(r, &it), -1);
}

static void
test_status(void **state)
{
	struct imap_status_item st;
	const struct imap_response *r;

	r = parse(state, "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)"
	    "\r\n");
	assert_int_equal(imap_status_decode(r, &st), 0);
	assert_string_equal(st.name, "blurdybloop");
	assert_true(st.has_messages);
	assert_int_equal(st.messages, 231);
	assert_true(st.has_uidnext);
	assert_int_equal(st.uidnext, 44292);
	assert_false(st.has_uidvalidity);
	assert_false(st.has_size);

	r = parse(state, "* STATUS \"Sent Items\" (UIDVALIDITY 4294967295 "
	    "UNSEEN 2 HIGHESTMODSEQ 9 SIZE 12345678901 messages 0)\r\n");
	assert_int_equal(imap_status_decode(r, &st), 0);
	assert_string_equal(st.name, "Sent Items");
	assert_int_equal(st.name_len, 10);
	assert_int_equal(st.uidvalidity, UINT32_MAX);
	assert_int_equal(st.size, 12345678901ull);
	assert_true(st.has_messages);
	assert_int_equal(st.messages, 0);

	r = parse(state, "* STATUS x (UIDNEXT 4294967296)\r\n");
	assert_int_equal(imap_status_decode(r, &st), -1);
	r = parse(state, "* STATUS x (MESSAGES)\r\n");
	assert_int_equal(imap_status_decode(r, &st), -1);
	r = parse(state, "* STATUS x (MESSAGES \"1\")\r\n");
	assert_int_equal(imap_status_decode(r, &st), -1);
	r = parse(state, "* STATUS x MESSAGES 1\r\n");
	assert_int_equal(imap_status_decode(r, &st), -1);
	r = parse(state, "* LIST x (MESSAGES 1)\r\n");
	assert_int_equal(imap_status_decode(r, &st), -1);
}

static void
test_fetch(void **state)
{
	struct imap_fetch_item fi;
	const struct imap_response *r;

	r = parse(state, "* 12 FETCH (FLAGS (\\Seen $Label1) UID 4827313 "
	    "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 "
	    "MODSEQ (12121231000) ENVELOPE (NIL))\r\n");
	assert_int_equal(imap_fetch_decode(r->number, r->args[0].list,
	    r->args[0].count, &fi), 0);
	assert_int_equal(fi.msgno, 12);
	assert_true(fi.has_uid && fi.has_internaldate && fi.has_size &&
	    fi.has_modseq && fi.has_flags);
	assert_int_equal(fi.uid, 4827313);
	assert_int_equal(fi.internaldate, 837596665);
	assert_int_equal(fi.tz_minutes, -420);
	assert_int_equal(fi.size, 4286);
	assert_int_equal(fi.modseq, 12121231000ull);
	assert_int_equal(fi.flags->count, 2);
	assert_true(imap_arg_is_atom(&fi.flags->list[1], "$label1"));

	/* A partial list, as a sink gets it: a trailing name is skipped. */
	assert_int_equal(imap_fetch_decode(12, r->args[0].list, 3, &fi), 0);
	assert_true(fi.has_flags);
	assert_false(fi.has_uid);
	assert_int_equal(imap_fetch_decode(12, r->args[0].list, 0, &fi), 0);
	assert_false(fi.has_flags);

	r = parse(state, "* 1 FETCH (UID 0)\r\n");
	assert_int_equal(imap_fetch_decode(1, r->args[0].list,
	    r->args[0].count, &fi), -1);
	r = parse(state, "* 1 FETCH (INTERNALDATE \"32-Jul-1996 02:44:25 "
	    "-0700\")\r\n");
	assert_int_equal(imap_fetch_decode(1, r->args[0].list,
	    r->args[0].count, &fi), -1);
	r = parse(state, "* 1 FETCH (INTERNALDATE NIL)\r\n");
	assert_int_equal(imap_fetch_decode(1, r->args[0].list,
	    r->args[0].count, &fi), -1);
	r = parse(state, "* 1 FETCH (RFC822.SIZE x)\r\n");
	assert_int_equal(imap_fetch_decode(1, r->args[0].list,
	    r->args[0].count, &fi), -1);
	r = parse(state, "* 1 FETCH (MODSEQ 5)\r\n");
	assert_int_equal(imap_fetch_decode(1, r->args[0].list,
	    r->args[0].count, &fi), -1);
	r = parse(state, "* 1 FETCH (FLAGS \\Seen)\r\n");
	assert_int_equal(imap_fetch_decode(1, r->args[0].list,
	    r->args[0].count, &fi), -1);
	r = parse(state, "* 1 FETCH (\"UID\" 5)\r\n");
	assert_int_equal(imap_fetch_decode(1, r->args[0].list,
	    r->args[0].count, &fi), -1);
	r = parse(state, "* 1 FETCH (INTERNALDATE \" 7-Jul-1996 02:44:25 "
	    "+0530\")\r\n");
	assert_int_equal(imap_fetch_decode(r->number, r->args[0].list,
	    r->args[0].count, &fi), 0);
	assert_int_equal(fi.tz_minutes, 330);

	/* A whole response: only an untagged FETCH with one list. */
	r = parse(state, "* 3 FETCH (UID 9)\r\n");
	assert_int_equal(imap_fetch_response_decode(r, &fi), 0);
	assert_int_equal(fi.msgno, 3);
	assert_true(fi.has_uid);
	assert_int_equal(fi.uid, 9);
	r = parse(state, "* 3 FETCH (UID 0)\r\n");
	assert_int_equal(imap_fetch_response_decode(r, &fi), -1);
	r = parse(state, "* 3 EXPUNGE\r\n");
	assert_int_equal(imap_fetch_response_decode(r, &fi), -1);
	r = parse(state, "* 3 FETCH UID 9\r\n");
	assert_int_equal(imap_fetch_response_decode(r, &fi), -1);
	r = parse(state, "* FETCH (UID 9)\r\n");
	assert_int_equal(imap_fetch_response_decode(r, &fi), -1);
	r = parse(state, "* 3 FETCH (UID 9) (UID 10)\r\n");
	assert_int_equal(imap_fetch_response_decode(r, &fi), -1);
}

static void
test_internaldate(void **state)
{
	static const struct {
		const char *text;
		bool ok;
		long long t;
	} cases[] = {
		{ "17-Jul-1996 02:44:25 -0700", true, 837596665 },
		{ " 7-Jul-2026 02:44:25 +0130", true, 1783386865 },
		{ "07-Jul-2026 02:44:25 +0130", true, 1783386865 },
		{ "7-jul-2026 02:44:25 +0130", true, 1783386865 },
		{ "29-Feb-2000 00:00:00 +0000", true, 951782400 },
		{ "01-Jan-1970 00:00:00 +0000", true, 0 },
		{ "31-Dec-2026 23:59:59 -1400", true, 1798811999 },
		{ "01-Jan-1970 00:00:00 +0100", true, -3600 },
		{ "29-Feb-2023 00:00:00 +0000", false, 0 },
		{ "29-Feb-1900 00:00:00 +0000", false, 0 },
		{ "31-Apr-2026 00:00:00 +0000", false, 0 },
		{ "00-Jan-2026 00:00:00 +0000", false, 0 },
		{ "32-Jan-2026 00:00:00 +0000", false, 0 },
		{ "17-Foo-1996 02:44:25 -0700", false, 0 },
		{ "17-Jul-1996 24:00:00 -0700", false, 0 },
		{ "17-Jul-1996 02:60:25 -0700", false, 0 },
		{ "17-Jul-1996 02:44:25 -0760", false, 0 },
		{ "17-Jul-1996 02:44:25 0700", false, 0 },
		{ "17-Jul-1996 02:44:25", false, 0 },
		{ "17-Jul-1996 02:44:25 -0700 ", false, 0 },
		{ "17-Jul-96 02:44:25 -0700", false, 0 },
		{ "17 Jul 1996 02:44:25 -0700", false, 0 },
		{ "  7-Jul-2026 02:44:25 +0000", false, 0 },
		{ "", false, 0 },
		{ "1", false, 0 },
	};
	size_t i;
	time_t t;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = 42;
		rc = imap_parse_internaldate(cases[i].text, &t);
		if (!cases[i].ok) {
			if (rc != -1)
				fail_msg("\"%s\" accepted", cases[i].text);
		} else if (rc != 0 || (long long)t != cases[i].t)
			fail_msg("\"%s\": rc %d, %lld, expected %lld",
			    cases[i].text, rc, (long long)t, cases[i].t);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_response_status_line,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_arg_helpers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_caps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_text, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch, setup, teardown),
		cmocka_unit_test(test_internaldate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
