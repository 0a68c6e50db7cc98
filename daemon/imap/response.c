/*
 * imap/response: typed views of parsed responses; see response.h.
 */
#include "imap/response.h"
#include "util/num.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int caps_set(struct imap_caps *, const struct imap_arg *, size_t);
static int64_t days_from_civil(int64_t, unsigned, unsigned);
static int two_digits(const char *);

/* "[CODE] text", or with_args "[CODE args] text"; text alone without a
 * code. */
static const char *
format_text(const struct imap_response *resp, bool with_args, char *buf,
    size_t size)
{
	bool args = with_args && resp->code != NULL &&
	    resp->code_text != NULL && resp->code_text[0] != '\0';

	snprintf(buf, size, "%s%s%s%s%s%s", resp->code != NULL ? "[" : "",
	    resp->code != NULL ? resp->code : "", args ? " " : "",
	    args ? resp->code_text : "", resp->code != NULL ? "] " : "",
	    resp->text != NULL ? resp->text : "");
	return buf;
}

const char *
imap_response_text(const struct imap_response *resp, char *buf, size_t size)
{
	return format_text(resp, false, buf, size);
}

const char *
imap_response_status_line(const struct imap_response *resp, char *buf,
    size_t size)
{
	static const char *const names[] = {
		[IMAP_STATUS_OK] = "OK", [IMAP_STATUS_NO] = "NO",
		[IMAP_STATUS_BAD] = "BAD", [IMAP_STATUS_BYE] = "BYE",
		[IMAP_STATUS_PREAUTH] = "PREAUTH",
	};
	const char *name = NULL;
	size_t len;

	if ((size_t)resp->status < sizeof names / sizeof *names)
		name = names[resp->status];
	snprintf(buf, size, "%s ", name != NULL ? name : "?");
	len = strlen(buf);
	if (len < size)
		format_text(resp, true, buf + len, size - len);
	return buf;
}

bool
imap_arg_is_atom(const struct imap_arg *arg, const char *atom)
{
	return arg != NULL && arg->type == IMAP_ARG_ATOM &&
	    strcasecmp(arg->str, atom) == 0;
}

const char *
imap_arg_string(const struct imap_arg *arg)
{
	if (arg == NULL ||
	    (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_STRING))
		return NULL;
	return arg->str;
}

int
imap_arg_uint32(const struct imap_arg *arg, uint32_t *value_r)
{
	uint64_t v;

	if (arg == NULL || arg->type != IMAP_ARG_ATOM ||
	    num_parse_u64n(arg->str, arg->len, UINT32_MAX, &v) == -1)
		return -1;
	*value_r = (uint32_t)v;
	return 0;
}

int
imap_arg_uint64(const struct imap_arg *arg, uint64_t *value_r)
{
	if (arg == NULL || arg->type != IMAP_ARG_ATOM)
		return -1;
	return num_parse_u64n(arg->str, arg->len, UINT64_MAX, value_r);
}

int
imap_caps_update(struct imap_caps *caps, const struct imap_response *resp)
{
	if (resp->type == IMAP_RESP_UNTAGGED && resp->keyword != NULL &&
	    strcmp(resp->keyword, "CAPABILITY") == 0)
		return caps_set(caps, resp->args, resp->nargs);
	if (resp->code != NULL && strcmp(resp->code, "CAPABILITY") == 0 &&
	    resp->code_nargs > 0)
		return caps_set(caps, resp->code_args, resp->code_nargs);
	return 0;
}

static int
caps_set(struct imap_caps *caps, const struct imap_arg *args, size_t nargs)
{
	size_t i, j;
	char *name;

	imap_caps_clear(caps);
	for (i = 0; i < nargs && caps->n < IMAP_MAX_CAPS; i++) {
		if (args[i].type != IMAP_ARG_ATOM)
			continue;
		if ((name = strdup(args[i].str)) == NULL) {
			imap_caps_clear(caps);
			return -1;
		}
		for (j = 0; name[j] != '\0'; j++)
			if (name[j] >= 'a' && name[j] <= 'z')
				name[j] -= 'a' - 'A';
		caps->names[caps->n++] = name;
	}
	return 1;
}

bool
imap_caps_has(const struct imap_caps *caps, const char *name)
{
	size_t i;

	for (i = 0; i < caps->n; i++)
		if (strcasecmp(caps->names[i], name) == 0)
			return true;
	return false;
}

