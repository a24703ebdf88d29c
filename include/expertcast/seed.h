/*
 * expertcast/seed.h - the seed's three tools: extract, rules create, rules
 * evaluate, with the seed's files and numbers.
 *
 * The seed predicts the primary expert (experts[0], highest gate) of the
 * next layer from lookup rules learnt by majority vote over a few "token
 * journeys" (one token's records, one per layer). Its levels, for a journey
 * whose primary at layer l is E(l) and secondary S(l):
 *
 *   level1        (l, E(l))                      -> E(l+1)
 *   level2        (l, E(l-1), E(l))              -> E(l+1)   only for l >= 1
 *   level3        (l, E(l-2), E(l-1), E(l))      -> E(l+1)   only for l >= 2
 *   level4        (l, E(l), S(l))                -> E(l+1)   only for top-k >= 2
 *   level5_skipK  (l, E(l))                      -> E(l+K)   K = 2, 4, 8
 *
 * A case exists only when every layer it names is present in the journey
 * (a journey with a missing layer is never shifted). A rule predicts the
 * target seen most often for its key; a tie goes to the target seen first
 * (files in the order given, layers ascending), as Python's
 * Counter.most_common does.
 */
#ifndef EXPERTCAST_SEED_H
#define EXPERTCAST_SEED_H

#include "expertcast/core.h"
#include "expertcast/trace.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- extract -------------------------------------------------------------- */

typedef struct ec_extract_opts {
    int64_t problem_id;
    int64_t token_begin, token_end; /* tokens [begin, end); 0 <= begin < end */
    const char *dataset;    /* NULL: the one dataset holding problem_id (an error
                               when several do) */
    const char *output_dir; /* must exist; NULL or "": the current directory */
} ec_extract_opts;

/* One token of the range that has at least one record. */
typedef struct ec_extract_token {
    int64_t token;
    int32_t layers;  /* distinct layers present; == n_layers: written */
} ec_extract_token;

/* What ec_seed_extract did. Every field is read-only; the report owns its
 * arrays. */
typedef struct ec_extract_report {
    int32_t n_layers;         /* the file's largest layer + 1 (all problems) */
    char *dataset;            /* dataset extracted ("" when records have none) */
    size_t n_tokens;
    ec_extract_token *tokens; /* [n_tokens] ascending token order */
    size_t n_written;         /* complete journeys written */
    size_t n_incomplete;      /* tokens of the range with some layer missing */
    int64_t n_absent;         /* tokens of the range with no record at all */
    size_t n_duplicates;      /* repeated (token, layer) records ignored (first wins) */
} ec_extract_report;

/*
 * Streams the raw JSONL at raw_path (validating every line) and writes, for
 * every token of [token_begin, token_end) of problem problem_id that has
 * all n_layers layers, the file output_dir/p<problem>_token_<token>.jsonl:
 * one line per layer in layer order, each line json.dumps of the record as
 * Python prints it, followed by "\n". For a repeated (token, layer) the
 * first record wins. Every file is written atomically and only after the
 * whole input was read and validated, so an error leaves no file half
 * written. Errors: EC_ERR_INVALID for a bad range, EC_ERR_IO for a missing
 * output directory, EC_ERR_PARSE for a bad line, an unknown problem or
 * dataset, a problem shared by several datasets without opts->dataset, or a
 * range holding no complete token. On success *out (free with
 * ec_extract_report_destroy) says what was written and skipped.
 */
ec_status ec_seed_extract(const char *raw_path, const ec_extract_opts *opts,
                          ec_extract_report **out, ec_error *err);
void ec_extract_report_destroy(ec_extract_report *r);

/* ---- rules ---------------------------------------------------------------- */

typedef enum ec_seed_level {
    EC_SEED_L1 = 0,
    EC_SEED_L2,
    EC_SEED_L3,
    EC_SEED_L4,
    EC_SEED_SKIP2,
    EC_SEED_SKIP4,
    EC_SEED_SKIP8,
    EC_SEED_N_LEVELS
} ec_seed_level;

/* "level1" ... "level4", "level5_skip2", "level5_skip4", "level5_skip8":
 * the keys of the seed's results. NULL for an invalid level. */
const char *ec_seed_level_name(ec_seed_level lv);
/* The seed's description, e.g. "(Layer, Prev, Curr) -> Next". */
const char *ec_seed_level_description(ec_seed_level lv);
/* Numbers in a key, layer included: 2, 3, 4, 3, 2, 2, 2. */
int32_t ec_seed_level_arity(ec_seed_level lv);
/* Layers between the key's layer and the predicted one: 1, 1, 1, 1, 2, 4, 8. */
int32_t ec_seed_level_distance(ec_seed_level lv);

/* One rule: key[0] is the layer, key[1..arity-1] the experts of the key. */
typedef struct ec_seed_rule {
    int32_t key[4];
    int32_t prediction; /* expert id predicted */
    int32_t votes;      /* training cases with that target */
    int32_t samples;    /* training cases with this key; confidence = votes / samples */
} ec_seed_rule;

/* Where the rules' n_experts came from. */
typedef enum ec_seed_shape_source {
    EC_SEED_SHAPE_GIVEN = 0,    /* set by the caller (or read from the file) */
    EC_SEED_SHAPE_INFERRED = 1, /* largest expert id seen + 1: a lower bound */
    EC_SEED_SHAPE_DEFAULT = 2   /* a seed-made file without it: Mixtral's 8 */
} ec_seed_shape_source;

typedef struct ec_seed_rules ec_seed_rules;

