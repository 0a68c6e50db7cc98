/*
 * mirror/remap: after a UIDVALIDITY change, which of the server's messages
 * are already in the mirror, as pure functions (no I/O), so each rule is
 * tested on arrays alone.
 *
 * A message is known by its key: RFC822.SIZE, INTERNALDATE (UTC seconds)
 * and the hash of its Message-ID (mbox_message_id_hash(); 0 when it has
 * none).  A key that one server message and one mirrored message share,
 * with a Message-ID, is a match.  Any other key both sides hold (several
 * messages with it on either side, or no Message-ID) is ambiguous: the
 * digests of the server's bodies (fetched again) decide, pairing equal
 * digests one to one.  A message the server holds twice is matched once:
 * its second copy is fetched, as the server has it twice.
 *
 * The server's list is untrusted: remap_server_sort() keeps each UID once
 * (the first answer counts) whatever order and repeats it came in, and
 * the work is O(n log n) in what it sent, whatever the keys.
 */
#ifndef MM_MIRROR_REMAP_H
#define MM_MIRROR_REMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The digest of a stored entry (SHA-256, as mbox_digest_*()). */
#define REMAP_DIGEST_LEN 32

/* A message in the mirror, from its index. */
struct remap_local {
	uint64_t size;
	int64_t internaldate;
	uint64_t message_id_hash;	/* 0: none */
	const uint8_t *digest;		/* REMAP_DIGEST_LEN bytes */
};

enum remap_how {
	REMAP_NONE,		/* matches nothing in the mirror: fetched */
	REMAP_BY_KEY,		/* its key's only message on both sides */
	REMAP_BY_DIGEST,	/* told apart by its body's digest */
	REMAP_NEED_DIGEST,	/* ambiguous: its body's digest decides */
};

/* A message the server listed. */
struct remap_server {
	uint32_t uid;
	uint64_t size;
	int64_t internaldate;
	uint64_t message_id_hash;	/* 0: none */
	bool incomplete;		/* listed without size or date: never
					 * matched, so never skipped */
	bool has_digest;		/* its body was fetched again */
	uint8_t digest[REMAP_DIGEST_LEN];
	/* Set by remap_match(): */
	enum remap_how how;
	size_t local;		/* which local one (BY_KEY, BY_DIGEST) */
};

struct remap_counts {
	size_t server;		/* distinct UIDs listed */
	size_t matched;		/* BY_KEY or BY_DIGEST */
	size_t need_digest;
};

/*
 * Sorts s[0..n) by UID, each UID kept once (the first entry the server
 * sent for it).  Returns the new count, or (size_t)-1 when out of memory
 * (s unchanged).
 */
size_t remap_server_sort(struct remap_server *s, size_t n);

/*
 * Matches the server's messages s[0..ns) (sorted by remap_server_sort())
 * to the mirror's l[0..nl): sets how and local of each, and *c.  Each local
 * message is matched at most once.  Without final, an ambiguous server
 * message without a digest is REMAP_NEED_DIGEST; with final (the digests
 * that could be had are in), it is REMAP_NONE.  0, or -1 when out of
 * memory.
 */
int remap_match(const struct remap_local *l, size_t nl,
    struct remap_server *s, size_t ns, bool final, struct remap_counts *c);

enum remap_verdict {
	REMAP_GOOD,		/* renumber the index, fetch what is new */
	REMAP_POOR,		/* keep the old file aside, fetch it all */
	REMAP_DIGESTS,		/* hash ambiguous bodies, then decide */
};

/*
 * Whether a match is good enough to go on with the mirror's file: at least
 * half of the server's messages (and at least one) are in it.  Fewer says
 * it may be another mailbox under the old name, and a mailbox recreated
 * empty shows nothing either way: both keep the old file aside, as before.
 * Ambiguous messages are fetched (REMAP_DIGESTS) only when their matching
 * could reach that half: bodies are not fetched for a verdict they cannot
 * change.
 */
enum remap_verdict remap_accept(const struct remap_counts *c);

/*
 * The state's last UID after a good match: the highest UID up to which
 * every server message (s sorted, matched) is in the mirror, 0 if the
 * first is not.  The matched ones above it are kept as "present" so that
 * the fetch leaves them out.
 */
uint32_t remap_last_uid(const struct remap_server *s, size_t n);

/* Whether how says the message is in the mirror. */
bool remap_matched(enum remap_how how);

/*
 * How many messages the listing must hold.  EXAMINE said how many there
 * were; while the listing comes in the server may report some expunged
 * ("* n EXPUNGE", n a message number) and new ones arriving ("* n
 * EXISTS").  New mail takes the highest numbers, so EXAMINE's messages
 * still there are numbers 1..examined: an EXPUNGE at or below that is one
 * of them gone, one above it a newcomer gone.  A listing may leave out
 * what was expunged and what arrived (a newcomer's UID is above every
 * listed one, so it is fetched), nothing else.  An EXPUNGE of a number the
 * mailbox does not have, or an EXISTS that shrinks, explains nothing and
 * changes nothing.
 */
struct remap_census {
	uint32_t examined;	/* EXAMINE's messages still there */
	uint32_t exists;	/* messages now */
	uint32_t most;		/* the most there were at once */
};

void remap_census_start(struct remap_census *c, uint32_t exists);
void remap_census_expunge(struct remap_census *c, uint32_t msgno);
void remap_census_exists(struct remap_census *c, uint32_t exists);

/*
 * A remap whose UID FETCH the server refused (Dovecot's NO [SERVERBUG] for
 * a message it cannot read, say) changes nothing, and the next sync tries
 * again; the state counts such syncs in a row for the UIDVALIDITY being
 * remapped.  Returns the new count, given the recorded UIDVALIDITY and
 * count (another UIDVALIDITY starts again at 1).  At REMAP_REFUSED_MAX
 * the remap is given up, so that a server that never lists the mailbox
 * does not stop its mirroring for good: the old file is kept aside and the
 * mailbox mirrored afresh, as after a poor match.
 */
#define REMAP_REFUSED_MAX 3
uint32_t remap_refused_count(uint32_t recorded_uidvalidity,
    uint32_t recorded_count, uint32_t uidvalidity);
bool remap_give_up(uint32_t count);

#endif
