/*
 * The decisions of --restore (see restore_plan.h).
 */
#include "mirror/restore_plan.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "mbox/mbox.h"
#include "mirror/names.h"
#include "util/num.h"

static const char *const month_names[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* Whether names_mbox_path(raw, d) is file. */
static bool
gives_file(const char *raw, char d, const char *file)
{
	char *path = names_mbox_path(raw, strlen(raw), d, false);
	bool same = path != NULL && strcmp(path, file) == 0;

	free(path);
	return same;
}

bool
restore_kept_aside(const char *base, const char *name)
{
	static const char ext[] = ".mbox", tag[] = ".uidvalidity-";
	size_t blen = strlen(base), nlen = strlen(name), stem;
	const char *p, *end;

	if (blen <= sizeof ext - 1 ||
	    strcmp(base + blen - (sizeof ext - 1), ext) != 0)
		return false;
	stem = blen - (sizeof ext - 1);
	if (nlen < stem + sizeof tag - 1 + 1 + sizeof ext - 1 ||
	    strncmp(name, base, stem) != 0 ||
	    strncmp(name + stem, tag, sizeof tag - 1) != 0 ||
	    strcmp(name + nlen - (sizeof ext - 1), ext) != 0)
		return false;
	/* <N>[-<k>]: digits, then at most one "-digits". */
	p = name + stem + sizeof tag - 1;
	end = name + nlen - (sizeof ext - 1);
	if (p == end || !isdigit((unsigned char)*p))
		return false;
	while (p < end && isdigit((unsigned char)*p))
		p++;
	if (p < end && *p == '-' && p + 1 < end) {
		p++;
		while (p < end && isdigit((unsigned char)*p))
			p++;
	}
	return p == end;
}

char
restore_source_delimiter(const char *raw, const char *file)
{
	char tried[96];
	size_t ntried = 0;

	for (const char *p = raw; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		/* Only punctuation delimits ('&' starts a modified UTF-7
		 * shift); each candidate is tried once. */
		if (c <= 0x20 || c >= 0x7f || c == '&' ||
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || memchr(tried, c, ntried) != NULL)
			continue;
		if (ntried < sizeof tried)
			tried[ntried++] = (char)c;
		if (gives_file(raw, (char)c, file))
			return (char)c;
	}
	return '\0';
}

int
restore_target_name(const char *raw, char src_delim, char dst_delim,
    char **name_r)
{
	size_t len = strlen(raw);
	char *out;

	*name_r = NULL;
	if ((out = strdup(raw)) == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (src_delim != '\0' && raw[i] == src_delim) {
			if (dst_delim == '\0') {
				free(out);
				return 1;
			}
			out[i] = dst_delim;
		} else if (dst_delim != '\0' && raw[i] == dst_delim) {
			/* Part of a component here, a delimiter there. */
			free(out);
			return 1;
		}
	}
	/* INBOX is case-insensitive as a first component. */
	if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' ||
	    (dst_delim != '\0' && out[5] == dst_delim)))
		memcpy(out, "INBOX", 5);
	*name_r = out;
	return 0;
}

const char *
restore_format_date(char *buf, int64_t utc, int tz_minutes)
{
	time_t local;
	struct tm tm;
	int tz = tz_minutes;

	if (tz < -24 * 60 || tz > 24 * 60)
		tz = 0;
	local = (time_t)(utc + (int64_t)tz * 60);
	if (gmtime_r(&local, &tm) == NULL) {
		local = 0;
		tz = 0;
		gmtime_r(&local, &tm);
	}
	snprintf(buf, RESTORE_DATE_MAX,
	    "%02d-%s-%04d %02d:%02d:%02d %c%02d%02d", tm.tm_mday,
	    month_names[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, tz < 0 ? '-' : '+', abs(tz) / 60, abs(tz) % 60);
	return buf;
}

/* RFC 3501 atom: no atom-specials, no '\\' (a flag-keyword is an atom). */
static bool
keyword_valid(const char *k, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

char *
restore_format_flags(unsigned flags, const char *keywords, size_t *dropped_r)
{
	static const struct {
		unsigned bit;
		const char *name;
	} system[] = {
		{ RESTORE_FLAG_SEEN, "\\Seen" },
		{ RESTORE_FLAG_ANSWERED, "\\Answered" },
		{ RESTORE_FLAG_FLAGGED, "\\Flagged" },
		{ RESTORE_FLAG_DELETED, "\\Deleted" },
		{ RESTORE_FLAG_DRAFT, "\\Draft" },
	};
	size_t cap = 64 + (keywords != NULL ? strlen(keywords) : 0), len = 0;
	size_t dropped = 0, n;
	const char *k = keywords;
	char *out;

	if ((out = malloc(cap + 1)) == NULL)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof system / sizeof system[0]; i++) {
		if ((flags & system[i].bit) == 0)
			continue;
		len += (size_t)snprintf(out + len, cap + 1 - len, "%s%s",
		    len > 0 ? " " : "", system[i].name);
	}
	while (k != NULL && *k != '\0') {
		k += strspn(k, " ");
		n = strcspn(k, " ");
		if (n == 0)
			break;
		if (keyword_valid(k, n)) {
			if (len > 0)
				out[len++] = ' ';
			memcpy(out + len, k, n);
			len += n;
			out[len] = '\0';
		} else {
			dropped++;
		}
		k += n;
	}
	if (dropped_r != NULL)
		*dropped_r = dropped;
	return out;
}

uint64_t
restore_message_id_hash(const char *hdr, size_t len)
{
	return mbox_header_message_id_hash(hdr, len);
}

/* Counted keys */

static int
key_add(struct restore_key **v, size_t *n, size_t *cap, uint64_t a,
    uint64_t b)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct restore_key *nv = reallocarray(*v, c, sizeof *nv);

		if (nv == NULL)
			return -1;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = (struct restore_key){ a, b, 1 };
	return 0;
}

