/*
 * Allocation-failure injection: for every k, the k-th allocation made by a
 * public entry point fails. The call must return EC_ERR_NOMEM (or succeed,
 * when it can do without), set its out-pointer to NULL, name the failure,
 * and leave no block behind once what it made is destroyed.
 */
#include "testutil.h"
#include "expertcast/policy.h"
#include "expertcast/seed.h"
#include "expertcast/sim.h"
#include "predict/predictor.h"
#include "trace/jsonl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What one run under the failing allocator reports. */
typedef struct run_result {
    ec_status status;
    int reached;  /* the k-th allocation happened inside the call under test */
    int out_null; /* the out-pointer was NULL after a failure (1 when not applicable) */
    char message[EC_ERROR_MAX];
} run_result;

/* Runs the entry point; allocation number st->calls + k of the call under
 * test fails (setup and teardown allocate freely). Destroys what it made. */
typedef run_result (*op_fn)(tu_alloc_state *st, size_t k, const void *arg);

/* Arms the failure: the k-th allocation from now fails. */
static void arm(tu_alloc_state *st, size_t k) { st->fail_at = st->calls + k; }

/* Whether the armed allocation was reached; disarms, so that checks made
 * after the call under test allocate freely. */
static int disarm(tu_alloc_state *st)
{
    int hit = st->fail_at && st->calls >= st->fail_at;
    st->fail_at = 0;
    return hit;
}

/* Runs the call under test with the failure armed (statements, so that the
 * call surely comes before the check). */
#define RUN(r, st, k, call)                                                                        \
    do {                                                                                           \
        arm(st, k);                                                                                \
        (r).status = (call);                                                                       \
        (r).reached = disarm(st);                                                                  \
        (r).out_null = 1;                                                                          \
    } while (0)

static size_t sweep(const char *name, op_fn op, const void *arg, int needs_message)
{
    size_t k;
    for (k = 1; k < 100000; k++) {
        tu_alloc_state st = {0};
        tu_alloc_install(&st);
        run_result r = op(&st, k, arg);
        tu_alloc_uninstall();
        cr_assert_eq(st.live, 0, "%s: failing allocation %zu leaked %ld block(s)", name, k,
                     st.live);
        if (!r.reached) {
            cr_assert_eq(r.status, EC_OK, "%s: fails (%d: %s) with no allocation failing", name,
                         r.status, r.message);
            if (getenv("EC_SWEEP_VERBOSE"))
                fprintf(stderr, "%s: %zu allocations swept\n", name, k - 1);
            return k - 1;
        }
        cr_assert(r.status == EC_OK || r.status == EC_ERR_NOMEM,
                  "%s: failing allocation %zu gave status %d (%s), not EC_ERR_NOMEM", name, k,
                  r.status, r.message);
        if (r.status == EC_ERR_NOMEM) {
            cr_assert(r.out_null, "%s: failing allocation %zu left the out-pointer set", name, k);
            if (needs_message)
                cr_assert(r.message[0], "%s: failing allocation %zu: no message", name, k);
        }
    }
    cr_assert_fail("%s: still allocating after %zu allocations", name, k);
    return k;
}

/* ---- the entry points ---------------------------------------------------------- */

static const char *small_trace_path(void)
{
    static char path[1024];
    if (!path[0]) {
        /* Two sequences with gates, a duplicate record and a missing layer;
         * the record of "b" writes its token as 2.0, which only the cJSON
         * path reads (the fast scanner takes plain integers), so both
         * paths are swept. */
        const char *text =
            "{\"dataset\": \"a\", \"problem_id\": 0, \"layer\": 0, \"experts\": [1, 2], "
            "\"gating_probs\": [0.7, 0.3], \"token_idx\": 0}\n"
            "{\"dataset\": \"a\", \"problem_id\": 0, \"layer\": 1, \"experts\": [0, 3], "
            "\"gating_probs\": [0.6, 0.4], \"token_idx\": 0}\n"
            "{\"dataset\": \"a\", \"problem_id\": 0, \"layer\": 1, \"experts\": [2, 3], "
            "\"gating_probs\": [0.6, 0.4], \"token_idx\": 0}\n"
            "{\"dataset\": \"b\", \"problem_id\": 4, \"layer\": 0, \"experts\": [3, 1], "
            "\"gating_probs\": [0.9, 0.1], \"token_idx\": 2.0, \"extra\": [1, {\"x\": null}]}\n"
            "{\"dataset\": \"a\", \"problem_id\": 0, \"layer\": 0, \"experts\": [1, 0], "
            "\"gating_probs\": [0.5, 0.5], \"token_idx\": 1}\n";
        snprintf(path, sizeof path, "%s", tu_write(tu_tmpdir(), "small.jsonl", text));
    }
    return path;
}

