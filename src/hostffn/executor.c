/*
 * The host executor: a persistent pool running one expert at a time.
 *
 * A run is two phases over row chunks handed out from one atomic counter
 * (so a thread slowed down by other work on the machine simply takes fewer
 * chunks):
 *   1. chunks of rows r of W1 and W3: h[t][r] = silu(W1[r] · x_t) * (W3[r] · x_t);
 *   2. chunks of rows i of W2:         y[t][i] = W2[i] · h_t,
 * phase 2 chunks waiting until every phase 1 chunk is done. The calling
 * thread takes chunks too; the run returns when every chunk is done and no
 * worker is still inside it (a worker that wakes after that finds the job
 * closed and goes back to sleep).
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 64
#define CHUNK_MAX 64 /* rows per chunk at most (phase 1 keeps two [batch][chunk] buffers) */

struct ec_hostffn {
    const ec_rows_kernels *k;
    int32_t threads;
    pthread_t th[MAX_THREADS];
    int32_t started; /* workers running */

    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv, phase_cv;
    uint64_t gen;  /* job number */
    int stop;      /* workers exit */
    int open;      /* the current job accepts workers */
    int32_t inside;/* workers inside the current job */
    int phase1_done;

    /* the current job: an expert (fn set) or a streaming read (fn NULL) */
    ec_rows_fn fn;
    const uint8_t *w1, *w3, *w2;
    const float *x;
    float *y;
    int32_t nt, d, ff, chunk1, chunk2, n1, n2;
    atomic_int next, done1, done;
    const uint8_t *rd;   /* read job: buffer, bytes, chunk bytes, sum */
    size_t rd_bytes, rd_chunk;
    atomic_uint_fast64_t rd_sum;

    float *h; /* [nt][ff] */
    size_t h_cap;
    char errmsg[EC_ERROR_MAX];
};

static ec_status fail(ec_hostffn *h, ec_status st, const char *fmt, ...) EC_PRINTF(3, 4);
static ec_status fail(ec_hostffn *h, ec_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->errmsg, sizeof h->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

static void chunk_done(ec_hostffn *h)
{
    if (atomic_fetch_add(&h->done, 1) + 1 == h->n1 + h->n2) {
        pthread_mutex_lock(&h->mu);
        pthread_cond_broadcast(&h->done_cv);
        pthread_mutex_unlock(&h->mu);
    }
}

static void phase1(ec_hostffn *h, int32_t r0, int32_t r1)
{
    float a[EC_HOSTFFN_MAX_BATCH * CHUNK_MAX], c[EC_HOSTFFN_MAX_BATCH * CHUNK_MAX];
    h->fn(h->w1, h->d, r0, r1, h->x, (size_t)h->d, h->nt, a, CHUNK_MAX);
    h->fn(h->w3, h->d, r0, r1, h->x, (size_t)h->d, h->nt, c, CHUNK_MAX);
    for (int32_t t = 0; t < h->nt; t++) {
        float *ht = h->h + (size_t)t * (size_t)h->ff;
        for (int32_t r = r0; r < r1; r++) {
            float av = a[t * CHUNK_MAX + (r - r0)], cv = c[t * CHUNK_MAX + (r - r0)];
            ht[r] = av / (1.f + expf(-av)) * cv; /* silu(a) * c */
        }
    }
}

/* Sum of the 64-bit words of p[0, n), n a multiple of 8 unless it ends the buffer. */
static uint64_t sum_words(const uint8_t *p, size_t n)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, w[4];
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        memcpy(w, p + i, 32);
        s0 += w[0];
        s1 += w[1];
        s2 += w[2];
        s3 += w[3];
    }
    for (; i < n; i += 8) {
        uint64_t v = 0;
        memcpy(&v, p + i, EC_MIN(8, n - i)); /* little-endian hosts */
        s0 += v;
    }
    return s0 + s1 + s2 + s3;
}

