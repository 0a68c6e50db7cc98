/*
 * metrics: an account's and a process's figures in the Prometheus text
 * exposition format (version 0.0.4), for node_exporter's textfile
 * collector.  Pure: text in memory from the figures given; the shell
 * (metrics_file.h) gathers them and writes the file.
 *
 * Every sample carries config="NAME", the configuration's name
 * (metrics_config_name()), so that the files of daemons of different
 * configurations on one host (the template unit's instances) never hold
 * the same series, even for accounts of the same name.
 *
 * Families, each with # HELP and # TYPE, in this order:
 *   per account (labels config and account="NAME"):
 *     mboxmirror_last_success_timestamp_seconds	gauge (0: never)
 *     mboxmirror_last_attempt_timestamp_seconds	gauge (0: never)
 *     mboxmirror_last_sync_duration_seconds		gauge (no sample for
 *		an account with no sync ended in this process)
 *     mboxmirror_consecutive_failures			gauge
 *     mboxmirror_account_state{state="ok|failing|syncing"}	gauge, one-hot
 *     mboxmirror_interval_seconds			gauge
 *     mboxmirror_messages_mirrored_total		counter
 *     mboxmirror_bytes_mirrored_total			counter
 *     mboxmirror_push_connected				gauge (0 or 1)
 *   per process (labels config and shard="K/N", "0/1" when not sharded,
 *   so that the shards of one configuration do not clash):
 *     mboxmirror_accounts_configured			gauge
 *     mboxmirror_syncs_in_flight			gauge
 *     mboxmirror_connections_open			gauge
 */
#ifndef MM_METRICS_H
#define MM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct account_state;

enum metrics_account_state {
	METRICS_OK,		/* the last sync succeeded, or none yet */
	METRICS_FAILING,	/* the last one failed */
	METRICS_SYNCING,	/* a sync runs now (whatever the last did) */
};

struct metrics_account {
	const char *name;
	unsigned interval;	/* seconds */
	time_t last_success;	/* 0: never */
	time_t last_attempt;	/* 0: never */
	double last_duration;	/* seconds; < 0: none ended in this process */
	unsigned failures;	/* consecutive */
	bool syncing;
	bool push_connected;
	uint64_t messages;	/* mirrored, all mailboxes (counter) */
	uint64_t bytes;		/* committed mbox bytes, all mailboxes */
	/* The state's sums at the last metrics_from_state(), which adds
	 * only their growth to the counters above. */
	uint64_t state_messages, state_bytes;
	bool counted;		/* a state was read: the sums are set */
};

struct metrics_process {
	const char *config;		/* metrics_config_name(); never NULL */
	unsigned shard_k, shard_n;	/* n == 0: not sharded */
	unsigned accounts;
	unsigned syncs_in_flight;
	unsigned connections_open;
};

/* The one state of mboxmirror_account_state that is 1. */
enum metrics_account_state metrics_account_state(
    const struct metrics_account *a);

/*
 * Copies what the account's state file records (times, consecutive
 * failures) into a, and counts its messages and bytes summed over its
 * mailboxes: the first state read sets the counters, each later one adds
 * what the sums grew by, so they never go down within a process (a
 * mailbox started afresh after a new UIDVALIDITY, or an mbox someone cut
 * short, takes nothing back; what is mirrored into it afterwards counts,
 * the run that started it afresh through metrics_count_run()).
 * The rest of a is left alone.
 */
void metrics_from_state(struct metrics_account *a,
    const struct account_state *st);
/*
 * After metrics_from_state() on the state a run left, given the counters
 * from before it: when they grew by less than the run appended
 * (run_messages, and run_bytes of messages), which a mailbox the run
 * mirrored afresh hides from the state's sums, they grow by what the run
 * appended instead.
 */
void metrics_count_run(struct metrics_account *a, uint64_t messages_before,
    uint64_t bytes_before, uint64_t run_messages, uint64_t run_bytes);

/*
 * The exposition text of the process p and its n accounts (in the order
 * given), malloc'ed and NUL-terminated, its length in *len_r; NULL when
 * out of memory.  Label values are escaped as the format asks (backslash,
 * double quote, line feed); other bytes go as they are (names are UTF-8).
 */
char *metrics_format(const struct metrics_process *p,
    const struct metrics_account *const *a, size_t n, size_t *len_r);

/*
 * The configuration's name for the config label, from the path of its
 * file: the base name without a final ".ini" ("/etc/mboxmirror/shard0.ini":
 * "shard0"), or the whole base name when nothing else would be left.
 * Malloc'ed; NULL when out of memory.
 */
char *metrics_config_name(const char *config_path);

/* Seconds to leave between two writes of the file, for n accounts: 1,
 * and 1 more per 1000 accounts, so that a large process that ends a sync
 * every few milliseconds does not spend its time rewriting megabytes. */
unsigned metrics_write_gap(size_t n);

#endif
