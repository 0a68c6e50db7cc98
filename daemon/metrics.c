/*
 * metrics: the Prometheus text format; see metrics.h.
 */
#include "metrics.h"

#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/state.h"

/* What a family's sample for one account is: an index, not a pointer to
 * a function, so the table stays plain data. */
enum family_value {
	V_LAST_SUCCESS,
	V_LAST_ATTEMPT,
	V_LAST_DURATION,
	V_FAILURES,
	V_STATE,
	V_INTERVAL,
	V_MESSAGES,
	V_BYTES,
	V_PUSH,
	V_ACCOUNTS,
	V_IN_FLIGHT,
	V_CONNECTIONS,
};

struct family {
	const char *name;
	const char *type;
	const char *help;
	enum family_value value;
};

static const struct family families[] = {
	{ "mboxmirror_last_success_timestamp_seconds", "gauge",
	  "When the account's last successful sync ended (Unix time; 0: "
	  "never).", V_LAST_SUCCESS },
	{ "mboxmirror_last_attempt_timestamp_seconds", "gauge",
	  "When the account's last sync started (Unix time; 0: never).",
	  V_LAST_ATTEMPT },
	{ "mboxmirror_last_sync_duration_seconds", "gauge",
	  "How long the account's last sync in this process took.",
	  V_LAST_DURATION },
	{ "mboxmirror_consecutive_failures", "gauge",
	  "Failed syncs of the account since its last success.", V_FAILURES },
	{ "mboxmirror_account_state", "gauge",
	  "The account's state: 1 for the one it is in (ok, failing, "
	  "syncing).", V_STATE },
	{ "mboxmirror_interval_seconds", "gauge",
	  "The account's configured sync interval.", V_INTERVAL },
	{ "mboxmirror_messages_mirrored_total", "counter",
	  "Messages mirrored into the account's mbox files, from its state "
	  "(never lower within a process).", V_MESSAGES },
	{ "mboxmirror_bytes_mirrored_total", "counter",
	  "Bytes committed to the account's mbox files, from its state "
	  "(never lower within a process).", V_BYTES },
	{ "mboxmirror_push_connected", "gauge",
	  "1 when the account's push (IDLE) connection is watching, else 0.",
	  V_PUSH },
	{ "mboxmirror_accounts_configured", "gauge",
	  "Accounts this process serves (its shard's).", V_ACCOUNTS },
	{ "mboxmirror_syncs_in_flight", "gauge",
	  "Syncs running now.", V_IN_FLIGHT },
	{ "mboxmirror_connections_open", "gauge",
	  "Server connections open now: syncs and push.", V_CONNECTIONS },
};

static const char *const state_names[] = { "ok", "failing", "syncing" };

enum metrics_account_state
metrics_account_state(const struct metrics_account *a)
{
	if (a->syncing)
		return METRICS_SYNCING;
	return a->failures > 0 ? METRICS_FAILING : METRICS_OK;
}

void
metrics_from_state(struct metrics_account *a, const struct account_state *st)
{
	uint64_t messages = 0, bytes = 0;

	a->last_success = st->last_success;
	a->last_attempt = st->last_attempt;
	a->failures = st->failures;
	for (size_t i = 0; i < st->n_mailboxes; i++) {
		messages += st->mailboxes[i].messages;
		bytes += st->mailboxes[i].mbox_size;
	}
	if (!a->counted) {
		a->messages = messages;
		a->bytes = bytes;
	} else {
		/* A counter that went down would read as a restart, and
		 * rate() would count all that is left as new. */
		if (messages > a->state_messages)
			a->messages += messages - a->state_messages;
		if (bytes > a->state_bytes)
			a->bytes += bytes - a->state_bytes;
	}
	a->state_messages = messages;
	a->state_bytes = bytes;
	a->counted = true;
}

void
metrics_count_run(struct metrics_account *a, uint64_t messages_before,
    uint64_t bytes_before, uint64_t run_messages, uint64_t run_bytes)
{
	if (a->messages - messages_before >= run_messages)
		return;
	a->messages = messages_before + run_messages;
	if (a->bytes - bytes_before < run_bytes)
		a->bytes = bytes_before + run_bytes;
}