static int
key_cmp(const void *x, const void *y)
{
	const struct restore_key *p = x, *q = y;

	if (p->a != q->a)
		return p->a < q->a ? -1 : 1;
	if (p->b != q->b)
		return p->b < q->b ? -1 : 1;
	return 0;
}

/* Sorts and merges equal keys into counts. */
static void
key_sort(struct restore_key *v, size_t *n)
{
	size_t out = 0;

	if (*n == 0)
		return;
	qsort(v, *n, sizeof *v, key_cmp);
	for (size_t i = 1; i < *n; i++) {
		if (key_cmp(&v[out], &v[i]) == 0)
			v[out].count += v[i].count;
		else
			v[++out] = v[i];
	}
	*n = out + 1;
}

static bool
key_take(struct restore_key *v, size_t n, uint64_t a, uint64_t b)
{
	struct restore_key k = { a, b, 0 }, *hit;

	hit = n > 0 ? bsearch(&k, v, n, sizeof *v, key_cmp) : NULL;
	if (hit == NULL || hit->count == 0)
		return false;
	hit->count--;
	return true;
}

int
restore_present_add(struct restore_present *p, uint64_t message_id_hash,
    uint64_t size, int64_t internaldate)
{
	p->sorted = false;
	if (message_id_hash != 0 && key_add(&p->by_id, &p->n_id, &p->cap_id,
	    message_id_hash, size) != 0)
		return -1;
	return key_add(&p->by_date, &p->n_date, &p->cap_date, size,
	    (uint64_t)internaldate);
}

void
restore_present_sort(struct restore_present *p)
{
	key_sort(p->by_id, &p->n_id);
	key_sort(p->by_date, &p->n_date);
	p->sorted = true;
}

bool
restore_present_take_id(struct restore_present *p, uint64_t message_id_hash,
    uint64_t size)
{
	if (!p->sorted)
		restore_present_sort(p);
	return message_id_hash != 0 && key_take(p->by_id, p->n_id,
	    message_id_hash, size);
}

bool
restore_present_take_date(struct restore_present *p, uint64_t size,
    int64_t internaldate)
{
	if (!p->sorted)
		restore_present_sort(p);
	return key_take(p->by_date, p->n_date, size, (uint64_t)internaldate);
}

bool
restore_present_take(struct restore_present *p, uint64_t message_id_hash,
    uint64_t size, int64_t internaldate)
{
	if (message_id_hash != 0)
		return restore_present_take_id(p, message_id_hash, size);
	return restore_present_take_date(p, size, internaldate);
}

void
restore_present_free(struct restore_present *p)
{
	free(p->by_id);
	free(p->by_date);
	memset(p, 0, sizeof *p);
}

/* The journal */

static int
record_cmp(const void *x, const void *y)
{
	const struct restore_record *p = x, *q = y;

	if (p->box != q->box)
		return p->box < q->box ? -1 : 1;
	if (p->offset != q->offset)
		return p->offset < q->offset ? -1 : 1;
	if (p->length != q->length)
		return p->length < q->length ? -1 : 1;
	if (p->digest != q->digest)
		return p->digest < q->digest ? -1 : 1;
	return 0;
}

uint64_t
restore_digest64(const uint8_t *digest)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | digest[i];
	return v;
}

static int
parse_hex64(const char *s, uint64_t *v_r)
{
	if (strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16)
		return -1;
	*v_r = strtoull(s, NULL, 16);
	return 0;
}

/* One line (without its LF) into *r: 0, or -1. */
static int
parse_line(const char *line, size_t len, struct restore_record *r)
{
	char buf[RESTORE_LINE_MAX + 1], *save = NULL, *tok[7];
	size_t ntok = 0;
	uint64_t v;

	if (len > RESTORE_LINE_MAX)
		return -1;
	memcpy(buf, line, len);
	buf[len] = '\0';
	for (char *t = strtok_r(buf, " ", &save); t != NULL;
	    t = strtok_r(NULL, " ", &save)) {
		if (ntok == 7)
			return -1;
		tok[ntok++] = t;
	}
	memset(r, 0, sizeof *r);
	if (ntok == 5 && strcmp(tok[0], "S") == 0)
		r->mark = RESTORE_MARK_SENDING;
	else if (ntok == 7 && strcmp(tok[0], "D") == 0)
		r->mark = RESTORE_MARK_DONE;
	else
		return -1;
	if (parse_hex64(tok[1], &r->box) != 0 ||
	    num_parse_u64(tok[2], UINT64_MAX, &r->offset) != 0 ||
	    num_parse_u64(tok[3], UINT64_MAX, &r->length) != 0 ||
	    parse_hex64(tok[4], &r->digest) != 0)
		return -1;
	if (r->mark == RESTORE_MARK_DONE) {
		if (num_parse_u64(tok[5], UINT32_MAX, &v) != 0)
			return -1;
		r->uidvalidity = (uint32_t)v;
		if (num_parse_u64(tok[6], UINT32_MAX, &v) != 0)
			return -1;
		r->uid = (uint32_t)v;
	}
	return 0;
}

