/*
 * fuzz_policy: arbitrary bytes drive a policy the way a loader or simulator
 * would, within the documented contract (steps non-decreasing, history fed
 * before observe, EC_ERR_BUSY answered by completing transfers or releasing
 * readers, acquire after observe) but in any order the bytes choose. The
 * cache and its counters must stay consistent and nothing may allocate
 * after creation.
 *
 * Input: 6 header bytes (kind, layers and in the high 4 bits gated's and
 * hybrid's what-if eviction window, experts, k, capacity, horizon), then
 * per step 1 action byte and k expert bytes.
 */
#include "targets.h"

#include "expertcast/policy.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_L = 4, MAX_E = 12, MAX_STEPS = 512, MAX_PINS = MAX_L * MAX_E * 4 };

typedef struct script {
    int32_t L, E, k, steps;
    int16_t ex[MAX_STEPS][3];
    uint8_t action[MAX_STEPS];
} script;

/* The oracle's future: answered from the whole script. */
static int64_t script_next_use(void *ctx, int64_t from, int32_t layer, int32_t expert)
{
    const script *s = ctx;
    for (int64_t t = from < 0 ? 0 : from; t < s->steps; t++)
        if (t % s->L == layer)
            for (int32_t i = 0; i < s->k; i++)
                if (s->ex[t][i] == expert)
                    return t;
    return INT64_MAX;
}

static int32_t script_experts_at(void *ctx, int64_t step, int32_t *layer, int16_t *experts)
{
    const script *s = ctx;
    if (step < 0 || step >= s->steps)
        return 0;
    *layer = (int32_t)(step % s->L);
    memcpy(experts, s->ex[step], (size_t)s->k * sizeof *experts);
    return s->k;
}

/* A counting allocator: after creation, the policy must not allocate. */
static size_t g_calls;
static void *count_malloc(size_t n, void *ctx)
{
    (void)ctx;
    g_calls++;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    g_calls++;
    return realloc(p, n);
}
static void count_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

typedef struct driver {
    ec_policy *p;
    ec_cache *c;
    ec_queue *q;
    int32_t loading[MAX_L * MAX_E]; /* started, not completed */
    int32_t n_loading;
    int32_t pins[MAX_PINS]; /* slots acquired, not released */
    int32_t n_pins;
    int64_t started;
} driver;

static void start_one(driver *d)
{
    ec_transfer t;
    if (d->n_loading < MAX_L * MAX_E && ec_queue_pop(d->q, &t)) {
        ec_policy_started(d->p, &t);
        d->loading[d->n_loading++] = t.slot;
        d->started++;
    }
}

static void complete_all(driver *d)
{
    for (int32_t i = 0; i < d->n_loading; i++)
        ec_policy_completed(d->p, d->loading[i]);
    d->n_loading = 0;
}

static void release_all(driver *d)
{
    for (int32_t i = 0; i < d->n_pins; i++)
        ec_policy_release(d->p, d->pins[i]);
    d->n_pins = 0;
}

/* The slot table and counters agree with each other and with the driver. */
static const char *check_cache(const driver *d, int64_t observed_uses)
{
    const ec_cache *c = d->c;
    int32_t n = ec_cache_n_slots(c);
    int32_t pinned = 0;
    for (int32_t i = 0; i < n; i++) {
        const ec_slot *s = ec_cache_slot(c, i);
        if (s->pins < 0)
            return "negative pin count";
        pinned += s->pins;
        if (s->state == EC_SLOT_EMPTY) {
            if (s->pins)
                return "empty slot pinned";
            continue;
        }
        if (s->layer < 0 || s->expert < 0)
            return "occupied slot without an expert";
        if (ec_cache_find(c, s->layer, s->expert) != i)
            return "ec_cache_find disagrees with the slot table";
        int32_t first, cnt;
        ec_cache_pool(c, s->layer, &first, &cnt);
        if (i < first || i >= first + cnt)
            return "expert outside its layer's pool";
    }
    if (pinned != d->n_pins)
        return "pins in the table differ from the readers holding them";
    const ec_cache_stats *st = ec_cache_stats_get(c);
    if (st->acquires != observed_uses)
        return "acquires differ from the uses observed";
    if (st->hits + st->inflight_hits + st->misses != st->acquires)
        return "hits + inflight hits + misses != acquires";
    if (st->loads != d->started)
        return "loads differ from the transfers started";
    if (st->prefetches > st->loads || st->prefetch_hits + st->wasted > st->prefetches)
        return "prefetch counters inconsistent";
    if (st->host_runs > st->misses)
        return "more host runs than misses";
    if (ec_queue_len(d->q) > n)
        return "queue longer than the cache";
    return NULL;
}

