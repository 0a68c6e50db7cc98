/*
 * imap/parser: an incremental IMAP4rev1/IMAP4rev2 response parser.
 *
 * It knows nothing of sockets: the caller hands it bytes as they arrive, in
 * chunks of any size split anywhere, and gets whole responses back.  FETCH
 * body literals (BODY[...], BINARY[...], RFC822*) are not held: their bytes
 * go to a sink callback as they arrive, so memory does not grow with message
 * size.  Every other literal, token and line is capped (limits below); going
 * past a cap, or any syntax error, is a protocol error after which the
 * parser must be reset or freed.
 *
 * Ownership: a response and everything it points to belong to the parser and
 * stay valid until the next call of imap_parser_feed() or _reset()/_free().
 *
 * What is accepted beyond the strict grammar, because real servers send it:
 * lower-case keywords and status words, several spaces where one is due, a
 * space before the line end, a bare LF as line end, an empty text after a
 * status word ("A1 OK"), "{n+}" literals from a server.  The text after a
 * status word (and after its response code) is free text to the end of the
 * line: it may hold unbalanced quotes, parentheses and "{n}".
 *
 * Atoms: a run of bytes other than space, '(', ')', '"' and controls (bytes
 * of 0x80 and up are allowed, for UTF-8 names).  A '[' in an atom opens a
 * section that lasts to the next ']' on the line and may hold spaces,
 * parentheses and quotes, so "BODY[HEADER.FIELDS (FROM TO)]<0>" is one atom.
 * The atom "NIL" (any case) is IMAP_ARG_NIL.
 */
#ifndef MM_IMAP_PARSER_H
#define MM_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits.  A server that goes past one gets IMAP_PARSE_ERROR. */
#define IMAP_MAX_LINE (64 * 1024)	/* bytes of one response, literals aside */
#define IMAP_MAX_DEPTH 32		/* nesting of parenthesised lists */
#define IMAP_MAX_ARGS 10000		/* values in one response */
#define IMAP_MAX_HELD_LITERAL (1024 * 1024)	/* a literal that is not streamed */
#define IMAP_MAX_RESPONSE (4 * 1024 * 1024)	/* all held bytes of one response */

enum imap_parse_result {
	IMAP_PARSE_ERROR = -1,
	IMAP_PARSE_NEED_MORE = 0,	/* every byte given was consumed */
	IMAP_PARSE_RESPONSE = 1,	/* *response_r is a whole response */
};

enum imap_parse_error {
	IMAP_ERR_NONE = 0,
	IMAP_ERR_SYNTAX,		/* bytes that fit no response */
	IMAP_ERR_LINE_TOO_LONG,		/* over IMAP_MAX_LINE */
	IMAP_ERR_TOO_DEEP,		/* over IMAP_MAX_DEPTH */
	IMAP_ERR_TOO_MANY_ARGS,		/* over IMAP_MAX_ARGS */
	/* A message number ("* n ...") or a FETCH UID that is not a 32-bit
	 * number, or a literal size that does not fit 64 bits. */
	IMAP_ERR_NUMBER,
	IMAP_ERR_LITERAL,	/* malformed or negative literal size, or bytes
				 * after "{n}" on its line */
	/* A held literal over IMAP_MAX_HELD_LITERAL, or one that would take
	 * the response's held bytes over IMAP_MAX_RESPONSE. */
	IMAP_ERR_LITERAL_TOO_BIG,
	IMAP_ERR_NUL,			/* NUL outside a literal */
	IMAP_ERR_SINK,			/* the sink returned -1 */
	IMAP_ERR_MEMORY,		/* malloc failed */
};

enum imap_arg_type {
	IMAP_ARG_NIL,
	IMAP_ARG_ATOM,		/* includes numbers and BODY[...]<n> items */
	IMAP_ARG_STRING,	/* quoted string or held literal */
	IMAP_ARG_LIST,
	IMAP_ARG_STREAMED,	/* a literal given to the sink: size only */
};

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM, STRING: NUL-terminated; len excludes the terminator (a literal
	 * may contain NULs).  NIL, STREAMED: str NULL, len 0.  LIST: children
	 * (list NULL when count is 0).  STREAMED: size is the literal size. */
	const char *str;
	size_t len;
	const struct imap_arg *list;
	size_t count;
	uint64_t size;
	bool literal8;		/* came as ~{n} */
};

enum imap_resp_type {
	IMAP_RESP_TAGGED,
	IMAP_RESP_UNTAGGED,
	IMAP_RESP_CONTINUE,	/* "+ ..." */
};

enum imap_status {
	IMAP_STATUS_NONE,	/* not a status response (e.g. "* 3 EXISTS") */
	IMAP_STATUS_OK,
	IMAP_STATUS_NO,
	IMAP_STATUS_BAD,
	IMAP_STATUS_BYE,
	IMAP_STATUS_PREAUTH,
};