static run_result op_trace_load(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    const char *paths[2] = {small_trace_path(), small_trace_path()};
    ec_trace *t = (ec_trace *)st; /* poison: must come back NULL on failure */
    ec_error err = {0};
    run_result r = {0};
    RUN(r, st, k, ec_trace_load(paths, 2, NULL, &t, &err));
    if (r.status == EC_OK)
        cr_assert_eq(t->n_duplicates, 6); /* the second file repeats all 5, plus one in it */
    else
        r.out_null = t == NULL;
    snprintf(r.message, sizeof r.message, "%s", err.message);
    ec_trace_destroy(r.status == EC_OK ? t : NULL);
    return r;
}

static run_result op_trace_load_buffer(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    size_t len;
    char *text = tu_read(small_trace_path(), &len); /* plain malloc: not counted */
    ec_trace *t = (ec_trace *)st;
    ec_error err = {0};
    run_result r = {0};
    RUN(r, st, k, ec_trace_load_buffer("small.jsonl", text, len, NULL, &t, &err));
    if (r.status != EC_OK)
        r.out_null = t == NULL;
    snprintf(r.message, sizeof r.message, "%s", err.message);
    ec_trace_destroy(r.status == EC_OK ? t : NULL);
    free(text);
    return r;
}

static void small_synth_opts(ec_synth_opts *o)
{
    ec_synth_opts_default(o);
    o->n_layers = 4;
    o->n_experts = 8;
    o->k = 2;
    o->n_seqs = 3;
    o->n_tokens = 5;
}

/* For the predictor sweeps: every allocation of save and load is failed in
 * turn, each run refitting, so keep the model (and its rules) small. */
static void tiny_synth_opts(ec_synth_opts *o)
{
    small_synth_opts(o);
    o->n_seqs = 1;
    o->n_tokens = 3;
}

static run_result op_synth(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    ec_synth_opts o;
    small_synth_opts(&o);
    ec_trace *t = (ec_trace *)st;
    ec_error err = {0};
    run_result r = {0};
    RUN(r, st, k, ec_synth_generate(&o, &t, &err));
    if (r.status != EC_OK)
        r.out_null = t == NULL;
    snprintf(r.message, sizeof r.message, "%s", err.message);
    ec_trace_destroy(r.status == EC_OK ? t : NULL);
    return r;
}

static run_result op_history_create(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    ec_history *h = (ec_history *)st;
    run_result r = {0};
    RUN(r, st, k, ec_history_create(32, 8, 2, 4, &h));
    if (r.status != EC_OK)
        r.out_null = h == NULL;
    ec_history_destroy(r.status == EC_OK ? h : NULL);
    return r;
}

static run_result op_predictor_create(tu_alloc_state *st, size_t k, const void *arg)
{
    ec_predictor *p = (ec_predictor *)st;
    ec_error err = {0};
    run_result r = {0};
    RUN(r, st, k, ec_predictor_create(arg, NULL, &p, &err));
    if (r.status != EC_OK)
        r.out_null = p == NULL;
    snprintf(r.message, sizeof r.message, "%s", err.message);
    ec_predictor_destroy(r.status == EC_OK ? p : NULL);
    return r;
}