char *
metrics_config_name(const char *config_path)
{
	const char *slash = strrchr(config_path, '/');
	const char *base = slash != NULL ? slash + 1 : config_path;
	size_t len = strlen(base);

	if (len > 4 && strcmp(base + len - 4, ".ini") == 0)
		len -= 4;
	return strndup(base, len);
}

unsigned
metrics_write_gap(size_t n)
{
	return 1 + (unsigned)(n / 1000);
}

/* A label value: \ " and LF escaped, as the format wants. */
static void
put_label_value(FILE *out, const char *s)
{
	/* Most values need no escape: one write, not one per byte (with
	 * two values per sample, 30 -> 24 ms for 10,000 accounts). */
	if (strpbrk(s, "\\\"\n") == NULL) {
		fputs(s, out);
		return;
	}
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '"')
			fputs("\\\"", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

/* The start of a sample up to its labels' first: "NAME{config=\"C\"". */
static void
put_sample_start(FILE *out, const struct family *f,
    const struct metrics_process *p)
{
	fprintf(out, "%s{config=\"", f->name);
	put_label_value(out, p->config);
	fputc('"', out);
}

static void
put_account_sample(FILE *out, const struct family *f,
    const struct metrics_process *p, const struct metrics_account *a)
{
	enum metrics_account_state now = metrics_account_state(a);

	if (f->value == V_STATE) {
		for (size_t i = 0; i < 3; i++) {
			put_sample_start(out, f, p);
			fputs(",account=\"", out);
			put_label_value(out, a->name);
			fprintf(out, "\",state=\"%s\"} %d\n", state_names[i],
			    (size_t)now == i);
		}
		return;
	}
	if (f->value == V_LAST_DURATION && a->last_duration < 0)
		return;
	put_sample_start(out, f, p);
	fputs(",account=\"", out);
	put_label_value(out, a->name);
	fputs("\"} ", out);
	switch (f->value) {
	case V_LAST_SUCCESS:
		fprintf(out, "%lld\n", (long long)a->last_success);
		break;
	case V_LAST_ATTEMPT:
		fprintf(out, "%lld\n", (long long)a->last_attempt);
		break;
	case V_LAST_DURATION:
		fprintf(out, "%.3f\n", a->last_duration);
		break;
	case V_FAILURES:
		fprintf(out, "%u\n", a->failures);
		break;
	case V_INTERVAL:
		fprintf(out, "%u\n", a->interval);
		break;
	case V_MESSAGES:
		fprintf(out, "%llu\n", (unsigned long long)a->messages);
		break;
	case V_BYTES:
		fprintf(out, "%llu\n", (unsigned long long)a->bytes);
		break;
	case V_PUSH:
		fprintf(out, "%d\n", a->push_connected);
		break;
	default:
		fputs("0\n", out);
		break;
	}
}

static void
put_process_sample(FILE *out, const struct family *f,
    const struct metrics_process *p)
{
	unsigned v = f->value == V_ACCOUNTS ? p->accounts :
	    f->value == V_IN_FLIGHT ? p->syncs_in_flight : p->connections_open;

	put_sample_start(out, f, p);
	fprintf(out, ",shard=\"%u/%u\"} %u\n",
	    p->shard_n != 0 ? p->shard_k : 0, p->shard_n != 0 ? p->shard_n : 1,
	    v);
}

char *
metrics_format(const struct metrics_process *p,
    const struct metrics_account *const *a, size_t n, size_t *len_r)
{
	char *text = NULL;
	FILE *out;

	if ((out = open_memstream(&text, len_r)) == NULL)
		return NULL;
	/* Only this function sees the stream: no lock per character
	 * (two thirds of the time: 99 -> 36 ms for 10,000 accounts,
	 * 8 MB). */
	__fsetlocking(out, FSETLOCKING_BYCALLER);
	for (size_t i = 0; i < sizeof families / sizeof *families; i++) {
		const struct family *f = &families[i];

		fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help,
		    f->name, f->type);
		if (f->value >= V_ACCOUNTS)
			put_process_sample(out, f, p);
		else
			for (size_t j = 0; j < n; j++)
				put_account_sample(out, f, p, a[j]);
	}
	if (ferror(out)) {
		fclose(out);
		free(text);
		return NULL;
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
