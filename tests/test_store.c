/* The expert store, and out-of-memory handling of store and loader. */
#include "testutil.h"
#include "expertcast/loader.h"
#include "../src/core/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ec_backend *cpu(void)
{
    ec_backend *b = NULL;
    cr_assert_eq(ec_backend_create("cpu", NULL, &b, NULL), EC_OK);
    return b;
}

Test(store, loads_a_raw_weights_file_layer_major_after_an_offset)
{
    const char *d = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/w.bin", d);
    int32_t L = 3, E = 4;
    size_t bytes = 1001, off = 17, total = off + (size_t)L * E * bytes;
    unsigned char *data = malloc(total);
    ec_rng r;
    ec_rng_seed(&r, 1);
    for (size_t i = 0; i < total; i++)
        data[i] = (unsigned char)ec_rng_next(&r);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(data, 1, total, f) == total);
    fclose(f);
    ec_backend *b = cpu();
    ec_store *s;
    cr_assert_eq(ec_store_create(b, L, E, bytes, &s, NULL), EC_OK);
    cr_assert_eq(ec_store_load_file(s, path, off), EC_OK, "%s", ec_store_errmsg(s));
    for (int32_t l = 0; l < L; l++)
        for (int32_t e = 0; e < E; e++) {
            const unsigned char *want = data + off + ((size_t)l * E + (size_t)e) * bytes;
            cr_assert_eq(memcmp(ec_store_expert(s, l, e), want, bytes), 0);
            cr_assert_eq(ec_store_checksum(s, l, e), ec_checksum64(want, bytes));
        }
    cr_assert_eq(ec_store_load_file(s, path, off + 1), EC_ERR_IO);
    cr_assert(strstr(ec_store_errmsg(s), "too short"), "%s", ec_store_errmsg(s));
    cr_assert(strstr(ec_store_errmsg(s), "layer 2 expert 3"), "%s", ec_store_errmsg(s));
    cr_assert_eq(ec_store_load_file(s, "/nonexistent/w.bin", 0), EC_ERR_IO);
    cr_assert_null(ec_store_expert(s, 3, 0));
    ec_store_destroy(s);
    ec_backend_destroy(b);
    free(data);
}

Test(store, synthetic_fill_is_deterministic_valid_fp16_whatever_the_threads)
{
    ec_backend *b = cpu();
    ec_store *a, *c;
    cr_assert_eq(ec_store_create(b, 4, 8, 4098, &a, NULL), EC_OK);
    cr_assert_eq(ec_store_create(b, 4, 8, 4098, &c, NULL), EC_OK);
    cr_assert_eq(ec_store_fill_synthetic(a, 7, 1), EC_OK);
    cr_assert_eq(ec_store_fill_synthetic(c, 7, 5), EC_OK);
    for (int32_t l = 0; l < 4; l++)
        for (int32_t e = 0; e < 8; e++) {
            cr_assert_eq(memcmp(ec_store_expert(a, l, e), ec_store_expert(c, l, e), 4098), 0);
            cr_assert_eq(ec_store_checksum(a, l, e), ec_store_checksum(c, l, e));
            if (e > 0)
                cr_assert_neq(ec_store_checksum(a, l, e), ec_store_checksum(a, l, e - 1));
            const uint16_t *h = ec_store_expert(a, l, e);
            for (int i = 0; i < 2048; i++) {
                float v = fabsf(ec_half_to_float(h[i]));
                cr_assert(v >= 0.0625f && v < 0.125f, "value %g", v);
            }
        }
    ec_store_destroy(a);
    ec_store_destroy(c);
    ec_backend_destroy(b);
}

