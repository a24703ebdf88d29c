/*
 * Victim choice: which slot of a pool a new expert takes. Never allocates.
 *
 * Never a victim: a pinned slot (a reader still uses it), a QUEUED or
 * LOADING one (a transfer targets it), one the current step needs. For a
 * prefetch, also one the current plan wants kept. Among the rest an empty
 * slot comes first, then the policy's rule:
 *   on-demand, lru, predict: least recently used (slot_recency);
 *   lfu: fewest uses of (layer, expert) since reset, LRU tie-break;
 *   gated (and hybrid): for a prefetch, the lowest predicted probability of use at the
 *     expert's next occurrence, LRU tie-break (the gate has already priced
 *     that victim, plan.c; under the what-if of ec_policy_set_whatif_evict
 *     an expert used within its window is kept first, nearest use longest);
 *     for a demand, by the reuse model: the lowest
 *     value of keeping (expected time to next use) when it is clearly
 *     lower than the least recently used expert's, else that one, with
 *     admission through the pool's scratch slot (reuse.c);
 *   oracle: furthest next use (Belady), LRU tie-break.
 * Remaining ties go to the lowest slot index, so choices are deterministic.
 * A global pool sized per layer (quotas) first keeps the partition
 * (cache_quota_allows), and only when no slot qualifies takes any.
 */
#include "internal.h"

#include <stdint.h>

int policy_predict_use(ec_policy *p, int32_t horizon, float *row)
{
    if (!p->pred || p->n_hist <= 0)
        return -1;
    int hinted = 0;
    for (int32_t e = 0; e < p->E; e++)
        row[e] = 1.0f;
    for (int32_t i = 0; i < p->n_hist; i++) {
        /* a hint replaces the predictor for its target */
        const float *probs = ec_history_hint_get(p->hs[i], horizon);
        if (probs)
            hinted = 1;
        else if (ec_predictor_predict(p->pred, p->hs[i], horizon, p->probs) < 0)
            return -1;
        else
            probs = p->probs;
        float k = (float)ec_history_k(p->hs[i]);
        for (int32_t e = 0; e < p->E; e++) {
            float x = k * probs[e]; /* probability this sequence's top-k includes e */
            row[e] *= 1.0f - (x < 1.0f ? x : 1.0f);
        }
    }
    for (int32_t e = 0; e < p->E; e++)
        row[e] = 1.0f - row[e];
    return hinted;
}

const float *policy_qrow(ec_policy *p, int32_t layer)
{
    float *row = p->qrow + (size_t)layer * (size_t)p->E;
    if (p->qstamp[layer] == p->serial)
        return row;
    int32_t d = layer - p->layer;
    if (d <= 0)
        d += p->L;
    int src = policy_predict_use(p, d, row);
    if (src < 0)
        return NULL;
    p->qsrc[layer] = (uint8_t)src;
    p->qstamp[layer] = p->serial;
    return row;
}

int64_t policy_next_use(ec_policy *p, int32_t slot)
{
    const ec_slot *s = &p->c->slots[slot];
    if (s->layer < 0)
        return INT64_MAX;
    /* The next use after step s0 is still the next use after a later step s
     * as long as it lies beyond s: recompute only when the slot changed
     * hands or its next use has come. */
    int64_t key = cache_key(p->c, s->layer, s->expert);
    if (p->nu_stamp[slot] != key || p->nu[slot] <= p->step) {
        p->nu[slot] = p->fut.next_use(p->fut.ctx, p->step + 1, s->layer, s->expert);
        p->nu_stamp[slot] = key;
    }
    return p->nu[slot];
}

/* Whether slot may be evicted now (empty slots included). */
static inline int evictable(const ec_policy *p, int32_t i, int for_prefetch)
{
    const ec_slot *s = &p->c->slots[i];
    if (s->state == EC_SLOT_EMPTY)
        return 1;
    if (s->state != EC_SLOT_READY || s->pins > 0 || s->need_step == p->step)
        return 0;
    return !for_prefetch || p->plan_keep[i] != p->serial;
}

static int32_t pick(ec_policy *p, int32_t layer, int for_prefetch)
{
    ec_policy_kind kind = p->cfg.kind;
    int32_t first, n;
    cache_pool(p->c, layer, &first, &n);
    const ec_cache *c = p->c;
    int32_t best = -1;
    double best_key = 0;   /* primary key: lower is a better victim */
    int64_t best_rec = 0;  /* tie-break: lower recency is better */
    const float *row = NULL;
    int32_t row_layer = -1;
    for (int32_t i = first; i < first + n; i++) {
        if (!evictable(p, i, for_prefetch) || !cache_quota_allows(c, i, layer))
            continue;
        const ec_slot *s = &c->slots[i];
        if (s->state == EC_SLOT_EMPTY)
            return i;
        double key;
        switch (kind) {
        case EC_POLICY_LFU:
            key = (double)c->freq[cache_key(c, s->layer, s->expert)];
            break;
        case EC_POLICY_GATED:
        case EC_POLICY_HYBRID:
            if (s->layer != row_layer) {
                row = policy_qrow(p, s->layer);
                row_layer = s->layer;
            }
            key = row ? row[s->expert] : 0.0;
            reuse_whatif_key(p, i, &key); /* what-if: a known next use comes first */
            break;
        case EC_POLICY_ORACLE: {
            int64_t nu = policy_next_use(p, i);
            key = nu == INT64_MAX ? -1e300 : -(double)nu;
            break;
        }
        default:
            key = 0;
        }
        int64_t rec = slot_recency(s);
        if (best < 0 || key < best_key || (key == best_key && rec < best_rec)) {
            best = i;
            best_key = key;
            best_rec = rec;
        }
    }
    return best;
}

/* Under quotas (ec_cache_set_quotas), a victim that keeps the partition;
 * when there is none, any. */
#define WITH_QUOTAS(p, call)                                                                      \
    do {                                                                                          \
        int32_t v_ = (call);                                                                      \
        if (v_ < 0 && (p)->c->quota) {                                                            \
            (p)->c->quota_off = 1;                                                                \
            v_ = (call);                                                                          \
            (p)->c->quota_off = 0;                                                                \
        }                                                                                         \
        return v_;                                                                                \
    } while (0)

int32_t victim_demand(ec_policy *p, int32_t layer)
{
    WITH_QUOTAS(p, policy_uses_reuse(p) ? reuse_victim(p, layer) : pick(p, layer, 0));
}
int32_t victim_prefetch(ec_policy *p, int32_t layer) { WITH_QUOTAS(p, pick(p, layer, 1)); }

int32_t victim_oracle_prefetch(ec_policy *p, int32_t layer, int64_t need)
{
    int32_t v = victim_prefetch(p, layer);
    if (v < 0 || p->c->slots[v].state == EC_SLOT_EMPTY)
        return v;
    return policy_next_use(p, v) > need ? v : -1;
}
