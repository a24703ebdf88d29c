/*
 * The loader: the same cases on the cpu backend and on cuda (skipped with a
 * message when no device exists). Every acquisition in these tests is
 * checked by hashing the slot on the reader's stream and comparing with
 * the store's checksum of the expert asked for.
 */
#include "testutil.h"
#include "expertcast/loader.h"
#include "expertcast/replay.h"
#include "../src/core/rng.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOADER_TEST(name)                                                                          \
    static void name##_case(const char *backend);                                                  \
    Test(loader_cpu, name) { name##_case("cpu"); }                                                 \
    Test(loader_cuda, name) { name##_case("cuda"); }                                               \
    static void name##_case(const char *backend)

/* ---- fixture ------------------------------------------------------------------------ */

#define MAX_CHECKS 8192

typedef struct fx {
    ec_backend *b;
    ec_store *s;
    ec_loader *l;
    ec_stream *compute;
    uint64_t *dsum, *hsum;  /* checksums computed on the reader's stream (device / host) */
    uint64_t expect[MAX_CHECKS];
    int n;                  /* pending checks */
    long checked, wrong;
} fx;

static ec_backend *backend_or_skip(const char *name)
{
    ec_backend *b = NULL;
    ec_error err = {0};
    ec_status s = ec_backend_create(name, NULL, &b, &err);
    if (s == EC_ERR_NO_DEVICE || s == EC_ERR_UNSUPPORTED)
        cr_skip_test("backend %s unavailable here: %s", name, err.message);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    return b;
}

static void fx_open(fx *f, const char *backend, int32_t L, int32_t E, size_t bytes)
{
    memset(f, 0, sizeof *f);
    f->b = backend_or_skip(backend);
    ec_error err = {0};
    cr_assert_eq(ec_store_create(f->b, L, E, bytes, &f->s, &err), EC_OK, "%s", err.message);
    cr_assert_eq(ec_store_fill_synthetic(f->s, 42, 1), EC_OK);
    cr_assert_eq(ec_stream_create(f->b, &f->compute), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(f->b, MAX_CHECKS * 8, (void **)&f->dsum), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(f->b, MAX_CHECKS * 8, (void **)&f->hsum), EC_OK);
}

static void fx_loader(fx *f, const ec_loader_config *c, const ec_predictor *p)
{
    ec_error err = {0};
    cr_assert_eq(ec_loader_create(f->b, f->s, p, c, &f->l, &err), EC_OK, "%s", err.message);
}

/* Compares every pending checksum with what was expected. */
static void fx_flush(fx *f)
{
    if (f->n == 0)
        return;
    cr_assert_eq(ec_stream_copy_d2h(f->compute, f->hsum, f->dsum, (size_t)f->n * 8), EC_OK);
    cr_assert_eq(ec_stream_sync(f->compute), EC_OK);
    for (int i = 0; i < f->n; i++) {
        f->checked++;
        f->wrong += f->hsum[i] != f->expect[i];
    }
    f->n = 0;
}

/* Acquires (layer, expert) on the compute stream and queues a checksum of
 * the slot behind it. */
static void *fx_acquire(fx *f, int32_t layer, int32_t expert)
{
    void *w = NULL;
    ec_status s = ec_loader_acquire(f->l, layer, expert, f->compute, &w);
    cr_assert_eq(s, EC_OK, "acquire(%d, %d): %s", layer, expert, ec_loader_errmsg(f->l));
    cr_assert_not_null(w);
    if (f->n == MAX_CHECKS)
        fx_flush(f);
    cr_assert_eq(ec_stream_checksum(f->compute, w, ec_store_expert_bytes(f->s), f->dsum + f->n),
                 EC_OK);
    f->expect[f->n++] = ec_store_checksum(f->s, layer, expert);
    return w;
}

static void fx_release(fx *f, int32_t layer, int32_t expert)
{
    ec_status s = ec_loader_release(f->l, layer, expert, f->compute);
    cr_assert_eq(s, EC_OK, "release(%d, %d): %s", layer, expert, ec_loader_errmsg(f->l));
}

static void fx_observe(fx *f, int32_t layer, int16_t a, int16_t b)
{
    int16_t ex[2] = {a, b};
    ec_status s = ec_loader_observe(f->l, layer, ex);
    cr_assert_eq(s, EC_OK, "observe(%d): %s", layer, ec_loader_errmsg(f->l));
}

static void fx_close(fx *f)
{
    fx_flush(f);
    cr_assert_eq(f->wrong, 0, "%ld of %ld acquisitions saw the wrong weights", f->wrong,
                 f->checked);
    if (f->l)
        cr_assert_eq(ec_loader_finish(f->l), EC_OK, "%s", ec_loader_errmsg(f->l));
    ec_loader_destroy(f->l);
    ec_stream_destroy(f->compute);
    ec_backend_dev_free(f->b, f->dsum);
    ec_backend_host_free(f->b, f->hsum);
    ec_store_destroy(f->s);
    ec_backend_destroy(f->b);
}


/* A trace where layer l always routes to experts {2l mod E, 2l+1 mod E}:
 * the prior predictor fitted on it predicts exactly those. */
static ec_trace *fixed_trace(int32_t L, int32_t E, int tokens)
{
    const char *dir = tu_tmpdir();
    size_t cap = (size_t)tokens * (size_t)L * 96 + 1;
    char *text = malloc(cap), *p = text;
    cr_assert_not_null(text);
    for (int t = 0; t < tokens; t++)
        for (int32_t l = 0; l < L; l++)
            p += sprintf(p, "{\"layer\": %d, \"experts\": [%d, %d], \"token_idx\": %d}\n", l,
                         (2 * l) % E, (2 * l + 1) % E, t);
    const char *path = tu_write(dir, "fixed.jsonl", text);
    free(text);
    ec_trace *t = NULL;
    ec_error err = {0};
    cr_assert_eq(ec_trace_load(&path, 1, NULL, &t, &err), EC_OK, "%s", err.message);
    return t;
}

static ec_predictor *prior_on(const ec_trace *t)
{
    ec_predictor *p = NULL;
    cr_assert_eq(ec_predictor_create("prior", NULL, &p, NULL), EC_OK);
    cr_assert_eq(ec_predictor_fit(p, t, NULL), EC_OK);
    return p;
}

/* ---- behaviour ------------------------------------------------------------------------ */

LOADER_TEST(acquire_orders_the_reader_after_the_copy_without_blocking_the_host)
{
    fx f;
    fx_open(&f, backend, 2, 8, 1000);
    ec_loader_config c;
    ec_loader_config_default(&c);
    fx_loader(&f, &c, NULL);
    tu_gate g;
    tu_gate_init(&g);
    cr_assert_eq(ec_stream_host_fn(ec_loader_copy_stream(f.l), tu_gate_wait, &g), EC_OK);
    fx_observe(&f, 0, 3, 5);
    fx_acquire(&f, 0, 3); /* returns although the copy is held behind the gate */
    ec_event *done;
    cr_assert_eq(ec_event_create(f.b, 0, &done), EC_OK);
    cr_assert_eq(ec_event_record(done, f.compute), EC_OK);
    tu_sleep_ms(30);
    int fin = 1;
    cr_assert_eq(ec_event_query(done, &fin), EC_OK);
    cr_assert_eq(fin, 0, "the reader's stream must wait for the copy");
    tu_gate_open(&g);
    fx_acquire(&f, 0, 5);
    fx_release(&f, 0, 3);
    fx_release(&f, 0, 5);
    fx_flush(&f);
    cr_assert_eq(f.checked, 2);
    cr_assert_eq(ec_loader_sync(f.l), EC_OK);
    ec_loader_stats st;
    ec_loader_stats_get(f.l, &st);
    cr_assert_eq(st.cache.misses, 2);
    cr_assert_eq(st.demand_copies, 2);
    cr_assert_eq(st.bytes, 2000);
    cr_assert_geq(st.waits, 1);
    cr_assert_eq(st.waits_timed, st.waits);
    cr_assert(st.stall_ms >= 20.0, "stall of the gated copy measured %.3f ms", st.stall_ms);
    cr_assert_eq(st.copies_timed, 2);
    ec_event_destroy(done);
    fx_close(&f);
}

LOADER_TEST(a_demand_overtakes_queued_prefetches)
{
    int32_t L = 4, E = 8;
    ec_trace *t = fixed_trace(L, E, 8);
    ec_predictor *p = prior_on(t);
    fx f;
    fx_open(&f, backend, L, E, 512);
    ec_loader_config c;
    ec_loader_config_default(&c);
    c.policy.kind = EC_POLICY_PREDICT;
    c.policy.horizon = 3;
    c.issue_window = 1;
    fx_loader(&f, &c, p);
    tu_gate g;
    tu_gate_init(&g);
    cr_assert_eq(ec_stream_host_fn(ec_loader_copy_stream(f.l), tu_gate_wait, &g), EC_OK);
    fx_observe(&f, 0, 0, 1);
    /* layers 1..3 predicted {2,3}, {4,5}, {6,7}: one prefetch started (window 1) */
    ec_loader_stats st;
    ec_loader_stats_get(f.l, &st);
    cr_assert_eq(st.demand_copies, 2);
    cr_assert_eq(st.prefetch_copies, 1);
    fx_acquire(&f, 0, 0);
    fx_acquire(&f, 0, 1);
    fx_release(&f, 0, 0);
    fx_release(&f, 0, 1);
    /* the router of layer 1 disagrees with the prediction */
    fx_observe(&f, 1, 6, 7);
    const ec_cache *cache = ec_loader_cache(f.l);
    int32_t s6 = ec_cache_find(cache, 1, 6), s7 = ec_cache_find(cache, 1, 7);
    cr_assert(s6 >= 0 && s7 >= 0);
    cr_assert_eq(ec_cache_slot(cache, s6)->state, EC_SLOT_LOADING, "demand started at once");
    cr_assert_eq(ec_cache_slot(cache, s7)->state, EC_SLOT_LOADING, "demand started at once");
    int queued = 0;
    for (int32_t i = 0; i < ec_cache_n_slots(cache); i++)
        queued += ec_cache_slot(cache, i)->state == EC_SLOT_QUEUED;
    cr_assert_gt(queued, 0, "prefetches decided earlier are still waiting behind the demands");
    ec_loader_stats_get(f.l, &st);
    cr_assert_eq(st.demand_copies, 4);
    cr_assert_eq(st.prefetch_copies, 1);
    tu_gate_open(&g);
    fx_acquire(&f, 1, 6);
    fx_acquire(&f, 1, 7);
    fx_release(&f, 1, 6);
    fx_release(&f, 1, 7);
    cr_assert_eq(ec_loader_sync(f.l), EC_OK); /* every queued prefetch started and landed */
    fx_observe(&f, 2, 4, 5); /* as predicted */
    fx_acquire(&f, 2, 4);
    fx_acquire(&f, 2, 5);
    fx_release(&f, 2, 4);
    fx_release(&f, 2, 5);
    cr_assert_eq(ec_loader_sync(f.l), EC_OK);
    ec_loader_stats_get(f.l, &st);
    cr_assert_eq(st.cache.misses, 4, "layer 2 was prefetched: only layers 0 and 1 missed");
    cr_assert_geq(st.cache.prefetch_hits, 1);
    fx_close(&f);
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
}

/* Hash of a slot read on a third stream, independent of the loader. */
static uint64_t probe(fx *f, ec_stream *s, const void *slot)
{
    cr_assert_eq(ec_stream_checksum(s, slot, ec_store_expert_bytes(f->s), f->dsum + MAX_CHECKS - 1),
                 EC_OK);
    cr_assert_eq(ec_stream_copy_d2h(s, f->hsum + MAX_CHECKS - 1, f->dsum + MAX_CHECKS - 1, 8),
                 EC_OK);
    cr_assert_eq(ec_stream_sync(s), EC_OK);
    return f->hsum[MAX_CHECKS - 1];
}

LOADER_TEST(a_released_slot_is_not_overwritten_before_its_reader_is_done)
{
    fx f;
    fx_open(&f, backend, 1, 4, 4096);
    ec_loader_config c;
    ec_loader_config_default(&c);
    c.k = 1;
    c.cache_per_layer = 1;
    fx_loader(&f, &c, NULL);
    ec_stream *side;
    cr_assert_eq(ec_stream_create(f.b, &side), EC_OK);
    int16_t a = 2, b = 3;
    cr_assert_eq(ec_loader_observe(f.l, 0, &a), EC_OK);
    void *w = fx_acquire(&f, 0, a);
    fx_flush(&f); /* the slot holds expert a */
    tu_gate g;
    tu_gate_init(&g);
    cr_assert_eq(ec_stream_host_fn(f.compute, tu_gate_wait, &g), EC_OK); /* a long reader */
    fx_release(&f, 0, a);
    cr_assert_eq(ec_loader_observe(f.l, 0, &b), EC_OK, "%s", ec_loader_errmsg(f.l));
    cr_assert_eq(ec_cache_find(ec_loader_cache(f.l), 0, a), -1, "b took a's only slot");
    tu_sleep_ms(30);
    cr_assert_eq(probe(&f, side, w), ec_store_checksum(f.s, 0, a),
                 "the copy of b must wait for a's reader");
    tu_gate_open(&g);
    void *w2 = fx_acquire(&f, 0, b);
    cr_assert_eq(w2, w);
    fx_release(&f, 0, b);
    fx_flush(&f);
    cr_assert_eq(probe(&f, side, w), ec_store_checksum(f.s, 0, b));
    ec_stream_destroy(side);
    fx_close(&f);
}

LOADER_TEST(observe_is_busy_while_every_slot_is_pinned_and_resumes_after_release)
{
    fx f;
    fx_open(&f, backend, 1, 4, 256);
    ec_loader_config c;
    ec_loader_config_default(&c);
    c.k = 1;
    c.cache_per_layer = 2;
    fx_loader(&f, &c, NULL);
    int16_t e[3] = {0, 1, 2};
    cr_assert_eq(ec_loader_observe(f.l, 0, &e[0]), EC_OK);
    fx_acquire(&f, 0, 0);
    cr_assert_eq(ec_loader_observe(f.l, 0, &e[1]), EC_OK);
    fx_acquire(&f, 0, 1);
    cr_assert_eq(ec_loader_observe(f.l, 0, &e[2]), EC_ERR_BUSY);
    cr_assert(strstr(ec_loader_errmsg(f.l), "pinned"), "%s", ec_loader_errmsg(f.l));
    fx_release(&f, 0, 0);
    cr_assert_eq(ec_loader_observe(f.l, 0, &e[2]), EC_OK, "%s", ec_loader_errmsg(f.l));
    fx_acquire(&f, 0, 2);
    fx_release(&f, 0, 2);
    fx_release(&f, 0, 1);
    ec_loader_stats st;
    ec_loader_stats_get(f.l, &st);
    cr_assert_eq(st.observes, 3);
    cr_assert_eq(st.cache.acquires, 3, "the refused observe was counted once");
    fx_close(&f);
}

LOADER_TEST(misuse_is_reported_with_a_message)
{
    fx f;
    fx_open(&f, backend, 2, 4, 64);
    ec_loader_config c;
    ec_loader_config_default(&c);
    ec_error err = {0};
    ec_loader *l = (ec_loader *)1;
    c.policy.kind = EC_POLICY_PREDICT;
    cr_assert_eq(ec_loader_create(f.b, f.s, NULL, &c, &l, &err), EC_ERR_INVALID);
    cr_assert_null(l);
    cr_assert(strstr(err.message, "predictor"), "%s", err.message);
    c.policy.kind = EC_POLICY_LRU;
    c.cache_per_layer = 1; /* fewer than k */
    cr_assert_eq(ec_loader_create(f.b, f.s, NULL, &c, &l, &err), EC_ERR_INVALID);
    cr_assert(strstr(err.message, "k=2"), "%s", err.message);
    c.cache_per_layer = 2;
    fx_loader(&f, &c, NULL);
    void *w = (void *)1;
    cr_assert_eq(ec_loader_acquire(f.l, 0, 1, f.compute, &w), EC_ERR_STATE);
    cr_assert_null(w);
    cr_assert(strstr(ec_loader_errmsg(f.l), "observed"), "%s", ec_loader_errmsg(f.l));
    int16_t dup[2] = {1, 1}, bad[2] = {1, 4};
    cr_assert_eq(ec_loader_observe(f.l, 0, dup), EC_ERR_INVALID);
    cr_assert(strstr(ec_loader_errmsg(f.l), "twice"));
    cr_assert_eq(ec_loader_observe(f.l, 0, bad), EC_ERR_INVALID);
    cr_assert(strstr(ec_loader_errmsg(f.l), "expert 4"));
    fx_observe(&f, 0, 1, 2);
    cr_assert_eq(ec_loader_acquire(f.l, 0, 3, f.compute, &w), EC_ERR_STATE);
    cr_assert_eq(ec_loader_release(f.l, 0, 1, f.compute), EC_ERR_STATE, "not acquired");
    fx_close(&f);
}

LOADER_TEST(on_demand_keeps_nothing_and_lru_keeps_what_fits)
{
    ec_policy_kind kinds[2] = {EC_POLICY_ON_DEMAND, EC_POLICY_LRU};
    for (int k = 0; k < 2; k++) {
        fx f;
        fx_open(&f, backend, 2, 4, 128);
        ec_loader_config c;
        ec_loader_config_default(&c);
        c.cache_per_layer = 4;
        c.policy.kind = kinds[k];
        fx_loader(&f, &c, NULL);
        for (int tok = 0; tok < 3; tok++)
            for (int32_t l = 0; l < 2; l++) {
                fx_observe(&f, l, 1, 2);
                fx_acquire(&f, l, 1);
                fx_acquire(&f, l, 2);
                fx_release(&f, l, 1);
                fx_release(&f, l, 2);
                fx_flush(&f); /* let the copies and readers finish: no overlap effects */
            }
        ec_loader_stats st;
        ec_loader_stats_get(f.l, &st);
        cr_assert_eq(st.cache.acquires, 12);
        if (kinds[k] == EC_POLICY_ON_DEMAND)
            cr_assert_eq(st.cache.misses, 12, "on-demand reloads every use");
        else
            cr_assert_eq(st.cache.misses, 4, "lru loads each of the 4 experts once");
        fx_close(&f);
    }
}

LOADER_TEST(the_recording_reloads_as_the_trace_that_was_observed)
{
    const char *dir = tu_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/rec.jsonl", dir);
    fx f;
    fx_open(&f, backend, 3, 8, 64);
    ec_loader_config c;
    ec_loader_config_default(&c);
    c.record_path = path;
    fx_loader(&f, &c, NULL);
    cr_assert_eq(ec_loader_begin_sequence(f.l, "rec \"q\"", 7), EC_OK);
    ec_rng r;
    ec_rng_seed(&r, 5);
    int16_t seen[5][3][2];
    for (int t = 0; t < 5; t++)
        for (int32_t l = 0; l < 3; l++) {
            int16_t a = (int16_t)ec_rng_below(&r, 8), b = (int16_t)((a + 1 + ec_rng_below(&r, 7)) % 8);
            seen[t][l][0] = a;
            seen[t][l][1] = b;
            fx_observe(&f, l, a, b);
        }
    cr_assert_eq(access(path, F_OK), -1, "nothing at the path before the loader finishes");
    cr_assert_eq(ec_loader_finish(f.l), EC_OK, "%s", ec_loader_errmsg(f.l));
    ec_trace *t = NULL;
    ec_error err = {0};
    const char *p = path;
    cr_assert_eq(ec_trace_load(&p, 1, NULL, &t, &err), EC_OK, "%s", err.message);
    cr_assert_eq(t->n_layers, 3);
    cr_assert_eq(t->k, 2);
    cr_assert_eq(t->n_seqs, 1);
    cr_assert_str_eq(t->seqs[0].dataset, "rec \"q\"");
    cr_assert_eq(t->seqs[0].problem_id, 7);
    cr_assert_eq(t->n_rows, 5);
    for (int i = 0; i < 5; i++)
        for (int32_t l = 0; l < 3; l++)
            cr_assert_eq(memcmp(ec_trace_experts(t, (size_t)i, l), seen[i][l], 4), 0);
    ec_trace_destroy(t);
    fx_close(&f);
}

/* Every policy replays a synthetic trace with every acquisition verified. */
LOADER_TEST(replay_verifies_every_acquisition_under_every_policy)
{
    ec_synth_opts so;
    ec_synth_opts_default(&so);
    so.n_layers = 6;
    so.n_seqs = 3;
    so.n_tokens = 12;
    ec_trace *t = NULL;
    cr_assert_eq(ec_synth_generate(&so, &t, NULL), EC_OK);
    ec_predictor *p = prior_on(t);
    ec_backend *b = backend_or_skip(backend);
    ec_store *s;
    cr_assert_eq(ec_store_create(b, 6, 8, 777, &s, NULL), EC_OK);
    cr_assert_eq(ec_store_fill_synthetic(s, 9, 1), EC_OK);
    ec_policy_kind kinds[] = {EC_POLICY_ON_DEMAND, EC_POLICY_LRU,   EC_POLICY_LFU,
                              EC_POLICY_PREDICT,   EC_POLICY_GATED, EC_POLICY_ORACLE,
                              EC_POLICY_RESIDENT};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        ec_replay_opts o = {0};
        ec_loader_config_default(&o.loader);
        o.loader.policy.kind = kinds[i];
        o.loader.policy.horizon = 2;
        o.loader.policy.transfer_ms = 1;
        o.loader.policy.compute_ms = 0.5;
        o.loader.cache_per_layer = kinds[i] == EC_POLICY_RESIDENT ? 8 : 3;
        o.verify = 1;
        o.warmup_tokens = 2;
        ec_replay_result res;
        ec_error err = {0};
        cr_assert_eq(ec_replay_run(b, s, t, p, &o, &res, &err), EC_OK, "%s: %s",
                     ec_policy_kind_name(kinds[i]), err.message);
        cr_assert_eq(res.tokens, 36);
        cr_assert_eq(res.verify_failures, 0, "%s", ec_policy_kind_name(kinds[i]));
        cr_assert_eq(res.verified, res.total.cache.acquires);
        cr_assert_eq(res.total.cache.acquires, 36 * 6 * 2);
        cr_assert(res.hit_rate >= 0 && res.hit_rate <= 1);
        if (kinds[i] == EC_POLICY_RESIDENT)
            cr_assert_eq(res.total.copies, 0, "resident copies only at creation");
        if (kinds[i] == EC_POLICY_ON_DEMAND)
            cr_assert_eq(res.total.cache.hits + res.total.cache.inflight_hits, 0);
    }
    ec_store_destroy(s);
    ec_backend_destroy(b);
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
}

/* 4-bit experts through the real path: the store holds q4 blocks, copies
 * move those bytes (every acquisition checksummed on the device) and the
 * q4 FFN runs on each slot. */
LOADER_TEST(replay_moves_and_runs_q4_experts)
{
    ec_synth_opts so;
    ec_synth_opts_default(&so);
    so.n_layers = 4;
    so.n_seqs = 1;
    so.n_tokens = 10;
    ec_trace *t = NULL;
    cr_assert_eq(ec_synth_generate(&so, &t, NULL), EC_OK);
    ec_backend *b = backend_or_skip(backend);
    int32_t d = 64, ff = 96;
    size_t bytes = ec_expert_bytes(EC_DTYPE_Q4, d, ff);
    ec_store *s;
    cr_assert_eq(ec_store_create(b, 4, 8, bytes, &s, NULL), EC_OK);
    cr_assert_eq(ec_store_set_format(s, EC_DTYPE_Q4, d, ff), EC_OK);
    cr_assert_eq(ec_store_fill_synthetic(s, 5, 1), EC_OK);
    cr_assert_eq(ec_store_validate(s), EC_OK, "%s", ec_store_errmsg(s));
    ec_replay_opts o = {0};
    ec_loader_config_default(&o.loader);
    o.loader.policy.kind = EC_POLICY_LRU;
    o.loader.cache_per_layer = 3;
    o.d_model = d;
    o.d_ff = ff;
    o.verify = 1;
    ec_replay_result res;
    ec_error err = {0};
    cr_assert_eq(ec_replay_run(b, s, t, NULL, &o, &res, &err), EC_ERR_INVALID);
    cr_assert(strstr(err.message, "f16 FFN 64 x 96 needs 36864 bytes per expert, the store has "
                                  "10368"),
              "%s", err.message);
    o.dtype = EC_DTYPE_Q4;
    cr_assert_eq(ec_replay_run(b, s, t, NULL, &o, &res, &err), EC_OK, "%s", err.message);
    cr_assert_eq(res.tokens, 10);
    cr_assert_eq(res.verify_failures, 0);
    cr_assert_eq(res.verified, res.total.cache.acquires);
    cr_assert(res.total.copies > 0);
    ec_store_destroy(s);
    ec_backend_destroy(b);
    ec_trace_destroy(t);
}

/* ---- integrity stress ------------------------------------------------------------------ */

/*
 * Random interleavings of observe / acquire / release over a small cache:
 * acquisitions held across later layers and tokens, readers slowed down at
 * random so that copies run ahead of them, several policies and cache
 * shapes. Every acquisition is checksummed on the reader's stream.
 */
static void stress(const char *backend, long ops_wanted)
{
    const char *env = getenv("EC_STRESS_OPS");
    if (env)
        ops_wanted = atol(env);
    int32_t L = 4, E = 8;
    ec_synth_opts so;
    ec_synth_opts_default(&so);
    so.n_layers = L;
    so.n_experts = E;
    so.n_seqs = 1;
    so.n_tokens = 64;
    so.seed = 3;
    ec_trace *t = NULL;
    cr_assert_eq(ec_synth_generate(&so, &t, NULL), EC_OK);
    ec_predictor *pred = prior_on(t);

    fx f;
    fx_open(&f, backend, L, E, 100); /* 100 bytes: tails of the checksum too */
    ec_rng r;
    ec_rng_seed(&r, 2024);
    long ops = 0, busy = 0, loaders = 0;
    ec_policy_kind kinds[] = {EC_POLICY_LRU, EC_POLICY_PREDICT, EC_POLICY_GATED, EC_POLICY_LFU,
                              EC_POLICY_ON_DEMAND};
    while (ops < ops_wanted) {
        ec_loader_config c;
        ec_loader_config_default(&c);
        c.policy.kind = kinds[loaders % 5];
        c.policy.horizon = 1 + (int32_t)ec_rng_below(&r, 3);
        c.policy.transfer_ms = 0.5;
        c.policy.compute_ms = 0.2;
        c.issue_window = 1 + (int32_t)ec_rng_below(&r, 3);
        if (loaders % 2) {
            c.cache_per_layer = 0;
            c.cache_global = 6 + (int32_t)ec_rng_below(&r, 6);
        } else {
            c.cache_per_layer = 3;
        }
        fx_loader(&f, &c, pred);
        loaders++;
        struct { int32_t layer, expert; } held[16];
        int n_held = 0;
        size_t row = 0;
        int32_t layer = -1;
        int16_t cur[2];
        int acquired[2] = {1, 1};
        for (long i = 0; i < 100000 && ops < ops_wanted; i++) {
            uint32_t op = ec_rng_below(&r, 10);
            if (op < 3) { /* observe the next layer */
                if (++layer == L) {
                    layer = 0;
                    row = (row + 1) % t->n_rows;
                }
                memcpy(cur, ec_trace_experts(t, row, layer), sizeof cur);
                ec_status s;
                while ((s = ec_loader_observe(f.l, layer, cur)) == EC_ERR_BUSY) {
                    cr_assert_gt(n_held, 0, "busy with nothing held: %s", ec_loader_errmsg(f.l));
                    busy++;
                    n_held--;
                    fx_release(&f, held[n_held].layer, held[n_held].expert);
                    ops++;
                }
                cr_assert_eq(s, EC_OK, "%s", ec_loader_errmsg(f.l));
                acquired[0] = acquired[1] = 0;
                ops++;
            } else if (op < 7) { /* acquire one of this layer's experts */
                int j = (int)ec_rng_below(&r, 2);
                if (layer < 0 || acquired[j] || n_held == 16)
                    continue;
                fx_acquire(&f, layer, cur[j]);
                if (ec_rng_below(&r, 8) == 0) /* a slow reader */
                    cr_assert_eq(ec_stream_spin(f.compute, (double)ec_rng_below(&r, 40)), EC_OK);
                acquired[j] = 1;
                held[n_held].layer = layer;
                held[n_held].expert = cur[j];
                n_held++;
                ops++;
            } else if (n_held > 0) { /* release a random held acquisition */
                int j = (int)ec_rng_below(&r, (uint32_t)n_held);
                fx_release(&f, held[j].layer, held[j].expert);
                held[j] = held[--n_held];
                ops++;
            }
        }
        while (n_held > 0) {
            n_held--;
            fx_release(&f, held[n_held].layer, held[n_held].expert);
        }
        fx_flush(&f);
        cr_assert_eq(ec_loader_finish(f.l), EC_OK, "%s", ec_loader_errmsg(f.l));
        ec_loader_destroy(f.l);
        f.l = NULL;
    }
    cr_log_info("stress on %s: %ld operations, %ld acquisitions verified, %ld wrong, %ld busy "
                "retries, %ld loaders",
                backend, ops, f.checked, f.wrong, busy, loaders);
    cr_assert_geq(ops, ops_wanted);
    cr_assert_gt(f.checked, ops_wanted / 4);
    fx_close(&f);
    ec_predictor_destroy(pred);
    ec_trace_destroy(t);
}

Test(loader_cpu, integrity_stress_1m_operations) { stress("cpu", 1000000); }
Test(loader_cuda, integrity_stress_1m_operations) { stress("cuda", 1000000); }
