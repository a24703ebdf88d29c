/*
 * The loader: the policy module decides, the backend moves bytes and
 * orders streams. This file only translates decisions into copies and
 * events:
 *   - a transfer the policy queued is started by pump(): demands at once,
 *     prefetches while fewer than issue_window prefetches are in flight;
 *   - a started transfer into slot s: the copy stream waits on s.released
 *     (readers of the previous occupant), copies, records s.ready;
 *   - completions are found by querying ready events in issue order (the
 *     copy stream is FIFO), then reported to the policy;
 *   - an acquire of a slot not known complete makes the reader's stream
 *     wait on s.ready, bracketed by two timing events that measure the
 *     stall; a release records s.released on the reader's stream.
 */
#include "../core/internal.h"
#include "expertcast/loader.h"
#include "recorder.h"

#include <stdarg.h>
#include <string.h>

#define STALL_RING 64 /* timing pairs of waits not yet harvested */

typedef struct slot_rt {
    ec_event *ready;    /* after the latest copy into the slot (copy stream) */
    ec_event *released; /* after the latest reader's kernels (reader stream) */
    ec_event *c0, *c1;  /* bracket the latest copy (timing); NULL without timing */
    uint64_t gen;       /* transfers started into the slot */
} slot_rt;

typedef struct flight {
    int32_t slot;
    uint64_t gen;
    uint8_t demand;
} flight;

typedef struct stall_pair {
    ec_event *t0, *t1;
} stall_pair;

struct ec_loader {
    ec_backend *b;
    ec_store *store;
    ec_loader_config cfg;
    int32_t L, E, k, n_slots;
    size_t bytes, stride; /* expert size; slot stride (256-byte multiple) */

    ec_cache *cache;
    ec_queue *queue;
    ec_policy *policy;
    ec_history *hist;

    unsigned char *dev; /* n_slots * stride device bytes */
    ec_stream *copy;
    slot_rt *rt;        /* [n_slots] */

    flight *fl;         /* ring of started transfers, issue order */
    int32_t fl_cap, fl_head, fl_len, fl_prefetch;

    stall_pair stall[STALL_RING];
    int32_t st_head, st_len; /* pending pairs: [st_head, st_head + st_len) */

    int64_t token;      /* global token counter, -1 before the first observe */
    int64_t seq_token;  /* token_idx within the current sequence */
    int32_t last_layer; /* last layer observed, -1 when a new token must start */
    char *dataset;
    int64_t problem_id;
    ec_recorder *rec;

    /* an observe refused with EC_ERR_BUSY, to be retried with the same arguments */
    int pending;
    int32_t p_layer;
    int16_t p_ex[EC_MAX_K];
    int64_t p_token;
    int p_new_token;

    /* the last successful observation: its experts (layer: last_layer), for
     * re-planning when a hint comes after it */
    int16_t last_ex[EC_MAX_K];

    int64_t *host_acq;  /* [L*E] step of an open host acquire (hybrid), -1 */

    ec_loader_stats stats;
    ec_status broken;   /* first backend failure; later calls refuse */
    int finished;
    int keep_slots;     /* a wait failed: a kernel may still read the slots, never free them */
    char broken_msg[EC_ERROR_MAX];
    char errmsg[EC_ERROR_MAX];
};

/* ---- errors ---------------------------------------------------------------------- */

static ec_status lfail(ec_loader *l, ec_status s, const char *fmt, ...) EC_PRINTF(3, 4);
static ec_status lfail(ec_loader *l, ec_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->errmsg, sizeof l->errmsg, fmt, ap);
    va_end(ap);
    return s;
}

/* A backend call failed: the loader's view of the device is no longer
 * trustworthy, so it refuses further work. */
static ec_status broke(ec_loader *l, ec_status s, const char *what)
{
    lfail(l, s, "%s: %s", what, ec_backend_errmsg(l->b));
    if (!l->broken) {
        l->broken = s;
        memcpy(l->broken_msg, l->errmsg, sizeof l->broken_msg);
    }
    return s;
}

/* A wait on the device failed: as broke, and the slots' readers may still
 * be running, so their memory must never be freed. */
static ec_status wait_broke(ec_loader *l, ec_status s, const char *what)
{
    l->keep_slots = 1;
    return broke(l, s, what);
}

