/* fp16 conversions and the CPU reference of the expert FFN (SwiGLU). */
#include "backend_impl.h"

#include <math.h>
#include <string.h>

uint16_t ec_half_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mant = x & 0x7fffffu;
    int32_t exp = (int32_t)((x >> 23) & 0xffu);
    if (exp == 0xff) /* inf stays inf, NaN stays a quiet NaN */
        return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0u));
    int32_t e = exp - 127 + 15;
    if (e >= 0x1f)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* half subnormal: value = m * 2^-24 */
        if (e < -10)
            return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t m = mant >> shift, rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (m & 1u)))
            m++;
        return (uint16_t)(sign | m);
    }
    uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is the correct rounding (up to inf) */
    return (uint16_t)h;
}

float ec_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
    if (exp == 0) {
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        x = sign | 0x7f800000u | (mant << 13);
    else
        x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

size_t ec_ffn_bytes(int32_t d_model, int32_t d_ff)
{
    return 3 * (size_t)d_model * (size_t)d_ff * sizeof(uint16_t);
}

void ec_ffn_reference(const uint16_t *w, const uint16_t *x, float *out, int32_t d_model,
                      int32_t d_ff, float *scratch)
{
    size_t d = (size_t)d_model, ff = (size_t)d_ff;
    const uint16_t *w1 = w, *w3 = w + ff * d, *w2 = w + 2 * ff * d;
    for (size_t r = 0; r < ff; r++) {
        double a = 0, b = 0;
        for (size_t j = 0; j < d; j++) {
            double xj = ec_half_to_float(x[j]);
            a += ec_half_to_float(w1[r * d + j]) * xj;
            b += ec_half_to_float(w3[r * d + j]) * xj;
        }
        scratch[r] = (float)(a / (1.0 + exp(-a)) * b); /* silu(a) * b */
    }
    for (size_t i = 0; i < d; i++) {
        double acc = 0;
        for (size_t r = 0; r < ff; r++)
            acc += ec_half_to_float(w2[i * ff + r]) * (double)scratch[r];
        out[i] = (float)acc;
    }
}
