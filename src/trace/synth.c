/*
 * Synthetic routing traces with tunable locality, so that tests, fixtures
 * and the default demo need no outside data.
 *
 * Model: every layer has a Zipf popularity over a random permutation of
 * the experts, and a random "successor" map expert -> expert for the next
 * layer. Slot i of token t at layer l is, in order of trial:
 *   - with p = token_locality: the expert in slot i of token t-1 at layer l;
 *   - else with p = layer_locality: succ[l-1][slot i of token t at l-1];
 *   - else a draw from layer l's popularity.
 * Duplicates inside a top-k are redrawn from the popularity.
 */
#include "../core/internal.h"
#include "../core/rng.h"
#include "expertcast/trace.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void ec_synth_opts_default(ec_synth_opts *o)
{
    *o = (ec_synth_opts){.n_layers = 32,
                         .n_experts = 8,
                         .k = 2,
                         .n_seqs = 4,
                         .n_tokens = 64,
                         .seed = 1,
                         .layer_locality = 0.5,
                         .token_locality = 0.4,
                         .skew = 0.8,
                         .gates = 1,
                         .dataset = "synth"};
}

static int32_t draw(ec_rng *r, const double *cdf, const int32_t *perm, int32_t E)
{
    double u = ec_rng_uniform(r) * cdf[E - 1];
    int32_t lo = 0, hi = E - 1;
    while (lo < hi) {
        int32_t mid = (lo + hi) / 2;
        if (cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return perm[lo];
}

static int contains(const int16_t *e, int n, int32_t x)
{
    for (int i = 0; i < n; i++)
        if (e[i] == x)
            return 1;
    return 0;
}

ec_status ec_synth_generate(const ec_synth_opts *o, ec_trace **out, ec_error *err)
{
    if (!out || !o)
        return ec_error_set(err, EC_ERR_INVALID, "ec_synth_generate: NULL argument");
    *out = NULL;
    if (o->n_layers < 1 || o->n_layers > EC_MAX_LAYERS)
        return ec_error_set(err, EC_ERR_INVALID, "layers must be in [1, %d]", EC_MAX_LAYERS);
    if (o->n_experts < 1 || o->n_experts > EC_MAX_EXPERTS)
        return ec_error_set(err, EC_ERR_INVALID, "experts must be in [1, %d]", EC_MAX_EXPERTS);
    if (o->k < 1 || o->k > EC_MAX_K || o->k > o->n_experts)
        return ec_error_set(err, EC_ERR_INVALID, "k must be in [1, min(experts, %d)]", EC_MAX_K);
    if (o->n_seqs < 1 || o->n_tokens < 1)
        return ec_error_set(err, EC_ERR_INVALID, "sequences and tokens must be >= 1");
    if (!(o->layer_locality >= 0 && o->layer_locality <= 1) ||
        !(o->token_locality >= 0 && o->token_locality <= 1) || !(o->skew >= 0))
        return ec_error_set(err, EC_ERR_INVALID,
                            "localities must be in [0, 1] and skew must be >= 0");

    const int32_t L = o->n_layers, E = o->n_experts, K = o->k;
    const size_t rows = (size_t)o->n_seqs * (size_t)o->n_tokens;
    if (rows > SIZE_MAX / (size_t)L / (size_t)K / sizeof(float) / 2)
        return ec_error_set(err, EC_ERR_INVALID, "trace too large");
    ec_trace *t = ec_calloc(1, sizeof *t);
    double *cdf = ec_malloc((size_t)L * (size_t)E * sizeof *cdf);
    int32_t *perm = ec_malloc((size_t)L * (size_t)E * sizeof *perm);
    int32_t *succ = ec_malloc((size_t)L * (size_t)E * sizeof *succ);
    if (t) {
        t->seqs = ec_calloc((size_t)o->n_seqs, sizeof *t->seqs);
        t->token_idx = ec_malloc(rows * sizeof *t->token_idx);
        t->complete = ec_malloc(rows);
        t->experts = ec_malloc(rows * (size_t)L * (size_t)K * sizeof *t->experts);
        if (o->gates)
            t->gates = ec_malloc(rows * (size_t)L * (size_t)K * sizeof *t->gates);
    }
    if (!t || !cdf || !perm || !succ || !t->seqs || !t->token_idx || !t->complete ||
        !t->experts || (o->gates && !t->gates)) {
        ec_trace_destroy(t);
        ec_free(cdf);
        ec_free(perm);
        ec_free(succ);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory generating a synthetic trace");
    }
    t->n_layers = L;
    t->n_experts = E;
    t->k = K;
    t->has_gates = o->gates != 0;
    t->n_seqs = (size_t)o->n_seqs;
    t->n_rows = rows;
    t->n_records = rows * (size_t)L;

    ec_rng r;
    ec_rng_seed(&r, o->seed);
    for (int32_t l = 0; l < L; l++) {
        int32_t *p = perm + (size_t)l * (size_t)E;
        for (int32_t e = 0; e < E; e++)
            p[e] = e;
        for (int32_t e = E - 1; e > 0; e--) { /* Fisher-Yates */
            int32_t j = (int32_t)ec_rng_below(&r, (uint32_t)e + 1);
            int32_t tmp = p[e];
            p[e] = p[j];
            p[j] = tmp;
        }
        double acc = 0;
        for (int32_t e = 0; e < E; e++) {
            acc += 1.0 / pow((double)e + 1.0, o->skew);
            cdf[(size_t)l * (size_t)E + (size_t)e] = acc;
        }
        for (int32_t e = 0; e < E; e++)
            succ[(size_t)l * (size_t)E + (size_t)e] = (int32_t)ec_rng_below(&r, (uint32_t)E);
    }

    const char *ds = o->dataset ? o->dataset : "synth";
    int oom = 0;
    size_t row = 0;
    for (int32_t s = 0; s < o->n_seqs; s++) {
        char *name = ec_strdup(ds);
        oom |= name == NULL;
        t->seqs[s] = (ec_seq){name, s, row, (size_t)o->n_tokens};
        for (int32_t tok = 0; tok < o->n_tokens; tok++, row++) {
            t->token_idx[row] = tok;
            t->complete[row] = 1;
            for (int32_t l = 0; l < L; l++) {
                int16_t *e = t->experts + (row * (size_t)L + (size_t)l) * (size_t)K;
                const int16_t *prev_tok = tok ? e - (size_t)L * (size_t)K : NULL;
                const int16_t *prev_layer = l ? e - K : NULL;
                const double *c = cdf + (size_t)l * (size_t)E;
                const int32_t *p = perm + (size_t)l * (size_t)E;
                for (int32_t i = 0; i < K; i++) {
                    int32_t x;
                    double u = ec_rng_uniform(&r);
                    if (prev_tok && u < o->token_locality)
                        x = prev_tok[i];
                    else if (prev_layer && ec_rng_uniform(&r) < o->layer_locality)
                        x = succ[(size_t)(l - 1) * (size_t)E + (size_t)prev_layer[i]];
                    else
                        x = draw(&r, c, p, E);
                    for (int tries = 0; contains(e, i, x) && tries < 64; tries++)
                        x = draw(&r, c, p, E);
                    for (int32_t j = 0; contains(e, i, x); j++)
                        x = p[j]; /* deterministic fallback: most popular unused */
                    e[i] = (int16_t)x;
                }
                if (t->gates) {
                    float *g = t->gates + (row * (size_t)L + (size_t)l) * (size_t)K;
                    double sum = 0, v[EC_MAX_K];
                    for (int32_t i = 0; i < K; i++)
                        sum += v[i] = -log(1.0 - ec_rng_uniform(&r)); /* Exp(1) */
                    /* Highest gate first, as routers report. */
                    for (int32_t i = 1; i < K; i++)
                        for (int32_t j = i; j > 0 && v[j] > v[j - 1]; j--) {
                            double tmp = v[j];
                            v[j] = v[j - 1];
                            v[j - 1] = tmp;
                        }
                    for (int32_t i = 0; i < K; i++)
                        g[i] = (float)(v[i] / sum);
                }
            }
        }
    }
    ec_free(cdf);
    ec_free(perm);
    ec_free(succ);
    if (oom) {
        ec_trace_destroy(t);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory generating a synthetic trace");
    }
    *out = t;
    return EC_OK;
}