static void work(ec_hostffn *h)
{
    for (;;) {
        int i = atomic_fetch_add(&h->next, 1);
        if (!h->fn) {
            if (i >= h->n1)
                return;
            size_t a = (size_t)i * h->rd_chunk, n = EC_MIN(h->rd_chunk, h->rd_bytes - a);
            atomic_fetch_add(&h->rd_sum, sum_words(h->rd + a, n));
        } else if (i < h->n1) {
            int32_t r0 = i * h->chunk1;
            phase1(h, r0, EC_MIN(h->ff, r0 + h->chunk1));
            if (atomic_fetch_add(&h->done1, 1) + 1 == h->n1) {
                pthread_mutex_lock(&h->mu);
                h->phase1_done = 1;
                pthread_cond_broadcast(&h->phase_cv);
                pthread_mutex_unlock(&h->mu);
            }
        } else if (i < h->n1 + h->n2) {
            if (atomic_load(&h->done1) < h->n1) {
                pthread_mutex_lock(&h->mu);
                while (!h->phase1_done)
                    pthread_cond_wait(&h->phase_cv, &h->mu);
                pthread_mutex_unlock(&h->mu);
            }
            int32_t r0 = (i - h->n1) * h->chunk2, r1 = EC_MIN(h->d, r0 + h->chunk2);
            h->fn(h->w2, h->ff, r0, r1, h->h, (size_t)h->ff, h->nt, h->y + r0, (size_t)h->d);
        } else {
            return;
        }
        chunk_done(h);
    }
}

static void *worker_main(void *arg)
{
    ec_hostffn *h = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->gen == seen && !h->stop)
            pthread_cond_wait(&h->start_cv, &h->mu);
        if (h->stop)
            break;
        seen = h->gen;
        if (!h->open)
            continue; /* woke after that job ended */
        h->inside++;
        pthread_mutex_unlock(&h->mu);
        work(h);
        pthread_mutex_lock(&h->mu);
        if (--h->inside == 0)
            pthread_cond_broadcast(&h->done_cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void stop_workers(ec_hostffn *h)
{
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_broadcast(&h->start_cv);
    pthread_mutex_unlock(&h->mu);
    for (int32_t i = 0; i < h->started; i++)
        pthread_join(h->th[i], NULL);
    h->started = 0;
}

ec_status ec_hostffn_create_isa(int32_t threads, const char *isa, ec_hostffn **out,
                                ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_hostffn_create: NULL out");
    *out = NULL;
    const ec_rows_kernels *k = ec_rows_avx2();
    if (isa && !strcmp(isa, "portable"))
        k = &ec_rows_portable;
    else if (isa && strcmp(isa, "avx2"))
        return ec_error_set(err, EC_ERR_NOT_FOUND,
                            "ec_hostffn_create: unknown kernels '%s' (avx2, portable)", isa);
    else if (isa && !k)
        return ec_error_set(err, EC_ERR_UNSUPPORTED,
                            "ec_hostffn_create: this CPU or build has no AVX2+FMA+F16C");
    if (!k)
        k = &ec_rows_portable;
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int32_t)EC_MIN(n, MAX_THREADS) : 1;
    }
    if (threads > MAX_THREADS)
        return ec_error_set(err, EC_ERR_RANGE, "ec_hostffn_create: %d threads (at most %d)",
                            (int)threads, MAX_THREADS);
    ec_hostffn *h = ec_calloc(1, sizeof *h);
    if (!h)
        return ec_error_set(err, EC_ERR_NOMEM, "ec_hostffn_create: out of memory");
    h->k = k;
    h->threads = threads;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->start_cv, NULL);
    pthread_cond_init(&h->done_cv, NULL);
    pthread_cond_init(&h->phase_cv, NULL);
    for (int32_t i = 0; i < threads - 1; i++) {
        int e = pthread_create(&h->th[i], NULL, worker_main, h);
        if (e) {
            ec_hostffn_destroy(h);
            return ec_error_set(err, EC_ERR_NOMEM,
                                "ec_hostffn_create: cannot start worker %d of %d: %s", (int)i + 1,
                                (int)threads - 1, strerror(e));
        }
        h->started++;
    }
    *out = h;
    return EC_OK;
}

ec_status ec_hostffn_create(int32_t threads, ec_hostffn **out, ec_error *err)
{
    return ec_hostffn_create_isa(threads, NULL, out, err);
}

void ec_hostffn_destroy(ec_hostffn *h)
{
    if (!h)
        return;
    stop_workers(h);
    pthread_cond_destroy(&h->start_cv);
    pthread_cond_destroy(&h->done_cv);
    pthread_cond_destroy(&h->phase_cv);
    pthread_mutex_destroy(&h->mu);
    ec_free(h->h);
    ec_free(h);
}

static void dispatch(ec_hostffn *h);

static int32_t chunk_rows(int32_t rows, int32_t threads)
{
    int32_t per = (rows + threads * 16 - 1) / (threads * 16); /* ~16 chunks per thread */
    return EC_MAX(1, EC_MIN(CHUNK_MAX, per));
}

