/*
 * mirror/mirror_int.h: what the files of the sync engine share (not a
 * public interface; mirror.h is).  One run is one struct mirror; its
 * fields are the run's state, and each file acts on its part of them:
 *
 *   mirror.c     the run: the state machine (enum mirror_state, the
 *                setter, the handler of each state's events), connection
 *                ends, reconnects, start and free
 *   mailboxes.c  the plan (LIST, STATUS), which mailbox next, the wait for
 *                a mail reader's lock, EXAMINE
 *   fetch.c      the size query, batches of bodies, streaming them into
 *                the mbox, what arrived
 *   commit.c     opening the mbox at the committed size, the commit
 *                protocol, holes
 *   remapping.c  a changed UIDVALIDITY: the server's messages matched to
 *                the mirror's by content (mirror/remap.h decides), the
 *                index and the state renumbered, so that only the new
 *                ones are fetched
 *   progress.c   progress lines while bodies come in
 *   plan.c       the decisions, pure (mirror/plan.h)
 */
#ifndef MM_MIRROR_INT_H
#define MM_MIRROR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "imap/response.h"
#include "imap/session.h"
#include "mirror/mirror.h"
#include "mirror/msgindex.h"
#include "mirror/names.h"
#include "mirror/msgindex.h"
#include "mirror/plan.h"
#include "mirror/remap.h"
#include "mirror/state.h"
#include "util/nameindex.h"

/*
 * A batch is one UID FETCH of bodies.  Its size follows the link (see
 * plan_batch_pace()): after the first, about BATCH_TARGET_SECS of transfer
 * by the measured rate, growing at most BATCH_GROWTH-fold a batch, never
 * past the hard caps, so that on a slow link a batch refused or cut costs
 * seconds, not minutes, while a fast one gets few, big batches.  The first
 * batch is a full one: nothing is known of the link yet, and each batch
 * boundary leaves the link idle for a round trip and the server's start (the
 * next batch goes out once the previous one's last message is in), which a
 * ramp of small batches paid several times (+4 % for 5,000 messages over
 * 40 ms and 50 Mbit/s).  What a small first batch would buy comes anyway:
 * commits do not wait for a batch's end (PLAN_COMMIT_EVERY), and progress
 * lines come from a timer.  Two in flight keep the pipe full while the
 * previous batch is committed.
 */
#define BATCH_MAX_MESSAGES 2000
#define BATCH_MAX_BYTES (32ULL * 1024 * 1024)
#define BATCH_FIRST_MESSAGES BATCH_MAX_MESSAGES
#define BATCH_FIRST_BYTES BATCH_MAX_BYTES
#define BATCH_MIN_MESSAGES 10
#define BATCH_MIN_BYTES (64ULL * 1024)
#define BATCH_TARGET_SECS 5.0
#define BATCH_GROWTH 4
#define BATCHES_IN_FLIGHT 2
/*
 * New mail of a mailbox mirrored before, up to PLAN_DIRECT_FETCH_MAX
 * messages (from UIDNEXT), is fetched with the EXAMINE in one round trip;
 * more, or a first sync, first asks for the sizes so batches can be cut by
 * bytes.
 */
#define DIRECT_FETCH_MAX PLAN_DIRECT_FETCH_MAX
/* ...and at most this many more it may send (mail arriving meanwhile). */
#define DIRECT_SLACK 1000
/* Seconds between progress lines while a mailbox's bodies come in. */
#define PROGRESS_INTERVAL 5.0
/* Bytes of a server's text kept for an error message. */
#define ERROR_TEXT_MAX 300
/* How often to look again at an mbox another program holds locked. */
#define LOCK_POLL_SECS 0.1
/*
 * A server may end a session after so many messages (NO [UNAVAILABLE],
 * BYE): what arrived whole is committed and a new connection goes on, after
 * this pause, as long as each connection delivers something, at most this
 * many times a run.
 */
#define RECONNECT_PAUSE 0.5
#define MAX_RECONNECTS 100
/* UIDs a size query may list beyond the messages the mailbox holds (new
 * mail meanwhile) before the server counts as listing without end. */
#define TODO_SLACK 100000
/* The mailbox a push run fetches: the one the push connection watches. */
#define PUSH_MAILBOX "INBOX"
/* Mailboxes of one account; a server listing more is not believed. */
#define MAX_MAILBOXES 100000
/* Bytes of a BODY[HEADER.FIELDS (MESSAGE-ID)] answer looked at (a
 * Message-ID line is far shorter); the rest is dropped. */
