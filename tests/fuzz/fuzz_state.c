/*
 * libFuzzer target for the state file reader (state_parse).
 *
 * The input is a state file's contents.  A failed parse names the place
 * ("fuzz:LINE: ...") and leaves the state it was given alone; a parse that
 * succeeds gives distinct mailbox names, and files that stay inside the
 * output directory (checked here independently of the reader).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mirror/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_file(const char *f)
{
	size_t len = strlen(f), i, start;

	if (len < 5 || strcmp(f + len - 5, ".mbox") != 0 || f[0] == '/')
		abort();
	for (i = 0; i < len; i++)
		if ((unsigned char)f[i] < 0x20 || f[i] == 0x7f)
			abort();
	for (start = i = 0; i <= len; i++) {
		if (i < len && f[i] != '/')
			continue;
		if (i == start || (i - start == 1 && f[start] == '.') ||
		    (i - start == 2 && f[start] == '.' && f[start + 1] == '.'))
			abort();
		start = i + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct account_state st;
	char *copy, *error = NULL;
	size_t i, j;

	memset(&st, 0, sizeof st);
	if (state_get(&st, "kept") == NULL)
		abort();
	st.failures = 42;
	/* An exact-size copy: reading past the input is caught. */
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	memcpy(copy, data, size);
	if (state_parse(copy, size, "fuzz", &st, &error) == -1) {
		if (error == NULL || strncmp(error, "fuzz:", 5) != 0 ||
		    error[5] < '1' || error[5] > '9')
			abort();
		if (st.n_mailboxes != 1 || strcmp(st.mailboxes[0].name,
		    "kept") != 0 || st.failures != 42)
			abort();
	} else {
		if (error != NULL)
			abort();
		for (i = 0; i < st.n_mailboxes; i++) {
			if (st.mailboxes[i].name == NULL)
				abort();
			if (st.mailboxes[i].file != NULL)
				check_file(st.mailboxes[i].file);
			for (j = 0; j < i; j++)
				if (strcmp(st.mailboxes[i].name,
				    st.mailboxes[j].name) == 0)
					abort();
		}
	}
	/* The input is not changed. */
	if (memcmp(copy, data, size) != 0)
		abort();
	free(error);
	free(copy);
	state_clear(&st);
	return 0;
}
