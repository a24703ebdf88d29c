/*
 * Backends: the same cases on cpu and on cuda (skipped with a message when
 * no device exists or the build has no CUDA). Nothing touches CUDA outside
 * a test body.
 */
#include "testutil.h"
#include "expertcast/backend.h"
#include "../src/core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

/* Defines Test(backend_cpu, NAME) and Test(backend_cuda, NAME) running
 * NAME_case(backend name). */
#define BACKEND_TEST(name)                                                                         \
    static void name##_case(const char *backend);                                                  \
    Test(backend_cpu, name) { name##_case("cpu"); }                                                \
    Test(backend_cuda, name) { name##_case("cuda"); }                                              \
    static void name##_case(const char *backend)

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


static void fill_random(void *p, size_t n, uint64_t seed)
{
    ec_rng r;
    ec_rng_seed(&r, seed);
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)ec_rng_next(&r);
}

/* ---- host helpers ---------------------------------------------------------------- */

/* An independent statement of the checksum definition, byte by byte. */
static uint64_t fmix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb93fe53ec34full;
    k ^= k >> 33;
    return k;
}

static uint64_t checksum_by_bytes(const unsigned char *p, size_t n)
{
    uint64_t sum = 0;
    for (size_t i = 0; i * 8 < n; i++) {
        uint64_t w = 0;
        for (size_t k = 0; k < 8 && i * 8 + k < n; k++)
            w |= (uint64_t)p[i * 8 + k] << (8 * k);
        sum += fmix(w ^ (i * 0x9e3779b97f4a7c15ull));
    }
    return fmix(sum ^ n);
}

Test(checksum, matches_its_definition_for_every_tail_length)
{
    unsigned char buf[200];
    fill_random(buf, sizeof buf, 7);
    for (size_t n = 0; n <= sizeof buf; n++)
        cr_assert_eq(ec_checksum64(buf, n), checksum_by_bytes(buf, n), "n=%zu", n);
}

Test(checksum, detects_a_flipped_bit_swapped_words_and_trailing_zeros)
{
    unsigned char a[64], b[64];
    fill_random(a, sizeof a, 3);
    uint64_t h = ec_checksum64(a, sizeof a);
    for (size_t bit = 0; bit < sizeof a * 8; bit++) {
        memcpy(b, a, sizeof a);
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        cr_assert_neq(ec_checksum64(b, sizeof b), h, "bit %zu", bit);
    }
    memcpy(b, a, sizeof a);
    memcpy(b, a + 8, 8);
    memcpy(b + 8, a, 8);
    cr_assert_neq(ec_checksum64(b, sizeof b), h);
    unsigned char z[16] = {0};
    cr_assert_neq(ec_checksum64(z, 15), ec_checksum64(z, 16));
}

Test(half, known_values_and_exact_round_trip)
{
    cr_assert_eq(ec_half_from_float(1.0f), 0x3c00);
    cr_assert_eq(ec_half_from_float(-2.0f), 0xc000);
    cr_assert_eq(ec_half_from_float(65504.0f), 0x7bff);   /* largest finite */
    cr_assert_eq(ec_half_from_float(65520.0f), 0x7c00);   /* halfway rounds to even: inf */
    cr_assert_eq(ec_half_from_float(0x1p-24f), 0x0001);   /* smallest subnormal */
    cr_assert_eq(ec_half_from_float(0x1p-26f), 0x0000);   /* below half of it */
    cr_assert_eq(ec_half_from_float(1.0f + 0x1p-11f), 0x3c00); /* tie to even */
    cr_assert_eq(ec_half_from_float(1.0f + 0x3p-11f), 0x3c02); /* tie to even, up */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN payloads */
        cr_assert_eq(ec_half_from_float(ec_half_to_float((uint16_t)h)), h, "h=%#x", h);
    }
}

/* ---- the same cases on every backend ----------------------------------------------- */

