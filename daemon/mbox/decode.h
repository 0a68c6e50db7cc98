/*
 * mbox/decode: reads one mboxrd entry (DESIGN.md section 4) back into the
 * message bytes the server sent.  Pure: bytes in, bytes out through a
 * callback, any chunking, constant memory.
 *
 * Fed an entry's bytes (its From_ line to its final empty line), it
 *  - drops the From_ line (everything up to the first LF);
 *  - strips one '>' from every line matching ^>+From ;
 *  - turns every LF into CRLF (a CR before an LF in the file was a lone CR
 *    of the message: it stays, so "\r\n" in the file gives "\r\r\n");
 *  - drops the LF of the empty line that ends the entry and, when asked at
 *    the end, the LF before it: the one the writer adds to a message that
 *    does not end in a newline.
 * Whether that LF was added cannot be seen in the file ("x" and "x\r\n"
 * are stored alike); the message's RFC822.SIZE tells:
 * mbox_decode_drop_added() decides from a first pass that decoded
 * everything.  A message with lone LFs (which the writer cannot keep apart
 * from line ends) decodes with CRLF there and so is longer than its
 * RFC822.SIZE by one byte per lone LF.
 */
#ifndef MM_MBOX_DECODE_H
#define MM_MBOX_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the decoded bytes go; 0, or -1 to stop (the decoder returns -1). */
typedef int mbox_decode_out_fn(void *arg, const void *data, size_t len);

/* One entry being decoded; only decode.c looks inside. */
struct mbox_decoder {
	mbox_decode_out_fn *out;
	void	*arg;
	bool	 in_from;	/* still in the From_ line */
	bool	 line_start;	/* at a line start: quoting may come */
	size_t	 q_gt;		/* '>' seen at this line start */
	size_t	 q_from;	/* bytes of "From " matched after them */
	unsigned lfs;		/* LFs held back: the last two may go */
	uint64_t written;	/* decoded bytes handed to out */
};

/* Sets d up for one entry, its output to out(arg, ...). */
void mbox_decode_init(struct mbox_decoder *d, mbox_decode_out_fn *out,
    void *arg);
/* The entry's bytes, any chunking.  0, or -1 when out failed. */
int mbox_decode_write(struct mbox_decoder *d, const void *data, size_t len);
/* Ends the entry: drops the final empty line, and with drop_added also the
 * LF before it.  0, or -1 when out failed.  mbox_decode_size() is then the
 * message's size. */
int mbox_decode_end(struct mbox_decoder *d, bool drop_added);
/* Bytes handed to out so far. */
uint64_t mbox_decode_size(const struct mbox_decoder *d);

/*
 * Whether the writer added the final LF, from the size of the whole decode
 * without dropping it (full_size) and the server's RFC822.SIZE: then the
 * decode is exactly 2 bytes (the CRLF it became) longer.
 */
bool mbox_decode_drop_added(uint64_t full_size, uint64_t rfc822_size);

#endif
