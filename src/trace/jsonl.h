/* Streaming reader of the raw routing JSONL format (cJSON stays in src/trace). */
#ifndef EC_JSONL_H
#define EC_JSONL_H

#include "expertcast/trace.h"
#include "../core/internal.h"

/* One validated record. Pointers are valid during the callback only. */
typedef struct ec_record {
    const char *dataset;  /* "" when absent */
    int64_t problem_id;   /* 0 when absent */
    int64_t token;        /* token_idx or token_pos */
    int32_t layer;
    int32_t k;
    int32_t experts[EC_MAX_K];
    double gates[EC_MAX_K];
    int has_gates;
    int32_t n_guesses;    /* the optional "guesses" field */
    struct {
        int32_t ahead, n;
        int32_t experts[EC_MAX_K];
        double probs[EC_MAX_K];
    } guesses[EC_MAX_GUESSES];
    const char *text;     /* the line as read (no line end, no BOM) */
    size_t text_len;
    size_t line;          /* 1-based line number */
} ec_record;

/* Called once per record; a non-OK return stops the read and is returned
 * (the callback fills err). */
typedef ec_status (*ec_record_fn)(void *ctx, const ec_record *rec, ec_error *err);

/*
 * Reads path line by line, validates every line and calls fn for each
 * record. Blank lines are skipped. k and the presence of gates are fixed
 * by the first record. An empty file (no record) is an error.
 */
ec_status ec_jsonl_read(const char *path, const ec_trace_opts *opts, ec_record_fn fn, void *ctx,
                        ec_error *err);

/*
 * The same reader over len bytes in memory (named `name` in messages); the
 * bytes are not modified. For the fuzz targets and their regression test.
 */
ec_status ec_jsonl_read_buffer(const char *name, const void *data, size_t len,
                               const ec_trace_opts *opts, ec_record_fn fn, void *ctx,
                               ec_error *err);

/*
 * Lines are read by a fast scanner and, when it gives up, by cJSON (which
 * also words every error). For the fuzz targets and tests: NULL when the
 * two agree on the one line [text, text + len) (no line end) read as a
 * first record, else what differs. They may differ only where the fast
 * path reads an integer beyond 2^53 exactly and the cJSON path refuses it.
 */
const char *ec_jsonl_paths_disagree(const char *text, size_t len, const ec_trace_opts *opts);

/* ec_trace_load over one in-memory file of len bytes named `name`. */
ec_status ec_trace_load_buffer(const char *name, const void *data, size_t len,
                               const ec_trace_opts *opts, ec_trace **out, ec_error *err);

/*
 * Re-serialises one JSON text the way Python's json.dumps(json.loads(text))
 * does (", " and ": " separators, ensure_ascii, floats as repr). Writes a
 * NUL-terminated string into a buffer it allocates (*out, free with
 * ec_free). EC_ERR_PARSE when text is not JSON.
 */
ec_status ec_json_pyrepr(const char *text, size_t len, char **out, size_t *out_len);

/* Formats a double as Python's repr(float) does ("0.1", "1e-05", "1.0"). */
void ec_fmt_pyfloat(double v, char buf[40]);

#endif