static run_result op_predictor_fit(tu_alloc_state *st, size_t k, const void *arg)
{
    ec_synth_opts o;
    tiny_synth_opts(&o);
    ec_trace *t;
    ec_predictor *p;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    cr_assert_eq(ec_predictor_create(arg, NULL, &p, NULL), EC_OK);
    /* A first fit, so that a failing refit must keep or replace the model cleanly. */
    cr_assert_eq(ec_predictor_fit(p, t, NULL), EC_OK);
    run_result r = {0};
    RUN(r, st, k, ec_predictor_fit(p, t, NULL));
    snprintf(r.message, sizeof r.message, "%s", ec_predictor_errmsg(p));
    if (r.status == EC_OK) {
        float probs[8];
        ec_history *h;
        cr_assert_eq(ec_history_create(4, 8, 2, 2, &h), EC_OK);
        int16_t ex[2] = {1, 2};
        size_t before = st->calls; /* the hot path never allocates */
        ec_history_observe(h, 0, ex);
        for (int32_t hz = 1; hz <= 4; hz++)
            cr_assert_geq(ec_predictor_predict(p, h, hz, probs), 0);
        cr_assert_eq(st->calls, before, "observe/predict allocated");
        ec_history_destroy(h);
    }
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
    return r;
}

static const char *scratch_model(void)
{
    static char path[1024];
    if (!path[0]) {
        /* tmpfs when there is one: every successful save syncs the file */
        char dir[64] = "/dev/shm/ec_alloc_XXXXXX";
        snprintf(path, sizeof path, "%s/model.json",
                 access("/dev/shm", W_OK) == 0 && mkdtemp(dir) ? dir : tu_tmpdir());
    }
    return path;
}

/* Entries of the scratch model's folder (the model and any temporary). */
static int folder_entries(void)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls -A \"$(dirname '%s')\" | wc -l", scratch_model());
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static run_result op_predictor_save(tu_alloc_state *st, size_t k, const void *arg)
{
    ec_synth_opts o;
    tiny_synth_opts(&o);
    ec_trace *t;
    ec_predictor *p;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    cr_assert_eq(ec_predictor_create(arg, NULL, &p, NULL), EC_OK);
    cr_assert_eq(ec_predictor_fit(p, t, NULL), EC_OK);
    unlink(scratch_model());
    ec_error err = {0};
    run_result r = {0};
    RUN(r, st, k, ec_predictor_save(p, scratch_model(), &err));
    snprintf(r.message, sizeof r.message, "%s", err.message);
    struct stat sb;
    int exists = stat(scratch_model(), &sb) == 0;
    cr_assert_eq(exists, r.status == EC_OK, "save returned %d but the file %s", r.status,
                 exists ? "exists" : "is missing");
    cr_assert_eq(folder_entries(), exists, "a temporary file was left beside the model");
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
    return r;
}

static run_result op_predictor_load(tu_alloc_state *st, size_t k, const void *arg)
{
    static char saved[64]; /* the predictor whose model file is on disk */
    if (strcmp(saved, arg) != 0) {
        ec_synth_opts o;
        tiny_synth_opts(&o);
        ec_trace *t;
        ec_predictor *p;
        cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
        cr_assert_eq(ec_predictor_create(arg, NULL, &p, NULL), EC_OK);
        cr_assert_eq(ec_predictor_fit(p, t, NULL), EC_OK);
        cr_assert_eq(ec_predictor_save(p, scratch_model(), NULL), EC_OK);
        ec_predictor_destroy(p);
        ec_trace_destroy(t);
        snprintf(saved, sizeof saved, "%s", (const char *)arg);
    }
    ec_predictor *q = (ec_predictor *)st;
    ec_error err = {0};
    run_result r = {0};
    RUN(r, st, k, ec_predictor_load(scratch_model(), &q, &err));
    if (r.status != EC_OK)
        r.out_null = q == NULL;
    snprintf(r.message, sizeof r.message, "%s", err.message);
    ec_predictor_destroy(r.status == EC_OK ? q : NULL);
    return r;
}