Test(backend, unknown_name_is_not_found)
{
    ec_backend *b = (ec_backend *)1;
    ec_error err = {0};
    cr_assert_eq(ec_backend_create("tpu", NULL, &b, &err), EC_ERR_NOT_FOUND);
    cr_assert_null(b);
    cr_assert(strstr(err.message, "tpu"));
}

Test(backend, cuda_without_device_or_build_says_why)
{
    ec_backend *b = NULL;
    ec_error err = {0};
    ec_status s = ec_backend_create("cuda", NULL, &b, &err);
    if (s == EC_OK) {
        cr_assert_str_eq(ec_backend_name(b), "cuda");
        cr_assert(ec_backend_device_name(b)[0]);
        ec_backend_destroy(b);
        return;
    }
    cr_assert(s == EC_ERR_NO_DEVICE || s == EC_ERR_UNSUPPORTED, "status %d", s);
    cr_assert(strstr(err.message, "HINT"), "%s", err.message);
    /* auto falls back to the cpu */
    cr_assert_eq(ec_backend_create("auto", NULL, &b, &err), EC_OK);
    cr_assert_str_eq(ec_backend_name(b), "cpu");
    ec_backend_destroy(b);
}

BACKEND_TEST(copies_round_trip_in_stream_order)
{
    ec_backend *b = backend_or_skip(backend);
    size_t n = 100003;
    unsigned char *h1, *h2, *back;
    void *dev;
    cr_assert_eq(ec_backend_host_alloc(b, n, (void **)&h1), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, n, (void **)&h2), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, n, (void **)&back), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, n, &dev), EC_OK);
    cr_assert_eq((uintptr_t)dev % 256, 0);
    fill_random(h1, n, 1);
    fill_random(h2, n, 2);
    ec_stream *s;
    cr_assert_eq(ec_stream_create(b, &s), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dev, h1, n), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dev, h2, n), EC_OK); /* the later copy wins */
    cr_assert_eq(ec_stream_copy_d2h(s, back, dev, n), EC_OK);
    cr_assert_eq(ec_stream_sync(s), EC_OK);
    cr_assert_eq(memcmp(back, h2, n), 0);
    ec_stream_destroy(s);
    ec_backend_dev_free(b, dev);
    ec_backend_host_free(b, h1);
    ec_backend_host_free(b, h2);
    ec_backend_host_free(b, back);
    ec_backend_destroy(b);
}

BACKEND_TEST(device_checksum_equals_host_checksum)
{
    ec_backend *b = backend_or_skip(backend);
    size_t sizes[] = {1, 7, 8, 9, 1000, 65537, 1 << 20};
    size_t max = 1 << 20;
    unsigned char *h;
    void *dev;
    uint64_t *dout, *hout;
    cr_assert_eq(ec_backend_host_alloc(b, max, (void **)&h), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, sizeof *hout * 8, (void **)&hout), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, max, &dev), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, sizeof *dout * 8, (void **)&dout), EC_OK);
    fill_random(h, max, 11);
    ec_stream *s;
    cr_assert_eq(ec_stream_create(b, &s), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dev, h, max), EC_OK);
    for (size_t i = 0; i < (sizeof sizes / sizeof sizes[0]); i++)
        cr_assert_eq(ec_stream_checksum(s, dev, sizes[i], dout + i), EC_OK, "%s",
                     ec_backend_errmsg(b));
    cr_assert_eq(ec_stream_copy_d2h(s, hout, dout, sizeof *dout * (sizeof sizes / sizeof sizes[0])), EC_OK);
    cr_assert_eq(ec_stream_sync(s), EC_OK);
    for (size_t i = 0; i < (sizeof sizes / sizeof sizes[0]); i++)
        cr_assert_eq(hout[i], ec_checksum64(h, sizes[i]), "size %zu", sizes[i]);
    ec_stream_destroy(s);
    ec_backend_dev_free(b, dev);
    ec_backend_dev_free(b, dout);
    ec_backend_host_free(b, h);
    ec_backend_host_free(b, hout);
    ec_backend_destroy(b);
}