static ec_status usable(ec_loader *l)
{
    if (l->broken)
        return lfail(l, EC_ERR_STATE, "loader failed earlier: %s", l->broken_msg);
    if (l->finished)
        return lfail(l, EC_ERR_STATE, "loader already finished");
    return EC_OK;
}

/* ---- configuration and creation ------------------------------------------------- */

void ec_loader_config_default(ec_loader_config *c)
{
    memset(c, 0, sizeof *c);
    c->k = 2;
    c->cache_per_layer = 4;
    c->policy.kind = EC_POLICY_LRU;
    c->policy.horizon = 1;
    c->issue_window = 2;
    c->history_depth = 8;
}

static ec_status make_events(ec_loader *l)
{
    ec_status s;
    int timing = !l->cfg.no_timing;
    for (int32_t i = 0; i < l->n_slots; i++) {
        slot_rt *r = &l->rt[i];
        if ((s = ec_event_create(l->b, 0, &r->ready)) || (s = ec_event_create(l->b, 0, &r->released)))
            return s;
        if (timing && ((s = ec_event_create(l->b, EC_EVENT_TIMING, &r->c0)) ||
                       (s = ec_event_create(l->b, EC_EVENT_TIMING, &r->c1))))
            return s;
    }
    for (int i = 0; timing && i < STALL_RING; i++)
        if ((s = ec_event_create(l->b, EC_EVENT_TIMING, &l->stall[i].t0)) ||
            (s = ec_event_create(l->b, EC_EVENT_TIMING, &l->stall[i].t1)))
            return s;
    return EC_OK;
}

static void free_all(ec_loader *l)
{
    for (int32_t i = 0; l->rt && i < l->n_slots; i++) {
        ec_event_destroy(l->rt[i].ready);
        ec_event_destroy(l->rt[i].released);
        ec_event_destroy(l->rt[i].c0);
        ec_event_destroy(l->rt[i].c1);
    }
    for (int i = 0; i < STALL_RING; i++) {
        ec_event_destroy(l->stall[i].t0);
        ec_event_destroy(l->stall[i].t1);
    }
    ec_stream_destroy(l->copy);
    if (!l->keep_slots)
        ec_backend_dev_free(l->b, l->dev);
    /* else the slot memory is leaked on purpose (ec_loader_finish says so) */
    ec_recorder_abort(l->rec);
    ec_policy_destroy(l->policy);
    ec_queue_destroy(l->queue);
    ec_cache_destroy(l->cache);
    ec_history_destroy(l->hist);
    ec_free(l->rt);
    ec_free(l->fl);
    ec_free(l->dataset);
    ec_free(l->host_acq);
    ec_free(l);
}

/* The resident policy starts with every expert READY: put the weights there. */
static ec_status prefill(ec_loader *l)
{
    ec_status s;
    for (int32_t i = 0; i < l->n_slots; i++) {
        const ec_slot *sl = ec_cache_slot(l->cache, i);
        if (sl->layer < 0)
            continue;
        if ((s = ec_stream_copy_h2d(l->copy, l->dev + (size_t)i * l->stride,
                                    ec_store_expert(l->store, sl->layer, sl->expert), l->bytes)))
            return lfail(l, s, "prefilling the cache: %s", ec_backend_errmsg(l->b));
        l->stats.prefill_bytes += l->bytes;
    }
    if ((s = ec_stream_sync(l->copy)))
        return lfail(l, s, "prefilling the cache: %s", ec_backend_errmsg(l->b));
    return EC_OK;
}

static ec_status check_config(const ec_store *s, const ec_loader_config *c, ec_error *err)
{
    int32_t E = ec_store_n_experts(s);
    if (c->k < 1 || c->k > E || c->k > EC_MAX_K)
        return ec_error_set(err, EC_ERR_INVALID, "loader: k=%d must be in [1, %d experts]",
                            (int)c->k, (int)E);
    if (c->cache_per_layer < 0 || c->cache_global < 0 ||
        (c->cache_per_layer == 0 && c->cache_global == 0))
        return ec_error_set(err, EC_ERR_INVALID,
                            "loader: cache capacity: set cache_per_layer or cache_global > 0");
    int32_t pool = c->cache_per_layer ? c->cache_per_layer : c->cache_global;
    if (pool < c->k)
        return ec_error_set(err, EC_ERR_INVALID,
                            "loader: a pool of %d slots cannot hold the k=%d experts of one "
                            "layer",
                            (int)pool, (int)c->k);
    if (c->issue_window < 0 || c->history_depth < 0)
        return ec_error_set(err, EC_ERR_INVALID,
                            "loader: issue_window and history_depth must be >= 0");
    return EC_OK;
}

