/* expertcast demo: the bundled trace through the loader, the simulator and
 * the seed's tools. One file per part; cmd_demo.c runs them in order. */
#ifndef EC_CLI_DEMO_H
#define EC_CLI_DEMO_H

#include "cli.h"

typedef struct demo_ctx {
    const char *trace_path;  /* as printed in the commands shown */
    const ec_trace *t;
    const char *outdir;      /* exists; every file is written into it atomically */
    const char *backend;     /* replay backend: auto, cuda or cpu */
    const char *model;       /* simulator model profile */
    const char *hardware;    /* simulator hardware profiles, comma-separated */
    int32_t cache;           /* expert slots per layer, in [k, experts] */
    long long tokens;        /* tokens of the first sequence replayed at most */
    int seed_tools;          /* 1: the seed tools' full reports */
    int synthetic;           /* 1: the trace is the bundled synthetic sample */
} demo_ctx;

/* Part 1: the first sequence through the real loader, every policy (predict
 * and gated fitted on the other sequences; left out when there is none). */
int demo_replay(const demo_ctx *d);
/* Part 2: the whole trace through the simulator on each hardware profile,
 * every policy (predict and gated fitted held out, left out with one
 * sequence). Skipped with a note when the model profile's shape differs
 * from the trace's. */
int demo_simulate(const demo_ctx *d);
/* Loads part 2's model and hardware profiles once, so that a bad name
 * fails before anything runs. Returns CLI_OK or an exit code after the
 * message. */
int demo_check_profiles(const demo_ctx *d);
/* Part 3: extract -> rules create -> rules evaluate, training on the first
 * sequence and testing on the second (or the two halves of one). */
int demo_seed(const demo_ctx *d);

/* "+1.234": what `policy` saves against `ref` (ref - policy); with share
 * set, "+1.234 (+56%)" adds that as a share of ref ("-" when ref is 0). */
void demo_saved(char *buf, size_t size, double ref, double policy, int share);

#endif
