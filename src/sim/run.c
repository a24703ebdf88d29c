/*
 * One replay: the policy decides, a virtual clock and modeled copy engines
 * say how long it takes. See sim.h for the timing model.
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* ---- the oracle's view of the trace ---- */

static int64_t fut_next_use(void *ctx, int64_t from, int32_t layer, int32_t expert)
{
    return sim_next_use(ctx, from, layer, expert);
}

static int32_t fut_experts_at(void *ctx, int64_t step, int32_t *layer, int16_t *experts)
{
    const ec_sim *s = ctx;
    if (step < 0 || step >= s->S)
        return 0;
    *layer = (int32_t)(step % s->L);
    int32_t n = (int32_t)(s->off[step + 1] - s->off[step]);
    memcpy(experts, s->ex + s->off[step], (size_t)n * sizeof *experts);
    return n;
}

/* ---- copy engines ---- */

typedef struct engines {
    int32_t n;
    double *free_at;   /* [n] when the engine finishes its current transfer */
    int32_t *cur;      /* [n] slot of the transfer in flight, -1 */
    double *ready_at;  /* [n_slots] completion time of the slot's transfer */
    double *reader_end;/* [n_slots] when the slot's last reader finished */
    double transfer_ms;
    double obs_time;   /* transfers queued at this time cannot start earlier */
    double prefetch_delay; /* prefetches also wait for the predictor's run (ms) */
    ec_queue *q;
    ec_policy *p;
} engines;

static int32_t earliest_engine(const engines *g)
{
    int32_t best = 0;
    for (int32_t i = 1; i < g->n; i++)
        if (g->free_at[i] < g->free_at[best])
            best = i;
    return best;
}

/* Starts the queue's head on the engine that frees first, if it can start
 * by `limit` (INFINITY: whenever). Returns 1 when one started. */
static int start_next(engines *g, double limit)
{
    const ec_transfer *head = ec_queue_at(g->q, 0);
    if (!head)
        return 0;
    int32_t e = earliest_engine(g);
    double start = g->free_at[e];
    double earliest = g->obs_time + (head->demand ? 0 : g->prefetch_delay);
    if (start < earliest)
        start = earliest;
    if (start < g->reader_end[head->slot])
        start = g->reader_end[head->slot];
    if (start > limit)
        return 0;
    if (g->cur[e] >= 0) { /* its previous transfer ended at free_at <= start */
        ec_policy_completed(g->p, g->cur[e]);
        g->cur[e] = -1;
    }
    ec_transfer t;
    ec_queue_pop(g->q, &t);
    ec_policy_started(g->p, &t);
    g->cur[e] = t.slot;
    g->free_at[e] = start + g->transfer_ms;
    g->ready_at[t.slot] = g->free_at[e];
    return 1;
}

/* Brings the engines to time T: starts what can start by T, completes what
 * ends by T. */
static void advance(engines *g, double T)
{
    while (start_next(g, T))
        ;
    for (int32_t i = 0; i < g->n; i++)
        if (g->cur[i] >= 0 && g->free_at[i] <= T) {
            ec_policy_completed(g->p, g->cur[i]);
            g->cur[i] = -1;
        }
}

/* Earliest completion of a transfer in flight, or INFINITY. */
static double next_completion(const engines *g)
{
    double t = INFINITY;
    for (int32_t i = 0; i < g->n; i++)
        if (g->cur[i] >= 0 && g->free_at[i] < t)
            t = g->free_at[i];
    return t;
}

/* ---- the run ---- */

typedef struct run_state {
    ec_cache *c;
    ec_queue *q;
    ec_policy *p;
    ec_history **h;            /* [B] */
    const ec_history **hs;     /* [B] active ones for the current step */
    engines g;
    double *stall_l, *compute_l;
    double *host_free;         /* [host_lanes] when each host lane finishes its expert */
    int64_t host_runs;
    double host_busy;          /* host lane time spent (ms) */
    int32_t *quotas;           /* [n_groups][L] sized pools, or NULL */
} run_state;