#define REMAP_HEADER_MAX 4096
/* UIDs per UID FETCH of the bodies a remap compares by digest (the
 * command line stays short whatever their spread). */
#define REMAP_DIGEST_UIDS 500

/*
 * Where a run stands; mirror_set_state() is the only way to change it.
 *
 *   CONNECTING   connect, TLS, login (session_start; ready follows)
 *   ATTACHED     a push run (mirror_start_push()) on the push connection,
 *                logged in with INBOX examined: its plan is INBOX alone,
 *                EXAMINE follows at once, and instead of LOGOUT the
 *                connection is handed back at DONE
 *   LISTING      LIST for each pattern (with LIST-STATUS, the plan's
 *                STATUS comes with it)
 *   STATUS       the STATUS of every mailbox LIST-STATUS did not answer
 *   LOCK_WAIT    a mail reader holds the next mailbox's mbox: polled on a
 *                timer before anything is sent for it
 *   EXAMINING    EXAMINE sent, with the size query (and, for a few new
 *                messages, the bodies) pipelined behind it, or, when STATUS
 *                showed a new UIDVALIDITY, the remap's listing
 *   REMAP_LISTING  UIDVALIDITY changed and the mirror has messages: its
 *                mbox open, the server's size, date and Message-ID of
 *                every message coming in (remapping.c)
 *   REMAP_DIGESTS  the bodies of ambiguous matches coming in, hashed, not
 *                stored; then the match is taken (index and state
 *                renumbered, REFETCHING for what is new) or refused (the
 *                mbox opened afresh, the old one kept aside, as before)
 *   FETCHING     EXAMINE answered, mbox open: sizes and batches of bodies,
 *                commits (mirror/plan.h decides what may be committed)
 *   REFETCHING   EXAMINE showed the pipelined fetch asked from a stale
 *                state: its answers are waited out, then a fresh one sent
 *   SKIPPING     the mailbox is left out (EXAMINE refused, no UIDVALIDITY,
 *                its file cannot be made): the pipelined fetch is waited out
 *   DRAINING     the mailbox is over for this run (a hole, a refusal): what
 *                is still in flight is answered and ignored
 *   RECONNECTING the server ended a connection that delivered mail: a new
 *                one follows after RECONNECT_PAUSE, resuming where it stood
 *   LOGOUT       every mailbox done, LOGOUT sent
 *   DONE         the outcome is known; done() follows from the loop
 *
 * CONNECTING -> LISTING -> STATUS -> per mailbox [LOCK_WAIT ->] EXAMINING
 * [-> REMAP_LISTING [-> REMAP_DIGESTS]] -> FETCHING | REFETCHING ->
 * FETCHING | SKIPPING | DRAINING -> the next
 * mailbox ... -> LOGOUT -> DONE; RECONNECTING -> CONNECTING from any state
 * with a connection; DONE from anywhere.  A push run: ATTACHED ->
 * [LOCK_WAIT ->] EXAMINING -> ... (INBOX as above) -> DONE, never
 * RECONNECTING or LOGOUT.
 */
enum mirror_state {
	MS_CONNECTING,
	MS_ATTACHED,
	MS_LISTING,
	MS_STATUS,
	MS_LOCK_WAIT,
	MS_EXAMINING,
	MS_REMAP_LISTING,
	MS_REMAP_DIGESTS,
	MS_FETCHING,
	MS_REFETCHING,
	MS_SKIPPING,
	MS_DRAINING,
	MS_RECONNECTING,
	MS_LOGOUT,
	MS_DONE,
};


/*
 * A UID FETCH of bodies in flight: what it asked for.  A server may answer
 * in any order and may add messages nobody asked for; only what was asked
 * is appended, once.
 */
struct batch {
	bool used;
	char tag[IMAP_TAG_MAX];	/* of its UID FETCH */
	bool open;		/* "base+1:*" */
	uint32_t base;
	size_t first, n;	/* else todo[first .. first + n) */
};

struct mbx {
	char *name;		/* raw, as the server sent it */
	char *display;		/* UTF-8 for messages */
	char delimiter;
	bool has_status;
	uint32_t uidvalidity, uidnext, messages;
};

