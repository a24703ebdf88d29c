/*
 * The reuse model: for an expert of a layer, the probability that the
 * layer uses it again within the next 1, 2, 4 and 8 tokens, from its
 * recency, its frequency over the last 16 tokens and the predictor's vote
 * for the next token. Counts per feature cell, fitted by replaying
 * training sequences (ec_reuse_model_fit) and, in a policy, added to by
 * the running stream (reuse.c). Never allocates after creation.
 */
#include "internal.h"

#include <string.h>

const int32_t ec_reuse_horizons[RU_NH] = {1, 2, 4, 8};

/* q bins by their lower edges (as gated's prefetch gate has used them) */
static const float Q_EDGES[RU_QB - 1] = {0.01f, 0.02f, 0.05f, 0.1f, 0.2f, 0.3f, 0.5f, 0.7f, 0.9f};

static inline int q_bin(float q)
{
    int b = 0;
    while (b < RU_QB - 1 && q >= Q_EDGES[b])
        b++;
    return b;
}

/* age 0, 1, 2, 3-4, 5-8, 9-16, 17-63, never within 64 tokens */
static inline int age_bin(uint64_t mask)
{
    if (!mask)
        return RU_AB - 1;
    int a = __builtin_ctzll(mask);
    if (a <= 2)
        return a;
    int b = 64 - __builtin_clzll((unsigned long long)(a - 1)) + 1; /* 3-4: 3, 5-8: 4, ... */
    return b < RU_AB - 2 ? b : RU_AB - 2;
}

/* uses over the last 16 tokens: 0, 1, 2-3, 4-7, 8-16 */
static inline int use_bin(uint64_t mask)
{
    int u = __builtin_popcountll(mask & 0xffffu);
    return u == 0 ? 0 : u == 1 ? 1 : u < 4 ? 2 : u < 8 ? 3 : 4;
}

ec_status reuse_track_init(reuse_track *t, int32_t L, int32_t E)
{
    memset(t, 0, sizeof *t);
    t->L = L;
    t->E = E;
    size_t LE = (size_t)L * (size_t)E;
    t->mask = ec_malloc(LE * sizeof *t->mask);
    t->ltok = ec_malloc((size_t)L * sizeof *t->ltok);
    t->cell = ec_malloc(LE * RU_RING * sizeof *t->cell);
    t->ring_tok = ec_malloc((size_t)L * RU_RING * sizeof *t->ring_tok);
    if (!t->mask || !t->ltok || !t->cell || !t->ring_tok) {
        reuse_track_free(t);
        return EC_ERR_NOMEM;
    }
    reuse_track_reset(t);
    return EC_OK;
}

void reuse_track_free(reuse_track *t)
{
    ec_free(t->mask);
    ec_free(t->ltok);
    ec_free(t->cell);
    ec_free(t->ring_tok);
    memset(t, 0, sizeof *t);
}

void reuse_track_reset(reuse_track *t)
{
    size_t LE = (size_t)t->L * (size_t)t->E;
    memset(t->mask, 0, LE * sizeof *t->mask);
    for (int32_t l = 0; l < t->L; l++)
        t->ltok[l] = -1;
    for (size_t i = 0; i < (size_t)t->L * RU_RING; i++)
        t->ring_tok[i] = -1;
}

static inline void count(reuse_counts *c, int h, int32_t cell, int used)
{
    int32_t af = cell % RU_AF, a = af / RU_FB;
    c->seen[h][cell] += 1;
    c->af_seen[h][af] += 1;
    c->a_seen[h][a] += 1;
    c->all_seen[h] += 1;
    if (used) {
        c->used[h][cell] += 1;
        c->af_used[h][af] += 1;
        c->a_used[h][a] += 1;
        c->all_used[h] += 1;
    }
}

void reuse_track_observe(reuse_track *t, int32_t layer, int64_t tok, const int16_t *experts,
                         int32_t k, const float *q, double blind, reuse_counts *score,
                         reuse_case_fn fn, void *ctx)
{
    const int32_t E = t->E;
    uint64_t *m = t->mask + (size_t)layer * (size_t)E;
    int64_t last = t->ltok[layer];
    if (last >= 0 && tok <= last)
        return; /* this token's layer was seen already */
    int64_t gap = last < 0 ? 64 : tok - last;
    for (int32_t e = 0; e < E; e++)
        m[e] = gap >= 64 ? 0 : m[e] << gap;
    for (int32_t i = 0; i < k; i++)
        m[experts[i]] |= 1u;
    int64_t *rt = t->ring_tok + (size_t)layer * RU_RING;
    uint16_t *cells = t->cell + (size_t)layer * RU_RING * (size_t)E;
    if (score || fn)
        for (int h = 0; h < RU_NH; h++) {
            int64_t n = ec_reuse_horizons[h], at = tok - n;
            if (at < 0 || rt[at % RU_RING] != at)
                continue;
            const uint16_t *row = cells + (size_t)(at % RU_RING) * (size_t)E;
            uint64_t within = (1ull << n) - 1; /* bits of tokens at+1 .. tok */
            for (int32_t e = 0; e < E; e++) {
                int used = (m[e] & within) != 0;
                if (score)
                    count(score, h, row[e], used);
                if (fn)
                    fn(ctx, h, row[e], used);
            }
        }
    uint16_t *row = cells + (size_t)(tok % RU_RING) * (size_t)E;
    int qb0 = q_bin((float)blind);
    for (int32_t e = 0; e < E; e++) {
        int qb = q ? q_bin(q[e]) : qb0;
        row[e] = (uint16_t)((qb * RU_AB + age_bin(m[e])) * RU_FB + use_bin(m[e]));
    }
    rt[tok % RU_RING] = tok;
    t->ltok[layer] = tok;
}