BACKEND_TEST(a_stream_waits_on_an_event_without_blocking_the_host)
{
    ec_backend *b = backend_or_skip(backend);
    size_t n = 4096;
    unsigned char *h;
    void *dev;
    uint64_t *dout, *hout;
    cr_assert_eq(ec_backend_host_alloc(b, n, (void **)&h), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, 8, (void **)&hout), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, n, &dev), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, 8, (void **)&dout), EC_OK);
    fill_random(h, n, 5);
    ec_stream *copy, *compute;
    ec_event *ready, *done;
    cr_assert_eq(ec_stream_create(b, &copy), EC_OK);
    cr_assert_eq(ec_stream_create(b, &compute), EC_OK);
    cr_assert_eq(ec_event_create(b, 0, &ready), EC_OK);
    cr_assert_eq(ec_event_create(b, 0, &done), EC_OK);
    int fin;
    cr_assert_eq(ec_event_query(ready, &fin), EC_OK);
    cr_assert_eq(fin, 1, "an event never recorded counts as completed");

    tu_gate g;
    tu_gate_init(&g);
    cr_assert_eq(ec_stream_host_fn(copy, tu_gate_wait, &g), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(copy, dev, h, n), EC_OK);
    cr_assert_eq(ec_event_record(ready, copy), EC_OK);
    cr_assert_eq(ec_stream_wait(compute, ready), EC_OK);
    cr_assert_eq(ec_stream_checksum(compute, dev, n, dout), EC_OK);
    cr_assert_eq(ec_stream_copy_d2h(compute, hout, dout, 8), EC_OK);
    cr_assert_eq(ec_event_record(done, compute), EC_OK);
    tu_sleep_ms(20);
    cr_assert_eq(ec_event_query(ready, &fin), EC_OK);
    cr_assert_eq(fin, 0, "the copy is held behind the gate");
    cr_assert_eq(ec_event_query(done, &fin), EC_OK);
    cr_assert_eq(fin, 0, "the compute stream must wait for the copy");
    tu_gate_open(&g);
    cr_assert_eq(ec_event_sync(done), EC_OK);
    cr_assert_eq(*hout, ec_checksum64(h, n));
    ec_stream_destroy(copy);
    ec_stream_destroy(compute);
    ec_event_destroy(ready);
    ec_event_destroy(done);
    ec_backend_dev_free(b, dev);
    ec_backend_dev_free(b, dout);
    ec_backend_host_free(b, h);
    ec_backend_host_free(b, hout);
    ec_backend_destroy(b);
}

BACKEND_TEST(timing_events_measure_a_spin)
{
    ec_backend *b = backend_or_skip(backend);
    ec_stream *s;
    ec_event *t0, *t1, *plain;
    cr_assert_eq(ec_stream_create(b, &s), EC_OK);
    cr_assert_eq(ec_event_create(b, EC_EVENT_TIMING, &t0), EC_OK);
    cr_assert_eq(ec_event_create(b, EC_EVENT_TIMING, &t1), EC_OK);
    cr_assert_eq(ec_event_create(b, 0, &plain), EC_OK);
    float ms = -1;
    cr_assert_eq(ec_event_elapsed(t0, t1, &ms), EC_ERR_STATE, "never recorded");
    cr_assert_eq(ec_event_record(t0, s), EC_OK);
    cr_assert_eq(ec_stream_spin(s, 3000), EC_OK);
    cr_assert_eq(ec_event_record(t1, s), EC_OK);
    cr_assert_eq(ec_event_record(plain, s), EC_OK);
    cr_assert_eq(ec_event_sync(t1), EC_OK);
    cr_assert_eq(ec_event_elapsed(t0, t1, &ms), EC_OK, "%s", ec_backend_errmsg(b));
    cr_assert(ms >= 2.9f && ms < 500.0f, "spin of 3 ms measured %.3f ms", ms);
    cr_assert_eq(ec_event_elapsed(t0, plain, &ms), EC_ERR_STATE);
    ec_event_destroy(t0);
    ec_event_destroy(t1);
    ec_event_destroy(plain);
    ec_stream_destroy(s);
    ec_backend_destroy(b);
}