void
imap_caps_clear(struct imap_caps *caps)
{
	size_t i;

	for (i = 0; i < caps->n; i++) {
		free(caps->names[i]);
		caps->names[i] = NULL;
	}
	caps->n = 0;
}

int
imap_list_decode(const struct imap_response *resp,
    struct imap_list_item *item_r)
{
	const struct imap_arg *a = resp->args, *f;
	size_t i;

	memset(item_r, 0, sizeof(*item_r));
	if (resp->type != IMAP_RESP_UNTAGGED || resp->keyword == NULL ||
	    (strcmp(resp->keyword, "LIST") != 0 &&
	    strcmp(resp->keyword, "LSUB") != 0) || resp->nargs < 3 ||
	    a[0].type != IMAP_ARG_LIST)
		return -1;
	for (i = 0; i < a[0].count; i++) {
		f = &a[0].list[i];
		if (imap_arg_is_atom(f, "\\Noselect") ||
		    imap_arg_is_atom(f, "\\NonExistent"))
			item_r->flags |= IMAP_LIST_NOSELECT;
		else if (imap_arg_is_atom(f, "\\HasChildren"))
			item_r->flags |= IMAP_LIST_HASCHILDREN;
	}
	if (a[1].type == IMAP_ARG_NIL)
		item_r->delimiter = '\0';
	else if (a[1].type == IMAP_ARG_STRING && a[1].len == 1)
		item_r->delimiter = a[1].str[0];
	else
		return -1;
	if (a[2].type != IMAP_ARG_ATOM && a[2].type != IMAP_ARG_STRING)
		return -1;
	item_r->name = a[2].str;
	item_r->name_len = a[2].len;
	return 0;
}

int
imap_status_decode(const struct imap_response *resp,
    struct imap_status_item *item_r)
{
	const struct imap_arg *a = resp->args, *l;
	size_t i;

	memset(item_r, 0, sizeof(*item_r));
	if (resp->type != IMAP_RESP_UNTAGGED || resp->keyword == NULL ||
	    strcmp(resp->keyword, "STATUS") != 0 || resp->nargs < 2 ||
	    (a[0].type != IMAP_ARG_ATOM && a[0].type != IMAP_ARG_STRING) ||
	    a[1].type != IMAP_ARG_LIST || a[1].count % 2 != 0)
		return -1;
	item_r->name = a[0].str;
	item_r->name_len = a[0].len;
	l = a[1].list;
	for (i = 0; i < a[1].count; i += 2) {
		if (imap_arg_is_atom(&l[i], "MESSAGES")) {
			if (imap_arg_uint32(&l[i + 1], &item_r->messages) == -1)
				return -1;
			item_r->has_messages = true;
		} else if (imap_arg_is_atom(&l[i], "UIDNEXT")) {
			if (imap_arg_uint32(&l[i + 1], &item_r->uidnext) == -1)
				return -1;
			item_r->has_uidnext = true;
		} else if (imap_arg_is_atom(&l[i], "UIDVALIDITY")) {
			if (imap_arg_uint32(&l[i + 1],
			    &item_r->uidvalidity) == -1)
				return -1;
			item_r->has_uidvalidity = true;
		} else if (imap_arg_is_atom(&l[i], "SIZE")) {
			if (imap_arg_uint64(&l[i + 1], &item_r->size) == -1)
				return -1;
			item_r->has_size = true;
		}
	}
	return 0;
}

/* The zone of an INTERNALDATE imap_parse_internaldate() took: it ends in
 * "+hhmm" or "-hhmm".  Minutes east of UTC. */
static int16_t
internaldate_zone(const char *s)
{
	const char *z = s + strlen(s) - 5;
	int minutes = ((z[1] - '0') * 10 + (z[2] - '0')) * 60 +
	    (z[3] - '0') * 10 + (z[4] - '0');

	return (int16_t)(z[0] == '-' ? -minutes : minutes);
}

