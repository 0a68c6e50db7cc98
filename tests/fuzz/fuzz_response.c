/*
 * libFuzzer target for the typed views of imap/response, fed from the real
 * parser's output.
 *
 * The first byte picks the mode.  Even: the rest is a server's byte stream;
 * every response (and the "before" list of every streamed FETCH literal,
 * with a sink when bit 1 is set) goes through imap_caps_update,
 * imap_list_decode, imap_status_decode and imap_fetch_decode, and every
 * atom, response code arguments included, through imap_arg_uint32/64.
 * Odd: the rest, up to a NUL, is an INTERNALDATE for
 * imap_parse_internaldate.  Each decoder is checked against a plain
 * reimplementation here (timegm(3) for the dates): same acceptance, same
 * values.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap/parser.h"
#include "imap/response.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* An ATOM of decimal digits whose value is at most max. */
static bool
oracle_number(const struct imap_arg *a, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i;

	if (a->type != IMAP_ARG_ATOM || a->len == 0)
		return false;
	for (i = 0; i < a->len; i++) {
		if (!isdigit((unsigned char)a->str[i]))
			return false;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(a->str[i] - '0'), &v))
			return false;
	}
	if (v > max)
		return false;
	*v_r = v;
	return true;
}

static void
check_numbers(const struct imap_arg *args, size_t n)
{
	uint64_t want, got64;
	uint32_t got32;
	bool ok;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct imap_arg *a = &args[i];

		if (a->type == IMAP_ARG_LIST)
			check_numbers(a->list, a->count);
		if ((a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_STRING) &&
		    a->str[a->len] != '\0')
			abort();
		ok = oracle_number(a, UINT32_MAX, &want);
		if ((imap_arg_uint32(a, &got32) == 0) != ok ||
		    (ok && got32 != want))
			abort();
		ok = oracle_number(a, UINT64_MAX, &want);
		if ((imap_arg_uint64(a, &got64) == 0) != ok ||
		    (ok && got64 != want))
			abort();
	}
}

static bool
digits(const char *s, int n, int *v_r)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*v_r = v;
	return true;
}

/* "[ ]d-Mon-yyyy hh:mm:ss +zzzz", d one or two digits, the whole string. */
static bool
oracle_date(const char *s, time_t *t_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	struct tm tm;
	int day, mon, year, hh, mm, ss, zh, zm, nd, sign;
	bool leap;
	time_t t;

	if (*s == ' ')
		s++;
	nd = isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) ?
	    2 : 1;
	if (!digits(s, nd, &day) || s[nd] != '-')
		return false;
	s += nd + 1;
	for (mon = 0; mon < 12; mon++)
		if (strncasecmp(s, months + 3 * mon, 3) == 0)
			break;
	if (mon == 12 || s[3] != '-' || !digits(s + 4, 4, &year) ||
	    s[8] != ' ')
		return false;
	s += 9;
	if (!digits(s, 2, &hh) || s[2] != ':' || !digits(s + 3, 2, &mm) ||
	    s[5] != ':' || !digits(s + 6, 2, &ss) || s[8] != ' ')
		return false;
	s += 9;
	if (*s != '+' && *s != '-')
		return false;
	sign = *s == '-' ? -1 : 1;
	if (!digits(s + 1, 2, &zh) || !digits(s + 3, 2, &zm) || s[5] != '\0')
		return false;
	leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (day < 1 || day > mdays[mon] || (mon == 1 && day == 29 && !leap) ||
	    hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
		return false;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = year - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	t = timegm(&tm);
	*t_r = t - sign * (zh * 3600 + zm * 60);
	return true;
}

static void
check_date(const char *s)
{
	time_t want = 0, got = 0;
	bool ok = oracle_date(s, &want);

	if ((imap_parse_internaldate(s, &got) == 0) != ok ||
	    (ok && got != want))
		abort();
}

/* What imap_fetch_decode must make of items: the last value of each known
 * item, or failure when any known item has a bad value. */
