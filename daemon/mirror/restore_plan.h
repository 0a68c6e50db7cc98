/*
 * mirror/restore_plan: the decisions of --restore, as pure functions:
 * which delimiter a mirrored mailbox had, its name on the target server,
 * the APPEND arguments (flags, INTERNALDATE), the Message-ID of a fetched
 * header, the messages the target already holds, the restore journal's
 * records, and what to do with each message.  No I/O.
 */
#ifndef MM_MIRROR_RESTORE_PLAN_H
#define MM_MIRROR_RESTORE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The hierarchy delimiter the source server used for mailbox raw (as it
 * sent the name), found from the file the mirror gave it (state's file,
 * a names_mbox_path() result): the one of '\0' (none) and the punctuation
 * in raw for which names_mbox_path() gives file.  '\0' also when none
 * does (one component: safe).
 */
char restore_source_delimiter(const char *raw, const char *file);

/*
 * Whether the directory entry name is an mbox that a UIDVALIDITY change
 * kept aside from the one named base (an mbox's own name in its
 * directory, with ".mbox"): "<base less .mbox>.uidvalidity-<N>[-<k>].mbox",
 * as layout_keep_aside() names it.  --restore reads only the current mbox.
 */
bool restore_kept_aside(const char *base, const char *name);

/*
 * The target's name for the source mailbox raw: its components (split at
 * src_delim; '\0': one) joined with dst_delim, each kept as the source
 * server sent it (modified UTF-7 stays as it was); a first component
 * "INBOX" in any case becomes "INBOX".  malloc'ed into *name_r: 0; 1 when
 * it cannot be written on the target (a component holds dst_delim, or
 * the target has no delimiter and raw has several components); -1 out of
 * memory.
 */
int restore_target_name(const char *raw, char src_delim, char dst_delim,
    char **name_r);

/* Room for restore_format_date()'s result, NUL included. */
#define RESTORE_DATE_MAX 32
/*
 * The INTERNALDATE for APPEND (RFC 3501 date-time, without the quotes):
 * "dd-Mon-yyyy hh:mm:ss +zzzz", the time utc (seconds) shown in the zone
 * tz_minutes east of UTC.  Returns buf.
 */
const char *restore_format_date(char *buf, int64_t utc, int tz_minutes);

/* msgindex flag bits, as mirror/msgindex.h has them. */
#define RESTORE_FLAG_SEEN	0x0001
#define RESTORE_FLAG_ANSWERED	0x0002
#define RESTORE_FLAG_FLAGGED	0x0004
#define RESTORE_FLAG_DELETED	0x0008
#define RESTORE_FLAG_DRAFT	0x0010
/*
 * The APPEND flag list without its parentheses: the system flags in
 * flags, then each of the space-separated keywords (NULL: none) that is a
 * valid atom (RFC 3501 flag-keyword; others are left out, as is anything
 * starting with '\\': \Recent is never set).  malloc'ed, "" for none;
 * NULL when out of memory.  *dropped_r (may be NULL) counts keywords left
 * out.
 */
char *restore_format_flags(unsigned flags, const char *keywords,
    size_t *dropped_r);

/*
 * The hash of the Message-ID in hdr (what
 * BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] returns), as the mirror's index
 * has it for a message with that header (mbox_header_message_id_hash():
 * also a value too long for a line is cut where the writer cuts it); 0
 * when there is none.
 */
uint64_t restore_message_id_hash(const char *hdr, size_t len);

/*
 * The messages a target mailbox holds, as counted keys: (Message-ID hash,
 * RFC822.SIZE) and (RFC822.SIZE, INTERNALDATE).  Add every message once,
 * sort, then take: each take that finds a key uses up one of its count,
 * so two copies in the source and one on the target skip one.
 */
struct restore_key {
	uint64_t a, b;
	uint32_t count;
};
struct restore_present {
	struct restore_key *by_id;	/* (message_id_hash, size) */
	size_t n_id, cap_id;
	struct restore_key *by_date;	/* (size, internaldate) */
	size_t n_date, cap_date;
	bool sorted;
};
/* message_id_hash 0: no Message-ID (only the date key is added).
 * 0, or -1 out of memory. */
