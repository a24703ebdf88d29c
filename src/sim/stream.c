/* The replay stream: steps, their expert unions, the future index, predictors. */
#include "internal.h"

#include <string.h>

void ec_sim_destroy(ec_sim *s)
{
    if (!s)
        return;
    if (s->owned)
        for (int32_t g = 0; g < s->n_groups; g++)
            ec_predictor_destroy(s->owned[g]);
    ec_free(s->owned);
    sim_reuse_free(s);
    ec_free(s->pred);
    ec_free(s->tok_group);
    ec_free(s->tok_rows);
    ec_free(s->off);
    ec_free(s->ex);
    ec_free(s->step_of);
    ec_free(s->occ_off);
    ec_free(s->occ);
    ec_free(s->bound_loads);
    ec_free(s);
}

static ec_status nomem(ec_sim *s, ec_error *err)
{
    ec_sim_destroy(s);
    return ec_error_set(err, EC_ERR_NOMEM, "out of memory preparing the replay");
}

ec_status ec_sim_create(const ec_trace *t, int32_t batch, ec_sim **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_sim_create: NULL out");
    *out = NULL;
    if (!t || t->n_seqs == 0)
        return ec_error_set(err, EC_ERR_INVALID, "simulate: the trace has no sequences");
    if (batch < 1 || batch > 4096)
        return ec_error_set(err, EC_ERR_INVALID, "simulate: batch %d is out of range [1, 4096]",
                            batch);
    ec_sim *s = ec_calloc(1, sizeof *s);
    if (!s)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory preparing the replay");
    s->t = t;
    s->L = t->n_layers;
    s->E = t->n_experts;
    s->B = batch;
    s->n_groups = (int32_t)((t->n_seqs + (size_t)batch - 1) / (size_t)batch);
    s->bound_per_layer = s->bound_global = -1;
    /* token steps: per group, as many as its longest sequence, minus those
     * where no sequence has a complete row */
    int64_t cap_tok = 0;
    for (int32_t g = 0; g < s->n_groups; g++) {
        size_t m = 0;
        for (size_t q = (size_t)g * batch; q < t->n_seqs && q < (size_t)(g + 1) * batch; q++)
            m = EC_MAX(m, t->seqs[q].n_rows);
        cap_tok += (int64_t)m;
    }
    s->n_skipped = (int64_t)t->n_incomplete;
    s->tok_group = ec_malloc((size_t)EC_MAX(cap_tok, 1) * sizeof *s->tok_group);
    s->tok_rows = ec_malloc((size_t)EC_MAX(cap_tok, 1) * (size_t)batch * sizeof *s->tok_rows);
    s->owned = ec_calloc((size_t)s->n_groups, sizeof *s->owned);
    s->pred = ec_calloc((size_t)s->n_groups, sizeof *s->pred);
    s->bound_loads = ec_malloc((size_t)s->L * sizeof *s->bound_loads);
    if (!s->tok_group || !s->tok_rows || !s->owned || !s->pred || !s->bound_loads)
        return nomem(s, err);
    for (int32_t g = 0; g < s->n_groups; g++) {
        size_t q0 = (size_t)g * batch, q1 = EC_MIN(t->n_seqs, q0 + (size_t)batch), m = 0;
        for (size_t q = q0; q < q1; q++)
            m = EC_MAX(m, t->seqs[q].n_rows);
        for (size_t j = 0; j < m; j++) {
            int64_t *rows = s->tok_rows + (size_t)s->n_tok * batch;
            int any = 0;
            for (int32_t b = 0; b < batch; b++) {
                size_t q = q0 + (size_t)b;
                rows[b] = -1;
                if (q < q1 && j < t->seqs[q].n_rows && t->complete[t->seqs[q].row0 + j]) {
                    rows[b] = (int64_t)(t->seqs[q].row0 + j);
                    any = 1;
                }
            }
            if (any)
                s->tok_group[s->n_tok++] = g;
        }
    }
    if (s->n_tok == 0) {
        ec_sim_destroy(s);
        return ec_error_set(err, EC_ERR_NO_DATA, "simulate: the trace has no complete token");
    }
    s->S = s->n_tok * s->L;
    s->off = ec_malloc((size_t)(s->S + 1) * sizeof *s->off);
    size_t cap = (size_t)s->S * (size_t)EC_MIN((int64_t)t->k * batch, (int64_t)s->E);
    s->ex = ec_malloc(EC_MAX(cap, 1) * sizeof *s->ex);
    s->step_of = ec_malloc(EC_MAX(cap, 1) * sizeof *s->step_of);
    s->occ_off = ec_calloc((size_t)s->L * (size_t)s->E + 1, sizeof *s->occ_off);
    s->occ = ec_malloc(EC_MAX(cap, 1) * sizeof *s->occ);
    int64_t *mark = ec_malloc((size_t)s->E * sizeof *mark);
    if (!s->off || !s->ex || !s->step_of || !s->occ_off || !s->occ || !mark) {
        ec_free(mark);
        return nomem(s, err);
    }
    for (int32_t e = 0; e < s->E; e++)
        mark[e] = -1;
    int64_t n = 0;
    for (int64_t st = 0; st < s->S; st++) {
        int64_t j = st / s->L;
        int32_t l = (int32_t)(st % s->L);
        s->off[st] = n;
        const int64_t *rows = s->tok_rows + (size_t)j * batch;
        for (int32_t b = 0; b < batch; b++) {
            if (rows[b] < 0)
                continue;
            const int16_t *e = ec_trace_experts(t, (size_t)rows[b], l);
            for (int32_t i = 0; i < t->k; i++)
                if (mark[e[i]] != st) {
                    mark[e[i]] = st;
                    s->ex[n] = e[i];
                    s->step_of[n] = st;
                    s->occ_off[(size_t)l * s->E + (size_t)e[i] + 1]++;
                    n++;
                }
        }
        int32_t u = (int32_t)(n - s->off[st]);
        s->max_union = EC_MAX(s->max_union, u);
    }
    s->off[s->S] = n;
    s->mean_union = (double)n / (double)s->S;
    ec_free(mark);
    size_t LE = (size_t)s->L * (size_t)s->E;
    for (size_t i = 0; i < LE; i++)
        s->occ_off[i + 1] += s->occ_off[i];
    int64_t *fill = ec_malloc(LE * sizeof *fill);
    if (!fill)
        return nomem(s, err);
    memcpy(fill, s->occ_off, LE * sizeof *fill);
    for (int64_t p = 0; p < n; p++) {
        size_t key = (size_t)(s->step_of[p] % s->L) * s->E + (size_t)s->ex[p];
        s->occ[fill[key]++] = p;
    }
    ec_free(fill);
    *out = s;
    return EC_OK;
}

