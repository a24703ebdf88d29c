/* Internal layout of the simulator. */
#ifndef EC_SIM_INTERNAL_H
#define EC_SIM_INTERNAL_H

#include "../core/internal.h"
#include "expertcast/sim.h"

/*
 * The replay stream: S = n_tok * L steps; step s is layer s % L of token
 * step s / L. Step s needs ex[off[s] .. off[s+1]) (the union over the
 * batch, distinct ids). occ lists, per (layer, expert), the positions in ex
 * where it is needed, ascending; step_of maps a position back to its step.
 */
struct ec_sim {
    const ec_trace *t;
    int32_t L, E, B;
    int32_t n_groups;
    int64_t n_tok, S, n_skipped;
    int32_t max_union;
    double mean_union;
    int32_t *tok_group;   /* [n_tok] */
    int64_t *tok_rows;    /* [n_tok][B] trace row of each sequence of the group, -1 */
    int64_t *off;         /* [S + 1] */
    int16_t *ex;          /* [off[S]] */
    int64_t *step_of;     /* [off[S]] */
    int64_t *occ_off;     /* [L*E + 1] */
    int64_t *occ;         /* [off[S]] positions */
    ec_predictor **owned; /* [n_groups] fitted held out, or NULL */
    const ec_predictor **pred; /* [n_groups] the one each group uses */
    /* gated's reuse models, one per fold (the predictor's folds), fitted
     * on the sequences outside it with the fold's predictor (reuse_fit.c);
     * NULL until a run needs them */
    ec_reuse_model *reuse_fold[EC_SIM_MAX_FOLDS];
    const ec_predictor *reuse_for[EC_SIM_MAX_FOLDS]; /* what each was fitted with */
    ec_reuse_model **reuse;      /* [n_groups] the fold's model, borrowed */
    int32_t whatif_evict; /* ec_sim_set_whatif_evict: tokens, 0 off */
    /* memo of the Belady bound for the last cache shape */
    int32_t bound_per_layer, bound_global;
    int64_t *bound_loads; /* [L] Belady loads per layer, -1 when not computed */
};

/* Folds of batch groups, shared by every held-out fit: min(groups,
 * EC_SIM_MAX_FOLDS) contiguous runs of near-equal size; fold f holds the
 * groups [*g0, *g1). Every group of a fold uses the same predictor. */
static inline int32_t sim_n_folds(const ec_sim *s)
{
    return EC_MIN(s->n_groups, EC_SIM_MAX_FOLDS);
}
static inline void sim_fold_groups(const ec_sim *s, int32_t f, int32_t *g0, int32_t *g1)
{
    int32_t F = sim_n_folds(s);
    *g0 = (int32_t)((int64_t)f * s->n_groups / F);
    *g1 = (int32_t)((int64_t)(f + 1) * s->n_groups / F);
}

/* Fits the reuse models that are missing or stale (none with one group):
 * one per fold, so the cost grows linearly with the trace. */
ec_status sim_reuse_models(ec_sim *s, ec_error *err);
void sim_reuse_free(ec_sim *s);
/* Marks every reuse model stale (the predictors changed). */
void sim_reuse_stale(ec_sim *s);

/* Next step >= from that needs (layer, expert), INT64_MAX if none. */
int64_t sim_next_use(const ec_sim *s, int64_t from, int32_t layer, int32_t expert);

/* Belady (furthest next use, requests taken one at a time) loads per layer
 * for the cache shape; fills s->bound_loads. */
ec_status sim_belady_loads(ec_sim *s, int32_t per_layer, int32_t global);

#endif
