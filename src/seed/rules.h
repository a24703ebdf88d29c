/* Internal view of the seed's rule tables, shared by src/seed and the seed
 * predictors in src/predict. */
#ifndef EC_SEED_RULES_H
#define EC_SEED_RULES_H

#include "../core/internal.h"
#include "expertcast/seed.h"

#include <cjson/cJSON.h>

/* A vote: one target of one key and how many training cases chose it, in a
 * per-rule list kept in first-seen order (the seed's "votes" object). */
typedef struct seed_cand {
    int32_t expert;
    int32_t count;
    int32_t next; /* index of the next candidate of the rule, -1 at the end */
} seed_cand;

/* The rules of one level: insertion-ordered array + open-addressing index. */
typedef struct seed_table {
    ec_seed_rule *rules;
    size_t n, cap;
    uint32_t *slots;  /* [n_slots] rule index + 1; 0 = empty */
    size_t n_slots;   /* a power of two, >= 2 * n */
    int32_t *head, *tail; /* [n] first / last vote of each rule; -1 when the rule's
                             votes are not known (a compact predictor file) */
    size_t cap_head, cap_tail;
} seed_table;

struct ec_seed_rules {
    seed_table lv[EC_SEED_N_LEVELS];
    seed_cand *cand; /* every rule's votes, linked through head / next */
    size_t n_cand, cap_cand;
    int32_t n_layers, n_experts, k;
    ec_seed_shape_source experts_source;
    int shape_defaulted;    /* layers / k were not in the file */
    size_t n_journeys;
    char **train_files;
    size_t n_train;
};

/* An empty rule set; NULL when out of memory. */
ec_seed_rules *seed_rules_new(void);

/*
 * Inserts (when absent) the rule for key and returns it through *out, or
 * EC_ERR_NOMEM. *created tells whether it is new (its fields are then 0).
 */
ec_status seed_table_get(ec_seed_rules *r, ec_seed_level lv, const int32_t *key,
                         ec_seed_rule **out, int *created);

/* Adds one training case (key -> target) to the votes. */
ec_status seed_rules_vote(ec_seed_rules *r, ec_seed_level lv, const int32_t *key, int32_t target);

/* Adds `count` votes for target to rule i of level lv (a vote read from a
 * file: the rule's samples are not changed). EC_ERR_NOMEM. */
ec_status seed_rules_add_votes(ec_seed_rules *r, ec_seed_level lv, size_t i, int32_t target,
                               int32_t count);

/* Turns the votes into predictions (most votes, first seen on a tie). The
 * vote lists are kept: the rules file lists them. */
void seed_rules_finish(ec_seed_rules *r);

/*
 * Calls fn for every case of one journey: primary[l] / secondary[l] for l
 * in [0, n_layers), -1 where the layer is missing (secondary -1 everywhere
 * for top-1). Cases come in the order: layer ascending, and for each layer
 * the levels 1..4, then the skips of that source layer. A non-OK return
 * from fn stops the walk.
 */
typedef ec_status (*seed_case_fn)(void *ctx, ec_seed_level lv, const int32_t *key,
                                  int32_t target);
ec_status seed_journey_cases(const int32_t *primary, const int32_t *secondary, int32_t n_layers,
                             seed_case_fn fn, void *ctx);

/* Fills primary / secondary [t->n_layers] for one row of a trace. */
void seed_row_journey(const ec_trace *t, size_t row, int32_t *primary, int32_t *secondary);

/* The model section of a predictor file: {"levelN": [[key..., prediction,
 * votes, samples], ...]}; and back (shape taken from the caller). */
cJSON *seed_rules_to_cjson(const ec_seed_rules *r);
ec_status seed_rules_from_cjson(const cJSON *model, int32_t n_layers, int32_t n_experts,
                                int32_t k, const char *path, ec_seed_rules **out,
                                ec_error *err);

/* Parses a rules JSON document (the seed's layout) already in memory. */
ec_status seed_rules_parse(const cJSON *root, const char *path, ec_seed_rules **out,
                           ec_error *err);

/* Formats key like Python's str(tuple): "(5, 0, 6)". buf >= 64 bytes. */
void seed_key_format(const int32_t *key, int32_t arity, char *buf, size_t size);
/* Parses "(5, 0, 6)" (spaces optional) into key[arity]; -1 when malformed,
 * of another arity, or a negative number. */
int seed_key_parse(const char *s, int32_t arity, int32_t *key);

#endif