ec_status ec_hostffn_run(ec_hostffn *h, ec_dtype dt, const void *w, const float *x, float *y,
                         int32_t batch, int32_t d_model, int32_t d_ff)
{
    if (!h)
        return EC_ERR_INVALID;
    if (!w || !x || !y)
        return fail(h, EC_ERR_INVALID, "ec_hostffn_run: NULL buffer");
    if (!ec_dtype_name(dt))
        return fail(h, EC_ERR_INVALID, "ec_hostffn_run: unknown dtype %d", (int)dt);
    if (batch < 1 || batch > EC_HOSTFFN_MAX_BATCH)
        return fail(h, EC_ERR_RANGE, "ec_hostffn_run: batch %d is outside 1..%d", (int)batch,
                    EC_HOSTFFN_MAX_BATCH);
    if (!ec_expert_bytes(dt, d_model, d_ff))
        return fail(h, EC_ERR_RANGE, "ec_hostffn_run: shape d_model %d x d_ff %d is invalid for %s",
                    (int)d_model, (int)d_ff, ec_dtype_name(dt));
    size_t need = (size_t)batch * (size_t)d_ff;
    if (need > h->h_cap) {
        float *p = ec_realloc(h->h, need * sizeof *p);
        if (!p)
            return fail(h, EC_ERR_NOMEM, "ec_hostffn_run: out of memory for %zu floats", need);
        h->h = p;
        h->h_cap = need;
    }
    size_t up = (size_t)d_ff * ec_row_bytes(dt, d_model);
    h->fn = dt == EC_DTYPE_Q4 ? h->k->q4 : h->k->f16;
    h->w1 = w;
    h->w3 = h->w1 + up;
    h->w2 = h->w3 + up;
    h->x = x;
    h->y = y;
    h->nt = batch;
    h->d = d_model;
    h->ff = d_ff;
    h->chunk1 = chunk_rows(d_ff, h->threads);
    h->chunk2 = chunk_rows(d_model, h->threads);
    h->n1 = (d_ff + h->chunk1 - 1) / h->chunk1;
    h->n2 = (d_model + h->chunk2 - 1) / h->chunk2;
    dispatch(h);
    h->errmsg[0] = '\0';
    return EC_OK;
}

/* Runs the job set up in h on every thread and returns when it is done. */
static void dispatch(ec_hostffn *h)
{
    atomic_store(&h->next, 0);
    atomic_store(&h->done1, 0);
    atomic_store(&h->done, 0);
    h->phase1_done = 0;
    if (h->started > 0) {
        pthread_mutex_lock(&h->mu);
        h->gen++;
        h->open = 1;
        pthread_cond_broadcast(&h->start_cv);
        pthread_mutex_unlock(&h->mu);
    }
    work(h);
    if (h->started > 0) {
        pthread_mutex_lock(&h->mu);
        while (atomic_load(&h->done) < h->n1 + h->n2 || h->inside > 0)
            pthread_cond_wait(&h->done_cv, &h->mu);
        h->open = 0;
        pthread_mutex_unlock(&h->mu);
    }
}

ec_status ec_hostffn_read(ec_hostffn *h, const void *p, size_t bytes, uint64_t *sum)
{
    if (!h)
        return EC_ERR_INVALID;
    if ((!p && bytes) || !sum)
        return fail(h, EC_ERR_INVALID, "ec_hostffn_read: NULL buffer");
    size_t chunk = (size_t)1 << 20; /* 1 MiB, a multiple of 8 */
    if (bytes / chunk >= (size_t)INT32_MAX / 2)
        return fail(h, EC_ERR_RANGE, "ec_hostffn_read: %zu bytes is too large", bytes);
    h->fn = NULL;
    h->rd = p;
    h->rd_bytes = bytes;
    h->rd_chunk = chunk;
    h->n1 = (int32_t)((bytes + chunk - 1) / chunk);
    h->n2 = 0;
    atomic_store(&h->rd_sum, 0);
    dispatch(h);
    *sum = atomic_load(&h->rd_sum);
    h->errmsg[0] = '\0';
    return EC_OK;
}

int32_t ec_hostffn_threads(const ec_hostffn *h) { return h ? h->threads : 0; }
const char *ec_hostffn_isa(const ec_hostffn *h) { return h ? h->k->isa : ""; }
const char *ec_hostffn_errmsg(const ec_hostffn *h) { return h ? h->errmsg : ""; }
