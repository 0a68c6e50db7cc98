/*
 * imap/parser: see parser.h for the contract.
 *
 * A response is read one line segment at a time: bytes are gathered up to
 * LF (or taken straight from the caller's buffer when the whole segment is
 * there), then tokenised in one go.  A segment ends either the response or
 * with a literal header "{n}"; the literal's bytes then bypass the line
 * buffer, going to the arena (held) or to the sink (streamed).  No token
 * spans two segments, so where the caller's chunks split the input cannot
 * change the result.  Over 900 lines, and one file, because the line
 * gatherer, the tokeniser and the literal handling share one cursor and one
 * arena: split apart, each would have to expose the others' invariants.
 */
#include "imap/parser.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/num.h"

/* A parser lives as long as its connection, a push connection for days:
 * the block it keeps and its value stack start small (a block holds any
 * usual response; a bigger one takes blocks that go at its end). */
#define ARENA_BLOCK (4 * 1024)
#define ARENA_ALIGN 8
#define LINE_INITIAL 1024
#define STACK_INITIAL 16
#define ERROR_TEXT_MAX 128

/* An arena block; its bytes follow the header. */
struct arena_block {
	struct arena_block *next;
	size_t size;
	size_t used;
};

enum parser_state {
	PS_LINE,	/* gathering a line segment */
	PS_LITERAL,	/* inside a literal's bytes */
	PS_ERROR,
};

enum seg_result {
	SEG_ERROR = -1,
	SEG_DONE,	/* the response is complete */
	SEG_LITERAL,	/* a literal's bytes follow */
	SEG_VALUES,	/* the start is read; values follow */
};

enum val_result {
	VAL_ERROR = -1,
	VAL_END,	/* the line ended at list depth 0 */
	VAL_CLOSE,	/* a response code's ']' */
	VAL_LITERAL,
};

/* The segment being tokenised: s[0..end) is the line without its CRLF. */
struct seg {
	const unsigned char *s;
	size_t end;
	size_t i;
	size_t close;		/* the next ']' at or after some index, or end */
	bool close_valid;
};

struct imap_parser {
	enum parser_state state;
	imap_sink_fn *sink;
	void *sink_arg;
	uint64_t pos;		/* stream offset of the next byte */

	unsigned char *line;	/* a segment not yet complete */
	size_t line_len, line_cap;
	uint64_t seg_pos;	/* stream offset of the segment's first byte */
	size_t resp_bytes;	/* non-literal bytes of complete segments */

	struct arena_block *arena;
	size_t held;		/* arena bytes handed out for this response */

	/* Values of the lists still open, outermost first; open[d] is where
	 * the list at depth d starts in stack. */
	struct imap_arg *stack;
	size_t nstack, stack_cap;
	size_t open[IMAP_MAX_DEPTH];
	size_t depth;
	size_t nargs;

	struct imap_response resp;
	bool started;		/* the first segment was read */
	bool fetch;		/* "* n FETCH" */
	bool fetch_list;	/* open[0] is the FETCH item list */
	bool have_response;	/* resp was returned; reset on next feed */

	uint64_t lit_left;
	uint64_t lit_pos;	/* stream offset of the literal header */
	bool lit_streamed, lit_literal8;
	char *lit_buf;
	size_t lit_len;
	struct imap_literal_info info;

	enum imap_parse_error err;
	char err_text[ERROR_TEXT_MAX];
};

/* Bytes that end an atom or need a closer look in one: controls, space,
 * parentheses, '"', '[' and ']'.  The rest is skipped without a branch each. */
