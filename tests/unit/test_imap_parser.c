/*
 * Tests of imap/parser: transcripts at every split point, each response
 * type, literal streaming, and hostile input.
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

#ifndef MM_FIXTURES_DIR
#error MM_FIXTURES_DIR must name tests/fixtures
#endif

/*
 * A run parses a whole input cut into pieces and writes a canonical dump of
 * every response, of every sink event (the DATA bytes joined, so that how
 * they were chunked does not show) and of how the input ended.
 */
struct run {
	FILE *out;
	char *dump;
	size_t dump_len;
	struct imap_parser *parser;
	/* The piece being fed: sink DATA must point inside it. */
	const unsigned char *piece;
	size_t piece_len;
	/* Sink behaviour for the hostile tests: fail on this event number. */
	int fail_event;
	int events;
	uint64_t data_bytes;
	size_t responses;
};

static void
put_escaped(FILE *f, const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
			fputc(s[i], f);
		else
			fprintf(f, "\\x%02x", s[i]);
	}
}

static void
dump_arg(FILE *f, const struct imap_arg *a)
{
	size_t i;

	switch (a->type) {
	case IMAP_ARG_NIL:
		fputs("NIL", f);
		break;
	case IMAP_ARG_ATOM:
		fputs("A:", f);
		put_escaped(f, a->str, a->len);
		assert_int_equal(strlen(a->str), a->len);
		break;
	case IMAP_ARG_STRING:
		fprintf(f, "S%s%zu:\"", a->literal8 ? "8:" : ":", a->len);
		put_escaped(f, a->str, a->len);
		fputc('"', f);
		assert_int_equal(a->str[a->len], '\0');
		break;
	case IMAP_ARG_LIST:
		fputc('(', f);
		for (i = 0; i < a->count; i++) {
			if (i > 0)
				fputc(' ', f);
			dump_arg(f, &a->list[i]);
		}
		fputc(')', f);
		break;
	case IMAP_ARG_STREAMED:
		fprintf(f, "STREAMED%s:%llu", a->literal8 ? "8" : "",
		    (unsigned long long)a->size);
		break;
	default:
		fail_msg("bad arg type %d", a->type);
	}
}

static void
dump_args(FILE *f, const struct imap_arg *args, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fputc(' ', f);
		dump_arg(f, &args[i]);
	}
}

static void
dump_response(FILE *f, const struct imap_response *r)
{
	static const char *types[] = { "TAGGED", "UNTAGGED", "CONTINUE" };
	static const char *statuses[] = { "-", "OK", "NO", "BAD", "BYE",
	    "PREAUTH" };

	fprintf(f, "RESP %s tag=%s status=%s", types[r->type],
	    r->tag ? r->tag : "-", statuses[r->status]);
	if (r->code != NULL) {
		fprintf(f, " code=%s[", r->code);
		dump_args(f, r->code_args, r->code_nargs);
		fputs(" ] code_text=\"", f);
		put_escaped(f, r->code_text, strlen(r->code_text));
		fputc('"', f);
	}
	if (r->text != NULL) {
		fputs(" text=\"", f);
		put_escaped(f, r->text, strlen(r->text));
		fputc('"', f);
	}
	if (r->has_number)
		fprintf(f, " number=%u", r->number);
	if (r->keyword != NULL)
		fprintf(f, " keyword=%s", r->keyword);
	dump_args(f, r->args, r->nargs);
	fputc('\n', f);
}

static int
test_sink(void *arg, enum imap_sink_event ev,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	struct run *run = arg;

	run->events++;
	switch (ev) {
	case IMAP_SINK_BEGIN:
		assert_null(data);
		fprintf(run->out, "BEGIN %u %s %llu before[", info->msgno,
		    info->item, (unsigned long long)info->size);
		dump_args(run->out, info->before, info->nbefore);
		fputs(" ] <", run->out);
		break;
	case IMAP_SINK_DATA:
		/* No copy: the bytes are the caller's. */
		assert_true(len > 0);
		assert_true(data >= run->piece &&
		    data + len <= run->piece + run->piece_len);
		put_escaped(run->out, data, len);
		run->data_bytes += len;
		break;
	case IMAP_SINK_END:
		assert_null(data);
		fprintf(run->out, "> END %s\n", info->item);
		break;
	}
	return run->events == run->fail_event ? -1 : 0;
}

static void
run_begin(struct run *run, bool sink)
{
	memset(run, 0, sizeof(*run));
	run->out = open_memstream(&run->dump, &run->dump_len);
	assert_non_null(run->out);
	run->parser = imap_parser_new();
	assert_non_null(run->parser);
	if (sink)
		imap_parser_set_sink(run->parser, test_sink, run);
}

/* Feeds one piece; false once the parser failed. */
static bool
run_piece(struct run *run, const unsigned char *data, size_t len)
{
	const struct imap_response *resp;
	enum imap_parse_result r;
	unsigned char *copy;
	size_t off = 0, consumed;
	bool ok = true;

	/* An exact-size heap copy, so that reading past it is caught. */
	copy = malloc(len > 0 ? len : 1);
	assert_non_null(copy);
	memcpy(copy, data, len);
	run->piece = copy;
	run->piece_len = len;
	while (off < len) {
		r = imap_parser_feed(run->parser, copy + off, len - off,
		    &consumed, &resp);
		assert_true(consumed <= len - off);
		off += consumed;
		if (r == IMAP_PARSE_RESPONSE) {
			assert_non_null(resp);
			assert_true(consumed > 0);
			dump_response(run->out, resp);
			run->responses++;
		} else if (r == IMAP_PARSE_ERROR) {
			assert_int_not_equal(imap_parser_error(run->parser),
			    IMAP_ERR_NONE);
			fprintf(run->out, "ERROR %d %s\n",
			    imap_parser_error(run->parser),
			    imap_parser_error_text(run->parser));
			ok = false;
			break;
		} else
			assert_int_equal(off, len);
	}
	free(copy);
	return ok;
}

static char *
run_end(struct run *run)
{
	fprintf(run->out, "END %s\n",
	    imap_parser_idle(run->parser) ? "idle" : "partial");
	imap_parser_free(&run->parser);
	assert_null(run->parser);
	fclose(run->out);
	return run->dump;
}

