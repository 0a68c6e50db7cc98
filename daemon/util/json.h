/*
 * util/json: the few pieces of JSON the command line modes print (--status,
 * --verify): strings escaped for a JSON document.
 */
#ifndef MM_UTIL_JSON_H
#define MM_UTIL_JSON_H

#include <stdio.h>

/* s as a JSON string, quotes included: '"' and '\\' escaped, bytes below
 * 0x20 as \u00XX; other bytes as they are (the callers' text is UTF-8). */
void json_string(FILE *out, const char *s);

#endif
