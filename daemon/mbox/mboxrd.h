/*
 * mbox/mboxrd: the mboxrd encoding of one message, internal to mbox/: no
 * file, no system call, just bytes in and bytes out.  The format is the one
 * mbox.h describes: the From_ line (sender from the first Return-Path, so
 * the header is held until it ends, at most MBOX_MAX_HEADER_HOLD bytes),
 * CRLF turned into LF, one more '>' before every line matching ^>*From , an
 * LF to end the last line, and an empty line.  The output does not depend
 * on how the message bytes are chunked.
 *
 * While encoding it also takes, for the index of the mbox, the SHA-256 of
 * everything it outputs after the From_ line (the entry's digest, see
 * mbox.h) and the hash of the first Message-ID header in the held header.
 */
#ifndef MM_MBOX_MBOXRD_H
#define MM_MBOX_MBOXRD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/crypto.h>

#include "mbox/hashbuf.h"

/* How every entry (after the LFs that end the one before) and every line
 * to quote begins. */
#define MBOXRD_FROM	"From "

/* Where the encoded bytes go; 0, or -1 to stop (the encoder returns -1). */
typedef int mboxrd_out_fn(void *arg, const void *data, size_t len);

/* Header-end detection while holding: where the current line stands. */
enum mboxrd_hold_line {
	MBOXRD_HL_START,	/* at the start of a line */
	MBOXRD_HL_CR,		/* a CR at the start of a line */
	MBOXRD_HL_MID,		/* anywhere else */
};

/* One message being encoded; only mboxrd.c looks inside. */
struct mboxrd {
	mboxrd_out_fn	*out;
	void		*arg;
	bool		 holding;	/* the header is not complete yet */
	time_t		 date;
	unsigned char	*hold;
	size_t		 hold_len;
	size_t		 hold_size;
	enum mboxrd_hold_line hold_line;
	bool		 cr;		/* a CR, maybe of a CRLF */
	bool		 line_start;	/* matching ^>*From  */
	size_t		 q_gt;		/* '>' at the line start */
	size_t		 q_from;	/* "From " bytes matched */
	bool		 any;		/* any body byte written */
	unsigned char	 last;		/* the last body byte */
	gnutls_hash_hd_t digest;	/* of the output after the From_ line */
	bool		 digest_dirty;	/* fed since the last reset */
	struct hashbuf	 stage;		/* output not hashed yet */
	uint64_t	 message_id_hash;	/* of the held header; 0: none */
	uint8_t		 entry_digest[32];	/* set by mboxrd_end() */
};

/* Sets e up to send its output to out(arg, ...). */
void mboxrd_init(struct mboxrd *e, mboxrd_out_fn *out, void *arg);
/* Frees the header hold and the digest. */
void mboxrd_free(struct mboxrd *e);

/* Starts a message dated internaldate (for the From_ line).  0, or -1 when
 * the digest cannot be set up (GnuTLS). */
int mboxrd_begin(struct mboxrd *e, time_t internaldate);
/* Raw message bytes, any chunking.  0, or -1 when out failed or, with
 * errno ENOMEM, holding the header ran out of memory. */
int mboxrd_write(struct mboxrd *e, const void *data, size_t len);
/* Ends the message (its From_ line first if the header never ended, the
 * last LF, the empty line).  Then e->entry_digest holds the SHA-256 of
 * the output after the From_ line and e->message_id_hash the Message-ID's
 * hash (mbox_message_id_hash()).  0, or -1 when out failed. */
int mboxrd_end(struct mboxrd *e);
/* Forgets a message in progress (held bytes included) without output. */
void mboxrd_cancel(struct mboxrd *e);

/*
 * The first header named name (with its colon, any case, e.g.
 * "message-id:") among the header lines at h[0..len): its value unfolded
 * (CRs and the LFs of folding dropped), at most size bytes of it into val.
 * Returns the length put in val, or (size_t)-1 when there is no such
 * header.
 */
size_t mboxrd_header_value(const unsigned char *h, size_t len,
    const char *name, char *val, size_t size);

#endif