int
imap_fetch_decode(uint32_t msgno, const struct imap_arg *items,
    size_t nitems, struct imap_fetch_item *item_r)
{
	const struct imap_arg *name, *value;
	size_t i;

	memset(item_r, 0, sizeof(*item_r));
	item_r->msgno = msgno;
	/* A trailing name without its value is what a partial list ends
	 * with when it is cut at a literal: it is skipped. */
	for (i = 0; i + 1 < nitems; i += 2) {
		name = &items[i];
		value = &items[i + 1];
		if (name->type != IMAP_ARG_ATOM)
			return -1;
		if (strcasecmp(name->str, "UID") == 0) {
			if (imap_arg_uint32(value, &item_r->uid) == -1 ||
			    item_r->uid == 0)
				return -1;
			item_r->has_uid = true;
		} else if (strcasecmp(name->str, "INTERNALDATE") == 0) {
			if (value->type != IMAP_ARG_STRING ||
			    imap_parse_internaldate(value->str,
			    &item_r->internaldate) == -1)
				return -1;
			item_r->tz_minutes = internaldate_zone(value->str);
			item_r->has_internaldate = true;
		} else if (strcasecmp(name->str, "RFC822.SIZE") == 0) {
			if (imap_arg_uint64(value, &item_r->size) == -1)
				return -1;
			item_r->has_size = true;
		} else if (strcasecmp(name->str, "MODSEQ") == 0) {
			if (value->type != IMAP_ARG_LIST ||
			    value->count != 1 ||
			    imap_arg_uint64(&value->list[0],
			    &item_r->modseq) == -1)
				return -1;
			item_r->has_modseq = true;
		} else if (strcasecmp(name->str, "FLAGS") == 0) {
			if (value->type != IMAP_ARG_LIST)
				return -1;
			item_r->flags = value;
			item_r->has_flags = true;
		}
	}
	return 0;
}

int
imap_fetch_response_decode(const struct imap_response *resp,
    struct imap_fetch_item *item_r)
{
	if (resp->keyword == NULL || strcmp(resp->keyword, "FETCH") != 0 ||
	    !resp->has_number || resp->nargs != 1 ||
	    resp->args[0].type != IMAP_ARG_LIST)
		return -1;
	return imap_fetch_decode(resp->number, resp->args[0].list,
	    resp->args[0].count, item_r);
}

static const char months[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

int
imap_parse_internaldate(const char *s, time_t *time_r)
{
	static const unsigned mdays[12] = {
		31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	unsigned day, month, year, hour, min, sec, zh, zm;
	int64_t t;
	int sign;
	bool leap;
	int n;

	/* date-day-fixed is " 7" or "07"; a bare "7" is taken too. */
	if (s[0] == ' ')
		s++;
	if (s[0] < '0' || s[0] > '9')
		return -1;
	if (s[1] >= '0' && s[1] <= '9') {
		day = (s[0] - '0') * 10 + (s[1] - '0');
		s += 2;
	} else {
		day = s[0] - '0';
		s++;
	}
	if (*s++ != '-')
		return -1;
	for (month = 0; month < 12; month++)
		if (strncasecmp(s, months[month], 3) == 0)
			break;
	if (month == 12)
		return -1;
	s += 3;
	if (*s++ != '-')
		return -1;
	if ((n = two_digits(s)) == -1 || two_digits(s + 2) == -1)
		return -1;
	year = n * 100 + two_digits(s + 2);
	s += 4;
	if (*s++ != ' ' || (n = two_digits(s)) == -1)
		return -1;
	hour = n;
	if (s[2] != ':' || (n = two_digits(s + 3)) == -1)
		return -1;
	min = n;
	if (s[5] != ':' || (n = two_digits(s + 6)) == -1)
		return -1;
	sec = n;
	s += 8;
	if (*s++ != ' ')
		return -1;
	if (*s == '+')
		sign = 1;
	else if (*s == '-')
		sign = -1;
	else
		return -1;
	s++;
	if ((n = two_digits(s)) == -1)
		return -1;
	zh = n;
	if ((n = two_digits(s + 2)) == -1)
		return -1;
	zm = n;
	if (s[4] != '\0')
		return -1;

	leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (day < 1 || day > mdays[month] || (month == 1 && day == 29 &&
	    !leap) || hour > 23 || min > 59 || sec > 60 || zh > 23 || zm > 59)
		return -1;
	t = days_from_civil(year, month + 1, day) * 86400 + hour * 3600 +
	    min * 60 + sec;
	/* "-0700" is seven hours behind UTC. */
	t -= sign * (int64_t)(zh * 3600 + zm * 60);
	*time_r = (time_t)t;
	return 0;
}

static int
two_digits(const char *s)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Days since 1970-01-01 of a proleptic Gregorian date; m 1-12. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}
