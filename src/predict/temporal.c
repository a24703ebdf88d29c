/*
 * temporal: the experts that the last tokens used at the target layer.
 *
 * Routing of neighbouring tokens is alike: "the same experts as the previous
 * token at this layer" beats every rule built on this token's earlier
 * layers. For a target (token t, layer T) the score of expert e is
 *
 *   score(e) = sum_{b=1..B} decay^(b-1) * sum_{d=-1..1} w_d * sum_j r_j [x_{t-b}(T+d)[j] == e]
 *
 * where x_{t-b}(l) is token t-b's top-k at layer l (j = 0 the primary),
 * r_0 = 1 and r_j = `secondary` for j > 0, w_0 = 1 and w_{+-1} =
 * `neighbour`. The prediction is (1 - prior_mix) * score / sum(score) +
 * prior_mix * prior(T). When the target lies in the next token, token t-1
 * is the current one (its layers up to the last observed count).
 *
 * The four weights are fitted on the training sequences by coordinate
 * search over small grids, maximising recall@k + top-1 (k of the trace)
 * with the log-likelihood of the actual set as a tie-break. The prediction
 * does not depend on the horizon, so one set of weights serves them all.
 */
#include "replay.h"

#include <math.h>
#include <string.h>

#define TEMPORAL_MAX_BACK 256

typedef struct temporal_w {
    float decay, neighbour, secondary, prior_mix;
} temporal_w;

typedef struct temporal {
    temporal_w w;
} temporal;

static ec_status temporal_init(ec_predictor *p)
{
    if (p->opts.tokens_back <= 0)
        p->opts.tokens_back = 8;
    if (p->opts.tokens_back > TEMPORAL_MAX_BACK)
        return ec_predictor_fail(p, EC_ERR_INVALID, "tokens_back %d is above %d",
                                 p->opts.tokens_back, TEMPORAL_MAX_BACK);
    temporal *st = ec_calloc(1, sizeof *st);
    if (!st)
        return EC_ERR_NOMEM;
    st->w = (temporal_w){.decay = 0.5f, .neighbour = 0.0f, .secondary = 0.75f, .prior_mix = 0.1f};
    p->state = st;
    return EC_OK;
}

static void temporal_free(ec_predictor *p) { ec_free(p->state); }

/* Writes the distribution for (target, next) with weights w and the
 * target layer's prior[E] into probs; returns 1 when some earlier token
 * was known, else 0 (probs = prior). */
static int temporal_eval(const ec_predictor *p, const temporal_w *w, const float *prior,
                         const ec_history *h, int32_t target, int next, float *probs)
{
    const int32_t E = p->n_experts, K = p->k, L = p->n_layers;
    memset(probs, 0, (size_t)E * sizeof *probs);
    float wb = 1.0f, total = 0.0f;
    for (int32_t b = 1; b <= p->opts.tokens_back && wb > 0.0f; b++, wb *= w->decay) {
        int32_t back = next ? b - 1 : b;
        for (int32_t d = -1; d <= 1; d++) {
            int32_t l = target + d;
            float wd = d == 0 ? wb : wb * w->neighbour;
            if (l < 0 || l >= L || wd <= 0.0f)
                continue;
            const int16_t *e = ec_history_get(h, back, l);
            if (!e)
                continue;
            for (int32_t j = 0; j < K; j++) {
                float v = j == 0 ? wd : wd * w->secondary;
                probs[e[j]] += v;
                total += v;
            }
        }
    }
    if (!(total > 0.0f)) {
        memcpy(probs, prior, (size_t)E * sizeof *probs);
        return 0;
    }
    float a = (1.0f - w->prior_mix) / total;
    for (int32_t e = 0; e < E; e++)
        probs[e] = a * probs[e] + w->prior_mix * prior[e];
    ec_normalize(probs, E);
    return 1;
}

static int temporal_predict(const ec_predictor *p, const ec_history *h, int32_t target,
                            int next_token, int32_t horizon, float *probs)
{
    (void)horizon;
    const temporal *st = p->state;
    return temporal_eval(p, &st->w, p->prior + (size_t)target * (size_t)p->n_experts, h, target,
                         next_token, probs);
}

