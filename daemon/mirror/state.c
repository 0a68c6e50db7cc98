/*
 * The state file: a versioned, line-based text file, written atomically,
 * and the account lock beside it (one module: the lock exists to keep two
 * writers of this file apart).  Over 900 lines because the format's reader
 * (which must refuse every corrupt or hostile file), its writer and the
 * lock are one contract, kept in one place so they cannot drift apart.
 *
 *   mboxmirror-state 1
 *   account<TAB>last_attempt=T<TAB>last_success=T<TAB>last_error_time=T
 *       <TAB>next_attempt=T<TAB>failures=N<TAB>last_error=E
 *       [<TAB>last_error_kind=WORD]
 *   mailbox<TAB>NAME<TAB>FILE<TAB>uidvalidity=N<TAB>last_uid=N
 *       <TAB>uidnext=N<TAB>messages=N<TAB>mbox_size=N
 *       [<TAB>hole=UID:TRIES<TAB>skipped=TOTAL:UID,UID,...|-]
 *       [<TAB>remapped=RANGE,RANGE,...]
 *       [<TAB>remap_refused=UIDVALIDITY:SYNCS]
 *   ...
 *   end
 *
 * (account and mailbox records are one line each.)  NAME, FILE and E are
 * escaped: every byte outside '!'..'~' and '%' itself is written "%XX", so
 * any name stays on one line and one field; "-" stands for none (NULL) and
 * a literal "-" is written "%2D".  The end line tells a complete file from
 * a cut one.  The hole and skipped fields are written only when there is a
 * hole or a skipped UID, so files without them read as before; remapped
 * (RANGE is "UID" or "LO-HI", ascending) only when there are remapped UIDs
 * above last_uid; remap_refused only while a remap to that UIDVALIDITY has
 * been refused (SYNCS at least 1).
 */
#include "mirror/state.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util/fs.h"
#include "util/hash.h"
#include "util/num.h"

#define STATE_MAGIC	"mboxmirror-state "
#define STATE_VERSION	1
#define STATE_NAME	"state"
#define STATE_TMP	"state.tmp"
#define STATE_LOCK	"lock"
/* The daemon's lock directory: no account name starts with '.'. */
#define STATE_DAEMON_DIR	".daemon"
/* A state file is small; anything bigger is not ours. */
#define STATE_MAX_SIZE	(256 * 1024 * 1024)
#define MAX_FIELDS	16

static bool	needs_escape(unsigned char);
static int	put_escaped(FILE *, const char *);
static char	*escape_component(const char *);
static int	unescape(const char *, char **);
static int	parse_time(const char *, time_t *);
static const char *keyed(const char *, const char *);
static size_t	split_fields(char *, char **, size_t);
static int	parse_account(struct account_state *, char **, size_t,
		    const char **);
static bool	valid_file(const char *);
static int	parse_mailbox(struct account_state *, char **, size_t,
		    const char **);
static int	parse_pair(const char *, uint64_t *, uint64_t *);
static int	parse_hole(const char *, struct mailbox_state *);
static int	parse_remap_refused(const char *, struct mailbox_state *);
static int	parse_skipped(const char *, struct mailbox_state *);
static int	write_skipped(FILE *, const struct mailbox_state *);
static int	parse_remapped(const char *, struct mailbox_state *);
static int	write_remapped(FILE *, const struct mailbox_state *);
static int	read_file(int, char **, size_t *);
static int	write_state(FILE *, const struct account_state *);

static bool
needs_escape(unsigned char c)
{
	return c <= ' ' || c >= 0x7f || c == '%';
}

static int
put_escaped(FILE *fp, const char *s)
{
	const unsigned char *p;

	if (s == NULL)
		return fputc('-', fp) == EOF ? -1 : 0;
	if (strcmp(s, "-") == 0)
		return fputs("%2D", fp) == EOF ? -1 : 0;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (needs_escape(*p)) {
			if (fprintf(fp, "%%%02X", *p) < 0)
				return -1;
		} else if (fputc(*p, fp) == EOF)
			return -1;
	}
	return 0;
}

/* Decodes an escaped field; "-" gives NULL.  0, or -1 if malformed. */
static int
unescape(const char *s, char **out_r)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *hi, *lo;
	char *out, *o;

	*out_r = NULL;
	if (strcmp(s, "-") == 0)
		return 0;
	if ((out = malloc(strlen(s) + 1)) == NULL)
		return -1;
	for (o = out; *s != '\0'; s++) {
		if (needs_escape((unsigned char)*s) && *s != '%')
			goto bad;
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		if (s[1] == '\0' || (hi = strchr(hex, s[1])) == NULL ||
		    s[2] == '\0' || (lo = strchr(hex, s[2])) == NULL)
			goto bad;
		*o = (char)((hi - hex) << 4 | (lo - hex));
		if (*o == '\0')
			goto bad;
		o++;
		s += 2;
	}
	*o = '\0';
	*out_r = out;
	return 0;
bad:
	free(out);
	return -1;
}

/* One safe path component: also '/' and a leading '.' escaped, and the
 * empty name written "%00" (which no real name gives). */