ec_status ec_loader_create(ec_backend *b, ec_store *s, const ec_predictor *predictor,
                           const ec_loader_config *cfg, ec_loader **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_loader_create: NULL out");
    *out = NULL;
    if (!b || !s || !cfg)
        return ec_error_set(err, EC_ERR_INVALID, "ec_loader_create: NULL backend, store or config");
    if (ec_store_backend(s) != b)
        return ec_error_set(err, EC_ERR_INVALID,
                            "ec_loader_create: the store belongs to another backend");
    ec_status st = check_config(s, cfg, err);
    if (st)
        return st;
    ec_loader *l = ec_calloc(1, sizeof *l);
    if (!l)
        return ec_error_set(err, EC_ERR_NOMEM, "loader: out of memory");
    l->b = b;
    l->store = s;
    l->cfg = *cfg;
    l->cfg.record_path = NULL; /* not kept: the caller's string */
    if (l->cfg.issue_window == 0)
        l->cfg.issue_window = 2;
    l->L = ec_store_n_layers(s);
    l->E = ec_store_n_experts(s);
    l->k = cfg->k;
    l->bytes = ec_store_expert_bytes(s);
    l->stride = (l->bytes + 255) & ~(size_t)255;
    l->token = -1;
    l->last_layer = -1;

#define TRY(call, what)                                                                            \
    do {                                                                                           \
        if ((st = (call))) {                                                                       \
            if (!(err && err->message[0] && err->status == st))                                   \
                ec_error_set(err, st, "loader: %s: %s", what, ec_status_str(st));                  \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
    if (err)
        ec_error_clear(err);
    TRY(ec_cache_create(l->L, l->E, cfg->cache_per_layer, cfg->cache_global, &l->cache),
        "cache");
    l->n_slots = ec_cache_n_slots(l->cache);
    TRY(ec_queue_create(2 * l->n_slots + 2 * l->E + 16, &l->queue), "transfer queue");
    TRY(ec_policy_create(&cfg->policy, l->cache, l->queue, predictor, cfg->future, &l->policy,
                         err),
        "policy");
    TRY(ec_policy_set_reuse_model(l->policy, cfg->reuse_model),
        "reuse model (its layers and experts must match the store's)");
    int32_t depth = cfg->history_depth; /* at least what the predictor's fit read */
    if (predictor && ec_predictor_history_depth(predictor) > depth)
        depth = ec_predictor_history_depth(predictor);
    TRY(ec_history_create(l->L, l->E, l->k, depth, &l->hist), "history");
    l->rt = ec_calloc((size_t)l->n_slots, sizeof *l->rt);
    l->fl_cap = 2 * l->n_slots + 8;
    l->fl = ec_calloc((size_t)l->fl_cap, sizeof *l->fl);
    l->dataset = ec_strdup("loader");
    l->host_acq = ec_malloc((size_t)l->L * (size_t)l->E * sizeof *l->host_acq);
    if (l->host_acq)
        for (size_t i = 0; i < (size_t)l->L * (size_t)l->E; i++)
            l->host_acq[i] = -1;
    if (!l->rt || !l->fl || !l->dataset || !l->host_acq) {
        st = ec_error_set(err, EC_ERR_NOMEM, "loader: out of memory");
        goto fail;
    }
    if (l->stride > SIZE_MAX / (size_t)l->n_slots) {
        st = ec_error_set(err, EC_ERR_RANGE, "loader: %d slots x %zu bytes overflow",
                          (int)l->n_slots, l->stride);
        goto fail;
    }
    if ((st = ec_backend_dev_alloc(b, (size_t)l->n_slots * l->stride, (void **)&l->dev))) {
        ec_error_set(err, st,
                     "loader: device cache of %d slots x %zu bytes (%.2f GiB): %s%s",
                     (int)l->n_slots, l->stride,
                     (double)l->n_slots * (double)l->stride / (1024.0 * 1024.0 * 1024.0),
                     ec_backend_errmsg(b),
                     st == EC_ERR_NOMEM && !strstr(ec_backend_errmsg(b), "HINT")
                         ? ". HINT: fewer cache slots or a smaller expert size"
                         : "");
        goto fail;
    }
    if ((st = ec_stream_create(b, &l->copy)) || (st = make_events(l))) {
        ec_error_set(err, st, "loader: copy stream and events: %s", ec_backend_errmsg(b));
        goto fail;
    }
    if ((st = prefill(l))) {
        ec_error_set(err, st, "loader: %s", l->errmsg);
        goto fail;
    }
    if (cfg->record_path && (st = ec_recorder_open(cfg->record_path, &l->rec, err)))
        goto fail;
#undef TRY
    *out = l;
    return EC_OK;
fail:
    free_all(l);
    return st;
}

/* ---- completions, timing, transfers ---------------------------------------------- */

static void harvest_stalls(ec_loader *l, int block)
{
    while (l->st_len > 0) {
        stall_pair *p = &l->stall[l->st_head];
        int done = 0;
        if (block)
            done = ec_event_sync(p->t1) == EC_OK;
        else if (ec_event_query(p->t1, &done) != EC_OK)
            done = 0;
        if (!done)
            return;
        float ms;
        if (ec_event_elapsed(p->t0, p->t1, &ms) == EC_OK) {
            l->stats.stall_ms += ms;
            l->stats.waits_timed++;
        }
        l->st_head = (l->st_head + 1) % STALL_RING;
        l->st_len--;
    }
}

/* The oldest in-flight transfer completed: tell the policy (unless a newer
 * transfer into the same slot has started since) and harvest its timing. */
static void complete_oldest(ec_loader *l)
{
    flight f = l->fl[l->fl_head];
    l->fl_head = (l->fl_head + 1) % l->fl_cap;
    l->fl_len--;
    if (!f.demand)
        l->fl_prefetch--;
    slot_rt *r = &l->rt[f.slot];
    if (f.gen != r->gen)
        return;
    ec_policy_completed(l->policy, f.slot);
    float ms;
    if (r->c0 && ec_event_elapsed(r->c0, r->c1, &ms) == EC_OK) {
        l->stats.copies_timed++;
        l->stats.copy_ms += ms;
        l->stats.bytes_timed += l->bytes;
    }
}

/* Completes every transfer whose ready event has passed, in issue order. */
static ec_status poll_completions(ec_loader *l)
{
    while (l->fl_len > 0) {
        int done;
        ec_status s = ec_event_query(l->rt[l->fl[l->fl_head].slot].ready, &done);
        if (s)
            return broke(l, s, "querying a copy");
        if (!done)
            break;
        complete_oldest(l);
    }
    return EC_OK;
}

static ec_status start_transfer(ec_loader *l, const ec_transfer *t)
{
    ec_status s;
    if (l->fl_len == l->fl_cap) { /* cannot happen with a sane policy; stay bounded */
        if ((s = ec_event_sync(l->rt[l->fl[l->fl_head].slot].ready)))
            return wait_broke(l, s, "waiting for a copy");
        complete_oldest(l);
    }
    slot_rt *r = &l->rt[t->slot];
    void *dst = l->dev + (size_t)t->slot * l->stride;
    const void *src = ec_store_expert(l->store, t->layer, t->expert);
    if (!src)
        return lfail(l, EC_ERR_STATE, "policy queued layer %d expert %d: outside the store",
                     (int)t->layer, (int)t->expert);
    ec_policy_started(l->policy, t);
    int free_now = 0;
    if ((s = ec_event_query(r->released, &free_now)))
        return broke(l, s, "querying a released event");
    if (!free_now && (s = ec_stream_wait(l->copy, r->released)))
        return broke(l, s, "ordering a copy after the slot's readers");
    if (r->c0 && (s = ec_event_record(r->c0, l->copy)))
        return broke(l, s, "recording copy timing");
    if ((s = ec_stream_copy_h2d(l->copy, dst, src, l->bytes)))
        return broke(l, s, "copying an expert");
    if (r->c1 && (s = ec_event_record(r->c1, l->copy)))
        return broke(l, s, "recording copy timing");
    if ((s = ec_event_record(r->ready, l->copy)))
        return broke(l, s, "recording a ready event");
    r->gen++;
    l->fl[(l->fl_head + l->fl_len) % l->fl_cap] =
        (flight){.slot = t->slot, .gen = r->gen, .demand = t->demand};
    l->fl_len++;
    l->stats.copies++;
    l->stats.bytes += l->bytes;
    if (t->demand) {
        l->stats.demand_copies++;
        l->stats.demand_bytes += l->bytes;
    } else {
        l->fl_prefetch++;
        l->stats.prefetch_copies++;
        l->stats.prefetch_bytes += l->bytes;
    }
    return EC_OK;
}

/* Starts queued transfers: every demand, and prefetches while fewer than
 * issue_window prefetches are in flight. force_slot >= 0: also start
 * prefetches until that slot's transfer has started. No device query. */
static ec_status start_queued(ec_loader *l, int32_t force_slot)
{
    ec_status s;
    while (ec_queue_len(l->queue) > 0) {
        const ec_transfer *next = ec_queue_at(l->queue, 0);
        int forced = force_slot >= 0 &&
                     ec_cache_slot(l->cache, force_slot)->state == EC_SLOT_QUEUED;
        if (!next->demand && l->fl_prefetch >= l->cfg.issue_window && !forced)
            break;
        ec_transfer t;
        if (!ec_queue_pop(l->queue, &t))
            break;
        if ((s = start_transfer(l, &t)))
            return s;
    }
    return EC_OK;
}

/* Completions, timing harvest, then whatever the window allows. */
static ec_status pump(ec_loader *l)
{
    ec_status s = poll_completions(l);
    if (s)
        return s;
    harvest_stalls(l, 0);
    return start_queued(l, -1);
}

/* ---- the runtime API ----------------------------------------------------------------- */

ec_status ec_loader_begin_sequence(ec_loader *l, const char *dataset, int64_t problem_id)
{
    if (!l)
        return EC_ERR_INVALID;
    char *d = ec_strdup(dataset ? dataset : "loader");
    if (!d)
        return lfail(l, EC_ERR_NOMEM, "begin_sequence: out of memory");
    ec_free(l->dataset);
    l->dataset = d;
    l->problem_id = problem_id;
    l->seq_token = -1;
    l->last_layer = -1;
    l->pending = 0; /* a refused observation is abandoned with its sequence */
    ec_history_reset(l->hist);
    return EC_OK;
}

ec_status ec_loader_observe(ec_loader *l, int32_t layer, const int16_t *experts)
{
    if (!l)
        return EC_ERR_INVALID;
    ec_status s = usable(l);
    if (s)
        return s;
    if (layer < 0 || layer >= l->L || !experts)
        return lfail(l, EC_ERR_INVALID, "observe: layer %d outside [0, %d) or NULL experts",
                     (int)layer, (int)l->L);
    for (int32_t i = 0; i < l->k; i++) {
        if (experts[i] < 0 || experts[i] >= l->E)
            return lfail(l, EC_ERR_INVALID, "observe: layer %d: expert %d outside [0, %d)",
                         (int)layer, experts[i], (int)l->E);
        for (int32_t j = 0; j < i; j++)
            if (experts[j] == experts[i])
                return lfail(l, EC_ERR_INVALID, "observe: layer %d: expert %d listed twice",
                             (int)layer, experts[i]);
    }
    if ((s = poll_completions(l))) /* the policy decides on fresh slot states */
        return s;
    int retry = l->pending && layer == l->p_layer &&
                memcmp(experts, l->p_ex, (size_t)l->k * sizeof *experts) == 0;
    int new_token;
    int64_t token;
    if (retry) { /* history and step were taken by the refused call */
        new_token = l->p_new_token;
        token = l->p_token;
    } else {
        new_token = l->last_layer < 0 || layer <= l->last_layer;
        token = l->token + new_token;
        ec_history_observe(l->hist, layer, experts);
    }
    l->pending = 0;
    if (!retry) /* hybrid: the link is busy with the copies in flight (each counted whole) */
        ec_policy_set_lanes(l->policy, l->fl_len * l->cfg.policy.transfer_ms, 0);
    for (;;) {
        s = ec_policy_observe(l->policy, token * l->L + layer, layer, experts, l->k, l->hist);
        if (s != EC_ERR_BUSY)
            break;
        if (l->fl_len == 0) { /* only readers can free a slot now */
            l->pending = 1;
            l->p_layer = layer;
            memcpy(l->p_ex, experts, (size_t)l->k * sizeof *experts);
            l->p_token = token;
            l->p_new_token = new_token;
            return lfail(l, s,
                         "observe: layer %d: every slot of its pool is pinned by an acquire "
                         "not yet released (release, then call again with the same arguments)",
                         (int)layer);
        }
        /* Slots still loading are not evictable: wait for the oldest copy. */
        if ((s = ec_event_sync(l->rt[l->fl[l->fl_head].slot].ready)))
            return wait_broke(l, s, "waiting for a copy");
        complete_oldest(l);
    }
    if (s)
        return lfail(l, s, "observe: layer %d: policy: %s", (int)layer, ec_status_str(s));
    l->token = token;
    l->seq_token += new_token;
    l->last_layer = layer;
    memcpy(l->last_ex, experts, (size_t)l->k * sizeof *experts);
    l->stats.observes++;
    if (l->rec && ec_recorder_write(l->rec, l->dataset, l->problem_id, l->seq_token, layer,
                                    experts, l->k))
        return lfail(l, EC_ERR_NOMEM, "recording: out of memory");
    return pump(l);
}

ec_status ec_loader_hint(ec_loader *l, int32_t horizon, const int16_t *experts,
                         const float *probs, int32_t n)
{
    if (!l)
        return EC_ERR_INVALID;
    ec_status s = usable(l);
    if (s)
        return s;
    if (ec_history_hint(l->hist, horizon, experts, probs, n))
        return lfail(l, EC_ERR_INVALID,
                     "hint: horizon %d outside [1, %d], or n %d outside [1, %d], or an expert "
                     "out of range or listed twice, or a probability outside [0, 1] or "
                     "summing past 1",
                     (int)horizon, (int)l->L, (int)n, (int)l->E);
    l->stats.hints++;
    if (l->rec && l->last_layer >= 0 &&
        ec_recorder_guess(l->rec, horizon, experts, probs, n))
        return lfail(l, EC_ERR_INVALID,
                     "hint: the recording keeps at most %d guesses (values of horizon) per "
                     "observation",
                     EC_MAX_GUESSES);
    if (l->last_layer < 0 || l->pending)
        return EC_OK; /* the next observe plans with it */
    /* plan the current step again with the guess (demands are already placed) */
    ec_policy_forget_predictions(l->policy);
    if ((s = poll_completions(l)))
        return s;
    s = ec_policy_observe(l->policy, l->token * l->L + l->last_layer, l->last_layer, l->last_ex,
                          l->k, l->hist);
    if (s && s != EC_ERR_BUSY) /* BUSY: no slot for a re-plan now; the next observe plans */
        return lfail(l, s, "hint: policy: %s", ec_status_str(s));
    return pump(l);
}

static ec_status check_stream(ec_loader *l, ec_stream *stream, const char *what)
{
    if (!stream)
        return lfail(l, EC_ERR_INVALID, "%s: NULL stream", what);
    if (ec_stream_backend(stream) != l->b)
        return lfail(l, EC_ERR_INVALID, "%s: the stream belongs to another backend", what);
    return EC_OK;
}

ec_status ec_loader_acquire(ec_loader *l, int32_t layer, int32_t expert, ec_stream *stream,
                            void **dev_ptr)
{
    if (!l || !dev_ptr)
        return l ? lfail(l, EC_ERR_INVALID, "acquire: NULL dev_ptr") : EC_ERR_INVALID;
    *dev_ptr = NULL;
    ec_status s = usable(l);
    if (s || (s = check_stream(l, stream, "acquire")))
        return s;
    if (layer < 0 || layer >= l->L || expert < 0 || expert >= l->E)
        return lfail(l, EC_ERR_INVALID, "acquire: layer %d expert %d outside %d x %d",
                     (int)layer, (int)expert, (int)l->L, (int)l->E);
    if (l->token < 0)
        return lfail(l, EC_ERR_STATE, "acquire: nothing observed yet");
    if (ec_policy_on_host(l->policy, layer, expert))
        return lfail(l, EC_ERR_STATE,
                     "acquire: layer %d expert %d runs on the host this step: use "
                     "ec_loader_acquire_where",
                     (int)layer, (int)expert);
    int32_t slot = ec_policy_acquire(l->policy, ec_loader_step(l, layer), layer, expert);
    if (slot < 0)
        return lfail(l, EC_ERR_STATE,
                     "acquire: layer %d expert %d is not in the cache: observe it first",
                     (int)layer, (int)expert);
    /* A slot READY on the host needs no device call at all; a LOADING one
     * costs one query; a QUEUED one (its transfer behind prefetches) is
     * started now. */
    const ec_slot *sl = ec_cache_slot(l->cache, slot);
    if (sl->state == EC_SLOT_QUEUED)
        s = start_queued(l, slot);
    else if (sl->state == EC_SLOT_LOADING) {
        int done = 0;
        if ((s = ec_event_query(l->rt[slot].ready, &done)))
            s = broke(l, s, "querying a copy");
        else if (done)
            s = poll_completions(l); /* in issue order, up to this one */
    }
    if (!s)
        s = start_queued(l, -1); /* completions may have opened the window */
    if (s) {
        ec_policy_release(l->policy, slot);
        return s;
    }
    if (sl->state == EC_SLOT_QUEUED || sl->state == EC_SLOT_EMPTY) {
        ec_policy_release(l->policy, slot);
        return lfail(l, EC_ERR_STATE,
                     "acquire: layer %d expert %d: its transfer is not in the queue",
                     (int)layer, (int)expert);
    }
    if (sl->state != EC_SLOT_READY) {
        slot_rt *r = &l->rt[slot];
        if (l->cfg.no_timing) {
            s = ec_stream_wait(stream, r->ready);
        } else {
            if (l->st_len == STALL_RING)
                harvest_stalls(l, 1); /* the oldest wait is long done in practice */
            stall_pair *p = &l->stall[(l->st_head + l->st_len) % STALL_RING];
            if (!(s = ec_event_record(p->t0, stream)) && !(s = ec_stream_wait(stream, r->ready)) &&
                !(s = ec_event_record(p->t1, stream)))
                l->st_len++;
        }
        if (s) {
            ec_policy_release(l->policy, slot);
            return broke(l, s, "ordering a reader after its copy");
        }
        l->stats.waits++;
    }
    *dev_ptr = l->dev + (size_t)slot * l->stride;
    return EC_OK;
}

ec_status ec_loader_acquire_where(ec_loader *l, int32_t layer, int32_t expert, ec_stream *stream,
                                  ec_expert_ref *out)
{
    if (!l || !out)
        return l ? lfail(l, EC_ERR_INVALID, "acquire: NULL out") : EC_ERR_INVALID;
    memset(out, 0, sizeof *out);
    ec_status s = usable(l);
    if (s || (s = check_stream(l, stream, "acquire")))
        return s;
    if (layer < 0 || layer >= l->L || expert < 0 || expert >= l->E)
        return lfail(l, EC_ERR_INVALID, "acquire: layer %d expert %d outside %d x %d",
                     (int)layer, (int)expert, (int)l->L, (int)l->E);
    if (l->token >= 0 && ec_policy_on_host(l->policy, layer, expert)) {
        l->host_acq[(size_t)layer * (size_t)l->E + (size_t)expert] = ec_loader_step(l, layer);
        l->stats.host_acquires++;
        out->where = EC_WHERE_HOST;
        out->host = ec_store_expert(l->store, layer, expert);
        out->bytes = l->bytes;
        return EC_OK;
    }
    void *dev = NULL;
    if ((s = ec_loader_acquire(l, layer, expert, stream, &dev)))
        return s;
    out->where = EC_WHERE_DEVICE;
    out->dev = dev;
    out->bytes = l->bytes;
    return EC_OK;
}

ec_status ec_loader_release(ec_loader *l, int32_t layer, int32_t expert, ec_stream *stream)
{
    if (!l)
        return EC_ERR_INVALID;
    ec_status s = usable(l);
    if (s || (s = check_stream(l, stream, "release")))
        return s;
    if (layer >= 0 && layer < l->L && expert >= 0 && expert < l->E) {
        int64_t *h = &l->host_acq[(size_t)layer * (size_t)l->E + (size_t)expert];
        if (*h >= 0 && *h == ec_loader_step(l, layer)) { /* a host expert: no slot */
            *h = -1;
            return EC_OK;
        }
    }
    int32_t slot = ec_cache_find(l->cache, layer, expert);
    if (slot < 0 || ec_cache_slot(l->cache, slot)->pins <= 0)
        return lfail(l, EC_ERR_STATE, "release: layer %d expert %d is not acquired",
                     (int)layer, (int)expert);
    if ((s = ec_event_record(l->rt[slot].released, stream)))
        return broke(l, s, "recording a released event");
    if ((s = poll_completions(l))) /* so that the policy sees the slot's true state */
        return s;
    ec_policy_release(l->policy, slot);
    return start_queued(l, -1);
}

ec_status ec_loader_poll(ec_loader *l)
{
    if (!l)
        return EC_ERR_INVALID;
    ec_status s = usable(l);
    return s ? s : pump(l);
}

ec_status ec_loader_sync(ec_loader *l)
{
    if (!l)
        return EC_ERR_INVALID;
    if (l->broken)
        return usable(l);
    ec_status s;
    for (;;) {
        if ((s = pump(l)))
            return s;
        if (l->fl_len == 0)
            break; /* the window is free, so pump emptied the queue */
        if ((s = ec_event_sync(l->rt[l->fl[l->fl_head].slot].ready)))
            return wait_broke(l, s, "waiting for a copy");
        complete_oldest(l);
    }
    harvest_stalls(l, 1);
    return EC_OK;
}

ec_status ec_loader_finish(ec_loader *l)
{
    if (!l)
        return EC_ERR_INVALID;
    if (l->finished)
        return EC_OK;
    ec_status s = l->broken ? usable(l) : ec_loader_sync(l);
    /* Readers of the slots must be done before the memory can go (also
     * after a host-side failure). A wait that failed, now or earlier, proves
     * nothing: a kernel may still read a slot, so its memory is kept (leaked)
     * rather than freed. */
    for (int32_t i = 0; i < l->n_slots && !l->keep_slots; i++) {
        ec_status w = ec_event_sync(l->rt[i].released);
        if (w) {
            wait_broke(l, w, "waiting for the readers of the slots");
            if (!s)
                s = w;
        }
    }
    if (l->keep_slots) {
        size_t n = strlen(l->broken_msg);
        snprintf(l->broken_msg + n, sizeof l->broken_msg - n, "%s",
                 "; the slot memory is not freed (a kernel may still read it)");
        if (s)
            lfail(l, s, "%s", l->broken_msg);
    }
    if (l->rec) {
        ec_error err = {0};
        ec_status c = ec_recorder_commit(l->rec, &err);
        l->rec = NULL;
        if (c && !s)
            s = lfail(l, c, "recording: %s", err.message);
    }
    l->finished = 1;
    return s;
}

void ec_loader_destroy(ec_loader *l)
{
    if (!l)
        return;
    ec_loader_finish(l);
    free_all(l);
}

/* ---- inspection ------------------------------------------------------------------------ */

void ec_loader_stats_get(const ec_loader *l, ec_loader_stats *out)
{
    *out = l->stats;
    out->cache = *ec_cache_stats_get(l->cache);
}

const ec_cache *ec_loader_cache(const ec_loader *l) { return l->cache; }
ec_stream *ec_loader_copy_stream(const ec_loader *l) { return l->copy; }

void *ec_loader_slot_ptr(const ec_loader *l, int32_t slot)
{
    return slot >= 0 && slot < l->n_slots ? l->dev + (size_t)slot * l->stride : NULL;
}

int64_t ec_loader_step(const ec_loader *l, int32_t layer)
{
    return (l->token < 0 ? 0 : l->token) * l->L + layer;
}

const char *ec_loader_errmsg(const ec_loader *l) { return l->errmsg; }