/* The fitted counts with each level capped at REUSE_FIT_CAP cases (both
 * counts scaled by REUSE_FIT_CAP / seen above it), so that the stream can
 * overrule them. Made once per model, not at every table. */
static inline void cap(const double *seen, const double *used, double *cs, double *cu, int n)
{
    for (int i = 0; i < n; i++) {
        double w = seen[i] > REUSE_FIT_CAP ? REUSE_FIT_CAP / seen[i] : 1.0;
        cs[i] = w * seen[i];
        cu[i] = w * used[i];
    }
}

void reuse_counts_cap(const reuse_counts *f, reuse_counts *out)
{
    for (int h = 0; h < RU_NH; h++) {
        cap(f->seen[h], f->used[h], out->seen[h], out->used[h], RU_CELLS);
        cap(f->af_seen[h], f->af_used[h], out->af_seen[h], out->af_used[h], RU_AF);
        cap(f->a_seen[h], f->a_used[h], out->a_seen[h], out->a_used[h], RU_AB);
    }
    cap(f->all_seen, f->all_used, out->all_seen, out->all_used, RU_NH);
}

/* (used, seen) of a level: capped fitted counts plus the stream's, shrunk
 * towards the parent level's rate */
static inline double rate(double fu, double fs, double su, double ss, double parent)
{
    return (fu + su + REUSE_SHRINK * parent) / (fs + ss + REUSE_SHRINK);
}

/* f: capped fitted counts (reuse_counts_cap). Every level's rates, then
 * the outputs asked for, each in a loop of its own. */
static void tables(const reuse_counts *f, const reuse_counts *s, double blind,
                   float (*prob)[RU_CELLS], float (*by_a)[RU_CELLS], float (*by_af)[RU_CELLS])
{
    for (int h = 0; h < RU_NH; h++) {
        /* blind use within n tokens: 1 - (1 - k/E)^n */
        double b = 1.0, g, ra[RU_AB], raf[RU_AF];
        for (int i = 0; i < ec_reuse_horizons[h]; i++)
            b *= 1.0 - blind;
        b = 1.0 - b;
        g = rate(f->all_used[h], f->all_seen[h], s->all_used[h], s->all_seen[h], b);
        for (int a = 0; a < RU_AB; a++)
            ra[a] = rate(f->a_used[h][a], f->a_seen[h][a], s->a_used[h][a], s->a_seen[h][a], g);
        for (int af = 0; af < RU_AF; af++)
            raf[af] = rate(f->af_used[h][af], f->af_seen[h][af], s->af_used[h][af],
                           s->af_seen[h][af], ra[af / RU_FB]);
        if (prob) {
            const double *fu = f->used[h], *fs = f->seen[h], *su = s->used[h], *ss = s->seen[h];
            float *out = prob[h];
            for (int c = 0; c < RU_CELLS; c++)
                out[c] = (float)rate(fu[c], fs[c], su[c], ss[c], raf[c % RU_AF]);
            if (h > 0) /* non-decreasing in n */
                for (int c = 0; c < RU_CELLS; c++)
                    out[c] = out[c] < prob[h - 1][c] ? prob[h - 1][c] : out[c];
        }
        if (by_a)
            for (int c = 0; c < RU_CELLS; c++)
                by_a[h][c] = (float)ra[(c % RU_AF) / RU_FB];
        if (by_af)
            for (int c = 0; c < RU_CELLS; c++)
                by_af[h][c] = (float)raf[c % RU_AF];
    }
}

void reuse_table(const reuse_counts *f, const reuse_counts *s, double blind,
                 float (*prob)[RU_CELLS])
{
    tables(f, s, blind, prob, NULL, NULL);
}

void reuse_table_levels(const reuse_counts *f, const reuse_counts *s, double blind,
                        float (*by_age)[RU_CELLS], float (*by_age_uses)[RU_CELLS])
{
    tables(f, s, blind, NULL, by_age, by_age_uses);
}

/* ---- the fitted model ---- */