static run_result op_outfile(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    char path[1024];
    snprintf(path, sizeof path, "%s/out.txt", tu_tmpdir());
    ec_outfile *o = (ec_outfile *)st;
    FILE *f = (FILE *)st;
    ec_error err = {0};
    run_result r = {0};
    RUN(r, st, k, ec_outfile_open(path, &o, &f, &err));
    snprintf(r.message, sizeof r.message, "%s", err.message);
    if (r.status == EC_OK) {
        fputs("complete\n", f);
        r.status = ec_outfile_commit(o, &err);
        cr_assert_eq(r.status, EC_OK, "%s", err.message);
        char *text = tu_read(path, NULL);
        cr_assert_str_eq(text, "complete\n");
        free(text);
    } else {
        r.out_null = o == NULL && f == NULL;
        cr_assert_neq(access(path, F_OK), 0, "failed open created %s", path);
    }
    return r;
}

static run_result op_pyrepr(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    /* Long enough to grow the output several times; a long float literal. */
    static const char text[] =
        "{\"dataset\": \"caf\\u00e9 \\ud83d\\ude00\", \"experts\": [6, 5, 4, 3, 2, 1, 0], "
        "\"gating_probs\": [0.69, 0.30, 1e-05, 1E16, -0.0], \"nested\": [[[{\"a\": null}]]], "
        "\"long\": 3.14159265358979323846264338327950288419716939937510582097494459230781640"
        "6286208998628034825342117067982148086513282306647093844609550582231725359408128, "
        /* 20 members, a and b repeated: grows the member list, hashes the keys */
        "\"dups\": {\"a\": 1, \"b\": 2, \"a\": 3, \"b\": 4, \"a\": 5, \"b\": 6, \"a\": 7, \"b\": 8, \"a\": 9, \"b\": 10, \"a\": 11, \"b\": 12, \"a\": 13, \"b\": 14, \"a\": 15, \"b\": 16, \"a\": 17, \"b\": 18, \"a\": 19, \"b\": 20}}";
    char *out = (char *)st;
    size_t len;
    run_result r = {0};
    RUN(r, st, k, ec_json_pyrepr(text, sizeof text - 1, &out, &len));
    if (r.status == EC_OK) {
        cr_assert(strstr(out, "\"long\": 3.141592653589793, \"dups\": {\"a\": 19, \"b\": 20}}"),
                  "%s", out);
        ec_free(out);
    } else {
        r.out_null = out == NULL;
    }
    return r;
}

/* ---- policy: cache, queue, policy of every kind ------------------------------------ */

typedef struct cache_shape {
    int32_t per_layer, global;
} cache_shape;

static run_result op_cache_create(tu_alloc_state *st, size_t k, const void *arg)
{
    const cache_shape *cs = arg;
    ec_cache *c = (ec_cache *)st;
    run_result r = {0};
    RUN(r, st, k, ec_cache_create(4, 8, cs->per_layer, cs->global, &c));
    if (r.status != EC_OK)
        r.out_null = c == NULL;
    ec_cache_destroy(r.status == EC_OK ? c : NULL);
    return r;
}

static run_result op_queue_create(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    ec_queue *q = (ec_queue *)st;
    run_result r = {0};
    RUN(r, st, k, ec_queue_create(12, &q));
    if (r.status != EC_OK)
        r.out_null = q == NULL;
    ec_queue_destroy(r.status == EC_OK ? q : NULL);
    return r;
}

/* The oracle's future, read from a trace: step = row * L + layer. */
static int64_t trace_next_use(void *ctx, int64_t from, int32_t layer, int32_t expert)
{
    const ec_trace *t = ctx;
    int64_t L = t->n_layers;
    for (int64_t step = from < 0 ? 0 : from; step < (int64_t)t->n_rows * L; step++) {
        if (step % L != layer)
            continue;
        const int16_t *e = ec_trace_experts(t, (size_t)(step / L), layer);
        for (int32_t i = 0; i < t->k; i++)
            if (e[i] == expert)
                return step;
    }
    return INT64_MAX;
}

static int32_t trace_experts_at(void *ctx, int64_t step, int32_t *layer, int16_t *experts)
{
    const ec_trace *t = ctx;
    if (step < 0 || step >= (int64_t)t->n_rows * t->n_layers)
        return 0;
    *layer = (int32_t)(step % t->n_layers);
    memcpy(experts, ec_trace_experts(t, (size_t)(step / t->n_layers), *layer),
           (size_t)t->k * sizeof *experts);
    return t->k;
}

