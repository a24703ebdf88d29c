/*
 * The host expert kernel and the expert weight formats: sizes, the q4 block
 * layout, quantization, validation of bad data, and the fast kernels
 * (AVX2 and portable, 1 to 3 threads) against the scalar reference for
 * batches 1..8 and odd shapes.
 *
 * Tolerance of the fast path: float accumulation against the reference's
 * double, per output |fast - ref| <= 1e-4 * sum_r |W2[i][r] * h[r]| + 1e-6,
 * with h the intermediate in double (the magnitude of the terms summed).
 */
#include "testutil.h"
#include "expertcast/hostffn.h"
#include "../src/core/rng.h"
#include "../src/hostffn/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const ISAS[] = {"avx2", "portable"};

static ec_hostffn *hostffn_or_skip(int32_t threads, const char *isa)
{
    ec_hostffn *h = NULL;
    ec_error err = {0};
    ec_status s = ec_hostffn_create_isa(threads, isa, &h, &err);
    if (s == EC_ERR_UNSUPPORTED)
        cr_skip_test("%s kernels unavailable here: %s", isa, err.message);
    cr_assert_eq(s, EC_OK, "%s", err.message);
    return h;
}

/* Weights in [-amp, amp) as float, the layout [W1 | W3 | W2]. */
static float *random_weights(int32_t d, int32_t ff, float amp, uint64_t seed)
{
    size_t n = 3 * (size_t)d * (size_t)ff;
    float *w = malloc(n * sizeof *w);
    cr_assert(w);
    ec_rng r;
    ec_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        w[i] = (float)((ec_rng_uniform(&r) * 2 - 1) * amp);
    return w;
}

/* An expert blob of format dt from random weights. */
static void *random_expert(ec_dtype dt, int32_t d, int32_t ff, uint64_t seed)
{
    float amp = 1.f / sqrtf((float)(d < ff ? ff : d)) * 2.f;
    float *wf = random_weights(d, ff, amp, seed);
    size_t bytes = ec_expert_bytes(dt, d, ff);
    cr_assert(bytes > 0);
    void *blob = malloc(bytes);
    cr_assert(blob);
    if (dt == EC_DTYPE_Q4) {
        ec_error err = {0};
        cr_assert_eq(ec_expert_quantize_q4(wf, d, ff, blob, &err), EC_OK, "%s", err.message);
    } else {
        uint16_t *h = blob;
        for (size_t i = 0; i < 3 * (size_t)d * (size_t)ff; i++)
            h[i] = ec_half_from_float(wf[i]);
    }
    free(wf);
    return blob;
}

/* Per output, the sum of |W2[i][r] * h[r]| with h computed in double from
 * the dequantized weights. */
static void magnitudes(ec_dtype dt, const void *blob, const float *x, int32_t batch, int32_t d,
                       int32_t ff, double *mag)
{
    float *w = malloc(3 * (size_t)d * (size_t)ff * sizeof *w);
    double *h = malloc((size_t)ff * sizeof *h);
    cr_assert(w && h);
    cr_assert_eq(ec_expert_dequantize(dt, blob, d, ff, w, NULL), EC_OK);
    const float *w1 = w, *w3 = w + (size_t)d * ff, *w2 = w + 2 * (size_t)d * ff;
    for (int32_t t = 0; t < batch; t++) {
        const float *xt = x + (size_t)t * d;
        for (int32_t r = 0; r < ff; r++) {
            double a = 0, c = 0;
            for (int32_t j = 0; j < d; j++) {
                a += (double)w1[(size_t)r * d + j] * xt[j];
                c += (double)w3[(size_t)r * d + j] * xt[j];
            }
            h[r] = a / (1 + exp(-a)) * c;
        }
        for (int32_t i = 0; i < d; i++) {
            double m = 0;
            for (int32_t r = 0; r < ff; r++)
                m += fabs(w2[(size_t)i * ff + r] * h[r]);
            mag[(size_t)t * d + i] = m;
        }
    }
    free(w);
    free(h);
}