/* Parses data cut at the given ascending offsets. */
static char *
parse_cut(const unsigned char *data, size_t len, const size_t *cuts,
    size_t ncuts, bool sink, size_t *responses_r)
{
	struct run run;
	size_t i, from = 0, to;

	run_begin(&run, sink);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		if (!run_piece(&run, data + from, to - from))
			break;
		from = to;
	}
	if (responses_r != NULL)
		*responses_r = run.responses;
	return run_end(&run);
}

static unsigned char *
load_fixture(const char *name, size_t *len_r)
{
	char path[512];
	unsigned char *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", MM_FIXTURES_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, n, f), (size_t)n);
	fclose(f);
	*len_r = n;
	return buf;
}

/* A small deterministic generator for chunk sizes. */
static uint32_t
rng_next(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/*
 * The heart of the transcript tests: the whole parse has no error and the
 * expected number of responses, and every cut gives the same dump.
 */
static char *
check_splits(const char *fixture, bool sink, size_t expect_responses)
{
	unsigned char *data;
	size_t len, k, n, *cuts, ncuts, responses;
	char *whole, *other;
	uint32_t seed;

	data = load_fixture(fixture, &len);
	whole = parse_cut(data, len, NULL, 0, sink, &responses);
	if (strstr(whole, "ERROR") != NULL)
		fail_msg("%s: %s", fixture, whole);
	/* MM_DUMP=1 shows what the assertions below look at. */
	if (getenv("MM_DUMP") != NULL)
		fprintf(stderr, "%s (sink %s):\n%s", fixture, sink ? "on" :
		    "off", whole);
	assert_int_equal(responses, expect_responses);
	assert_non_null(strstr(whole, "END idle\n"));

	/* Every single split point. */
	for (k = 0; k <= len; k++) {
		other = parse_cut(data, len, &k, 1, sink, NULL);
		if (strcmp(whole, other) != 0)
			fail_msg("%s: split at %zu differs", fixture, k);
		free(other);
	}

	/* Byte by byte. */
	cuts = malloc(len * sizeof(*cuts));
	assert_non_null(cuts);
	for (k = 0; k < len; k++)
		cuts[k] = k;
	other = parse_cut(data, len, cuts, len, sink, NULL);
	assert_string_equal(whole, other);
	free(other);

	/* Random chunkings, sizes 1..64. */
	for (seed = 1; seed <= 50; seed++) {
		uint32_t st = seed * 2654435761u;

		ncuts = 0;
		for (n = rng_next(&st) % 64 + 1; n < len;
		    n += rng_next(&st) % 64 + 1)
			cuts[ncuts++] = n;
		other = parse_cut(data, len, cuts, ncuts, sink, NULL);
		if (strcmp(whole, other) != 0)
			fail_msg("%s: chunking %u differs", fixture, seed);
		free(other);
	}
	free(cuts);
	free(data);
	return whole;
}

static void
test_fixture_dovecot_session(void **state)
{
	char *d;

	(void)state;
	d = check_splits("dovecot-session.imap", true, 64);
	/* Streamed, with what came before each literal. */
	assert_non_null(strstr(d, "BEGIN 1 BODY[] 209 before[ A:UID A:1 "
	    "A:INTERNALDATE S:26:\"07-Jul-2026 07:05:00 +0000\" "
	    "A:RFC822.SIZE A:209 ] <From: Alice"));
	assert_non_null(strstr(d, "BEGIN 2 BINARY[2] 10 before[ A:UID A:2 ] "
	    "<\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\x09> END "
	    "BINARY[2]\n"));
	assert_non_null(strstr(d, "BEGIN 3 RFC822.TEXT 0 before[ A:UID A:3 "
	    "A:RFC822 STREAMED:56 ] <> END RFC822.TEXT\n"));
	assert_non_null(strstr(d, "A:BINARY[2] STREAMED8:10 "
	    "A:BINARY.SIZE[2] A:10"));
	assert_non_null(strstr(d, "A:BODY[HEADER.FIELDS (FROM TO)] "
	    "STREAMED:62 A:BODY[TEXT]<0> STREAMED:20"));
	assert_non_null(strstr(d, "RESP UNTAGGED tag=- status=OK "
	    "code=CAPABILITY[ A:IMAP4rev1 A:SASL-IR"));
	assert_non_null(strstr(d, "keyword=LIST (A:\\x5cHasNoChildren) "
	    "S:1:\"/\" S:12:\"quote\"d\\x5cname\""));
	assert_non_null(strstr(d, "keyword=NAMESPACE ((S:0:\"\" S:1:\"/\")) "
	    "NIL NIL"));
	assert_non_null(strstr(d, "RESP TAGGED tag=a23 status=NO "
	    "text=\"Mailbox doesn't exist"));
	free(d);

	/* Without a sink the same literals are held. */
	d = check_splits("dovecot-session.imap", false, 64);
	assert_null(strstr(d, "STREAMED"));
	assert_non_null(strstr(d, "A:BINARY[2] S8:10:\"\\x00\\x01\\x02"));
	assert_non_null(strstr(d, "A:RFC822.TEXT S:0:\"\")"));
	free(d);
}

static void
test_fixture_dovecot_append(void **state)
{
	char *d;

	(void)state;
	d = check_splits("dovecot-append.imap", true, 42);
	assert_non_null(strstr(d, "RESP CONTINUE tag=- status=- text=\"OK\""));
	assert_non_null(strstr(d, "code=APPENDUID[ A:1795810460 A:1 ] "
	    "code_text=\"1795810460 1\""));
	assert_non_null(strstr(d, "code=COPYUID[ A:1795810455 A:1:2 A:1:2 ]"));
	assert_non_null(strstr(d, "code=PERMANENTFLAGS[ (A:\\x5cAnswered "));
	assert_non_null(strstr(d, "A:\\x5c*) ]"));
	assert_non_null(strstr(d, "code=READ-WRITE[ ] code_text=\"\""));
	free(d);
	free(check_splits("dovecot-append.imap", false, 42));
}

static void
test_fixture_rfc3501(void **state)
{
	char *d;

	(void)state;
	d = check_splits("rfc3501-examples.imap", true, 47);
	assert_non_null(strstr(d, "RESP CONTINUE tag=- status=- text=\"\"\n"));
	assert_non_null(strstr(d, "A:ENVELOPE (S:37:\"Wed, 17 Jul 1996 "));
	assert_non_null(strstr(d, "((NIL NIL S:7:\"minutes\" "
	    "S:17:\"CNRI.Reston.VA.US\") (S:12:\"John Klensin\""));
	assert_non_null(strstr(d, "keyword=LIST (A:\\x5cNoselect) NIL "
	    "S:0:\"\"\n"));
	assert_non_null(strstr(d, "keyword=SEARCH\n"));
	assert_non_null(strstr(d, "BEGIN 44827 BODY[HEADER.FIELDS (DATE FROM)]"
	    " 91 before[ A:UID A:4827313 ]"));
	assert_non_null(strstr(d, "A:BODY[TEXT]<0> STREAMED:19 A:UID A:999"));
	assert_non_null(strstr(d, "code=ALERT[ ] code_text=\"\" "
	    "text=\"System shutdown in 10 minutes\""));
	free(d);
	free(check_splits("rfc3501-examples.imap", false, 47));
}

static void
test_fixture_rfc9051(void **state)
{
	char *d;

	(void)state;
	d = check_splits("rfc9051-examples.imap", true, 37);
	assert_non_null(strstr(d, "status=PREAUTH code=CAPABILITY[ "
	    "A:IMAP4rev2 ]"));
	assert_non_null(strstr(d, "keyword=LIST (A:\\x5cHasChildren) "
	    "S:1:\"/\" S:10:\"Fruit/Kiwi\""));
	assert_non_null(strstr(d, "keyword=VANISHED (A:EARLIER) "
	    "A:41,43:116,118,120:211,214:540"));
	assert_non_null(strstr(d, "A:BINARY[1] STREAMED8:12"));
	assert_non_null(strstr(d, "BEGIN 5 BODY[]<0> 5 before[ A:UID A:77 "
	    "A:INTERNALDATE S:26:\" 7-Jul-2026 02:44:25 +0130\" ] <hello>"));
	assert_non_null(strstr(d, "code=AUTHENTICATIONFAILED[ ]"));
	assert_non_null(strstr(d, "code=UNAVAILABLE[ ]"));
	assert_non_null(strstr(d, "code=HIGHESTMODSEQ[ A:715194045007 ]"));
	assert_non_null(strstr(d, "keyword=ID NIL\n"));
	assert_non_null(strstr(d, "status=BYE code=ALERT"));
	free(d);
	free(check_splits("rfc9051-examples.imap", false, 37));
}

static void
test_fixture_quirks(void **state)
{
	char *d;

	(void)state;
	d = check_splits("quirks.imap", true, 23);
	assert_non_null(strstr(d, "RESP UNTAGGED tag=- status=OK "
	    "text=\"lower-case status, bare LF\"\n"));
	assert_non_null(strstr(d, "RESP TAGGED tag=a1 status=OK text=\"\"\n"));
	assert_non_null(strstr(d, "RESP TAGGED tag=a2 status=OK text=\"\"\n"));
	assert_non_null(strstr(d, "number=3 keyword=EXISTS\n"));
	assert_non_null(strstr(d, "keyword=SEARCH A:1 A:2 A:3\n"));
	assert_non_null(strstr(d, "RESP CONTINUE tag=- status=- "
	    "text=\"dGVzdA==\"\n"));
	assert_non_null(strstr(d, "text=\"text with \"unbalanced quote and "
	    "( paren {5}\"\n"));
	assert_non_null(strstr(d, "code=X-UNKNOWN[ ] code_text=\"some free "
	    "text (with\" text=\"parens] trailing\""));
	assert_non_null(strstr(d, "code=REFERRAL[ "
	    "A:imap://user;AUTH=*@SERVER2/ ]"));
	assert_non_null(strstr(d, "status=OK text=\"[ no code here\""));
	assert_non_null(strstr(d, "BEGIN 1 BODY[] 5 before[ ] <hello> END"));
	assert_non_null(strstr(d, "BEGIN 1 BODY[1.2.MIME] 0 before[ A:UID "
	    "A:7 ] <> END"));
	assert_non_null(strstr(d, "keyword=LIST () NIL S:3:\"foo\"\n"));
	assert_non_null(strstr(d, "tag=A1 status=OK text=\"two spaces\""));
	assert_non_null(strstr(d, "BEGIN 4 BODY[HEADER.FIELDS (SUBJECT)] 11 "
	    "before[ A:uid A:10 ]"));
	assert_non_null(strstr(d, "A:uid A:10 A:body[header.fields (subject)] "
	    "STREAMED:11 A:flags (A:\\x5cseen)"));
	assert_non_null(strstr(d, "S:1:\"/\" A:[Gmail]/Sent\n"));
	assert_non_null(strstr(d, "S:1:\"/\" A:foo[bar\n"));
	assert_non_null(strstr(d, "A:BODY[TEXT] S:11:\"quoted body\""));
	assert_non_null(strstr(d, "RESP UNTAGGED tag=- status=BYE "
	    "text=\"\"\n"));
	free(d);
	free(check_splits("quirks.imap", false, 23));
}

/* ---- single responses ---------------------------------------------------- */

static struct imap_parser *
new_parser(void)
{
	struct imap_parser *p = imap_parser_new();

	assert_non_null(p);
	return p;
}

/* Feeds text that must be exactly one response. */
static const struct imap_response *
parse_one(struct imap_parser *p, const char *text)
{
	const struct imap_response *resp = NULL;
	size_t len = strlen(text), consumed;

	assert_int_equal(imap_parser_feed(p, (const unsigned char *)text, len,
	    &consumed, &resp), IMAP_PARSE_RESPONSE);
	assert_int_equal(consumed, len);
	assert_non_null(resp);
	return resp;
}

/* Feeds text that must fail with the given error. */
static void
expect_error(const char *text, size_t len, enum imap_parse_error err)
{
	struct imap_parser *p = new_parser();
	const struct imap_response *resp;
	enum imap_parse_result r;
	size_t off = 0, consumed;

	for (;;) {
		r = imap_parser_feed(p, (const unsigned char *)text + off,
		    len - off, &consumed, &resp);
		off += consumed;
		if (r != IMAP_PARSE_RESPONSE)
			break;
	}
	if (r != IMAP_PARSE_ERROR)
		fail_msg("no error for \"%.60s\"", text);
	if (imap_parser_error(p) != err)
		fail_msg("error %d (%s), expected %d, for \"%.60s\"",
		    imap_parser_error(p), imap_parser_error_text(p), err, text);
	assert_non_null(strstr(imap_parser_error_text(p), " at byte "));
	/* The error sticks. */
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)"* OK\r\n",
	    6, &consumed, &resp), IMAP_PARSE_ERROR);
	assert_int_equal(consumed, 0);
	assert_false(imap_parser_idle(p));
	imap_parser_free(&p);
}