/* FFN on the backend against the CPU reference, for a vectorisable and a
 * ragged shape. */
static void ffn_against_reference(ec_backend *b, int32_t d, int32_t ff, uint64_t seed)
{
    size_t wn = ec_ffn_bytes(d, ff) / 2;
    uint16_t *w, *x;
    float *out, *dout_h;
    void *dw, *dx;
    float *dout, *dscratch;
    float *scratch = malloc(sizeof(float) * (size_t)ff);
    out = malloc(sizeof(float) * (size_t)d);
    cr_assert(scratch && out);
    cr_assert_eq(ec_backend_host_alloc(b, wn * 2, (void **)&w), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, (size_t)d * 2, (void **)&x), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, (size_t)d * 4, (void **)&dout_h), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, wn * 2, &dw), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, (size_t)d * 2, &dx), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, (size_t)d * 4, (void **)&dout), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, (size_t)ff * 4, (void **)&dscratch), EC_OK);
    ec_rng r;
    ec_rng_seed(&r, seed);
    for (size_t i = 0; i < wn; i++)
        w[i] = ec_half_from_float((float)(ec_rng_uniform(&r) * 0.5 - 0.25));
    for (int32_t i = 0; i < d; i++)
        x[i] = ec_half_from_float((float)(ec_rng_uniform(&r) * 2 - 1));
    ec_ffn_reference(w, x, out, d, ff, scratch);

    ec_stream *s;
    cr_assert_eq(ec_stream_create(b, &s), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dw, w, wn * 2), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dx, x, (size_t)d * 2), EC_OK);
    cr_assert_eq(ec_stream_ffn(s, dw, dx, dout, d, ff, dscratch), EC_OK, "%s",
                 ec_backend_errmsg(b));
    cr_assert_eq(ec_stream_copy_d2h(s, dout_h, dout, (size_t)d * 4), EC_OK);
    cr_assert_eq(ec_stream_sync(s), EC_OK);
    /* Tolerance: float accumulation against double, relative to the sum of
     * the magnitudes of the terms of each output. */
    const uint16_t *w2 = w + 2 * (size_t)ff * d;
    for (int32_t i = 0; i < d; i++) {
        double mag = 0;
        for (int32_t j = 0; j < ff; j++)
            mag += fabs(ec_half_to_float(w2[(size_t)i * ff + j]) * scratch[j]);
        cr_assert(fabs(dout_h[i] - out[i]) <= 1e-4 * mag + 1e-6,
                  "d=%d ff=%d out[%d]: %g vs reference %g (magnitude %g)", d, ff, i, dout_h[i],
                  out[i], mag);
    }
    ec_stream_destroy(s);
    ec_backend_dev_free(b, dw);
    ec_backend_dev_free(b, dx);
    ec_backend_dev_free(b, dout);
    ec_backend_dev_free(b, dscratch);
    ec_backend_host_free(b, w);
    ec_backend_host_free(b, x);
    ec_backend_host_free(b, dout_h);
    free(scratch);
    free(out);
}

BACKEND_TEST(ffn_matches_the_cpu_reference)
{
    ec_backend *b = backend_or_skip(backend);
    ffn_against_reference(b, 256, 384, 1); /* 16-byte loads */
    ffn_against_reference(b, 36, 20, 2);   /* ragged rows: scalar path */
    ec_backend_destroy(b);
}

/* q4 expert FFN on the backend (cuda: the dequantizing kernel; cpu: the
 * scalar reference) against the host kernel (ec_hostffn_run) on the same
 * bytes and the same fp16 inputs. Tolerance: both accumulate in float, so
 * |backend - host| <= 1e-4 * sum_r |W2[i][r] h[r]| + 1e-6, h in double. */
