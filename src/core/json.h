/* Reading the library's small JSON documents with cJSON: the whole file,
 * and range-checked numbers with messages that name the file and field.
 * Not installed. */
#ifndef EC_JSON_H
#define EC_JSON_H

#include "internal.h"

#include <cjson/cJSON.h>

/*
 * Parses the whole file at path as one JSON value into *out (free with
 * cJSON_Delete). Errors: those of ec_read_file, "PATH: out of memory" when
 * cJSON ran out, "PATH: not valid JSON (near byte N)" and "PATH: trailing
 * data after the JSON document (near byte N)" (EC_ERR_PARSE). *out is NULL
 * on failure.
 */
ec_status ec_json_load(const char *path, cJSON **out, ec_error *err);

/* Why cJSON stopped at byte `at` of text: "JSON nested deeper than 1000
 * levels" when the value is that deep there (cJSON's limit), else "not
 * valid JSON". */
const char *ec_json_why(const char *text, size_t at);

/*
 * Reads obj[field] into *out: a finite number in [lo, hi], and an integer
 * when `integer` is set. prefix names the enclosing object in messages
 * ("" at top level, else ending in '.'); the messages are
 * "PATH: field 'PREFIXFIELD': missing", "...: expected a number",
 * "...: V is out of range [LO, HI]", "...: V is not an integer"
 * (EC_ERR_PARSE); with path NULL they start at "field" (for callers that
 * add the path themselves). *out is untouched on failure.
 */
ec_status ec_json_get_number(const cJSON *obj, const char *field, double lo, double hi,
                             bool integer, double *out, const char *path, const char *prefix,
                             ec_error *err);

#endif