struct mirror {
	struct ev_loop *loop;
	const struct config *config;
	const struct account *account;
	mirror_done_fn *done;
	void *arg;
	ev_tstamp started;
	ev_timer finish_timer;
	enum mirror_state step;		/* where the run stands */
	ev_timer reconnect_timer;	/* a new connection after a cut one */
	unsigned reconnects;
	unsigned session_messages;	/* committed on this connection */
	bool session_gave_up;		/* ...or a hole given up on it */
	bool plan_ready;		/* LIST and STATUS done */
	ev_timer lock_timer;		/* waiting for a mail reader's lock */
	ev_tstamp lock_wait_since;	/* 0: not waiting */

	struct session *session;
	/* A push run: the session is the push watch's, lent (handed back at
	 * DONE, never freed here); observe sees every untagged response. */
	bool push;
	uint32_t push_uidvalidity;
	session_untagged_fn *observe;
	void *observe_arg;
	char *state_dir;
	int state_lock_fd;		/* the account lock; -1: not held */
	struct account_state state;
	char prefix[160];

	struct mbx *mbxs;
	size_t n_mbxs, cap_mbxs;
	struct nameindex mbx_index;	/* mbxs by raw name */
	unsigned lists_pending, status_pending;
	size_t cur;			/* mailbox being synced */

	/* Mailboxes that could not be opened: the account fails once the
	 * others are done. */
	unsigned mbxs_failed;
	char mbx_failure[400];
	enum mirror_error mbx_failure_kind;	/* of the first such */
	struct names_patterns patterns;	/* the account's, and what they hit */

	/* The mailbox being synced */
	struct mailbox_state *ms;
	struct mbox *mbox;
	struct msgindex *msgindex;	/* the mbox's index */
	uint32_t examine_uidvalidity, examine_uidnext, examine_exists;
	uint32_t fetch_base;		/* the pipelined fetch asked after it */
	bool direct;			/* bodies asked with the EXAMINE */
	bool sizes_pending;		/* the size query is unanswered */
	bool sizes_complete;		/* ...and answered OK */
	bool open_done;			/* the direct batch waits for it */
	struct batch open_batch;
	uint32_t *todo;			/* UIDs to fetch, ascending */
	uint64_t *todo_sizes;
	bool *todo_done;		/* committed or given up */
	size_t n_todo, cap_todo, next_todo;
	size_t contig;			/* todo[0..contig) all done */
	bool todo_unsorted;		/* the server's order was not ours */
	unsigned in_flight;
	struct batch batches[BATCHES_IN_FLIGHT];	/* in flight: used */
	uint32_t *got;			/* UIDs appended, ascending */
	size_t n_got, cap_got;
	struct plan_arrival *arr;	/* appended since the last commit */
	uint64_t *arr_sizes;		/* their message sizes */
	struct msgindex_entry *arr_ix;	/* their index records */
	size_t n_arr, cap_arr;
	uint32_t nil_uid;		/* answered with BODY[] NIL */
	uint32_t hole_counted;		/* the hole this sync counted */
	unsigned long long mbx_messages, mbx_bytes;
	uint64_t todo_bytes;		/* sum of todo_sizes */
	ev_tstamp mbx_started;
	ev_tstamp last_commit;
	ev_tstamp last_commit_try;	/* mid-batch, not always possible */

	/* A remap after a changed UIDVALIDITY (remapping.c) */
	unsigned remap_pending;		/* its UID FETCHes unanswered */
	bool remap_refused;		/* one of them was */
	char remap_refusal[ERROR_TEXT_MAX];	/* the first refusal's text */
	struct remap_census remap_census;	/* EXPUNGE, EXISTS meanwhile */
	bool remap_declined;		/* poor or impossible: as before */
	bool remap_listing_sent;
	struct remap_server *rs;	/* what the server listed */
	size_t n_rs, cap_rs;
	struct msgindex_list rl_index;	/* the mirror's messages */
	struct remap_local *rl;
	char *remap_index_path;
	char *remap_mbox_path;
	unsigned remap_digests;		/* bodies asked for */
	/* A header or body literal coming in through the sink */
	bool remap_sinking;
	bool remap_lit_ready;		/* complete, for remap_lit_msgno */
	uint32_t remap_lit_msgno;
	unsigned char *remap_hdr;	/* REMAP_HEADER_MAX bytes */
	size_t remap_hdr_len;
	struct mbox_digest *remap_digest;
	uint8_t remap_body_digest[REMAP_DIGEST_LEN];

