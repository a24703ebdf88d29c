/*
 * mix: a weighted average of the ngram, temporal and logistic predictors,
 * the weights fitted per horizon on data the components did not see.
 *
 * Fitting holds out part of the training data: every third training
 * sequence when there are at least three, else the last third of every
 * sequence's tokens (which still serve as context, never as targets of the
 * component fits). The components are fitted on the rest, their
 * distributions on the held-out cases are collected, and for every horizon
 * the weights on the simplex grid of step 1/MIX_STEPS maximise recall@k +
 * top-1 (k of the trace), the log-likelihood breaking ties. The components
 * are then refitted on all the training data.
 *
 * The components take the mix's options; the model file holds the weights
 * and each component's own model.
 */
#include "replay.h"

#include <math.h>
#include <string.h>

#define MIX_N 3
#define MIX_STEPS 10
#define MIX_MAX_EXPERTS 4096 /* the stack scratch of predict */
#define MIX_FIT_CASES 4000   /* held-out cases sampled per horizon */

static const char *const COMPONENTS[MIX_N] = {"ngram", "temporal", "logistic"};

typedef struct mix {
    ec_predictor *c[MIX_N];
    int32_t H;
    float *w; /* [H][MIX_N] */
} mix;

static ec_status mix_init(ec_predictor *p)
{
    mix *m = ec_calloc(1, sizeof *m);
    if (!m)
        return EC_ERR_NOMEM;
    p->state = m;
    for (int i = 0; i < MIX_N; i++) {
        ec_error err;
        ec_status s = ec_predictor_create(COMPONENTS[i], &p->opts, &m->c[i], &err);
        if (s)
            return ec_predictor_fail(p, s, "component %s: %s", COMPONENTS[i], err.message);
    }
    /* The history must serve the deepest component. */
    for (int i = 0; i < MIX_N; i++)
        p->opts.tokens_back = EC_MAX(p->opts.tokens_back, m->c[i]->opts.tokens_back);
    return EC_OK;
}

static void mix_free(ec_predictor *p)
{
    mix *m = p->state;
    if (!m)
        return;
    for (int i = 0; i < MIX_N; i++)
        ec_predictor_destroy(m->c[i]);
    ec_free(m->w);
    ec_free(m);
}

/* w-weighted average of the components' distributions into probs. */
static int combine(const ec_predictor *p, const float *w, const ec_history *h, int32_t horizon,
                   float *probs)
{
    const mix *m = p->state;
    const int32_t E = p->n_experts;
    float tmp[MIX_MAX_EXPERTS];
    int informed = 0, first = 1;
    for (int i = 0; i < MIX_N; i++) {
        if (w[i] <= 0.0f)
            continue;
        float *dst = first ? probs : tmp;
        informed |= ec_predictor_predict(m->c[i], h, horizon, dst) > 0;
        if (first) {
            for (int32_t e = 0; e < E; e++)
                probs[e] *= w[i];
            first = 0;
        } else {
            for (int32_t e = 0; e < E; e++)
                probs[e] += w[i] * tmp[e];
        }
    }
    ec_normalize(probs, E);
    return informed;
}

static int mix_predict(const ec_predictor *p, const ec_history *h, int32_t target, int next_token,
                       int32_t horizon, float *probs)
{
    (void)next_token;
    const mix *m = p->state;
    if (!m->w || horizon > m->H) {
        ec_predictor_prior(p, target, probs);
        return 0;
    }
    return combine(p, m->w + (size_t)(horizon - 1) * MIX_N, h, horizon, probs);
}

/* ---- fitting -------------------------------------------------------------------- */

typedef struct heldout {
    const ec_predictor *p;
    const mix *m;
    const uint8_t *val_seq;  /* [n_seqs] 1: held-out sequence; NULL: split by tokens */
    const size_t *cut;       /* [n_seqs] token split: first held-out row */
    int32_t horizon;
    size_t stride, seen;
    float *probs;            /* [n][MIX_N][E] */
    size_t *row;             /* [n] target row */
    int32_t *layer;          /* [n] */
    size_t n, cap_p, cap_r, cap_l;
} heldout;

