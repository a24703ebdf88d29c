/*
 * The replay driver: a decode loop over a trace on one compute stream.
 * Per token and layer: attention stand-in, router point (the host waits
 * for it unless no_lockstep), observe, then acquire / FFN / release per
 * expert. Host overhead of the loader calls is timed with the monotonic
 * clock; TPOT with two timing events around the measured tokens.
 */
#include "../core/internal.h"
#include "expertcast/replay.h"

#include <string.h>
#include <time.h>

#define VERIFY_BATCH 1024 /* checksums compared per host round trip */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* Everything the loop owns; freed by rp_free whatever happened. */
typedef struct rp {
    ec_backend *b;
    ec_store *s;
    const ec_trace *t;
    const ec_replay_opts *o;
    size_t *rows;
    size_t n_rows;
    ec_trace_future *future;
    ec_loader *loader;
    ec_stream *compute;
    ec_event *router, *m0, *m1, *mfirst;
    void *dx, *dout, *dscratch;      /* FFN input, output, scratch (device) */
    uint16_t *hx;                    /* FFN input (host, pinned) */
    float *hxf, *hout;               /* host FFN: input as float, output (pinned) */
    ec_hostffn *hf;                  /* the host expert kernel */
    int64_t host_runs;
    double host_us;
    uint64_t *dsum, *hsum;           /* verify: checksums (device / host pinned) */
    uint64_t expect[VERIFY_BATCH];
    int32_t n_pending;
} rp;

static void rp_free(rp *r)
{
    ec_loader_destroy(r->loader);
    ec_stream_destroy(r->compute);
    ec_event_destroy(r->router);
    ec_event_destroy(r->m0);
    ec_event_destroy(r->m1);
    ec_event_destroy(r->mfirst);
    ec_backend_dev_free(r->b, r->dx);
    ec_backend_dev_free(r->b, r->dout);
    ec_backend_dev_free(r->b, r->dscratch);
    ec_backend_dev_free(r->b, r->dsum);
    ec_backend_host_free(r->b, r->hx);
    ec_backend_host_free(r->b, r->hout);
    ec_free(r->hxf);
    ec_hostffn_destroy(r->hf);
    ec_backend_host_free(r->b, r->hsum);
    ec_trace_future_destroy(r->future);
    ec_free(r->rows);
}

static ec_status bfail(rp *r, ec_status s, ec_error *err, const char *what)
{
    return ec_error_set(err, s, "replay: %s: %s", what, ec_backend_errmsg(r->b));
}

static ec_status lfail(rp *r, ec_status s, ec_error *err, const char *what, size_t row,
                       int32_t layer)
{
    return ec_error_set(err, s, "replay: token %zu layer %d: %s: %s", row, (int)layer, what,
                        ec_loader_errmsg(r->loader));
}

/* Compares the pending checksums with the store's (one host round trip). */
static ec_status flush_verify(rp *r, ec_replay_result *out, ec_error *err)
{
    if (r->n_pending == 0)
        return EC_OK;
    ec_status s;
    if ((s = ec_stream_copy_d2h(r->compute, r->hsum, r->dsum,
                                (size_t)r->n_pending * sizeof *r->hsum)) ||
        (s = ec_stream_sync(r->compute)))
        return bfail(r, s, err, "reading checksums back");
    for (int32_t i = 0; i < r->n_pending; i++) {
        out->verified++;
        out->verify_failures += r->hsum[i] != r->expect[i];
    }
    r->n_pending = 0;
    return EC_OK;
}

