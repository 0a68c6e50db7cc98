/*
 * util/utf8: strict UTF-8 (RFC 3629).
 *
 * Strict: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF, no truncated sequence.  U+0000 (the byte 0) is valid UTF-8;
 * callers that must refuse it do so themselves.
 */
#ifndef MM_UTIL_UTF8_H
#define MM_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The character that the len bytes at s start with: its length (1 to 4)
 * and *cp_r its code point; or 0 (and *cp_r untouched) when len is 0 or s
 * does not start with a strict UTF-8 character.  Reads no byte past
 * s[len - 1]. */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp_r);

/* cp (at most U+10FFFF, not a surrogate) written as 1 to 4 bytes at out;
 * their number. */
size_t utf8_encode(uint32_t cp, char *out);

/* Whether the len bytes at s are all strict UTF-8. */
bool utf8_valid(const char *s, size_t len);

#endif