static const char *run_script(const script *s, ec_policy_kind kind, int32_t capacity,
                              int32_t horizon, int global, int32_t whatif)
{
    ec_synth_opts so;
    ec_synth_opts_default(&so);
    so.n_layers = s->L;
    so.n_experts = s->E;
    so.k = s->k;
    so.n_seqs = 1;
    so.n_tokens = 8;
    ec_trace *t = NULL;
    ec_predictor *pred = NULL;
    ec_history *h = NULL;
    driver d;
    memset(&d, 0, sizeof d);
    if (kind == EC_POLICY_RESIDENT) {
        global = 0;
        capacity = s->E;
    }
    if (ec_synth_generate(&so, &t, NULL) || ec_predictor_create("prior", NULL, &pred, NULL) ||
        ec_predictor_fit(pred, t, NULL) || ec_history_create(s->L, s->E, s->k, 2, &h) ||
        ec_cache_create(s->L, s->E, global ? 0 : capacity, global ? capacity : 0, &d.c) ||
        ec_queue_create(ec_cache_n_slots(d.c), &d.q))
        abort(); /* valid arguments: the harness is wrong */
    ec_policy_config cfg = {.kind = kind, .horizon = horizon, .transfer_ms = 2,
                            .compute_ms = 0.5, .host_ms = 1.5, .host_act_ms = 0.1};
    ec_future fut = {script_next_use, script_experts_at, (void *)s};
    const char *bad = NULL;
    ec_error err = {0};
    if (ec_policy_create(&cfg, d.c, d.q, pred, &fut, &d.p, &err) != EC_OK) {
        /* Only a horizon past n_layers is invalid here. */
        bad = horizon > s->L ? NULL : "valid configuration refused";
        goto done;
    }
    /* gated and hybrid: the what-if eviction window (0 off, 15 the whole script) */
    if ((kind == EC_POLICY_GATED || kind == EC_POLICY_HYBRID) &&
        ec_policy_set_whatif_evict(d.p, whatif == 15 ? EC_WHATIF_EVICT_ALL : whatif) != EC_OK) {
        bad = "what-if eviction refused with a future";
        goto done;
    }
    size_t calls = g_calls;
    int64_t uses = 0;
    for (int32_t step = 0; step < s->steps && !bad; step++) {
        int32_t layer = step % s->L;
        uint8_t a = s->action[step];
        ec_history_observe(h, layer, s->ex[step]);
        /* Bits 5-7: how long the link is busy (hybrid's choice of host or copy). */
        ec_policy_set_lanes(d.p, (double)(a >> 5), 0);
        ec_status st = ec_policy_observe(d.p, step, layer, s->ex[step], s->k, h);
        for (int tries = 0; st == EC_ERR_BUSY && tries < 3; tries++) {
            /* Free what the bytes held: readers first, then transfers. */
            if (tries == 0)
                release_all(&d);
            else if (tries == 1)
                complete_all(&d);
            else {
                while (ec_queue_len(d.q))
                    start_one(&d);
                complete_all(&d);
            }
            st = ec_policy_observe(d.p, step, layer, s->ex[step], s->k, h);
        }
        if (st != EC_OK) {
            bad = st == EC_ERR_BUSY ? "busy with no reader and no transfer pending"
                                    : "observe failed";
            break;
        }
        uses += s->k;
        for (int32_t i = 0; i < s->k && !bad; i++)
            if (ec_cache_find(d.c, layer, s->ex[step][i]) < 0 &&
                !ec_policy_on_host(d.p, layer, s->ex[step][i]))
                bad = "an expert just observed has no slot and does not run on the host";
        /* Bits 0-1: transfers to start; 2: complete them; 3: readers acquire
         * (4: and keep their pins past this step). */
        for (int i = 0; i < (a & 3); i++)
            start_one(&d);
        if (a & 4)
            complete_all(&d);
        if (a & 8) {
            for (int32_t i = 0; i < s->k && !bad; i++) {
                if (ec_policy_on_host(d.p, layer, s->ex[step][i]))
                    continue; /* hybrid runs it on the host: no slot to read */
                int32_t slot = ec_policy_acquire(d.p, step, layer, s->ex[step][i]);
                if (slot < 0)
                    bad = "acquire of an observed expert failed";
                else if (d.n_pins < MAX_PINS)
                    d.pins[d.n_pins++] = slot;
                else
                    ec_policy_release(d.p, slot);
            }
            if (!(a & 16))
                release_all(&d);
        }
        if (!bad)
            bad = check_cache(&d, uses);
    }
    if (!bad && g_calls != calls)
        bad = "the policy allocated after creation";
    release_all(&d);
    complete_all(&d);
done:
    ec_policy_destroy(d.p);
    ec_queue_destroy(d.q);
    ec_cache_destroy(d.c);
    ec_history_destroy(h);
    ec_predictor_destroy(pred);
    ec_trace_destroy(t);
    return bad;
}

const char *fuzz_policy(const uint8_t *data, size_t size)
{
    if (size < 6)
        return NULL;
    static script s; /* large: keep it off the stack */
    memset(&s, 0, sizeof s);
    ec_policy_kind kind = (ec_policy_kind)(data[0] % EC_POLICY_N_KINDS);
    s.L = 1 + data[1] % MAX_L;
    s.k = 1 + data[3] % 3;
    s.E = s.k + data[2] % (MAX_E - s.k + 1);
    int global = data[4] & 0x80;
    int32_t per_pool = global ? s.L * s.E : s.E;
    /* At least k: a pool smaller than one step's experts can never serve it. */
    int32_t capacity = s.k + (data[4] & 0x7f) % (per_pool - s.k + 1);
    int32_t horizon = data[5] % (s.L + 2); /* 0 = default; L + 1 is invalid */
    size_t pos = 6;
    while (s.steps < MAX_STEPS && pos + 1 + (size_t)s.k <= size) {
        s.action[s.steps] = data[pos++];
        for (int32_t i = 0; i < s.k; i++) {
            /* k distinct ids: take the next free one from the byte's choice. */
            int32_t e = data[pos++] % s.E;
            for (int32_t j = 0; j < i; j++)
                if (s.ex[s.steps][j] == e) {
                    e = (e + 1) % s.E;
                    j = -1;
                }
            s.ex[s.steps][i] = (int16_t)e;
        }
        s.steps++;
    }
    ec_allocator counting = {count_malloc, count_realloc, count_free, NULL};
    ec_set_allocator(&counting);
    int32_t whatif = data[1] >> 4; /* data[1] % MAX_L picks the layers */
    const char *bad = run_script(&s, kind, capacity, horizon, global, whatif);
    ec_set_allocator(NULL);
    return bad;
}
