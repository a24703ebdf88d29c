/* ec_checksum64: the host side of the checksum every backend computes. */
#include "backend_impl.h"

#include <string.h>

#define EC_CHECKSUM_SALT 0x9e3779b97f4a7c15ull

uint64_t ec_checksum64(const void *p, size_t bytes)
{
    const unsigned char *c = p;
    size_t words = bytes / 8;
    uint64_t sum = 0;
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, c + i * 8, 8); /* little-endian hosts only (x86-64, aarch64) */
        sum += ec_fmix64(w ^ ((uint64_t)i * EC_CHECKSUM_SALT));
    }
    size_t tail = bytes % 8;
    if (tail) {
        uint64_t w = 0;
        memcpy(&w, c + words * 8, tail);
        sum += ec_fmix64(w ^ ((uint64_t)words * EC_CHECKSUM_SALT));
    }
    return ec_fmix64(sum ^ (uint64_t)bytes);
}
