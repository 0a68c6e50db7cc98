#include "status.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "log.h"
#include "mirror/plan.h"
#include "mirror/state.h"
#include "util/json.h"

struct account_summary {
	const char *name;
	struct account_state st;
	char *error;			/* the state file could not be read */
	unsigned long long messages;
	unsigned long long bytes;
};

static void
format_time(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, size, "never");
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

static void
format_iso(char *buf, size_t size, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
json_time(FILE *out, const char *key, time_t t)
{
	char buf[32];

	fprintf(out, "\"%s\": ", key);
	if (t == 0) {
		fputs("null", out);
		return;
	}
	format_iso(buf, sizeof buf, t);
	json_string(out, buf);
}

/* Messages given up and holes still tried, per mailbox (JSON). */
static void
print_json_gaps(FILE *out, const struct account_state *st)
{
	bool first = true;

	fputs(", \"mailboxes_incomplete\": [", out);
	for (size_t i = 0; i < st->n_mailboxes; i++) {
		const struct mailbox_state *mb = &st->mailboxes[i];

		if (mb->skipped_total == 0 && mb->hole_uid == 0)
			continue;
		fputs(first ? "{\"mailbox\": " : ", {\"mailbox\": ", out);
		first = false;
		json_string(out, mb->name);
		fprintf(out, ", \"given_up\": %u, \"given_up_uids\": [",
		    mb->skipped_total);
		for (size_t k = 0; k < mb->n_skipped; k++)
			fprintf(out, "%s%u", k > 0 ? ", " : "", mb->skipped[k]);
		fputs("], \"not_delivered_uid\": ", out);
		if (mb->hole_uid != 0)
			fprintf(out, "%u, \"not_delivered_syncs\": %u}",
			    mb->hole_uid, mb->hole_tries);
		else
			fputs("null, \"not_delivered_syncs\": 0}", out);
	}
	fputc(']', out);
}

/* Each mailbox's figures from the state (JSON). */
static void
print_json_mailboxes(FILE *out, const struct account_state *st)
{
	fputs(", \"per_mailbox\": [", out);
	for (size_t i = 0; i < st->n_mailboxes; i++) {
		const struct mailbox_state *mb = &st->mailboxes[i];

		fputs(i == 0 ? "{\"mailbox\": " : ", {\"mailbox\": ", out);
		json_string(out, mb->name);
		fputs(", \"file\": ", out);
		if (mb->file != NULL)
			json_string(out, mb->file);
		else
			fputs("null", out);
		fprintf(out, ", \"uidvalidity\": %u, \"last_uid\": %u, "
		    "\"messages\": %u, \"mbox_bytes\": %llu}",
		    mb->uidvalidity, mb->last_uid, mb->messages,
		    (unsigned long long)mb->mbox_size);
	}
	fputc(']', out);
}

/* daemon_pid: -1 when no daemon runs on the state, 0 when its pid is not
 * known yet. */
static void
print_json(FILE *out, const struct account_summary *a, long daemon_pid,
    bool last)
{
	fputs("  {\"account\": ", out);
	json_string(out, a->name);
	fputs(", \"daemon_running\": ", out);
	fputs(daemon_pid >= 0 ? "true" : "false", out);
	if (daemon_pid > 0)
		fprintf(out, ", \"daemon_pid\": %ld", daemon_pid);
	if (a->error != NULL) {
		fputs(", \"state_error\": ", out);
		json_string(out, a->error);
		fprintf(out, "}%s\n", last ? "" : ",");
		return;
	}
	fputs(", ", out);
	json_time(out, "last_attempt", a->st.last_attempt);
	fputs(", ", out);
	json_time(out, "last_success", a->st.last_success);
	fputs(", \"last_error\": ", out);
	if (a->st.last_error != NULL)
		json_string(out, a->st.last_error);
	else
		fputs("null", out);
	fputs(", \"last_error_kind\": ", out);
	if (a->st.last_error != NULL && a->st.last_error_kind[0] != '\0')
		json_string(out, a->st.last_error_kind);
	else
		fputs("null", out);
	fputs(", ", out);
	json_time(out, "last_error_time", a->st.last_error_time);
	fputs(", ", out);
	json_time(out, "next_attempt", a->st.next_attempt);
	print_json_mailboxes(out, &a->st);
	print_json_gaps(out, &a->st);
	fprintf(out, ", \"consecutive_failures\": %u, \"mailboxes\": %zu, "
	    "\"messages\": %llu, \"mbox_bytes\": %llu, \"ok\": %s}%s\n",
	    a->st.failures, a->st.n_mailboxes, a->messages, a->bytes,
	    a->st.last_error == NULL && a->st.last_success != 0 ? "true" :
	    "false", last ? "" : ",");
}

/* Below an account's row: each mailbox's file and figures. */
static void
print_mailboxes(FILE *out, const struct account_state *st)
{
	for (size_t i = 0; i < st->n_mailboxes; i++) {
		const struct mailbox_state *mb = &st->mailboxes[i];

		fprintf(out, "%-16s   mailbox %s: %s, last UID %u, %u "
		    "message%s, %llu bytes\n", "", mb->name,
		    mb->file != NULL ? mb->file : "no file yet", mb->last_uid,
		    mb->messages, mb->messages == 1 ? "" : "s",
		    (unsigned long long)mb->mbox_size);
	}
}

/* Under the table: whether a daemon runs on this state directory. */
static void
print_daemon(FILE *out, const char *state_dir, int running, long pid)
{
	if (running == 1 && pid > 0)
		fprintf(out, "daemon: running (pid %ld) on %s\n", pid, state_dir);
	else if (running == 1)
		fprintf(out, "daemon: running on %s\n", state_dir);
	else if (running == 0)
		fprintf(out, "daemon: not running on %s\n", state_dir);
	else
		fprintf(out, "daemon: unknown (cannot read %s/.daemon)\n",
		    state_dir);
}

/* Below an account's row: what its mirror lacks. */
static void
print_gaps(FILE *out, const struct account_state *st)
{
	for (size_t i = 0; i < st->n_mailboxes; i++) {
		const struct mailbox_state *mb = &st->mailboxes[i];

		if (mb->skipped_total > 0) {
			fprintf(out, "%-16s   mailbox %s: %u message%s given "
			    "up, not in the mirror (UID", "", mb->name,
			    mb->skipped_total,
			    mb->skipped_total == 1 ? "" : "s");
			for (size_t k = 0; k < mb->n_skipped; k++)
				fprintf(out, "%s %u", k > 0 ? "," : "",
				    mb->skipped[k]);
			fprintf(out, "%s)\n", mb->n_skipped <
			    mb->skipped_total ? ", ..." : "");
		}
		if (mb->hole_uid != 0) {
			fprintf(out, "%-16s   mailbox %s: UID %u not delivered "
			    "in %u of %u syncs; given up after %u\n", "",
			    mb->name, mb->hole_uid,
			    mb->hole_tries, PLAN_HOLE_TRIES_MAX,
			    PLAN_HOLE_TRIES_MAX);
		}
	}
}

static void
print_row(FILE *out, const struct account_summary *a)
{
	char success[32], next[32], when[32];

	if (a->error != NULL) {
		fprintf(out, "%-16s state unreadable: %s\n", a->name, a->error);
		return;
	}
	format_time(success, sizeof success, a->st.last_success);
	format_time(next, sizeof next, a->st.next_attempt);
	fprintf(out, "%-16s %-19s %-19s %9zu %9llu  %s\n", a->name, success,
	    a->st.next_attempt != 0 ? next : "-", a->st.n_mailboxes,
	    a->messages, a->st.last_error == NULL ? (a->st.last_success ? "ok" :
	    "not synced yet") : "FAILING");
	if (a->st.last_error != NULL) {
		format_time(when, sizeof when, a->st.last_error_time);
		fprintf(out, "%-16s   last error at %s (%u in a row%s%s): %s\n",
		    "", when, a->st.failures, a->st.last_error_kind[0] != '\0' ?
		    ", " : "", a->st.last_error_kind, a->st.last_error);
	}
	print_mailboxes(out, &a->st);
	print_gaps(out, &a->st);
}

int
status_print(FILE *out, const struct config *config, char *const *names,
    size_t nnames, bool json)
{
	struct account_summary *sums;
	size_t n = 0;
	long daemon_pid;
	int rc = 0, daemon;

	if ((sums = calloc(config->n_accounts, sizeof *sums)) == NULL)
		return 1;
	daemon = state_shard_daemon_running(config->state_dir,
	    config->shard.k, config->shard.n, &daemon_pid);
	for (size_t i = 0; i < config->n_accounts; i++) {
		const struct account *acc = &config->accounts[i];
		struct account_summary *a;
		char *dir;

		if (!cli_account_selected(names, nnames, acc->name))
			continue;
		a = &sums[n++];
		a->name = acc->name;
		dir = state_account_dir(config->state_dir, acc->name);
		if (dir == NULL || state_load(dir, &a->st, &a->error) != 0) {
			if (a->error == NULL)
				a->error = strdup("out of memory");
			rc = 1;
		}
		free(dir);
		/* A server wrote the error text: no escape sequences may reach
		 * the terminal, nor a script that prints the JSON. */
		if (a->st.last_error != NULL)
			log_sanitize(a->st.last_error);
		if (a->error != NULL)
			log_sanitize(a->error);
		for (size_t k = 0; k < a->st.n_mailboxes; k++) {
			/* So are mailbox names, shown for what they lack, and
			 * the files made from them. */
			log_sanitize(a->st.mailboxes[k].name);
			if (a->st.mailboxes[k].file != NULL)
				log_sanitize(a->st.mailboxes[k].file);
			a->messages += a->st.mailboxes[k].messages;
			a->bytes += a->st.mailboxes[k].mbox_size;
		}
		if (a->st.last_error != NULL)
			rc = 1;
	}
	if (json) {
		fputs("[\n", out);
		for (size_t i = 0; i < n; i++)
			print_json(out, &sums[i], daemon == 1 ? daemon_pid : -1,
			    i + 1 == n);
		fputs("]\n", out);
	} else {
		fprintf(out, "%-16s %-19s %-19s %9s %9s  %s\n", "ACCOUNT",
		    "LAST SUCCESS", "NEXT ATTEMPT", "MAILBOXES", "MESSAGES",
		    "STATE");
		for (size_t i = 0; i < n; i++)
			print_row(out, &sums[i]);
		print_daemon(out, config->state_dir, daemon, daemon_pid);
	}
	for (size_t i = 0; i < n; i++) {
		state_clear(&sums[i].st);
		free(sums[i].error);
	}
	free(sums);
	return rc;
}
