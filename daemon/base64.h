/*
 * base64: the two alphabets the project meets, RFC 4648's (SASL, public key
 * pins) and RFC 3501's modified one for mailbox names (',' for '/').
 */
#ifndef MM_BASE64_H
#define MM_BASE64_H

#include <stddef.h>

extern const char base64_std[];		/* ...0-9 + / */
extern const char base64_imap[];	/* ...0-9 + , */

/* The value (0-63) of c in alphabet, or -1 when c is not in it. */
int base64_value(const char *alphabet, unsigned char c);

/* in as padded base64 in the standard alphabet: a NUL-terminated malloc'ed
 * string, or NULL when out of memory. */
char *base64_encode(const unsigned char *in, size_t len);

#endif
