/*
 * temporal: the experts that earlier tokens used at the target layer,
 * weighted by how recent they are and by how alike they routed.
 *
 * Routing of neighbouring tokens is alike ("the same experts as the
 * previous token at this layer" beats every rule built on this token's
 * earlier layers), and a token that routed like the current one at the
 * layers seen so far tends to route like it at the next ones too. For the
 * current token t observed up to layer N and a target (token t + next,
 * layer T), every earlier token b = 1..tokens_back contributes the experts
 * of its source token s = t - b + next at layer T with weight
 *
 *   w_b = decay^(b-1) + beta * sim_b^power
 *
 * where sim_b in [0, 1] is the share of experts token t - b had in common
 * with token t at layers N - context + 1 .. N. (When the target is in the
 * next token, the source is the token that FOLLOWED the similar one.) The
 * source's primary votes w_b, its other experts w_b * secondary, and its
 * experts at layers T - 1 and T + 1 are added with weight w_b * neighbour.
 * The prediction is (1 - prior_mix) * votes / sum(votes) + prior_mix *
 * prior(T); with no earlier token it is the prior (and abstains).
 *
 * The six weights are fitted per horizon 1..max_horizon (a larger horizon
 * uses the largest fitted; see temporal_fit) by coordinate search over small grids,
 * maximising recall@k + top-1 (k of the trace), the log-likelihood of the
 * actual set breaking ties, on a sample of the training cases scored with
 * a prior that did not see them (see half_priors).
 */
#include "history.h"
#include "replay.h"
#include "similar.h"

#include <math.h>
#include <string.h>

#define TEMPORAL_MAX_BACK 1024
#define TEMPORAL_MAX_CONTEXT EC_SIMILAR_MAX_CONTEXT
#define TEMPORAL_FIT_CELLS 3000 /* training cases sampled per horizon for the search */

typedef struct temporal_w {
    float decay, beta, secondary, neighbour, prior_mix;
    int32_t power;
} temporal_w;

static const temporal_w DEFAULT_W = {
    .decay = 0.3f, .beta = 1.0f, .secondary = 0.75f, .neighbour = 0.0f, .prior_mix = 0.05f,
    .power = 2};

typedef struct temporal {
    int32_t H;        /* horizons fitted */
    temporal_w *w;    /* [H] */
} temporal;

static ec_status temporal_init(ec_predictor *p)
{
    if (p->opts.tokens_back <= 0)
        p->opts.tokens_back = 64;
    if (p->opts.context <= 0)
        p->opts.context = 3;
    if (p->opts.tokens_back > TEMPORAL_MAX_BACK)
        return ec_predictor_fail(p, EC_ERR_INVALID, "tokens_back %d is above %d",
                                 p->opts.tokens_back, TEMPORAL_MAX_BACK);
    if (p->opts.context > TEMPORAL_MAX_CONTEXT)
        return ec_predictor_fail(p, EC_ERR_INVALID, "context %d is above %d", p->opts.context,
                                 TEMPORAL_MAX_CONTEXT);
    temporal *st = ec_calloc(1, sizeof *st);
    if (!st)
        return EC_ERR_NOMEM;
    p->state = st;
    return EC_OK;
}

static void temporal_free(ec_predictor *p)
{
    temporal *st = p->state;
    if (st)
        ec_free(st->w);
    ec_free(st);
}

/* The weight of an earlier token from its rank-decay factor and similarity. */
static inline float token_weight(const temporal_w *w, float decay_b, float sim)
{
    float v = decay_b;
    if (sim > 0.0f && w->beta > 0.0f) {
        float s = sim;
        for (int32_t i = 1; i < w->power; i++)
            s *= sim;
        v += w->beta * s;
    }
    return v;
}

/* Adds the votes of one source token (its sets at T, T - 1, T + 1; NULL
 * when unknown) with weight wb into probs; returns the mass added. */
static inline float vote(const temporal_w *w, float wb, const int16_t *at, const int16_t *below,
                         const int16_t *above, int32_t K, float *probs)
{
    float mass = 0.0f;
    const int16_t *sets[3] = {at, below, above};
    for (int s = 0; s < 3; s++) {
        float ws = s == 0 ? wb : wb * w->neighbour;
        if (!sets[s] || ws <= 0.0f)
            continue;
        for (int32_t j = 0; j < K; j++) {
            float v = j == 0 ? ws : ws * w->secondary;
            probs[sets[s][j]] += v;
            mass += v;
        }
    }
    return mass;
}