int64_t ec_sim_n_steps(const ec_sim *s) { return s->S; }
int64_t ec_sim_n_tokens(const ec_sim *s) { return s->n_tok; }
int64_t ec_sim_n_skipped(const ec_sim *s) { return s->n_skipped; }
int32_t ec_sim_n_groups(const ec_sim *s) { return s->n_groups; }
int32_t ec_sim_max_union(const ec_sim *s) { return s->max_union; }

int64_t sim_next_use(const ec_sim *s, int64_t from, int32_t layer, int32_t expert)
{
    size_t key = (size_t)layer * s->E + (size_t)expert;
    int64_t lo = s->occ_off[key], hi = s->occ_off[key + 1];
    while (lo < hi) { /* first occurrence whose step >= from */
        int64_t mid = lo + (hi - lo) / 2;
        if (s->step_of[s->occ[mid]] < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->occ_off[key + 1] ? s->step_of[s->occ[lo]] : INT64_MAX;
}

ec_status ec_sim_fit_heldout(ec_sim *s, const char *name, const ec_predictor_opts *opts,
                             ec_error *err)
{
    if (s->n_groups < 2)
        return ec_error_set(err, EC_ERR_INVALID,
                            "simulate: fitting held out needs at least 2 batches of sequences "
                            "(have %d); pass a predictor fitted elsewhere",
                            s->n_groups);
    uint8_t *mask = ec_malloc(s->t->n_seqs);
    if (!mask)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    /* Groups are cut into F contiguous folds (one group each up to
     * EC_SIM_MAX_FOLDS): F fits, each on the sequences outside its fold, so
     * the cost grows linearly with the trace, not with its square. */
    int32_t F = sim_n_folds(s);
    ec_status st = EC_OK;
    sim_reuse_stale(s); /* the reuse models are fitted again */
    for (int32_t g = 0; g < s->n_groups; g++) {
        ec_predictor_destroy(s->owned[g]);
        s->owned[g] = NULL;
        s->pred[g] = NULL;
    }
    for (int32_t f = 0; f < F && st == EC_OK; f++) {
        int32_t g0, g1;
        sim_fold_groups(s, f, &g0, &g1);
        for (size_t q = 0; q < s->t->n_seqs; q++) {
            int32_t g = (int32_t)(q / (size_t)s->B);
            mask[q] = g < g0 || g >= g1;
        }
        ec_predictor *p;
        if ((st = ec_predictor_create(name, opts, &p, err)))
            break;
        if ((st = ec_predictor_fit(p, s->t, mask))) {
            ec_error_set(err, st, "predictor '%s': %s", name, ec_predictor_errmsg(p));
            ec_predictor_destroy(p);
            break;
        }
        s->owned[g0] = p; /* the fold's first group owns it, the others borrow */
        for (int32_t g = g0; g < g1; g++)
            s->pred[g] = p;
    }
    ec_free(mask);
    return st;
}

ec_status ec_sim_set_whatif_evict(ec_sim *s, int32_t tokens, ec_error *err)
{
    if (!s || tokens < 0)
        return ec_error_set(err, EC_ERR_INVALID, "simulate: what-if eviction window %d is below 0",
                            tokens);
    s->whatif_evict = tokens;
    return EC_OK;
}

ec_status ec_sim_set_predictor(ec_sim *s, const ec_predictor *p, ec_error *err)
{
    if (p && (ec_predictor_n_layers(p) != s->L || ec_predictor_n_experts(p) != s->E))
        return ec_error_set(err, EC_ERR_INVALID,
                            "predictor '%s' is fitted for %d layers x %d experts, the trace has "
                            "%d x %d",
                            ec_predictor_name(p), ec_predictor_n_layers(p),
                            ec_predictor_n_experts(p), s->L, s->E);
    for (int32_t g = 0; g < s->n_groups; g++)
        s->pred[g] = p;
    sim_reuse_stale(s);
    return EC_OK;
}
