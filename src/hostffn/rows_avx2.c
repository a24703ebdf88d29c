/*
 * AVX2 + FMA + F16C row kernels for x86-64, compiled for those extensions
 * function by function (target attributes), so the library itself stays
 * built for the baseline CPU; ec_rows_avx2 hands them out only when the
 * running CPU has all three. Tokens are processed in tiles of up to 4 per
 * pass over a row (the row stays in L1 between tiles).
 *
 * q4: per group the 32 quants are widened to floats (q - 8, exact), dotted
 * with the token's 32 inputs, and the group's sum is scaled by d into the
 * token's accumulator: y += d * sum((q - 8) * x).
 */
#include "internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define TILE 4
/* Token loops fully unrolled, so that the accumulators live in registers. */
#define UNROLL _Pragma("GCC unroll 4")

static inline AVX2_FN float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline AVX2_FN float half1(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* res[t] = row · x_t for t < NT (NT a constant after inlining). */
static inline __attribute__((always_inline)) AVX2_FN void
f16_tile(const uint8_t *row, int32_t n, const float *x, size_t xs, float *res, const int NT)
{
    __m256 a0[TILE], a1[TILE];
    UNROLL for (int t = 0; t < NT; t++)
        a0[t] = a1[t] = _mm256_setzero_ps();
    int32_t c = 0;
    for (; c + 16 <= n; c += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)c)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)c + 16)));
        UNROLL for (int t = 0; t < NT; t++) {
            const float *xt = x + (size_t)t * xs + c;
            a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), a0[t]);
            a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + 8), a1[t]);
        }
    }
    if (c + 8 <= n) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)c)));
        UNROLL for (int t = 0; t < NT; t++)
            a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + (size_t)t * xs + c), a0[t]);
        c += 8;
    }
    UNROLL for (int t = 0; t < NT; t++)
        res[t] = hsum256(_mm256_add_ps(a0[t], a1[t]));
    for (; c < n; c++) {
        float w = half1(row + 2 * (size_t)c);
        UNROLL for (int t = 0; t < NT; t++)
            res[t] += w * x[(size_t)t * xs + c];
    }
}

static inline __attribute__((always_inline)) AVX2_FN void
q4_tile(const uint8_t *blk, int32_t groups, const float *x, size_t xs, float *res, const int NT)
{
    const __m128i m4 = _mm_set1_epi8(15), m8 = _mm_set1_epi8(8);
    __m256 acc[TILE];
    UNROLL for (int t = 0; t < NT; t++)
        acc[t] = _mm256_setzero_ps();
    for (int32_t g = 0; g < groups; g++, blk += EC_Q4_BLOCK_BYTES) {
        uint16_t hd;
        memcpy(&hd, blk, 2);
        __m256 d = _mm256_cvtph_ps(_mm_set1_epi16((short)hd));
        __m128i qs = _mm_loadu_si128((const __m128i *)(blk + 2));
        __m128i lo = _mm_sub_epi8(_mm_and_si128(qs, m4), m8);                     /* 0..15 */
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), m8); /* 16..31 */
        __m256 q0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
        __m256 q1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(lo, lo)));
        __m256 q2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
        __m256 q3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(hi, hi)));
        UNROLL for (int t = 0; t < NT; t++) {
            const float *xt = x + (size_t)t * xs + (size_t)g * EC_Q4_GROUP;
            __m256 v = _mm256_mul_ps(q0, _mm256_loadu_ps(xt));
            v = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xt + 8), v);
            v = _mm256_fmadd_ps(q2, _mm256_loadu_ps(xt + 16), v);
            v = _mm256_fmadd_ps(q3, _mm256_loadu_ps(xt + 24), v);
            acc[t] = _mm256_fmadd_ps(v, d, acc[t]);
        }
    }
    UNROLL for (int t = 0; t < NT; t++)
        res[t] = hsum256(acc[t]);
}

#define DISPATCH(tile, ...)                                                                        \
    switch (k) {                                                                                   \
    case 1: tile(__VA_ARGS__, 1); break;                                                           \
    case 2: tile(__VA_ARGS__, 2); break;                                                           \
    case 3: tile(__VA_ARGS__, 3); break;                                                           \
    default: tile(__VA_ARGS__, 4); break;                                                          \
    }

static AVX2_FN void rows_f16(const uint8_t *mat, int32_t n_cols, int32_t r0, int32_t r1,
                             const float *x, size_t xs, int32_t nt, float *out, size_t os)
{
    float res[TILE];
    for (int32_t r = r0; r < r1; r++) {
        const uint8_t *row = mat + (size_t)r * (size_t)n_cols * 2;
        for (int32_t t0 = 0; t0 < nt; t0 += TILE) {
            int k = EC_MIN(TILE, nt - t0);
            DISPATCH(f16_tile, row, n_cols, x + (size_t)t0 * xs, xs, res)
            for (int t = 0; t < k; t++)
                out[(size_t)(t0 + t) * os + (size_t)(r - r0)] = res[t];
        }
    }
}

static AVX2_FN void rows_q4(const uint8_t *mat, int32_t n_cols, int32_t r0, int32_t r1,
                            const float *x, size_t xs, int32_t nt, float *out, size_t os)
{
    size_t row_bytes = ec_row_bytes(EC_DTYPE_Q4, n_cols);
    float res[TILE];
    for (int32_t r = r0; r < r1; r++) {
        const uint8_t *row = mat + (size_t)r * row_bytes;
        for (int32_t t0 = 0; t0 < nt; t0 += TILE) {
            int k = EC_MIN(TILE, nt - t0);
            DISPATCH(q4_tile, row, n_cols / EC_Q4_GROUP, x + (size_t)t0 * xs, xs, res)
            for (int t = 0; t < k; t++)
                out[(size_t)(t0 + t) * os + (size_t)(r - r0)] = res[t];
        }
    }
}

static const ec_rows_kernels avx2 = {.isa = "avx2", .f16 = rows_f16, .q4 = rows_q4};

/* AVX2, FMA and F16C from CPUID, and YMM state enabled by the OS (XGETBV). */
static int cpu_has_avx2_fma_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(fma && osxsave && avx && f16c))
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) /* XMM and YMM state */
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 5) & 1; /* AVX2 */
}

const ec_rows_kernels *ec_rows_avx2(void)
{
    return cpu_has_avx2_fma_f16c() ? &avx2 : NULL;
}

#else

const ec_rows_kernels *ec_rows_avx2(void) { return NULL; }

#endif
