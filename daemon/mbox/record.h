/*
 * mbox/record: the append record of one mbox, internal to mbox/ (what it
 * is for is told at mbox_open() in mbox.h).  A small file that says
 * whether bytes past the committed size are ours:
 * "<magic> <open|done> <dev> <ino> <end>\n<mbox path>\n", numbers of fixed
 * width so that every rewrite has the same length.
 */
#ifndef MM_MBOX_RECORD_H
#define MM_MBOX_RECORD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum mbox_record_kind {
	MBOX_RECORD_NONE,	/* none, or about another file: nothing ours
				 * past the committed size */
	MBOX_RECORD_APPENDING,	/* a run of ours ended without closing */
	MBOX_RECORD_CLOSED,	/* ours ended exactly at its end */
	MBOX_RECORD_GARBLED,	/* unreadable: as if a run had ended unclosed */
};

struct mbox_record {
	char		*path;		/* the record's own */
	const char	*mbox;		/* the mbox it is about... */
	dev_t		 dev;		/* ...and that file (set by the */
	ino_t		 ino;		/* caller once it is open) */
	int		 fd;		/* -1 until first written */
	bool		 open;		/* "open" is durable for this run */
	uint64_t	 max;		/* highest end ever written */
};

/* Sets r up for the record at path (copied) about the mbox at mbox (which
 * must outlive r).  0, or -1 when out of memory. */
int mbox_record_init(struct mbox_record *r, const char *path,
    const char *mbox);
/* Closes the record's file, if open: 0, or -1 with errno. */
int mbox_record_close(struct mbox_record *r);
/* Closes it (errors ignored) and frees what mbox_record_init() made. */
void mbox_record_free(struct mbox_record *r);

/*
 * Writes the record: "open" (a run of ours is appending; its bytes end at
 * end or beyond) or "done" (ours end exactly at end).  sync makes it
 * durable; a record that had to be created is always made durable, its
 * name included.  0, or -1 with errno set.
 */
int mbox_record_write(struct mbox_record *r, bool open, uint64_t end,
    bool sync);
/*
 * Our bytes now end at end, below what the record may claim: says so,
 * durably, so that mail another program appends after a crash is not
 * taken for ours and cut.  Best effort: if it fails, such mail is at worst
 * cut without being saved aside, as before the record existed.
 */
void mbox_record_truncated(struct mbox_record *r, uint64_t end);
/*
 * Reads the record into *kind_r and *end_r.  A record about another file
 * (another path, or the same path now naming another file) is none.  0, or
 * -1 with a malloc'ed *error_r.
 */
int mbox_record_read(const struct mbox_record *r,
    enum mbox_record_kind *kind_r, uint64_t *end_r, char **error_r);

#endif
