/*
 * verify_int.h: what the files of --verify share (not a public interface;
 * verify.h is).  One account's check is one struct verifier; each file
 * acts on its part of it:
 *
 *   verify.c         the account: the state read once, the session, the
 *                    listing per mailbox (EXAMINE and the size query),
 *                    where the check stands (enum verify_step)
 *   verify_file.c    each mbox against its index, without the server
 *   verify_deep.c    --deep: the bodies again, hashed as they come
 *   verify_report.c  the problem lines, the summary, the JSON
 *   verify_compare.c the decisions, pure (verify_compare.h)
 */
#ifndef MM_VERIFY_INT_H
#define MM_VERIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "config.h"
#include "imap/response.h"
#include "imap/session.h"
#include "mbox/mbox.h"
#include "mirror/state.h"
#include "verify_compare.h"

/* Mailboxes whose EXAMINE and size query are in flight at once. */
#define VERIFY_MAILBOXES_AHEAD 4
/* Indexed UIDs per size query (verify_size_ranges()): a session takes at
 * most 100,000 untagged responses in a row for progress, so one query for
 * a mailbox of a million messages would time out on a slow server.  Tests
 * make it small. */
#ifndef VERIFY_SIZES_CHUNK
#define VERIFY_SIZES_CHUNK 50000
#endif
/* UIDs a size query may list beyond EXISTS before the server counts as
 * listing without end. */
#define VERIFY_LISTED_SLACK 100000
/* --deep: a batch of bodies, and how many batches in flight. */
#define DEEP_BATCH_MESSAGES 500
#define DEEP_BATCH_BYTES (16ULL * 1024 * 1024)
#define DEEP_IN_FLIGHT 2
/* Seconds between --deep progress lines. */
#define DEEP_PROGRESS_SECS 5.0
#define READ_CHUNK (256 * 1024)

struct verifier;
struct uid_at;

/*
 * Where an account's check stands; set_step() is the only way to change
 * it.  LOCAL (the files) -> CONNECTING -> LISTING (EXAMINE and the size
 * query per mailbox) -> [DEEP (the bodies again) ->] LOGOUT -> DONE;
 * DONE from anywhere once the session has ended.
 */
enum verify_step {
	VS_LOCAL,
	VS_CONNECTING,
	VS_LISTING,
	VS_DEEP,
	VS_LOGOUT,
	VS_DONE,
};

enum index_origin {
	INDEX_NONE,		/* no file to check (nothing committed) */
	INDEX_LOADED,		/* the index file */
	INDEX_REBUILT,		/* none: rebuilt in memory from the file */
	INDEX_FAILED,		/* neither (file_error says why) */
};

struct vmbx {
	struct verifier *vf;
	const struct mailbox_state *ms;
	char *display;		/* UTF-8, made printable */
	char *path;		/* the mbox; NULL: no file yet */
	enum index_origin index;
	struct verify_indexed *ix;
	size_t nix;
	uint64_t file_size;
	char *file_error;	/* the file could not be read: a problem */
	/* Against the server */
	bool examined;		/* EXAMINE answered OK */
	size_t sizes_pending;	/* size queries not answered yet */
	bool sizes_failed;	/* one was refused */
	uint32_t uidvalidity, exists;
	struct verify_listed *listed;
	size_t nlisted, cap_listed;
	bool server_checked;
	char *server_error;	/* could not be checked there */
	bool gone;		/* EXAMINE refused: not on the server */
	struct verify_server_counts counts;
	/* --deep */
	struct uid_at *byuid;	/* ix by UID, for --deep */
	bool deep_done;
	size_t deep_checked;
	struct verify_problems problems;
};

struct verifier {
	enum verify_step step;
	struct ev_loop *loop;
	const struct config *config;
	const struct account *account;
	bool deep;
	char *state_dir;
	struct account_state st;
	char *state_error;
	long sync_pid;
	bool sync_running;
	struct vmbx *v;
	size_t n;
	/* The connection */
	struct session *s;
	char *connect_error;	/* the session failed */
	size_t next_send, pending;
	/* --deep: the mailbox being fetched, its UIDs and where they stand */
	size_t deep_cur;
	bool deep_examined;
	uint32_t *deep_uids;
	uint64_t *deep_sizes;
	size_t deep_n, deep_next;
	size_t in_flight;
	struct mbox_digest *digest;
	bool digesting;
	uint32_t digest_msgno;
	uint8_t pending_digest[MBOX_DIGEST_LEN];
	bool have_pending;
	uint8_t (*server_digests)[VERIFY_DIGEST_LEN];	/* rebuilt index */
	size_t n_server_digests;
	ev_timer progress;
	ev_tstamp deep_started;
	uint64_t deep_total_bytes, deep_bytes;
	size_t deep_total_messages, deep_messages;
};

/* What an account's check found, added up. */
struct tally {
	size_t mailboxes, messages, problems, deleted, newer, given_up;
	size_t deep_checked, rebuilt, gone;
	bool incomplete;
	bool never_synced;	/* no state yet: nothing to verify */
};

/* verify.c */
void verify_set_step(struct verifier *vf, enum verify_step step);
/* EXISTS and UIDVALIDITY of an EXAMINE, into its struct vmbx (arg). */
void verify_on_examine_untagged(struct session *s,
    const struct imap_response *resp, void *arg);

/* verify_file.c: the local check of one mailbox; -1 only when out of
 * memory (what is wrong with the file is in mb). */
int verify_check_file(struct verifier *vf, struct vmbx *mb);

/* verify_deep.c: the listing is done; --deep goes through the mailboxes,
 * then logs out. */
void verify_deep_start(struct verifier *vf);

/* verify_report.c */
void verify_tally(const struct verifier *vf, struct tally *t);
void verify_print_text(const struct verifier *vf, const struct tally *t);
void verify_print_json(const struct verifier *vf, const struct tally *t,
    bool first);

#endif
