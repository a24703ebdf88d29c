/*
 * logistic: multinomial logistic regression on sparse one-hot features of
 * the routing history, one model per horizon 1..max_horizon.
 *
 * For a history at layer N of token t and a target (layer T of token t or
 * t + 1), the active features are
 *   - the target layer T (a per-layer bias);
 *   - for each offset o < context: every expert e in this token's set at
 *     layer N - o, twice: as (o, e), shared by all target layers, and as
 *     (T, o, e), specific to the target layer (transitions between the
 *     experts of two layers differ from layer to layer);
 *   - for the last LOGISTIC_RECENT tokens b before the target token: every
 *     expert e of its set at layer T as (b, e), its primary again as (b, e);
 *   - for the LOGISTIC_NEIGHBOURS earlier tokens (within tokens_back) that
 *     routed most like token t at the context layers (ec_similarities; the
 *     more recent first among equals): the set at layer T of the token they
 *     lead to (themselves, or the token after them when the target is in
 *     the next token) as (j, similarity quarter, e), its primary as (j, e).
 * The model is softmax(W^T x) over the E experts, trained to the actual set
 * (1/k on each of its experts) by Adagrad (one step size per feature row)
 * with L2, in a shuffled order drawn from opts.seed: the same seed gives
 * the same model.
 *
 * opts.per_layer = 1 gives each target layer its own weights (the
 * layer-specific feature family is then dropped as redundant).
 */
#include "../core/rng.h"
#include "codec.h"
#include "history.h"
#include "replay.h"
#include "similar.h"

#include <math.h>
#include <string.h>

#define LOGISTIC_MAX_CONTEXT 8 /* <= EC_SIMILAR_MAX_CONTEXT */
#define LOGISTIC_MAX_BACK 1024
#define LOGISTIC_RECENT 4     /* recent tokens with their own features */
#define LOGISTIC_NEIGHBOURS 3 /* most similar earlier tokens with their own features */
#define SIM_LEVELS 4          /* similarity quarters */
/* Features active at once: bias, 2 per context expert, k + 1 per recent
 * token and per neighbour. */
#define LOGISTIC_MAX_ACTIVE                                                                        \
    (1 + 2 * LOGISTIC_MAX_CONTEXT * EC_MAX_K + (LOGISTIC_RECENT + LOGISTIC_NEIGHBOURS) * (EC_MAX_K + 1))

typedef struct logistic {
    int32_t H;         /* horizons fitted: 1..H */
    int32_t blocks;    /* weight blocks per horizon: L (per layer) or 1 */
    /* feature layout: first id of each family */
    uint32_t f_cur, f_cross, f_back, f_prim, f_nn, f_nnp, F;
    float *w;          /* [H][blocks][F][E] */
} logistic;

static size_t n_weights(const ec_predictor *p, const logistic *m)
{
    return (size_t)m->H * (size_t)m->blocks * (size_t)m->F * (size_t)p->n_experts;
}

/* Lays out the feature families for p's shape and options. */
static void layout(const ec_predictor *p, logistic *m)
{
    const uint32_t L = (uint32_t)p->n_layers, E = (uint32_t)p->n_experts;
    const uint32_t C = (uint32_t)p->opts.context, R = LOGISTIC_RECENT, J = LOGISTIC_NEIGHBOURS;
    const int per_layer = p->opts.per_layer != 0;
    m->H = EC_MIN(p->opts.max_horizon, p->n_layers);
    m->blocks = per_layer ? p->n_layers : 1;
    m->f_cur = per_layer ? 1 : L;
    m->f_cross = m->f_cur + C * E;
    m->f_back = m->f_cross + (per_layer ? 0 : L * C * E);
    m->f_prim = m->f_back + R * E;
    m->f_nn = m->f_prim + R * E;
    m->f_nnp = m->f_nn + J * SIM_LEVELS * E;
    m->F = m->f_nnp + J * E;
}

/*
 * The active feature ids for (history h, target T, next) into ids; returns
 * how many. Shared by fitting and prediction so that both see the same.
 */