static char *
escape_component(const char *s)
{
	const unsigned char *p;
	char *out, *o;

	if (*s == '\0')
		return strdup("%00");
	if ((out = malloc(strlen(s) * 3 + 1)) == NULL)
		return NULL;
	for (o = out, p = (const unsigned char *)s; *p != '\0'; p++) {
		if (needs_escape(*p) || *p == '/' ||
		    (*p == '.' && p == (const unsigned char *)s))
			o += sprintf(o, "%%%02X", *p);
		else
			*o++ = (char)*p;
	}
	*o = '\0';
	return out;
}

char *
state_account_dir(const char *state_dir, const char *account)
{
	char *comp, *dir;

	if ((comp = escape_component(account)) == NULL)
		return NULL;
	if (asprintf(&dir, "%s/%s", state_dir, comp) == -1)
		dir = NULL;
	free(comp);
	return dir;
}

static int
parse_time(const char *s, time_t *t_r)
{
	uint64_t v;
	bool neg = *s == '-';

	if (num_parse_u64(s + neg, INT64_MAX, &v) == -1)
		return -1;
	*t_r = neg ? -(time_t)v : (time_t)v;
	return 0;
}

/* The value of a "key=value" field, or NULL if the key differs. */
static const char *
keyed(const char *field, const char *key)
{
	size_t n = strlen(key);

	if (strncmp(field, key, n) != 0 || field[n] != '=')
		return NULL;
	return field + n + 1;
}

static size_t
split_fields(char *line, char **fields, size_t max)
{
	size_t n = 0;

	for (;;) {
		if (n == max)
			return max + 1;
		fields[n++] = line;
		if ((line = strchr(line, '\t')) == NULL)
			return n;
		*line++ = '\0';
	}
}

/* A kind as state_set_error() keeps it: 1 to 15 lower-case letters. */
static bool
valid_kind(const char *v)
{
	size_t len = strspn(v, "abcdefghijklmnopqrstuvwxyz");

	return len > 0 && v[len] == '\0' && len < sizeof ((struct
	    account_state *)NULL)->last_error_kind;
}

static int
parse_error_kind(struct account_state *st, const char *field)
{
	const char *v = keyed(field, "last_error_kind");

	if (v == NULL || !valid_kind(v))
		return -1;
	memcpy(st->last_error_kind, v, strlen(v) + 1);
	return 0;
}

static int
parse_account(struct account_state *st, char **f, size_t n,
    const char **what_r)
{
	static const char *const keys[] = { "last_attempt", "last_success",
	    "last_error_time", "next_attempt", "failures", "last_error" };
	time_t *times[] = { &st->last_attempt, &st->last_success,
	    &st->last_error_time, &st->next_attempt };
	const char *v;
	uint64_t u;
	size_t i;

	if (n != 7 && n != 8) {
		*what_r = "account line: wrong number of fields";
		return -1;
	}
	if (n == 8 && parse_error_kind(st, f[7]) == -1) {
		*what_r = "account line: bad last_error_kind";
		return -1;
	}
	for (i = 0; i < 6; i++) {
		if ((v = keyed(f[i + 1], keys[i])) == NULL) {
			*what_r = "account line: unexpected field";
			return -1;
		}
		if (i < 4 && parse_time(v, times[i]) == -1) {
			*what_r = "account line: bad time";
			return -1;
		}
		if (i == 4) {
			if (num_parse_u64(v, UINT_MAX, &u) == -1) {
				*what_r = "account line: bad failure count";
				return -1;
			}
			st->failures = (unsigned)u;
		}
		if (i == 5 && unescape(v, &st->last_error) == -1) {
			*what_r = "account line: bad last_error";
			return -1;
		}
	}
	return 0;
}

/*
 * A file that stays inside the output directory and is an mbox: relative,
 * every component a real name (not empty, "." or ".."), no control bytes,
 * ending in ".mbox".  names_mbox_path() gives nothing else; anything else
 * is a damaged or tampered state.
 */
