/*
 * imapd_mem: a small IMAP server for tests of the layers above imap/session
 * (the mirror engine, IDLE), on tests/fakes/transport_mem.  It answers what
 * those layers send (CAPABILITY, LOGIN, AUTHENTICATE, LIST with or
 * without RETURN STATUS, STATUS, EXAMINE, UID FETCH of sizes and bodies,
 * IDLE/DONE, NOOP, STARTTLS, LOGOUT) from mailboxes the test fills in,
 * and misbehaves on request (faults below).  It runs from an ev_prepare on
 * the test's loop: each connection transport_mem makes is greeted and
 * served in turn.  Every command line the client sent is kept for
 * assertions.
 */
#ifndef MM_TESTS_IMAPD_MEM_H
#define MM_TESTS_IMAPD_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define IMAPD_MAILBOXES_MAX 40
#define IMAPD_MESSAGES_MAX 64

struct imapd_msg {
	uint32_t uid;
	const char *body;	/* CRLF lines, as the server stores it */
};

struct imapd_mailbox {
	char name[64];
	char delimiter;
	const char *flags;		/* LIST flags ("\\HasNoChildren") */
	uint32_t uidvalidity;
	uint32_t uidnext;
	struct imapd_msg msgs[IMAPD_MESSAGES_MAX];
	size_t n_msgs;
	bool examine_no;		/* EXAMINE answered NO */
	const char *examine_refusal;	/* ...or with this ("NO [UNAVAILABLE]
					 * later") */
	bool no_uidvalidity;		/* EXAMINE and STATUS without it */
};

struct imapd {
	struct ev_loop *loop;
	ev_prepare prepare;
	const char *caps;		/* "IMAP4rev1 AUTH=PLAIN SASL-IR" */
	const char *user, *password;	/* LOGIN must match */
	struct imapd_mailbox boxes[IMAPD_MAILBOXES_MAX];
	size_t n_boxes;

	/* Faults */
	bool auth_no;			/* LOGIN/AUTHENTICATE refused */
	bool list_no;			/* LIST refused */
	bool status_no;			/* STATUS refused */
	uint32_t nil_uid;		/* its body comes as BODY[] NIL */
	uint32_t omit_uid;		/* left out of body answers */
	bool string_bodies;		/* bodies as quoted strings */
	bool uid_after_body;		/* UID, INTERNALDATE after BODY[] */
	const char *flags_item;		/* e.g. "FLAGS (\\Seen)", sent with bodies */
	bool flags_first;		/* ...before BODY[] (else after it) */
	bool no_internaldate;		/* ...or none (those two modes) */
	const char *arrive_after_sizes;	/* a message added to the mailbox
					 * once a size query is answered */
	bool logout_drop;		/* LOGOUT: hang up, no answer */
	unsigned bye_after;		/* BYE and EOF after so many bodies a
					 * connection (0: never) */
	unsigned unavailable_after;	/* NO [UNAVAILABLE] after so many */
	unsigned stall_after;		/* silence after so many */
	bool idle_no;			/* IDLE refused */
	bool sizes_no;			/* the size query refused */
	bool reverse_sizes;		/* ...answered highest UID first */
	const char *fetch_refusal;	/* body fetches answered with it
					 * ("NO [UNAVAILABLE] later") */
	bool drop_on_fetch;		/* the link fails at the first body
					 * fetch (before any body) */

	/* What happened */
	unsigned connections;
	unsigned examines, body_fetches, idles, logouts;
	char log[16384];		/* client lines, "\n"-separated, tags
					 * removed ("EXAMINE INBOX") */

	/* The connection being served */
	unsigned seen_created;
	struct transport_mem *conn;
	char in[8192];
	size_t in_len;
	struct imapd_mailbox *selected;
	unsigned conn_bodies;
	char idle_tag[16];
	bool gone;			/* EOF sent */
};

/* Starts serving on loop (an ev_prepare; stopped by imapd_stop()); loop
 * may be NULL for imapd_attach() later. */
void imapd_init(struct imapd *d, struct ev_loop *loop);
/* Serves on loop from now on (a loop the code under test made). */
void imapd_attach(struct imapd *d, struct ev_loop *loop);
void imapd_stop(struct imapd *d);
/* Adds a mailbox (uidnext 1, uidvalidity 1000, delimiter '/'). */
struct imapd_mailbox *imapd_add_mailbox(struct imapd *d, const char *name);
/* Adds a message with the next UID. */
void imapd_add_message(struct imapd_mailbox *b, const char *body);
/* Pushes an untagged line ("* 5 EXISTS") to the current connection. */
void imapd_push(struct imapd *d, const char *line);
/* How many client lines contain text. */
unsigned imapd_count(const struct imapd *d, const char *text);

#endif
