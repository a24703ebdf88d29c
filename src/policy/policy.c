/* The policy object: the observe / started / completed / acquire / release cycle. */
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const kind_names[] = {"on-demand", "lru",    "lfu",     "predict",
                                         "gated",     "oracle", "resident", "hybrid"};

const char *ec_policy_kind_name(ec_policy_kind k)
{
    return (unsigned)k < EC_COUNTOF(kind_names) ? kind_names[k] : "unknown";
}

ec_status ec_policy_kind_parse(const char *name, ec_policy_kind *out)
{
    for (size_t i = 0; name && i < EC_COUNTOF(kind_names); i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (ec_policy_kind)i;
            return EC_OK;
        }
    return EC_ERR_NOT_FOUND;
}

int ec_policy_kind_predicts(ec_policy_kind k)
{
    return k == EC_POLICY_PREDICT || k == EC_POLICY_GATED || k == EC_POLICY_HYBRID;
}

static ec_status check_predictor(const ec_policy *p, const ec_predictor *pred, ec_error *err)
{
    if (!pred)
        return ec_policy_kind_predicts(p->cfg.kind)
                   ? ec_error_set(err, EC_ERR_INVALID, "policy '%s' needs a predictor",
                                  ec_policy_kind_name(p->cfg.kind))
                   : EC_OK;
    if (ec_predictor_n_layers(pred) != 0 &&
        (ec_predictor_n_layers(pred) != p->L || ec_predictor_n_experts(pred) != p->E))
        return ec_error_set(err, EC_ERR_INVALID,
                            "predictor '%s' is fitted for %d layers x %d experts, the cache has "
                            "%d x %d",
                            ec_predictor_name(pred), ec_predictor_n_layers(pred),
                            ec_predictor_n_experts(pred), p->L, p->E);
    return EC_OK;
}