static void
expect_error_str(const char *text, enum imap_parse_error err)
{
	expect_error(text, strlen(text), err);
}

static void
test_tagged(void **state)
{
	struct imap_parser *p = new_parser();
	const struct imap_response *r;

	(void)state;
	r = parse_one(p, "a002 OK [READ-WRITE] SELECT completed\r\n");
	assert_int_equal(r->type, IMAP_RESP_TAGGED);
	assert_string_equal(r->tag, "a002");
	assert_int_equal(r->status, IMAP_STATUS_OK);
	assert_string_equal(r->code, "READ-WRITE");
	assert_int_equal(r->code_nargs, 0);
	assert_string_equal(r->code_text, "");
	assert_string_equal(r->text, "SELECT completed");
	assert_null(r->keyword);
	assert_int_equal(r->nargs, 0);

	r = parse_one(p, "A3 no [read-only] Nope (\"really\r\n");
	assert_int_equal(r->status, IMAP_STATUS_NO);
	assert_string_equal(r->code, "READ-ONLY");
	assert_string_equal(r->text, "Nope (\"really");

	r = parse_one(p, "x BAD\r\n");
	assert_int_equal(r->status, IMAP_STATUS_BAD);
	assert_null(r->code);
	assert_string_equal(r->text, "");
	imap_parser_free(&p);
}