static void ffn_q4_against_host_kernel(ec_backend *b, ec_hostffn *hk, int32_t d, int32_t ff,
                                       uint64_t seed)
{
    size_t bytes = ec_expert_bytes(EC_DTYPE_Q4, d, ff), n = 3 * (size_t)d * ff;
    float *wf = malloc(n * sizeof *wf), *xf = malloc((size_t)d * 4), *want = malloc((size_t)d * 4);
    double *hd = malloc((size_t)ff * sizeof *hd);
    cr_assert(wf && xf && want && hd);
    void *w, *x, *dw, *dx;
    float *got, *dout, *dscratch;
    cr_assert_eq(ec_backend_host_alloc(b, bytes, &w), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, (size_t)d * 2, &x), EC_OK);
    cr_assert_eq(ec_backend_host_alloc(b, (size_t)d * 4, (void **)&got), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, bytes, &dw), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, (size_t)d * 2, &dx), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, (size_t)d * 4, (void **)&dout), EC_OK);
    cr_assert_eq(ec_backend_dev_alloc(b, (size_t)ff * 4, (void **)&dscratch), EC_OK);
    ec_rng r;
    ec_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        wf[i] = (float)((ec_rng_uniform(&r) * 2 - 1) / sqrt((double)(d > ff ? d : ff)));
    ec_error err = {0};
    cr_assert_eq(ec_expert_quantize_q4(wf, d, ff, w, &err), EC_OK, "%s", err.message);
    uint16_t *xh = x;
    for (int32_t i = 0; i < d; i++) {
        xh[i] = ec_half_from_float((float)(ec_rng_uniform(&r) * 2 - 1));
        xf[i] = ec_half_to_float(xh[i]);
    }
    cr_assert_eq(ec_hostffn_run(hk, EC_DTYPE_Q4, w, xf, want, 1, d, ff), EC_OK, "%s",
                 ec_hostffn_errmsg(hk));

    ec_stream *s;
    cr_assert_eq(ec_stream_create(b, &s), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dw, w, bytes), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dx, x, (size_t)d * 2), EC_OK);
    cr_assert_eq(ec_stream_expert_ffn(s, EC_DTYPE_Q4, dw, dx, dout, d, ff, dscratch), EC_OK,
                 "%s", ec_backend_errmsg(b));
    cr_assert_eq(ec_stream_copy_d2h(s, got, dout, (size_t)d * 4), EC_OK);
    cr_assert_eq(ec_stream_sync(s), EC_OK, "%s", ec_backend_errmsg(b));

    cr_assert_eq(ec_expert_dequantize(EC_DTYPE_Q4, w, d, ff, wf, NULL), EC_OK);
    const float *w1 = wf, *w3 = wf + (size_t)d * ff, *w2 = wf + 2 * (size_t)d * ff;
    for (int32_t k = 0; k < ff; k++) {
        double a = 0, c = 0;
        for (int32_t j = 0; j < d; j++) {
            a += (double)w1[(size_t)k * d + j] * xf[j];
            c += (double)w3[(size_t)k * d + j] * xf[j];
        }
        hd[k] = a / (1 + exp(-a)) * c;
    }
    for (int32_t i = 0; i < d; i++) {
        double mag = 0;
        for (int32_t k = 0; k < ff; k++)
            mag += fabs(w2[(size_t)i * ff + k] * hd[k]);
        cr_assert(fabs((double)got[i] - want[i]) <= 1e-4 * mag + 1e-6,
                  "%s d=%d ff=%d out[%d]: %g, host kernel %g (magnitude %g)", ec_backend_name(b),
                  d, ff, i, got[i], want[i], mag);
    }
    /* a shape q4 cannot hold is refused before any work */
    cr_assert_eq(ec_stream_expert_ffn(s, EC_DTYPE_Q4, dw, dx, dout, 48, ff, dscratch),
                 EC_ERR_INVALID);
    cr_assert(strstr(ec_backend_errmsg(b), "d_model=48 d_ff"), "%s", ec_backend_errmsg(b));
    ec_stream_destroy(s);
    ec_backend_dev_free(b, dw);
    ec_backend_dev_free(b, dx);
    ec_backend_dev_free(b, dout);
    ec_backend_dev_free(b, dscratch);
    ec_backend_host_free(b, w);
    ec_backend_host_free(b, x);
    ec_backend_host_free(b, got);
    free(wf);
    free(xf);
    free(want);
    free(hd);
}