	/* The message being streamed */
	bool msg_skip;
	uint32_t msg_uid;
	/* A streamed message in the mbox whose FETCH response has not ended:
	 * its record is complete (FLAGS may follow the body) at that end. */
	bool pend_active;
	uint32_t pend_msgno;
	struct imap_fetch_item pend_item;	/* flags: not kept */
	uint64_t pend_size;			/* of the literal */
	uint64_t batch_bytes;		/* appended since the last commit */
	bool spooling;
	uint32_t spool_msgno;		/* the FETCH response it is part of */
	int spool_fd;

	/* Batch sizes (see BATCH_TARGET_SECS): the cap of the next batch,
	 * and what had come in when the last one was asked. */
	struct plan_batch_cap batch_cap;
	bool batch_cap_set;		/* else the mailbox's first batch */
	ev_tstamp pace_mark;
	uint64_t pace_mark_bytes;
	unsigned long long pace_mark_messages;

	/* Progress (progress.c): bytes and messages received, partial ones
	 * included, of the mailbox and of the run. */
	ev_timer progress_timer;
	bool first_sync;		/* the mailbox was never mirrored */
	uint64_t mbx_recv_bytes;
	unsigned long long mbx_recv_messages;
	uint64_t run_recv_bytes;
	unsigned long long run_recv_messages;
	unsigned long long run_expected;	/* new messages, about */

	struct mirror_result result;
};

/* mirror.c */
void mirror_set_state(struct mirror *, enum mirror_state);
void mirror_fail(struct mirror *, enum mirror_error, const char *, ...)
    __attribute__((format(printf, 3, 4)));
void mirror_mailbox_failed(struct mirror *, enum mirror_error, const char *,
    ...)
    __attribute__((format(printf, 3, 4)));
int mirror_save_state(struct mirror *);
void mirror_all_done(struct mirror *);
void mirror_mailbox_done(struct mirror *);
void mirror_drain_mailbox(struct mirror *);
void mirror_fetch_ended(struct mirror *, const struct imap_response *,
    const struct batch *);
void mirror_observe(struct mirror *, const struct imap_response *);
void mirror_remap_ended(struct mirror *, const struct imap_response *);
void mirror_refetch(struct mirror *);

/* mailboxes.c */
int mailboxes_list(struct mirror *);
void mailboxes_next(struct mirror *);
void mailboxes_init(struct mirror *);
int mailboxes_push_plan(struct mirror *);
bool mailboxes_push_declined(struct mirror *);
void mailboxes_free(struct mirror *);
void mailboxes_plan_view(const struct mirror *, const struct mbx *,
    struct plan_status *, struct plan_known *);

/* fetch.c */
void fetch_start(struct mirror *, uint32_t, bool);
void fetch_send(struct mirror *, uint32_t, bool);
void fetch_send_batches(struct mirror *);
int fetch_sink(void *, enum imap_sink_event, const struct imap_literal_info *,
    const unsigned char *, size_t);
int fetch_sort_todo(struct mirror *);
int fetch_merge_extras(struct mirror *);
void fetch_forget(struct mirror *);
void fetch_forget_arrivals(struct mirror *);

/* remapping.c */
bool remapping_candidate(const struct mirror *, const struct mailbox_state *);
void remapping_send_listing(struct mirror *);
void remapping_start(struct mirror *, const char *);
void remapping_decline(struct mirror *, const char *);
void remapping_listing_done(struct mirror *, const struct imap_response *);
void remapping_digests_done(struct mirror *, const struct imap_response *);
void remapping_untagged(struct mirror *, const struct imap_response *);
int remapping_sink(struct mirror *, enum imap_sink_event,
    const struct imap_literal_info *, const unsigned char *, size_t);
void remapping_forget(struct mirror *);

/* commit.c */
void commit_open_mailbox(struct mirror *);
int commit_open_index(struct mirror *, const char *);
bool commit_due(const struct mirror *);
bool commit_can_wait(const struct mirror *);
int commit_appended(struct mirror *, bool);
void commit_advance_contig(struct mirror *);
bool commit_hole(struct mirror *, uint32_t, const char *);
uint32_t commit_first_undelivered(const struct mirror *, size_t, size_t);
bool commit_batch_complete(struct mirror *, const struct batch *);

/* progress.c */
void progress_init(struct mirror *);
void progress_plan_ready(struct mirror *);
void progress_start(struct mirror *);
void progress_received(struct mirror *, size_t, bool);
void progress_stop(struct mirror *);

#endif