int restore_present_add(struct restore_present *p, uint64_t message_id_hash,
    uint64_t size, int64_t internaldate);
void restore_present_sort(struct restore_present *p);
bool restore_present_take_id(struct restore_present *p,
    uint64_t message_id_hash, uint64_t size);
bool restore_present_take_date(struct restore_present *p, uint64_t size,
    int64_t internaldate);
/* The key that stands for a message: (Message-ID hash, size), or without
 * a Message-ID (0) (size, INTERNALDATE).  True when one was there. */
bool restore_present_take(struct restore_present *p, uint64_t message_id_hash,
    uint64_t size, int64_t internaldate);
void restore_present_free(struct restore_present *p);

/*
 * The restore journal: one line per step of a message, appended and
 * fsynced by the caller.  A message is named by its source mailbox (the
 * FNV-1a 64 hash of its raw name), its entry (offset, length in the mbox)
 * and the first 8 bytes of the entry's digest (so that another message at
 * the same place, in an mbox begun again after a UIDVALIDITY change, is
 * another message).
 *   "mboxmirror-restore 1\n"            first line
 *   "S <box> <offset> <length> <digest>\n"   the APPEND is about to go out
 *   "D <box> <offset> <length> <digest> <uidvalidity> <uid>\n"
 *                                       answered OK (APPENDUID, or 0 0)
 * <box> and <digest> are 16 hex digits.  A last line without its LF (a write cut short)
 * is ignored; any other line that does not parse is an error.
 */
#define RESTORE_JOURNAL_HEADER "mboxmirror-restore 1\n"
enum restore_mark {
	RESTORE_MARK_NONE = 0,
	RESTORE_MARK_SENDING,
	RESTORE_MARK_DONE,
};
struct restore_record {
	uint64_t box, offset, length, digest;
	enum restore_mark mark;
	uint32_t uidvalidity, uid;
};
struct restore_journal {
	struct restore_record *v;	/* sorted by (box, offset, length,
					 * digest) */
	size_t n, cap;
};
/* Parses a journal's contents into j (zeroed; replaced).  0, or -1 with a
 * malloc'ed *error_r "NAME:LINE: what". */
int restore_journal_parse(const char *buf, size_t len, const char *name,
    struct restore_journal *j, char **error_r);
/* The latest mark for a message (DONE wins over SENDING, whatever the
 * order). */
enum restore_mark restore_journal_find(const struct restore_journal *j,
    uint64_t box, uint64_t offset, uint64_t length, uint64_t digest);
/* The digest's first 8 bytes as the journal keeps them. */
uint64_t restore_digest64(const uint8_t *digest);
/* The line for a record, into buf (RESTORE_LINE_MAX). */
#define RESTORE_LINE_MAX 128
size_t restore_journal_line(char *buf, const struct restore_record *r);
void restore_journal_free(struct restore_journal *j);

/* What to do with one message. */
enum restore_action {
	RESTORE_UPLOAD,
	RESTORE_SKIP_DONE,	/* the journal says it was uploaded */
	RESTORE_SKIP_PRESENT,	/* the target has it: same Message-ID and
				 * size, or (without Message-ID) same size
				 * and INTERNALDATE */
	RESTORE_SKIP_SENT,	/* as PRESENT, for one a killed run sent */
};
/*
 * Decides for a message from its journal mark and the target's messages
 * (taken from present as they match).  The messages the journal has done
 * are on the target too: take theirs first (restore_present_take()), for
 * every message of the mailbox, before deciding on the others; otherwise a
 * copy uploaded for one of two equal messages could pass for the other's.  message_id_hash 0: none; then
 * RFC822.SIZE and INTERNALDATE (to the second) stand in for it, which
 * takes two different messages without Message-ID of the same size and
 * date in one mailbox for one.
 */
enum restore_action restore_decide(enum restore_mark mark,
    struct restore_present *present, uint64_t message_id_hash, uint64_t size,
    int64_t internaldate);
/* "upload", "done", "present", "sent". */
const char *restore_action_name(enum restore_action a);

#endif
