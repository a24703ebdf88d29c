/*
 * Prefetch planners: what to queue for the steps after the current one.
 * Each runs after the demands of the current step are queued, so demands
 * always leave first; prefetches are queued in order of need (nearest
 * target step first, then by predicted probability). Never allocates.
 */
#include "internal.h"

void plan_queue(ec_policy *p, int32_t slot, int32_t layer, int32_t expert, int64_t target_step,
                double prob)
{
    cache_assign(p->c, slot, layer, expert, p->step, 0, target_step);
    ec_transfer t = {.slot = slot, .layer = layer, .expert = expert, .demand = 0,
                     .target_step = target_step, .prob = prob};
    queue_push(p->q, &t);
    int32_t key = cache_key(p->c, layer, expert);
    if (p->taken[key] == p->serial) { /* the same prefetch queued again: not cancelled */
        p->n_requeued++;
        p->taken[key] = -1;
    }
}

static int32_t prefetch_k(const ec_policy *p)
{
    int32_t k = p->cfg.prefetch_k > 0 ? p->cfg.prefetch_k : p->k_obs;
    return EC_MIN(k, p->E);
}

/* Layer of the target `h` steps after the current one. */
static inline int32_t target_layer(const ec_policy *p, int32_t h) { return (p->layer + h) % p->L; }

/*
 * First pass shared by predict and gated: the candidates of every target
 * that are already on the device (or on their way) are kept, so that a
 * prefetch for one target never evicts what another target wants.
 */
static int keep_present(ec_policy *p, int32_t H, int32_t kp)
{
    for (int32_t h = 1; h <= H; h++) {
        int32_t t = target_layer(p, h);
        const float *row = policy_qrow(p, t);
        if (!row)
            return 0;
        ec_rank(row, p->E, p->rank, kp);
        for (int32_t j = 0; j < kp; j++) {
            int32_t s = p->c->where[cache_key(p->c, t, p->rank[j])];
            if (s >= 0 && row[p->rank[j]] > 0)
                p->plan_keep[s] = p->serial;
        }
    }
    return 1;
}

void plan_predict(ec_policy *p)
{
    int32_t H = p->cfg.horizon, kp = prefetch_k(p);
    if (!keep_present(p, H, kp))
        return;
    for (int32_t h = 1; h <= H; h++) {
        int32_t t = target_layer(p, h);
        const float *row = policy_qrow(p, t);
        ec_rank(row, p->E, p->rank, kp);
        for (int32_t j = 0; j < kp; j++) {
            int32_t e = p->rank[j];
            if (!(row[e] > 0) || p->c->where[cache_key(p->c, t, e)] >= 0)
                continue;
            int32_t v = victim_prefetch(p, t);
            if (v >= 0)
                plan_queue(p, v, t, e, p->step + h, row[e]);
        }
    }
}

/*
 * gated: a prefetch of an expert with probability q of use, h steps ahead,
 * is queued only when q * saved > (1 - q) * transfer + value(victim), where
 * saved = min(transfer, h * step) is the stall it can hide - step being the
 * compute of one step: a demand load can only start once the router has
 * spoken, so the link idles while a layer computes, and a right prefetch
 * moves a transfer the step would make anyway into that time (it adds no
 * load: a busy link gains as much, the compute it overlaps) -, transfer
 * the time a wrong prefetch occupies the link, and value(victim) =
 * max(q(victim at its next occurrence), regret rate) * transfer the
 * expected reload cost of what it evicts (0 for an empty slot). The regret
 * rate - how often this cache's evictions were asked for again at their
 * next occurrence - keeps a predictor blind to recency (a layer prior)
 * from valuing a just-used expert at its average frequency.
 *
 * The targets are the next `horizon` steps and, with the longest lead
 * time, the same layer of the next token (h = n_layers). For the first
 * ones q is the calibrated probability of calib.c: the rate at which the
 * row's source (the predictor, or the runtime's hint where one was given
 * for that target) was right about experts of that probability at that
 * horizon, measured on the stream and k / n_experts before any evidence,
 * so that neither source is trusted before the router has confirmed it
 * and an over-confident one is discounted. For the next token's layer q
 * (and the victim's) is the calibrated reuse of reuse.c: the rate at which
 * experts with that predicted reuse and age were used at their next
 * occurrence, measured on the stream, so a prefetch that long ahead passes
 * the gate only where the predictor has been right that far ahead.
 *
 * hybrid prices the same gate against its own alternative: a miss it did
 * not prefetch runs where the step ends sooner, often on the host, at a
 * cost of host = host_ms + host_act_ms. And its link is
 * often behind (demand copies, copies behind, earlier prefetches: the
 * caller's link wait, plus this step's copies and the prefetches planned
 * so far): a prefetch arrives after that wait and its transfer, and when
 * that is later than its need, the miss waits for the copy on the device
 * instead of running on the host. So where the host would take the miss
 * (host < the link's wait + transfer), hybrid's saved = host - max(0,
 * arrival - h * step), which is negative where a prefetch cannot arrive
 * before the host would have finished: on a link demand copies keep busy,
 * good guesses then no longer turn host runs into waits. Where a copy
 * would take it, the gate is gated's.
 */