struct imap_response {
	enum imap_resp_type type;
	const char *tag;		/* TAGGED only, else NULL */
	enum imap_status status;
	/* Status responses and continuations: the response code, upper-cased
	 * ("UIDVALIDITY"), or NULL; code_args are its arguments parsed as
	 * values (a CAPABILITY code's capabilities, PERMANENTFLAGS' list);
	 * code_text is the raw text between the code name and ']' ("" when
	 * there is none).  Arguments that do not parse as values (an unknown
	 * code's free text) leave code_args NULL and code_nargs 0. */
	const char *code;
	const struct imap_arg *code_args;
	size_t code_nargs;
	const char *code_text;
	/* Status responses and continuations: the human-readable text (for a
	 * continuation, possibly base64), never NULL, "" when absent, without
	 * leading and trailing spaces.  NULL for data responses. */
	const char *text;
	/* Untagged data: "* 23 EXISTS" has has_number, number 23, keyword
	 * "EXISTS"; "* LIST (...) "/" INBOX" has keyword "LIST".  Keywords are
	 * upper-cased.  args are the values after the keyword.  Status
	 * responses have keyword NULL and no args. */
	bool has_number;
	uint32_t number;
	const char *keyword;
	const struct imap_arg *args;
	size_t nargs;
};

/*
 * The sink for streamed FETCH literals.  For each one it gets BEGIN (data
 * NULL), DATA zero or more times with the bytes in order, then END.  info
 * says which message and item, and what the FETCH response held before the
 * literal (so UID and INTERNALDATE are known when the server sends them
 * first, as servers do when they are asked in that order).  Returning -1
 * aborts parsing with IMAP_ERR_SINK.
 *
 * A literal is streamed when a sink is set, the response is "* n FETCH (",
 * the literal is the value of an item at the top level of that list, and the
 * item's name starts with BODY[ or BINARY[ or is RFC822, RFC822.TEXT or
 * RFC822.HEADER (any case).  DATA points into the buffer given to
 * imap_parser_feed(): the bytes are not copied.  info and everything it
 * points to are valid during the call only.  before holds name, value,
 * name, value ... pairs (the literal's own item name is in item, not in
 * before); feed it to imap_fetch_decode() (imap/response.h).  DATA never
 * has len 0.
 *
 * A literal cut short gets no END: when imap_parser_feed() fails (a syntax
 * error cannot happen inside a literal, but the sink itself may fail) or
 * the parser is reset or freed between BEGIN and END, the caller learns it
 * from there and must drop what the sink started.
 */
enum imap_sink_event { IMAP_SINK_BEGIN, IMAP_SINK_DATA, IMAP_SINK_END };

struct imap_literal_info {
	uint32_t msgno;			/* "* msgno FETCH" */
	const char *item;	/* "BODY[]", "BINARY[1]", "RFC822", upper-cased */
	uint64_t size;
	const struct imap_arg *before;	/* FETCH items so far: name, value, ... */
	size_t nbefore;
};

typedef int imap_sink_fn(void *arg, enum imap_sink_event event,
    const struct imap_literal_info *info, const unsigned char *data,
    size_t len);

struct imap_parser;

/* NULL if out of memory. */
struct imap_parser *imap_parser_new(void);
void imap_parser_free(struct imap_parser **parser);
/* Forgets any partial response and clears an error; byte positions start
 * again from 0. */
void imap_parser_reset(struct imap_parser *parser);
/* NULL: FETCH body literals are held like others (and capped).  Takes
 * effect from the next literal header; do not change it inside a sink. */
void imap_parser_set_sink(struct imap_parser *parser, imap_sink_fn *sink,
    void *arg);

/*
 * Consumes bytes from buf until a response is complete, all len bytes are
 * used, or an error.  *consumed_r says how many bytes were used in every
 * case; call again with the rest.  RESPONSE: *response_r is set, and the
 * bytes after the response's line end are not consumed.  NEED_MORE: all len
 * bytes were consumed (and kept or passed on as needed).  ERROR: see
 * imap_parser_error(); every later call fails the same way until
 * imap_parser_reset().  The sink, if any, is called from inside this
 * function.  Where the input is split into calls never changes the
 * responses, the sink's bytes or the error.
 */
enum imap_parse_result imap_parser_feed(struct imap_parser *parser,
    const unsigned char *buf, size_t len, size_t *consumed_r,
    const struct imap_response **response_r);

/* True when no partial response is buffered (e.g. to check that nothing
 * follows a STARTTLS OK). */
bool imap_parser_idle(const struct imap_parser *parser);

/* Bytes of the literal being read that are still due (0 outside one): input
 * the server has promised, whatever else happens. */
uint64_t imap_parser_literal_left(const struct imap_parser *parser);

enum imap_parse_error imap_parser_error(const struct imap_parser *parser);
/* A short human description of the last error, with the offending
 * position, e.g. "literal size overflows at byte 17".  Positions count the
 * bytes fed since imap_parser_new() or _reset(), from 0.  "" when there is
 * no error. */
const char *imap_parser_error_text(const struct imap_parser *parser);

/* Bytes of heap the parser holds now (buffers kept for reuse included), to
 * check that memory does not grow with the input. */
size_t imap_parser_memory(const struct imap_parser *parser);

#endif
