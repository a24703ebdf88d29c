/* Helpers shared by the seed's commands: extract, rules and demo. */
#ifndef EC_SEED_CLI_H
#define EC_SEED_CLI_H

#include "cli.h"

/*
 * Copies args[n] into a new list, expanding every argument that holds
 * * ? or [ with glob(3) (sorted), as the seed's scripts expand quoted
 * globs. A pattern that matches nothing is an error (printed). Returns a
 * CLI exit code; on success *out (free with seed_free_list) has *n_out
 * paths.
 */
int seed_expand_args(char *const *args, size_t n, char ***out, size_t *n_out);
void seed_free_list(char **list, size_t n);

/* CLI_OK when the directory that will hold `file` exists; else prints
 * an error and returns CLI_DATA. */
int seed_check_output_parent(const char *file);

/* Local time as Python's datetime.now().isoformat(): 2025-12-10T04:46:48.826806 */
void seed_timestamp(char *buf, size_t size);

/* What extract wrote and skipped. */
void seed_print_extract(FILE *f, const char *raw, const ec_extract_opts *o,
                        const ec_extract_report *r);
/* Rule counts per level and the shape of the rules. */
void seed_print_rules(FILE *f, const ec_seed_rules *r);
/* The evaluation report in two parts: the per-file table (and a blank
 * line); the summary table and the BEST line. */
void seed_print_eval_files(FILE *f, const ec_seed_eval *e);
void seed_print_eval_summary(FILE *f, const ec_seed_eval *e);

/* The three steps, as the commands and the demo run them. Each prints its
 * report on stdout and returns an exit code; evaluate prints the per-file
 * table when per_file is set. */
int seed_run_extract(const char *raw, const ec_extract_opts *o);
int seed_run_create(char *const *paths, size_t n, const char *output, int32_t n_experts);
int seed_run_evaluate(const char *rules_path, char *const *tests, size_t n, const char *output,
                      int32_t n_experts, int per_file);

#endif
