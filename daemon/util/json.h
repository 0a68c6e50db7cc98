/*
 * util/json: the few pieces of JSON the command line modes print (--status,
 * --verify): strings escaped for a JSON document.
 */
#ifndef MM_UTIL_JSON_H
#define MM_UTIL_JSON_H

#include <stdio.h>

/* s as a JSON string, quotes included: '"' and '\\' escaped, control
 * characters (C0, DEL, C1) as \u00XX, each byte that is not part of a
 * strict UTF-8 character as \ufffd (names from a server may be any
 * bytes; a JSON document is UTF-8); other characters as they are. */
void json_string(FILE *out, const char *s);

#endif