static bool
valid_file(const char *file)
{
	const char *p, *c;
	size_t len = strlen(file), n;

	if (len < 5 || strcmp(file + len - 5, ".mbox") != 0)
		return false;
	for (p = file; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	for (c = file; ; c += n + 1) {
		n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (c[n] == '\0')
			return true;
	}
}

static int
parse_mailbox(struct account_state *st, char **f, size_t n,
    const char **what_r)
{
	static const char *const keys[] = { "uidvalidity", "last_uid",
	    "uidnext", "messages", "mbox_size" };
	struct mailbox_state *mb, *grown;
	uint64_t vals[5];
	char *name = NULL, *file = NULL;
	const char *v;
	size_t i;
	struct mailbox_state extra = { 0 };

	if (n >= 9 && keyed(f[n - 1], "remap_refused") != NULL) {
		if (parse_remap_refused(keyed(f[n - 1], "remap_refused"),
		    &extra) == -1) {
			*what_r = "mailbox line: bad remap_refused";
			goto fail;
		}
		n--;
	}
	if (n >= 9 && keyed(f[n - 1], "remapped") != NULL) {
		if (parse_remapped(keyed(f[n - 1], "remapped"), &extra) == -1) {
			*what_r = "mailbox line: bad remapped list";
			goto fail;
		}
		n--;
	}
	if (n != 8 && n != 10) {
		*what_r = "mailbox line: wrong number of fields";
		goto fail;
	}
	for (i = 0; i < 5; i++) {
		if ((v = keyed(f[i + 3], keys[i])) == NULL) {
			*what_r = "mailbox line: unexpected field";
			goto fail;
		}
		if (num_parse_u64(v, i == 4 ? INT64_MAX : UINT32_MAX,
		    &vals[i]) == -1) {
			*what_r = "mailbox line: bad number";
			goto fail;
		}
	}
	if (unescape(f[1], &name) == -1 || name == NULL) {
		*what_r = "mailbox line: bad mailbox name";
		goto fail;
	}
	if (unescape(f[2], &file) == -1) {
		*what_r = "mailbox line: bad file name";
		goto fail;
	}
	/* "-": no file yet. */
	if (file != NULL && !valid_file(file)) {
		*what_r = "mailbox line: file is not a relative .mbox path "
		    "inside the output directory";
		goto fail;
	}
	if (state_find(st, name) != NULL) {
		*what_r = "mailbox listed twice";
		goto fail;
	}
	if (n == 10 && ((v = keyed(f[8], "hole")) == NULL ||
	    parse_hole(v, &extra) == -1)) {
		*what_r = "mailbox line: bad hole";
		goto fail;
	}
	if (n == 10 && ((v = keyed(f[9], "skipped")) == NULL ||
	    parse_skipped(v, &extra) == -1)) {
		*what_r = "mailbox line: bad skipped list";
		goto fail;
	}
	grown = reallocarray(st->mailboxes, st->n_mailboxes + 1,
	    sizeof *st->mailboxes);
	if (grown == NULL) {
		*what_r = "out of memory";
		goto fail;
	}
	st->mailboxes = grown;
	mb = &st->mailboxes[st->n_mailboxes++];
	mb->name = name;
	mb->file = file;
	mb->uidvalidity = (uint32_t)vals[0];
	mb->last_uid = (uint32_t)vals[1];
	mb->uidnext = (uint32_t)vals[2];
	mb->messages = (uint32_t)vals[3];
	mb->mbox_size = vals[4];
	mb->hole_uid = extra.hole_uid;
	mb->hole_tries = extra.hole_tries;
	mb->skipped = extra.skipped;
	mb->n_skipped = extra.n_skipped;
	mb->skipped_total = extra.skipped_total;
	mb->remapped = extra.remapped;
	mb->n_remapped = extra.n_remapped;
	mb->remap_refused_uidvalidity = extra.remap_refused_uidvalidity;
	mb->remap_refused = extra.remap_refused;
	return 0;
fail:
	free(extra.skipped);
	free(extra.remapped);
	free(name);
	free(file);
	return -1;
}

/* "A:B", two 32-bit numbers. */
static int
parse_pair(const char *v, uint64_t *a_r, uint64_t *b_r)
{
	const char *colon = strchr(v, ':');
	char num[16];

	if (colon == NULL || (size_t)(colon - v) >= sizeof num)
		return -1;
	memcpy(num, v, (size_t)(colon - v));
	num[colon - v] = '\0';
	if (num_parse_u64(num, UINT32_MAX, a_r) == -1 ||
	    num_parse_u64(colon + 1, UINT32_MAX, b_r) == -1)
		return -1;
	return 0;
}

/* "UID:TRIES" */
static int
parse_hole(const char *v, struct mailbox_state *mb)
{
	uint64_t uid, tries;

	if (parse_pair(v, &uid, &tries) == -1)
		return -1;
	mb->hole_uid = (uint32_t)uid;
	mb->hole_tries = (uint32_t)tries;
	return 0;
}

/* "UIDVALIDITY:SYNCS", neither 0 (written only while there is a count). */
static int
parse_remap_refused(const char *v, struct mailbox_state *mb)
{
	uint64_t uidvalidity, syncs;

	if (parse_pair(v, &uidvalidity, &syncs) == -1 || uidvalidity == 0 ||
	    syncs == 0)
		return -1;
	mb->remap_refused_uidvalidity = (uint32_t)uidvalidity;
	mb->remap_refused = (uint32_t)syncs;
	return 0;
}

/* "-", or "TOTAL:UID,UID,..." with the UIDs ascending (none when all
 * were dropped). */
static int
parse_skipped(const char *v, struct mailbox_state *mb)
{
	char num[16];
	const char *p, *end;
	uint64_t total, u;

	if (strcmp(v, "-") == 0)
		return 0;
	end = v + strcspn(v, ":");
	if (*end != ':' || end == v || (size_t)(end - v) >= sizeof num)
		return -1;
	memcpy(num, v, (size_t)(end - v));
	num[end - v] = '\0';
	if (num_parse_u64(num, UINT32_MAX, &total) == -1)
		return -1;
	for (p = end + 1; *p != '\0'; p = *end == ',' ? end + 1 : end) {
		end = p + strcspn(p, ",");
		if (end == p || (size_t)(end - p) >= sizeof num)
			return -1;
		memcpy(num, p, (size_t)(end - p));
		num[end - p] = '\0';
		if (num_parse_u64(num, UINT32_MAX, &u) == -1 || u == 0 ||
		    mb->n_skipped == STATE_SKIPPED_MAX || (mb->n_skipped > 0 &&
		    u <= mb->skipped[mb->n_skipped - 1]) ||
		    state_add_skipped(mb, (uint32_t)u) == -1)
			return -1;
		if (*end == ',' && end[1] == '\0')
			return -1;
	}
	if (total < mb->n_skipped)
		return -1;
	mb->skipped_total = (uint32_t)total;
	return 0;
}

static int
write_skipped(FILE *fp, const struct mailbox_state *mb)
{
	if (mb->hole_uid == 0 && mb->skipped_total == 0)
		return 0;
	if (fprintf(fp, "\thole=%" PRIu32 ":%" PRIu32 "\tskipped=",
	    mb->hole_uid, mb->hole_tries) < 0)
		return -1;
	if (mb->skipped_total == 0)
		return fputc('-', fp) == EOF ? -1 : 0;
	if (fprintf(fp, "%" PRIu32 ":", mb->skipped_total) < 0)
		return -1;
	for (size_t i = 0; i < mb->n_skipped; i++)
		if (fprintf(fp, "%s%" PRIu32, i > 0 ? "," : "",
		    mb->skipped[i]) < 0)
			return -1;
	return 0;
}

/* One number of a list, up to the next ',' or '-' or the end. */
static const char *
parse_list_uid(const char *p, uint64_t *u_r)
{
	char num[16];
	size_t k = strcspn(p, ",-");

	if (k == 0 || k >= sizeof num)
		return NULL;
	memcpy(num, p, k);
	num[k] = '\0';
	if (num_parse_u64(num, UINT32_MAX, u_r) == -1 || *u_r == 0)
		return NULL;
	return p + k;
}

/* "RANGE,RANGE,...", RANGE "UID" or "LO-HI", ascending and disjoint. */
static int
parse_remapped(const char *v, struct mailbox_state *mb)
{
	struct state_range *grown;
	uint64_t lo, hi;
	const char *p = v;

	for (;;) {
		if ((p = parse_list_uid(p, &lo)) == NULL)
			return -1;
		hi = lo;
		if (*p == '-' && (p = parse_list_uid(p + 1, &hi)) == NULL)
			return -1;
		if (hi < lo || (mb->n_remapped > 0 &&
		    lo <= (uint64_t)mb->remapped[mb->n_remapped - 1].hi + 1))
			return -1;
		grown = reallocarray(mb->remapped, mb->n_remapped + 1,
		    sizeof *grown);
		if (grown == NULL)
			return -1;
		mb->remapped = grown;
		mb->remapped[mb->n_remapped].lo = (uint32_t)lo;
		mb->remapped[mb->n_remapped++].hi = (uint32_t)hi;
		if (*p == '\0')
			return 0;
		if (*p != ',')
			return -1;
		p++;
	}
}

/* Only what lies above last_uid: the rest says nothing more. */
static int
write_remapped(FILE *fp, const struct mailbox_state *mb)
{
	const char *sep = "\tremapped=";
	uint32_t lo;

	for (size_t i = 0; i < mb->n_remapped; i++) {
		if (mb->remapped[i].hi <= mb->last_uid)
			continue;
		lo = mb->remapped[i].lo > mb->last_uid ? mb->remapped[i].lo :
		    mb->last_uid + 1;
		if (fprintf(fp, "%s%" PRIu32, sep, lo) < 0 ||
		    (mb->remapped[i].hi != lo && fprintf(fp, "-%" PRIu32,
		    mb->remapped[i].hi) < 0))
			return -1;
		sep = ",";
	}
	return 0;
}

int
state_parse(const char *buf, size_t len, const char *name,
    struct account_state *state, char **error_r)
{
	struct account_state loaded, *st = &loaded;
	char *fields[MAX_FIELDS], *line = NULL, *grown, *v;
	const char *what = NULL, *p, *nl;
	bool seen_account = false, seen_end = false;
	size_t lineno = 0, n, linecap = 0;
	uint64_t version;

	memset(&loaded, 0, sizeof loaded);
	*error_r = NULL;
	for (p = buf; p < buf + len; p = nl + 1) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(buf + len - p));
		if (nl == NULL) {
			what = "line cut short (no newline)";
			goto bad;
		}
		if (memchr(p, '\0', (size_t)(nl - p)) != NULL) {
			what = "NUL byte";
			goto bad;
		}
		/* The fields are cut in place: a private copy of the line. */
		if ((size_t)(nl - p) + 1 > linecap) {
			linecap = (size_t)(nl - p) + 1;
			if ((grown = realloc(line, linecap)) == NULL) {
				what = "out of memory";
				goto bad;
			}
			line = grown;
		}
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		if (lineno == 1) {
			if (strncmp(line, STATE_MAGIC,
			    sizeof STATE_MAGIC - 1) != 0) {
				what = "not an mboxmirror state file";
				goto bad;
			}
			v = line + sizeof STATE_MAGIC - 1;
			if (num_parse_u64(v, UINT32_MAX, &version) == -1) {
				what = "bad version";
				goto bad;
			}
			if (version != STATE_VERSION) {
				log_set_error(error_r, "%s:%zu: state "
				    "version %s is not supported (made by a "
				    "newer mboxmirror?)", name, lineno, v);
				goto fail;
			}
			continue;
		}
		if (seen_end) {
			what = "data after the end line";
			goto bad;
		}
		if (strcmp(line, "end") == 0) {
			seen_end = true;
			continue;
		}
		/* More fields than any line has: fields[] holds only the
		 * first MAX_FIELDS, so no parser may look past them. */
		if ((n = split_fields(line, fields, MAX_FIELDS)) >
		    MAX_FIELDS) {
			what = "too many fields";
			goto bad;
		}
		if (strcmp(fields[0], "account") == 0) {
			if (seen_account) {
				what = "second account line";
				goto bad;
			}
			seen_account = true;
			if (parse_account(st, fields, n, &what) == -1)
				goto bad;
		} else if (strcmp(fields[0], "mailbox") == 0) {
			if (parse_mailbox(st, fields, n, &what) == -1)
				goto bad;
		} else {
			what = "unknown line";
			goto bad;
		}
	}
	if (lineno == 0) {
		what = "empty file";
		lineno = 1;
		goto bad;
	}
	if (!seen_end) {
		what = "cut short (no end line)";
		lineno++;
		goto bad;
	}
	free(line);
	state_clear(state);
	*state = loaded;
	return 0;