Test(store, wraps_caller_memory_without_taking_it)
{
    ec_backend *b = cpu();
    void *bufs[6];
    for (int i = 0; i < 6; i++) {
        bufs[i] = malloc(64);
        memset(bufs[i], i, 64);
    }
    ec_store *s;
    ec_error err = {0};
    cr_assert_eq(ec_store_wrap(b, 2, 3, 64, bufs, EC_STORE_REGISTER, &s, &err), EC_OK, "%s",
                 err.message);
    cr_assert_eq(ec_store_expert(s, 1, 2), bufs[5]);
    cr_assert_eq(ec_store_checksum(s, 1, 2), ec_checksum64(bufs[5], 64));
    ec_store_destroy(s);
    void *kept = bufs[1];
    bufs[1] = NULL;
    cr_assert_eq(ec_store_wrap(b, 2, 3, 64, bufs, 0, &s, &err), EC_ERR_INVALID);
    cr_assert_null(s);
    bufs[1] = kept;
    for (int i = 0; i < 6; i++)
        free(bufs[i]); /* still the caller's */
    ec_backend_destroy(b);
}

/* Fails the k-th allocation for every k: each attempt ends in EC_OK or
 * EC_ERR_NOMEM with everything freed. */
Test(store, every_failed_allocation_is_reported_and_nothing_leaks)
{
    const char *d = tu_tmpdir();
    char rec[512];
    snprintf(rec, sizeof rec, "%s/rec.jsonl", d);
    int completed = 0;
    for (size_t k = 1; k < 400 && !completed; k++) {
        tu_alloc_state st = {.fail_at = k};
        tu_alloc_install(&st);
        ec_backend *b = NULL;
        ec_store *s = NULL;
        ec_loader *l = NULL;
        ec_stream *cs = NULL;
        ec_status r = ec_backend_create("cpu", NULL, &b, NULL);
        if (!r)
            r = ec_store_create(b, 2, 4, 256, &s, NULL);
        if (!r)
            r = ec_stream_create(b, &cs);
        if (!r) {
            ec_loader_config c;
            ec_loader_config_default(&c);
            c.record_path = rec;
            r = ec_loader_create(b, s, NULL, &c, &l, NULL);
        }
        if (!r) {
            int16_t ex[2] = {1, 3};
            void *w;
            r = ec_loader_observe(l, 0, ex);
            if (!r)
                r = ec_loader_acquire(l, 0, 1, cs, &w);
            if (!r)
                r = ec_loader_release(l, 0, 1, cs);
            if (!r)
                completed = 1;
        }
        cr_assert(r == EC_OK || r == EC_ERR_NOMEM, "k=%zu: status %d", k, r);
        ec_loader_destroy(l);
        ec_stream_destroy(cs);
        ec_store_destroy(s);
        ec_backend_destroy(b);
        tu_alloc_uninstall();
        cr_assert_eq(st.live, 0, "k=%zu: %ld blocks leaked", k, st.live);
    }
    cr_assert(completed, "the sequence never completed within 400 allocations");
}

/* ---- 4-bit experts ------------------------------------------------------------------- */