/* Starts and completes every queued transfer. */
static void drain(ec_policy *p, ec_queue *q)
{
    ec_transfer tr;
    while (ec_queue_pop(q, &tr)) {
        ec_policy_started(p, &tr);
        ec_policy_completed(p, tr.slot);
    }
}

/* Replays a trace through a policy as a simulator would: observe, start
 * and complete transfers, acquire and release every used expert. Returns
 * the allocations made, which the contract says are none. */
static size_t replay(tu_alloc_state *st, ec_policy *p, ec_queue *q, ec_history *h,
                     const ec_trace *t)
{
    size_t before = st->calls;
    int64_t step = 0;
    for (size_t r = 0; r < t->n_rows; r++)
        for (int32_t l = 0; l < t->n_layers; l++, step++) {
            const int16_t *e = ec_trace_experts(t, r, l);
            ec_history_observe(h, l, e);
            ec_status s = ec_policy_observe(p, step, l, e, t->k, h);
            if (s == EC_ERR_BUSY) {
                drain(p, q);
                s = ec_policy_observe(p, step, l, e, t->k, h);
            }
            cr_assert_eq(s, EC_OK, "observe at step %lld: %d", (long long)step, s);
            drain(p, q);
            for (int32_t i = 0; i < t->k; i++) {
                int32_t slot = ec_policy_acquire(p, step, l, e[i]);
                cr_assert_geq(slot, 0, "expert %d of step %lld not present", e[i],
                              (long long)step);
                ec_policy_release(p, slot);
            }
        }
    return st->calls - before;
}

static run_result op_policy_create(tu_alloc_state *st, size_t k, const void *arg)
{
    ec_policy_kind kind = *(const ec_policy_kind *)arg;
    ec_synth_opts o;
    small_synth_opts(&o);
    ec_trace *t;
    ec_predictor *pred;
    ec_cache *c;
    ec_queue *q;
    ec_history *h;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    cr_assert_eq(ec_predictor_create("prior", NULL, &pred, NULL), EC_OK);
    cr_assert_eq(ec_predictor_fit(pred, t, NULL), EC_OK);
    int32_t per_layer = kind == EC_POLICY_RESIDENT ? o.n_experts : 3;
    cr_assert_eq(ec_cache_create(o.n_layers, o.n_experts, per_layer, 0, &c), EC_OK);
    cr_assert_eq(ec_queue_create(ec_cache_n_slots(c), &q), EC_OK);
    cr_assert_eq(ec_history_create(o.n_layers, o.n_experts, o.k, 2, &h), EC_OK);
    ec_policy_config cfg = {.kind = kind, .horizon = 2, .transfer_ms = 1, .compute_ms = 0.5};
    ec_future fut = {trace_next_use, trace_experts_at, t};
    ec_policy *p = (ec_policy *)st;
    ec_error err = {0};
    run_result r = {0};
    RUN(r, st, k, ec_policy_create(&cfg, c, q, pred, &fut, &p, &err));
    snprintf(r.message, sizeof r.message, "%s", err.message);
    if (r.status == EC_OK) {
        size_t n = replay(st, p, q, h, t);
        cr_assert_eq(n, 0, "policy '%s' allocated %zu times while replaying",
                     ec_policy_kind_name(kind), n);
        ec_policy_destroy(p);
    } else {
        r.out_null = p == NULL;
    }
    ec_history_destroy(h);
    ec_queue_destroy(q);
    ec_cache_destroy(c);
    ec_predictor_destroy(pred);
    ec_trace_destroy(t);
    return r;
}

/* ---- seed rules: fit, save, load as a predictor -------------------------------------- */

static ec_trace *seed_trace(void)
{
    ec_synth_opts o;
    tiny_synth_opts(&o);
    o.n_layers = 10; /* every level, skip 8 included, has cases */
    o.n_tokens = 2;
    ec_trace *t;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    return t;
}

static run_result op_rules_fit(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    ec_trace *t = seed_trace();
    ec_seed_rules *r = (ec_seed_rules *)st;
    ec_error err = {0};
    run_result res = {0};
    RUN(res, st, k, ec_seed_rules_fit(t, NULL, &r, &err));
    snprintf(res.message, sizeof res.message, "%s", err.message);
    if (res.status == EC_OK)
        ec_seed_rules_destroy(r);
    else
        res.out_null = r == NULL;
    ec_trace_destroy(t);
    return res;
}

