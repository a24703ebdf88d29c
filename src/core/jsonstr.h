/* JSON string literals written to a FILE: shared by the library's JSONL
 * writers (trace, recorder) and the command line's JSON reports. Not
 * installed. */
#ifndef EC_JSONSTR_H
#define EC_JSONSTR_H

#include <stdio.h>

/*
 * Writes s (NUL-terminated, not NULL) to f as a JSON string literal: in
 * double quotes, '"' and '\\' escaped with a backslash, bytes below 0x20 as
 * \u00XX, every other byte as it is (UTF-8 passes through). Errors show in
 * ferror(f).
 */
void ec_json_write_string(FILE *f, const char *s);

#endif