bad:
	log_set_error(error_r, "%s:%zu: %s", name, lineno, what);
fail:
	if (*error_r == NULL)
		*error_r = strdup("state_parse: out of memory");
	free(line);
	state_clear(st);
	return -1;
}

static int
read_file(int fd, char **buf_r, size_t *len_r)
{
	struct stat st;
	size_t len = 0;
	ssize_t n;
	char *buf;

	if (fstat(fd, &st) == -1)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	if (st.st_size > STATE_MAX_SIZE) {
		errno = EFBIG;
		return -1;
	}
	/* One more byte, to notice a file that grew under us. */
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
		return -1;
	for (;;) {
		n = read(fd, buf + len, (size_t)st.st_size + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)st.st_size) {
			free(buf);
			errno = EAGAIN;
			return -1;
		}
	}
	*buf_r = buf;
	*len_r = len;
	return 0;
}

int
state_load(const char *dir, struct account_state *st, char **error_r)
{
	char *path = NULL, *buf = NULL;
	size_t len;
	int fd, r = -1;

	*error_r = NULL;
	if (asprintf(&path, "%s/%s", dir, STATE_NAME) == -1) {
		path = NULL;
		log_set_error(error_r, "%s: out of memory", dir);
		goto out;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT) {
			state_clear(st);
			r = 0;
			goto out;
		}
		log_set_error(error_r, "open %s: %s", path, strerror(errno));
		goto out;
	}
	if (read_file(fd, &buf, &len) == -1) {
		log_set_error(error_r, "read %s: %s", path, strerror(errno));
		(void)close(fd);
		goto out;
	}
	/* Read-only: a failing close loses nothing. */
	(void)close(fd);
	r = state_parse(buf, len, path, st, error_r);