static void
test_response_codes(void **state)
{
	struct imap_parser *p = new_parser();
	const struct imap_response *r;
	uint32_t v;
	uint64_t v64;

	(void)state;
	r = parse_one(p, "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n");
	assert_string_equal(r->code, "UIDVALIDITY");
	assert_int_equal(r->code_nargs, 1);
	assert_int_equal(imap_arg_uint32(&r->code_args[0], &v), 0);
	assert_int_equal(v, 3857529045u);

	r = parse_one(p, "* OK [UIDNEXT 4392] Predicted next UID\r\n");
	assert_int_equal(imap_arg_uint32(&r->code_args[0], &v), 0);
	assert_int_equal(v, 4392);

	r = parse_one(p, "* OK [HIGHESTMODSEQ 715194045007] x\r\n");
	assert_int_equal(imap_arg_uint64(&r->code_args[0], &v64), 0);
	assert_int_equal(v64, 715194045007ull);

	r = parse_one(p, "* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] L\r\n");
	assert_string_equal(r->code, "PERMANENTFLAGS");
	assert_int_equal(r->code_nargs, 1);
	assert_int_equal(r->code_args[0].type, IMAP_ARG_LIST);
	assert_int_equal(r->code_args[0].count, 3);
	assert_true(imap_arg_is_atom(&r->code_args[0].list[2], "\\*"));
	assert_string_equal(r->text, "L");

	r = parse_one(p, "A1 OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] ok\r\n");
	assert_string_equal(r->code, "CAPABILITY");
	assert_int_equal(r->code_nargs, 3);
	assert_true(imap_arg_is_atom(&r->code_args[1], "LITERAL+"));

	r = parse_one(p, "A1 NO [AUTHENTICATIONFAILED] Authentication "
	    "failed\r\n");
	assert_string_equal(r->code, "AUTHENTICATIONFAILED");
	r = parse_one(p, "A2 NO [UNAVAILABLE] down\r\n");
	assert_string_equal(r->code, "UNAVAILABLE");
	r = parse_one(p, "* OK [ALERT] System shutdown\r\n");
	assert_string_equal(r->code, "ALERT");
	assert_string_equal(r->text, "System shutdown");

	r = parse_one(p, "A3 OK [APPENDUID 38505 3955] APPEND completed\r\n");
	assert_string_equal(r->code, "APPENDUID");
	assert_int_equal(r->code_nargs, 2);
	assert_string_equal(r->code_text, "38505 3955");

	r = parse_one(p, "A4 OK [COPYUID 38505 304,319:320 3956:3958] "
	    "Done\r\n");
	assert_int_equal(r->code_nargs, 3);
	assert_string_equal(imap_arg_string(&r->code_args[1]), "304,319:320");

	/* Unknown code, free text that is no list of values. */
	r = parse_one(p, "* NO [X-WEIRD a (b \"c] then text ] ok\r\n");
	assert_string_equal(r->code, "X-WEIRD");
	assert_null(r->code_args);
	assert_int_equal(r->code_nargs, 0);
	assert_string_equal(r->code_text, "a (b \"c");
	assert_string_equal(r->text, "then text ] ok");

	/* No ']' at all: no code. */
	r = parse_one(p, "* OK [UIDNEXT 5\r\n");
	assert_null(r->code);
	assert_string_equal(r->text, "[UIDNEXT 5");
	imap_parser_free(&p);
}

static void
test_continuation(void **state)
{
	struct imap_parser *p = new_parser();
	const struct imap_response *r;

	(void)state;
	r = parse_one(p, "+ Ready for literal data\r\n");
	assert_int_equal(r->type, IMAP_RESP_CONTINUE);
	assert_null(r->tag);
	assert_string_equal(r->text, "Ready for literal data");
	r = parse_one(p, "+\r\n");
	assert_int_equal(r->type, IMAP_RESP_CONTINUE);
	assert_string_equal(r->text, "");
	r = parse_one(p, "+ \r\n");
	assert_string_equal(r->text, "");
	r = parse_one(p, "+ YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTz==\r\n");
	assert_string_equal(r->text, "YGgGCSqGSIb3EgECAgIBAAD/////6jcyG4GE3KkTz==");
	imap_parser_free(&p);
}

