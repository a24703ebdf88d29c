/* expertcast simulate: the runs it makes and how it reports them. */
#ifndef EC_CLI_SIM_REPORT_H
#define EC_CLI_SIM_REPORT_H

#include "cli.h"
#include "expertcast/sim.h"

/* One result row with where it stands against lru, the oracle and the
 * analytic bound at the same cache size (ec_sim_compare). */
typedef struct sim_row {
    ec_sim_result r;
    ec_sim_comparison c;
    int what_if;             /* 1: replayed with what-if guesses of recall what_if_recall */
    double what_if_recall;
    int32_t what_if_evict;   /* >0: gated/hybrid replayed with what-if eviction over this many
                                tokens (EC_WHATIF_EVICT_ALL: the whole trace) */
} sim_row;

typedef struct sim_report {
    const ec_model_profile *model;
    const ec_hw_profile *hw;
    const ec_sim_timing *timing;
    const char *predictor_note; /* how the predictor was obtained */
    int64_t n_tokens, n_steps, n_skipped;
    size_t n_seqs;
    int32_t batch;
    sim_row *rows;
    size_t n_rows;
    /* what-if runs (--what-if-recall): guesses drawn from the trace's future */
    int n_what_if;               /* recalls replayed (0: none) */
    const double *what_if_recalls;
    int32_t what_if_ahead;       /* guesses for 1..ahead layers ahead */
    uint64_t what_if_seed;
    sim_row *base_rows;          /* the same runs without guesses (not reported as rows) */
    size_t n_base_rows;
} sim_report;

/* Policies the simulator knows: the values of ec_policy_kind. */
#define SIM_N_POLICIES EC_POLICY_N_KINDS

/*
 * Loads the profiles named by model and hardware (ec_profile_find: a file
 * path, or a name in $EXPERTCAST_PROFILES or profiles/ of the data
 * directories). mpath[PATH_MAX] receives the model file's path (for
 * messages). Returns CLI_OK, or an exit code after printing the error
 * (a usage error naming cmd for unknown names).
 */
/* The file a profile name or path resolves to (PATH_MAX bytes), as
 * sim_load_profiles finds it; 0 when there is none. */
int sim_profile_path(const char *name, int model, char *path);
int sim_load_profiles(const char *cmd, const char *model, const char *hardware,
                      ec_model_profile *m, ec_hw_profile *h, char *mpath);

/* Fits predictor `name` for each batch of sequences on the others only
 * (ec_sim_fit_heldout) and says so in note[size]. Returns CLI_OK, or an
 * exit code after printing the error. */
int sim_fit_heldout(ec_sim *sim, const char *name, int32_t batch, size_t n_seqs, char *note,
                    size_t size);

/* What to run: every cache size x the wanted policies (predicting ones per
 * horizon), on one simulator whose predictor is already set. */
typedef struct sim_plan {
    ec_sim *sim;
    const ec_sim_timing *tm;
    const int *want;          /* [SIM_N_POLICIES] 1 = report this policy */
    const int32_t *caches;    /* [n_caches] slots per layer, or global slots */
    int n_caches;
    const int32_t *horizons;  /* [n_horizons] */
    int n_horizons;
    int global;               /* caches are global pools */
    int sized;                /* ... partitioned per layer (ec_sim_config.cache_sized) */
    int32_t prefetch_k;       /* 0: the step's union */
    int progress;             /* count the runs on stderr */
    const int32_t *evicts;    /* [n_evicts] what-if eviction windows (ec_sim_set_whatif_evict):
                                 gated and hybrid run once more per window */
    int n_evicts;
} sim_plan;

/*
 * Runs the plan into rep->rows / n_rows (allocated here; free with
 * sim_report_clear_rows, also after a failure). Per cache size, lru and the
 * oracle always run (ec_sim_run_baselines, the oracle at the first horizon)
 * and every row is compared with them (ec_sim_compare). Returns CLI_OK, or
 * an exit code after printing the error.
 */
int sim_run_rows(const sim_plan *p, sim_report *rep);
void sim_report_clear_rows(sim_report *rep);

/*
 * What-if (sim_whatif.c): for each recall R, replays a copy of t whose
 * records carry guesses drawn from its own future with recall R for 1..
 * max horizon layers ahead (ec_trace_draw_guesses, `seed`), through the
 * plan's runs (a new simulator over the copy, base->sim's batch; the
 * predictor: `loaded` if not NULL, else `fit` fitted held out), appending
 * rows marked what_if to rep; the same runs on t itself (no guesses) go to
 * rep->base_rows. Returns CLI_OK or an exit code after
 * printing the error.
 */
int sim_whatif_rows(const sim_plan *base, const ec_trace *t, int32_t batch,
                    const double *recalls, int n_recalls, uint64_t seed,
                    const ec_predictor *loaded, const char *fit, sim_report *rep);
/* The lowest what-if recall at which the best guess-using policy (predict
 * or gated, any horizon) is faster than lru at this cache size; NaN when
 * it is at none. Rows of what-if eviction take no part, here and below. */
double sim_break_even(const sim_report *rep, int32_t cache_per_layer, int32_t cache_global);
/* The lowest what-if recall at which the best guess-using policy is faster
 * than the best of them replayed without guesses (base_rows) at this cache
 * size - where the guesses themselves start to pay; NaN when at none.
 * *without_ms receives that best TPOT without guesses (NaN if none). */
double sim_guesses_pay_from(const sim_report *rep, int32_t cache_per_layer,
                            int32_t cache_global, double *without_ms);
void sim_print_table(FILE *f, const sim_report *rep);
/* "N" tokens, or "all", of a what-if eviction window, into buf[16]. */
const char *sim_evict_str(int32_t tokens, char *buf);
ec_status sim_write_json(FILE *f, void *rep, ec_error *err);
ec_status sim_write_csv(FILE *f, void *rep, ec_error *err);
/* Plots TPOT vs cache size per policy (and horizon) with gnuplot into png
 * (drawn in a private directory, then written as any output); with what-if
 * rows, TPOT vs the what-if recall per policy (horizon, cache size).
 * Returns 0, -1 after a warning (no gnuplot, or it failed), -2 after an
 * error writing png. */
int sim_plot(const sim_report *rep, const char *png);

#endif
