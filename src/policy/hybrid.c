/*
 * hybrid: gated, plus a second place to run a miss - the host.
 *
 * Placement. The experts of a step that have no slot (misses) are taken in
 * the router's order. Each goes where the step, as planned so far, ends
 * sooner:
 *   copied: its copy is in after the link's wait + transfer_ms (the copy
 *         engines share the link: each copy chosen moves the link's finish
 *         by transfer_ms / engines), and the device computes the layer
 *         (compute_ms) once its last copy is in;
 *   host: the host's wait + host_ms per expert (its weights streamed once
 *         through the host's memory) + host_act_ms once per step (the
 *         activations to the host and the summed output back), in parallel
 *         with the device.
 * A tie goes to the copy.
 * The lanes' waits at the router's decision come from the caller
 * (ec_policy_set_lanes); the policy keeps no clock. A hit always runs on
 * the device; a copy goes to a slot chosen by gated's demand rule (reuse.c),
 * and is kept like gated's. With host_ms = 0 nothing runs on the host and
 * every decision is gated's; the same holds wherever the host never
 * finishes first.
 *
 * Copy behind. An expert run on the host takes no slot, so a cache that
 * only ever admits copies would stop warming once the host takes the misses
 * (every use would run on the host). After the prefetch plan, the experts
 * the step ran on the host are considered for a background copy into their
 * pool, highest calibrated reuse first - the rate at which experts with
 * that predicted reuse and age were used at their next occurrence, measured
 * on the stream (reuse.c). The victim is the one gated would evict for a
 * demand (reuse_victim: recency, unless calibrated reuse clearly says
 * otherwise): a copy behind is a demand deferred. It is queued only when
 * the expert's calibrated reuse exceeds the victim's value: the victim's
 * calibrated reuse or the regret rate of this cache's evictions, whichever
 * is higher (0 for an empty slot; the value gated's prefetch gate puts on a
 * victim). The copy is queued behind every demand and prefetch and taken
 * back at the next observation if it has not started: it only uses link
 * time the step leaves idle. A miss whose copy is already on its way
 * (LOADING) waits for it on the device.
 *
 * Never allocates.
 */
#include "internal.h"

void ec_policy_set_lanes(ec_policy *p, double link_wait_ms, double host_wait_ms)
{
    if (!p)
        return;
    p->lane_link = link_wait_ms > 0 ? link_wait_ms : 0; /* NaN and negatives: no wait */
    p->lane_host = host_wait_ms > 0 ? host_wait_ms : 0;
}

int ec_policy_on_host(const ec_policy *p, int32_t layer, int32_t expert)
{
    if (!p || p->cfg.kind != EC_POLICY_HYBRID || layer < 0 || layer >= p->L || expert < 0 ||
        expert >= p->E || p->step < 0)
        return 0;
    return p->host_at[cache_key(p->c, layer, expert)] == p->serial;
}

void hybrid_begin_step(ec_policy *p)
{
    p->hy_link = p->lane_link;
    p->hy_host = p->lane_host;
    p->hy_dev = 0;
    p->hy_n_host = 0;
}

static inline double max2(double a, double b) { return a > b ? a : b; }

int hybrid_place(ec_policy *p, int32_t layer, int32_t expert)
{
    double transfer = p->cfg.transfer_ms, host = p->cfg.host_ms, dev = p->cfg.compute_ms;
    if (!(host > 0))
        return 0;
    /* the step's end either way: the device computes once its copies are
     * in, the host in parallel (activations moved once for all its experts);
     * a tie goes to the copy, which warms the cache */
    double act = p->cfg.host_act_ms, host_end = p->hy_n_host ? p->hy_host + act : 0;
    double copy_ready = p->hy_link + transfer;
    double end_host = max2(p->hy_dev + dev, p->hy_host + host + act);
    double end_copy = max2(max2(p->hy_dev, copy_ready) + dev, host_end);
    if (end_host < end_copy) {
        p->hy_host += host;
        p->hy_n_host++;
        p->host_at[cache_key(p->c, layer, expert)] = p->serial;
        p->c->stats.host_runs++;
        return 1;
    }
    p->hy_dev = max2(p->hy_dev, copy_ready);
    p->hy_link += transfer / p->cfg.copy_engines;
    return 0;
}

void hybrid_copy_behind(ec_policy *p, const int16_t *experts, int32_t k)
{
    ec_cache *c = p->c;
    /* the step's host experts with no slot, highest calibrated reuse first
     * (insertion sort into p->rank: the planners are done with it) */
    int32_t n = 0;
    for (int32_t i = 0; i < k; i++) {
        int32_t key = cache_key(c, p->layer, experts[i]);
        if (p->host_at[key] != p->serial || c->where[key] >= 0)
            continue;
        double q = reuse_calibrated(p, p->layer, experts[i]);
        if (!(q > 0))
            continue;
        int32_t j = n++;
        while (j > 0 && reuse_calibrated(p, p->layer, p->rank[j - 1]) < q) {
            p->rank[j] = p->rank[j - 1];
            j--;
        }
        p->rank[j] = experts[i];
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t e = p->rank[i];
        double q = reuse_calibrated(p, p->layer, e);
        int32_t v = reuse_victim(p, p->layer); /* as gated admits a demand */
        if (v < 0)
            continue;
        const ec_slot *vs = &c->slots[v];
        double value = 0;
        if (vs->state != EC_SLOT_EMPTY) {
            double qv = reuse_calibrated(p, vs->layer, vs->expert);
            if (qv < 0) {
                const float *vrow = policy_qrow(p, vs->layer);
                qv = vrow ? vrow[vs->expert] : 1.0;
            }
            double r = policy_regret_rate(p);
            value = qv > r ? qv : r;
        }
        if (q > value) {
            plan_queue(p, v, p->layer, e, p->step + p->L, q);
            c->stats.copy_behinds++;
        }
    }
}