BACKEND_TEST(ffn_q4_matches_the_host_kernel)
{
    ec_backend *b = backend_or_skip(backend);
    ec_hostffn *hk;
    cr_assert_eq(ec_hostffn_create(2, &hk, NULL), EC_OK);
    ffn_q4_against_host_kernel(b, hk, 256, 384, 1);   /* fewer groups per row than lanes */
    ffn_q4_against_host_kernel(b, hk, 96, 160, 2);    /* odd group counts */
    ffn_q4_against_host_kernel(b, hk, 1280, 1088, 3); /* lanes loop over groups */
    ec_hostffn_destroy(hk);
    ec_backend_destroy(b);
}

BACKEND_TEST(registered_host_memory_copies)
{
    ec_backend *b = backend_or_skip(backend);
    size_t n = 1 << 16;
    unsigned char *mem = aligned_alloc(4096, n), *back = aligned_alloc(4096, n);
    void *dev;
    cr_assert(mem && back);
    fill_random(mem, n, 9);
    cr_assert_eq(ec_backend_host_register(b, mem, n), EC_OK, "%s", ec_backend_errmsg(b));
    cr_assert_eq(ec_backend_dev_alloc(b, n, &dev), EC_OK);
    ec_stream *s;
    cr_assert_eq(ec_stream_create(b, &s), EC_OK);
    cr_assert_eq(ec_stream_copy_h2d(s, dev, mem, n), EC_OK);
    cr_assert_eq(ec_stream_copy_d2h(s, back, dev, n), EC_OK);
    cr_assert_eq(ec_stream_sync(s), EC_OK);
    cr_assert_eq(memcmp(mem, back, n), 0);
    ec_stream_destroy(s);
    ec_backend_host_unregister(b, mem);
    ec_backend_dev_free(b, dev);
    free(mem);
    free(back);
    ec_backend_destroy(b);
}

/* An event may be destroyed while a stream's queued wait on it has not run
 * yet (as cudaEventDestroy allows): the wait still passes, and nothing reads
 * the freed event (the sanitizer build fails here if anything does). */
BACKEND_TEST(an_event_destroyed_under_a_queued_wait_is_not_read_after)
{
    ec_backend *b = backend_or_skip(backend);
    ec_stream *a, *w;
    ec_event *e;
    cr_assert_eq(ec_stream_create(b, &a), EC_OK);
    cr_assert_eq(ec_stream_create(b, &w), EC_OK);
    cr_assert_eq(ec_event_create(b, 0, &e), EC_OK);
    cr_assert_eq(ec_stream_spin(a, 5000), EC_OK);  /* the record completes after 5 ms */
    cr_assert_eq(ec_event_record(e, a), EC_OK);
    cr_assert_eq(ec_stream_spin(w, 50000), EC_OK); /* the wait runs after 50 ms */
    cr_assert_eq(ec_stream_wait(w, e), EC_OK);
    cr_assert_eq(ec_event_sync(e), EC_OK);         /* recorded and completed ... */
    ec_event_destroy(e);                           /* ... with the wait still queued */
    cr_assert_eq(ec_stream_sync(w), EC_OK);
    ec_stream_destroy(a);
    ec_stream_destroy(w);
    ec_backend_destroy(b);
}

Test(backend_cpu, wrapping_a_native_stream_is_unsupported)
{
    ec_backend *b = backend_or_skip("cpu");
    ec_stream *s = (ec_stream *)1;
    cr_assert_eq(ec_stream_wrap(b, NULL, &s), EC_ERR_UNSUPPORTED);
    cr_assert_null(s);
    ec_backend_destroy(b);
}