ec_status ec_policy_create(const ec_policy_config *cfg, ec_cache *cache, ec_queue *queue,
                           const ec_predictor *predictor, const ec_future *future,
                           ec_policy **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_policy_create: NULL out");
    *out = NULL;
    if (!cfg || !cache || !queue)
        return ec_error_set(err, EC_ERR_INVALID, "ec_policy_create: NULL argument");
    if ((unsigned)cfg->kind >= EC_COUNTOF(kind_names))
        return ec_error_set(err, EC_ERR_INVALID, "policy: unknown kind %d", (int)cfg->kind);
    if (queue->cap < cache->n_slots)
        return ec_error_set(err, EC_ERR_INVALID, "policy: queue capacity %d < %d cache slots",
                            queue->cap, cache->n_slots);
    ec_policy_config c = *cfg;
    if (c.horizon == 0)
        c.horizon = 1;
    if (c.horizon < 1 || c.horizon > cache->L)
        return ec_error_set(err, EC_ERR_INVALID, "policy: horizon %d is out of range [1, %d]",
                            c.horizon, cache->L);
    if (c.prefetch_k < 0 || c.prefetch_k > cache->E)
        return ec_error_set(err, EC_ERR_INVALID, "policy: prefetch_k %d is out of range [0, %d]",
                            c.prefetch_k, cache->E);
    if (!isfinite(c.transfer_ms) || c.transfer_ms < 0 || !isfinite(c.compute_ms) ||
        c.compute_ms < 0 || !isfinite(c.host_ms) || c.host_ms < 0 || !isfinite(c.host_act_ms) ||
        c.host_act_ms < 0)
        return ec_error_set(err, EC_ERR_INVALID, "policy: transfer_ms, compute_ms, host_ms and "
                                                 "host_act_ms must be finite and >= 0");
    if (c.copy_engines == 0)
        c.copy_engines = 1;
    if (c.copy_engines < 1 || c.copy_engines > 64)
        return ec_error_set(err, EC_ERR_INVALID, "policy: copy_engines %d is out of range [1, 64]",
                            c.copy_engines);
    if (c.kind == EC_POLICY_ORACLE && (!future || !future->next_use || !future->experts_at))
        return ec_error_set(err, EC_ERR_INVALID, "policy 'oracle' needs the future (ec_future)");
    if (c.kind == EC_POLICY_RESIDENT &&
        !(cache->per_layer == cache->E || cache->global == cache->L * cache->E))
        return ec_error_set(err, EC_ERR_INVALID,
                            "policy 'resident' needs a cache holding all %d x %d experts",
                            cache->L, cache->E);
    ec_policy *p = ec_calloc(1, sizeof *p);
    if (!p)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory creating policy");
    p->cfg = c;
    p->c = cache;
    p->q = queue;
    p->L = cache->L;
    p->E = cache->E;
    ec_status s = check_predictor(p, predictor, err);
    if (s) {
        ec_free(p);
        return s;
    }
    p->pred = predictor;
    if (future)
        p->fut = *future;
    size_t LE = (size_t)p->L * (size_t)p->E, ns = (size_t)cache->n_slots;
    p->taken = ec_malloc(LE * sizeof *p->taken);
    p->plan_keep = ec_malloc(ns * sizeof *p->plan_keep);
    p->probs = ec_malloc((size_t)p->E * sizeof *p->probs);
    p->qrow = ec_malloc(LE * sizeof *p->qrow);
    p->qstamp = ec_malloc((size_t)p->L * sizeof *p->qstamp);
    p->qsrc = ec_calloc((size_t)p->L, sizeof *p->qsrc);
    p->rank = ec_malloc((size_t)p->E * sizeof *p->rank);
    p->reuse = ec_malloc(LE * sizeof *p->reuse);
    p->reuse_at = ec_malloc((size_t)p->L * sizeof *p->reuse_at);
    p->ru_fit = ec_calloc(1, sizeof *p->ru_fit);
    p->ru_stream = ec_calloc(1, sizeof *p->ru_stream);
    p->ru_prob = ec_malloc(RU_NH * sizeof *p->ru_prob);
    p->scratch = ec_malloc((size_t)p->L * sizeof *p->scratch);
    p->scratch_key = ec_malloc((size_t)p->L * sizeof *p->scratch_key);
    ec_status ts = reuse_track_init(&p->track, p->L, p->E);
    p->fut_ex = ec_malloc((size_t)p->E * sizeof *p->fut_ex);
    p->nu = ec_malloc(ns * sizeof *p->nu);
    p->nu_stamp = ec_malloc(ns * sizeof *p->nu_stamp);
    p->evicted_at = ec_malloc(LE * sizeof *p->evicted_at);
    p->pool_full = ec_malloc((size_t)p->L * sizeof *p->pool_full);
    p->host_at = ec_malloc(LE * sizeof *p->host_at);
    if (!p->host_at || !p->taken || !p->plan_keep || !p->probs || !p->qrow || !p->qstamp ||
        !p->qsrc || calib_alloc(p) || !p->rank || !p->reuse || !p->reuse_at || ts ||
        !p->ru_fit || !p->ru_stream || !p->ru_prob || !p->scratch || !p->scratch_key ||
        !p->fut_ex || !p->nu || !p->nu_stamp || !p->evicted_at || !p->pool_full) {
        ec_policy_destroy(p);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory creating policy");
    }
    for (size_t i = 0; i < LE; i++)
        p->taken[i] = p->host_at[i] = -1;
    for (size_t i = 0; i < ns; i++)
        p->plan_keep[i] = p->nu_stamp[i] = -1;
    for (int32_t l = 0; l < p->L; l++)
        p->qstamp[l] = p->pool_full[l] = -1;
    ec_policy_reset(p);
    *out = p;
    return EC_OK;
}

void ec_policy_destroy(ec_policy *p)
{
    if (!p)
        return;
    ec_free(p->taken);
    ec_free(p->plan_keep);
    ec_free(p->probs);
    ec_free(p->qrow);
    ec_free(p->qstamp);
    ec_free(p->qsrc);
    calib_free(p);
    ec_free(p->rank);
    ec_free(p->reuse);
    ec_free(p->reuse_at);
    reuse_track_free(&p->track);
    ec_free(p->ru_fit);
    ec_free(p->ru_stream);
    ec_free(p->ru_prob);
    ec_free(p->scratch);
    ec_free(p->scratch_key);
    ec_free(p->fut_ex);
    ec_free(p->nu);
    ec_free(p->nu_stamp);
    ec_free(p->evicted_at);
    ec_free(p->pool_full);
    ec_free(p->host_at);
    ec_free(p);
}

const ec_policy_config *ec_policy_config_get(const ec_policy *p) { return &p->cfg; }

ec_status ec_policy_set_reuse_model(ec_policy *p, const ec_reuse_model *m)
{
    if (!p)
        return EC_ERR_INVALID;
    if (m && (m->L != p->L || m->E != p->E))
        return EC_ERR_INVALID;
    if (m)
        reuse_counts_cap(&m->fit, p->ru_fit);
    else
        memset(p->ru_fit, 0, sizeof *p->ru_fit);
    p->have_fit = m != NULL;
    p->ru_table_tok = -1; /* the table is made again at the next token */
    return EC_OK;
}

ec_status ec_policy_set_whatif_evict(ec_policy *p, int32_t tokens)
{
    if (!p || tokens < 0 || (tokens > 0 && (!policy_uses_reuse(p) || !p->fut.next_use)))
        return EC_ERR_INVALID;
    p->whatif_evict = tokens;
    return EC_OK;
}

