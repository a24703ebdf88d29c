/*
 * Soak of the loader on the CPU backend: replays a trace for a bounded time
 * the way a long-running server would use the library, and checks that
 * memory stays constant.
 *
 * Every round
 *   - replays the trace through a fresh loader for every policy kind
 *     (ec_replay_run, with every acquired slot checksummed against the
 *     store), so loaders are created and destroyed again and again;
 *   - drives one long-lived loader (created once) through every sequence:
 *     begin_sequence, observe, acquire, release, as a runtime does.
 * After a warm-up round the library's live heap (blocks and bytes, counted
 * by an ec_allocator hook) and the process RSS are taken as the baseline;
 * every later round must end with exactly the same number of live blocks
 * (bytes may rise to a high-water mark: queues that double and never
 * shrink), and at the end RSS may exceed the baseline by at most
 * max(2 MiB, 2 %) (allocator fragmentation; skipped under AddressSanitizer,
 * whose quarantine grows RSS by design). After everything is destroyed, no
 * block may be live.
 *
 * usage: soak_loader [--seconds S] [--trace FILE.jsonl] [--json FILE]
 * Exit status 0 when memory stayed constant and every checksum matched.
 */
#include "expertcast.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#ifndef SOAK_ASAN
#define SOAK_ASAN 0
#endif

/* ---- the counting allocator (the CPU backend may allocate from its threads) ---- */

typedef struct header {
    size_t size;
    size_t pad; /* keeps the payload 16-byte aligned */
} header;

static atomic_long g_blocks;
static atomic_llong g_bytes;

static void *count_malloc(size_t n, void *ctx)
{
    (void)ctx;
    header *h = malloc(sizeof *h + n);
    if (!h)
        return NULL;
    h->size = n;
    atomic_fetch_add(&g_blocks, 1);
    atomic_fetch_add(&g_bytes, (long long)n);
    return h + 1;
}

static void count_free(void *p, void *ctx)
{
    (void)ctx;
    if (!p)
        return;
    header *h = (header *)p - 1;
    atomic_fetch_sub(&g_blocks, 1);
    atomic_fetch_sub(&g_bytes, (long long)h->size);
    free(h);
}

static void *count_realloc(void *p, size_t n, void *ctx)
{
    if (!p)
        return count_malloc(n, ctx);
    header *h = (header *)p - 1;
    size_t old = h->size;
    header *g = realloc(h, sizeof *g + n);
    if (!g)
        return NULL;
    g->size = n;
    atomic_fetch_add(&g_bytes, (long long)n - (long long)old);
    return g + 1;
}

/* ---- helpers ----------------------------------------------------------------- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "soak_loader: %s%s%s\n", what, detail && detail[0] ? ": " : "",
            detail ? detail : "");
    return 1;
}

/* One pass of the long-lived loader over every complete row of t. */
static int drive(ec_loader *l, ec_stream *compute, const ec_trace *t, long *tokens)
{
    for (size_t q = 0; q < t->n_seqs; q++) {
        const ec_seq *sq = &t->seqs[q];
        if (ec_loader_begin_sequence(l, sq->dataset, sq->problem_id))
            return fail("begin_sequence", ec_loader_errmsg(l));
        for (size_t r = sq->row0; r < sq->row0 + sq->n_rows; r++) {
            if (!t->complete[r])
                continue;
            for (int32_t layer = 0; layer < t->n_layers; layer++) {
                const int16_t *e = ec_trace_experts(t, r, layer);
                if (ec_loader_observe(l, layer, e))
                    return fail("observe", ec_loader_errmsg(l));
                for (int32_t i = 0; i < t->k; i++) {
                    void *w = NULL;
                    if (ec_loader_acquire(l, layer, e[i], compute, &w) || !w)
                        return fail("acquire", ec_loader_errmsg(l));
                    if (ec_stream_spin(compute, 0) ||
                        ec_loader_release(l, layer, e[i], compute))
                        return fail("release", ec_loader_errmsg(l));
                }
            }
            (*tokens)++;
        }
    }
    if (ec_loader_sync(l))
        return fail("sync", ec_loader_errmsg(l));
    return ec_stream_sync(compute) ? fail("sync", "compute stream") : 0;
}