static float *random_x(int32_t batch, int32_t d, uint64_t seed)
{
    float *x = malloc((size_t)batch * (size_t)d * sizeof *x);
    cr_assert(x);
    ec_rng r;
    ec_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)batch * (size_t)d; i++)
        x[i] = (float)(ec_rng_uniform(&r) * 2 - 1);
    return x;
}

/* Fast against reference for every batch 1..8; returns the largest error
 * relative to the tolerance (<= 1 passes). */
static double check_against_reference(ec_hostffn *h, ec_dtype dt, int32_t d, int32_t ff,
                                      uint64_t seed)
{
    void *blob = random_expert(dt, d, ff, seed);
    cr_assert_eq(ec_expert_validate(dt, blob, ec_expert_bytes(dt, d, ff), d, ff, NULL), EC_OK);
    int32_t B = EC_HOSTFFN_MAX_BATCH;
    float *x = random_x(B, d, seed + 1);
    float *ref = malloc((size_t)B * d * sizeof *ref), *y = malloc((size_t)B * d * sizeof *y);
    double *mag = malloc((size_t)B * d * sizeof *mag);
    cr_assert(ref && y && mag);
    ec_error err = {0};
    cr_assert_eq(ec_hostffn_reference(dt, blob, x, ref, B, d, ff, &err), EC_OK, "%s",
                 err.message);
    magnitudes(dt, blob, x, B, d, ff, mag);
    double worst = 0;
    for (int32_t batch = 1; batch <= B; batch++) {
        memset(y, 0xff, (size_t)B * d * sizeof *y); /* NaN everywhere */
        cr_assert_eq(ec_hostffn_run(h, dt, blob, x, y, batch, d, ff), EC_OK, "%s",
                     ec_hostffn_errmsg(h));
        for (int32_t t = 0; t < B; t++) {
            for (int32_t i = 0; i < d; i++) {
                size_t k = (size_t)t * d + i;
                if (t >= batch) { /* rows past the batch are not written */
                    cr_assert(isnan(y[k]), "%s %s batch %d wrote token %d", ec_dtype_name(dt),
                              ec_hostffn_isa(h), batch, t);
                    continue;
                }
                double tol = 1e-4 * mag[k] + 1e-6, e = fabs((double)y[k] - ref[k]);
                cr_assert(e <= tol,
                          "%s %s threads %d d_model %d d_ff %d batch %d: y[%d][%d] = %.9g, "
                          "reference %.9g (tolerance %.3g)",
                          ec_dtype_name(dt), ec_hostffn_isa(h), ec_hostffn_threads(h), d, ff,
                          batch, t, i, y[k], ref[k], tol);
                worst = fmax(worst, e / tol);
            }
        }
    }
    free(blob);
    free(x);
    free(ref);
    free(y);
    free(mag);
    return worst;
}

Test(hostffn, f16_matches_the_reference_for_batch_1_to_8_and_odd_shapes)
{
    static const int32_t shapes[][2] = {{1, 1}, {37, 23}, {8, 16}, {64, 96}, {200, 136}, {15, 17}};
    for (size_t i = 0; i < EC_COUNTOF(ISAS); i++) {
        for (int32_t threads = 1; threads <= 3; threads++) {
            ec_hostffn *h = hostffn_or_skip(threads, ISAS[i]);
            double worst = 0;
            for (size_t s = 0; s < EC_COUNTOF(shapes); s++)
                worst = fmax(worst, check_against_reference(h, EC_DTYPE_F16, shapes[s][0],
                                                            shapes[s][1], 10 + s));
            cr_log_info("f16 %s threads %d: largest error %.3f of the tolerance", ISAS[i],
                        threads, worst);
            ec_hostffn_destroy(h);
        }
    }
}

Test(hostffn, q4_matches_the_reference_for_batch_1_to_8_and_odd_shapes)
{
    static const int32_t shapes[][2] = {{32, 32}, {96, 160}, {224, 64}, {64, 288}, {160, 96}};
    for (size_t i = 0; i < EC_COUNTOF(ISAS); i++) {
        for (int32_t threads = 1; threads <= 3; threads++) {
            ec_hostffn *h = hostffn_or_skip(threads, ISAS[i]);
            double worst = 0;
            for (size_t s = 0; s < EC_COUNTOF(shapes); s++)
                worst = fmax(worst, check_against_reference(h, EC_DTYPE_Q4, shapes[s][0],
                                                            shapes[s][1], 20 + s));
            cr_log_info("q4 %s threads %d: largest error %.3f of the tolerance", ISAS[i],
                        threads, worst);
            ec_hostffn_destroy(h);
        }
    }
}