static void
test_untagged_data(void **state)
{
	struct imap_parser *p = new_parser();
	const struct imap_response *r;

	(void)state;
	r = parse_one(p, "* 23 EXISTS\r\n");
	assert_int_equal(r->type, IMAP_RESP_UNTAGGED);
	assert_int_equal(r->status, IMAP_STATUS_NONE);
	assert_true(r->has_number);
	assert_int_equal(r->number, 23);
	assert_string_equal(r->keyword, "EXISTS");
	assert_null(r->text);

	r = parse_one(p, "* 4294967295 expunge\r\n");
	assert_int_equal(r->number, 4294967295u);
	assert_string_equal(r->keyword, "EXPUNGE");
	r = parse_one(p, "* 0 RECENT\r\n");
	assert_int_equal(r->number, 0);
	assert_string_equal(r->keyword, "RECENT");

	r = parse_one(p, "* ENABLED CONDSTORE QRESYNC\r\n");
	assert_false(r->has_number);
	assert_string_equal(r->keyword, "ENABLED");
	assert_int_equal(r->nargs, 2);

	r = parse_one(p, "* NAMESPACE ((\"\" \"/\")(\"#mh/\" \"/\" \"X-P\" "
	    "(\"F1\" \"F2\"))) NIL ((\"~\" NIL))\r\n");
	assert_int_equal(r->nargs, 3);
	assert_int_equal(r->args[0].count, 2);
	assert_int_equal(r->args[0].list[1].list[3].count, 2);
	assert_int_equal(r->args[1].type, IMAP_ARG_NIL);
	assert_int_equal(r->args[2].list[0].list[1].type, IMAP_ARG_NIL);

	r = parse_one(p, "* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800\r\n");
	assert_int_equal(r->nargs, 6);
	assert_string_equal(imap_arg_string(&r->args[0].list[1]), "A285");

	r = parse_one(p, "* VANISHED (EARLIER) 300:310,405\r\n");
	assert_true(imap_arg_is_atom(&r->args[0].list[0], "EARLIER"));
	assert_string_equal(r->args[1].str, "300:310,405");

	r = parse_one(p, "* PREAUTH IMAP4rev1 server logged in as Smith\r\n");
	assert_int_equal(r->status, IMAP_STATUS_PREAUTH);
	r = parse_one(p, "* BYE Autologout; idle for too long\r\n");
	assert_int_equal(r->status, IMAP_STATUS_BYE);
	assert_string_equal(r->text, "Autologout; idle for too long");

	/* Quoted escapes, and nil in any case. */
	r = parse_one(p, "* ID (\"a\\\"b\" \"c\\\\d\" nil Nil)\r\n");
	assert_int_equal(r->args[0].count, 4);
	assert_string_equal(r->args[0].list[0].str, "a\"b");
	assert_int_equal(r->args[0].list[0].len, 3);
	assert_string_equal(r->args[0].list[1].str, "c\\d");
	assert_int_equal(r->args[0].list[2].type, IMAP_ARG_NIL);
	assert_int_equal(r->args[0].list[3].type, IMAP_ARG_NIL);
	imap_parser_free(&p);
}

static void
test_fetch_items_atoms(void **state)
{
	struct imap_parser *p = new_parser();
	const struct imap_response *r;
	const struct imap_arg *l;

	(void)state;
	r = parse_one(p, "* 7 FETCH (BODY[HEADER.FIELDS (FROM TO)]<0> "
	    "\"x\" BINARY[1.2] NIL BODY[] \"\" MODSEQ (12121231000) "
	    "UID 9)\r\n");
	assert_string_equal(r->keyword, "FETCH");
	assert_int_equal(r->nargs, 1);
	l = r->args[0].list;
	assert_int_equal(r->args[0].count, 10);
	assert_string_equal(l[0].str, "BODY[HEADER.FIELDS (FROM TO)]<0>");
	assert_string_equal(l[2].str, "BINARY[1.2]");
	assert_int_equal(l[3].type, IMAP_ARG_NIL);
	assert_string_equal(l[4].str, "BODY[]");
	assert_int_equal(l[5].type, IMAP_ARG_STRING);
	assert_int_equal(l[5].len, 0);
	assert_int_equal(l[7].type, IMAP_ARG_LIST);
	assert_string_equal(l[7].list[0].str, "12121231000");
	imap_parser_free(&p);
}

static void
test_literals_held(void **state)
{
	struct imap_parser *p = new_parser();
	const struct imap_response *r;
	static const char bin[] = "* 1 FETCH (BINARY[] ~{4}\r\na\0b\r UID 3)\r\n";

	(void)state;
	r = parse_one(p, "* LIST () \"/\" {10}\r\nFruit/Kiwi\r\n");
	assert_int_equal(r->args[2].type, IMAP_ARG_STRING);
	assert_string_equal(r->args[2].str, "Fruit/Kiwi");
	assert_false(r->args[2].literal8);

	r = parse_one(p, "* STATUS {3+}\r\nfoo (MESSAGES 1)\r\n");
	assert_string_equal(r->args[0].str, "foo");

	/* Without a sink: held, NULs and all. */
	{
		size_t consumed;

		assert_int_equal(imap_parser_feed(p, (const unsigned char *)bin,
		    sizeof(bin) - 1, &consumed, &r), IMAP_PARSE_RESPONSE);
		assert_int_equal(consumed, sizeof(bin) - 1);
	}
	assert_int_equal(r->args[0].list[1].type, IMAP_ARG_STRING);
	assert_true(r->args[0].list[1].literal8);
	assert_int_equal(r->args[0].list[1].len, 4);
	assert_memory_equal(r->args[0].list[1].str, "a\0b\r", 5);
	imap_parser_free(&p);
}

/* Two responses in one buffer: the first stops at its line end. */
static void
test_consumed_and_idle(void **state)
{
	struct imap_parser *p = new_parser();
	const struct imap_response *r;
	const char *two = "A1 OK Begin TLS now\r\n* garbage";
	size_t consumed;

	(void)state;
	assert_true(imap_parser_idle(p));
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)two,
	    strlen(two), &consumed, &r), IMAP_PARSE_RESPONSE);
	assert_int_equal(consumed, 21);
	assert_string_equal(r->text, "Begin TLS now");
	assert_true(imap_parser_idle(p));
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)two + 21,
	    strlen(two) - 21, &consumed, &r), IMAP_PARSE_NEED_MORE);
	assert_int_equal(consumed, strlen(two) - 21);
	assert_null(r);
	assert_false(imap_parser_idle(p));

	imap_parser_reset(p);
	assert_true(imap_parser_idle(p));
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)"* ", 2,
	    &consumed, &r), IMAP_PARSE_NEED_MORE);
	assert_false(imap_parser_idle(p));
	r = parse_one(p, "OK\n");
	assert_int_equal(r->status, IMAP_STATUS_OK);
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)"", 0,
	    &consumed, &r), IMAP_PARSE_NEED_MORE);
	assert_int_equal(consumed, 0);

	/* A reset clears an error. */
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)"\0\n", 2,
	    &consumed, &r), IMAP_PARSE_ERROR);
	assert_int_not_equal(imap_parser_error(p), IMAP_ERR_NONE);
	imap_parser_reset(p);
	assert_int_equal(imap_parser_error(p), IMAP_ERR_NONE);
	assert_string_equal(imap_parser_error_text(p), "");
	r = parse_one(p, "* 1 EXISTS\r\n");
	assert_int_equal(r->number, 1);
	imap_parser_free(&p);
	imap_parser_free(&p);	/* NULL is fine */
}

