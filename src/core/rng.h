/* A small deterministic PRNG (splitmix64 seeding, xoshiro256** stream). */
#ifndef EC_RNG_H
#define EC_RNG_H

#include <stdint.h>

typedef struct ec_rng {
    uint64_t s[4];
} ec_rng;

static inline uint64_t ec_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void ec_rng_seed(ec_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = ec_splitmix64(&seed);
}

static inline uint64_t ec_rng_next(ec_rng *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform double in [0, 1). */
static inline double ec_rng_uniform(ec_rng *r) { return (double)(ec_rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n). */
static inline uint32_t ec_rng_below(ec_rng *r, uint32_t n)
{
    return (uint32_t)(((ec_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

#endif