static int32_t features(const ec_predictor *p, const logistic *m, const ec_history *h,
                        int32_t T, int next, uint32_t *ids)
{
    const int32_t K = p->k, E = p->n_experts, N = ec_history_layer(h);
    const int per_layer = m->blocks > 1;
    int32_t n = 0;
    ids[n++] = per_layer ? 0 : (uint32_t)T;
    for (int32_t o = 0; o < p->opts.context && N - o >= 0; o++) {
        const int16_t *set = ec_history_get(h, 0, N - o);
        if (!set)
            continue;
        for (int32_t j = 0; j < K; j++) {
            uint32_t oe = (uint32_t)(o * E + set[j]);
            ids[n++] = m->f_cur + oe;
            if (!per_layer)
                ids[n++] = m->f_cross + (uint32_t)T * (uint32_t)(p->opts.context * E) + oe;
        }
    }
    for (int32_t b = 1; b <= EC_MIN(LOGISTIC_RECENT, p->opts.tokens_back); b++) {
        const int16_t *set = ec_history_get(h, b - next, T);
        if (!set)
            continue;
        uint32_t base = (uint32_t)((b - 1) * E);
        for (int32_t j = 0; j < K; j++)
            ids[n++] = m->f_back + base + (uint32_t)set[j];
        ids[n++] = m->f_prim + base + (uint32_t)set[0];
    }
    /* The most similar earlier tokens (ties: the more recent), kept sorted. */
    float sims[LOGISTIC_MAX_BACK];
    int32_t nn_b[LOGISTIC_NEIGHBOURS];
    float nn_s[LOGISTIC_NEIGHBOURS];
    int32_t n_nn = 0;
    ec_similarities(h, N, p->opts.context, p->opts.tokens_back, sims);
    for (int32_t b = 1; b <= p->opts.tokens_back; b++) {
        float sim = sims[b - 1];
        if (sim <= 0.0f || (n_nn == LOGISTIC_NEIGHBOURS && sim <= nn_s[n_nn - 1]))
            continue;
        if (!ec_history_get(h, b - next, T))
            continue;
        int32_t i = n_nn < LOGISTIC_NEIGHBOURS ? n_nn++ : n_nn - 1;
        for (; i > 0 && sim > nn_s[i - 1]; i--) {
            nn_s[i] = nn_s[i - 1];
            nn_b[i] = nn_b[i - 1];
        }
        nn_s[i] = sim;
        nn_b[i] = b;
    }
    for (int32_t j = 0; j < n_nn; j++) {
        const int16_t *set = ec_history_get(h, nn_b[j] - next, T);
        int32_t level = EC_MIN(SIM_LEVELS - 1, (int32_t)(nn_s[j] * SIM_LEVELS));
        uint32_t base = m->f_nn + (uint32_t)((j * SIM_LEVELS + level) * E);
        for (int32_t q = 0; q < K; q++)
            ids[n++] = base + (uint32_t)set[q];
        ids[n++] = m->f_nnp + (uint32_t)(j * E + set[0]);
    }
    return n;
}

/* Logits of the active features into z[E] for weight block w[F][E]. */
static void logits(const float *w, int32_t E, const uint32_t *ids, int32_t n, float *z)
{
    memset(z, 0, (size_t)E * sizeof *z);
    for (int32_t i = 0; i < n; i++) {
        const float *row = w + (size_t)ids[i] * (size_t)E;
        for (int32_t e = 0; e < E; e++)
            z[e] += row[e];
    }
}

static void softmax(float *z, int32_t E)
{
    float mx = z[0];
    for (int32_t e = 1; e < E; e++)
        mx = z[e] > mx ? z[e] : mx;
    float sum = 0;
    for (int32_t e = 0; e < E; e++)
        sum += (z[e] = expf(z[e] - mx));
    for (int32_t e = 0; e < E; e++)
        z[e] /= sum;
}

static const float *block(const ec_predictor *p, const logistic *m, int32_t horizon, int32_t T)
{
    size_t b = (size_t)(horizon - 1) * (size_t)m->blocks + (size_t)(m->blocks > 1 ? T : 0);
    return m->w + b * (size_t)m->F * (size_t)p->n_experts;
}

static int logistic_predict(const ec_predictor *p, const ec_history *h, int32_t target,
                            int next_token, int32_t horizon, float *probs)
{
    const logistic *m = p->state;
    if (horizon > m->H || !m->w) {
        ec_predictor_prior(p, target, probs);
        return 0;
    }
    uint32_t ids[LOGISTIC_MAX_ACTIVE];
    int32_t n = features(p, m, h, target, next_token, ids);
    logits(block(p, m, horizon, target), p->n_experts, ids, n, probs);
    softmax(probs, p->n_experts);
    return 1;
}

/* ---- predictor ---------------------------------------------------------------- */