/* ---- streaming ------------------------------------------------------------ */

struct count_sink {
	int begins, ends;
	uint64_t bytes;
	uint32_t uid;
	uint64_t size;
	size_t max_memory;
	struct imap_parser *parser;
	char item[64];
};

static int
count_sink(void *arg, enum imap_sink_event ev,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	struct count_sink *c = arg;
	struct imap_fetch_item fi;
	size_t mem;

	switch (ev) {
	case IMAP_SINK_BEGIN:
		c->begins++;
		assert_int_equal(imap_fetch_decode(info->msgno, info->before,
		    info->nbefore, &fi), 0);
		c->uid = fi.uid;
		c->size = info->size;
		snprintf(c->item, sizeof(c->item), "%s", info->item);
		break;
	case IMAP_SINK_DATA:
		c->bytes += len;
		break;
	case IMAP_SINK_END:
		c->ends++;
		break;
	}
	mem = imap_parser_memory(c->parser);
	if (mem > c->max_memory)
		c->max_memory = mem;
	return 0;
}

/* A 1 GB literal goes through with constant memory. */
static void
test_stream_1gb(void **state)
{
	struct imap_parser *p = new_parser();
	struct count_sink c;
	const struct imap_response *r;
	static unsigned char chunk[256 * 1024];
	const char *head = "* 42 FETCH (UID 4242 RFC822.SIZE 1073741824 "
	    "BODY[] {1073741824}\r\n";
	uint64_t left = 1073741824ull;
	size_t consumed, n, start;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.parser = p;
	imap_parser_set_sink(p, count_sink, &c);
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(imap_parser_feed(p, (const unsigned char *)head,
	    strlen(head), &consumed, &r), IMAP_PARSE_NEED_MORE);
	assert_int_equal(c.begins, 1);
	assert_int_equal(c.uid, 4242);
	assert_string_equal(c.item, "BODY[]");
	start = imap_parser_memory(p);
	while (left > 0) {
		assert_int_equal(imap_parser_literal_left(p), left);
		n = left < sizeof(chunk) ? left : sizeof(chunk);
		assert_int_equal(imap_parser_feed(p, chunk, n, &consumed, &r),
		    IMAP_PARSE_NEED_MORE);
		assert_int_equal(consumed, n);
		left -= n;
	}
	assert_int_equal(imap_parser_literal_left(p), 0);
	r = parse_one(p, ")\r\n");
	assert_int_equal(c.ends, 1);
	assert_int_equal(c.bytes, 1073741824ull);
	assert_int_equal(r->args[0].list[5].type, IMAP_ARG_STREAMED);
	assert_int_equal(r->args[0].list[5].size, 1073741824ull);
	assert_int_equal(c.max_memory, start);
	assert_true(start < 128 * 1024);
	imap_parser_free(&p);
}

/* Streamed only where the contract says; elsewhere held. */
static void
test_stream_which(void **state)
{
	struct imap_parser *p = new_parser();
	struct count_sink c;
	const struct imap_response *r;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.parser = p;
	imap_parser_set_sink(p, count_sink, &c);
	r = parse_one(p, "* 1 FETCH (RFC822.HEADER {2}\r\nab BINARY[1] "
	    "~{1}\r\nc RFC822.TEXT {1}\r\nd RFC822 {1}\r\ne)\r\n");
	assert_int_equal(c.begins, 4);
	assert_int_equal(c.bytes, 5);
	assert_int_equal(r->args[0].list[1].type, IMAP_ARG_STREAMED);
	assert_true(r->args[0].list[3].literal8);

	/* Not FETCH, not the top level of the list, not a body item. */
	r = parse_one(p, "* 1 FETCH (ENVELOPE ({2}\r\nab) X-BODY {1}\r\nz)\r\n");
	assert_int_equal(c.begins, 4);
	assert_int_equal(r->args[0].list[1].list[0].type, IMAP_ARG_STRING);
	assert_int_equal(r->args[0].list[3].type, IMAP_ARG_STRING);
	r = parse_one(p, "* LIST () \"/\" {6}\r\nBODY[]\r\n");
	r = parse_one(p, "* 1 XFETCH (BODY[] {1}\r\na)\r\n");
	assert_int_equal(r->args[0].list[1].type, IMAP_ARG_STRING);
	/* The value position only: a literal item name is held. */
	r = parse_one(p, "* 1 FETCH ({6}\r\nBODY[] NIL)\r\n");
	assert_int_equal(c.begins, 4);
	imap_parser_free(&p);
}

static int
failing_sink(void *arg, enum imap_sink_event ev,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len)
{
	int *fail_on = arg;

	return (int)ev == *fail_on ? -1 : 0;
}

static void
test_sink_failure(void **state)
{
	const char *text = "* 1 FETCH (UID 1 BODY[] {3}\r\nabc)\r\n";
	const struct imap_response *r;
	struct imap_parser *p;
	size_t consumed;
	int ev;

	(void)state;
	for (ev = IMAP_SINK_BEGIN; ev <= IMAP_SINK_END; ev++) {
		p = new_parser();
		imap_parser_set_sink(p, failing_sink, &ev);
		assert_int_equal(imap_parser_feed(p, (const unsigned char *)text,
		    strlen(text), &consumed, &r), IMAP_PARSE_ERROR);
		assert_int_equal(imap_parser_error(p), IMAP_ERR_SINK);
		imap_parser_free(&p);
	}
}

/* ---- hostile input -------------------------------------------------------- */