ec_status ec_policy_set_predictor(ec_policy *p, const ec_predictor *predictor)
{
    ec_status s = check_predictor(p, predictor, NULL);
    if (s == EC_OK) {
        p->pred = predictor;
        p->serial++; /* memoised predictions came from the old one */
    }
    return s;
}

void ec_policy_reset(ec_policy *p)
{
    ec_cache_reset(p->c);
    queue_clear(p->q);
    if (p->cfg.kind == EC_POLICY_RESIDENT)
        cache_fill_all(p->c);
    p->step = -1;
    p->layer = 0;
    p->serial++; /* every stamp taken so far is now stale */
    p->counted = 0;
    p->n_taken = p->n_requeued = 0;
    for (size_t i = 0; i < (size_t)p->L * (size_t)p->E; i++)
        p->evicted_at[i] = -1;
    reuse_reset(p); /* gated's reuse rows and their calibration */
    calib_reset(p); /* gated's short-horizon calibration */
    for (int32_t i = 0; i < p->c->n_slots; i++)
        p->nu_stamp[i] = -1; /* next uses belong to the replay that computed them */
    p->evictions = p->regretted = 0;
    p->lane_link = p->lane_host = 0;
}

/* Step 1 of observe: every queued prefetch comes back, newest first, so
 * that each displaced occupant is restored where it was. */
static void take_back_prefetches(ec_policy *p)
{
    ec_queue *q = p->q;
    while (q->tail[QUEUE_PREFETCH] >= 0) {
        int32_t s = q->tail[QUEUE_PREFETCH];
        const ec_transfer *t = &q->node[s];
        p->taken[cache_key(p->c, t->layer, t->expert)] = p->serial;
        p->n_taken++;
        queue_remove(q, s);
        cache_restore(p->c, s);
    }
}

static void count_uses(ec_policy *p, const int16_t *experts, int32_t k)
{
    ec_cache *c = p->c;
    c->stats.acquires += k;
    for (int32_t i = 0; i < k; i++) {
        int32_t key = cache_key(c, p->layer, experts[i]), s = c->where[key];
        if (p->evicted_at[key] >= 0) { /* its next occurrence: was the eviction regretted? */
            p->regretted += s < 0 && p->step - p->evicted_at[key] <= p->L;
            p->evicted_at[key] = -1;
        }
        if (s < 0 || c->slots[s].state == EC_SLOT_QUEUED)
            c->stats.misses++;
        else if (c->slots[s].state == EC_SLOT_LOADING)
            c->stats.inflight_hits++;
        else
            c->stats.hits++;
    }
}

static void od_drop_if_done(ec_policy *p, int32_t slot);

ec_status ec_policy_observe_batch(ec_policy *p, int64_t step, int32_t layer,
                                  const int16_t *experts, int32_t k,
                                  const ec_history *const *hs, int32_t n_hist)
{
    if (!p || !experts || layer < 0 || layer >= p->L || k < 1 || k > p->E || step < 0 ||
        step < p->step || n_hist < 0 || (n_hist > 0 && !hs))
        return EC_ERR_INVALID;
    for (int32_t i = 0; i < k; i++)
        if (experts[i] < 0 || experts[i] >= p->E)
            return EC_ERR_INVALID;
    ec_cache *c = p->c;
    if (step != p->step) {
        p->serial++;
        p->step = step;
        p->counted = 0;
        p->n_taken = p->n_requeued = 0;
        if (p->cfg.kind == EC_POLICY_ON_DEMAND)
            for (int32_t i = 0; i < c->n_slots; i++)
                od_drop_if_done(p, i);
        if (p->cfg.kind == EC_POLICY_HYBRID)
            hybrid_begin_step(p);
    }
    p->layer = layer;
    p->hs = hs;
    p->n_hist = n_hist;
    p->k_obs = k;

    take_back_prefetches(p);
    if (!p->counted) {
        if (policy_uses_reuse(p)) {
            calib_observe(p, experts, k);
            reuse_observe(p, experts, k);
        }
        count_uses(p, experts, k);
        p->counted = 1;
    }
    /* demands: first keep what is here, then give the absent ones a slot */
    for (int32_t i = 0; i < k; i++) {
        int32_t s = c->where[cache_key(c, layer, experts[i])];
        if (s >= 0)
            c->slots[s].need_step = step;
    }
    for (int32_t i = 0; i < k; i++) {
        int32_t key = cache_key(c, layer, experts[i]);
        if (c->where[key] >= 0)
            continue;
        if (p->cfg.kind == EC_POLICY_HYBRID &&
            (p->host_at[key] == p->serial || hybrid_place(p, layer, experts[i])))
            continue; /* runs on the host: no slot */
        int32_t v = victim_demand(p, layer);
        if (v >= 0 && policy_uses_reuse(p))
            v = reuse_admit(p, layer, experts[i], v);
        if (v < 0) {
            p->hs = NULL;
            p->n_hist = 0;
            return EC_ERR_BUSY;
        }
        cache_assign(c, v, layer, experts[i], step, 1, step);
        ec_transfer t = {.slot = v, .layer = layer, .expert = experts[i], .demand = 1,
                         .target_step = step, .prob = 1.0};
        queue_push(p->q, &t);
        if (p->taken[key] == p->serial) { /* a queued prefetch became this demand */
            p->n_requeued++;
            p->taken[key] = -1;
        }
    }
    switch (p->cfg.kind) {
    case EC_POLICY_PREDICT: plan_predict(p); break;
    case EC_POLICY_GATED: plan_gated(p); break;
    case EC_POLICY_HYBRID:
        plan_gated(p);
        hybrid_copy_behind(p, experts, k);
        break;
    case EC_POLICY_ORACLE: plan_oracle(p); break;
    default: break;
    }
    c->stats.cancelled += p->n_taken - p->n_requeued;
    p->n_taken = p->n_requeued = 0;
    p->hs = NULL;
    p->n_hist = 0;
    return EC_OK;
}

