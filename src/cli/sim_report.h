/* expertcast simulate: the runs it makes and how it reports them. */
#ifndef EC_CLI_SIM_REPORT_H
#define EC_CLI_SIM_REPORT_H

#include "cli.h"
#include "expertcast/sim.h"

/* One result row with what is measured against lru and oracle at the same
 * cache size (and horizon for predicting policies). */
typedef struct sim_row {
    ec_sim_result r;
    double vs_lru;           /* tpot / lru tpot */
    double gap_closed;       /* (lru - tpot) / (lru - oracle), NaN when lru == oracle */
    double gap_closed_bound; /* (lru - tpot) / (lru - analytic bound) */
    int beats_oracle;        /* tpot < oracle tpot */
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
} sim_report;

void sim_print_table(FILE *f, const sim_report *rep);
ec_status sim_write_json(FILE *f, void *rep, ec_error *err);
ec_status sim_write_csv(FILE *f, void *rep, ec_error *err);
/* Plots TPOT vs cache size per policy (and horizon) with gnuplot into png
 * (written beside and renamed). Returns 0, or -1 after a warning. */
int sim_plot(const sim_report *rep, const char *png);

#endif