static ec_status setup(rp *r, const ec_predictor *pred, ec_error *err)
{
    const ec_trace *t = r->t;
    const ec_replay_opts *o = r->o;
    ec_status s;
    if (t->n_layers != ec_store_n_layers(r->s) || t->n_experts > ec_store_n_experts(r->s))
        return ec_error_set(err, EC_ERR_INVALID,
                            "replay: the trace has %d layers x %d experts, the store %d x %d",
                            (int)t->n_layers, (int)t->n_experts, (int)ec_store_n_layers(r->s),
                            (int)ec_store_n_experts(r->s));
    if (o->d_model > 0 &&
        ec_expert_bytes(o->dtype, o->d_model, o->d_ff) != ec_store_expert_bytes(r->s))
        return ec_error_set(err, EC_ERR_INVALID,
                            "replay: %s FFN %d x %d needs %zu bytes per expert, the store has %zu",
                            ec_dtype_name(o->dtype) ? ec_dtype_name(o->dtype) : "?",
                            (int)o->d_model, (int)o->d_ff,
                            ec_expert_bytes(o->dtype, o->d_model, o->d_ff),
                            ec_store_expert_bytes(r->s));
    if (!(r->rows = ec_malloc((t->n_rows ? t->n_rows : 1) * sizeof *r->rows)))
        return ec_error_set(err, EC_ERR_NOMEM, "replay: out of memory");
    for (size_t q = 0; q < t->n_seqs; q++) {
        if (o->seq_mask && !o->seq_mask[q])
            continue;
        for (size_t i = t->seqs[q].row0; i < t->seqs[q].row0 + t->seqs[q].n_rows; i++) {
            if (!t->complete[i])
                continue;
            if (o->max_tokens && r->n_rows >= o->max_tokens)
                break;
            r->rows[r->n_rows++] = i;
        }
    }
    if (r->n_rows == 0)
        return ec_error_set(err, EC_ERR_NO_DATA, "replay: no complete token to replay");

    ec_loader_config lc = o->loader;
    lc.k = t->k;
    if (lc.policy.kind == EC_POLICY_ORACLE) {
        if (ec_trace_future_create(t, r->rows, r->n_rows, &r->future))
            return ec_error_set(err, EC_ERR_NOMEM, "replay: out of memory");
        lc.future = ec_trace_future_get(r->future);
    }
    if ((s = ec_loader_create(r->b, r->s, pred, &lc, &r->loader, err)))
        return s;
    if ((s = ec_stream_create(r->b, &r->compute)) ||
        (s = ec_event_create(r->b, 0, &r->router)) ||
        (s = ec_event_create(r->b, EC_EVENT_TIMING, &r->m0)) ||
        (s = ec_event_create(r->b, EC_EVENT_TIMING, &r->m1)) ||
        (s = ec_event_create(r->b, EC_EVENT_TIMING, &r->mfirst)))
        return bfail(r, s, err, "compute stream and events");
    if (o->d_model > 0) {
        size_t d = (size_t)o->d_model;
        if ((s = ec_backend_host_alloc(r->b, d * 2, (void **)&r->hx)) ||
            (s = ec_backend_dev_alloc(r->b, d * 2, &r->dx)) ||
            (s = ec_backend_dev_alloc(r->b, d * 4, &r->dout)) ||
            (s = ec_backend_dev_alloc(r->b, (size_t)o->d_ff * 4, &r->dscratch)) ||
            (s = ec_backend_host_alloc(r->b, d * 4, (void **)&r->hout)))
            return bfail(r, s, err, "FFN buffers");
        if (!(r->hxf = ec_malloc(d * sizeof *r->hxf)))
            return ec_error_set(err, EC_ERR_NOMEM, "replay: out of memory");
        if (o->loader.policy.kind == EC_POLICY_HYBRID && (s = ec_hostffn_create(0, &r->hf, err)))
            return s;
        for (size_t i = 0; i < d; i++) /* a fixed activation in [-1, 1) */
            r->hx[i] = ec_half_from_float((float)((int)(i * 2654435761u % 2001) - 1000) / 1000.f);
        if ((s = ec_stream_copy_h2d(r->compute, r->dx, r->hx, d * 2)))
            return bfail(r, s, err, "FFN input");
    }
    if (o->verify &&
        ((s = ec_backend_dev_alloc(r->b, VERIFY_BATCH * sizeof *r->dsum, (void **)&r->dsum)) ||
         (s = ec_backend_host_alloc(r->b, VERIFY_BATCH * sizeof *r->hsum, (void **)&r->hsum))))
        return bfail(r, s, err, "checksum buffers");
    return EC_OK;
}

static void stats_sub(ec_loader_stats *a, const ec_loader_stats *b)
{
    ec_cache_stats *c = &a->cache;
    const ec_cache_stats *d = &b->cache;
    c->acquires -= d->acquires;
    c->hits -= d->hits;
    c->inflight_hits -= d->inflight_hits;
    c->misses -= d->misses;
    c->prefetches -= d->prefetches;
    c->prefetch_hits -= d->prefetch_hits;
    c->wasted -= d->wasted;
    c->cancelled -= d->cancelled;
    c->evictions -= d->evictions;
    c->loads -= d->loads;
    c->host_runs -= d->host_runs;
    c->copy_behinds -= d->copy_behinds;
    a->host_acquires -= b->host_acquires;
    a->observes -= b->observes;
    a->copies -= b->copies;
    a->demand_copies -= b->demand_copies;
    a->prefetch_copies -= b->prefetch_copies;
    a->bytes -= b->bytes;
    a->demand_bytes -= b->demand_bytes;
    a->prefetch_bytes -= b->prefetch_bytes;
    a->copies_timed -= b->copies_timed;
    a->copy_ms -= b->copy_ms;
    a->bytes_timed -= b->bytes_timed;
    a->waits -= b->waits;
    a->waits_timed -= b->waits_timed;
    a->stall_ms -= b->stall_ms;
}

/* The host waits for the router point of the compute stream, as a runtime
 * reading the router's output does, keeping the copy engine fed meanwhile.
 * EC_ERR_STATE: the loader failed. */