/* Each output row is computed by one thread from start to end, so the
 * result does not depend on the number of threads or on which thread ran
 * which chunk: bitwise equal across thread counts and repeated runs. */
Test(hostffn, results_do_not_depend_on_threads_and_repeat_bitwise)
{
    int32_t d = 256, ff = 704, B = 5;
    for (int dt = 0; dt < 2; dt++) {
        void *blob = random_expert((ec_dtype)dt, d, ff, 7);
        float *x = random_x(B, d, 8);
        float *y1 = malloc((size_t)B * d * 4), *y4 = malloc((size_t)B * d * 4);
        cr_assert(y1 && y4);
        ec_hostffn *h1 = hostffn_or_skip(1, NULL), *h4 = hostffn_or_skip(4, NULL);
        cr_assert_eq(ec_hostffn_run(h1, (ec_dtype)dt, blob, x, y1, B, d, ff), EC_OK);
        for (int rep = 0; rep < 200; rep++) {
            memset(y4, 0, (size_t)B * d * 4);
            cr_assert_eq(ec_hostffn_run(h4, (ec_dtype)dt, blob, x, y4, B, d, ff), EC_OK);
            cr_assert(!memcmp(y1, y4, (size_t)B * d * 4), "%s run %d differs",
                      ec_dtype_name((ec_dtype)dt), rep);
        }
        ec_hostffn_destroy(h1);
        ec_hostffn_destroy(h4);
        free(blob);
        free(x);
        free(y1);
        free(y4);
    }
}

Test(hostffn, one_handle_runs_growing_and_shrinking_shapes)
{
    ec_hostffn *h = hostffn_or_skip(2, NULL);
    static const int32_t shapes[][2] = {{32, 32}, {64, 512}, {32, 64}, {128, 1024}, {96, 32}};
    for (size_t s = 0; s < EC_COUNTOF(shapes); s++)
        check_against_reference(h, EC_DTYPE_Q4, shapes[s][0], shapes[s][1], 40 + s);
    ec_hostffn_destroy(h);
}

Test(hostffn, run_rejects_bad_arguments_with_a_message)
{
    ec_hostffn *h = hostffn_or_skip(2, NULL);
    float x[64] = {0}, y[64];
    uint8_t w[4096] = {0};
    cr_assert_eq(ec_hostffn_run(h, EC_DTYPE_F16, w, x, y, 0, 8, 8), EC_ERR_RANGE);
    cr_assert(strstr(ec_hostffn_errmsg(h), "batch 0 is outside 1..8"), "%s",
              ec_hostffn_errmsg(h));
    cr_assert_eq(ec_hostffn_run(h, EC_DTYPE_F16, w, x, y, 9, 4, 4), EC_ERR_RANGE);
    cr_assert_eq(ec_hostffn_run(h, EC_DTYPE_Q4, w, x, y, 1, 48, 32), EC_ERR_RANGE);
    cr_assert(strstr(ec_hostffn_errmsg(h), "d_model 48 x d_ff 32 is invalid for q4"), "%s",
              ec_hostffn_errmsg(h));
    cr_assert_eq(ec_hostffn_run(h, EC_DTYPE_F16, NULL, x, y, 1, 4, 4), EC_ERR_INVALID);
    cr_assert_eq(ec_hostffn_run(h, (ec_dtype)7, w, x, y, 1, 4, 4), EC_ERR_INVALID);
    cr_assert_eq(ec_hostffn_run(h, EC_DTYPE_F16, w, x, y, 1, 4, 4), EC_OK);
    cr_assert_str_eq(ec_hostffn_errmsg(h), "");
    ec_hostffn_destroy(h);
    ec_hostffn_destroy(NULL);
    ec_error err = {0};
    cr_assert_eq(ec_hostffn_create(65, &h, &err), EC_ERR_RANGE);
    cr_assert_null(h);
    cr_assert_eq(ec_hostffn_create_isa(1, "sse9", &h, &err), EC_ERR_NOT_FOUND);
    cr_assert_eq(ec_hostffn_create(0, &h, &err), EC_OK); /* one per CPU */
    cr_assert(ec_hostffn_threads(h) >= 1);
    ec_hostffn_destroy(h);
}