/* Turns the votes (total mass) into the prediction with the layer's prior. */
static int finish(const temporal_w *w, const float *prior, int32_t E, float mass, float *probs)
{
    if (!(mass > 0.0f)) {
        memcpy(probs, prior, (size_t)E * sizeof *probs);
        return 0;
    }
    float a = (1.0f - w->prior_mix) / mass;
    for (int32_t e = 0; e < E; e++)
        probs[e] = a * probs[e] + w->prior_mix * prior[e];
    ec_normalize(probs, E);
    return 1;
}

/* The set of (slot, layer) when the layer exists, else NULL. */
static inline const int16_t *set_at(const ec_history *h, int32_t slot, int32_t layer)
{
    return layer >= 0 && layer < h->L ? ec_hist_set(h, slot, layer) : NULL;
}

static int temporal_eval(const ec_predictor *p, const temporal_w *w, const float *prior,
                         const ec_history *h, int32_t T, int next, float *probs)
{
    const int32_t E = p->n_experts, K = p->k, W = p->opts.tokens_back;
    const int nb = w->neighbour > 0.0f;
    float sims[TEMPORAL_MAX_BACK];
    if (w->beta > 0.0f)
        ec_similarities(h, ec_history_layer(h), p->opts.context, W, sims);
    memset(probs, 0, (size_t)E * sizeof *probs);
    float mass = 0.0f, decay_b = 1.0f;
    for (int32_t b = 1; b <= W; b++, decay_b *= w->decay) {
        int32_t slot = ec_hist_slot(h, b - next);
        if (slot < 0)
            break;
        const int16_t *at = ec_hist_set(h, slot, T);
        if (!at)
            continue;
        float wb = token_weight(w, decay_b, w->beta > 0.0f ? sims[b - 1] : 0.0f);
        if (wb <= 0.0f)
            continue;
        mass += vote(w, wb, at, nb ? set_at(h, slot, T - 1) : NULL,
                     nb ? set_at(h, slot, T + 1) : NULL, K, probs);
    }
    return finish(w, prior, E, mass, probs);
}

static int temporal_predict(const ec_predictor *p, const ec_history *h, int32_t target,
                            int next_token, int32_t horizon, float *probs)
{
    const temporal *st = p->state;
    const temporal_w *w = st->w ? &st->w[EC_MIN(horizon, st->H) - 1] : &DEFAULT_W;
    return temporal_eval(p, w, p->prior + (size_t)target * (size_t)p->n_experts, h, target,
                         next_token, probs);
}

/* ---- fitting ---------------------------------------------------------------- */

/*
 * The search scores weights on cached training cells: for each sampled case
 * its actual set, its source rows and the similarity of every earlier token
 * (computed once by ec_similarities() on the replayed history). The prior used
 * for a cell comes from the other half of the training data: training
 * cells are split in two halves (alternate sequences, or the two halves of
 * the tokens when there is one sequence) and each is scored with the
 * prior of the other. With the in-sample prior the search over-trusts the
 * prior, which transfers badly to new prompts.
 */
typedef struct cell {
    size_t row;        /* current token's row */
    size_t row0;       /* first row of its sequence */
    int32_t N, T, next, half; /* observed layer, target layer, next token, prior half */
} cell;

typedef struct fitter {
    const ec_predictor *p;
    const ec_trace *t;
    int32_t horizon, W;
    size_t stride, seen;  /* keep every stride-th case */
    cell *cells;
    float *sims;          /* [n][W] similarity of token b (-1 unknown) */
    size_t n, cap_cells, cap_sims;
    float *half_prior[2]; /* [L][E] */
    size_t *half_of_seq;  /* [n_seqs] 0/1, or 2: split by tokens */
    float *probs;         /* [E] */
    int32_t *idx;         /* [k] */
} fitter;

static int half_of(const fitter *f, size_t seq, size_t row)
{
    size_t h = f->half_of_seq[seq];
    if (h < 2)
        return (int)h;
    const ec_seq *sq = &f->t->seqs[seq];
    return row - sq->row0 >= sq->n_rows / 2;
}

