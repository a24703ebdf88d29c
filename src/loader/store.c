/* The host expert store: one buffer per expert, filled and checksummed. */
#include "../core/internal.h"
#include "../core/rng.h"
#include "expertcast/store.h"
#include "expertcast/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

struct ec_store {
    ec_backend *backend;
    int32_t n_layers, n_experts;
    size_t expert_bytes;
    void **buf;         /* [n_layers * n_experts] */
    uint64_t *checksum; /* [n_layers * n_experts] */
    int owned;          /* buffers allocated through the backend */
    int registered;     /* caller buffers pinned by the store */
    int has_format;     /* ec_store_set_format was called */
    ec_dtype dtype;
    int32_t d_model, d_ff;
    char errmsg[EC_ERROR_MAX];
};

static ec_status store_fail(ec_store *s, ec_status st, const char *fmt, ...) EC_PRINTF(3, 4);
static ec_status store_fail(ec_store *s, ec_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

static size_t n_experts_total(const ec_store *s)
{
    return (size_t)s->n_layers * (size_t)s->n_experts;
}

static ec_status store_new(ec_backend *b, int32_t L, int32_t E, size_t bytes, ec_store **out,
                           ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_store: NULL out");
    *out = NULL;
    if (!b || L < 1 || L > EC_MAX_LAYERS || E < 1 || E > EC_MAX_EXPERTS || bytes == 0)
        return ec_error_set(err, EC_ERR_INVALID,
                            "ec_store: shape %d layers x %d experts x %zu bytes is invalid",
                            (int)L, (int)E, bytes);
    ec_store *s = ec_calloc(1, sizeof *s);
    if (!s)
        return ec_error_set(err, EC_ERR_NOMEM, "ec_store: out of memory");
    s->backend = b;
    s->n_layers = L;
    s->n_experts = E;
    s->expert_bytes = bytes;
    s->buf = ec_calloc(n_experts_total(s), sizeof *s->buf);
    s->checksum = ec_calloc(n_experts_total(s), sizeof *s->checksum);
    if (!s->buf || !s->checksum) {
        ec_free(s->buf);
        ec_free(s->checksum);
        ec_free(s);
        return ec_error_set(err, EC_ERR_NOMEM, "ec_store: out of memory");
    }
    *out = s;
    return EC_OK;
}

ec_status ec_store_create(ec_backend *b, int32_t n_layers, int32_t n_experts,
                          size_t expert_bytes, ec_store **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_store_create: NULL out");
    *out = NULL;
    ec_store *s;
    ec_status st = store_new(b, n_layers, n_experts, expert_bytes, &s, err);
    if (st)
        return st;
    s->owned = 1;
    for (size_t i = 0; i < n_experts_total(s); i++) {
        if ((st = ec_backend_host_alloc(b, expert_bytes, &s->buf[i]))) {
            ec_error_set(err, st,
                         "ec_store: host buffer for layer %zu expert %zu (%zu bytes, %zu "
                         "experts in all): %s",
                         i / (size_t)n_experts, i % (size_t)n_experts, expert_bytes,
                         n_experts_total(s), ec_backend_errmsg(b));
            ec_store_destroy(s);
            return st;
        }
    }
    *out = s;
    return EC_OK;
}

ec_status ec_store_wrap(ec_backend *b, int32_t n_layers, int32_t n_experts, size_t expert_bytes,
                        void *const *buffers, unsigned flags, ec_store **out, ec_error *err)
{
    if (!out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_store_wrap: NULL out");
    *out = NULL;
    if (!buffers)
        return ec_error_set(err, EC_ERR_INVALID, "ec_store_wrap: NULL buffers");
    ec_store *s;
    ec_status st = store_new(b, n_layers, n_experts, expert_bytes, &s, err);
    if (st)
        return st;
    for (size_t i = 0; i < n_experts_total(s); i++) {
        if (!buffers[i]) {
            ec_store_destroy(s);
            return ec_error_set(err, EC_ERR_INVALID, "ec_store_wrap: buffer %zu is NULL", i);
        }
        s->buf[i] = buffers[i];
    }
    if (flags & EC_STORE_REGISTER) {
        for (size_t i = 0; i < n_experts_total(s); i++) {
            if ((st = ec_backend_host_register(b, s->buf[i], expert_bytes))) {
                ec_error_set(err, st, "ec_store_wrap: registering buffer %zu: %s", i,
                             ec_backend_errmsg(b));
                for (size_t j = 0; j < i; j++)
                    ec_backend_host_unregister(b, s->buf[j]);
                ec_store_destroy(s);
                return st;
            }
        }
        s->registered = 1;
    }
    if ((st = ec_store_rehash(s, 1))) {
        ec_error_set(err, st, "%s", s->errmsg);
        ec_store_destroy(s);
        return st;
    }
    *out = s;
    return EC_OK;
}

void ec_store_destroy(ec_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->buf && i < n_experts_total(s); i++) {
        if (!s->buf[i])
            continue;
        if (s->owned)
            ec_backend_host_free(s->backend, s->buf[i]);
        else if (s->registered)
            ec_backend_host_unregister(s->backend, s->buf[i]);
    }
    ec_free(s->buf);
    ec_free(s->checksum);
    ec_free(s);
}

ec_status ec_store_set_format(ec_store *s, ec_dtype dt, int32_t d_model, int32_t d_ff)
{
    if (!s)
        return EC_ERR_INVALID;
    size_t need = ec_expert_bytes(dt, d_model, d_ff);
    if (!need)
        return store_fail(s, EC_ERR_RANGE,
                          "ec_store_set_format: d_model %d x d_ff %d is not a valid %s shape",
                          (int)d_model, (int)d_ff, ec_dtype_name(dt) ? ec_dtype_name(dt) : "?");
    if (need != s->expert_bytes)
        return store_fail(s, EC_ERR_RANGE,
                          "ec_store_set_format: a %s expert of d_model %d x d_ff %d has %zu bytes, "
                          "the store holds %zu per expert",
                          ec_dtype_name(dt), (int)d_model, (int)d_ff, need, s->expert_bytes);
    s->has_format = 1;
    s->dtype = dt;
    s->d_model = d_model;
    s->d_ff = d_ff;
    return EC_OK;
}

int ec_store_format(const ec_store *s, ec_dtype *dt, int32_t *d_model, int32_t *d_ff)
{
    if (!s || !s->has_format)
        return 0;
    if (dt)
        *dt = s->dtype;
    if (d_model)
        *d_model = s->d_model;
    if (d_ff)
        *d_ff = s->d_ff;
    return 1;
}

/* Validates expert i against the format; the message goes to s. */
static ec_status validate_one(ec_store *s, size_t i, const char *path, uint64_t file_byte)
{
    ec_error e = {0};
    ec_status st =
        ec_expert_validate(s->dtype, s->buf[i], s->expert_bytes, s->d_model, s->d_ff, &e);
    if (!st)
        return EC_OK;
    if (path)
        return store_fail(s, st, "%s: layer %zu expert %zu (file byte %llu): %s", path,
                          i / (size_t)s->n_experts, i % (size_t)s->n_experts,
                          (unsigned long long)file_byte, e.message);
    return store_fail(s, st, "store: layer %zu expert %zu: %s", i / (size_t)s->n_experts,
                      i % (size_t)s->n_experts, e.message);
}

ec_status ec_store_validate(ec_store *s)
{
    if (!s)
        return EC_ERR_INVALID;
    if (!s->has_format)
        return store_fail(s, EC_ERR_STATE, "ec_store_validate: the store has no format");
    for (size_t i = 0; i < n_experts_total(s); i++) {
        ec_status st = validate_one(s, i, NULL, 0);
        if (st)
            return st;
    }
    return EC_OK;
}

/* ---- parallel work over experts ------------------------------------------------ */

typedef struct work {
    ec_store *s;
    uint64_t seed;
    int fill;        /* 1: synthesise then hash; 0: hash only */
    size_t first, n; /* experts [first, first + n) */
} work;

static void synth_expert(unsigned char *p, size_t bytes, uint64_t seed, size_t index)
{
    uint64_t x = seed ^ (0xd1b54a32d192ed03ull * (index + 1));
    ec_rng r;
    ec_rng_seed(&r, ec_splitmix64(&x));
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t v = ec_rng_next(&r);
        /* Four halves: keep sign and mantissa, exponent 11 -> [2^-4, 2^-3). */
        v = (v & 0x83ff83ff83ff83ffull) | 0x2c002c002c002c00ull;
        memcpy(p + i, &v, 8);
    }
    uint64_t v = ec_rng_next(&r);
    for (; i < bytes; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

/* q4 blocks: a scale in [1/128, 1/64) (fp16 exponent 8, random mantissa)
 * and 16 random bytes of quants. */
static void synth_expert_q4(unsigned char *p, size_t bytes, uint64_t seed, size_t index)
{
    uint64_t x = seed ^ (0xd1b54a32d192ed03ull * (index + 1));
    ec_rng r;
    ec_rng_seed(&r, ec_splitmix64(&x));
    for (size_t i = 0; i + EC_Q4_BLOCK_BYTES <= bytes; i += EC_Q4_BLOCK_BYTES) {
        uint64_t a = ec_rng_next(&r), b = ec_rng_next(&r);
        uint16_t d = (uint16_t)(0x2000u | (a & 0x3ffu));
        p[i] = (unsigned char)(d & 0xff);
        p[i + 1] = (unsigned char)(d >> 8);
        a >>= 16;
        memcpy(p + i + 2, &a, 6); /* 6 + 8 + 2 = 16 random bytes */
        memcpy(p + i + 8, &b, 8);
        b = ec_rng_next(&r);
        memcpy(p + i + 16, &b, 2);
    }
}

static void *work_main(void *arg)
{
    work *w = arg;
    for (size_t i = w->first; i < w->first + w->n; i++) {
        if (w->fill && w->s->has_format && w->s->dtype == EC_DTYPE_Q4)
            synth_expert_q4(w->s->buf[i], w->s->expert_bytes, w->seed, i);
        else if (w->fill)
            synth_expert(w->s->buf[i], w->s->expert_bytes, w->seed, i);
        w->s->checksum[i] = ec_checksum64(w->s->buf[i], w->s->expert_bytes);
    }
    return NULL;
}

static ec_status run_work(ec_store *s, int fill, uint64_t seed, int32_t threads)
{
    size_t total = n_experts_total(s);
    size_t nt = threads < 1 ? 1 : (size_t)threads;
    if (nt > total)
        nt = total;
    if (nt > 64)
        nt = 64;
    work w[64];
    pthread_t th[64];
    size_t started = 0;
    for (size_t t = 0; t < nt; t++) {
        size_t a = total * t / nt, z = total * (t + 1) / nt;
        w[t] = (work){.s = s, .seed = seed, .fill = fill, .first = a, .n = z - a};
    }
    for (size_t t = 1; t < nt; t++, started++)
        if (pthread_create(&th[t], NULL, work_main, &w[t]) != 0)
            break;
    work_main(&w[0]);
    for (size_t t = 1; t <= started; t++)
        pthread_join(th[t], NULL);
    for (size_t t = started + 1; t < nt; t++) /* threads that did not start */
        work_main(&w[t]);
    return EC_OK;
}

ec_status ec_store_fill_synthetic(ec_store *s, uint64_t seed, int32_t threads)
{
    if (!s)
        return EC_ERR_INVALID;
    return run_work(s, 1, seed, threads);
}

ec_status ec_store_rehash(ec_store *s, int32_t threads)
{
    if (!s)
        return EC_ERR_INVALID;
    return run_work(s, 0, 0, threads);
}

ec_status ec_store_load_file(ec_store *s, const char *path, uint64_t offset)
{
    if (!s || !path)
        return s ? store_fail(s, EC_ERR_INVALID, "ec_store_load_file: NULL path")
                 : EC_ERR_INVALID;
    FILE *f = fopen(path, "rb");
    if (!f)
        return store_fail(s, EC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (offset > (uint64_t)INT64_MAX || fseeko(f, (off_t)offset, SEEK_SET) != 0) {
        fclose(f);
        return store_fail(s, EC_ERR_IO, "%s: cannot seek to byte %llu", path,
                          (unsigned long long)offset);
    }
    for (size_t i = 0; i < n_experts_total(s); i++) {
        size_t got = fread(s->buf[i], 1, s->expert_bytes, f);
        if (got != s->expert_bytes) {
            int bad = ferror(f);
            fclose(f);
            return store_fail(s, EC_ERR_IO,
                              "%s: %s at layer %zu expert %zu (byte %llu): need %zu bytes "
                              "per expert, %d x %d experts",
                              path, bad ? "read error" : "file too short",
                              i / (size_t)s->n_experts, i % (size_t)s->n_experts,
                              (unsigned long long)(offset + i * s->expert_bytes + got),
                              s->expert_bytes, (int)s->n_layers, (int)s->n_experts);
        }
        ec_status st;
        if (s->has_format && (st = validate_one(s, i, path, offset + i * s->expert_bytes))) {
            fclose(f);
            return st;
        }
    }
    fclose(f);
    return ec_store_rehash(s, 1);
}

static int in_range(const ec_store *s, int32_t layer, int32_t expert)
{
    return s && layer >= 0 && layer < s->n_layers && expert >= 0 && expert < s->n_experts;
}

void *ec_store_expert(const ec_store *s, int32_t layer, int32_t expert)
{
    return in_range(s, layer, expert) ? s->buf[(size_t)layer * (size_t)s->n_experts + (size_t)expert]
                                      : NULL;
}

uint64_t ec_store_checksum(const ec_store *s, int32_t layer, int32_t expert)
{
    return in_range(s, layer, expert)
               ? s->checksum[(size_t)layer * (size_t)s->n_experts + (size_t)expert]
               : 0;
}

size_t ec_store_expert_bytes(const ec_store *s) { return s->expert_bytes; }
int32_t ec_store_n_layers(const ec_store *s) { return s->n_layers; }
int32_t ec_store_n_experts(const ec_store *s) { return s->n_experts; }
ec_backend *ec_store_backend(const ec_store *s) { return s->backend; }
const char *ec_store_errmsg(const ec_store *s) { return s->errmsg; }