/* ---- formats ------------------------------------------------------------------------ */

Test(format, expert_bytes_and_names)
{
    cr_assert_eq(ec_expert_bytes(EC_DTYPE_F16, 4096, 14336), ec_ffn_bytes(4096, 14336));
    cr_assert_eq(ec_expert_bytes(EC_DTYPE_Q4, 4096, 14336), 3 * 4096ull * 14336 / 32 * 18);
    cr_assert_eq(ec_expert_bytes(EC_DTYPE_F16, 3, 5), 90);
    cr_assert_eq(ec_expert_bytes(EC_DTYPE_Q4, 48, 32), 0);
    cr_assert_eq(ec_expert_bytes(EC_DTYPE_Q4, 32, 40), 0);
    cr_assert_eq(ec_expert_bytes(EC_DTYPE_F16, 0, 5), 0);
    cr_assert_eq(ec_expert_bytes((ec_dtype)9, 32, 32), 0);
    ec_dtype dt;
    cr_assert_eq(ec_dtype_parse("q4_0", &dt), EC_OK);
    cr_assert_eq(dt, EC_DTYPE_Q4);
    cr_assert_eq(ec_dtype_parse("fp16", &dt), EC_OK);
    cr_assert_eq(dt, EC_DTYPE_F16);
    cr_assert_eq(ec_dtype_parse("q8", &dt), EC_ERR_NOT_FOUND);
    cr_assert_str_eq(ec_dtype_name(EC_DTYPE_Q4), "q4");
    cr_assert_null(ec_dtype_name((ec_dtype)5));
}

/* The block layout byte by byte: scale first (fp16 little-endian), then
 * byte 2 + j = weight j (low nibble) | weight j + 16 (high nibble). */
Test(format, q4_block_layout_is_ggml_q4_0)
{
    float w[3 * 32 * 32];
    for (size_t i = 0; i < EC_COUNTOF(w); i++)
        w[i] = 0.f;
    /* the first group: the largest magnitude is -8 at index 5 (so d = 1,
     * q = w + 8); weight j = j - 8 for j < 16, weight 16 + j = 7 - j/2 */
    for (int j = 0; j < 16; j++) {
        w[j] = (float)(j - 8);
        w[16 + j] = (float)(7 - j / 2);
    }
    w[5] = -8.f;
    w[0] = 0.f;
    uint8_t blob[3 * 32 * 18];
    cr_assert_eq(ec_expert_quantize_q4(w, 32, 32, blob, NULL), EC_OK);
    cr_assert_eq(blob[0], 0x00); /* d = 1.0 = 0x3c00 */
    cr_assert_eq(blob[1], 0x3c);
    for (int j = 0; j < 16; j++) {
        int lo = (int)w[j] + 8, hi = (int)w[16 + j] + 8;
        cr_assert_eq(blob[2 + j], (uint8_t)(lo | hi << 4), "byte %d: %02x", 2 + j, blob[2 + j]);
    }
    /* an all-zero group: d = 0 / -8 = -0 (0x8000), q = 8 */
    cr_assert_eq(blob[18], 0x00);
    cr_assert_eq(blob[19], 0x80);
    cr_assert_eq(blob[20], 0x88);
    float back[EC_COUNTOF(w)];
    cr_assert_eq(ec_expert_dequantize(EC_DTYPE_Q4, blob, 32, 32, back, NULL), EC_OK);
    for (size_t i = 0; i < EC_COUNTOF(w); i++)
        cr_assert_eq(back[i], w[i], "weight %zu: %g, was %g", i, back[i], w[i]);
}

/* Half a step |d| = max|w| / 8, except past 7.5 steps on the side opposite
 * the group's largest weight m, where Q4_0 clips at 7 steps (one step). */