static void run_free(run_state *r, int32_t B)
{
    ec_policy_destroy(r->p);
    ec_queue_destroy(r->q);
    ec_cache_destroy(r->c);
    if (r->h)
        for (int32_t b = 0; b < B; b++)
            ec_history_destroy(r->h[b]);
    ec_free(r->h);
    ec_free((void *)r->hs);
    ec_free(r->g.free_at);
    ec_free(r->g.cur);
    ec_free(r->g.ready_at);
    ec_free(r->g.reader_end);
    ec_free(r->stall_l);
    ec_free(r->compute_l);
    ec_free(r->host_free);
    ec_free(r->quotas);
}

void ec_sim_result_clear(ec_sim_result *r)
{
    if (!r)
        return;
    ec_free(r->stall_per_layer);
    ec_free(r->bound_per_layer);
    memset(r, 0, sizeof *r);
}


static ec_status check_config(const ec_sim *s, const ec_sim_config *cfg, ec_error *err)
{
    const ec_sim_timing *tm = &cfg->timing;
    if (!(tm->transfer_ms >= 0) || !isfinite(tm->transfer_ms) || tm->engines < 1 ||
        !(tm->compute_fixed_ms >= 0) || !(tm->compute_per_expert_ms >= 0) ||
        !(tm->router_ms >= 0) || !(tm->predictor_ms >= 0) || !(tm->expert_bytes >= 0) ||
        tm->host_lanes < 0 || tm->host_lanes > 4096 || !(tm->host_stream_ms >= 0) ||
        !isfinite(tm->host_stream_ms) || !(tm->host_d2h_ms >= 0) || !isfinite(tm->host_d2h_ms) ||
        !(tm->host_h2d_ms >= 0) || !isfinite(tm->host_h2d_ms))
        return ec_error_set(err, EC_ERR_INVALID, "simulate: timing values must be >= 0 and "
                                                 "finite, engines >= 1, host lanes >= 0");
    if (cfg->kind == EC_POLICY_RESIDENT)
        return EC_OK;
    if (cfg->cache_per_layer > 0) {
        if (EC_MIN(cfg->cache_per_layer, s->E) < s->max_union)
            return ec_error_set(err, EC_ERR_INVALID,
                                "simulate: a cache of %d experts per layer cannot hold the %d "
                                "experts one step needs",
                                cfg->cache_per_layer, s->max_union);
    } else if (cfg->cache_global > 0) {
        if (cfg->cache_global < s->max_union)
            return ec_error_set(err, EC_ERR_INVALID,
                                "simulate: a global cache of %d experts cannot hold the %d "
                                "experts one step needs",
                                cfg->cache_global, s->max_union);
    } else
        return ec_error_set(err, EC_ERR_INVALID, "simulate: no cache size given");
    if (cfg->cache_sized) {
        if (cfg->cache_per_layer > 0 || s->n_groups < 2)
            return ec_error_set(err, EC_ERR_INVALID,
                                "simulate: sized pools need a global size and at least 2 "
                                "batches of sequences to fit on (held out)");
        if (cfg->cache_global < (int64_t)s->max_union * s->L)
            return ec_error_set(err, EC_ERR_INVALID,
                                "simulate: sized pools of %d slots cannot give each of %d layers "
                                "the %d experts one step needs",
                                cfg->cache_global, s->L, s->max_union);
    }
    if (ec_policy_kind_predicts(cfg->kind))
        for (int32_t g = 0; g < s->n_groups; g++)
            if (!s->pred[g])
                return ec_error_set(err, EC_ERR_INVALID,
                                    "simulate: policy '%s' needs a predictor",
                                    ec_policy_kind_name(cfg->kind));
    return EC_OK;
}

/* The activations leave for the host when the router starts (they are its
 * input): only the part of their transfer longer than the router delays a
 * host expert. */
static double host_d2h_wait(const ec_sim_timing *tm)
{
    return tm->host_d2h_ms > tm->router_ms ? tm->host_d2h_ms - tm->router_ms : 0;
}

