/*
 * bench_ingest: how fast ec_trace_load reads a raw routing JSONL file,
 * against a plain read of the same file in the same run.
 *
 *   bench_ingest [--reps N] FILE...
 *
 * For each FILE: a plain read (fread in 1 MiB blocks, the bytes summed so
 * the read is not optimised away) and ec_trace_load (read, validate, build
 * the trace), alternating, N times each (default 3); the best of each is
 * reported in MB/s (10^6 bytes) with the ratio load / plain read, by wall
 * clock and by the process's CPU time (on a machine shared with other jobs
 * the wall clock also counts the time other processes held the CPU; the
 * CPU time does not). The file
 * is read once before timing, so both usually come from the page cache and
 * the ratio is the parser's cost, not the disk's. The peak resident size
 * (getrusage) is printed for the whole process, with its ratio to the file
 * size. Prints one JSON object. The machine may be shared: rerun to see the
 * spread.
 */
#include "expertcast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reads the whole file in 1 MiB blocks; returns a checksum, -1 on error. */
static long long plain_read(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned long long sum = 0;
    size_t got;
    while ((got = fread(buf, 1, cap, f)) > 0)
        for (size_t i = 0; i < got; i += 4096)
            sum += (unsigned char)buf[i];
    int bad = ferror(f);
    fclose(f);
    return bad ? -1 : (long long)(sum & 0x7fffffffffffffffULL);
}

int main(int argc, char **argv)
{
    int reps = 3, first = 1;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--reps") == 0) {
        reps = atoi(argv[a + 1]);
        a += 2;
    }
    if (a >= argc || reps < 1) {
        fprintf(stderr, "usage: bench_ingest [--reps N] FILE...\n");
        return 2;
    }
    size_t cap = (size_t)1 << 20;
    char *buf = malloc(cap);
    if (!buf)
        return 1;
    printf("{\"bench\": \"ingest\", \"timer\": \"CLOCK_MONOTONIC and CLOCK_PROCESS_CPUTIME_ID, best of %d\", \"files\": [",
           reps);
    for (; a < argc; a++) {
        const char *path = argv[a];
        struct stat sb;
        if (stat(path, &sb) != 0 || plain_read(path, buf, cap) < 0) {
            fprintf(stderr, "bench_ingest: %s: cannot read\n", path);
            return 1;
        }
        double mb = (double)sb.st_size / 1e6, best_read = 1e300, best_load = 1e300;
        double cpu_read = 1e300, cpu_load = 1e300;
        size_t rows = 0, seqs = 0, records = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            if (plain_read(path, buf, cap) < 0)
                return 1;
            double t1 = clock_s(CLOCK_MONOTONIC), c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            ec_trace *t;
            ec_error err = {0};
            if (ec_trace_load(&path, 1, NULL, &t, &err)) {
                fprintf(stderr, "bench_ingest: %s\n", err.message);
                return 1;
            }
            double t2 = clock_s(CLOCK_MONOTONIC), c2 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            rows = t->n_rows;
            seqs = t->n_seqs;
            records = t->n_records;
            ec_trace_destroy(t);
            if (t1 - t0 < best_read)
                best_read = t1 - t0;
            if (t2 - t1 < best_load)
                best_load = t2 - t1;
            if (c1 - c0 < cpu_read)
                cpu_read = c1 - c0;
            if (c2 - c1 < cpu_load)
                cpu_load = c2 - c1;
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("%s\n  {\"file\": \"%s\", \"mb\": %.1f, \"records\": %zu, \"sequences\": %zu, "
               "\"rows\": %zu, \"read_mb_per_s\": %.1f, \"load_mb_per_s\": %.1f, "
               "\"load_over_read\": %.4f, \"cpu_read_mb_per_s\": %.1f, \"cpu_load_mb_per_s\": %.1f, "
               "\"cpu_load_over_read\": %.4f, \"peak_rss_mb\": %.1f, \"peak_rss_over_file\": %.3f}",
               first ? "" : ",", path, mb, records, seqs, rows, mb / best_read, mb / best_load,
               best_read / best_load, mb / cpu_read, mb / cpu_load, cpu_read / cpu_load, (double)ru.ru_maxrss / 1e3,
               (double)ru.ru_maxrss * 1e3 / (double)sb.st_size);
        first = 0;
    }
    printf("\n]}\n");
    free(buf);
    return 0;
}
