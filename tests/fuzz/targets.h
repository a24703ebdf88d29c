/*
 * Fuzz targets: what every parser must uphold on arbitrary bytes. The same
 * functions run under libFuzzer (fuzz_main.c) and, over every file in
 * tests/fuzz/corpus and tests/fuzz/regress, in the Criterion suite
 * (tests/test_fuzz_regress.c).
 */
#ifndef EC_FUZZ_TARGETS_H
#define EC_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* Returns NULL when the input upheld every property, else a static message
 * naming the one it broke. Memory errors and leaks are the sanitizers'. */
typedef const char *(*fuzz_fn)(const uint8_t *data, size_t size);

/* One raw JSONL file through the validated reader and the trace builder:
 * a clean one-line parse error, or a trace whose every invariant holds and
 * that writes out and loads back identical. */
const char *fuzz_trace_line(const uint8_t *data, size_t size);

/* ec_json_pyrepr: a parse error, or printable ASCII JSON (Python's NaN and
 * Infinity allowed) that re-serialises to itself byte for byte. */
const char *fuzz_pyrepr(const uint8_t *data, size_t size);

/* ec_predictor_load on a file's bytes: a clean parse error, or a predictor
 * whose prior rows are distributions, whose predictions are distributions,
 * and that saves and loads back the same. */
const char *fuzz_predictor_json(const uint8_t *data, size_t size);

/* A policy (every kind) driven through arbitrary steps within its contract:
 * the slot table and counters stay consistent, BUSY only while readers or
 * transfers hold slots, no allocation after creation (target_policy.c). */
const char *fuzz_policy(const uint8_t *data, size_t size);

/* ec_seed_rules_load on a rules JSON file: a clean parse error, or rules
 * that fit their shape, find, round-trip and load as the hybrid predictor
 * (target_rules.c). */
const char *fuzz_rules_json(const uint8_t *data, size_t size);

/* Model and hardware profiles: clean errors, or values in range whose
 * derived timings are finite (target_profile.c). */
const char *fuzz_profile(const uint8_t *data, size_t size);

/* Shared by the targets: a loaded or fitted predictor's prior rows and its
 * predictions at horizons 1..4 are distributions. */
struct ec_predictor;
const char *fuzz_check_predictor(const struct ec_predictor *p);

typedef struct fuzz_target {
    const char *name; /* also the folder under tests/fuzz/corpus and regress */
    fuzz_fn fn;
} fuzz_target;

/* Every target, NULL-terminated. */
extern const fuzz_target fuzz_targets[];

#endif