static ec_status setup(ec_sim *s, const ec_sim_config *cfg, run_state *r, ec_error *err)
{
    int32_t per_layer = cfg->kind == EC_POLICY_RESIDENT ? s->E : cfg->cache_per_layer;
    int32_t global = cfg->kind == EC_POLICY_RESIDENT ? 0 : cfg->cache_global;
    ec_status st;
    if ((st = ec_cache_create(s->L, s->E, per_layer, global, &r->c)) ||
        (st = ec_queue_create(ec_cache_n_slots(r->c), &r->q)))
        return ec_error_set(err, st, "simulate: cannot create the cache: %s", ec_status_str(st));
    if (cfg->cache_sized && cfg->kind != EC_POLICY_RESIDENT) {
        /* each group's partition from the other groups' use profile */
        r->quotas = ec_malloc((size_t)s->n_groups * (size_t)s->L * sizeof *r->quotas);
        uint8_t *mask = ec_malloc(s->t->n_seqs);
        st = r->quotas && mask ? EC_OK : EC_ERR_NOMEM;
        for (int32_t g = 0; g < s->n_groups && st == EC_OK; g++) {
            for (size_t q = 0; q < s->t->n_seqs; q++)
                mask[q] = (int32_t)(q / (size_t)s->B) != g;
            st = ec_cache_size_layers(s->t, mask, ec_cache_n_slots(r->c), s->max_union,
                                      r->quotas + (size_t)g * (size_t)s->L, err);
        }
        ec_free(mask);
        if (st)
            return st == EC_ERR_NOMEM ? ec_error_set(err, st, "out of memory") : st;
    }
    const ec_sim_timing *tm = &cfg->timing;
    ec_policy_config pc = {
        .kind = cfg->kind,
        .horizon = cfg->horizon,
        .prefetch_k = cfg->prefetch_k,
        .transfer_ms = tm->transfer_ms,
        .compute_ms = tm->router_ms +
                      tm->compute_fixed_ms + tm->compute_per_expert_ms * s->mean_union,
        .host_ms = ec_sim_host_ms(tm, 1),
        .host_act_ms = tm->host_lanes > 0 ? host_d2h_wait(tm) + tm->host_h2d_ms : 0,
        .copy_engines = tm->engines,
    };
    if ((cfg->kind == EC_POLICY_GATED || cfg->kind == EC_POLICY_HYBRID) &&
        (st = sim_reuse_models(s, err)))
        return st;
    ec_future fut = {fut_next_use, fut_experts_at, s};
    if ((st = ec_policy_create(&pc, r->c, r->q, s->pred[0], &fut, &r->p, err)))
        return st;
    if ((cfg->kind == EC_POLICY_GATED || cfg->kind == EC_POLICY_HYBRID) &&
        ec_policy_set_whatif_evict(r->p, s->whatif_evict))
        return ec_error_set(err, EC_ERR_INVALID, "simulate: what-if eviction refused");
    r->h = ec_calloc((size_t)s->B, sizeof *r->h);
    r->hs = ec_calloc((size_t)s->B, sizeof *r->hs);
    int32_t ns = ec_cache_n_slots(r->c);
    r->g.n = tm->engines;
    r->g.free_at = ec_calloc((size_t)tm->engines, sizeof *r->g.free_at);
    r->g.cur = ec_malloc((size_t)tm->engines * sizeof *r->g.cur);
    r->g.ready_at = ec_calloc((size_t)ns, sizeof *r->g.ready_at);
    r->g.reader_end = ec_calloc((size_t)ns, sizeof *r->g.reader_end);
    r->stall_l = ec_calloc((size_t)s->L, sizeof *r->stall_l);
    r->compute_l = ec_calloc((size_t)s->L, sizeof *r->compute_l);
    r->host_free = ec_calloc((size_t)(tm->host_lanes > 0 ? tm->host_lanes : 1),
                             sizeof *r->host_free);
    if (!r->host_free || !r->h || !r->hs || !r->g.free_at || !r->g.cur || !r->g.ready_at || !r->g.reader_end ||
        !r->stall_l || !r->compute_l)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    /* as deep as the deepest predictor reads, so it sees what its fit saw */
    int32_t depth = 8;
    for (int32_t g = 0; g < s->n_groups; g++)
        if (s->pred[g] && ec_predictor_history_depth(s->pred[g]) > depth)
            depth = ec_predictor_history_depth(s->pred[g]);
    for (int32_t b = 0; b < s->B; b++)
        if ((st = ec_history_create(s->L, s->E, s->t->k, depth, &r->h[b])))
            return ec_error_set(err, st, "simulate: cannot create a history");
    for (int32_t i = 0; i < tm->engines; i++)
        r->g.cur[i] = -1;
    r->g.transfer_ms = tm->transfer_ms;
    r->g.q = r->q;
    r->g.p = r->p;
    return EC_OK;
}