ec_status ec_reuse_model_create(int32_t n_layers, int32_t n_experts, int32_t k,
                                ec_reuse_model **out)
{
    if (!out)
        return EC_ERR_INVALID;
    *out = NULL;
    if (n_layers < 1 || n_layers > EC_MAX_LAYERS || n_experts < 1 ||
        n_experts > EC_MAX_EXPERTS || k < 1 || k > n_experts)
        return EC_ERR_INVALID;
    ec_reuse_model *m = ec_calloc(1, sizeof *m);
    if (!m)
        return EC_ERR_NOMEM;
    m->L = n_layers;
    m->E = n_experts;
    m->k = k;
    *out = m;
    return EC_OK;
}

void ec_reuse_model_destroy(ec_reuse_model *m) { ec_free(m); }

int64_t ec_reuse_model_n_cases(const ec_reuse_model *m) { return m ? m->n_cases : 0; }

/* Replays one sequence: history, predictor, features; counts go to *score. */
static ec_status replay_seq(const ec_trace *t, size_t seq, const ec_predictor *pred,
                            ec_history *h, reuse_track *tr, float *probs, float *q,
                            reuse_counts *score, reuse_case_fn fn, reuse_token_fn tfn, void *ctx)
{
    const ec_seq *sq = &t->seqs[seq];
    const int32_t L = t->n_layers, E = t->n_experts;
    const double blind = (double)t->k / (double)E;
    ec_history_reset(h);
    reuse_track_reset(tr);
    int64_t tok = 0;
    for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++) {
        if (!t->complete[r])
            continue; /* as the simulator: incomplete rows are skipped */
        for (int32_t l = 0; l < L; l++) {
            const int16_t *ex = ec_trace_experts(t, r, l);
            ec_history_observe(h, l, ex);
            const float *qp = NULL;
            if (pred && ec_predictor_predict(pred, h, L, probs) >= 0) {
                for (int32_t e = 0; e < E; e++) {
                    float x = (float)t->k * probs[e];
                    q[e] = x < 1.0f ? x : 1.0f;
                }
                qp = q;
            }
            if (tfn && l == 0)
                tfn(ctx, tok);
            reuse_track_observe(tr, l, tok, ex, t->k, qp, blind, score, fn, ctx);
        }
        tok++;
    }
    return EC_OK;
}

ec_status reuse_replay(const ec_trace *t, const uint8_t *seq_mask, const ec_predictor *pred,
                       reuse_counts *score, reuse_case_fn fn, reuse_token_fn tfn, void *ctx,
                       ec_error *err)
{
    const int32_t L = t->n_layers, E = t->n_experts;
    if (pred && ec_predictor_n_layers(pred) != 0 &&
        (ec_predictor_n_layers(pred) != L || ec_predictor_n_experts(pred) != E))
        return ec_error_set(err, EC_ERR_INVALID,
                            "reuse model: predictor '%s' is fitted for %d x %d, the trace has "
                            "%d x %d",
                            ec_predictor_name(pred), ec_predictor_n_layers(pred),
                            ec_predictor_n_experts(pred), L, E);
    int32_t depth = 8;
    if (pred && ec_predictor_history_depth(pred) > depth)
        depth = ec_predictor_history_depth(pred);
    ec_history *h = NULL;
    reuse_track tr;
    float *probs = ec_malloc((size_t)E * sizeof *probs), *q = ec_malloc((size_t)E * sizeof *q);
    ec_status st = ec_history_create(L, E, t->k, depth, &h);
    if (st == EC_OK)
        st = reuse_track_init(&tr, L, E);
    else
        memset(&tr, 0, sizeof tr);
    if (st == EC_OK && (!probs || !q))
        st = EC_ERR_NOMEM;
    for (size_t s = 0; st == EC_OK && s < t->n_seqs; s++)
        if (!seq_mask || seq_mask[s])
            st = replay_seq(t, s, pred, h, &tr, probs, q, score, fn, tfn, ctx);
    reuse_track_free(&tr);
    ec_history_destroy(h);
    ec_free(probs);
    ec_free(q);
    return st ? ec_error_set(err, st, "reuse model: %s", ec_status_str(st)) : EC_OK;
}

ec_status ec_reuse_model_fit(ec_reuse_model *m, const ec_trace *t, const uint8_t *seq_mask,
                             const ec_predictor *pred, ec_error *err)
{
    if (!m || !t)
        return ec_error_set(err, EC_ERR_INVALID, "ec_reuse_model_fit: NULL argument");
    if (t->n_layers != m->L || t->n_experts != m->E || t->k != m->k)
        return ec_error_set(err, EC_ERR_INVALID,
                            "reuse model: made for %d layers x %d experts, top-%d; the trace "
                            "has %d x %d, top-%d",
                            m->L, m->E, m->k, t->n_layers, t->n_experts, t->k);
    memset(&m->fit, 0, sizeof m->fit);
    ec_status st = reuse_replay(t, seq_mask, pred, &m->fit, NULL, NULL, NULL, err);
    m->n_cases = (int64_t)m->fit.all_seen[0];
    return st;
}
