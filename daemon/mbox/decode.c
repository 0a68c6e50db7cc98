/*
 * The mboxrd entry decoder (see decode.h): the inverse of mboxrd.c's
 * encoder.
 */
#include "mbox/decode.h"

#include <string.h>

static const char from_[] = "From ";
static const char crlf[] = "\r\n";

static int
emit(struct mbox_decoder *d, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	d->written += len;
	return d->out(d->arg, data, len);
}

static int
emit_repeat(struct mbox_decoder *d, const char *unit, size_t unit_len,
    size_t count)
{
	char run[256];
	size_t per = sizeof run / unit_len, n;

	for (size_t i = 0; i < per; i++)
		memcpy(run + i * unit_len, unit, unit_len);
	while (count > 0) {
		n = count < per ? count : per;
		if (emit(d, run, n * unit_len) == -1)
			return -1;
		count -= n;
	}
	return 0;
}

/* The LFs held back turned out not to end the entry. */
static int
flush_lfs(struct mbox_decoder *d, unsigned keep)
{
	unsigned n = d->lfs > keep ? d->lfs - keep : 0;

	d->lfs -= n;
	return emit_repeat(d, crlf, 2, n);
}

/* A line start that is not a quoted From line: its bytes as they were. */
static int
flush_quote(struct mbox_decoder *d)
{
	if (emit_repeat(d, ">", 1, d->q_gt) == -1 ||
	    emit(d, from_, d->q_from) == -1)
		return -1;
	d->q_gt = d->q_from = 0;
	d->line_start = false;
	return 0;
}

/* One byte at a line start: held LFs, then '>'* "From " matching. */
static int
line_start_byte(struct mbox_decoder *d, unsigned char c)
{
	if (c == '\n' && d->q_gt == 0 && d->q_from == 0) {
		d->lfs++;
		/* Only the last two LFs can be the writer's. */
		return flush_lfs(d, 2);
	}
	if (flush_lfs(d, 0) == -1)
		return -1;
	if (d->q_from == 0 && c == '>') {
		d->q_gt++;
		return 0;
	}
	if (c == (unsigned char)from_[d->q_from]) {
		if (++d->q_from < sizeof from_ - 1)
			return 0;
		/* ">From " in the file was "From " in the message. */
		if (d->q_gt > 0)
			d->q_gt--;
		return flush_quote(d);
	}
	if (flush_quote(d) == -1)
		return -1;
	if (c == '\n') {
		d->lfs = 1;
		d->line_start = true;
		return 0;
	}
	return emit(d, &c, 1);
}

void
mbox_decode_init(struct mbox_decoder *d, mbox_decode_out_fn *out, void *arg)
{
	memset(d, 0, sizeof *d);
	d->out = out;
	d->arg = arg;
	d->in_from = true;
}

int
mbox_decode_write(struct mbox_decoder *d, const void *data, size_t len)
{
	const unsigned char *p = data, *end = p + len, *lf;

	while (p < end) {
		if (d->in_from) {
			if ((lf = memchr(p, '\n', (size_t)(end - p))) == NULL)
				return 0;
			p = lf + 1;
			d->in_from = false;
			d->line_start = true;
			continue;
		}
		if (d->line_start) {
			if (line_start_byte(d, *p++) == -1)
				return -1;
			continue;
		}
		/* Inside a line: copy up to its LF in one piece. */
		lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL)
			return emit(d, p, (size_t)(end - p));
		if (emit(d, p, (size_t)(lf - p)) == -1)
			return -1;
		p = lf + 1;
		d->lfs = 1;
		d->line_start = true;
	}
	return 0;
}

int
mbox_decode_end(struct mbox_decoder *d, bool drop_added)
{
	unsigned drop = drop_added ? 2 : 1;

	if (d->line_start && (d->q_gt > 0 || d->q_from > 0) &&
	    flush_quote(d) == -1)
		return -1;
	d->lfs = d->lfs > drop ? d->lfs - drop : 0;
	return flush_lfs(d, 0);
}

uint64_t
mbox_decode_size(const struct mbox_decoder *d)
{
	return d->written;
}

bool
mbox_decode_drop_added(uint64_t full_size, uint64_t rfc822_size)
{
	return full_size >= 2 && full_size - 2 == rfc822_size;
}
