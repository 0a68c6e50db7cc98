/*
 * parser_bench: parse throughput of imap/parser in MB/s (10^6 bytes).
 *
 *   (a) a FETCH stream of 50 KB messages, fed as one buffer
 *   (b) the same stream fed in 4 KB chunks, as reads from a socket come
 *   (c) many small untagged responses (FETCH flags, LIST, STATUS, EXISTS)
 *
 * Time is the process's CPU time, so that other load on the machine
 * does not show as parser slowness.
 *
 * Usage: parser_bench [CPU seconds per case, default 1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap/parser.h"

#define MESSAGE_SIZE (50 * 1024)
#define MESSAGES 2000
#define SMALL_BYTES (32 * 1024 * 1024)

struct buf {
	unsigned char *data;
	size_t len, cap;
};

static uint64_t sink_bytes;
static size_t responses;

static void
buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		if ((b->data = realloc(b->data, b->cap)) == NULL) {
			perror("realloc");
			exit(1);
		}
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

static int
sink(void *arg, enum imap_sink_event ev, const struct imap_literal_info *info,
    const unsigned char *data, size_t len)
{
	if (ev == IMAP_SINK_DATA)
		sink_bytes += len;
	return 0;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parses the whole buffer once, in chunks of at most chunk bytes. */
static void
parse_all(struct imap_parser *p, const struct buf *b, size_t chunk)
{
	const struct imap_response *resp;
	size_t off = 0, end, consumed;

	while (off < b->len) {
		end = b->len - off < chunk ? b->len : off + chunk;
		while (off < end) {
			switch (imap_parser_feed(p, b->data + off, end - off,
			    &consumed, &resp)) {
			case IMAP_PARSE_RESPONSE:
				responses++;
				break;
			case IMAP_PARSE_NEED_MORE:
				break;
			case IMAP_PARSE_ERROR:
				fprintf(stderr, "parse error: %s\n",
				    imap_parser_error_text(p));
				exit(1);
			}
			off += consumed;
		}
	}
}

static void
run(const char *name, const struct buf *b, size_t chunk, double seconds)
{
	struct imap_parser *p;
	double start, elapsed;
	uint64_t bytes = 0;
	unsigned rounds = 0;

	if ((p = imap_parser_new()) == NULL) {
		perror("imap_parser_new");
		exit(1);
	}
	imap_parser_set_sink(p, sink, NULL);
	parse_all(p, b, chunk);		/* warm up */
	responses = 0;
	sink_bytes = 0;
	start = now();
	do {
		parse_all(p, b, chunk);
		bytes += b->len;
		rounds++;
		elapsed = now() - start;
	} while (elapsed < seconds);
	printf("%-44s %10.1f MB/s  (%u rounds of %.1f MB, %zu responses, "
	    "%.1f MB to the sink)\n", name, bytes / elapsed / 1e6, rounds,
	    b->len / 1e6, responses, sink_bytes / 1e6);
	imap_parser_free(&p);
}

int
main(int argc, char **argv)
{
	struct buf big = { 0 }, small = { 0 };
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	char line[512], *body;
	unsigned i;
	int n;

	if ((body = malloc(MESSAGE_SIZE)) == NULL)
		return 1;
	for (i = 0; i < MESSAGE_SIZE; i++)
		body[i] = i % 78 == 77 ? '\n' : 'a' + i % 26;
	for (i = 1; i <= MESSAGES; i++) {
		n = snprintf(line, sizeof(line), "* %u FETCH (UID %u "
		    "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE %d "
		    "BODY[] {%d}\r\n", i, i + 1000, MESSAGE_SIZE,
		    MESSAGE_SIZE);
		buf_add(&big, line, n);
		buf_add(&big, body, MESSAGE_SIZE);
		buf_add(&big, ")\r\n", 3);
	}
	buf_add(&big, "A5 OK Fetch completed.\r\n", 24);

	for (i = 1; small.len < SMALL_BYTES; i++) {
		switch (i % 4) {
		case 0:
			n = snprintf(line, sizeof(line), "* %u FETCH (UID %u "
			    "FLAGS (\\Seen \\Answered $Label1) MODSEQ (%u))\r\n",
			    i, i + 7, i * 3);
			break;
		case 1:
			n = snprintf(line, sizeof(line), "* LIST "
			    "(\\HasNoChildren) \"/\" \"Archive/%u\"\r\n", i);
			break;
		case 2:
			n = snprintf(line, sizeof(line), "* STATUS "
			    "\"Archive/%u\" (MESSAGES %u UIDNEXT %u UIDVALIDITY "
			    "1795809831)\r\n", i, i, i + 1);
			break;
		default:
			n = snprintf(line, sizeof(line), "* %u EXISTS\r\n", i);
			break;
		}
		buf_add(&small, line, n);
	}

	run("(a) FETCH stream, 50 KB messages, whole", &big, big.len,
	    seconds);
	run("(b) FETCH stream, 50 KB messages, 4 KB reads", &big, 4096,
	    seconds);
	run("(c) small untagged responses, whole", &small, small.len,
	    seconds);
	run("(c') small untagged responses, 4 KB reads", &small, 4096,
	    seconds);
	free(big.data);
	free(small.data);
	free(body);
	return 0;
}
