/* Helpers shared by the Criterion tests. */
#ifndef EC_TESTUTIL_H
#define EC_TESTUTIL_H

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stddef.h>

#include "expertcast.h"

/* Path of a file under ../shared/data, or NULL (and a visible skip
 * message from the caller) when ../shared is absent. */
const char *tu_shared(const char *rel);

/* Skips the current test with a message when ../shared/data/rel is absent;
 * otherwise evaluates to its path. */
#define TU_SHARED_OR_SKIP(rel)                                                                     \
    ({                                                                                             \
        const char *p_ = tu_shared(rel);                                                           \
        if (!p_)                                                                                   \
            cr_skip_test("../shared/data/%s is absent (fresh clone): skipped", rel);               \
        p_;                                                                                        \
    })

/* A fresh empty directory under /tmp; the path is valid until exit. */
const char *tu_tmpdir(void);

/* Writes text to dir/name and returns the path (static buffer rotation). */
const char *tu_write(const char *dir, const char *name, const char *text);

/* How many times needle occurs in s, without overlaps. */
int tu_count(const char *s, const char *needle);

/* Reads a whole file (NUL-terminated, malloc'd) or NULL. */
char *tu_read(const char *path, size_t *len);

/* Runs the CLI with a shell command line (args appended to the binary path).
 * Captures stdout and stderr (malloc'd, may be NULL). Returns exit status. */
int tu_cli(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* sha256 hex digest of a file, via sha256sum. Returns 0 on success. */
int tu_sha256(const char *path, char hex[65]);

/* A counting allocator that fails the n-th allocation (0 = never). */
typedef struct tu_alloc_state {
    size_t calls;      /* allocations attempted */
    size_t fail_at;    /* fail the allocation with this 1-based index */
    long live;         /* outstanding blocks */
} tu_alloc_state;
void tu_alloc_install(tu_alloc_state *st);
void tu_alloc_uninstall(void);

/* Path of a shipped profile, data/profiles/NAME.json (rotating buffers). */
const char *tu_profile_path(const char *name);

/* Runs one simulation of policy k and asserts it succeeded. */
ec_sim_result tu_sim_run(ec_sim *s, ec_policy_kind k, int32_t per_layer, int32_t global,
                         int32_t horizon, const ec_sim_timing *tm);

/* A host-side gate for stream ordering tests: a stream task blocks in
 * tu_gate_wait (pass it to ec_stream_host_fn) until tu_gate_open. */
typedef struct tu_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
} tu_gate;
void tu_gate_init(tu_gate *g);
void tu_gate_wait(void *gate);
void tu_gate_open(tu_gate *g);

void tu_sleep_ms(int ms);

#endif