static ec_status count_half(void *ctx, const ec_replay_pos *pos)
{
    fitter *f = ctx;
    const int32_t E = f->p->n_experts;
    float *pr = f->half_prior[half_of(f, pos->seq, pos->row)] + (size_t)pos->layer * (size_t)E;
    const int16_t *e = ec_history_get(pos->h, 0, pos->layer);
    for (int32_t j = 0; j < f->p->k; j++)
        pr[e[j]] += 1.0f;
    return EC_OK;
}

static ec_status half_priors(fitter *f, const uint8_t *mask)
{
    const ec_predictor *p = f->p;
    const ec_trace *t = f->t;
    size_t n = (size_t)p->n_layers * (size_t)p->n_experts, used = 0;
    f->half_of_seq = ec_malloc(EC_MAX(t->n_seqs, 1) * sizeof *f->half_of_seq);
    f->half_prior[0] = ec_calloc(n, sizeof *f->half_prior[0]);
    f->half_prior[1] = ec_calloc(n, sizeof *f->half_prior[1]);
    if (!f->half_of_seq || !f->half_prior[0] || !f->half_prior[1])
        return EC_ERR_NOMEM;
    for (size_t q = 0; q < t->n_seqs; q++)
        if (!mask || mask[q])
            f->half_of_seq[q] = used++ % 2;
    if (used < 2)
        for (size_t q = 0; q < t->n_seqs; q++)
            f->half_of_seq[q] = 2;
    ec_status s = ec_replay_train(t, mask, 0, count_half, f);
    for (int half = 0; half < 2 && !s; half++)
        for (int32_t l = 0; l < p->n_layers; l++) {
            float *row = f->half_prior[half] + (size_t)l * (size_t)p->n_experts;
            for (int32_t e = 0; e < p->n_experts; e++)
                row[e] += (float)p->opts.smoothing;
            ec_normalize(row, p->n_experts);
        }
    return s;
}

static ec_status count_cells(void *ctx, const ec_replay_pos *pos)
{
    fitter *f = ctx;
    int32_t T;
    int next;
    if (pos->row > pos->t->seqs[pos->seq].row0 && ec_replay_target(pos, f->horizon, &T, &next))
        f->seen++;
    return EC_OK;
}

static ec_status collect_cells(void *ctx, const ec_replay_pos *pos)
{
    fitter *f = ctx;
    int32_t T;
    int next;
    const size_t row0 = pos->t->seqs[pos->seq].row0;
    if (pos->row == row0 || !ec_replay_target(pos, f->horizon, &T, &next))
        return EC_OK;
    if (f->seen++ % f->stride)
        return EC_OK;
    if (ec_grow((void **)&f->cells, &f->cap_cells, f->n + 1, sizeof *f->cells) ||
        ec_grow((void **)&f->sims, &f->cap_sims, (f->n + 1) * (size_t)f->W, sizeof *f->sims))
        return EC_ERR_NOMEM;
    f->cells[f->n] = (cell){.row = pos->row, .row0 = row0, .N = pos->layer, .T = T, .next = next,
                            .half = half_of(f, pos->seq, pos->row + (size_t)next)};
    float *sim = f->sims + f->n * (size_t)f->W;
    ec_similarities(pos->h, pos->layer, f->p->opts.context, f->W, sim);
    for (int32_t b = 1; b <= f->W; b++)
        if ((size_t)b > pos->row - row0)
            sim[b - 1] = -1.0f; /* before the sequence (the history was reset) */
    f->n++;
    return EC_OK;
}

/* The set of (row, layer) as the history at cell c would hold it: NULL
 * when missing, outside the layers, or not yet observed in c's token. */
static const int16_t *trace_set(const ec_trace *t, const cell *c, size_t row, int32_t layer)
{
    if (layer < 0 || layer >= t->n_layers || (row == c->row && layer > c->N))
        return NULL;
    const int16_t *e = ec_trace_experts(t, row, layer);
    return e[0] < 0 ? NULL : e;
}