/* ---- fitting ---------------------------------------------------------------- */

/*
 * The objective scores the training sequences with a prior that did not
 * see them: training cells are split in two halves (alternate sequences,
 * or the two halves of the tokens when there is one sequence) and each
 * half is scored with the prior of the other. With the in-sample prior
 * the search over-trusts the prior, which transfers badly to new prompts.
 */
typedef struct objective {
    const ec_predictor *p;
    float *half_prior[2]; /* [L][E] prior of each half of the training cells */
    size_t *half_of_seq;  /* [n_seqs] 0/1, or 2: split by tokens */
    temporal_w w;
    float *probs;   /* [E] */
    int32_t *idx;   /* [k] */
    double score, loglik;
    size_t n;
} objective;

static int cell_half(const objective *o, const ec_replay_pos *pos, size_t row)
{
    size_t h = o->half_of_seq[pos->seq];
    if (h < 2)
        return (int)h;
    const ec_seq *sq = &pos->t->seqs[pos->seq];
    return row - sq->row0 >= sq->n_rows / 2;
}

/* Counts the experts of every present (row, layer) into its half's prior. */
static ec_status count_half(void *ctx, const ec_replay_pos *pos)
{
    objective *o = ctx;
    const int32_t E = o->p->n_experts;
    float *pr = o->half_prior[cell_half(o, pos, pos->row)] + (size_t)pos->layer * (size_t)E;
    const int16_t *e = ec_history_get(pos->h, 0, pos->layer);
    for (int32_t j = 0; j < o->p->k; j++)
        pr[e[j]] += 1.0f;
    return EC_OK;
}

static ec_status half_priors(objective *o, const ec_trace *t, const uint8_t *mask)
{
    const ec_predictor *p = o->p;
    size_t n = (size_t)p->n_layers * (size_t)p->n_experts, used = 0;
    o->half_of_seq = ec_malloc(EC_MAX(t->n_seqs, 1) * sizeof *o->half_of_seq);
    o->half_prior[0] = ec_calloc(n, sizeof *o->half_prior[0]);
    o->half_prior[1] = ec_calloc(n, sizeof *o->half_prior[1]);
    if (!o->half_of_seq || !o->half_prior[0] || !o->half_prior[1])
        return EC_ERR_NOMEM;
    for (size_t q = 0; q < t->n_seqs; q++)
        if (!mask || mask[q])
            o->half_of_seq[q] = used++ % 2;
    if (used < 2)
        for (size_t q = 0; q < t->n_seqs; q++)
            o->half_of_seq[q] = 2;
    ec_status s = ec_replay_train(t, mask, 0, count_half, o);
    for (int half = 0; half < 2 && !s; half++)
        for (int32_t l = 0; l < p->n_layers; l++) {
            float *row = o->half_prior[half] + (size_t)l * (size_t)p->n_experts;
            for (int32_t e = 0; e < p->n_experts; e++)
                row[e] += (float)p->opts.smoothing;
            ec_normalize(row, p->n_experts);
        }
    return s;
}

/* At the last layer of a token: every layer of the next token is a target. */
static ec_status score_next_token(void *ctx, const ec_replay_pos *pos)
{
    objective *o = ctx;
    const ec_predictor *p = o->p;
    if (pos->layer != p->n_layers - 1 || pos->row + 1 >= pos->row_end)
        return EC_OK;
    for (int32_t T = 0; T < p->n_layers; T++) {
        const int16_t *actual = ec_trace_experts(pos->t, pos->row + 1, T);
        if (actual[0] < 0)
            continue;
        int half = cell_half(o, pos, pos->row + 1);
        temporal_eval(p, &o->w, o->half_prior[1 - half] + (size_t)T * (size_t)p->n_experts,
                      pos->h, T, 1, o->probs);
        ec_rank(o->probs, p->n_experts, o->idx, p->k);
        int32_t hits = 0;
        for (int32_t i = 0; i < p->k; i++)
            for (int32_t j = 0; j < p->k; j++)
                hits += o->idx[i] == actual[j];
        o->score += (double)hits / p->k + (o->idx[0] == actual[0]);
        for (int32_t j = 0; j < p->k; j++)
            o->loglik += log(fmax(o->probs[actual[j]], 1e-12));
        o->n++;
    }
    return EC_OK;
}

