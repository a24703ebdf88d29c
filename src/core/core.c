/* Status names, the allocator hook and error reports. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *sys_malloc(size_t n, void *ctx) { (void)ctx; return malloc(n); }
static void *sys_realloc(void *p, size_t n, void *ctx) { (void)ctx; return realloc(p, n); }
static void sys_free(void *p, void *ctx) { (void)ctx; free(p); }

static ec_allocator g_alloc = {sys_malloc, sys_realloc, sys_free, NULL};

/* cJSON's hooks take no context: route them through the global hook. */
static void *cjson_malloc(size_t n) { return ec_malloc(n); }
static void cjson_free(void *p) { ec_free(p); }

void ec_set_allocator(const ec_allocator *a)
{
    if (a && a->malloc_fn && a->realloc_fn && a->free_fn)
        g_alloc = *a;
    else
        g_alloc = (ec_allocator){sys_malloc, sys_realloc, sys_free, NULL};
    cJSON_Hooks hooks = {cjson_malloc, cjson_free};
    cJSON_InitHooks(&hooks);
}

static _Atomic size_t g_failures;

size_t ec_alloc_failures(void) { return g_failures; }

void *ec_malloc(size_t n)
{
    void *p = g_alloc.malloc_fn(n ? n : 1, g_alloc.ctx);
    if (!p)
        g_failures++;
    return p;
}

void *ec_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = ec_malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *ec_realloc(void *p, size_t n)
{
    void *q = g_alloc.realloc_fn(p, n ? n : 1, g_alloc.ctx);
    if (!q)
        g_failures++;
    return q;
}

void ec_free(void *p)
{
    if (p)
        g_alloc.free_fn(p, g_alloc.ctx);
}

char *ec_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ec_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

ec_status ec_grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return EC_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return EC_ERR_NOMEM;
        ncap *= 2;
    }
    void *nb = ec_realloc(*buf, ncap * elem);
    if (!nb)
        return EC_ERR_NOMEM;
    *buf = nb;
    *cap = ncap;
    return EC_OK;
}

const char *ec_status_str(ec_status s)
{
    switch (s) {
    case EC_OK: return "ok";
    case EC_ERR_INVALID: return "invalid argument";
    case EC_ERR_NOMEM: return "out of memory";
    case EC_ERR_IO: return "input/output error";
    case EC_ERR_PARSE: return "malformed input";
    case EC_ERR_RANGE: return "value out of range";
    case EC_ERR_STATE: return "invalid state";
    case EC_ERR_UNSUPPORTED: return "not supported by this build";
    case EC_ERR_NO_DEVICE: return "no usable GPU";
    case EC_ERR_CUDA: return "CUDA error";
    case EC_ERR_NOT_FOUND: return "not found";
    case EC_ERR_BUSY: return "all candidate slots are in use";
    case EC_ERR_NO_DATA: return "no usable data";
    }
    return "unknown status";
}

const char *ec_version(void) { return EC_VERSION_STRING; }

ec_status ec_error_vset(ec_error *err, ec_status status, const char *fmt, va_list ap)
{
    if (err) {
        err->status = status;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        /* one line whatever the input held: a key or path with a newline
         * or escape in it cannot break the caller's output */
        for (char *c = err->message; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    return status;
}

ec_status ec_error_set(ec_error *err, ec_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ec_error_vset(err, status, fmt, ap);
    va_end(ap);
    return status;
}

void ec_error_clear(ec_error *err)
{
    if (err) {
        err->status = EC_OK;
        err->message[0] = '\0';
    }
}

/* ---- memory limit -------------------------------------------------------- */

static size_t g_limit;
static int g_limit_set;

void ec_set_memory_limit(size_t bytes)
{
    g_limit = bytes;
    g_limit_set = bytes != (size_t)-1;
}

ec_status ec_parse_size(const char *text, size_t *out)
{
    if (!text || !out || *text < '0' || *text > '9')
        return EC_ERR_INVALID;
    size_t v = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (SIZE_MAX - 9) / 10)
            return EC_ERR_INVALID;
        v = v * 10 + (size_t)(*p - '0');
    }
    unsigned shift = 0;
    if (*p == 'K' || *p == 'k')
        shift = 10;
    else if (*p == 'M' || *p == 'm')
        shift = 20;
    else if (*p == 'G' || *p == 'g')
        shift = 30;
    if (shift)
        p++;
    if (*p || (shift && v > (SIZE_MAX >> shift)))
        return EC_ERR_INVALID;
    *out = v << shift;
    return EC_OK;
}

size_t ec_memory_limit(void)
{
    size_t v = EC_MEMORY_LIMIT_DEFAULT;
    if (g_limit_set)
        v = g_limit;
    else if (ec_parse_size(getenv("EXPERTCAST_MAX_MEMORY"), &v) != EC_OK)
        v = EC_MEMORY_LIMIT_DEFAULT;
    return v ? v : SIZE_MAX;
}

bool ec_memory_limit_explicit(void)
{
    size_t v;
    return g_limit_set || ec_parse_size(getenv("EXPERTCAST_MAX_MEMORY"), &v) == EC_OK;
}

size_t ec_mul_size(size_t a, size_t b)
{
    return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

ec_status ec_memory_check(size_t need, const char *what, ec_error *err)
{
    size_t limit = ec_memory_limit();
    if (need <= limit)
        return EC_OK;
    char n[40], l[40];
    if (need == SIZE_MAX)
        snprintf(n, sizeof n, "more than the address space");
    else
        ec_fmt_bytes(need, n, sizeof n);
    ec_fmt_bytes(limit, l, sizeof l);
    return ec_error_set(err, EC_ERR_RANGE,
                        "%s needs %s, above the memory limit of %s (set EXPERTCAST_MAX_MEMORY "
                        "to change it)",
                        what, n, l);
}

const char *ec_one_line(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; s[n] && n + 1 < cap; n++)
        buf[n] = s[n] >= 0x20 && s[n] < 0x7f ? s[n] : '?';
    buf[n] = '\0';
    return buf;
}

const char *ec_fmt_bytes(size_t n, char *buf, size_t cap)
{
    if (n >= (size_t)1 << 30)
        snprintf(buf, cap, "%.1f GiB", (double)n / (1 << 30));
    else if (n >= (size_t)1 << 20)
        snprintf(buf, cap, "%.1f MiB", (double)n / (1 << 20));
    else
        snprintf(buf, cap, "%zu bytes", n);
    return buf;
}