static char *
repeat(const char *head, const char *unit, size_t n, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail), i;
	char *s = malloc(hl + ul * n + tl + 1), *d;

	assert_non_null(s);
	memcpy(s, head, hl);
	d = s + hl;
	for (i = 0; i < n; i++, d += ul)
		memcpy(d, unit, ul);
	memcpy(d, tail, tl + 1);
	return s;
}

static void
test_hostile_limits(void **state)
{
	struct imap_parser *p;
	const struct imap_response *r;
	char *s;
	size_t consumed, i;

	(void)state;
	/* Overlong line, in one piece and byte by byte: the same error. */
	s = repeat("* OK ", "x", IMAP_MAX_LINE, "\r\n");
	expect_error_str(s, IMAP_ERR_LINE_TOO_LONG);
	p = new_parser();
	for (i = 0; s[i] != '\0'; i++)
		if (imap_parser_feed(p, (unsigned char *)s + i, 1, &consumed,
		    &r) == IMAP_PARSE_ERROR)
			break;
	assert_int_equal(imap_parser_error(p), IMAP_ERR_LINE_TOO_LONG);
	assert_int_equal(i, IMAP_MAX_LINE);
	assert_string_equal(imap_parser_error_text(p), "line too long at byte "
	    "65536");
	assert_true(imap_parser_memory(p) < 2 * IMAP_MAX_LINE);
	imap_parser_free(&p);
	free(s);
	/* Literals do not count, but the lines around them do. */
	s = repeat("* 1 FETCH (X {3}\r\nabc",
	    " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx {1}\r\ny", 3000, ")\r\n");
	expect_error_str(s, IMAP_ERR_LINE_TOO_LONG);
	free(s);
	/* Exactly at the limit is fine. */
	s = repeat("* OK ", "x", IMAP_MAX_LINE - 7, "\r\n");
	p = new_parser();
	r = parse_one(p, s);
	assert_int_equal(strlen(r->text), IMAP_MAX_LINE - 7);
	imap_parser_free(&p);
	free(s);

	/* Nesting. */
	s = repeat("* X ", "(", IMAP_MAX_DEPTH + 1, "\r\n");
	expect_error_str(s, IMAP_ERR_TOO_DEEP);
	free(s);
	s = repeat("* X ", "(", IMAP_MAX_DEPTH, "");
	{
		char *t = repeat(s, ")", IMAP_MAX_DEPTH, "\r\n");

		p = new_parser();
		r = parse_one(p, t);
		assert_int_equal(r->nargs, 1);
		imap_parser_free(&p);
		free(t);
	}
	free(s);
	s = repeat("* OK [X ", "(", IMAP_MAX_DEPTH + 1, "] deep code\r\n");
	expect_error_str(s, IMAP_ERR_TOO_DEEP);
	free(s);

	/* Value count. */
	s = repeat("* SEARCH", " 1", IMAP_MAX_ARGS + 1, "\r\n");
	expect_error_str(s, IMAP_ERR_TOO_MANY_ARGS);
	free(s);
	s = repeat("* SEARCH", " 1", IMAP_MAX_ARGS, "\r\n");
	p = new_parser();
	r = parse_one(p, s);
	assert_int_equal(r->nargs, IMAP_MAX_ARGS);
	imap_parser_free(&p);
	free(s);
	s = repeat("* X (", "()", IMAP_MAX_ARGS, ")\r\n");
	expect_error_str(s, IMAP_ERR_TOO_MANY_ARGS);
	free(s);
}

static void
test_hostile_literals(void **state)
{
	struct imap_parser *p;
	const struct imap_response *r;
	struct count_sink c;
	char *s, head[128];
	size_t consumed;
	int i;

	(void)state;
	expect_error_str("* 1 FETCH (BODY[] {-1}\r\n", IMAP_ERR_LITERAL);
	expect_error_str("* 1 FETCH (BODY[] {1a}\r\n", IMAP_ERR_LITERAL);
	expect_error_str("* 1 FETCH (BODY[] {}\r\n", IMAP_ERR_LITERAL);
	expect_error_str("* 1 FETCH (BODY[] {5\r\n", IMAP_ERR_LITERAL);
	expect_error_str("* 1 FETCH (BODY[] {5} \r\n", IMAP_ERR_LITERAL);
	expect_error_str("* 1 FETCH (BODY[] {5}x\r\n", IMAP_ERR_LITERAL);
	expect_error_str("* 1 FETCH (BODY[] {5++}\r\n", IMAP_ERR_LITERAL);
	expect_error_str("* 1 FETCH (BODY[] {18446744073709551616}\r\n",
	    IMAP_ERR_NUMBER);
	expect_error_str("* 1 FETCH (BODY[] {99999999999999999999999}\r\n",
	    IMAP_ERR_NUMBER);
	expect_error_str("* LIST () \"/\" {1048577}\r\n",
	    IMAP_ERR_LITERAL_TOO_BIG);
	expect_error_str("* 1 FETCH (BODY[] {18446744073709551615}\r\n",
	    IMAP_ERR_LITERAL_TOO_BIG);

	/* A streamed literal may be as big as it says. */
	p = new_parser();
	memset(&c, 0, sizeof(c));
	c.parser = p;
	imap_parser_set_sink(p, count_sink, &c);
	snprintf(head, sizeof(head), "* 1 FETCH (BODY[] {18446744073709551615}"
	    "\r\nabc");
	assert_int_equal(imap_parser_feed(p, (unsigned char *)head,
	    strlen(head), &consumed, &r), IMAP_PARSE_NEED_MORE);
	assert_int_equal(c.size, UINT64_MAX);
	assert_int_equal(c.bytes, 3);
	imap_parser_free(&p);

	/* Held literals add up to IMAP_MAX_RESPONSE. */
	p = new_parser();
	s = malloc(IMAP_MAX_HELD_LITERAL);
	assert_non_null(s);
	memset(s, 'y', IMAP_MAX_HELD_LITERAL);
	snprintf(head, sizeof(head), "* X {%d}\r\n", IMAP_MAX_HELD_LITERAL);
	assert_int_equal(imap_parser_feed(p, (unsigned char *)head,
	    strlen(head), &consumed, &r), IMAP_PARSE_NEED_MORE);
	for (i = 0; i < 8; i++) {
		if (imap_parser_feed(p, (unsigned char *)s,
		    IMAP_MAX_HELD_LITERAL, &consumed, &r) == IMAP_PARSE_ERROR)
			break;
		snprintf(head, sizeof(head), " {%d}\r\n", IMAP_MAX_HELD_LITERAL);
		if (imap_parser_feed(p, (unsigned char *)head, strlen(head),
		    &consumed, &r) == IMAP_PARSE_ERROR)
			break;
	}
	assert_int_equal(imap_parser_error(p), IMAP_ERR_LITERAL_TOO_BIG);
	assert_true(i < 4);
	assert_true(imap_parser_memory(p) < IMAP_MAX_RESPONSE + IMAP_MAX_LINE +
	    IMAP_MAX_HELD_LITERAL);
	imap_parser_free(&p);
	free(s);

	/* The same BODY[] literal without a sink is capped; with one, not. */
	s = repeat("* 1 FETCH (BODY[] {1048577}\r\n", "z", 1048577, ")\r\n");
	expect_error_str(s, IMAP_ERR_LITERAL_TOO_BIG);
	p = new_parser();
	memset(&c, 0, sizeof(c));
	c.parser = p;
	imap_parser_set_sink(p, count_sink, &c);
	r = parse_one(p, s);
	assert_int_equal(c.bytes, 1048577);
	imap_parser_free(&p);
	free(s);
}

