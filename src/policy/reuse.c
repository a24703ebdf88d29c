/*
 * gated's demand victims and admission, by the reuse model (reuse_model.c).
 *
 * Features. When layer l is observed at token t, every expert e of l gets
 * a cell: its age (tokens since its last use at l), its uses over the last
 * 16 tokens, and q, the predictor's probability that the batch uses it at
 * the same layer of the next token (one prediction per step; it reads this
 * token's routing so far). The reuse row of q is kept until l is observed
 * again, for the prefetch gate (plan.c).
 *
 * Probabilities. For every cell, P(used at l within the next 1, 2, 4, 8
 * tokens) comes from counts: those fitted on training sequences
 * (ec_policy_set_reuse_model; capped so that the stream can overrule them)
 * plus those of the running stream, where every row is scored 1, 2, 4 and
 * 8 tokens after it was made. Without a fitted model the stream alone
 * calibrates it; with no evidence at all every expert gets the same value
 * and the victim is the least recently used. The table is refreshed once
 * per token.
 *
 * Eviction (Belady under uncertainty). The value of keeping an expert is
 * P1 + P2 + 2 P4 + 4 P8: up to a constant, minus the expected time to its
 * next use in tokens, truncated at 8, with the survival curve taken as a
 * step function between the four horizons. Among the evictable experts, V
 * has the lowest value (the least recently used on ties) and R is the
 * least recently used: gated evicts V when R's value is higher by at least
 * EC_REUSE_MARGIN, else R. The margin keeps recency where the model cannot
 * tell two experts apart (typically two that no recent token used, the
 * usual victims of a large cache: without it gated was 0.07 % slower than
 * lru on Qwen3 at 64 of 128 per layer).
 *
 * Admission. A demand whose own value (used now, its uses and the
 * predictor's q for the next token) is lower than its victim's does not
 * displace the victim for good: it is the pool's scratch, released after
 * its layer and the first victim of the pool from then on (unless it is
 * used again first, which admits it). The scratch is one of the pool's
 * slots, so every shape keeps its device memory.
 *
 * What-if (ec_policy_set_whatif_evict): an expert whose true next use lies
 * within the window is worth more than any value (nearest use worth most,
 * reuse_whatif_key), for demand victims here and prefetch victims
 * (victim.c); the others keep their value. Every demand is admitted, as
 * Belady keeps what it loads: with the whole trace as window the demand
 * victims are Belady's (MIN).
 *
 * O(pool) per victim, O(n_experts) per step; never allocates.
 */
#include "internal.h"

#include <string.h>

static inline double blind_rate(const ec_policy *p)
{
    return (double)(p->k_obs > 0 ? p->k_obs : 1) / (double)p->E;
}

void reuse_observe(ec_policy *p, const int16_t *experts, int32_t k)
{
    const int32_t l = p->layer;
    const int64_t tok = p->step / p->L;
    float *row = p->reuse + (size_t)l * (size_t)p->E;
    p->reuse_at[l] = policy_predict_use(p, p->L, row) < 0 ? -1 : p->serial;
    reuse_track_observe(&p->track, l, tok, experts, k, reuse_row(p, l), blind_rate(p),
                        p->ru_stream, NULL, NULL);
    if (tok != p->ru_table_tok) {
        reuse_table(p->ru_fit, p->ru_stream, blind_rate(p), p->ru_prob);
        p->ru_table_tok = tok;
    }
}

void reuse_reset(ec_policy *p)
{
    for (int32_t l = 0; l < p->L; l++) {
        p->reuse_at[l] = -1;
        p->scratch[l] = -1;
    }
    reuse_track_reset(&p->track);
    memset(p->ru_stream, 0, sizeof *p->ru_stream);
    reuse_table(p->ru_fit, p->ru_stream, blind_rate(p), p->ru_prob);
    p->ru_table_tok = -1;
}

double reuse_keep_value(ec_policy *p, int32_t layer, int32_t expert)
{
    int32_t cell = reuse_track_cell(&p->track, layer, expert);
    return cell < 0 ? -1.0 : (double)reuse_value(p->ru_prob, cell);
}

double reuse_calibrated(ec_policy *p, int32_t layer, int32_t expert)
{
    int32_t cell = reuse_track_cell(&p->track, layer, expert);
    return cell < 0 ? -1.0 : (double)p->ru_prob[0][cell];
}