static ec_status logistic_init(ec_predictor *p)
{
    ec_predictor_opts *o = &p->opts;
    if (o->context <= 0)
        o->context = 3;
    if (o->tokens_back <= 0)
        o->tokens_back = 64;
    if (o->epochs <= 0)
        o->epochs = 4;
    if (o->learning_rate <= 0)
        o->learning_rate = 0.1;
    if (o->l2 <= 0)
        o->l2 = 1e-4;
    if (o->context > LOGISTIC_MAX_CONTEXT)
        return ec_predictor_fail(p, EC_ERR_INVALID, "context %d is above %d", o->context,
                                 LOGISTIC_MAX_CONTEXT);
    if (o->tokens_back > LOGISTIC_MAX_BACK)
        return ec_predictor_fail(p, EC_ERR_INVALID, "tokens_back %d is above %d",
                                 o->tokens_back, LOGISTIC_MAX_BACK);
    p->state = ec_calloc(1, sizeof(logistic));
    return p->state ? EC_OK : EC_ERR_NOMEM;
}

static void logistic_free(ec_predictor *p)
{
    logistic *m = p->state;
    if (m)
        ec_free(m->w);
    ec_free(m);
}

/* ---- fitting -------------------------------------------------------------------- */

/* Training examples of one horizon, features in CSR form. */
typedef struct examples {
    const ec_predictor *p;
    const logistic *m;
    int32_t horizon;
    uint32_t *ids;      /* all examples' feature ids */
    size_t n_ids, cap_ids;
    size_t *start;      /* [n + 1] */
    size_t *row;        /* [n] target row */
    int32_t *layer;     /* [n] target layer */
    size_t n, cap_start, cap_row, cap_layer;
} examples;

static ec_status collect(void *ctx, const ec_replay_pos *pos)
{
    examples *x = ctx;
    int32_t T;
    int next;
    if (!ec_replay_target(pos, x->horizon, &T, &next))
        return EC_OK;
    uint32_t ids[LOGISTIC_MAX_ACTIVE];
    int32_t n = features(x->p, x->m, pos->h, T, next, ids);
    if (ec_grow((void **)&x->ids, &x->cap_ids, x->n_ids + (size_t)n, sizeof *x->ids) ||
        ec_grow((void **)&x->start, &x->cap_start, x->n + 2, sizeof *x->start) ||
        ec_grow((void **)&x->row, &x->cap_row, x->n + 1, sizeof *x->row) ||
        ec_grow((void **)&x->layer, &x->cap_layer, x->n + 1, sizeof *x->layer))
        return EC_ERR_NOMEM;
    memcpy(x->ids + x->n_ids, ids, (size_t)n * sizeof *ids);
    x->start[x->n] = x->n_ids;
    x->n_ids += (size_t)n;
    x->start[x->n + 1] = x->n_ids;
    x->row[x->n] = pos->row + (size_t)next;
    x->layer[x->n] = T;
    x->n++;
    return EC_OK;
}

static void examples_free(examples *x)
{
    ec_free(x->ids);
    ec_free(x->start);
    ec_free(x->row);
    ec_free(x->layer);
}