static int32_t earliest_lane(const run_state *r, const ec_sim_timing *tm)
{
    int32_t best = 0;
    for (int32_t i = 1; i < tm->host_lanes; i++)
        if (r->host_free[i] < r->host_free[best])
            best = i;
    return best;
}

/* Sequences of the batch (trace rows, -1 absent) whose layer l uses expert e. */
static int32_t tokens_using(const ec_sim *s, const int64_t *rows, int32_t l, int32_t e)
{
    int32_t b = 0;
    for (int32_t i = 0; i < s->B; i++) {
        if (rows[i] < 0)
            continue;
        const int16_t *x = ec_trace_experts(s->t, (size_t)rows[i], l);
        for (int32_t j = 0; j < s->t->k; j++)
            if (x[j] == e) {
                b++;
                break;
            }
    }
    return b;
}

static ec_status replay(ec_sim *s, const ec_sim_config *cfg, run_state *r, double *total,
                        ec_error *err)
{
    const ec_sim_timing *tm = &cfg->timing;
    /* the router is on the critical path; the predictor runs on the host
     * after the demands are issued and delays only the prefetches */
    double overhead = tm->router_ms;
    double t = 0;
    int32_t group = -1, n_act = 0;
    engines *g = &r->g;
    const ec_slot *slots = ec_cache_slot(r->c, 0); /* the slot table, [n_slots] */
    int hybrid = cfg->kind == EC_POLICY_HYBRID && tm->host_lanes > 0;
    for (int64_t st = 0; st < s->S; st++) {
        int64_t j = st / s->L;
        int32_t l = (int32_t)(st % s->L);
        if (s->tok_group[j] != group) { /* a new batch of sequences */
            group = s->tok_group[j];
            for (int32_t b = 0; b < s->B; b++)
                ec_history_reset(r->h[b]);
            if (ec_policy_kind_predicts(cfg->kind) && ec_policy_set_predictor(r->p, s->pred[group]))
                return ec_error_set(err, EC_ERR_INVALID, "simulate: predictor shape mismatch");
            if (r->quotas &&
                ec_cache_set_quotas(r->c, r->quotas + (size_t)group * (size_t)s->L))
                return ec_error_set(err, EC_ERR_INVALID, "simulate: pool sizes do not fit");
            if ((cfg->kind == EC_POLICY_GATED || cfg->kind == EC_POLICY_HYBRID) &&
                ec_policy_set_reuse_model(r->p, s->reuse ? s->reuse[group] : NULL))
                return ec_error_set(err, EC_ERR_INVALID, "simulate: reuse model shape mismatch");
        }
        const int64_t *rows = s->tok_rows + (size_t)j * s->B;
        if (ec_policy_kind_predicts(cfg->kind)) { /* only predictors read the histories */
            n_act = 0;
            for (int32_t b = 0; b < s->B; b++)
                if (rows[b] >= 0) {
                    ec_history_observe(r->h[b], l, ec_trace_experts(s->t, (size_t)rows[b], l));
                    ec_history_hint_trace(r->h[b], s->t, (size_t)rows[b], l);
                    r->hs[n_act++] = r->h[b];
                }
        }
        const int16_t *ex = s->ex + s->off[st];
        int32_t n = (int32_t)(s->off[st + 1] - s->off[st]);
        double router = t + overhead, now = router;
        advance(g, now);
        g->obs_time = now;
        g->prefetch_delay = ec_policy_kind_predicts(cfg->kind) ? tm->predictor_ms : 0;
        if (hybrid) { /* the lanes' waits at the router's decision */
            double link = g->free_at[earliest_engine(g)] - now;
            ec_policy_set_lanes(r->p, link, r->host_free[earliest_lane(r, tm)] - now);
        }
        ec_status o;
        while ((o = ec_policy_observe_batch(r->p, st, l, ex, n, r->hs, n_act)) == EC_ERR_BUSY) {
            double next = next_completion(g);
            if (next == INFINITY && !start_next(g, INFINITY))
                return ec_error_set(err, EC_ERR_STATE,
                                    "simulate: step %lld: no slot can be freed", (long long)st);
            if (next != INFINITY)
                now = next;
            advance(g, now);
            g->obs_time = now;
        }
        if (o)
            return ec_error_set(err, o, "simulate: step %lld: observe failed: %s", (long long)st,
                                ec_status_str(o));
        /* the experts run on the host: each on the earliest free lane */
        double host_end = now, act_in = router + host_d2h_wait(tm);
        int32_t n_dev = n;
        for (int32_t i = 0; hybrid && i < n; i++) {
            if (!ec_policy_on_host(r->p, l, ex[i]))
                continue;
            int32_t lane = earliest_lane(r, tm);
            double start = r->host_free[lane] > act_in ? r->host_free[lane] : act_in;
            double ms = ec_sim_host_ms(tm, tokens_using(s, rows, l, ex[i]));
            r->host_free[lane] = start + ms;
            if (r->host_free[lane] + tm->host_h2d_ms > host_end)
                host_end = r->host_free[lane] + tm->host_h2d_ms;
            r->host_runs++;
            r->host_busy += ms;
            n_dev--;
        }
        /* wait for every needed expert on the device */
        double ready = now;
        int busy = ec_queue_len(r->q) > 0;
        for (int32_t i = 0; i < n; i++) {
            if (hybrid && ec_policy_on_host(r->p, l, ex[i]))
                continue;
            const ec_slot *sl = slots + ec_cache_find(r->c, l, ex[i]);
            while (sl->state == EC_SLOT_QUEUED)
                if (!start_next(g, INFINITY))
                    return ec_error_set(err, EC_ERR_STATE, "simulate: queued slot never starts");
            if (sl->state == EC_SLOT_LOADING && g->ready_at[sl - slots] > ready)
                ready = g->ready_at[sl - slots];
            busy |= sl->state == EC_SLOT_LOADING;
        }
        if (busy || ready > now)
            advance(g, ready);
        double compute = tm->compute_fixed_ms + tm->compute_per_expert_ms * n_dev;
        double end = ready + compute;
        for (int32_t i = 0; i < n; i++) {
            if (hybrid && ec_policy_on_host(r->p, l, ex[i]))
                continue;
            int32_t slot = ec_policy_acquire(r->p, st, l, ex[i]);
            g->reader_end[slot] = end;
            ec_policy_release(r->p, slot);
        }
        /* stall: the time beyond the device's own compute; the layer ends
         * when its host experts are done too */
        double stall = ready - router;
        if (host_end > end) {
            stall += host_end - end;
            end = host_end;
        }
        r->stall_l[l] += stall;
        /* what the device would compute with every expert on it: the same
         * for every policy (the analytic bound's compute) */
        r->compute_l[l] += tm->compute_fixed_ms + tm->compute_per_expert_ms * n + overhead;
        t = end;
    }
    *total = t;
    return EC_OK;
}