int
restore_journal_parse(const char *buf, size_t len, const char *name,
    struct restore_journal *j, char **error_r)
{
	static const char header[] = RESTORE_JOURNAL_HEADER;
	struct restore_record r, *nv;
	size_t pos, lineno = 1, out;
	const char *lf;

	restore_journal_free(j);
	if (len < sizeof header - 1 || memcmp(buf, header,
	    sizeof header - 1) != 0) {
		/* A header cut short is a journal that never got a record. */
		if (len < sizeof header - 1 && memcmp(buf, header, len) == 0)
			return 0;
		return log_set_error(error_r, "%s:1: not a restore journal",
		    name);
	}
	for (pos = sizeof header - 1; pos < len; pos = (size_t)(lf - buf) + 1) {
		lineno++;
		if ((lf = memchr(buf + pos, '\n', len - pos)) == NULL)
			break;	/* cut short by a crash: never acted on */
		if (parse_line(buf + pos, (size_t)(lf - buf) - pos, &r) != 0) {
			restore_journal_free(j);
			return log_set_error(error_r, "%s:%zu: unreadable "
			    "record", name, lineno);
		}
		if (j->n == j->cap) {
			size_t c = j->cap ? j->cap * 2 : 256;

			if ((nv = reallocarray(j->v, c, sizeof *nv)) == NULL) {
				restore_journal_free(j);
				return log_set_error(error_r, "out of memory");
			}
			j->v = nv;
			j->cap = c;
		}
		j->v[j->n++] = r;
	}
	/* Sorted, one record per message: DONE wins. */
	if (j->n > 0) {
		qsort(j->v, j->n, sizeof *j->v, record_cmp);
		out = 0;
		for (size_t i = 1; i < j->n; i++) {
			if (record_cmp(&j->v[out], &j->v[i]) != 0)
				j->v[++out] = j->v[i];
			else if (j->v[i].mark == RESTORE_MARK_DONE)
				j->v[out] = j->v[i];
		}
		j->n = out + 1;
	}
	return 0;
}

enum restore_mark
restore_journal_find(const struct restore_journal *j, uint64_t box,
    uint64_t offset, uint64_t length, uint64_t digest)
{
	struct restore_record k = { .box = box, .offset = offset,
	    .length = length, .digest = digest };
	const struct restore_record *hit;

	hit = j->n > 0 ? bsearch(&k, j->v, j->n, sizeof *j->v, record_cmp) :
	    NULL;
	return hit != NULL ? hit->mark : RESTORE_MARK_NONE;
}

size_t
restore_journal_line(char *buf, const struct restore_record *r)
{
	int n;

	if (r->mark == RESTORE_MARK_DONE)
		n = snprintf(buf, RESTORE_LINE_MAX, "D %016" PRIx64 " %" PRIu64
		    " %" PRIu64 " %016" PRIx64 " %" PRIu32 " %" PRIu32 "\n",
		    r->box, r->offset, r->length, r->digest, r->uidvalidity,
		    r->uid);
	else
		n = snprintf(buf, RESTORE_LINE_MAX, "S %016" PRIx64 " %" PRIu64
		    " %" PRIu64 " %016" PRIx64 "\n", r->box, r->offset,
		    r->length, r->digest);
	return n < 0 ? 0 : (size_t)n;
}

void
restore_journal_free(struct restore_journal *j)
{
	free(j->v);
	memset(j, 0, sizeof *j);
}

enum restore_action
restore_decide(enum restore_mark mark, struct restore_present *present,
    uint64_t message_id_hash, uint64_t size, int64_t internaldate)
{
	if (mark == RESTORE_MARK_DONE)
		return RESTORE_SKIP_DONE;
	/* Without a Message-ID, size and date to the second: two different
	 * messages rarely share both in one mailbox (documented). */
	if (!restore_present_take(present, message_id_hash, size,
	    internaldate))
		return RESTORE_UPLOAD;
	return mark == RESTORE_MARK_SENDING ? RESTORE_SKIP_SENT :
	    RESTORE_SKIP_PRESENT;
}

const char *
restore_action_name(enum restore_action a)
{
	switch (a) {
	case RESTORE_UPLOAD:
		return "upload";
	case RESTORE_SKIP_DONE:
		return "done";
	case RESTORE_SKIP_PRESENT:
		return "present";
	case RESTORE_SKIP_SENT:
		return "sent";
	}
	return "?";
}
