/* libFuzzer driver: built once per target with -DFUZZ_TARGET=<function>. */
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>

#define STR_(x) #x
#define STR(x) STR_(x)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *bad = FUZZ_TARGET(data, size);
    if (bad) {
        fprintf(stderr, "%s: property violated: %s\n", STR(FUZZ_TARGET), bad);
        abort();
    }
    return 0;
}