out:
	free(buf);
	free(path);
	return r;
}

static int
write_state(FILE *fp, const struct account_state *st)
{
	const struct mailbox_state *mb;
	size_t i;

	if (fprintf(fp, "%s%d\n", STATE_MAGIC, STATE_VERSION) < 0 ||
	    fprintf(fp, "account\tlast_attempt=%lld\tlast_success=%lld\t"
	    "last_error_time=%lld\tnext_attempt=%lld\tfailures=%u\t"
	    "last_error=", (long long)st->last_attempt,
	    (long long)st->last_success, (long long)st->last_error_time,
	    (long long)st->next_attempt, st->failures) < 0 ||
	    put_escaped(fp, st->last_error) == -1 ||
	    (st->last_error != NULL && valid_kind(st->last_error_kind) &&
	    fprintf(fp, "\tlast_error_kind=%s", st->last_error_kind) < 0) ||
	    fputc('\n', fp) == EOF)
		return -1;
	for (i = 0; i < st->n_mailboxes; i++) {
		mb = &st->mailboxes[i];
		if (mb->name == NULL) {
			errno = EINVAL;
			return -1;
		}
		if (fputs("mailbox\t", fp) == EOF ||
		    put_escaped(fp, mb->name) == -1 ||
		    fputc('\t', fp) == EOF ||
		    put_escaped(fp, mb->file) == -1 ||
		    fprintf(fp, "\tuidvalidity=%" PRIu32 "\tlast_uid=%" PRIu32
		    "\tuidnext=%" PRIu32 "\tmessages=%" PRIu32
		    "\tmbox_size=%" PRIu64, mb->uidvalidity,
		    mb->last_uid, mb->uidnext, mb->messages,
		    mb->mbox_size) < 0 || write_skipped(fp, mb) == -1 ||
		    write_remapped(fp, mb) == -1 ||
		    ((mb->remap_refused > 0 && mb->remap_refused_uidvalidity !=
		    0) && fprintf(fp, "\tremap_refused=%" PRIu32 ":%" PRIu32,
		    mb->remap_refused_uidvalidity, mb->remap_refused) < 0) ||
		    fputc('\n', fp) == EOF)
			return -1;
	}
	if (fputs("end\n", fp) == EOF)
		return -1;
	return 0;
}