/* Adagrad on the examples of one horizon, into the horizon's weights. */
static ec_status train(const ec_predictor *p, logistic *m, const ec_trace *t, const examples *x,
                       int32_t horizon)
{
    const int32_t E = p->n_experts, K = p->k;
    const float lr = (float)p->opts.learning_rate, l2 = (float)p->opts.l2;
    size_t per_h = (size_t)m->blocks * (size_t)m->F * (size_t)E;
    float *w = m->w + (size_t)(horizon - 1) * per_h;
    float *g2 = ec_calloc((size_t)m->blocks * (size_t)m->F, sizeof *g2); /* per feature row */
    size_t *order = ec_malloc(EC_MAX(x->n, 1) * sizeof *order);
    float *z = ec_malloc((size_t)E * sizeof *z);
    if (!g2 || !order || !z) {
        ec_free(g2);
        ec_free(order);
        ec_free(z);
        return EC_ERR_NOMEM;
    }
    ec_rng rng;
    ec_rng_seed(&rng, p->opts.seed * 0x100000001b3ull + (uint64_t)horizon);
    for (size_t i = 0; i < x->n; i++)
        order[i] = i;
    for (int32_t ep = 0; ep < p->opts.epochs; ep++) {
        for (size_t i = x->n; i > 1; i--) {
            size_t j = (size_t)ec_rng_below(&rng, (uint32_t)EC_MIN(i, UINT32_MAX));
            size_t tmp = order[i - 1];
            order[i - 1] = order[j];
            order[j] = tmp;
        }
        for (size_t oi = 0; oi < x->n; oi++) {
            size_t i = order[oi];
            const uint32_t *ids = x->ids + x->start[i];
            int32_t n = (int32_t)(x->start[i + 1] - x->start[i]);
            size_t blk = (size_t)(m->blocks > 1 ? x->layer[i] : 0) * (size_t)m->F;
            float *wb = w + blk * (size_t)E, *gb = g2 + blk;
            logits(wb, E, ids, n, z);
            softmax(z, E);
            const int16_t *actual = ec_trace_experts(t, x->row[i], x->layer[i]);
            float sq = 0.0f;
            for (int32_t j = 0; j < K; j++)
                z[actual[j]] -= 1.0f / (float)K; /* z = p - y: the gradient on the logits */
            for (int32_t e = 0; e < E; e++)
                sq += z[e] * z[e];
            sq /= (float)E; /* mean squared gradient of a row (the L2 term left out) */
            for (int32_t a = 0; a < n; a++) {
                float *wr = wb + (size_t)ids[a] * (size_t)E;
                gb[ids[a]] += sq;
                float step = lr / (sqrtf(gb[ids[a]]) + 1e-6f);
                for (int32_t e = 0; e < E; e++)
                    wr[e] -= step * (z[e] + l2 * wr[e]);
            }
        }
    }
    ec_free(g2);
    ec_free(order);
    ec_free(z);
    return EC_OK;
}

static ec_status logistic_fit(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask)
{
    logistic *m = p->state;
    ec_free(m->w);
    m->w = NULL;
    layout(p, m);
    size_t nw = n_weights(p, m);
    m->w = ec_calloc(EC_MAX(nw, 1), sizeof *m->w);
    if (!m->w)
        return ec_predictor_fail(p, EC_ERR_NOMEM, "out of memory for %zu weights", nw);
    ec_status s = EC_OK;
    for (int32_t hz = 1; hz <= m->H && !s; hz++) {
        examples x = {.p = p, .m = m, .horizon = hz};
        s = ec_replay_train(t, seq_mask, p->opts.tokens_back + 1, collect, &x);
        if (!s)
            s = train(p, m, t, &x, hz);
        examples_free(&x);
    }
    if (s) {
        ec_free(m->w);
        m->w = NULL;
    }
    return s;
}

/* ---- model file ------------------------------------------------------------------ */

static ec_status logistic_save(const ec_predictor *p, cJSON *model)
{
    const logistic *m = p->state;
    return cJSON_AddNumberToObject(model, "horizons", m->H) &&
                   cJSON_AddNumberToObject(model, "features", m->F) &&
                   cJSON_AddItemToObjectCS(model, "weights", ec_json_b64_f32(m->w, n_weights(p, m)))
               ? EC_OK
               : EC_ERR_NOMEM;
}

static ec_status logistic_load(ec_predictor *p, const cJSON *model, ec_error *err)
{
    logistic *m = p->state;
    long long H, F;
    ec_status s;
    layout(p, m);
    if ((s = ec_json_read_int(model, "horizons", 1, p->n_layers, &H, err)) ||
        (s = ec_json_read_int(model, "features", 1, UINT32_MAX, &F, err)))
        return s;
    if (H != m->H || F != m->F)
        return ec_error_set(err, EC_ERR_PARSE,
                            "field 'model.features': %lld features x %lld horizons, but the "
                            "options give %u x %d",
                            F, H, m->F, m->H);
    size_t nw = n_weights(p, m);
    const cJSON *weights = cJSON_GetObjectItemCaseSensitive(model, "weights");
    if ((s = ec_json_b64_check(weights, nw * sizeof *m->w, "weights", err)))
        return s;
    m->w = ec_malloc(EC_MAX(nw, 1) * sizeof *m->w);
    if (!m->w)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory for %zu weights", nw);
    return ec_json_read_b64_f32(cJSON_GetObjectItemCaseSensitive(model, "weights"), m->w, nw,
                                "weights", err);
}

const ec_predictor_vt ec_logistic_vt = {
    .name = "logistic",
    .init = logistic_init,
    .free_state = logistic_free,
    .fit = logistic_fit,
    .predict = logistic_predict,
    .save = logistic_save,
    .load = logistic_load,
};