static const char *scratch_rules(void)
{
    static char path[1024];
    if (!path[0])
        snprintf(path, sizeof path, "%s/rules.json", tu_tmpdir());
    return path;
}

static run_result op_rules_save(tu_alloc_state *st, size_t k, const void *arg)
{
    (void)arg;
    ec_trace *t = seed_trace();
    ec_seed_rules *r;
    cr_assert_eq(ec_seed_rules_fit(t, NULL, &r, NULL), EC_OK);
    unlink(scratch_rules());
    ec_error err = {0};
    run_result res = {0};
    RUN(res, st, k, ec_seed_rules_save(r, scratch_rules(), &err));
    snprintf(res.message, sizeof res.message, "%s", err.message);
    cr_assert_eq(access(scratch_rules(), F_OK) == 0, res.status == EC_OK,
                 "save returned %d but the file is %s", res.status,
                 res.status ? "there" : "missing");
    ec_seed_rules_destroy(r);
    ec_trace_destroy(t);
    return res;
}

/* ec_predictor_load_seed_rules (arg: the predictor name), and with NULL arg
 * ec_predictor_load on the rules file (the text loader's rules branch). */
static run_result op_rules_as_predictor(tu_alloc_state *st, size_t k, const void *arg)
{
    static int saved;
    if (!saved) {
        ec_trace *t = seed_trace();
        ec_seed_rules *r;
        cr_assert_eq(ec_seed_rules_fit(t, NULL, &r, NULL), EC_OK);
        cr_assert_eq(ec_seed_rules_save(r, scratch_rules(), NULL), EC_OK);
        ec_seed_rules_destroy(r);
        ec_trace_destroy(t);
        saved = 1;
    }
    ec_predictor *p = (ec_predictor *)st;
    ec_error err = {0};
    run_result res = {0};
    if (arg)
        RUN(res, st, k, ec_predictor_load_seed_rules(scratch_rules(), arg, &p, &err));
    else
        RUN(res, st, k, ec_predictor_load(scratch_rules(), &p, &err));
    snprintf(res.message, sizeof res.message, "%s", err.message);
    if (res.status == EC_OK) {
        cr_assert_str_eq(ec_predictor_name(p), arg ? (const char *)arg : "hybrid");
        ec_predictor_destroy(p);
    } else {
        res.out_null = p == NULL;
    }
    return res;
}

/* ---- model and hardware profiles ---------------------------------------------------- */

static run_result op_profile(tu_alloc_state *st, size_t k, const void *arg)
{
    const char *name = arg;
    char path[1024];
    snprintf(path, sizeof path, "%s/data/profiles/%s.json", EC_SOURCE_DIR, name);
    ec_error err = {0};
    run_result r = {0};
    if (strstr(name, "pcie") || strstr(name, "c2c")) {
        ec_hw_profile h;
        RUN(r, st, k, ec_hw_profile_load(path, &h, &err));
        if (r.status == EC_OK)
            cr_assert_gt(h.h2d_gbs, 0);
    } else {
        ec_model_profile m;
        RUN(r, st, k, ec_model_profile_load(path, "int4", &m, &err));
        if (r.status == EC_OK)
            cr_assert_str_eq(m.dtype, "int4");
    }
    snprintf(r.message, sizeof r.message, "%s", err.message);
    return r;
}

/* ---- the sweeps ------------------------------------------------------------------ */

Test(alloc_fail, trace_load)
{
    size_t n = sweep("ec_trace_load", op_trace_load, NULL, 1);
    cr_assert_gt(n, 20, "only %zu allocations: the sweep did not cover the loader", n);
}

Test(alloc_fail, trace_load_buffer)
{
    cr_assert_gt(sweep("ec_trace_load_buffer", op_trace_load_buffer, NULL, 1), 20);
}

Test(alloc_fail, synth_generate) { cr_assert_gt(sweep("ec_synth_generate", op_synth, NULL, 1), 5); }