static int is_heldout(const heldout *x, const ec_replay_pos *pos)
{
    return x->val_seq ? x->val_seq[pos->seq] != 0 : pos->row >= x->cut[pos->seq];
}

static ec_status count_cases(void *ctx, const ec_replay_pos *pos)
{
    heldout *x = ctx;
    int32_t T;
    int next;
    if (is_heldout(x, pos) && ec_replay_target(pos, x->horizon, &T, &next))
        x->seen++;
    return EC_OK;
}

static ec_status collect_cases(void *ctx, const ec_replay_pos *pos)
{
    heldout *x = ctx;
    const int32_t E = x->p->n_experts;
    int32_t T;
    int next;
    if (!is_heldout(x, pos) || !ec_replay_target(pos, x->horizon, &T, &next) ||
        x->seen++ % x->stride)
        return EC_OK;
    size_t per = (size_t)MIX_N * (size_t)E;
    if (ec_grow((void **)&x->probs, &x->cap_p, (x->n + 1) * per, sizeof *x->probs) ||
        ec_grow((void **)&x->row, &x->cap_r, x->n + 1, sizeof *x->row) ||
        ec_grow((void **)&x->layer, &x->cap_l, x->n + 1, sizeof *x->layer))
        return EC_ERR_NOMEM;
    for (int i = 0; i < MIX_N; i++)
        ec_predictor_predict(x->m->c[i], pos->h, x->horizon, x->probs + x->n * per + (size_t)i * (size_t)E);
    x->row[x->n] = pos->row + (size_t)next;
    x->layer[x->n] = T;
    x->n++;
    return EC_OK;
}

/* The objective of weights w on the held-out cases. */
static double score(const heldout *x, const ec_trace *t, const float *w, float *probs,
                    int32_t *idx)
{
    const int32_t E = x->p->n_experts, K = x->p->k;
    double sc = 0, ll = 0;
    for (size_t c = 0; c < x->n; c++) {
        const float *pc = x->probs + c * (size_t)MIX_N * (size_t)E;
        for (int32_t e = 0; e < E; e++) {
            float v = 0;
            for (int i = 0; i < MIX_N; i++)
                v += w[i] * pc[(size_t)i * (size_t)E + (size_t)e];
            probs[e] = v;
        }
        ec_rank(probs, E, idx, K);
        const int16_t *actual = ec_trace_experts(t, x->row[c], x->layer[c]);
        int32_t hits = 0;
        for (int32_t a = 0; a < K; a++)
            for (int32_t j = 0; j < K; j++)
                hits += idx[a] == actual[j];
        sc += (double)hits / K + (idx[0] == actual[0]);
        for (int32_t j = 0; j < K; j++)
            ll += log(fmax(probs[actual[j]], 1e-12));
    }
    return x->n ? sc / (double)x->n + 1e-3 * ll / ((double)x->n * K) : -INFINITY;
}

/* Best weights on the simplex grid for the collected cases. */
static void best_weights(const heldout *x, const ec_trace *t, float *probs, int32_t *idx,
                         float *out)
{
    double best = -INFINITY;
    for (int a = 0; a <= MIX_STEPS; a++)
        for (int b = 0; a + b <= MIX_STEPS; b++) {
            float w[MIX_N] = {(float)a / MIX_STEPS, (float)b / MIX_STEPS,
                              (float)(MIX_STEPS - a - b) / MIX_STEPS};
            double v = score(x, t, w, probs, idx);
            if (v > best + 1e-12) {
                best = v;
                memcpy(out, w, sizeof w);
            }
        }
}

static ec_status fit_all(mix *m, const ec_trace *t, const uint8_t *mask)
{
    for (int i = 0; i < MIX_N; i++) {
        ec_status s = ec_predictor_fit(m->c[i], t, mask);
        if (s)
            return s;
    }
    return EC_OK;
}