Test(format, q4_quantization_error_is_at_most_half_a_step)
{
    int32_t d = 64, ff = 96;
    float *w = random_weights(d, ff, 0.3f, 3);
    size_t n = 3 * (size_t)d * ff;
    uint8_t *blob = malloc(ec_expert_bytes(EC_DTYPE_Q4, d, ff));
    float *back = malloc(n * sizeof *back);
    cr_assert(blob && back);
    cr_assert_eq(ec_expert_quantize_q4(w, d, ff, blob, NULL), EC_OK);
    cr_assert_eq(ec_expert_dequantize(EC_DTYPE_Q4, blob, d, ff, back, NULL), EC_OK);
    size_t clipped = 0;
    for (size_t g = 0; g < n / 32; g++) {
        float m = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(w[g * 32 + j]) > fabsf(m))
                m = w[g * 32 + j];
        float step = fabsf(m) / 8; /* |d|, before fp16 rounding of the scale */
        for (int j = 0; j < 32; j++) {
            size_t i = g * 32 + j;
            int clips = fabsf(w[i]) > 7.5f * step && (w[i] > 0) != (m > 0);
            clipped += (size_t)clips;
            float tol = (clips ? step : step * 0.5f) * 1.01f + 1e-7f;
            cr_assert(fabsf(back[i] - w[i]) <= tol, "weight %zu: %g back as %g (step %g)", i,
                      w[i], back[i], step);
        }
    }
    cr_assert(clipped > 0 && clipped < n / 20, "%zu of %zu clipped", clipped, n);
    /* fp16 input gives the same blob as its float values */
    uint16_t *h = malloc(n * 2);
    uint8_t *blob2 = malloc(ec_expert_bytes(EC_DTYPE_Q4, d, ff));
    cr_assert(h && blob2);
    for (size_t i = 0; i < n; i++) {
        h[i] = ec_half_from_float(w[i]);
        w[i] = ec_half_to_float(h[i]);
    }
    cr_assert_eq(ec_expert_quantize_q4(w, d, ff, blob, NULL), EC_OK);
    cr_assert_eq(ec_expert_quantize_q4_f16(h, d, ff, blob2, NULL), EC_OK);
    cr_assert(!memcmp(blob, blob2, ec_expert_bytes(EC_DTYPE_Q4, d, ff)));
    free(w);
    free(blob);
    free(blob2);
    free(back);
    free(h);
}

Test(format, quantize_rejects_non_finite_weights_and_bad_shapes)
{
    int32_t d = 32, ff = 64;
    float *w = random_weights(d, ff, 1.f, 4);
    uint8_t *blob = malloc(ec_expert_bytes(EC_DTYPE_Q4, d, ff));
    cr_assert(blob);
    w[(size_t)d * ff + 3 * d + 7] = NAN; /* W3 row 3 column 7 */
    ec_error err = {0};
    cr_assert_eq(ec_expert_quantize_q4(w, d, ff, blob, &err), EC_ERR_RANGE);
    cr_assert(strstr(err.message, "W3 row 3 column 7 is not finite"), "%s", err.message);
    cr_assert_eq(ec_expert_quantize_q4(w, 33, ff, blob, &err), EC_ERR_RANGE);
    cr_assert(strstr(err.message, "multiples of 32"), "%s", err.message);
    free(w);
    free(blob);
}

/* ---- bad 4-bit data ----------------------------------------------------------------------- */

Test(validate, truncated_and_overlong_q4_blobs_name_the_group_and_offset)
{
    int32_t d = 64, ff = 32;
    size_t need = ec_expert_bytes(EC_DTYPE_Q4, d, ff); /* 3 * 64 blocks = 3456 bytes */
    uint8_t *blob = random_expert(EC_DTYPE_Q4, d, ff, 5);
    ec_error err = {0};
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, blob, need, d, ff, &err), EC_OK, "%s",
                 err.message);
    /* W1: 32 rows x 2 groups = 64 blocks; W3 the next 64; block 64 + 7 is W3 row 3 group 1 */
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, blob, 71 * 18 + 5, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "1283 bytes, 3456 expected for d_model 64 x d_ff 32: truncated "
                                  "at W3 row 3 group 1 (blob offset 1278)"),
              "%s", err.message);
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, blob, need - 1, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "truncated at W2 row 63 group 0 (blob offset 3438)"), "%s",
              err.message);
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, blob, 0, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "truncated at W1 row 0 group 0 (blob offset 0)"), "%s",
              err.message);
    uint8_t *longer = calloc(1, need + 7);
    cr_assert(longer);
    memcpy(longer, blob, need);
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, longer, need + 7, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "7 bytes past the end of W2 (blob offset 3456)"), "%s",
                     err.message);
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, blob, need, 48, ff, &err), EC_ERR_RANGE);
    cr_assert(strstr(err.message, "d_model 48 x d_ff 32 is invalid"), "%s", err.message);
    free(longer);
    free(blob);
}

