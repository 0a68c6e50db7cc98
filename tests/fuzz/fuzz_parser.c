/*
 * libFuzzer target for imap/parser and imap/response.
 *
 * Each input is parsed twice, once whole and once cut into chunks whose
 * sizes are derived from the input, and the two runs must agree byte for
 * byte on every response, every streamed literal and the final error or
 * state.  Every response also goes through the typed views.  The last byte
 * of the input picks options (sink or not, a sink that fails on the n-th
 * literal), so the fuzzer explores those paths too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parser.h"
#include "imap/response.h"

/* Bounds that no input may make the parser exceed. */
#define MEMORY_BOUND (IMAP_MAX_RESPONSE + 4 * IMAP_MAX_LINE + \
	2 * IMAP_MAX_ARGS * sizeof(struct imap_arg) + 256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct out {
	char *s;
	size_t len, cap;
};

struct run {
	struct out out;
	struct imap_parser *parser;
	int fail_begin;		/* fail on this BEGIN (1-based); 0: never */
	int begins;
	const uint8_t *piece;
	size_t piece_len;
};

static void
out_add(struct out *o, const void *data, size_t len)
{
	size_t ncap;

	if (o->len + len > o->cap) {
		ncap = o->cap == 0 ? 4096 : o->cap;
		while (ncap < o->len + len)
			ncap *= 2;
		if ((o->s = realloc(o->s, ncap)) == NULL)
			abort();
		o->cap = ncap;
	}
	memcpy(o->s + o->len, data, len);
	o->len += len;
}

/* prefix, the number in decimal, suffix. */
static void
out_num(struct out *o, const char *prefix, unsigned long long v,
    const char *suffix)
{
	char buf[96];
	int n;

	n = snprintf(buf, sizeof(buf), "%s%llu%s", prefix, v, suffix);
	out_add(o, buf, (size_t)n);
}

static void
out_str(struct out *o, const char *s)
{
	if (s == NULL)
		out_add(o, "(null)", 6);
	else {
		out_num(o, "", strlen(s), ":");
		out_add(o, s, strlen(s));
	}
}

static void
check_arg(const struct imap_arg *a)
{
	time_t t;
	uint32_t v;
	uint64_t v64;

	(void)imap_arg_uint32(a, &v);
	(void)imap_arg_uint64(a, &v64);
	if (a->type == IMAP_ARG_STRING || a->type == IMAP_ARG_ATOM) {
		if (a->str[a->len] != '\0')
			abort();
		(void)imap_parse_internaldate(a->str, &t);
	}
}

static void
dump_args(struct out *o, const struct imap_arg *args, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const struct imap_arg *a = &args[i];

		check_arg(a);
		out_num(o, " ", a->type, "");
		out_num(o, "/", a->literal8, "");
		switch (a->type) {
		case IMAP_ARG_ATOM:
		case IMAP_ARG_STRING:
			out_num(o, ":", a->len, ":");
			out_add(o, a->str, a->len);
			break;
		case IMAP_ARG_LIST:
			out_add(o, "(", 1);
			dump_args(o, a->list, a->count);
			out_add(o, ")", 1);
			break;
		case IMAP_ARG_STREAMED:
			out_num(o, ":", a->size, "");
			break;
		default:
			break;
		}
	}
}

static void
views(const struct imap_response *r)
{
	struct imap_caps caps;
	struct imap_list_item li;
	struct imap_status_item si;
	struct imap_fetch_item fi;

	memset(&caps, 0, sizeof(caps));
	if (imap_caps_update(&caps, r) == 1)
		(void)imap_caps_has(&caps, "IMAP4REV1");
	imap_caps_clear(&caps);
	(void)imap_list_decode(r, &li);
	(void)imap_status_decode(r, &si);
	if (r->keyword != NULL && strcmp(r->keyword, "FETCH") == 0 &&
	    r->nargs > 0 && r->args[0].type == IMAP_ARG_LIST)
		(void)imap_fetch_decode(r->number, r->args[0].list,
		    r->args[0].count, &fi);
}

static void
dump_response(struct out *o, const struct imap_response *r)
{
	out_num(o, "RESP ", r->type, "");
	out_num(o, " ", r->status, " ");
	out_str(o, r->tag);
	out_add(o, " ", 1);
	out_str(o, r->code);
	out_add(o, " ", 1);
	out_str(o, r->code_text);
	dump_args(o, r->code_args, r->code_nargs);
	out_add(o, " ", 1);
	out_str(o, r->text);
	out_num(o, " ", r->has_number, "");
	out_num(o, " ", r->number, " ");
	out_str(o, r->keyword);
	dump_args(o, r->args, r->nargs);
	out_add(o, "\n", 1);
	views(r);
}

