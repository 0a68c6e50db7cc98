/*
 * verify_report: what --verify prints: per account, a line per problem and
 * a summary, or one JSON object (verify_run() opens and closes the
 * document); notes on what could not be checked go to the log.
 */
#include "verify_int.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util/json.h"

void
verify_tally(const struct verifier *vf, struct tally *t)
{
	memset(t, 0, sizeof *t);
	t->incomplete = vf->state_error != NULL || vf->connect_error != NULL;
	t->never_synced = vf->state_error == NULL && vf->st.n_mailboxes == 0 &&
	    vf->st.last_success == 0;
	t->incomplete = t->incomplete || t->never_synced;
	for (size_t i = 0; i < vf->n; i++) {
		const struct vmbx *mb = &vf->v[i];

		t->mailboxes++;
		t->messages += mb->nix;
		t->problems += mb->problems.n + (mb->file_error != NULL);
		t->deleted += mb->counts.deleted;
		t->newer += mb->counts.newer;
		t->given_up += mb->counts.given_up;
		t->deep_checked += mb->deep_checked;
		t->rebuilt += mb->index == INDEX_REBUILT;
		t->gone += mb->gone;
		if (mb->server_error != NULL && !mb->gone)
			t->incomplete = true;
		if (mb->ms->uidvalidity != 0 && !mb->server_checked &&
		    !mb->gone)
			t->incomplete = true;
	}
}

static void
print_problem(const struct verifier *vf, const struct vmbx *mb,
    const struct verify_problem *p)
{
	char text[512];

	printf("account %s: mailbox %s: ", vf->account->name, mb->display);
	if (p->uid != 0)
		printf("UID %u: ", p->uid);
	printf("%s\n", verify_problem_text(p, text, sizeof text));
}

void
verify_print_text(const struct verifier *vf, const struct tally *t)
{
	const char *name = vf->account->name;

	if (vf->state_error != NULL) {
		printf("account %s: INCOMPLETE: not verified: the state cannot "
		    "be read: %s\n", name, vf->state_error);
		return;
	}
	if (t->never_synced) {
		printf("account %s: INCOMPLETE: not synced yet, nothing to "
		    "verify\n", name);
		return;
	}
	for (size_t i = 0; i < vf->n; i++) {
		const struct vmbx *mb = &vf->v[i];

		if (mb->file_error != NULL)
			printf("account %s: mailbox %s: %s: %s\n", name,
			    mb->display, mb->path != NULL ? mb->path : "file",
			    mb->file_error);
		for (size_t k = 0; k < mb->problems.n; k++)
			print_problem(vf, mb, &mb->problems.v[k]);
		if (mb->server_error != NULL && !mb->gone)
			log_warnx("account %s: mailbox %s: not checked against "
			    "the server: %s", name, mb->display,
			    mb->server_error);
		else if (mb->gone)
			log_info("account %s: mailbox %s: not on the server "
			    "any more (%s); its mirror is kept", name,
			    mb->display, mb->server_error != NULL ?
			    mb->server_error : "");
	}
	if (vf->connect_error != NULL)
		log_warnx("account %s: not checked against the server: %s",
		    name, vf->connect_error);
	printf("account %s: %s: %zu mailbox%s, %zu message%s in the mirror",
	    name, t->problems > 0 ? "PROBLEMS" : t->incomplete ?
	    "INCOMPLETE" : "whole", t->mailboxes,
	    t->mailboxes == 1 ? "" : "es", t->messages,
	    t->messages == 1 ? "" : "s");
	if (t->problems > 0)
		printf(", %zu problem%s", t->problems,
		    t->problems == 1 ? "" : "s");
	if (t->deleted > 0)
		printf(", %zu deleted on the server (kept)", t->deleted);
	if (t->newer > 0)
		printf(", %zu new on the server (not synced yet)", t->newer);
	if (t->given_up > 0)
		printf(", %zu given up by the sync", t->given_up);
	if (t->gone > 0)
		printf(", %zu mailbox%s not on the server any more (kept)",
		    t->gone, t->gone == 1 ? "" : "es");
	if (vf->deep)
		printf(", %zu compared with the server's bytes",
		    t->deep_checked);
	if (t->rebuilt > 0)
		printf(", %zu index%s rebuilt (entries only counted)",
		    t->rebuilt, t->rebuilt == 1 ? "" : "es");
	if (t->incomplete)
		printf(", %s", vf->connect_error != NULL ?
		    "not checked against the server" :
		    "some mailboxes not checked against the server");
	printf("\n");
}