static ec_status wait_router(rp *r)
{
    ec_status s = ec_event_record(r->router, r->compute);
    for (int done = 0; !s;) {
        if ((s = ec_event_query(r->router, &done)) || done)
            break;
        if (ec_loader_poll(r->loader))
            return EC_ERR_STATE;
        if (r->o->host_poll_us > 0) {
            long ns = (long)(r->o->host_poll_us * 1e3);
            struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
            nanosleep(&ts, NULL);
        }
    }
    return s;
}

/* An expert the loader runs on the host: the layer's input comes to the
 * host once (the compute stream is drained up to it), the host expert
 * kernel (ec_hostffn_run, every CPU) runs on the store's weights in their
 * format, the output goes back on the compute stream.
 * Without a real FFN, the host spends host_ffn_us. */
static ec_status host_expert(rp *r, const ec_expert_ref *ref, int *x_on_host)
{
    const ec_replay_opts *o = r->o;
    double t0 = now_us();
    ec_status s = EC_OK;
    if (o->d_model > 0) {
        size_t d = (size_t)o->d_model;
        if (!*x_on_host && ((s = ec_stream_copy_d2h(r->compute, r->hx, r->dx, d * 2)) ||
                            (s = ec_stream_sync(r->compute))))
            return s;
        if (!*x_on_host)
            for (size_t j = 0; j < d; j++)
                r->hxf[j] = ec_half_to_float(r->hx[j]);
        *x_on_host = 1;
        if ((s = ec_hostffn_run(r->hf, o->dtype, ref->host, r->hxf, r->hout, 1, o->d_model,
                                o->d_ff)))
            return s;
        /* hout is reused by the next host expert: wait for the copy */
        if ((s = ec_stream_copy_h2d(r->compute, r->dout, r->hout, d * 4)) ||
            (s = ec_stream_sync(r->compute)))
            return s;
    } else {
        while (now_us() - t0 < o->host_ffn_us)
            ;
    }
    r->host_runs++;
    r->host_us += now_us() - t0;
    return EC_OK;
}

/* One layer of one token: attention, router, observe, experts. */
static ec_status layer_step(rp *r, size_t i, int32_t l, ec_replay_result *out, double host[4],
                            ec_error *err)
{
    const ec_replay_opts *o = r->o;
    const int16_t *ex = ec_trace_experts(r->t, r->rows[i], l);
    ec_status s;
    if (o->attn_us > 0 && (s = ec_stream_spin(r->compute, o->attn_us)))
        return bfail(r, s, err, "attention stand-in");
    if (!o->no_lockstep && (s = wait_router(r)))
        return s == EC_ERR_STATE ? lfail(r, s, err, "poll", i, l) : bfail(r, s, err, "router");
    double t0 = now_us();
    if ((s = ec_loader_observe(r->loader, l, ex)))
        return lfail(r, s, err, "observe", i, l);
    double t1 = now_us(), acq = 0, rel = 0;
    int x_on_host = 0;
    for (int32_t j = 0; j < r->t->k; j++) {
        ec_expert_ref ref;
        double a0 = now_us();
        if ((s = ec_loader_acquire_where(r->loader, l, ex[j], r->compute, &ref)))
            return lfail(r, s, err, "acquire", i, l);
        acq += now_us() - a0;
        if (ref.where == EC_WHERE_HOST) {
            if ((s = host_expert(r, &ref, &x_on_host)))
                return bfail(r, s, err, "host expert");
            double r0 = now_us();
            if ((s = ec_loader_release(r->loader, l, ex[j], r->compute)))
                return lfail(r, s, err, "release", i, l);
            rel += now_us() - r0;
            continue;
        }
        void *w = ref.dev;
        if (o->verify) {
            if ((s = ec_stream_checksum(r->compute, w, ec_store_expert_bytes(r->s),
                                        r->dsum + r->n_pending)))
                return bfail(r, s, err, "checksum");
            r->expect[r->n_pending++] = ec_store_checksum(r->s, l, ex[j]);
        }
        s = EC_OK;
        if (o->d_model > 0)
            s = ec_stream_expert_ffn(r->compute, o->dtype, w, r->dx, r->dout, o->d_model, o->d_ff,
                                     r->dscratch);
        else if (o->ffn_us > 0)
            s = ec_stream_spin(r->compute, o->ffn_us);
        if (s)
            return bfail(r, s, err, "expert FFN");
        double r0 = now_us();
        if ((s = ec_loader_release(r->loader, l, ex[j], r->compute)))
            return lfail(r, s, err, "release", i, l);
        rel += now_us() - r0;
        if (r->n_pending == VERIFY_BATCH && (s = flush_verify(r, out, err)))
            return s;
    }
    host[0] += t1 - t0;
    host[1] += acq;
    host[2] += rel;
    if (acq > host[3])
        host[3] = acq;
    return EC_OK;
}