static const unsigned char atom_special[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static int fail(struct imap_parser *, enum imap_parse_error, uint64_t,
    const char *);
static void *arena_alloc(struct imap_parser *, size_t);
static char *arena_strdup(struct imap_parser *, const unsigned char *,
    size_t, bool);
static void arena_reset(struct imap_parser *);
static void response_reset(struct imap_parser *);
static int line_append(struct imap_parser *, const unsigned char *, size_t);
static int push_arg(struct imap_parser *, const struct imap_arg *,
    uint64_t);
static int copy_args(struct imap_parser *, size_t, const struct imap_arg **,
    size_t *);
static int parse_segment(struct imap_parser *, const unsigned char *,
    size_t);
static int parse_start(struct imap_parser *, struct seg *);
static int parse_resp_text(struct imap_parser *, struct seg *);
static int parse_code(struct imap_parser *, struct seg *);
static int parse_values(struct imap_parser *, struct seg *, bool);
static int parse_atom(struct imap_parser *, struct seg *, bool);
static int parse_quoted(struct imap_parser *, struct seg *);
static int parse_literal(struct imap_parser *, struct seg *);
static int scan_word(struct imap_parser *, struct seg *, size_t *);
static int literal_data(struct imap_parser *, const unsigned char *, size_t);
static int literal_end(struct imap_parser *);
static bool streamable(const char *);
static bool word_is(const unsigned char *, size_t, const char *);
static enum imap_status status_word(const unsigned char *, size_t);
static bool atom_valid_u32(const struct imap_arg *);

struct imap_parser *
imap_parser_new(void)
{
	struct imap_parser *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->state = PS_LINE;
	return p;
}

void
imap_parser_free(struct imap_parser **parserp)
{
	struct imap_parser *p = *parserp;
	struct arena_block *b, *next;

	if (p == NULL)
		return;
	for (b = p->arena; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	free(p->line);
	free(p->stack);
	free(p);
	*parserp = NULL;
}

void
imap_parser_reset(struct imap_parser *p)
{
	response_reset(p);
	p->state = PS_LINE;
	p->pos = 0;
	p->line_len = 0;
	p->lit_left = 0;
	p->err = IMAP_ERR_NONE;
	p->err_text[0] = '\0';
}

void
imap_parser_set_sink(struct imap_parser *p, imap_sink_fn *sink, void *arg)
{
	p->sink = sink;
	p->sink_arg = arg;
}

uint64_t
imap_parser_literal_left(const struct imap_parser *p)
{
	return p->lit_left;
}

bool
imap_parser_idle(const struct imap_parser *p)
{
	if (p->state == PS_ERROR)
		return false;
	return p->have_response || (p->state == PS_LINE &&
	    p->line_len == 0 && !p->started);
}

enum imap_parse_error
imap_parser_error(const struct imap_parser *p)
{
	return p->err;
}

const char *
imap_parser_error_text(const struct imap_parser *p)
{
	return p->err_text;
}

size_t
imap_parser_memory(const struct imap_parser *p)
{
	const struct arena_block *b;
	size_t n;

	n = sizeof(*p) + p->line_cap + p->stack_cap * sizeof(*p->stack);
	for (b = p->arena; b != NULL; b = b->next)
		n += sizeof(*b) + b->size;
	return n;
}

enum imap_parse_result
imap_parser_feed(struct imap_parser *p, const unsigned char *buf, size_t len,
    size_t *consumed_r, const struct imap_response **response_r)
{
	const unsigned char *lf, *seg;
	size_t i = 0, n, room, seglen;
	int r;

	*consumed_r = 0;
	*response_r = NULL;
	if (p->state == PS_ERROR)
		return IMAP_PARSE_ERROR;
	if (p->have_response)
		response_reset(p);

	while (i < len) {
		if (p->state == PS_LITERAL) {
			n = len - i;
			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			if (literal_data(p, buf + i, n) == -1)
				goto fail;
			i += n;
			p->pos += n;
			if (p->lit_left == 0 && literal_end(p) == -1)
				goto fail;
			continue;
		}

		lf = memchr(buf + i, '\n', len - i);
		n = lf == NULL ? len - i : (size_t)(lf - (buf + i)) + 1;
		if (p->line_len == 0)
			p->seg_pos = p->pos;
		room = IMAP_MAX_LINE - p->resp_bytes - p->line_len;
		if (n > room) {
			/* The position of the first byte past the cap, which
			 * does not depend on how the input was split. */
			fail(p, IMAP_ERR_LINE_TOO_LONG, p->pos + room,
			    "line too long");
			goto fail;
		}
		if (lf == NULL || p->line_len > 0) {
			if (line_append(p, buf + i, n) == -1)
				goto fail;
		}
		i += n;
		p->pos += n;
		if (lf == NULL)
			break;
		if (p->line_len > 0) {
			seg = p->line;
			seglen = p->line_len;
		} else {
			seg = lf + 1 - n;
			seglen = n;
		}
		p->resp_bytes += seglen;
		r = parse_segment(p, seg, seglen);
		p->line_len = 0;
		if (r == SEG_ERROR)
			goto fail;
		if (r == SEG_DONE) {
			p->have_response = true;
			*consumed_r = i;
			*response_r = &p->resp;
			return IMAP_PARSE_RESPONSE;
		}
		if (p->lit_left == 0 && literal_end(p) == -1)
			goto fail;
	}
	*consumed_r = i;
	return IMAP_PARSE_NEED_MORE;

fail:
	p->state = PS_ERROR;
	*consumed_r = i;
	return IMAP_PARSE_ERROR;
}

static int
fail(struct imap_parser *p, enum imap_parse_error err, uint64_t pos,
    const char *what)
{
	p->err = err;
	snprintf(p->err_text, sizeof(p->err_text), "%s at byte %llu", what,
	    (unsigned long long)pos);
	return -1;
}

static void *
arena_alloc(struct imap_parser *p, size_t size)
{
	struct arena_block *b = p->arena, *nb, **tail;
	size_t want, bsize;

	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	/* Blocks are used in order; later ones only hold what did not fit. */
	for (tail = &p->arena; (b = *tail) != NULL; tail = &b->next) {
		if (b->size - b->used >= size) {
			b->used += size;
			p->held += size;
			return (unsigned char *)(b + 1) + b->used - size;
		}
	}
	want = size;
	bsize = want > ARENA_BLOCK ? want : ARENA_BLOCK;
	if ((nb = malloc(sizeof(*nb) + bsize)) == NULL)
		return NULL;
	nb->next = NULL;
	nb->size = bsize;
	nb->used = size;
	*tail = nb;
	p->held += size;
	return nb + 1;
}

static char *
arena_strdup(struct imap_parser *p, const unsigned char *s, size_t len,
    bool upper)
{
	char *d;
	size_t i;

	if ((d = arena_alloc(p, len + 1)) == NULL)
		return NULL;
	if (upper) {
		for (i = 0; i < len; i++)
			d[i] = s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' :
			    (char)s[i];
	} else
		memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* Keeps the first block if it has the usual size, so that small responses
 * allocate nothing and a big one leaves nothing behind. */
static void
arena_reset(struct imap_parser *p)
{
	struct arena_block *b, *next, *keep = NULL;

	for (b = p->arena; b != NULL; b = next) {
		next = b->next;
		if (keep == NULL && b->size == ARENA_BLOCK) {
			keep = b;
			keep->next = NULL;
			keep->used = 0;
		} else
			free(b);
	}
	p->arena = keep;
	p->held = 0;
}

static void
response_reset(struct imap_parser *p)
{
	arena_reset(p);
	/* A CAPABILITY's forty atoms need not stay for days of IDLE. */
	if (p->stack_cap > 4 * STACK_INITIAL) {
		free(p->stack);
		p->stack = NULL;
		p->stack_cap = 0;
	}
	p->nstack = 0;
	p->depth = 0;
	p->nargs = 0;
	memset(&p->resp, 0, sizeof(p->resp));
	p->started = false;
	p->fetch = false;
	p->fetch_list = false;
	p->have_response = false;
	p->resp_bytes = 0;
	p->lit_buf = NULL;
}

static int
line_append(struct imap_parser *p, const unsigned char *data, size_t n)
{
	unsigned char *nl;
	size_t ncap;

	if (p->line_len + n > p->line_cap) {
		ncap = p->line_cap == 0 ? LINE_INITIAL : p->line_cap;
		while (ncap < p->line_len + n)
			ncap *= 2;
		if (ncap > IMAP_MAX_LINE)
			ncap = IMAP_MAX_LINE;
		if ((nl = realloc(p->line, ncap)) == NULL)
			return fail(p, IMAP_ERR_MEMORY, p->pos, "out of memory");
		p->line = nl;
		p->line_cap = ncap;
	}
	memcpy(p->line + p->line_len, data, n);
	p->line_len += n;
	return 0;
}

static int
push_arg(struct imap_parser *p, const struct imap_arg *arg, uint64_t pos)
{
	struct imap_arg *ns;
	size_t ncap, idx;

	if (p->nargs >= IMAP_MAX_ARGS)
		return fail(p, IMAP_ERR_TOO_MANY_ARGS, pos, "too many values");
	if (p->nstack == p->stack_cap) {
		ncap = p->stack_cap == 0 ? STACK_INITIAL : p->stack_cap * 2;
		if ((ns = reallocarray(p->stack, ncap, sizeof(*ns))) == NULL)
			return fail(p, IMAP_ERR_MEMORY, pos, "out of memory");
		p->stack = ns;
		p->stack_cap = ncap;
	}
	p->stack[p->nstack++] = *arg;
	p->nargs++;

	/* The sink gets the items before a literal as they are, so a UID must
	 * be checked here rather than left to imap_fetch_decode(). */
	if (p->fetch_list && p->depth == 1) {
		idx = p->nstack - 1 - p->open[0];
		if (idx % 2 == 1 && p->stack[p->nstack - 2].type ==
		    IMAP_ARG_ATOM && strcasecmp(p->stack[p->nstack - 2].str,
		    "UID") == 0 && !atom_valid_u32(arg))
			return fail(p, IMAP_ERR_NUMBER, pos, "bad UID");
	}
	return 0;
}

/* Moves the values from stack[from] on to the arena. */
static int
copy_args(struct imap_parser *p, size_t from, const struct imap_arg **args_r,
    size_t *n_r)
{
	struct imap_arg *a;
	size_t n = p->nstack - from;

	*args_r = NULL;
	*n_r = 0;
	if (n > 0) {
		if ((a = arena_alloc(p, n * sizeof(*a))) == NULL)
			return fail(p, IMAP_ERR_MEMORY, p->pos, "out of memory");
		memcpy(a, p->stack + from, n * sizeof(*a));
		*args_r = a;
		*n_r = n;
	}
	p->nstack = from;
	return 0;
}

static int
parse_segment(struct imap_parser *p, const unsigned char *s, size_t len)
{
	struct seg g;
	int r;

	memset(&g, 0, sizeof(g));
	g.s = s;
	g.end = len - 1;
	if (g.end > 0 && s[g.end - 1] == '\r')
		g.end--;

	if (!p->started) {
		p->started = true;
		if ((r = parse_start(p, &g)) != SEG_VALUES)
			return r;
	}
	switch (parse_values(p, &g, false)) {
	case VAL_END:
		if (copy_args(p, 0, &p->resp.args, &p->resp.nargs) == -1)
			return SEG_ERROR;
		return SEG_DONE;
	case VAL_LITERAL:
		return SEG_LITERAL;
	default:
		return SEG_ERROR;
	}
}

/* The tag or "*" or "+", and what decides the response's shape. */
static int
parse_start(struct imap_parser *p, struct seg *g)
{
	const unsigned char *s = g->s;
	size_t start, len, k;
	uint64_t num;
	int r;

	if (g->end == 0)
		return fail(p, IMAP_ERR_SYNTAX, p->seg_pos, "empty line");

	if (s[0] == '+') {
		p->resp.type = IMAP_RESP_CONTINUE;
		g->i = 1;
		return parse_resp_text(p, g);
	}

	if (s[0] == '*') {
		p->resp.type = IMAP_RESP_UNTAGGED;
		g->i = 1;
		if (g->i == g->end || s[g->i] != ' ')
			return fail(p, IMAP_ERR_SYNTAX, p->seg_pos + g->i,
			    "expected space after '*'");
		while (g->i < g->end && s[g->i] == ' ')
			g->i++;
		if (g->i == g->end)
			return fail(p, IMAP_ERR_SYNTAX, p->seg_pos + g->i,
			    "empty untagged response");
		if (s[g->i] >= '0' && s[g->i] <= '9') {
			start = g->i;
			for (k = g->i; k < g->end && s[k] != ' '; k++)
				if (s[k] < '0' || s[k] > '9')
					return fail(p, IMAP_ERR_NUMBER,
					    p->seg_pos + k,
					    "malformed message number");
			if (num_parse_u64n((const char *)s + start, k - start,
			    UINT32_MAX, &num) == -1)
				return fail(p, IMAP_ERR_NUMBER,
				    p->seg_pos + start,
				    "message number overflows");
			p->resp.has_number = true;
			p->resp.number = (uint32_t)num;
			g->i = k;
			while (g->i < g->end && s[g->i] == ' ')
				g->i++;
			if (g->i == g->end)
				return fail(p, IMAP_ERR_SYNTAX,
				    p->seg_pos + g->i, "missing keyword");
		}
		start = g->i;
		if ((r = scan_word(p, g, &len)) == -1)
			return SEG_ERROR;
		if (!p->resp.has_number) {
			p->resp.status = status_word(s + start, len);
			if (p->resp.status != IMAP_STATUS_NONE)
				return parse_resp_text(p, g);
		}
		if ((p->resp.keyword = arena_strdup(p, s + start, len,
		    true)) == NULL)
			return fail(p, IMAP_ERR_MEMORY, p->pos, "out of memory");
		p->fetch = p->resp.has_number &&
		    strcmp(p->resp.keyword, "FETCH") == 0;
		return SEG_VALUES;
	}

	p->resp.type = IMAP_RESP_TAGGED;
	start = 0;
	if ((r = scan_word(p, g, &len)) == -1)
		return SEG_ERROR;
	for (k = 0; k < len; k++)
		if (strchr("(){\"%*", s[k]) != NULL)
			return fail(p, IMAP_ERR_SYNTAX, p->seg_pos + k,
			    "bad character in tag");
	if ((p->resp.tag = arena_strdup(p, s, len, false)) == NULL)
		return fail(p, IMAP_ERR_MEMORY, p->pos, "out of memory");
	if (g->i == g->end)
		return fail(p, IMAP_ERR_SYNTAX, p->seg_pos + g->i,
		    "tag without status");
	while (g->i < g->end && s[g->i] == ' ')
		g->i++;
	start = g->i;
	if ((r = scan_word(p, g, &len)) == -1)
		return SEG_ERROR;
	p->resp.status = status_word(s + start, len);
	if (p->resp.status != IMAP_STATUS_OK &&
	    p->resp.status != IMAP_STATUS_NO &&
	    p->resp.status != IMAP_STATUS_BAD)
		return fail(p, IMAP_ERR_SYNTAX, p->seg_pos + start,
		    "tagged response without OK, NO or BAD");
	return parse_resp_text(p, g);
}

/* The status a word names (in any case), or IMAP_STATUS_NONE. */
static enum imap_status
status_word(const unsigned char *s, size_t len)
{
	static const struct {
		const char *word;
		enum imap_status status;
	} words[] = {
		{ "OK", IMAP_STATUS_OK }, { "NO", IMAP_STATUS_NO },
		{ "BAD", IMAP_STATUS_BAD }, { "BYE", IMAP_STATUS_BYE },
		{ "PREAUTH", IMAP_STATUS_PREAUTH },
	};

	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (word_is(s, len, words[i].word))
			return words[i].status;
	return IMAP_STATUS_NONE;
}

/* Bytes up to a space or the line end; controls are refused. */
static int
scan_word(struct imap_parser *p, struct seg *g, size_t *len_r)
{
	size_t k;

	for (k = g->i; k < g->end && g->s[k] != ' '; k++) {
		if (g->s[k] == '\0')
			return fail(p, IMAP_ERR_NUL, p->seg_pos + k, "NUL");
		if (g->s[k] < 0x20 || g->s[k] == 0x7f)
			return fail(p, IMAP_ERR_SYNTAX, p->seg_pos + k,
			    "control character");
	}
	*len_r = k - g->i;
	g->i = k;
	return 0;
}

/* [SP] ["[" code "]"] text, to the end of the line. */
static int
parse_resp_text(struct imap_parser *p, struct seg *g)
{
	const unsigned char *s = g->s, *nul;
	size_t start, end;

	while (g->i < g->end && s[g->i] == ' ')
		g->i++;
	if (g->i < g->end && s[g->i] == '[' && parse_code(p, g) == -1)
		return SEG_ERROR;
	start = g->i;
	end = g->end;
	if ((nul = memchr(s + start, '\0', end - start)) != NULL)
		return fail(p, IMAP_ERR_NUL, p->seg_pos + (nul - s), "NUL");
	while (end > start && s[end - 1] == ' ')
		end--;
	if ((p->resp.text = arena_strdup(p, s + start, end - start,
	    false)) == NULL)
		return fail(p, IMAP_ERR_MEMORY, p->pos, "out of memory");
	return SEG_DONE;
}

/*
 * "[NAME args]".  The args are parsed as values where they can be; where
 * they cannot (an unknown code's free text), only code_text is kept, and a
 * '[' with no ']' is plain text.  Only limits and NULs are errors here.
 */
static int
parse_code(struct imap_parser *p, struct seg *g)
{
	const unsigned char *s = g->s, *q;
	size_t name, k, args, close;
	int r;

	name = g->i + 1;
	for (k = name; k < g->end; k++) {
		if (s[k] == ' ' || s[k] == ']' || s[k] <= 0x20 ||
		    s[k] == 0x7f || strchr("(){\"[", s[k]) != NULL)
			break;
	}
	if (k == name || k == g->end || (s[k] != ' ' && s[k] != ']'))
		return 0;

	if (s[k] == ']') {
		args = close = k;
	} else {
		args = k + 1;
		g->i = args;
		r = parse_values(p, g, true);
		if (r == VAL_CLOSE) {
			close = g->i;
			if (copy_args(p, 0, &p->resp.code_args,
			    &p->resp.code_nargs) == -1)
				return -1;
		} else if (p->err == IMAP_ERR_SYNTAX) {
			p->err = IMAP_ERR_NONE;
			p->err_text[0] = '\0';
			p->nstack = 0;
			p->depth = 0;
			p->nargs = 0;
			q = memchr(s + args, ']', g->end - args);
			if (q == NULL) {
				g->i = name - 1;
				return 0;
			}
			close = q - s;
		} else
			return -1;
	}
	if ((p->resp.code = arena_strdup(p, s + name, k - name, true)) ==
	    NULL || (p->resp.code_text = arena_strdup(p, s + args,
	    close - args, false)) == NULL)
		return fail(p, IMAP_ERR_MEMORY, p->pos, "out of memory");
	g->i = close + 1;
	while (g->i < g->end && s[g->i] == ' ')
		g->i++;
	return 0;
}

/*
 * Values up to the end of the line, a literal header, or (code) the ']' that
 * ends a response code.  In a response code a syntax error is expected on
 * free text and the caller falls back to it.
 */
static int
parse_values(struct imap_parser *p, struct seg *g, bool code)
{
	const unsigned char *s = g->s;
	struct imap_arg arg;
	unsigned char c;

	for (;;) {
		while (g->i < g->end && s[g->i] == ' ')
			g->i++;
		if (g->i == g->end) {
			if (code)
				return fail(p, IMAP_ERR_SYNTAX,
				    p->seg_pos + g->i, "unterminated code");
			if (p->depth > 0)
				return fail(p, IMAP_ERR_SYNTAX,
				    p->seg_pos + g->i, "unclosed list");
			return VAL_END;
		}
		c = s[g->i];
		if (c == '(') {
			if (p->depth == IMAP_MAX_DEPTH)
				return fail(p, IMAP_ERR_TOO_DEEP,
				    p->seg_pos + g->i, "lists nested too deep");
			if (p->fetch && p->depth == 0 && p->nstack == 0)
				p->fetch_list = true;
			p->open[p->depth++] = p->nstack;
			g->i++;
		} else if (c == ')') {
			if (p->depth == 0)
				return fail(p, IMAP_ERR_SYNTAX,
				    p->seg_pos + g->i, "unbalanced ')'");
			memset(&arg, 0, sizeof(arg));
			arg.type = IMAP_ARG_LIST;
			if (copy_args(p, p->open[p->depth - 1], &arg.list,
			    &arg.count) == -1)
				return VAL_ERROR;
			if (--p->depth == 0)
				p->fetch_list = false;
			if (push_arg(p, &arg, p->seg_pos + g->i) == -1)
				return VAL_ERROR;
			g->i++;
		} else if (c == '"') {
			if (parse_quoted(p, g) == -1)
				return VAL_ERROR;
		} else if (c == '{' || (c == '~' && g->i + 1 < g->end &&
		    s[g->i + 1] == '{')) {
			if (code)
				return fail(p, IMAP_ERR_SYNTAX,
				    p->seg_pos + g->i, "literal in code");
			return parse_literal(p, g) == -1 ? VAL_ERROR :
			    VAL_LITERAL;
		} else if (c == ']' && code) {
			if (p->depth > 0)
				return fail(p, IMAP_ERR_SYNTAX,
				    p->seg_pos + g->i, "unclosed list");
			return VAL_CLOSE;
		} else if (parse_atom(p, g, code) == -1)
			return VAL_ERROR;
	}
}

static int
parse_atom(struct imap_parser *p, struct seg *g, bool code)
{
	const unsigned char *s = g->s, *q;
	struct imap_arg arg;
	size_t start = g->i, k, until = 0;
	bool bracket = false;
	unsigned char c;

	for (k = start; k < g->end; k++) {
		c = s[k];
		if (!atom_special[c])
			continue;
		if (c < 0x20 || c == 0x7f) {
			if (c == '\0')
				return fail(p, IMAP_ERR_NUL, p->seg_pos + k,
				    "NUL");
			return fail(p, IMAP_ERR_SYNTAX, p->seg_pos + k,
			    "control character");
		}
		if (bracket) {
			if (k == until)
				bracket = false;
			continue;
		}
		if (c == ' ' || c == '(' || c == ')' || c == '"')
			break;
		if (code) {
			if (c == ']')
				break;
			continue;
		}
		if (c == '[') {
			/* The next ']' is remembered so that a line of '['
			 * without ']' is scanned once, not once per '['. */
			if (!g->close_valid || g->close < k + 1) {
				q = memchr(s + k + 1, ']', g->end - k - 1);
				g->close = q == NULL ? g->end : (size_t)(q - s);
				g->close_valid = true;
			}
			if (g->close < g->end) {
				bracket = true;
				until = g->close;
			}
		}
	}
	g->i = k;
	memset(&arg, 0, sizeof(arg));
	if (word_is(s + start, k - start, "NIL")) {
		arg.type = IMAP_ARG_NIL;
	} else {
		arg.type = IMAP_ARG_ATOM;
		arg.len = k - start;
		if ((arg.str = arena_strdup(p, s + start, k - start, false)) ==
		    NULL)
			return fail(p, IMAP_ERR_MEMORY, p->pos, "out of memory");
	}
	return push_arg(p, &arg, p->seg_pos + start);
}

static int
parse_quoted(struct imap_parser *p, struct seg *g)
{
	const unsigned char *s = g->s;
	struct imap_arg arg;
	size_t start = g->i, k, n;
	char *d;

	for (k = start + 1; k < g->end && s[k] != '"'; k++) {
		if (s[k] == '\\' && k + 1 < g->end)
			k++;
		if (s[k] == '\0')
			return fail(p, IMAP_ERR_NUL, p->seg_pos + k, "NUL");
	}
	if (k >= g->end)
		return fail(p, IMAP_ERR_SYNTAX, p->seg_pos + start,
		    "unterminated quoted string");
	if ((d = arena_alloc(p, k - start)) == NULL)
		return fail(p, IMAP_ERR_MEMORY, p->pos, "out of memory");
	n = 0;
	for (start++; start < k; start++) {
		if (s[start] == '\\')
			start++;
		d[n++] = s[start];
	}
	d[n] = '\0';
	g->i = k + 1;
	memset(&arg, 0, sizeof(arg));
	arg.type = IMAP_ARG_STRING;
	arg.str = d;
	arg.len = n;
	return push_arg(p, &arg, p->seg_pos + k);
}

/* "{n}", "{n+}" or "~{n}", which must end the line. */
static int
parse_literal(struct imap_parser *p, struct seg *g)
{
	const unsigned char *s = g->s;
	const struct imap_arg *name = NULL;
	size_t k = g->i, digits;
	uint64_t size = 0;

	p->lit_pos = p->seg_pos + k;
	p->lit_literal8 = s[k] == '~';
	if (p->lit_literal8)
		k++;
	k++;
	if (k < g->end && s[k] == '-')
		return fail(p, IMAP_ERR_LITERAL, p->lit_pos,
		    "negative literal size");
	for (digits = k; k < g->end && s[k] >= '0' && s[k] <= '9'; k++)
		continue;
	if (k == digits)
		return fail(p, IMAP_ERR_LITERAL, p->lit_pos,
		    "malformed literal size");
	if (num_parse_u64n((const char *)s + digits, k - digits, UINT64_MAX,
	    &size) == -1)
		return fail(p, IMAP_ERR_NUMBER, p->lit_pos,
		    "literal size overflows");
	if (k < g->end && s[k] == '+')
		k++;
	if (k == g->end || s[k] != '}')
		return fail(p, IMAP_ERR_LITERAL, p->lit_pos,
		    "malformed literal size");
	if (k + 1 != g->end)
		return fail(p, IMAP_ERR_LITERAL, p->seg_pos + k + 1,
		    "bytes after literal size");
	g->i = g->end;

	p->lit_left = size;
	p->lit_len = 0;
	p->lit_streamed = false;
	p->state = PS_LITERAL;
	if (p->sink != NULL && p->fetch_list && p->depth == 1 &&
	    (p->nstack - p->open[0]) % 2 == 1) {
		name = &p->stack[p->nstack - 1];
		p->lit_streamed = name->type == IMAP_ARG_ATOM &&
		    streamable(name->str);
	}
	if (p->lit_streamed) {
		p->info.msgno = p->resp.number;
		/* Upper-cased, so that "body[]" is found as "BODY[]". */
		if ((p->info.item = arena_strdup(p,
		    (const unsigned char *)name->str, name->len, true)) ==
		    NULL)
			return fail(p, IMAP_ERR_MEMORY, p->lit_pos,
			    "out of memory");
		p->info.size = size;
		p->info.before = &p->stack[p->open[0]];
		p->info.nbefore = p->nstack - p->open[0] - 1;
		if (p->sink(p->sink_arg, IMAP_SINK_BEGIN, &p->info, NULL,
		    0) == -1)
			return fail(p, IMAP_ERR_SINK, p->lit_pos,
			    "sink failed");
		return 0;
	}
	if (size > IMAP_MAX_HELD_LITERAL)
		return fail(p, IMAP_ERR_LITERAL_TOO_BIG, p->lit_pos,
		    "literal too big");
	if (p->held + size + 1 > IMAP_MAX_RESPONSE)
		return fail(p, IMAP_ERR_LITERAL_TOO_BIG, p->lit_pos,
		    "response too big");
	if ((p->lit_buf = arena_alloc(p, (size_t)size + 1)) == NULL)
		return fail(p, IMAP_ERR_MEMORY, p->lit_pos, "out of memory");
	return 0;
}

static int
literal_data(struct imap_parser *p, const unsigned char *data, size_t n)
{
	if (n == 0)
		return 0;
	p->lit_left -= n;
	if (p->lit_streamed) {
		if (p->sink(p->sink_arg, IMAP_SINK_DATA, &p->info, data,
		    n) == -1)
			return fail(p, IMAP_ERR_SINK, p->pos, "sink failed");
		return 0;
	}
	memcpy(p->lit_buf + p->lit_len, data, n);
	p->lit_len += n;
	return 0;
}

static int
literal_end(struct imap_parser *p)
{
	struct imap_arg arg;

	memset(&arg, 0, sizeof(arg));
	arg.literal8 = p->lit_literal8;
	if (p->lit_streamed) {
		if (p->sink(p->sink_arg, IMAP_SINK_END, &p->info, NULL,
		    0) == -1)
			return fail(p, IMAP_ERR_SINK, p->pos, "sink failed");
		arg.type = IMAP_ARG_STREAMED;
		arg.size = p->info.size;
	} else {
		p->lit_buf[p->lit_len] = '\0';
		arg.type = IMAP_ARG_STRING;
		arg.str = p->lit_buf;
		arg.len = p->lit_len;
		p->lit_buf = NULL;
	}
	p->state = PS_LINE;
	return push_arg(p, &arg, p->lit_pos);
}

static bool
streamable(const char *name)
{
	return strncasecmp(name, "BODY[", 5) == 0 ||
	    strncasecmp(name, "BINARY[", 7) == 0 ||
	    strcasecmp(name, "RFC822") == 0 ||
	    strcasecmp(name, "RFC822.TEXT") == 0 ||
	    strcasecmp(name, "RFC822.HEADER") == 0;
}

/* Case-insensitive (ASCII) comparison of s[0..len) with an upper-case word. */
static bool
word_is(const unsigned char *s, size_t len, const char *word)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = s[i];
		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		if (word[i] == '\0' || c != (unsigned char)word[i])
			return false;
	}
	return word[i] == '\0';
}

static bool
atom_valid_u32(const struct imap_arg *arg)
{
	uint64_t v;

	return arg->type == IMAP_ARG_ATOM &&
	    num_parse_u64n(arg->str, arg->len, UINT32_MAX, &v) == 0;
}