static ec_status evaluate(objective *o, const ec_trace *t, const uint8_t *mask, double *value)
{
    o->score = o->loglik = 0;
    o->n = 0;
    ec_status s = ec_replay_train(t, mask, o->p->opts.tokens_back + 1, score_next_token, o);
    if (s)
        return s;
    *value = o->n ? o->score / (double)o->n + 1e-3 * o->loglik / ((double)o->n * o->p->k)
                  : -INFINITY;
    return EC_OK;
}

static ec_status temporal_fit(ec_predictor *p, const ec_trace *t, const uint8_t *seq_mask)
{
    static const float decays[] = {0.0f, 0.15f, 0.3f, 0.5f, 0.7f, 0.85f};
    static const float neighbours[] = {0.0f, 0.05f, 0.15f, 0.3f};
    static const float secondaries[] = {0.25f, 0.5f, 0.75f, 1.0f};
    static const float mixes[] = {0.01f, 0.05f, 0.1f, 0.2f, 0.35f, 0.5f};
    static const float *const grids[] = {decays, neighbours, secondaries, mixes};
    static const size_t sizes[] = {6, 4, 4, 6};
    temporal *st = p->state;
    objective o = {.p = p};
    o.probs = ec_malloc((size_t)p->n_experts * sizeof *o.probs);
    o.idx = ec_malloc((size_t)p->k * sizeof *o.idx);
    ec_status s = o.probs && o.idx ? half_priors(&o, t, seq_mask) : EC_ERR_NOMEM;
    temporal_w best = {.decay = 0.5f, .neighbour = 0.0f, .secondary = 0.75f, .prior_mix = 0.1f};
    double best_v = -INFINITY;
    o.w = best;
    if (!s)
        s = evaluate(&o, t, seq_mask, &best_v);
    /* Coordinate search: two rounds over the four weights. */
    for (int round = 0; round < 2 && !s; round++)
        for (int c = 0; c < 4 && !s; c++)
            for (size_t g = 0; g < sizes[c] && !s; g++) {
                o.w = best;
                float *field[] = {&o.w.decay, &o.w.neighbour, &o.w.secondary, &o.w.prior_mix};
                *field[c] = grids[c][g];
                double v;
                s = evaluate(&o, t, seq_mask, &v);
                if (!s && v > best_v + 1e-12) {
                    best_v = v;
                    best = o.w;
                }
            }
    ec_free(o.probs);
    ec_free(o.idx);
    ec_free(o.half_prior[0]);
    ec_free(o.half_prior[1]);
    ec_free(o.half_of_seq);
    if (s)
        return s;
    st->w = best;
    return EC_OK;
}

/* ---- model file --------------------------------------------------------------- */

static ec_status temporal_save(const ec_predictor *p, cJSON *model)
{
    const temporal *st = p->state;
    return cJSON_AddNumberToObject(model, "decay", st->w.decay) &&
                   cJSON_AddNumberToObject(model, "neighbour", st->w.neighbour) &&
                   cJSON_AddNumberToObject(model, "secondary", st->w.secondary) &&
                   cJSON_AddNumberToObject(model, "prior_mix", st->w.prior_mix)
               ? EC_OK
               : EC_ERR_NOMEM;
}

static ec_status read_weight(const cJSON *model, const char *field, float *out, ec_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, field);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0.0 && v->valuedouble <= 1.0))
        return ec_error_set(err, EC_ERR_PARSE, "field 'model.%s': expected a number in [0, 1]",
                            field);
    *out = (float)v->valuedouble;
    return EC_OK;
}

static ec_status temporal_load(ec_predictor *p, const cJSON *model, ec_error *err)
{
    temporal *st = p->state;
    ec_status s;
    if ((s = read_weight(model, "decay", &st->w.decay, err)) ||
        (s = read_weight(model, "neighbour", &st->w.neighbour, err)) ||
        (s = read_weight(model, "secondary", &st->w.secondary, err)) ||
        (s = read_weight(model, "prior_mix", &st->w.prior_mix, err)))
        return s;
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