static void
test_hostile_numbers(void **state)
{
	(void)state;
	expect_error_str("* 4294967296 EXISTS\r\n", IMAP_ERR_NUMBER);
	expect_error_str("* 99999999999999999999999 EXPUNGE\r\n",
	    IMAP_ERR_NUMBER);
	expect_error_str("* 12x EXISTS\r\n", IMAP_ERR_NUMBER);
	expect_error_str("* 1 FETCH (UID 4294967296)\r\n", IMAP_ERR_NUMBER);
	expect_error_str("* 1 FETCH (UID -1)\r\n", IMAP_ERR_NUMBER);
	expect_error_str("* 1 FETCH (UID \"5\" BODY[] {1}\r\n",
	    IMAP_ERR_NUMBER);
	expect_error_str("* 1 FETCH (FLAGS () UID (1))\r\n", IMAP_ERR_NUMBER);
}

static void
test_hostile_syntax(void **state)
{
	static const char nul_atom[] = "* SEARCH 1 2\0003\r\n";
	static const char nul_text[] = "a1 OK fine\0\r\n";
	static const char nul_quoted[] = "* LIST () \"/\" \"a\0b\"\r\n";
	static const char nul_tag[] = "a\0 OK\r\n";
	static const char garbage[] = "\x01\x02\xff\xfe\r\n";
	struct imap_parser *p;
	const struct imap_response *r;
	size_t consumed;

	(void)state;
	expect_error(nul_atom, sizeof(nul_atom) - 1, IMAP_ERR_NUL);
	expect_error(nul_text, sizeof(nul_text) - 1, IMAP_ERR_NUL);
	expect_error(nul_quoted, sizeof(nul_quoted) - 1, IMAP_ERR_NUL);
	expect_error(nul_tag, sizeof(nul_tag) - 1, IMAP_ERR_NUL);
	expect_error(garbage, sizeof(garbage) - 1, IMAP_ERR_SYNTAX);
	expect_error_str("\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("*\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("* \r\n", IMAP_ERR_SYNTAX);
	expect_error_str("*OK\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("* 5\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("a1\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("a1 FETCH (x)\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("(a1 OK\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("* LIST (\\Noselect \"/\" x\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("* LIST ()) \"/\" x\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("* LIST () \"/ x\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("* LIST () \"/\" x\\\"\r\n* OK\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("* SEARCH 1\x01\r\n", IMAP_ERR_SYNTAX);
	expect_error_str("* SEARCH 1\r2\r\n", IMAP_ERR_SYNTAX);

	/* The position is the stream offset of the offending byte. */
	p = new_parser();
	r = parse_one(p, "* 1 EXISTS\r\n");
	assert_int_equal(imap_parser_feed(p,
	    (const unsigned char *)"* 1 FETCH (BODY[] {-4}\r\n", 24, &consumed,
	    &r), IMAP_PARSE_ERROR);
	assert_string_equal(imap_parser_error_text(p),
	    "negative literal size at byte 30");
	imap_parser_free(&p);
}

/* Garbage of every byte value: an error or a response, never a crash. */
static void
test_hostile_bytes(void **state)
{
	unsigned char buf[64];
	uint32_t st = 12345;
	const struct imap_response *r;
	struct imap_parser *p;
	enum imap_parse_result res;
	size_t consumed, off, i;
	int round;

	(void)state;
	p = new_parser();
	for (round = 0; round < 20000; round++) {
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)rng_next(&st);
		/* Some rounds with a likely start and line ends. */
		if (round % 3 == 0)
			memcpy(buf, "* 1 FETCH (", 11);
		if (round % 2 == 0)
			buf[rng_next(&st) % sizeof(buf)] = '\n';
		for (off = 0; off < sizeof(buf); off += consumed) {
			res = imap_parser_feed(p, buf + off, sizeof(buf) - off,
			    &consumed, &r);
			if (res == IMAP_PARSE_ERROR) {
				imap_parser_reset(p);
				break;
			}
			assert_true(consumed > 0);
		}
	}
	imap_parser_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_dovecot_session),
		cmocka_unit_test(test_fixture_dovecot_append),
		cmocka_unit_test(test_fixture_rfc3501),
		cmocka_unit_test(test_fixture_rfc9051),
		cmocka_unit_test(test_fixture_quirks),
		cmocka_unit_test(test_tagged),
		cmocka_unit_test(test_response_codes),
		cmocka_unit_test(test_continuation),
		cmocka_unit_test(test_untagged_data),
		cmocka_unit_test(test_fetch_items_atoms),
		cmocka_unit_test(test_literals_held),
		cmocka_unit_test(test_consumed_and_idle),
		cmocka_unit_test(test_stream_1gb),
		cmocka_unit_test(test_stream_which),
		cmocka_unit_test(test_sink_failure),
		cmocka_unit_test(test_hostile_limits),
		cmocka_unit_test(test_hostile_literals),
		cmocka_unit_test(test_hostile_numbers),
		cmocka_unit_test(test_hostile_syntax),
		cmocka_unit_test(test_hostile_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