ec_status ec_sim_run(ec_sim *s, const ec_sim_config *cfg, ec_sim_result *res, ec_error *err)
{
    if (!s || !cfg || !res)
        return ec_error_set(err, EC_ERR_INVALID, "ec_sim_run: NULL argument");
    memset(res, 0, sizeof *res);
    ec_status st = check_config(s, cfg, err);
    if (st)
        return st;
    run_state r = {0};
    double total = 0;
    if ((st = setup(s, cfg, &r, err)) || (st = replay(s, cfg, &r, &total, err))) {
        run_free(&r, s->B);
        return st;
    }
    if (cfg->kind != EC_POLICY_RESIDENT &&
        sim_belady_loads(s, cfg->cache_per_layer, cfg->cache_per_layer > 0 ? 0 : cfg->cache_global)) {
        run_free(&r, s->B);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory computing the bound");
    }
    res->stall_per_layer = ec_calloc((size_t)s->L, sizeof *res->stall_per_layer);
    res->bound_per_layer = ec_calloc((size_t)s->L, sizeof *res->bound_per_layer);
    if (!res->stall_per_layer || !res->bound_per_layer) {
        run_free(&r, s->B);
        ec_sim_result_clear(res);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    }
    const ec_sim_timing *tm = &cfg->timing;
    double ntok = (double)s->n_tok;
    res->kind = cfg->kind;
    res->cache_per_layer = cfg->kind == EC_POLICY_RESIDENT ? s->E : cfg->cache_per_layer;
    res->cache_global = cfg->kind == EC_POLICY_RESIDENT ? 0 : cfg->cache_global;
    res->cache_sized = r.quotas != NULL;
    res->horizon = ec_policy_config_get(r.p)->horizon;
    res->n_tokens = s->n_tok;
    res->n_steps = s->S;
    res->n_layers = s->L;
    res->total_ms = total;
    res->tpot_ms = total / ntok;
    res->stats = *ec_cache_stats_get(r.c);
    /* prefetches whose transfer started and that were never used */
    for (int32_t i = 0; i < ec_cache_n_slots(r.c); i++) {
        const ec_slot *sl = ec_cache_slot(r.c, i);
        if (sl->prefetched && (sl->state == EC_SLOT_READY || sl->state == EC_SLOT_LOADING))
            res->unused_at_end++;
    }
    res->stats.wasted += res->unused_at_end;
    const ec_cache_stats *cs = &res->stats;
    double stall = 0, compute = 0, bound_loads = 0, bound_compute = 0;
    for (int32_t l = 0; l < s->L; l++) {
        stall += r.stall_l[l];
        compute += r.compute_l[l];
        res->stall_per_layer[l] = r.stall_l[l] / ntok;
        double c_l = r.compute_l[l]; /* compute + router: the same for every policy */
        double x_l = cfg->kind == EC_POLICY_RESIDENT ? 0
                                                     : (double)s->bound_loads[l] * tm->transfer_ms /
                                                           tm->engines;
        res->bound_per_layer[l] = (c_l > x_l ? c_l : x_l) / ntok;
        bound_compute += c_l;
        bound_loads += x_l;
    }
    res->stall_ms_per_token = stall / ntok;
    res->compute_ms_per_token = compute / ntok;
    res->lower_bound_ms_per_token = (bound_compute > bound_loads ? bound_compute : bound_loads) / ntok;
    res->hit_rate = cs->acquires ? (double)(cs->hits + cs->inflight_hits) / (double)cs->acquires : 0;
    res->resident_rate = cs->acquires ? (double)cs->hits / (double)cs->acquires : 0;
    res->transfers_per_token = (double)cs->loads / ntok;
    res->wasted_transfers_per_token = (double)cs->wasted / ntok;
    res->bytes_per_token = res->transfers_per_token * tm->expert_bytes;
    res->wasted_bytes_per_token = res->wasted_transfers_per_token * tm->expert_bytes;
    res->prefetch_precision = cs->prefetches ? (double)cs->prefetch_hits / (double)cs->prefetches : NAN;
    res->host_runs_per_token = (double)r.host_runs / ntok;
    res->host_busy_ms_per_token = r.host_busy / ntok;
    run_free(&r, s->B);
    return EC_OK;
}