static ec_status mix_fit(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask)
{
    mix *m = p->state;
    const int32_t E = p->n_experts, H = EC_MIN(p->opts.max_horizon, p->n_layers);
    if (E > MIX_MAX_EXPERTS)
        return ec_predictor_fail(p, EC_ERR_RANGE, "mix supports at most %d experts, not %d",
                                 MIX_MAX_EXPERTS, E);
    size_t n_train = 0;
    for (size_t q = 0; q < t->n_seqs; q++)
        n_train += !seq_mask || seq_mask[q];
    uint8_t *fit_mask = ec_calloc(EC_MAX(t->n_seqs, 1), 1);
    uint8_t *val_seq = ec_calloc(EC_MAX(t->n_seqs, 1), 1);
    size_t *cut = ec_calloc(EC_MAX(t->n_seqs, 1), sizeof *cut);
    ec_seq *view_seqs = ec_malloc(EC_MAX(t->n_seqs, 1) * sizeof *view_seqs);
    float *w = ec_malloc((size_t)H * MIX_N * sizeof *w);
    float *probs = ec_malloc((size_t)E * sizeof *probs);
    int32_t *idx = ec_malloc((size_t)p->k * sizeof *idx);
    heldout x = {.p = p, .m = m};
    ec_status s = fit_mask && val_seq && cut && view_seqs && w && probs && idx ? EC_OK
                                                                              : EC_ERR_NOMEM;
    ec_trace view = *t;
    if (!s) {
        size_t used = 0;
        memcpy(view_seqs, t->seqs, t->n_seqs * sizeof *view_seqs);
        for (size_t q = 0; q < t->n_seqs; q++) {
            if (seq_mask && !seq_mask[q])
                continue;
            if (n_train >= 3) {
                val_seq[q] = used++ % 3 == 2;
                fit_mask[q] = !val_seq[q];
            } else {
                fit_mask[q] = 1;
                view_seqs[q].n_rows = t->seqs[q].n_rows * 2 / 3;
                cut[q] = t->seqs[q].row0 + view_seqs[q].n_rows;
            }
        }
        view.seqs = view_seqs;
        x.val_seq = n_train >= 3 ? val_seq : NULL;
        x.cut = cut;
        s = fit_all(m, n_train >= 3 ? t : &view, fit_mask);
    }
    int32_t depth = EC_MAX(p->opts.tokens_back, 1);
    const uint8_t *val_mask = n_train >= 3 ? val_seq : fit_mask;
    for (int32_t hz = 1; hz <= H && !s; hz++) {
        x.horizon = hz;
        x.n = x.seen = 0;
        s = ec_replay_train(t, val_mask, depth, count_cases, &x);
        x.stride = x.seen / MIX_FIT_CASES + 1;
        x.seen = 0;
        if (!s)
            s = ec_replay_train(t, val_mask, depth, collect_cases, &x);
        if (!s && x.n == 0) /* nothing held out: an even mix */
            for (int i = 0; i < MIX_N; i++)
                w[(size_t)(hz - 1) * MIX_N + (size_t)i] = 1.0f / MIX_N;
        else if (!s)
            best_weights(&x, t, probs, idx, w + (size_t)(hz - 1) * MIX_N);
    }
    if (!s)
        s = fit_all(m, t, seq_mask);
    if (!s) {
        ec_free(m->w);
        m->w = w;
        m->H = H;
        w = NULL;
    }
    ec_free(fit_mask);
    ec_free(val_seq);
    ec_free(cut);
    ec_free(view_seqs);
    ec_free(w);
    ec_free(probs);
    ec_free(idx);
    ec_free(x.probs);
    ec_free(x.row);
    ec_free(x.layer);
    return s;
}

/* ---- model file ------------------------------------------------------------------ */