/* Horizon of the i-th target (1-based): 1..horizon, then n_layers. */
static inline int32_t gated_horizon(const ec_policy *p, int32_t i)
{
    return i <= p->cfg.horizon ? i : p->L;
}

/* q row of a target: the reuse row for the next token's same layer (it
 * is the prediction policy_qrow would make, already made this step). */
static const float *gated_row(ec_policy *p, int32_t h)
{
    if (h == p->L)
        return p->reuse_at[p->layer] == p->serial ? reuse_row(p, p->layer) : NULL;
    return policy_qrow(p, target_layer(p, h));
}

/* Probability of use of (layer t, expert e) at target h, as gated prices it. */
static double gated_q(ec_policy *p, int32_t h, int32_t t, int32_t e, const float *row)
{
    if (h == p->L)
        return reuse_calibrated(p, t, e);
    double c = calib_q(p, t, row[e]);
    return c >= 0 ? c : row[e];
}

void plan_gated(ec_policy *p)
{
    int32_t n_targets = p->cfg.horizon < p->L ? p->cfg.horizon + 1 : p->L, kp = prefetch_k(p);
    double transfer = p->cfg.transfer_ms, step_ms = p->cfg.compute_ms;
    /* every short-horizon row is kept for calibration, gate open or not */
    for (int32_t h = 1; h <= p->cal_h; h++) {
        const float *row = policy_qrow(p, target_layer(p, h));
        if (row)
            calib_keep(p, h, target_layer(p, h), row);
    }
    if (!(transfer > 0))
        return;
    if (!(step_ms > 0))
        return;
    /* keep what any target wants (see keep_present) */
    for (int32_t i = 1; i <= n_targets; i++) {
        int32_t h = gated_horizon(p, i), t = target_layer(p, h);
        const float *row = gated_row(p, h);
        if (!row)
            return;
        ec_rank(row, p->E, p->rank, kp);
        for (int32_t j = 0; j < kp; j++) {
            int32_t s = p->c->where[cache_key(p->c, t, p->rank[j])];
            if (s >= 0 && row[p->rank[j]] > 0)
                p->plan_keep[s] = p->serial;
        }
    }
    /* hybrid: a miss's cost on the host, and when the link frees up */
    double host = p->cfg.host_ms + p->cfg.host_act_ms;
    int hy = p->cfg.kind == EC_POLICY_HYBRID && p->cfg.host_ms > 0;
    double link_at = p->hy_link;
    for (int32_t i = 1; i <= n_targets; i++) {
        int32_t h = gated_horizon(p, i), t = target_layer(p, h);
        const float *row = gated_row(p, h);
        double saved = EC_MIN(transfer, h * step_ms);
        ec_rank(row, p->E, p->rank, kp);
        for (int32_t j = 0; j < kp; j++) {
            int32_t e = p->rank[j];
            double q = gated_q(p, h, t, e, row);
            if (hy && host < link_at + transfer) /* the miss would run on the host */
                saved = host - EC_MAX(0.0, link_at + transfer - h * step_ms);
            if (!(q * saved > (1.0 - q) * transfer) || p->c->where[cache_key(p->c, t, e)] >= 0)
                continue;
            int32_t v = victim_prefetch(p, t);
            if (v < 0)
                continue;
            const ec_slot *vs = &p->c->slots[v];
            double value = 0;
            if (vs->state != EC_SLOT_EMPTY) {
                double qv = h == p->L ? reuse_calibrated(p, vs->layer, vs->expert) : -1.0;
                if (qv < 0) {
                    const float *vrow = policy_qrow(p, vs->layer);
                    qv = vrow ? calib_q(p, vs->layer, vrow[vs->expert]) : 1.0;
                    if (qv < 0)
                        qv = vrow[vs->expert];
                }
                double r = policy_regret_rate(p);
                value = (qv > r ? qv : r) * transfer;
            }
            if (q * saved > (1.0 - q) * transfer + value) {
                plan_queue(p, v, t, e, p->step + h, q);
                link_at += transfer / p->cfg.copy_engines;
            }
        }
    }
}

/*
 * oracle: every expert of the next max(horizon, n_layers) steps that is not
 * on the device is queued, nearest first, when its pool has a victim whose
 * next use comes after the need (Belady: never evict something needed
 * sooner than what replaces it). Once a pool has no such victim for a need,
 * it has none for any later need of this plan (the candidates for a later
 * need are a subset), so the pool is skipped from then on.
 */
void plan_oracle(ec_policy *p)
{
    int32_t W = EC_MAX(p->cfg.horizon, p->L);
    for (int32_t h = 1; h <= W; h++) {
        int64_t need = p->step + h;
        int32_t t = -1;
        int32_t n = p->fut.experts_at(p->fut.ctx, need, &t, p->fut_ex);
        if (n <= 0 || t < 0 || t >= p->L)
            break;
        int32_t pool = cache_pool_index(p->c, t);
        for (int32_t j = 0; j < n && j < p->E && p->pool_full[pool] != p->serial; j++) {
            int32_t e = p->fut_ex[j];
            if (e < 0 || e >= p->E || p->c->where[cache_key(p->c, t, e)] >= 0)
                continue;
            int32_t v = victim_oracle_prefetch(p, t, need);
            if (v >= 0)
                plan_queue(p, v, t, e, need, 1.0);
            else
                p->pool_full[pool] = p->serial;
        }
    }
}
