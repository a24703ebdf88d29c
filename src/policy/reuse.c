/*
 * gated's demand victims: predicted reuse, calibrated on the stream, where
 * it clearly beats recency; recency (LRU) everywhere else.
 *
 * Reuse rows. When layer l is observed, the predictor gives for every
 * expert e the probability q that the batch uses it at the next occurrence
 * of layer l (horizon n_layers: the same layer of the next token). The row
 * is kept until layer l is observed again: one prediction per step serves
 * every later decision about layer l's experts (a global pool's included).
 *
 * Calibration. At that next occurrence the row is scored against what the
 * router chose: for every expert, its q bin, its age bin (tokens since its
 * last use at this layer when q was predicted) and whether it was used.
 * The calibrated reuse c(q, age) is the rate of use seen in that cell so
 * far, shrunk towards the age bin's rate (see calibrated()). It depends on
 * the request stream only, not on what the cache holds, so it is the same
 * whichever victims are chosen. Where the predictor knows nothing beyond
 * recency (a layer prior on Qwen3, say) c depends on age alone, and the
 * rule departs from recency only where the stream shows experts of the
 * older age coming back more often than those of the younger one.
 *
 * The rule. Among the evictable experts of a pool, R is the least recently
 * used and P the one with the lowest q (recency breaks ties). gated evicts
 * P instead of R only when c(R) - c(P) >= EC_REUSE_DELTA: keeping R must
 * save that many expected misses at the next occurrence. The predictor
 * speaks of the next token only; below that margin - typically two experts
 * that neither the recent tokens nor the prior favour, the usual victims of
 * a large cache - recency, which also reflects reuse further ahead, decides.
 *
 * O(pool) per victim, O(n_experts) per step; never allocates.
 */
#include "internal.h"

/* q bins, by their lower edges: probability of use at the next occurrence */
static const double Q_EDGES[REUSE_QB - 1] = {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9};

static inline int q_bin(double q)
{
    int b = 0;
    while (b < REUSE_QB - 1 && q >= Q_EDGES[b])
        b++;
    return b;
}

/* Age bins: tokens since the last use <= 1, 2, 4, ..., 64, more, and
 * never used (age < 0). */
static inline int age_bin(int64_t age)
{
    if (age < 0)
        return REUSE_AB - 1;
    if (age <= 1)
        return 0;
    int b = 64 - __builtin_clzll((unsigned long long)(age - 1)); /* ceil(log2(age)) */
    return b < REUSE_AB - 2 ? b : REUSE_AB - 2;
}

/* Calibrated reuse of a q and an age: the cell's rate of use, shrunk by
 * REUSE_SHRINK pseudo-observations towards its age bin's rate, itself
 * shrunk towards the overall rate, itself towards k / n_experts (the rate
 * of a predictor that knows nothing). With no evidence every expert gets
 * the same value, and the rule keeps recency. */
static inline double calibrated(const ec_policy *p, double q, int64_t age)
{
    int a = age_bin(age), cell = q_bin(q) * REUSE_AB + a;
    double blind = (double)p->k_obs / (double)p->E;
    double g = ((double)p->all_used + REUSE_SHRINK * blind) / ((double)p->all_seen + REUSE_SHRINK);
    double ra = ((double)p->age_used[a] + REUSE_SHRINK * g) /
                ((double)p->age_seen[a] + REUSE_SHRINK);
    return ((double)p->cal_used[cell] + REUSE_SHRINK * ra) /
           ((double)p->cal_seen[cell] + REUSE_SHRINK);
}

void reuse_observe(ec_policy *p, const int16_t *experts, int32_t k)
{
    const int32_t E = p->E, l = p->layer;
    const int64_t tok = p->step / p->L;
    float *row = p->reuse + (size_t)l * (size_t)E;
    int64_t *last = p->last_tok + (size_t)l * (size_t)E;
    /* score the row predicted at this layer's previous occurrence */
    if (p->reuse_at[l] >= 0 && p->row_tok[l] == tok - 1) {
        const int64_t at = p->row_tok[l];
        for (int32_t e = 0; e < E; e++) {
            int a = age_bin(last[e] < 0 ? -1 : at - last[e]);
            p->cal_seen[q_bin(row[e]) * REUSE_AB + a]++;
            p->age_seen[a]++;
        }
        for (int32_t i = 0; i < k; i++) {
            int32_t e = experts[i];
            int a = age_bin(last[e] < 0 ? -1 : at - last[e]);
            p->cal_used[q_bin(row[e]) * REUSE_AB + a]++;
            p->age_used[a]++;
        }
        p->all_seen += E;
        p->all_used += k;
    }
    for (int32_t i = 0; i < k; i++)
        last[experts[i]] = tok;
    p->reuse_at[l] = policy_predict_use(p, p->L, row) < 0 ? -1 : p->serial;
    p->row_tok[l] = tok;
}

void reuse_reset(ec_policy *p)
{
    size_t LE = (size_t)p->L * (size_t)p->E;
    for (int32_t l = 0; l < p->L; l++)
        p->reuse_at[l] = p->row_tok[l] = -1;
    for (size_t i = 0; i < LE; i++)
        p->last_tok[i] = -1;
    for (int i = 0; i < REUSE_QB * REUSE_AB; i++)
        p->cal_seen[i] = p->cal_used[i] = 0;
    for (int i = 0; i < REUSE_AB; i++)
        p->age_seen[i] = p->age_used[i] = 0;
    p->all_seen = p->all_used = 0;
}

int32_t reuse_victim(ec_policy *p, int32_t layer)
{
    int32_t first, n;
    cache_pool(p->c, layer, &first, &n);
    const ec_cache *c = p->c;
    int32_t P = -1, R = -1;
    double qp = 0;
    int64_t rp = 0, rr = 0;
    for (int32_t i = first; i < first + n; i++) {
        const ec_slot *s = &c->slots[i];
        if (s->state == EC_SLOT_EMPTY)
            return i;
        if (s->state != EC_SLOT_READY || s->pins > 0 || s->need_step == p->step)
            continue;
        const float *row = reuse_row(p, s->layer);
        double q = row ? row[s->expert] : 1.0; /* no prediction yet: keep */
        int64_t rec = slot_recency(s);
        if (P < 0 || q < qp || (q == qp && rec < rp)) {
            P = i;
            qp = q;
            rp = rec;
        }
        if (R < 0 || rec < rr) {
            R = i;
            rr = rec;
        }
    }
    if (P == R || !reuse_row(p, c->slots[P].layer) || !reuse_row(p, c->slots[R].layer))
        return R;
    const ec_slot *sp = &c->slots[P], *sr = &c->slots[R];
    int64_t lp = p->last_tok[cache_key(c, sp->layer, sp->expert)];
    int64_t lr = p->last_tok[cache_key(c, sr->layer, sr->expert)];
    double cp = calibrated(p, qp, lp < 0 ? -1 : p->row_tok[sp->layer] - lp);
    double cr = calibrated(p, reuse_row(p, sr->layer)[sr->expert],
                           lr < 0 ? -1 : p->row_tok[sr->layer] - lr);
    return cr - cp >= EC_REUSE_DELTA ? P : R;
}

double reuse_calibrated(const ec_policy *p, int32_t layer, int32_t expert)
{
    const float *row = reuse_row(p, layer);
    if (!row)
        return -1.0;
    int64_t lt = p->last_tok[cache_key(p->c, layer, expert)];
    return calibrated(p, row[expert], lt < 0 ? -1 : p->row_tok[layer] - lt);
}