static void
check_fetch(uint32_t msgno, const struct imap_arg *items, size_t n)
{
	struct imap_fetch_item fi, want;
	const struct imap_arg *name, *v;
	uint64_t u = 0;
	bool ok = true;
	size_t i;

	memset(&want, 0, sizeof want);
	want.msgno = msgno;
	for (i = 0; i + 1 < n && ok; i += 2) {
		name = &items[i];
		v = &items[i + 1];
		if (name->type != IMAP_ARG_ATOM) {
			ok = false;
			break;
		}
		if (strcasecmp(name->str, "UID") == 0) {
			ok = oracle_number(v, UINT32_MAX, &u) && u != 0;
			want.has_uid = true;
			want.uid = (uint32_t)u;
		} else if (strcasecmp(name->str, "INTERNALDATE") == 0) {
			ok = v->type == IMAP_ARG_STRING &&
			    oracle_date(v->str, &want.internaldate);
			want.has_internaldate = true;
		} else if (strcasecmp(name->str, "RFC822.SIZE") == 0) {
			ok = oracle_number(v, UINT64_MAX, &want.size);
			want.has_size = true;
		} else if (strcasecmp(name->str, "MODSEQ") == 0) {
			ok = v->type == IMAP_ARG_LIST && v->count == 1 &&
			    oracle_number(&v->list[0], UINT64_MAX, &want.modseq);
			want.has_modseq = true;
		} else if (strcasecmp(name->str, "FLAGS") == 0) {
			ok = v->type == IMAP_ARG_LIST;
			want.has_flags = true;
			want.flags = v;
		}
	}
	if ((imap_fetch_decode(msgno, items, n, &fi) == 0) != ok)
		abort();
	if (!ok)
		return;
	if (fi.msgno != want.msgno || fi.has_uid != want.has_uid ||
	    fi.has_internaldate != want.has_internaldate ||
	    fi.has_size != want.has_size || fi.has_modseq != want.has_modseq ||
	    fi.has_flags != want.has_flags ||
	    (fi.has_uid && fi.uid != want.uid) ||
	    (fi.has_internaldate && fi.internaldate != want.internaldate) ||
	    (fi.has_size && fi.size != want.size) ||
	    (fi.has_modseq && fi.modseq != want.modseq) ||
	    (fi.has_flags && fi.flags != want.flags))
		abort();
}

static void
check_status(const struct imap_response *r)
{
	static const char *const known[] = { "MESSAGES", "UIDNEXT",
	    "UIDVALIDITY", "SIZE" };
	struct imap_status_item si;
	const struct imap_arg *a = r->args, *l;
	uint64_t vals[4] = { 0 }, v = 0;
	bool has[4] = { false }, ok;
	size_t i, k;

	ok = r->type == IMAP_RESP_UNTAGGED && r->keyword != NULL &&
	    strcmp(r->keyword, "STATUS") == 0 && r->nargs >= 2 &&
	    (a[0].type == IMAP_ARG_ATOM || a[0].type == IMAP_ARG_STRING) &&
	    a[1].type == IMAP_ARG_LIST && a[1].count % 2 == 0;
	for (i = 0; ok && i < a[1].count; i += 2) {
		l = a[1].list;
		for (k = 0; k < 4; k++)
			if (l[i].type == IMAP_ARG_ATOM &&
			    strcasecmp(l[i].str, known[k]) == 0)
				break;
		if (k == 4)
			continue;
		ok = oracle_number(&l[i + 1], k == 3 ? UINT64_MAX :
		    UINT32_MAX, &v);
		has[k] = true;
		vals[k] = v;
	}
	if ((imap_status_decode(r, &si) == 0) != ok)
		abort();
	if (!ok)
		return;
	if (si.name != a[0].str || si.name_len != a[0].len ||
	    si.has_messages != has[0] || si.has_uidnext != has[1] ||
	    si.has_uidvalidity != has[2] || si.has_size != has[3] ||
	    (has[0] && si.messages != vals[0]) ||
	    (has[1] && si.uidnext != vals[1]) ||
	    (has[2] && si.uidvalidity != vals[2]) ||
	    (has[3] && si.size != vals[3]))
		abort();
}

