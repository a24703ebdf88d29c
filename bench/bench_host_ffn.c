/*
 * bench_host_ffn: how close the host expert kernel comes to the host's
 * read bandwidth. Prints JSON on stdout.
 *
 * In one run, per repetition: a plain streaming read (ec_hostffn_read, the
 * executor's own threads) of a buffer larger than the caches, then for each
 * dtype and batch, experts run back to back until at least as many weight
 * bytes as that buffer have been streamed. The experts of a dtype rotate
 * through a pool of at least --pool-mb so that no expert is served from
 * cache. Each figure is the median over the repetitions; read_bw_ratio is
 * the median of the per-repetition ratios weight GB/s / read GB/s (the two
 * measured back to back, so that load from other processes on the machine
 * affects both). cpu_share (CPU time / (wall time x threads)) says how much
 * of the cores the run got on a shared machine, and gb_per_cpu_s the
 * bytes per CPU-second, which other load does not change.
 *
 *   bench_host_ffn [--threads N] [--d-model D] [--d-ff F] [--reps R]
 *                  [--read-mb M] [--pool-mb P] [--batches 1,2,4,8] [--isa avx2|portable]
 */
#include "expertcast.h"
#include "../src/hostffn/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPS 101
#define MAX_BATCHES 8

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU time of the whole process (every thread). */
static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double vmin(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double vmax(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* The first line of /proc/cpuinfo starting with key, value only (Linux). */
static void cpuinfo(const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, strlen(key)))
            continue;
        char *v = strchr(line, ':');
        if (!v)
            continue;
        v += 1 + (v[1] == ' ');
        v[strcspn(v, "\n")] = '\0';
        snprintf(out, cap, "%s", v);
        break;
    }
    fclose(f);
}

