/*
 * imap/response: typed views of parsed responses (CAPABILITY, LIST, STATUS,
 * FETCH items, INTERNALDATE) and the text of a status response.  Pure
 * functions over struct imap_response from imap/parser.h; they never
 * allocate unless said so and return -1 on a response that does not have
 * the expected shape.  SEARCH, ESEARCH and VANISHED responses have no view
 * here: their users read resp->args themselves.
 */
#ifndef MM_IMAP_RESPONSE_H
#define MM_IMAP_RESPONSE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "imap/parser.h"

/* "[CODE] text" of a status response (OK, NO, BAD, BYE, PREAUTH), or its
 * text alone when it has no response code; the code's own arguments are
 * left out.  Written into buf, cut to fit size (> 0); returns buf.  For
 * error messages. */
const char *imap_response_text(const struct imap_response *resp, char *buf,
    size_t size);
/* The status response as the server sent it, tag aside: "OK [CODE args]
 * text" ("?" for a response that is not a status response).  Written into
 * buf, cut to fit size (> 0); returns buf.  For logs and --probe. */
const char *imap_response_status_line(const struct imap_response *resp,
    char *buf, size_t size);

/* Case-insensitive atom comparison (IMAP keywords are). */
bool imap_arg_is_atom(const struct imap_arg *arg, const char *atom);
/* ATOM or STRING as a C string, else NULL (NIL -> NULL too). */
const char *imap_arg_string(const struct imap_arg *arg);
/* A number atom within 32 (uint32_t) or 64 bits (uint64_t); 0 or -1. */
int imap_arg_uint32(const struct imap_arg *arg, uint32_t *value_r);
int imap_arg_uint64(const struct imap_arg *arg, uint64_t *value_r);

/*
 * Capabilities from an untagged CAPABILITY response or a [CAPABILITY ...]
 * response code.  A set of upper-cased names.
 */
#define IMAP_MAX_CAPS 128
struct imap_caps {
	char *names[IMAP_MAX_CAPS];
	size_t n;
};
/* Replaces caps with those in resp (copies, upper-cased, at most
 * IMAP_MAX_CAPS); 1 if resp carried capabilities, else 0 and caps is left
 * alone; -1 if out of memory (caps is then empty).  caps starts zeroed. */
int imap_caps_update(struct imap_caps *caps, const struct imap_response *resp);
/* Case-insensitive. */
bool imap_caps_has(const struct imap_caps *caps, const char *name);
/* Frees the names; caps can be reused. */
void imap_caps_clear(struct imap_caps *caps);

/* "* LIST (\HasNoChildren) "/" INBOX" or LSUB.  Pointers into the response.
 * Extended data after the name is ignored. */
#define IMAP_LIST_NOSELECT 0x1		/* \Noselect or \NonExistent */
#define IMAP_LIST_HASCHILDREN 0x2
struct imap_list_item {
	unsigned flags;
	char delimiter;			/* '\0' for NIL */
	const char *name;		/* raw (modified UTF-7 unless UTF8=ACCEPT) */
	size_t name_len;
};
int imap_list_decode(const struct imap_response *resp,
    struct imap_list_item *item_r);

/* "* STATUS name (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 7)"; absent: has_* false.
 * Other attributes are skipped; a known one with a bad number is -1. */
struct imap_status_item {
	const char *name;
	size_t name_len;
	bool has_messages, has_uidnext, has_uidvalidity, has_size;
	uint32_t messages, uidnext, uidvalidity;
	uint64_t size;
};
int imap_status_decode(const struct imap_response *resp,
    struct imap_status_item *item_r);

/* The items of a FETCH response (or of a partial one: the "before" list a
 * sink gets).  Absent items have has_* false.  items are name, value pairs
 * (resp->args[0].list for "* n FETCH (...)"); a trailing name without a
 * value is skipped; unknown items are skipped; a known item with a value of
 * the wrong shape (UID 0 or over 32 bits, a bad INTERNALDATE) is -1. */
struct imap_fetch_item {
	uint32_t msgno;
	bool has_uid, has_internaldate, has_size, has_modseq, has_flags;
	uint32_t uid;
	time_t internaldate;		/* UTC seconds */
	int16_t tz_minutes;		/* its zone, minutes east of UTC */
	uint64_t size;			/* RFC822.SIZE */
	uint64_t modseq;
	const struct imap_arg *flags;	/* the FLAGS list */
};
int imap_fetch_decode(uint32_t msgno, const struct imap_arg *items,
    size_t nitems, struct imap_fetch_item *item_r);
/* imap_fetch_decode() of a whole untagged "* n FETCH (...)" response;
 * -1 (item_r untouched) when resp is not one. */
int imap_fetch_response_decode(const struct imap_response *resp,
    struct imap_fetch_item *item_r);

/* "17-Jul-1996 02:44:25 -0700" -> UTC seconds; 0 or -1.  The day may be
 * " 7", "07" or "7"; the month name is matched in any case; the date must
 * exist. */
int imap_parse_internaldate(const char *text, time_t *time_r);

#endif