/* The objective of weights w over the cached cells. */
static double objective(fitter *f, const temporal_w *w)
{
    const ec_predictor *p = f->p;
    const ec_trace *t = f->t;
    const int32_t E = p->n_experts, K = p->k;
    const int nb = w->neighbour > 0.0f;
    double score = 0, loglik = 0;
    for (size_t i = 0; i < f->n; i++) {
        const cell *c = &f->cells[i];
        const float *sim = f->sims + i * (size_t)f->W;
        memset(f->probs, 0, (size_t)E * sizeof *f->probs);
        float mass = 0.0f, decay_b = 1.0f;
        for (int32_t b = 1; b <= f->W; b++, decay_b *= w->decay) {
            if ((size_t)b - (size_t)c->next > c->row - c->row0)
                break;
            size_t src = c->row - (size_t)b + (size_t)c->next;
            const int16_t *at = trace_set(t, c, src, c->T);
            if (!at)
                continue;
            float wb = token_weight(w, decay_b, w->beta > 0.0f ? sim[b - 1] : 0.0f);
            if (wb <= 0.0f)
                continue;
            mass += vote(w, wb, at, nb ? trace_set(t, c, src, c->T - 1) : NULL,
                         nb ? trace_set(t, c, src, c->T + 1) : NULL, K, f->probs);
        }
        finish(w, f->half_prior[1 - c->half] + (size_t)c->T * (size_t)E, E, mass, f->probs);
        const int16_t *actual = ec_trace_experts(t, c->row + (size_t)c->next, c->T);
        ec_rank(f->probs, E, f->idx, K);
        int32_t hits = 0;
        for (int32_t a = 0; a < K; a++)
            for (int32_t j = 0; j < K; j++)
                hits += f->idx[a] == actual[j];
        score += (double)hits / K + (f->idx[0] == actual[0]);
        for (int32_t j = 0; j < K; j++)
            loglik += log(fmax(f->probs[actual[j]], 1e-12));
    }
    return f->n ? score / (double)f->n + 1e-3 * loglik / ((double)f->n * K) : -INFINITY;
}

/* Coordinate search from `start`: `rounds` passes over the six weights. */
static temporal_w search(fitter *f, temporal_w start, int rounds)
{
    static const float decays[] = {0.0f, 0.3f, 0.6f, 0.85f};
    static const float betas[] = {0.0f, 0.5f, 1.0f, 2.0f, 4.0f};
    static const float powers[] = {1, 2, 4, 8};
    static const float secondaries[] = {0.25f, 0.5f, 0.75f, 1.0f};
    static const float neighbours[] = {0.0f, 0.1f, 0.3f};
    static const float mixes[] = {0.01f, 0.05f, 0.1f, 0.2f, 0.35f};
    static const float *const grids[] = {decays, betas, powers, secondaries, neighbours, mixes};
    static const size_t sizes[] = {4, 5, 4, 4, 3, 5};
    temporal_w best = start;
    double best_v = objective(f, &best);
    for (int round = 0; round < rounds; round++)
        for (int c = 0; c < 6; c++)
            for (size_t g = 0; g < sizes[c]; g++) {
                temporal_w w = best;
                float v = grids[c][g];
                switch (c) {
                case 0: w.decay = v; break;
                case 1: w.beta = v; break;
                case 2: w.power = (int32_t)v; break;
                case 3: w.secondary = v; break;
                case 4: w.neighbour = v; break;
                default: w.prior_mix = v; break;
                }
                double o = objective(f, &w);
                if (o > best_v + 1e-12) {
                    best_v = o;
                    best = w;
                }
            }
    return best;
}

static void fitter_free(fitter *f)
{
    ec_free(f->cells);
    ec_free(f->sims);
    ec_free(f->half_prior[0]);
    ec_free(f->half_prior[1]);
    ec_free(f->half_of_seq);
    ec_free(f->probs);
    ec_free(f->idx);
}