static void loadavg(char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    double a = 0, b = 0, c = 0;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(out, cap, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

/* L2 and L3 sizes in bytes where the C library reports them, else -1. */
static void cache_sizes(long *l2, long *l3)
{
    *l2 = *l3 = -1;
#if defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
    *l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    *l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_host_ffn [--threads N] [--d-model D] [--d-ff F] [--reps R] "
                    "[--read-mb M] [--pool-mb P] [--batches LIST] [--isa avx2|portable]\n");
}

/* cpu_share: CPU time used / (wall time x threads): below 1 when other
 * processes took the cores (the machine is shared). */
typedef struct series {
    double gbps[MAX_REPS], ratio[MAX_REPS], ms[MAX_REPS], cpu_share[MAX_REPS], gb_cpu[MAX_REPS];
    size_t runs;
} series;

int main(int argc, char **argv)
{
    int threads = 0, d_model = 2048, d_ff = 5632, reps = 9, read_mb = 256, pool_mb = 96;
    int batches[MAX_BATCHES] = {1, 2, 4, 8}, n_batches = 4;
    const char *isa = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *iv = NULL;
        if (!strcmp(a, "--threads")) iv = &threads;
        else if (!strcmp(a, "--d-model")) iv = &d_model;
        else if (!strcmp(a, "--d-ff")) iv = &d_ff;
        else if (!strcmp(a, "--reps")) iv = &reps;
        else if (!strcmp(a, "--read-mb")) iv = &read_mb;
        else if (!strcmp(a, "--pool-mb")) iv = &pool_mb;
        else if (!strcmp(a, "--isa") && v) { isa = v; i++; continue; }
        else if (!strcmp(a, "--batches") && v) {
            n_batches = 0;
            for (char *s = argv[++i], *end; *s && n_batches < MAX_BATCHES; s = end + (*end == ',')) {
                long b = strtol(s, &end, 10);
                if (end == s || b < 1 || b > EC_HOSTFFN_MAX_BATCH) {
                    fprintf(stderr, "bench_host_ffn: --batches: '%s' is not a list of 1..8\n", v);
                    return 2;
                }
                batches[n_batches++] = (int)b;
            }
            continue;
        } else {
            usage();
            return 2;
        }
        char *end;
        long x = v ? strtol(v, &end, 10) : 0;
        if (!v || *end || x < 0 || x > 1 << 20) {
            fprintf(stderr, "bench_host_ffn: %s needs a number\n", a);
            return 2;
        }
        *iv = (int)x;
        i++;
    }
    if (reps < 1 || reps > MAX_REPS || read_mb < 1 || pool_mb < 1 || n_batches < 1) {
        usage();
        return 2;
    }

    ec_error err = {0};
    ec_hostffn *h;
    if (ec_hostffn_create_isa(threads, isa, &h, &err)) {
        fprintf(stderr, "bench_host_ffn: %s\n", err.message);
        return 1;
    }
    size_t read_bytes = (size_t)read_mb << 20;
    uint8_t *rbuf = malloc(read_bytes);
    float *x = malloc(sizeof(float) * EC_HOSTFFN_MAX_BATCH * (size_t)d_model);
    float *y = malloc(sizeof(float) * EC_HOSTFFN_MAX_BATCH * (size_t)d_model);
    if (!rbuf || !x || !y) {
        fprintf(stderr, "bench_host_ffn: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < read_bytes; i++)
        rbuf[i] = (uint8_t)(i * 2654435761u >> 13);
    for (size_t i = 0; i < EC_HOSTFFN_MAX_BATCH * (size_t)d_model; i++)
        x[i] = (float)((int)(i * 2654435761u % 2001) - 1000) / 1000.f;

    /* Pools of experts per dtype: random fp16 weights, and those quantized to q4. */
    ec_dtype dts[2] = {EC_DTYPE_F16, EC_DTYPE_Q4};
    size_t bytes[2], n_pool[2];
    uint8_t **pool[2];
    for (int k = 0; k < 2; k++) {
        bytes[k] = ec_expert_bytes(dts[k], d_model, d_ff);
        if (!bytes[k]) {
            fprintf(stderr, "bench_host_ffn: d_model %d x d_ff %d is invalid for %s\n", d_model,
                    d_ff, ec_dtype_name(dts[k]));
            return 2;
        }
        n_pool[k] = (((size_t)pool_mb << 20) + bytes[k] - 1) / bytes[k];
        pool[k] = calloc(n_pool[k], sizeof *pool[k]);
        if (!pool[k]) {
            fprintf(stderr, "bench_host_ffn: out of memory\n");
            return 1;
        }
    }
    size_t n_w = 3 * (size_t)d_model * (size_t)d_ff;
    uint16_t *w16 = malloc(n_w * 2);
    if (!w16) {
        fprintf(stderr, "bench_host_ffn: out of memory\n");
        return 1;
    }
    /* one expert of random weights (|w| < 2^-5, random signs) and its q4
     * quantization, copied into every slot of the pools: distinct addresses,
     * so no slot is served from cache by another */
    uint64_t seed = 1;
    for (size_t i = 0; i < n_w; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        w16[i] = (uint16_t)((seed >> 33) & 0x83ffu) | 0x2400u;
    }
    uint8_t *q4 = malloc(bytes[1]);
    if (!q4 || ec_expert_quantize_q4_f16(w16, d_model, d_ff, q4, &err)) {
        fprintf(stderr, "bench_host_ffn: %s\n", q4 ? err.message : "out of memory");
        return 1;
    }
    for (int k = 0; k < 2; k++) {
        for (size_t e = 0; e < n_pool[k]; e++) {
            if (!(pool[k][e] = malloc(bytes[k]))) {
                fprintf(stderr, "bench_host_ffn: out of memory for the expert pool\n");
                return 1;
            }
            memcpy(pool[k][e], k ? (const void *)q4 : (const void *)w16, bytes[k]);
        }
    }
    free(q4);
    free(w16);

    char load_before[64], load_after[64];
    loadavg(load_before, sizeof load_before);
    static double read_gbps[MAX_REPS], read_share[MAX_REPS], read_gb_cpu[MAX_REPS];
    double nthr = (double)ec_hostffn_threads(h);
    static series res[2][MAX_BATCHES];
    uint64_t sink = 0;
    /* warm-up: one read and one pass over each pool */
    ec_hostffn_read(h, rbuf, read_bytes, &sink);
    for (int k = 0; k < 2; k++)
        for (size_t e = 0; e < n_pool[k]; e++)
            ec_hostffn_run(h, dts[k], pool[k][e], x, y, 1, d_model, d_ff);
    size_t next[2] = {0, 0};
    for (int r = 0; r < reps; r++) {
        uint64_t s;
        double t0 = now_s(), c0 = cpu_s();
        if (ec_hostffn_read(h, rbuf, read_bytes, &s)) {
            fprintf(stderr, "bench_host_ffn: %s\n", ec_hostffn_errmsg(h));
            return 1;
        }
        double tr = now_s() - t0;
        read_gbps[r] = (double)read_bytes / tr / 1e9;
        read_share[r] = (cpu_s() - c0) / (tr * nthr);
        read_gb_cpu[r] = (double)read_bytes / (cpu_s() - c0) / 1e9;
        sink += s;
        for (int k = 0; k < 2; k++) {
            for (int bi = 0; bi < n_batches; bi++) {
                size_t runs = (read_bytes + bytes[k] - 1) / bytes[k];
                t0 = now_s();
                c0 = cpu_s();
                for (size_t i = 0; i < runs; i++) {
                    if (ec_hostffn_run(h, dts[k], pool[k][next[k]], x, y, batches[bi], d_model,
                                       d_ff)) {
                        fprintf(stderr, "bench_host_ffn: %s\n", ec_hostffn_errmsg(h));
                        return 1;
                    }
                    next[k] = (next[k] + 1) % n_pool[k];
                }
                double t = now_s() - t0;
                series *sr = &res[k][bi];
                sr->runs = runs;
                sr->gbps[r] = (double)(runs * bytes[k]) / t / 1e9;
                sr->ratio[r] = sr->gbps[r] / read_gbps[r];
                sr->ms[r] = t * 1e3 / (double)runs;
                sr->cpu_share[r] = (cpu_s() - c0) / (t * nthr);
                sr->gb_cpu[r] = (double)(runs * bytes[k]) / (cpu_s() - c0) / 1e9;
                sink += (uint64_t)(y[0] != y[0]);
            }
        }
    }
    loadavg(load_after, sizeof load_after);

    char model[256], flags_note[64];
    cpuinfo("model name", model, sizeof model);
    snprintf(flags_note, sizeof flags_note, "%s", ec_hostffn_isa(h));
    long l2, l3;
    cache_sizes(&l2, &l3);
    printf("{\n  \"bench\": \"host_ffn\",\n  \"command\": \"");
    for (int i = 0; i < argc; i++) /* arguments are plain words and numbers */
        printf("%s%s", i ? " " : "", argv[i]);
    printf("\",\n");
    printf("  \"machine\": {\"cpu\": \"%s\", \"online_cpus\": %ld, \"l2_bytes\": %ld, "
           "\"l3_bytes\": %ld, \"loadavg_before\": \"%s\", \"loadavg_after\": \"%s\"},\n",
           model, sysconf(_SC_NPROCESSORS_ONLN), l2, l3, load_before, load_after);
    printf("  \"threads\": %d, \"isa\": \"%s\", \"reps\": %d,\n", (int)ec_hostffn_threads(h),
           flags_note, reps);
    printf("  \"expert\": {\"d_model\": %d, \"d_ff\": %d},\n", d_model, d_ff);
    printf("  \"read\": {\"bytes\": %zu, \"gbps_median\": %.3f, \"gbps_min\": %.3f, "
           "\"gbps_max\": %.3f, \"cpu_share_median\": %.2f, \"gb_per_cpu_s_median\": %.3f},\n",
           read_bytes, median(read_gbps, reps), vmin(read_gbps, reps), vmax(read_gbps, reps),
           median(read_share, reps), median(read_gb_cpu, reps));
    printf("  \"dtypes\": [\n");
    for (int k = 0; k < 2; k++) {
        printf("    {\"dtype\": \"%s\", \"expert_bytes\": %zu, \"experts_in_pool\": %zu, "
               "\"batches\": [\n",
               ec_dtype_name(dts[k]), bytes[k], n_pool[k]);
        for (int bi = 0; bi < n_batches; bi++) {
            series *sr = &res[k][bi];
            printf("      {\"batch\": %d, \"runs_per_rep\": %zu, \"ms_per_expert_median\": %.3f, "
                   "\"weight_gbps_median\": %.3f, \"weight_gbps_min\": %.3f, "
                   "\"weight_gbps_max\": %.3f, \"read_bw_ratio\": %.3f, \"read_bw_ratio_min\": "
                   "%.3f, \"read_bw_ratio_max\": %.3f, \"cpu_share_median\": %.2f, \"gb_per_cpu_s_median\": %.3f}%s\n",
                   batches[bi], sr->runs, median(sr->ms, reps), median(sr->gbps, reps),
                   vmin(sr->gbps, reps), vmax(sr->gbps, reps), median(sr->ratio, reps),
                   vmin(sr->ratio, reps), vmax(sr->ratio, reps), median(sr->cpu_share, reps),
                   median(sr->gb_cpu, reps), bi + 1 < n_batches ? "," : "");
        }
        printf("    ]}%s\n", k ? "" : ",");
    }
    printf("  ],\n");
    /* the headline: batch 1 (one decode token), or the first batch measured */
    printf("  \"read_bw_ratio\": {\"batch\": %d, \"f16\": %.3f, \"q4\": %.3f},\n", batches[0],
           median(res[0][0].ratio, reps), median(res[1][0].ratio, reps));
    printf("  \"checksum\": %llu\n}\n", (unsigned long long)(sink & 0xffff));

    for (int k = 0; k < 2; k++) {
        for (size_t e = 0; e < n_pool[k]; e++)
            free(pool[k][e]);
        free(pool[k]);
    }
    free(rbuf);
    free(x);
    free(y);
    ec_hostffn_destroy(h);
    return 0;
}
