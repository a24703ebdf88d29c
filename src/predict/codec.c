/* base64 of little-endian numeric arrays, and number fields, for model files. */
#include "codec.h"
#include "../core/json.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static cJSON *encode(const uint8_t *b, size_t n)
{
    size_t len = 4 * ((n + 2) / 3);
    char *s = ec_malloc(len + 1);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)b[i] << 16;
        if (i + 1 < n)
            x |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n)
            x |= b[i + 2];
        s[o++] = B64[(x >> 18) & 63];
        s[o++] = B64[(x >> 12) & 63];
        s[o++] = i + 1 < n ? B64[(x >> 6) & 63] : '=';
        s[o++] = i + 2 < n ? B64[x & 63] : '=';
    }
    s[o] = '\0';
    cJSON *item = cJSON_CreateString(s);
    ec_free(s);
    return item;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Decodes the string into exactly n bytes; 0 on success. */
static int decode(const char *s, uint8_t *b, size_t n)
{
    size_t len = strlen(s);
    if (len != 4 * ((n + 2) / 3))
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t x = 0;
        for (int j = 0; j < 4; j++) {
            int v = s[i + j] == '=' ? 0 : b64_value(s[i + j]);
            if (v < 0)
                return -1;
            x = (x << 6) | (uint32_t)v;
        }
        for (int j = 0; j < 3 && o < n; j++)
            b[o++] = (uint8_t)(x >> (16 - 8 * j));
    }
    return 0;
}

cJSON *ec_json_b64_f32(const float *v, size_t n)
{
    uint8_t *b = ec_malloc(EC_MAX(n, 1) * 4);
    if (!b)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int j = 0; j < 4; j++)
            b[4 * i + (size_t)j] = (uint8_t)(u >> (8 * j));
    }
    cJSON *item = encode(b, n * 4);
    ec_free(b);
    return item;
}

cJSON *ec_json_b64_u64(const uint64_t *v, size_t n)
{
    uint8_t *b = ec_malloc(EC_MAX(n, 1) * 8);
    if (!b)
        return NULL;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 8; j++)
            b[8 * i + (size_t)j] = (uint8_t)(v[i] >> (8 * j));
    cJSON *item = encode(b, n * 8);
    ec_free(b);
    return item;
}

ec_status ec_json_b64_check(const cJSON *item, size_t nbytes, const char *field, ec_error *err)
{
    if (!cJSON_IsString(item))
        return ec_error_set(err, EC_ERR_PARSE, "field 'model.%s': expected a base64 string", field);
    if (nbytes > SIZE_MAX / 2 || strlen(item->valuestring) != 4 * ((nbytes + 2) / 3))
        return ec_error_set(err, EC_ERR_PARSE,
                            "field 'model.%s': not base64 of %zu bytes", field, nbytes);
    return EC_OK;
}

static ec_status read_bytes(const cJSON *item, uint8_t **out, size_t nbytes, const char *field,
                            ec_error *err)
{
    if (!cJSON_IsString(item))
        return ec_error_set(err, EC_ERR_PARSE, "field 'model.%s': expected a base64 string", field);
    uint8_t *b = ec_malloc(EC_MAX(nbytes, 1));
    if (!b)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    if (decode(item->valuestring, b, nbytes)) {
        ec_free(b);
        return ec_error_set(err, EC_ERR_PARSE,
                            "field 'model.%s': not base64 of %zu bytes", field, nbytes);
    }
    *out = b;
    return EC_OK;
}

ec_status ec_json_read_b64_f32(const cJSON *item, float *v, size_t n, const char *field,
                               ec_error *err)
{
    uint8_t *b;
    ec_status s = read_bytes(item, &b, n * 4, field, err);
    if (s)
        return s;
    for (size_t i = 0; i < n && !s; i++) {
        uint32_t u = 0;
        for (int j = 0; j < 4; j++)
            u |= (uint32_t)b[4 * i + (size_t)j] << (8 * j);
        memcpy(&v[i], &u, 4);
        if (!isfinite(v[i]))
            s = ec_error_set(err, EC_ERR_PARSE, "field 'model.%s': value %zu is not finite", field, i);
    }
    ec_free(b);
    return s;
}

ec_status ec_json_read_b64_u64(const cJSON *item, uint64_t *v, size_t n, const char *field,
                               ec_error *err)
{
    uint8_t *b;
    ec_status s = read_bytes(item, &b, n * 8, field, err);
    if (s)
        return s;
    for (size_t i = 0; i < n; i++) {
        v[i] = 0;
        for (int j = 0; j < 8; j++)
            v[i] |= (uint64_t)b[8 * i + (size_t)j] << (8 * j);
    }
    ec_free(b);
    return EC_OK;
}

ec_status ec_json_read_int(const cJSON *obj, const char *field, long long lo, long long hi,
                           long long *out, ec_error *err)
{
    double d;
    ec_status s = ec_json_get_number(obj, field, (double)lo, (double)hi, true, &d, NULL,
                                     "model.", err);
    if (s)
        return s;
    *out = (long long)d;
    return EC_OK;
}
