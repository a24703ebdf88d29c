/* Internal predictor interface: every predictor is a vtable + state. */
#ifndef EC_PREDICTOR_INTERNAL_H
#define EC_PREDICTOR_INTERNAL_H

#include "../core/internal.h"
#include "expertcast/predict.h"

#include <cjson/cJSON.h>

typedef struct ec_predictor_vt {
    const char *name;
    /* Fills defaults into p->opts (zero fields) and allocates p->state. */
    ec_status (*init)(ec_predictor *p);
    void (*free_state)(ec_predictor *p);
    /* Fits the model; p->prior, n_layers, n_experts, k are already set. */
    ec_status (*fit)(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask);
    /*
     * Writes probs for (target layer, next_token) at `horizon`. Returns 1
     * when informed, 0 when it fell back. Must not allocate. May be NULL:
     * then the prior is used.
     */
    int (*predict)(const ec_predictor *p, const ec_history *h, int32_t target, int next_token,
                   int32_t horizon, float *probs);
    /* Adds the model's fields to obj / reads them back (after init; shape
     * and prior are set). Load errors name the field ("field 'model.w':
     * ..."); ec_predictor_load prefixes the file name. */
    ec_status (*save)(const ec_predictor *p, cJSON *model);
    ec_status (*load)(ec_predictor *p, const cJSON *model, ec_error *err);
} ec_predictor_vt;

struct ec_predictor {
    const ec_predictor_vt *vt;
    ec_predictor_opts opts;
    int32_t n_layers, n_experts, k; /* 0 before fit/load */
    float *prior;                   /* [n_layers][n_experts] smoothed layer frequency */
    void *state;
    char errmsg[EC_ERROR_MAX];
};

/* Records a message in p->errmsg and returns s. */
ec_status ec_predictor_fail(const ec_predictor *p, ec_status s, const char *fmt, ...)
    EC_PRINTF(3, 4);

/* A prediction by a predictor that was never fitted: the hint predictor's
 * (hint.c; uniform fallback); -1 for every other predictor. */
int ec_predictor_predict_unfitted(const ec_predictor *p, const ec_history *h, int32_t horizon,
                                  float *probs);

/* Copies p's prior for layer into probs (normalised). */
void ec_predictor_prior(const ec_predictor *p, int32_t layer, float *probs);

/* Normalises probs[n] to sum 1 (uniform when the sum is 0). */
void ec_normalize(float *probs, int32_t n);

/* JSON helpers for model files (cJSON stays inside the library). */
cJSON *ec_json_float_array(const float *v, size_t n);
/* Reads exactly n numbers from arr into v; EC_ERR_PARSE otherwise. */
ec_status ec_json_read_floats(const cJSON *arr, float *v, size_t n, const char *field,
                              const char *path, ec_error *err);

/* ec_predictor_load on a file's len bytes already in memory (path names it
 * in messages). For the fuzz target and its regression test. */
ec_status ec_predictor_load_text(const char *path, const char *text, size_t len,
                                 ec_predictor **out, ec_error *err);

/* A rules JSON already parsed (root) as the seed predictor `name` (NULL:
 * hybrid): ec_predictor_load_seed_rules without reading a file. */
ec_status ec_predictor_seed_rules_json(const cJSON *root, const char *path, const char *name,
                                       ec_predictor **out, ec_error *err);

/* Every predictor module defines its vtable here. */
extern const ec_predictor_vt ec_prior_vt;
extern const ec_predictor_vt ec_ngram_vt;
extern const ec_predictor_vt ec_temporal_vt;
extern const ec_predictor_vt ec_logistic_vt;
extern const ec_predictor_vt ec_mix_vt;
extern const ec_predictor_vt ec_hint_vt;
extern const ec_predictor_vt ec_seed_l1_vt, ec_seed_l2_vt, ec_seed_l3_vt, ec_seed_l4_vt,
    ec_seed_l5_vt, ec_hybrid_vt;

#endif