Test(alloc_fail, history_create)
{
    cr_assert_geq(sweep("ec_history_create", op_history_create, NULL, 0), 2);
}

/* Whether an earlier name's predictor has the same save and load code (the
 * seed levels share theirs): their full save/load sweeps would repeat. */
static int same_codec_as_earlier(const char *const *names, const char *const *name)
{
    ec_predictor *p, *q;
    cr_assert_eq(ec_predictor_create(*name, NULL, &p, NULL), EC_OK);
    int same = 0;
    for (const char *const *e = names; e < name && !same; e++) {
        cr_assert_eq(ec_predictor_create(*e, NULL, &q, NULL), EC_OK);
        same = q->vt->save == p->vt->save && q->vt->load == p->vt->load &&
               q->vt->fit == p->vt->fit;
        ec_predictor_destroy(q);
    }
    ec_predictor_destroy(p);
    return same;
}

Test(alloc_fail, predictor_create_fit_save_load_for_every_predictor)
{
    const char *const *names = ec_predictor_names();
    for (const char *const *name = names; *name; name++) {
        char what[128];
        snprintf(what, sizeof what, "ec_predictor_create(%s)", *name);
        cr_assert_geq(sweep(what, op_predictor_create, *name, 1), 1);
        snprintf(what, sizeof what, "ec_predictor_fit(%s)", *name);
        cr_assert_geq(sweep(what, op_predictor_fit, *name, 1), 1);
        if (same_codec_as_earlier(names, name))
            continue;
        snprintf(what, sizeof what, "ec_predictor_save(%s)", *name);
        cr_assert_gt(sweep(what, op_predictor_save, *name, 1), 10);
        snprintf(what, sizeof what, "ec_predictor_load(%s)", *name);
        cr_assert_gt(sweep(what, op_predictor_load, *name, 1), 10);
    }
}

Test(alloc_fail, outfile_open) { cr_assert_geq(sweep("ec_outfile_open", op_outfile, NULL, 1), 3); }

Test(alloc_fail, json_pyrepr) { cr_assert_gt(sweep("ec_json_pyrepr", op_pyrepr, NULL, 0), 3); }

Test(alloc_fail, cache_and_queue_create)
{
    static const cache_shape per_layer = {3, 0}, global = {0, 10};
    cr_assert_geq(sweep("ec_cache_create(per-layer)", op_cache_create, &per_layer, 0), 3);
    cr_assert_geq(sweep("ec_cache_create(global)", op_cache_create, &global, 0), 3);
    cr_assert_geq(sweep("ec_queue_create", op_queue_create, NULL, 0), 3);
}

Test(alloc_fail, policy_create_for_every_kind_and_replay_never_allocates)
{
    for (int kind = EC_POLICY_ON_DEMAND; kind <= EC_POLICY_RESIDENT; kind++) {
        char what[128];
        ec_policy_kind kd = (ec_policy_kind)kind;
        snprintf(what, sizeof what, "ec_policy_create(%s)", ec_policy_kind_name(kd));
        cr_assert_geq(sweep(what, op_policy_create, &kd, 1), 1);
    }
}

Test(alloc_fail, seed_rules_fit_save_and_load_as_predictors)
{
    cr_assert_gt(sweep("ec_seed_rules_fit", op_rules_fit, NULL, 1), 10);
    cr_assert_gt(sweep("ec_seed_rules_save", op_rules_save, NULL, 1), 3);
    /* The seed predictors share their loader: one level and the hybrid. */
    static const char *const seeds[] = {"seed-l1", "hybrid"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "ec_predictor_load_seed_rules(%s)", seeds[i]);
        cr_assert_gt(sweep(what, op_rules_as_predictor, seeds[i], 1), 10);
    }
    cr_assert_gt(sweep("ec_predictor_load(rules file)", op_rules_as_predictor, NULL, 1), 10);
}

Test(alloc_fail, profiles)
{
    cr_assert_gt(sweep("ec_model_profile_load(mixtral-8x7b, int4)", op_profile, "mixtral-8x7b", 1),
                 10);
    cr_assert_gt(sweep("ec_hw_profile_load(h100-pcie5)", op_profile, "h100-pcie5", 1), 10);
}