Test(store, q4_format_sizes_synthetic_weights_and_validation)
{
    ec_backend *b = cpu();
    int32_t d = 64, ff = 96;
    size_t bytes = ec_expert_bytes(EC_DTYPE_Q4, d, ff);
    ec_store *s;
    cr_assert_eq(ec_store_create(b, 2, 3, bytes, &s, NULL), EC_OK);
    cr_assert_eq(ec_store_format(s, NULL, NULL, NULL), 0);
    cr_assert_eq(ec_store_validate(s), EC_ERR_STATE);
    cr_assert_eq(ec_store_set_format(s, EC_DTYPE_F16, d, ff), EC_ERR_RANGE);
    cr_assert(strstr(ec_store_errmsg(s), "has 36864 bytes, the store holds 10368 per expert"),
              "%s", ec_store_errmsg(s));
    cr_assert_eq(ec_store_set_format(s, EC_DTYPE_Q4, 48, ff), EC_ERR_RANGE);
    cr_assert_eq(ec_store_set_format(s, EC_DTYPE_Q4, d, ff), EC_OK);
    ec_dtype dt;
    int32_t dm, df;
    cr_assert_eq(ec_store_format(s, &dt, &dm, &df), 1);
    cr_assert(dt == EC_DTYPE_Q4 && dm == d && df == ff);
    cr_assert_eq(ec_store_fill_synthetic(s, 3, 2), EC_OK);
    cr_assert_eq(ec_store_validate(s), EC_OK, "%s", ec_store_errmsg(s));
    /* the synthetic scales are in [1/128, 1/64): every weight within 1/8 */
    float *w = malloc(3 * (size_t)d * ff * sizeof *w);
    cr_assert(w);
    cr_assert_eq(ec_expert_dequantize(EC_DTYPE_Q4, ec_store_expert(s, 1, 2), d, ff, w, NULL),
                 EC_OK);
    float amax = 0;
    for (size_t i = 0; i < 3 * (size_t)d * ff; i++)
        amax = fmaxf(amax, fabsf(w[i]));
    cr_assert(amax <= 0.125f && amax > 0.05f, "largest weight %g", amax);
    free(w);
    /* a NaN scale planted in layer 1 expert 0, W1 row 2 group 1 */
    uint8_t *e = ec_store_expert(s, 1, 0);
    e[(2 * 2 + 1) * 18 + 1] = 0x7e;
    cr_assert_eq(ec_store_validate(s), EC_ERR_PARSE);
    cr_assert(strstr(ec_store_errmsg(s),
                     "layer 1 expert 0: q4 expert: W1 row 2 group 1 (blob offset 90): scale is NaN"),
              "%s", ec_store_errmsg(s));
    ec_store_destroy(s);
    ec_backend_destroy(b);
}

Test(store, loading_a_q4_file_names_the_expert_and_field_of_bad_data)
{
    ec_backend *b = cpu();
    int32_t d = 32, ff = 64, L = 2, E = 2;
    size_t bytes = ec_expert_bytes(EC_DTYPE_Q4, d, ff), off = 5;
    ec_store *src;
    cr_assert_eq(ec_store_create(b, L, E, bytes, &src, NULL), EC_OK);
    cr_assert_eq(ec_store_set_format(src, EC_DTYPE_Q4, d, ff), EC_OK);
    cr_assert_eq(ec_store_fill_synthetic(src, 9, 1), EC_OK);
    const char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/q4.bin", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fwrite("hdr..", 1, off, f);
    for (int32_t l = 0; l < L; l++)
        for (int32_t e = 0; e < E; e++) {
            uint8_t *p = ec_store_expert(src, l, e);
            if (l == 1 && e == 1) /* W2 (rows of 2 groups, from block 128) row 3 group 0: +Inf */
                p[(128 + 6) * 18] = 0, p[(128 + 6) * 18 + 1] = 0x7c;
            cr_assert_eq(fwrite(p, 1, bytes, f), bytes);
        }
    fclose(f);
    ec_store *s;
    cr_assert_eq(ec_store_create(b, L, E, bytes, &s, NULL), EC_OK);
    cr_assert_eq(ec_store_load_file(s, path, off), EC_OK, "without a format bytes are bytes");
    cr_assert_eq(ec_store_set_format(s, EC_DTYPE_Q4, d, ff), EC_OK);
    cr_assert_eq(ec_store_load_file(s, path, off), EC_ERR_PARSE);
    char want[1200];
    snprintf(want, sizeof want,
             "%s: layer 1 expert 1 (file byte %zu): q4 expert: W2 row 3 group 0 (blob offset "
             "2412): scale is Inf",
             path, off + 3 * bytes);
    cr_assert(strstr(ec_store_errmsg(s), want), "%s\nwanted %s", ec_store_errmsg(s), want);
    /* experts before the bad one loaded as they are */
    cr_assert_eq(memcmp(ec_store_expert(s, 1, 0), ec_store_expert(src, 1, 0), bytes), 0);
    ec_store_destroy(s);
    ec_store_destroy(src);
    ec_backend_destroy(b);
}