ec_status ec_policy_observe(ec_policy *p, int64_t step, int32_t layer, const int16_t *experts,
                            int32_t k, const ec_history *h)
{
    return ec_policy_observe_batch(p, step, layer, experts, k, h ? &h : NULL, h ? 1 : 0);
}

void ec_policy_forget_predictions(ec_policy *p)
{
    for (int32_t l = 0; p && l < p->L; l++)
        p->qstamp[l] = -1;
}

void ec_policy_started(ec_policy *p, const ec_transfer *t)
{
    ec_cache *c = p->c;
    if (!t || t->slot < 0 || t->slot >= c->n_slots)
        return;
    ec_slot *prev = &c->prev[t->slot];
    if (prev->layer >= 0) {
        c->stats.evictions++;
        p->evicted_at[cache_key(c, prev->layer, prev->expert)] = p->step;
        p->evictions++;
        if (prev->prefetched && prev->state == EC_SLOT_READY)
            c->stats.wasted++;
        prev->layer = prev->expert = -1;
        prev->state = EC_SLOT_EMPTY;
    }
    c->slots[t->slot].state = EC_SLOT_LOADING;
    c->stats.loads++;
    if (!t->demand)
        c->stats.prefetches++;
}

/*
 * on-demand keeps nothing: an expert leaves once it is READY, has no reader,
 * and no longer serves the step whose router asked for it. Called at
 * release, at completion and when a new step begins, so that a reader that
 * finishes late (or a copy that completes after its reader was released)
 * never drops an expert the current step still has to acquire.
 */
static void od_drop_if_done(ec_policy *p, int32_t slot)
{
    ec_slot *s = &p->c->slots[slot];
    if (p->cfg.kind == EC_POLICY_ON_DEMAND && s->pins == 0 && s->state == EC_SLOT_READY &&
        s->need_step < p->step)
        cache_drop(p->c, slot);
}

void ec_policy_completed(ec_policy *p, int32_t slot)
{
    if (slot >= 0 && slot < p->c->n_slots && p->c->slots[slot].state == EC_SLOT_LOADING) {
        p->c->slots[slot].state = EC_SLOT_READY;
        od_drop_if_done(p, slot);
    }
}

int32_t ec_policy_acquire(ec_policy *p, int64_t step, int32_t layer, int32_t expert)
{
    ec_cache *c = p->c;
    if (layer < 0 || layer >= p->L || expert < 0 || expert >= p->E)
        return -1;
    int32_t key = cache_key(c, layer, expert), s = c->where[key];
    if (s < 0)
        return -1;
    ec_slot *sl = &c->slots[s];
    sl->pins++;
    sl->last_use = step;
    sl->uses++;
    c->freq[key]++;
    if (policy_uses_reuse(p))
        reuse_acquired(p, s, step);
    if (sl->prefetched) {
        sl->prefetched = 0;
        c->stats.prefetch_hits++;
    }
    return s;
}

void ec_policy_release(ec_policy *p, int32_t slot)
{
    if (slot < 0 || slot >= p->c->n_slots)
        return;
    ec_slot *s = &p->c->slots[slot];
    if (s->pins > 0)
        s->pins--;
    od_drop_if_done(p, slot);
}