int
state_save(const char *dir, const struct account_state *st, char **error_r)
{
	char *path = NULL, *tmp = NULL;
	const char *step = "write";
	FILE *fp = NULL;
	int fd = -1, r = -1;

	*error_r = NULL;
	if (asprintf(&path, "%s/%s", dir, STATE_NAME) == -1 ||
	    asprintf(&tmp, "%s/%s", dir, STATE_TMP) == -1) {
		log_set_error(error_r, "%s: out of memory", dir);
		goto out;
	}
	if (fs_mkdirs(dir, 0700, NULL) == -1) {
		log_set_error(error_r, "mkdir %s: %s", dir, strerror(errno));
		goto out;
	}
	/* A temp file left by a crash is ours and worthless. */
	if (unlink(tmp) == -1 && errno != ENOENT) {
		log_set_error(error_r, "unlink %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		log_set_error(error_r, "create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		log_set_error(error_r, "fdopen %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (write_state(fp, st) == -1 || fflush(fp) == EOF)
		goto syserr;
	step = "fsync";
	if (fsync(fileno(fp)) == -1)
		goto syserr;
	step = "close";
	if (fclose(fp) == EOF) {
		fp = NULL;
		goto syserr;
	}
	fp = NULL;
	if (rename(tmp, path) == -1) {
		log_set_error(error_r, "rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	if (fs_sync_dir(dir, NULL) == -1) {
		log_set_error(error_r, "fsync %s: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
	goto out;
syserr:
	log_set_error(error_r, "%s %s: %s", step, tmp, strerror(errno));
out:
	if (fp != NULL)
		(void)fclose(fp);
	if (fd != -1)
		(void)close(fd);
	if (tmp != NULL && r == -1)
		(void)unlink(tmp);
	free(tmp);
	free(path);
	if (r == -1 && *error_r == NULL)
		*error_r = strdup("state_save: out of memory");
	return r;
}

void
state_clear(struct account_state *st)
{
	size_t i;

	for (i = 0; i < st->n_mailboxes; i++) {
		free(st->mailboxes[i].name);
		free(st->mailboxes[i].file);
		free(st->mailboxes[i].skipped);
		free(st->mailboxes[i].remapped);
	}
	free(st->mailboxes);
	free(st->last_error);
	memset(st, 0, sizeof *st);
}

struct mailbox_state *
state_find(struct account_state *st, const char *name)
{
	size_t i;

	for (i = 0; i < st->n_mailboxes; i++)
		if (strcmp(st->mailboxes[i].name, name) == 0)
			return &st->mailboxes[i];
	return NULL;
}

struct mailbox_state *
state_get(struct account_state *st, const char *name)
{
	struct mailbox_state *mb, *grown;
	char *copy;

	if ((mb = state_find(st, name)) != NULL)
		return mb;
	if ((copy = strdup(name)) == NULL)
		return NULL;
	grown = reallocarray(st->mailboxes, st->n_mailboxes + 1,
	    sizeof *st->mailboxes);
	if (grown == NULL) {
		free(copy);
		return NULL;
	}
	st->mailboxes = grown;
	mb = &st->mailboxes[st->n_mailboxes++];
	memset(mb, 0, sizeof *mb);
	mb->name = copy;
	return mb;
}

void
state_set_error(struct account_state *st, const char *error,
    const char *kind, time_t when)
{
	free(st->last_error);
	st->last_error = NULL;
	st->last_error_kind[0] = '\0';
	if (error == NULL)
		return;
	if (kind != NULL)
		snprintf(st->last_error_kind, sizeof st->last_error_kind, "%s",
		    kind);
	/* Masked as a log line is: a server may echo the password in the
	 * reply that failed.  Out of memory loses the text, not the fact of
	 * the failure. */
	st->last_error = log_redact(error);
	st->last_error_time = when;
}

int
state_add_skipped(struct mailbox_state *mb, uint32_t uid)
{
	size_t pos = 0;
	uint32_t *v;

	while (pos < mb->n_skipped && mb->skipped[pos] < uid)
		pos++;
	if (pos < mb->n_skipped && mb->skipped[pos] == uid)
		return 0;
	mb->skipped_total++;
	if (mb->n_skipped == STATE_SKIPPED_MAX) {
		/* Full: the oldest (lowest) goes, unless uid is older. */
		if (pos == 0)
			return 0;
		memmove(mb->skipped, mb->skipped + 1, (pos - 1) *
		    sizeof *mb->skipped);
		mb->skipped[pos - 1] = uid;
		return 0;
	}
	v = reallocarray(mb->skipped, mb->n_skipped + 1, sizeof *v);
	if (v == NULL) {
		mb->skipped_total--;
		return -1;
	}
	mb->skipped = v;
	memmove(mb->skipped + pos + 1, mb->skipped + pos,
	    (mb->n_skipped - pos) * sizeof *mb->skipped);
	mb->skipped[pos] = uid;
	mb->n_skipped++;
	return 0;
}

bool
state_is_skipped(const struct mailbox_state *mb, uint32_t uid)
{
	for (size_t i = 0; i < mb->n_skipped; i++)
		if (mb->skipped[i] == uid)
			return true;
	return false;
}

int
state_lock(const char *dir, int *fd_r, long *holder_r, char **error_r)
{
	char *path = NULL, buf[32], *nl;
	struct stat st;
	ssize_t n;
	uint64_t pid;
	int fd = -1, r = -1, len;

	*fd_r = -1;
	*holder_r = 0;
	*error_r = NULL;
	if (asprintf(&path, "%s/%s", dir, STATE_LOCK) == -1) {
		path = NULL;
		goto out;
	}
	if (fs_mkdirs(dir, 0700, NULL) == -1) {
		log_set_error(error_r, "mkdir %s: %s", dir, strerror(errno));
		goto out;
	}
	/* O_NONBLOCK: a FIFO put there must not hang us in open(2). */
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
	    0600);
	if (fd == -1 || fstat(fd, &st) == -1) {
		log_set_error(error_r, "open %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		log_set_error(error_r, "%s: not a regular file", path);
		goto out;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			log_set_error(error_r, "lock %s: %s", path,
			    strerror(errno));
			goto out;
		}
		/* Only a hint for the message: the holder may not have
		 * written its pid yet. */
		n = pread(fd, buf, sizeof buf, 0);
		if (n > 0 && (nl = memchr(buf, '\n', (size_t)n)) != NULL &&
		    num_parse_u64n(buf, (size_t)(nl - buf), LONG_MAX,
		    &pid) == 0 && pid > 0)
			*holder_r = (long)pid;
		r = 1;
		goto out;
	}
	len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	n = -1;
	if (ftruncate(fd, 0) == -1 ||
	    (n = pwrite(fd, buf, (size_t)len, 0)) != len) {
		if (n >= 0)
			errno = EIO;
		log_set_error(error_r, "write %s: %s", path, strerror(errno));
		goto out;
	}
	*fd_r = fd;
	fd = -1;
	r = 0;
out:
	if (fd != -1)
		(void)close(fd);
	free(path);
	if (r == -1 && *error_r == NULL)
		*error_r = strdup("state_lock: out of memory");
	return r;
}

void
state_unlock(int *fd)
{
	if (*fd < 0)
		return;
	/* An empty file names no holder: the pid would soon be stale.  One
	 * left behind is harmless (the lock, not the pid, says who holds it);
	 * the result is checked so that glibc's _FORTIFY_SOURCE builds accept
	 * the call. */
	if (ftruncate(*fd, 0) == -1)
		log_debug("state: cannot empty the lock file: %s",
		    strerror(errno));
	(void)close(*fd);
	*fd = -1;
}

int
state_set_next_attempt(const char *dir, time_t when, char **error_r)
{
	struct account_state st = { 0 };
	char *error = NULL;
	long holder;
	int lock_fd, r = 1;

	*error_r = NULL;
	/* Another process syncing the account owns its state: a skipped
	 * run, or one that just ended, must not write over it.  A lock or a
	 * state that fails here fails the next sync too, which says why. */
	if (state_lock(dir, &lock_fd, &holder, &error) != 0)
		goto out;
	if (state_load(dir, &st, &error) == 0) {
		st.next_attempt = when;
		r = state_save(dir, &st, error_r) == 0 ? 0 : -1;
	}
	state_unlock(&lock_fd);
out:
	free(error);
	state_clear(&st);
	return r;
}

char *
state_daemon_dir(const char *state_dir)
{
	char *dir;

	if (asprintf(&dir, "%s/%s", state_dir, STATE_DAEMON_DIR) == -1)
		return NULL;
	return dir;
}

char *
state_shard_daemon_dir(const char *state_dir, unsigned k, unsigned n)
{
	char *dir;

	if (n == 0)
		return state_daemon_dir(state_dir);
	if (asprintf(&dir, "%s/%s/shard-%u-of-%u", state_dir,
	    STATE_DAEMON_DIR, k, n) == -1)
		return NULL;
	return dir;
}

int
state_shard_daemon_running(const char *state_dir, unsigned k, unsigned n,
    long *pid_r)
{
	char *dir = state_shard_daemon_dir(state_dir, k, n);
	int r;

	*pid_r = 0;
	if (dir == NULL)
		return -1;
	r = state_daemon_running_in(dir, pid_r);
	free(dir);
	return r;
}

int
state_daemon_running_in(const char *dir, long *pid_r)
{
	char *path = NULL, buf[32], *nl;
	ssize_t n;
	uint64_t pid;
	int fd, r = -1;

	*pid_r = 0;
	if (asprintf(&path, "%s/%s", dir, STATE_LOCK) == -1)
		return -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	free(path);
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	/* A shared lock is granted unless a daemon holds its exclusive one;
	 * it is given back at once. */
	while ((r = flock(fd, LOCK_SH | LOCK_NB)) == -1 && errno == EINTR)
		;
	if (r == 0) {
		(void)flock(fd, LOCK_UN);
	} else if (errno == EWOULDBLOCK) {
		n = pread(fd, buf, sizeof buf, 0);
		if (n > 0 && (nl = memchr(buf, '\n', (size_t)n)) != NULL &&
		    num_parse_u64n(buf, (size_t)(nl - buf), LONG_MAX,
		    &pid) == 0 && pid > 0)
			*pid_r = (long)pid;
		r = 1;
	}
	(void)close(fd);
	return r;
}

/* "shard-K-of-N", the name state_shard_daemon_dir() gives: true with
 * *k_r and *n_r; anything else, false. */
static bool
shard_daemon_dir_name(const char *name, unsigned *k_r, unsigned *n_r)
{
	const char *of;
	uint64_t k, n;

	if (strncmp(name, "shard-", 6) != 0 ||
	    (of = strstr(name + 6, "-of-")) == NULL ||
	    num_parse_u64n(name + 6, (size_t)(of - (name + 6)), UINT_MAX,
	    &k) == -1 || num_parse_u64(of + 4, UINT_MAX, &n) == -1)
		return false;
	*k_r = (unsigned)k;
	*n_r = (unsigned)n;
	return true;
}

/* state_daemon_running_in(dir), but 0 when its lock file is the one
 * ignore_fd has open. */
static int
daemon_running_besides(const char *dir, int ignore_fd, long *pid_r)
{
	struct stat mine, theirs;
	char *path;
	int same;

	*pid_r = 0;
	if (ignore_fd != -1 && fstat(ignore_fd, &mine) == 0) {
		if (asprintf(&path, "%s/%s", dir, STATE_LOCK) == -1)
			return -1;
		same = stat(path, &theirs) == 0 &&
		    theirs.st_dev == mine.st_dev &&
		    theirs.st_ino == mine.st_ino;
		free(path);
		if (same)
			return 0;
	}
	return state_daemon_running_in(dir, pid_r);
}

int
state_daemon_other_layout(const char *state_dir, unsigned n, int ignore_fd,
    char **who_r, long *pid_r)
{
	char *top, *sub;
	struct dirent *e;
	unsigned k, m;
	DIR *d;
	int r = 0;

	*who_r = NULL;
	*pid_r = 0;
	if ((top = state_daemon_dir(state_dir)) == NULL)
		return -1;
	if (n != 0 && (r = daemon_running_besides(top, ignore_fd,
	    pid_r)) != 0) {
		if (r == 1 && (*who_r = strdup("the daemon that is not "
		    "sharded")) == NULL)
			r = -1;
		free(top);
		return r;
	}
	if ((d = opendir(top)) == NULL) {
		r = errno == ENOENT ? 0 : -1;
		free(top);
		return r;
	}
	while (r == 0 && (e = readdir(d)) != NULL) {
		if (!shard_daemon_dir_name(e->d_name, &k, &m) || m == n)
			continue;
		if (asprintf(&sub, "%s/%s", top, e->d_name) == -1) {
			r = -1;
			break;
		}
		r = daemon_running_besides(sub, ignore_fd, pid_r);
		free(sub);
		if (r == 1 && asprintf(who_r, "shard %u/%u", k, m) == -1) {
			*who_r = NULL;
			r = -1;
		}
	}
	(void)closedir(d);
	free(top);
	return r;
}

char *
state_append_record(const char *dir, const char *file)
{
	char *path;

	if (asprintf(&path, "%s/append-%016" PRIx64, dir,
	    hash_fnv1a64(file, strlen(file))) == -1)
		return NULL;
	return path;
}

int
state_set_remapped(struct mailbox_state *mb, const uint32_t *uids, size_t n)
{
	struct state_range *r = NULL;
	size_t k = 0;

	if (n > 0 && (r = calloc(n, sizeof *r)) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && (uint64_t)r[k - 1].hi + 1 == uids[i])
			r[k - 1].hi = uids[i];
		else
			r[k++] = (struct state_range){ uids[i], uids[i] };
	}
	free(mb->remapped);
	mb->remapped = r;
	mb->n_remapped = k;
	return 0;
}

bool
state_is_remapped(const struct mailbox_state *mb, uint32_t uid)
{
	size_t lo = 0, hi = mb->n_remapped, mid;

	if (uid <= mb->last_uid)
		return false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (mb->remapped[mid].hi < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < mb->n_remapped && mb->remapped[lo].lo <= uid;
}

uint32_t
state_newest_remapped(const struct mailbox_state *mb)
{
	if (mb->n_remapped == 0 ||
	    mb->remapped[mb->n_remapped - 1].hi <= mb->last_uid)
		return 0;
	return mb->remapped[mb->n_remapped - 1].hi;
}