/*
 * Learns the rules from journey files (each read with the raw JSONL reader;
 * a file may hold one or more tokens, taken in the loader's row order:
 * sequences by first appearance, tokens ascending). n_experts > 0 sets the
 * model's expert count (used for "vs random"); 0 infers it as the largest
 * id seen + 1. All files must share one top-k. The metadata keeps the
 * paths as given. *out is freed with ec_seed_rules_destroy.
 */
ec_status ec_seed_rules_create(const char *const *paths, size_t n_paths, int32_t n_experts,
                               ec_seed_rules **out, ec_error *err);

/*
 * Learns the rules from the complete rows of the sequences of t whose
 * seq_mask entry is non-zero (NULL: all), rows in trace order. The shape is
 * the trace's (n_experts given).
 */
ec_status ec_seed_rules_fit(const ec_trace *t, const uint8_t *seq_mask, ec_seed_rules **out,
                            ec_error *err);

/*
 * Loads a rules JSON written by ec_seed_rules_save or by the seed's
 * create_rules.py. Missing shape metadata (a seed-made file) defaults to
 * Mixtral's 32 layers, 8 experts, top-2, raised when a key needs more;
 * ec_seed_rules_experts_source then says EC_SEED_SHAPE_DEFAULT.
 */
ec_status ec_seed_rules_load(const char *path, ec_seed_rules **out, ec_error *err);

/* Writes the rules JSON (the seed's structure, json.dump(indent=2) layout)
 * to f / atomically to path. */
ec_status ec_seed_rules_write(const ec_seed_rules *r, FILE *f, ec_error *err);
ec_status ec_seed_rules_save(const ec_seed_rules *r, const char *path, ec_error *err);
void ec_seed_rules_destroy(ec_seed_rules *r);

/* Rules of a level, in the order their keys were first seen. */
size_t ec_seed_rules_count(const ec_seed_rules *r, ec_seed_level lv);
const ec_seed_rule *ec_seed_rules_at(const ec_seed_rules *r, ec_seed_level lv, size_t i);
/* The rule for key[arity] or NULL. Never allocates; safe from several
 * threads. */
const ec_seed_rule *ec_seed_rules_find(const ec_seed_rules *r, ec_seed_level lv,
                                       const int32_t *key);

int32_t ec_seed_rules_n_layers(const ec_seed_rules *r);
int32_t ec_seed_rules_n_experts(const ec_seed_rules *r);
int32_t ec_seed_rules_k(const ec_seed_rules *r);
ec_seed_shape_source ec_seed_rules_experts_source(const ec_seed_rules *r);
/* Journeys (rows) the rules were learnt from; 0 for a loaded seed file
 * that does not say. */
size_t ec_seed_rules_n_journeys(const ec_seed_rules *r);
size_t ec_seed_rules_n_training_files(const ec_seed_rules *r);
const char *ec_seed_rules_training_file(const ec_seed_rules *r, size_t i);

/* ---- evaluate -------------------------------------------------------------- */

typedef struct ec_seed_score {
    size_t correct; /* covered cases whose rule named the actual expert */
    size_t total;   /* covered cases: a rule existed for the key (the seed's "total") */
    size_t cases;   /* every case of the level: the layers it names are present */
} ec_seed_score;

/* An evaluation. Every field is read-only; the object owns its arrays. */
typedef struct ec_seed_eval {
    int32_t n_experts;            /* for vs_random = accuracy / (100 / n_experts) */
    ec_seed_shape_source experts_source;
    size_t n_files;
    char **files;                 /* [n_files] test paths as given */
    size_t *journeys;             /* [n_files] rows (tokens) in each file */
    ec_seed_score *per_file;      /* [n_files][EC_SEED_N_LEVELS] */
    ec_seed_score total[EC_SEED_N_LEVELS];
} ec_seed_eval;

/*
 * Scores rules on test journey files: for every case of every level, a
 * rule for its key "covers" it, and it is correct when the rule's
 * prediction is the actual expert. n_experts > 0 overrides the expert
 * count; 0 takes the rules' when given, else the largest id seen in the
 * rules and the tests + 1 (never below a seed file's default of 8).
 */
ec_status ec_seed_evaluate(const ec_seed_rules *r, const char *const *paths, size_t n_paths,
                           int32_t n_experts, ec_seed_eval **out, ec_error *err);
void ec_seed_eval_destroy(ec_seed_eval *e);

/* 100 * correct / total (0 when total is 0), unrounded. */
double ec_seed_accuracy(const ec_seed_score *s);
/* accuracy / (100 / n_experts), unrounded. */
double ec_seed_vs_random(const ec_seed_score *s, int32_t n_experts);
/* Python's round(x, 2) (correctly rounded, ties to even on the binary value). */
double ec_seed_round2(double x);
/* The level with the highest rounded accuracy; ties: the first level. */
ec_seed_level ec_seed_eval_best(const ec_seed_eval *e);

/*
 * Writes the seed's results JSON: metadata {timestamp, rules_file,
 * training_files, test_files, num_test_files, n_experts}, results
 * {level1 ... level5_skip8: {correct, total, accuracy_percent, vs_random}},
 * best_level {name, accuracy_percent}, and coverage {level: {covered,
 * cases, coverage_percent}}. timestamp is written as given.
 */
ec_status ec_seed_eval_write(const ec_seed_eval *e, const ec_seed_rules *r,
                             const char *rules_file, const char *timestamp, FILE *f,
                             ec_error *err);

/* The seed's rules as predictors ("seed-l1" ... "seed-l5", "hybrid") are in
 * expertcast/predict.h: the predict module builds on this one, never the
 * other way round. */

#ifdef __cplusplus
}
#endif
#endif