static ec_status run(rp *r, ec_replay_result *out, ec_error *err)
{
    const ec_trace *t = r->t;
    size_t warm = r->o->warmup_tokens;
    if (warm > r->n_rows / 2)
        warm = r->n_rows / 2;
    ec_loader_stats base = {0};
    double host[4] = {0}, wall0 = 0;
    size_t prev_seq = SIZE_MAX;
    ec_status s;
    if ((s = ec_event_record(r->mfirst, r->compute)))
        return bfail(r, s, err, "timing");
    for (size_t i = 0; i < r->n_rows; i++) {
        if (i == warm) { /* start of the measured tokens */
            if ((s = ec_stream_sync(r->compute)))
                return bfail(r, s, err, "warm-up");
            if ((s = ec_loader_sync(r->loader)))
                return lfail(r, s, err, "sync", i, 0);
            ec_loader_stats_get(r->loader, &base);
            memset(host, 0, sizeof(double) * 4);
            r->host_runs = 0;
            r->host_us = 0;
            if ((s = ec_event_record(r->m0, r->compute)))
                return bfail(r, s, err, "timing");
            wall0 = now_us();
        }
        size_t q = ec_trace_seq_of_row(t, r->rows[i]);
        if (q != prev_seq) {
            if ((s = ec_loader_begin_sequence(r->loader, t->seqs[q].dataset,
                                              t->seqs[q].problem_id)))
                return lfail(r, s, err, "begin sequence", i, 0);
            prev_seq = q;
        }
        for (int32_t l = 0; l < t->n_layers; l++)
            if ((s = layer_step(r, i, l, out, host, err)))
                return s;
    }
    if ((s = ec_event_record(r->m1, r->compute)) || (s = ec_event_sync(r->m1)))
        return bfail(r, s, err, "timing");
    double wall1 = now_us();
    if ((s = flush_verify(r, out, err)))
        return s;
    if ((s = ec_loader_sync(r->loader)))
        return lfail(r, s, err, "sync", r->n_rows, 0);
    float ms = 0, ms_all = 0;
    if ((s = ec_event_elapsed(r->m0, r->m1, &ms)) ||
        (s = ec_event_elapsed(r->mfirst, r->m1, &ms_all)))
        return bfail(r, s, err, "timing");

    size_t n = r->n_rows - warm, layers = n * (size_t)t->n_layers;
    ec_loader_stats_get(r->loader, &out->total);
    out->measured = out->total;
    stats_sub(&out->measured, &base);
    out->tokens = r->n_rows;
    out->tokens_measured = n;
    out->tpot_ms = ms / (double)n;
    out->tpot_all_ms = ms_all / (double)r->n_rows;
    out->wall_ms = (wall1 - wall0) / 1e3;
    const ec_loader_stats *m = &out->measured;
    out->stall_ms_per_token = m->stall_ms / (double)n;
    if (m->cache.acquires > 0) {
        out->hit_rate = (double)(m->cache.hits + m->cache.inflight_hits) / (double)m->cache.acquires;
        out->resident_rate = (double)m->cache.hits / (double)m->cache.acquires;
    }
    out->copy_gbps = m->copy_ms > 0 ? (double)m->bytes_timed / (m->copy_ms * 1e6) : 0;
    out->observe_us = host[0] / (double)layers;
    out->acquire_us = host[1] / (double)layers;
    out->release_us = host[2] / (double)layers;
    out->acquire_us_max = host[3];
    out->host_runs = r->host_runs;
    out->host_ms_per_token = r->host_us / 1e3 / (double)n;
    return EC_OK;
}

ec_status ec_replay_run(ec_backend *b, ec_store *s, const ec_trace *t,
                        const ec_predictor *predictor, const ec_replay_opts *o,
                        ec_replay_result *out, ec_error *err)
{
    if (!b || !s || !t || !o || !out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_replay_run: NULL argument");
    memset(out, 0, sizeof *out);
    rp r = {.b = b, .s = s, .t = t, .o = o};
    ec_status st = setup(&r, predictor, err);
    if (st == EC_OK)
        st = run(&r, out, err);
    if (st == EC_OK) {
        for (size_t q = 0; q < t->n_seqs; q++) {
            if (o->seq_mask && !o->seq_mask[q])
                continue;
            for (size_t i = t->seqs[q].row0; i < t->seqs[q].row0 + t->seqs[q].n_rows; i++)
                out->rows_skipped += !t->complete[i];
        }
        ec_status f = ec_loader_finish(r.loader);
        if (f)
            st = ec_error_set(err, f, "replay: %s", ec_loader_errmsg(r.loader));
    }
    rp_free(&r);
    return st;
}