/* Above every value of keeping (at most 8, the truncated time to next use). */
#define WHATIF_KNOWN 1e12

int reuse_whatif_key(ec_policy *p, int32_t slot, double *key)
{
    if (p->whatif_evict <= 0)
        return 0;
    int64_t nu = policy_next_use(p, slot);
    if (nu == INT64_MAX || nu / p->L - p->step / p->L > (int64_t)p->whatif_evict)
        return 0;
    *key = WHATIF_KNOWN - (double)(nu - p->step);
    return 1;
}

static inline int32_t pool_of(const ec_policy *p, int32_t layer)
{
    return cache_pool_index(p->c, layer);
}

/* The pool's scratch slot while it still holds the demand not admitted. */
static inline int32_t scratch_slot(const ec_policy *p, int32_t pool)
{
    int32_t s = p->scratch[pool];
    if (s < 0)
        return -1;
    const ec_slot *sl = &p->c->slots[s];
    return sl->layer >= 0 && cache_key(p->c, sl->layer, sl->expert) == p->scratch_key[pool] ? s
                                                                                            : -1;
}

static inline int evictable_now(const ec_policy *p, int32_t i)
{
    const ec_slot *s = &p->c->slots[i];
    return s->state == EC_SLOT_EMPTY ||
           (s->state == EC_SLOT_READY && s->pins == 0 && s->need_step != p->step);
}

int32_t reuse_victim(ec_policy *p, int32_t layer)
{
    int32_t first, n;
    cache_pool(p->c, layer, &first, &n);
    const ec_cache *c = p->c;
    int32_t sc = scratch_slot(p, pool_of(p, layer));
    if (sc >= 0 && evictable_now(p, sc) && cache_quota_allows(c, sc, layer))
        return sc;
    int32_t best = -1, lru = -1;
    double bv = 0, lv = 0;
    int64_t br = 0, lr = 0;
    for (int32_t i = first; i < first + n; i++) {
        const ec_slot *s = &c->slots[i];
        if (s->state == EC_SLOT_EMPTY)
            return i;
        if (!evictable_now(p, i) || !cache_quota_allows(c, i, layer))
            continue;
        double v;
        if (!reuse_whatif_key(p, i, &v))
            v = reuse_keep_value(p, s->layer, s->expert);
        if (v < 0)
            v = 1e30; /* its layer has no features yet: recency decides */
        int64_t rec = slot_recency(s);
        if (best < 0 || v < bv || (v == bv && rec < br)) {
            best = i;
            bv = v;
            br = rec;
        }
        if (lru < 0 || rec < lr) {
            lru = i;
            lr = rec;
            lv = v;
        }
    }
    return best >= 0 && lv - bv >= EC_REUSE_MARGIN ? best : lru;
}

int32_t reuse_admit(ec_policy *p, int32_t layer, int32_t expert, int32_t v)
{
    if (v < 0)
        return v;
    int32_t pool = pool_of(p, layer), sc = scratch_slot(p, pool);
    const ec_slot *s = &p->c->slots[v];
    int admitted = 1;
    if (v != sc && s->state != EC_SLOT_EMPTY && !p->whatif_evict) {
        double mine = reuse_keep_value(p, layer, expert),
               theirs = reuse_keep_value(p, s->layer, s->expert);
        admitted = !(mine >= 0 && theirs >= 0 && mine < theirs);
    }
    if (admitted) {
        if (v == sc)
            p->scratch[pool] = -1;
        return v;
    }
    /* not admitted: the previous scratch when it can go, else the victim
     * (which becomes the scratch) */
    int32_t slot = sc >= 0 && evictable_now(p, sc) && cache_quota_allows(p->c, sc, layer) ? sc : v;
    p->scratch[pool] = slot;
    p->scratch_key[pool] = cache_key(p->c, layer, expert);
    return slot;
}

void reuse_acquired(ec_policy *p, int32_t slot, int64_t step)
{
    const ec_slot *s = &p->c->slots[slot];
    int32_t pool = pool_of(p, s->layer);
    if (p->scratch[pool] == slot && step > s->filled_at)
        p->scratch[pool] = -1; /* used again at a later step: admitted */
}