static void
json_opt_string(FILE *out, const char *key, const char *value)
{
	fprintf(out, ", \"%s\": ", key);
	if (value != NULL)
		json_string(out, value);
	else
		fputs("null", out);
}

static const char *
index_origin_name(enum index_origin o)
{
	switch (o) {
	case INDEX_NONE:
		return "none";
	case INDEX_LOADED:
		return "loaded";
	case INDEX_REBUILT:
		return "rebuilt";
	case INDEX_FAILED:
		return "failed";
	}
	return "?";
}

static void
json_problem(FILE *out, const struct verify_problem *p, bool first)
{
	char text[512];

	fprintf(out, "%s{\"kind\": \"%s\", \"uid\": ", first ? "" : ", ",
	    verify_kind_name(p->kind));
	if (p->uid != 0)
		fprintf(out, "%u", p->uid);
	else
		fputs("null", out);
	if (p->kind == VERIFY_MOVED)
		fprintf(out, ", \"uid_last\": %u, \"entries\": %llu, "
		    "\"shift\": %lld", p->uid_last, (unsigned long long)p->a,
		    (long long)p->shift);
	fprintf(out, ", \"offset\": %llu, \"length\": %llu, \"text\": ",
	    (unsigned long long)p->offset, (unsigned long long)p->length);
	json_string(out, verify_problem_text(p, text, sizeof text));
	fputc('}', out);
}

static void
json_mailbox(FILE *out, const struct vmbx *mb, bool deep, bool first)
{
	const struct verify_server_counts *c = &mb->counts;

	fputs(first ? "{\"mailbox\": " : ", {\"mailbox\": ", out);
	json_string(out, mb->display);
	json_opt_string(out, "file", mb->ms->file);
	fprintf(out, ", \"index\": \"%s\", \"messages\": %zu, "
	    "\"file_bytes\": %llu, \"committed_bytes\": %llu",
	    index_origin_name(mb->index), mb->nix,
	    (unsigned long long)mb->file_size,
	    (unsigned long long)mb->ms->mbox_size);
	json_opt_string(out, "file_error", mb->file_error);
	fprintf(out, ", \"server_checked\": %s, \"on_server\": %s",
	    mb->server_checked ? "true" : "false", mb->gone ? "false" : "true");
	json_opt_string(out, "server_error", mb->server_error);
	fprintf(out, ", \"listed\": %zu, \"deleted_on_server\": %zu, "
	    "\"new_on_server\": %zu, \"given_up\": %zu", c->listed,
	    c->deleted, c->newer, c->given_up);
	if (deep)
		fprintf(out, ", \"deep_checked\": %zu", mb->deep_checked);
	fputs(", \"problems\": [", out);
	for (size_t k = 0; k < mb->problems.n; k++)
		json_problem(out, &mb->problems.v[k], k == 0);
	fputs("]}", out);
}

void
verify_print_json(const struct verifier *vf, const struct tally *t, bool first)
{
	FILE *out = stdout;

	fputs(first ? "  {\"account\": " : ",\n  {\"account\": ", out);
	json_string(out, vf->account->name);
	fprintf(out, ", \"whole\": %s, \"complete\": %s",
	    t->problems == 0 && !t->incomplete ? "true" : "false",
	    t->incomplete ? "false" : "true");
	json_opt_string(out, "state_error", vf->state_error);
	json_opt_string(out, "server_error", vf->connect_error);
	fprintf(out, ", \"never_synced\": %s", t->never_synced ? "true" :
	    "false");
	fprintf(out, ", \"sync_running\": %s, \"problems\": %zu, "
	    "\"messages\": %zu, \"deleted_on_server\": %zu, "
	    "\"new_on_server\": %zu, \"given_up\": %zu",
	    vf->sync_running ? "true" : "false", t->problems, t->messages,
	    t->deleted, t->newer, t->given_up);
	if (vf->deep)
		fprintf(out, ", \"deep_checked\": %zu", t->deep_checked);
	fputs(", \"mailboxes\": [", out);
	for (size_t i = 0; i < vf->n; i++)
		json_mailbox(out, &vf->v[i], vf->deep, i == 0);
	fputs("]}", out);
}