static int
sink(void *arg, enum imap_sink_event ev, const struct imap_literal_info *info,
    const unsigned char *data, size_t len)
{
	struct run *run = arg;
	struct imap_fetch_item fi;

	switch (ev) {
	case IMAP_SINK_BEGIN:
		out_num(&run->out, "BEGIN ", info->msgno, " ");
		out_str(&run->out, info->item);
		out_num(&run->out, " ", info->size, "");
		dump_args(&run->out, info->before, info->nbefore);
		out_add(&run->out, "<", 1);
		(void)imap_fetch_decode(info->msgno, info->before,
		    info->nbefore, &fi);
		if (++run->begins == run->fail_begin)
			return -1;
		break;
	case IMAP_SINK_DATA:
		/* The bytes must be the caller's, not a copy. */
		if (len == 0 || data < run->piece ||
		    data + len > run->piece + run->piece_len)
			abort();
		out_add(&run->out, data, len);
		break;
	case IMAP_SINK_END:
		out_add(&run->out, ">END\n", 5);
		break;
	}
	return 0;
}

static uint64_t
rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Parses data in chunks: chunk 0 means all at once.  Each chunk is fed from
 * an exact-size heap copy so that reading past it is caught.
 */
static void
parse(struct run *run, const uint8_t *data, size_t size, uint64_t seed,
    bool chunked)
{
	const struct imap_response *resp;
	enum imap_parse_result r;
	size_t off = 0, n, pos, consumed;
	uint8_t *copy;
	bool failed = false;

	while (off < size && !failed) {
		n = size - off;
		if (chunked) {
			uint64_t x = rng_next(&seed);

			n = x % 8 == 0 ? x % 1024 + 1 : x % 16 + 1;
			if (n > size - off)
				n = size - off;
		}
		if ((copy = malloc(n)) == NULL)
			abort();
		memcpy(copy, data + off, n);
		run->piece = copy;
		run->piece_len = n;
		for (pos = 0; pos < n;) {
			r = imap_parser_feed(run->parser, copy + pos, n - pos,
			    &consumed, &resp);
			if (consumed > n - pos)
				abort();
			pos += consumed;
			if (imap_parser_memory(run->parser) > MEMORY_BOUND)
				abort();
			if (r == IMAP_PARSE_RESPONSE) {
				if (consumed == 0)
					abort();
				dump_response(&run->out, resp);
			} else if (r == IMAP_PARSE_ERROR) {
				out_num(&run->out, "ERROR ",
				    imap_parser_error(run->parser), " ");
				out_str(&run->out,
				    imap_parser_error_text(run->parser));
				failed = true;
				break;
			} else if (pos != n)
				abort();
		}
		free(copy);
		off += n;
	}
	out_num(&run->out, "\nIDLE ", imap_parser_idle(run->parser), "\n");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, chunks;
	uint64_t seed = 0xcbf29ce484222325ull;
	uint8_t opt = size > 0 ? data[size - 1] : 0;
	size_t i;

	for (i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 0x100000001b3ull;
	if (seed == 0)
		seed = 1;

	memset(&whole, 0, sizeof(whole));
	memset(&chunks, 0, sizeof(chunks));
	if ((whole.parser = imap_parser_new()) == NULL ||
	    (chunks.parser = imap_parser_new()) == NULL)
		abort();
	/* Options: bit 0 no sink; bits 1-2 fail on that BEGIN. */
	whole.fail_begin = chunks.fail_begin = (opt >> 1) & 3;
	if (!(opt & 1)) {
		imap_parser_set_sink(whole.parser, sink, &whole);
		imap_parser_set_sink(chunks.parser, sink, &chunks);
	}

	parse(&whole, data, size, seed, false);
	parse(&chunks, data, size, seed, true);
	if (whole.out.len != chunks.out.len ||
	    memcmp(whole.out.s, chunks.out.s, whole.out.len) != 0) {
		fprintf(stderr, "whole and chunked parses differ\n--- whole\n"
		    "%.*s\n--- chunked\n%.*s\n", (int)whole.out.len,
		    whole.out.s, (int)chunks.out.len, chunks.out.s);
		abort();
	}

	/* A reset parser parses again from scratch. */
	imap_parser_reset(whole.parser);
	if (!imap_parser_idle(whole.parser) ||
	    imap_parser_error(whole.parser) != IMAP_ERR_NONE)
		abort();

	imap_parser_free(&whole.parser);
	imap_parser_free(&chunks.parser);
	free(whole.out.s);
	free(chunks.out.s);
	return 0;
}