/* ec_replay_run for every policy kind; counts tokens and checks. */
static int replays(ec_backend *b, ec_store *s, const ec_trace *t, const ec_predictor *pred,
                   long *tokens, long *verified)
{
    static const ec_policy_kind kinds[] = {EC_POLICY_ON_DEMAND, EC_POLICY_LRU, EC_POLICY_LFU,
                                           EC_POLICY_PREDICT, EC_POLICY_GATED, EC_POLICY_ORACLE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        ec_replay_opts o;
        memset(&o, 0, sizeof o);
        ec_loader_config_default(&o.loader);
        o.loader.cache_per_layer = 4;
        o.loader.policy.kind = kinds[i];
        o.loader.policy.horizon = 2;
        o.loader.policy.transfer_ms = 0.05;
        o.loader.policy.compute_ms = 0.02;
        o.verify = 1;
        ec_replay_result res;
        ec_error err = {0};
        if (ec_replay_run(b, s, t, pred, &o, &res, &err))
            return fail("replay", err.message);
        if (res.verify_failures)
            return fail("replay", "an acquired slot did not hold its expert's weights");
        *tokens += (long)res.tokens;
        *verified += res.verified;
    }
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 60;
    const char *trace_path = NULL, *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
            trace_path = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else {
            fprintf(stderr, "usage: soak_loader [--seconds S] [--trace FILE.jsonl] "
                            "[--json FILE]\n");
            return 2;
        }
    }
    ec_allocator counting = {count_malloc, count_realloc, count_free, NULL};
    ec_set_allocator(&counting);

    ec_trace *t = NULL;
    ec_error err = {0};
    if (trace_path) {
        if (ec_trace_load(&trace_path, 1, NULL, &t, &err))
            return fail("trace", err.message);
    } else {
        ec_synth_opts so;
        ec_synth_opts_default(&so);
        so.n_layers = 8;
        so.n_experts = 16;
        so.n_seqs = 4;
        so.n_tokens = 24;
        if (ec_synth_generate(&so, &t, &err))
            return fail("synth", err.message);
    }
    ec_backend *b = NULL;
    ec_store *s = NULL;
    ec_stream *compute = NULL;
    ec_predictor *pred = NULL;
    ec_loader *l = NULL;
    if (ec_backend_create("cpu", NULL, &b, &err) ||
        ec_store_create(b, t->n_layers, t->n_experts, 4096, &s, &err) ||
        ec_store_fill_synthetic(s, 7, 1) || ec_stream_create(b, &compute) ||
        ec_predictor_create("prior", NULL, &pred, &err) || ec_predictor_fit(pred, t, NULL))
        return fail("setup", err.message);
    ec_loader_config c;
    ec_loader_config_default(&c);
    c.k = t->k;
    c.cache_per_layer = 3;
    c.policy.kind = EC_POLICY_PREDICT;
    c.policy.horizon = 2;
    if (ec_loader_create(b, s, pred, &c, &l, &err))
        return fail("loader", err.message);

    long tokens = 0, verified = 0, rounds = 0;
    double t0 = now_s();
    /* warm-up round: first-use allocations (thread stacks, stdio buffers) */
    if (replays(b, s, t, pred, &tokens, &verified) || drive(l, compute, t, &tokens))
        return 1;
    rounds++;
    long blocks0 = atomic_load(&g_blocks);
    long long bytes0 = atomic_load(&g_bytes);
    long long bytes_max = bytes0;
    long rss0 = rss_kb();
    int status = 0;
    while (now_s() - t0 < seconds) {
        if (replays(b, s, t, pred, &tokens, &verified) || drive(l, compute, t, &tokens)) {
            status = 1;
            break;
        }
        rounds++;
        /* Blocks must match exactly: a leak adds blocks. Bytes may rise to a
         * high-water mark (the CPU streams' task rings double when a backlog
         * outgrows them, and never shrink), which the RSS bound covers. */
        long long bytes = atomic_load(&g_bytes);
        bytes_max = bytes > bytes_max ? bytes : bytes_max;
        if (atomic_load(&g_blocks) != blocks0) {
            char d[160];
            snprintf(d, sizeof d, "round %ld ends with %ld live blocks (%lld bytes), baseline %ld (%lld)",
                     rounds, atomic_load(&g_blocks), bytes, blocks0, bytes0);
            status = fail("library heap grew", d);
            break;
        }
    }
    double elapsed = now_s() - t0;
    long rss1 = rss_kb();
    long allowed = rss0 / 50 > 2048 ? rss0 / 50 : 2048;
    int rss_ok = SOAK_ASAN || rss0 < 0 || rss1 - rss0 <= allowed;
    if (!rss_ok) {
        char d[160];
        snprintf(d, sizeof d, "%ld kB after the warm-up, %ld kB at the end (allowed +%ld kB)",
                 rss0, rss1, allowed);
        status = fail("RSS grew", d);
    }
    if (ec_loader_finish(l))
        status = fail("finish", ec_loader_errmsg(l));
    ec_loader_stats st;
    ec_loader_stats_get(l, &st);
    ec_loader_destroy(l);
    ec_predictor_destroy(pred);
    ec_stream_destroy(compute);
    ec_store_destroy(s);
    ec_backend_destroy(b);
    ec_trace_destroy(t);
    long left = atomic_load(&g_blocks);
    if (left != 0) {
        char d[64];
        snprintf(d, sizeof d, "%ld blocks", left);
        status = fail("live after everything was destroyed", d);
    }
    ec_set_allocator(NULL);

    FILE *out = json ? fopen(json, "w") : stdout;
    if (!out)
        return fail("cannot write", json);
    fprintf(out,
            "{\"what\": \"loader soak, cpu backend\", \"seconds\": %.1f, \"rounds\": %ld, "
            "\"tokens_replayed\": %ld, \"acquisitions_verified\": %ld, "
            "\"long_lived_loader_observes\": %lld, \"live_blocks_after_warmup\": %ld, "
            "\"live_bytes_after_warmup\": %lld, \"live_bytes_max_at_round_end\": %lld, "
            "\"rss_kb_after_warmup\": %ld, \"rss_kb_end\": %ld, "
            "\"rss_checked\": %s, \"live_blocks_at_exit\": %ld, \"ok\": %s}\n",
            elapsed, rounds, tokens, verified, (long long)st.observes, blocks0, bytes0, bytes_max,
            rss0, rss1,
            SOAK_ASAN ? "false" : "true", left, status ? "false" : "true");
    if (json)
        fclose(out);
    return status;
}
