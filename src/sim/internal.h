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
    /* gated's reuse models, fitted per group on the other sequences with
     * the group's predictor (reuse_fit.c); NULL until a run needs them */
    ec_reuse_model **reuse;      /* [n_groups] */
    const ec_predictor **reuse_for; /* [n_groups] the predictor each was fitted with */
    /* memo of the Belady bound for the last cache shape */
    int32_t bound_per_layer, bound_global;
    int64_t *bound_loads; /* [L] Belady loads per layer, -1 when not computed */
};

/* Fits the reuse models that are missing or stale (none with one group). */
ec_status sim_reuse_models(ec_sim *s, ec_error *err);
void sim_reuse_free(ec_sim *s);

/* Next step >= from that needs (layer, expert), INT64_MAX if none. */
int64_t sim_next_use(const ec_sim *s, int64_t from, int32_t layer, int32_t expert);

/* Belady (furthest next use, requests taken one at a time) loads per layer
 * for the cache shape; fills s->bound_loads. */
ec_status sim_belady_loads(ec_sim *s, int32_t per_layer, int32_t global);

#endif