static ec_status temporal_fit(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask)
{
    temporal *st = p->state;
    int32_t H = EC_MIN(p->opts.max_horizon, p->n_layers);
    temporal_w *ws = ec_malloc((size_t)H * sizeof *ws);
    fitter f = {.p = p, .t = t, .W = p->opts.tokens_back};
    f.probs = ec_malloc((size_t)p->n_experts * sizeof *f.probs);
    f.idx = ec_malloc((size_t)p->k * sizeof *f.idx);
    ec_status s = ws && f.probs && f.idx ? half_priors(&f, seq_mask) : EC_ERR_NOMEM;
    /* Horizons 1, 2, 4, 8, ... and H are searched (the first from the
     * defaults in two rounds, the next from the previous result in one);
     * the others take the weights of the nearest searched one below. */
    temporal_w start = DEFAULT_W;
    for (int32_t hz = 1; hz <= H && !s; hz++) {
        if ((hz & (hz - 1)) != 0 && hz != H) {
            ws[hz - 1] = ws[hz - 2];
            continue;
        }
        f.horizon = hz;
        f.n = f.seen = 0;
        s = ec_replay_train(t, seq_mask, f.W, count_cells, &f);
        f.stride = f.seen / TEMPORAL_FIT_CELLS + 1;
        f.seen = 0;
        if (!s)
            s = ec_replay_train(t, seq_mask, f.W, collect_cells, &f);
        if (!s)
            ws[hz - 1] = start = search(&f, start, hz == 1 ? 2 : 1);
    }
    fitter_free(&f);
    if (s) {
        ec_free(ws);
        return s;
    }
    ec_free(st->w);
    st->w = ws;
    st->H = H;
    return EC_OK;
}

/* ---- model file --------------------------------------------------------------- */

static ec_status temporal_save(const ec_predictor *p, cJSON *model)
{
    const temporal *st = p->state;
    cJSON *arr = cJSON_AddArrayToObject(model, "horizons");
    for (int32_t i = 0; arr && i < st->H; i++) {
        const temporal_w *w = &st->w[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return EC_ERR_NOMEM;
        }
        if (!cJSON_AddNumberToObject(o, "decay", w->decay) ||
            !cJSON_AddNumberToObject(o, "beta", w->beta) ||
            !cJSON_AddNumberToObject(o, "power", w->power) ||
            !cJSON_AddNumberToObject(o, "secondary", w->secondary) ||
            !cJSON_AddNumberToObject(o, "neighbour", w->neighbour) ||
            !cJSON_AddNumberToObject(o, "prior_mix", w->prior_mix))
            return EC_ERR_NOMEM;
    }
    return arr ? EC_OK : EC_ERR_NOMEM;
}

static ec_status read_weight(const cJSON *o, int32_t i, const char *field, double hi, float *out,
                             ec_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0.0 && v->valuedouble <= hi))
        return ec_error_set(err, EC_ERR_PARSE,
                            "field 'model.horizons[%d].%s': expected a number in [0, %g]", i,
                            field, hi);
    *out = (float)v->valuedouble;
    return EC_OK;
}

static ec_status temporal_load(ec_predictor *p, const cJSON *model, ec_error *err)
{
    temporal *st = p->state;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(model, "horizons");
    int n = cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || n < 1 || n > p->n_layers)
        return ec_error_set(err, EC_ERR_PARSE,
                            "field 'model.horizons': expected an array of 1 to %d objects",
                            p->n_layers);
    st->w = ec_calloc((size_t)n, sizeof *st->w);
    if (!st->w)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    st->H = n;
    for (int i = 0; i < n; i++) {
        const cJSON *o = cJSON_GetArrayItem(arr, i);
        temporal_w *w = &st->w[i];
        float power = 0;
        ec_status s;
        if ((s = read_weight(o, i, "decay", 1, &w->decay, err)) ||
            (s = read_weight(o, i, "beta", 1e6, &w->beta, err)) ||
            (s = read_weight(o, i, "power", 64, &power, err)) ||
            (s = read_weight(o, i, "secondary", 1, &w->secondary, err)) ||
            (s = read_weight(o, i, "neighbour", 1, &w->neighbour, err)) ||
            (s = read_weight(o, i, "prior_mix", 1, &w->prior_mix, err)))
            return s;
        w->power = (int32_t)power;
        if ((float)w->power != power || w->power < 1)
            return ec_error_set(err, EC_ERR_PARSE,
                                "field 'model.horizons[%d].power': expected an integer >= 1", i);
    }
    return EC_OK;
}

const ec_predictor_vt ec_temporal_vt = {
    .name = "temporal",
    .init = temporal_init,
    .free_state = temporal_free,
    .fit = temporal_fit,
    .predict = temporal_predict,
    .save = temporal_save,
    .load = temporal_load,
};