static void
check_list(const struct imap_response *r)
{
	struct imap_list_item li;
	const struct imap_arg *a = r->args;
	unsigned flags = 0;
	bool ok;
	size_t i;

	ok = r->type == IMAP_RESP_UNTAGGED && r->keyword != NULL &&
	    (strcmp(r->keyword, "LIST") == 0 ||
	    strcmp(r->keyword, "LSUB") == 0) && r->nargs >= 3 &&
	    a[0].type == IMAP_ARG_LIST &&
	    (a[1].type == IMAP_ARG_NIL ||
	    (a[1].type == IMAP_ARG_STRING && a[1].len == 1)) &&
	    (a[2].type == IMAP_ARG_ATOM || a[2].type == IMAP_ARG_STRING);
	if ((imap_list_decode(r, &li) == 0) != ok)
		abort();
	if (!ok)
		return;
	for (i = 0; i < a[0].count; i++) {
		const struct imap_arg *f = &a[0].list[i];

		if (f->type != IMAP_ARG_ATOM)
			continue;
		if (strcasecmp(f->str, "\\Noselect") == 0 ||
		    strcasecmp(f->str, "\\NonExistent") == 0)
			flags |= IMAP_LIST_NOSELECT;
		else if (strcasecmp(f->str, "\\HasChildren") == 0)
			flags |= IMAP_LIST_HASCHILDREN;
	}
	if (li.flags != flags || li.name != a[2].str ||
	    li.name_len != a[2].len ||
	    li.delimiter != (a[1].type == IMAP_ARG_NIL ? '\0' : a[1].str[0]))
		abort();
}

static void
check_caps(const struct imap_response *r)
{
	struct imap_caps caps;
	const struct imap_arg *args = NULL;
	size_t n = 0, i, k;
	int want = 0, got;

	if (r->type == IMAP_RESP_UNTAGGED && r->keyword != NULL &&
	    strcmp(r->keyword, "CAPABILITY") == 0) {
		args = r->args;
		n = r->nargs;
		want = 1;
	} else if (r->code != NULL && strcmp(r->code, "CAPABILITY") == 0 &&
	    r->code_nargs > 0) {
		args = r->code_args;
		n = r->code_nargs;
		want = 1;
	}
	memset(&caps, 0, sizeof caps);
	if ((got = imap_caps_update(&caps, r)) == -1)
		return;		/* out of memory */
	if (got != want)
		abort();
	/* The atoms, in order, upper-cased, at most IMAP_MAX_CAPS. */
	for (i = k = 0; i < n && k < IMAP_MAX_CAPS; i++) {
		if (args[i].type != IMAP_ARG_ATOM)
			continue;
		if (k >= caps.n || strcasecmp(caps.names[k], args[i].str) != 0)
			abort();
		for (const char *p = caps.names[k]; *p != '\0'; p++)
			if (*p >= 'a' && *p <= 'z')
				abort();
		if (!imap_caps_has(&caps, args[i].str))
			abort();
		k++;
	}
	if (k != caps.n)
		abort();
	imap_caps_clear(&caps);
	if (caps.n != 0)
		abort();
}

static void
check_response(const struct imap_response *r)
{
	check_numbers(r->args, r->nargs);
	check_numbers(r->code_args, r->code_nargs);
	check_caps(r);
	check_list(r);
	check_status(r);
	if (r->keyword != NULL && strcmp(r->keyword, "FETCH") == 0 &&
	    r->nargs > 0 && r->args[0].type == IMAP_ARG_LIST)
		check_fetch(r->number, r->args[0].list, r->args[0].count);
}

static int
sink(void *arg, enum imap_sink_event ev, const struct imap_literal_info *info,
    const unsigned char *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	if (ev == IMAP_SINK_BEGIN) {
		check_numbers(info->before, info->nbefore);
		check_fetch(info->msgno, info->before, info->nbefore);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct imap_response *resp;
	struct imap_parser *parser;
	enum imap_parse_result r;
	size_t pos, consumed;
	uint8_t *copy;
	char *s;

	if (size == 0)
		return 0;
	if (data[0] & 1) {
		if ((s = strndup((const char *)data + 1, size - 1)) == NULL)
			abort();
		check_date(s);
		free(s);
		return 0;
	}
	if ((parser = imap_parser_new()) == NULL)
		abort();
	if (data[0] & 2)
		imap_parser_set_sink(parser, sink, NULL);
	/* An exact-size copy: reading past the input is caught. */
	size--;
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	memcpy(copy, data + 1, size);
	for (pos = 0; pos < size; pos += consumed) {
		r = imap_parser_feed(parser, copy + pos, size - pos, &consumed,
		    &resp);
		if (r == IMAP_PARSE_ERROR)
			break;
		if (r == IMAP_PARSE_RESPONSE)
			check_response(resp);
	}
	imap_parser_free(&parser);
	free(copy);
	return 0;
}