static ec_status mix_save(const ec_predictor *p, cJSON *model)
{
    const mix *m = p->state;
    cJSON *w = ec_json_float_array(m->w, (size_t)m->H * MIX_N);
    if (!w || !cJSON_AddItemToObjectCS(model, "weights", w)) {
        cJSON_Delete(w);
        return EC_ERR_NOMEM;
    }
    if (!cJSON_AddNumberToObject(model, "horizons", m->H))
        return EC_ERR_NOMEM;
    cJSON *comps = cJSON_AddObjectToObject(model, "components");
    for (int i = 0; comps && i < MIX_N; i++) {
        cJSON *c = cJSON_CreateObject();
        if (!c || !cJSON_AddItemToObjectCS(comps, COMPONENTS[i], c)) {
            cJSON_Delete(c);
            return EC_ERR_NOMEM;
        }
        ec_status s = m->c[i]->vt->save ? m->c[i]->vt->save(m->c[i], c) : EC_OK;
        if (s)
            return s;
    }
    return comps ? EC_OK : EC_ERR_NOMEM;
}

static ec_status mix_load(ec_predictor *p, const cJSON *model, ec_error *err)
{
    mix *m = p->state;
    ec_status s;
    if (p->n_experts > MIX_MAX_EXPERTS)
        return ec_error_set(err, EC_ERR_PARSE, "field 'n_experts': mix supports at most %d",
                            MIX_MAX_EXPERTS);
    const cJSON *hz = cJSON_GetObjectItemCaseSensitive(model, "horizons");
    const cJSON *comps = cJSON_GetObjectItemCaseSensitive(model, "components");
    if (!cJSON_IsNumber(hz) || hz->valuedouble < 1 || hz->valuedouble > p->n_layers ||
        hz->valuedouble != floor(hz->valuedouble))
        return ec_error_set(err, EC_ERR_PARSE, "field 'model.horizons': expected 1 to %d",
                            p->n_layers);
    m->H = (int32_t)hz->valuedouble;
    size_t nw = (size_t)m->H * MIX_N;
    m->w = ec_malloc(nw * sizeof *m->w);
    if (!m->w)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    const cJSON *wa = cJSON_GetObjectItemCaseSensitive(model, "weights"), *v;
    if (!cJSON_IsArray(wa) || (size_t)cJSON_GetArraySize(wa) != nw)
        return ec_error_set(err, EC_ERR_PARSE,
                            "field 'model.weights': expected %zu numbers (%d horizons x %d)", nw,
                            m->H, MIX_N);
    size_t at = 0;
    cJSON_ArrayForEach(v, wa)
    {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0.0 && v->valuedouble <= 1.0))
            return ec_error_set(err, EC_ERR_PARSE,
                                "field 'model.weights': element %zu is not a number in [0, 1]", at);
        m->w[at++] = (float)v->valuedouble;
    }
    if (!cJSON_IsObject(comps))
        return ec_error_set(err, EC_ERR_PARSE, "field 'model.components': expected an object");
    size_t n = (size_t)p->n_layers * (size_t)p->n_experts;
    for (int i = 0; i < MIX_N; i++) {
        ec_predictor *c = m->c[i];
        const cJSON *cm = cJSON_GetObjectItemCaseSensitive(comps, COMPONENTS[i]);
        if (!cJSON_IsObject(cm))
            return ec_error_set(err, EC_ERR_PARSE,
                                "field 'model.components.%s': expected an object", COMPONENTS[i]);
        c->n_layers = p->n_layers;
        c->n_experts = p->n_experts;
        c->k = p->k;
        c->prior = ec_malloc(n * sizeof *c->prior);
        if (!c->prior)
            return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        memcpy(c->prior, p->prior, n * sizeof *c->prior);
        if (c->vt->load && (s = c->vt->load(c, cm, err)))
            return s;
    }
    return EC_OK;
}

const ec_predictor_vt ec_mix_vt = {
    .name = "mix",
    .init = mix_init,
    .free_state = mix_free,
    .fit = mix_fit,
    .predict = mix_predict,
    .save = mix_save,
    .load = mix_load,
};
