/* expertcast replay and demo: the real loader over a recorded trace, one
 * run per policy, and how the runs are reported. */
#ifndef EC_CLI_REPLAY_RUN_H
#define EC_CLI_REPLAY_RUN_H

#include "cli.h"
#include "expertcast/replay.h"

/* The settings of a replay, as `expertcast replay` takes them. */
typedef struct replay_args {
    const char *backend;   /* cpu, cuda or auto */
    const char *predictor; /* name fitted for predict and gated */
    const char *record;    /* raw JSONL of what the first policy's loader observed, or NULL */
    int32_t cache_experts, cache_global; /* slots per layer, or one pool (then per layer 0) */
    int32_t horizon, window;
    long long expert_bytes;
    double attn_us, ffn_us; /* compute stand-ins (us per layer, per expert) */
    double transfer_ms;     /* gated's cost of one copy; 0: the measured copy time */
    double host_ffn_us;     /* hybrid: host time of one expert run on the host (0: none) */
    long long tokens, warmup, replay_seqs;
    int verify;
} replay_args;

/* The defaults documented in `expertcast replay --help`. */
void replay_args_default(replay_args *a);

typedef struct replay_row {
    ec_policy_kind kind;
    ec_replay_result r;
} replay_row;

typedef struct replay_report {
    const replay_args *o;
    const ec_trace *t;
    char backend[32], device[256]; /* the backend the runs used, and its device */
    const char *predictor_split;   /* how the predictor was fitted (static text) */
    double copy_ms;                /* one expert host -> device, median of 5 (ms) */
    size_t n_seqs;                 /* sequences replayed (the first ones) */
    replay_row *rows;              /* [n], owned: replay_report_free */
    int n;
} replay_report;

/*
 * Replays the first a->replay_seqs sequences of t once per policy kinds[n],
 * each through a new loader on a->backend: auto takes cuda when a device
 * exists, else cpu with a message on stderr; a cuda run out of device
 * memory is redone on cpu with a warning. predict and gated use a->predictor
 * fitted on the sequences not replayed (in-sample when none is left).
 * Fills *rep (borrows a and t); returns CLI_OK, or an exit code after
 * printing the error.
 */
int replay_execute(const replay_args *a, const ec_trace *t, const ec_policy_kind *kinds, int n,
                   replay_report *rep);
void replay_report_free(replay_report *rep);

/* The replay command's table (stdout), and its JSON (for cli_write_file). */
void replay_print_table(FILE *f, const replay_report *rep);
ec_status replay_write_json(FILE *f, void *rep, ec_error *err);

/* Value of a loader counter per measured token (0 with no token). */
double replay_per_token(int64_t v, size_t tokens);

#endif
