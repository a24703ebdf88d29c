/*
 * Compact, exact encodings of large numeric arrays inside model JSON files:
 * base64 of little-endian float32 / uint64 values. A float32 array written
 * this way reads back bit for bit, so a loaded model predicts exactly what
 * the saved one did, and a 100k-weight model stays a few hundred kB.
 */
#ifndef EC_CODEC_H
#define EC_CODEC_H

#include "predictor.h"

/* A cJSON string holding v[n] (NULL when out of memory). */
cJSON *ec_json_b64_f32(const float *v, size_t n);
cJSON *ec_json_b64_u64(const uint64_t *v, size_t n);

/* Decodes exactly n values from the string item; EC_ERR_PARSE naming the
 * field ("field 'model.F': ...", the loader prefixes the file) when it is
 * not a string of that many values. */
/* Checks, before anything is allocated for it, that item is a base64
 * string of exactly nbytes bytes by its length (the same messages as the
 * readers below), so that a count declared in a file is held against the
 * data present. */
ec_status ec_json_b64_check(const cJSON *item, size_t nbytes, const char *field, ec_error *err);

ec_status ec_json_read_b64_f32(const cJSON *item, float *v, size_t n, const char *field,
                               ec_error *err);
ec_status ec_json_read_b64_u64(const cJSON *item, uint64_t *v, size_t n, const char *field,
                               ec_error *err);

/* Reads an integer field of obj in [lo, hi] (ec_json_get_number's messages,
 * naming 'model.FIELD'; the loader prefixes the file). */
ec_status ec_json_read_int(const cJSON *obj, const char *field, long long lo, long long hi,
                           long long *out, ec_error *err);

#endif