Test(validate, nan_and_inf_scales_name_the_group_and_offset)
{
    int32_t d = 64, ff = 96;
    size_t need = ec_expert_bytes(EC_DTYPE_Q4, d, ff);
    uint8_t *blob = random_expert(EC_DTYPE_Q4, d, ff, 6);
    ec_error err = {0};
    /* W2 (d_model rows of 3 groups) starts at block 2 * 96 * 2 = 384;
     * W2 row 17 group 2 is block 384 + 17 * 3 + 2 = 437 */
    size_t off = 437 * 18;
    uint8_t save[2] = {blob[off], blob[off + 1]};
    blob[off] = 0x01;
    blob[off + 1] = 0x7e; /* NaN */
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, blob, need, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "W2 row 17 group 2 (blob offset 7866): scale is NaN"), "%s",
              err.message);
    blob[off] = 0x00;
    blob[off + 1] = 0xfc; /* -Inf */
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, blob, need, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "scale is -Inf"), "%s", err.message);
    blob[off] = save[0];
    blob[off + 1] = save[1];
    blob[1] = 0x7c; /* W1 row 0 group 0: +Inf (low byte kept: NaN unless 0) */
    blob[0] = 0x00;
    cr_assert_eq(ec_expert_validate(EC_DTYPE_Q4, blob, need, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "W1 row 0 group 0 (blob offset 0): scale is Inf"), "%s",
              err.message);
    free(blob);
}

Test(validate, f16_blobs_with_non_finite_weights_or_the_wrong_size)
{
    int32_t d = 12, ff = 10;
    size_t need = ec_expert_bytes(EC_DTYPE_F16, d, ff);
    uint16_t *w = random_expert(EC_DTYPE_F16, d, ff, 9);
    ec_error err = {0};
    cr_assert_eq(ec_expert_validate(EC_DTYPE_F16, w, need, d, ff, &err), EC_OK, "%s",
                 err.message);
    w[2 * 120 + 5 * 10 + 3] = 0x7e00; /* W2 row 5 column 3 */
    cr_assert_eq(ec_expert_validate(EC_DTYPE_F16, w, need, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "W2 row 5 column 3 (blob offset 586): weight is NaN"), "%s",
              err.message);
    cr_assert_eq(ec_expert_validate(EC_DTYPE_F16, w, need - 3, d, ff, &err), EC_ERR_PARSE);
    cr_assert(strstr(err.message, "truncated at W2 row 11 column 8 (blob offset 716)"), "%s", err.message);
    free(w);
}

Test(hostffn, streaming_read_sums_every_word_on_every_thread_count)
{
    size_t n = (3u << 20) + 13; /* three full chunks and a ragged tail */
    uint8_t *p = malloc(n);
    cr_assert(p);
    ec_rng r;
    ec_rng_seed(&r, 11);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)ec_rng_next(&r);
    uint64_t want = 0;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = 0;
        for (size_t k = 0; k < 8 && i + k < n; k++)
            v |= (uint64_t)p[i + k] << (8 * k);
        want += v;
    }
    for (int32_t threads = 1; threads <= 3; threads++) {
        ec_hostffn *h = hostffn_or_skip(threads, NULL);
        uint64_t got = 0;
        cr_assert_eq(ec_hostffn_read(h, p, n, &got), EC_OK);
        cr_assert_eq(got, want, "threads %d", threads);
        cr_assert_eq(ec_hostffn_read(h, p, 0, &got), EC_OK);
        cr_assert_eq(got, 0);
        ec_hostffn_destroy(h);
    }
    free(p);
}
