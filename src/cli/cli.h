/* The expertcast command-line tool: one file per subcommand. */
#ifndef EC_CLI_H
#define EC_CLI_H

#include "expertcast.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit codes: 0 success, 1 bad data or failed I/O, 2 usage error. */
enum { CLI_OK = 0, CLI_DATA = 1, CLI_USAGE = 2 };

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *summary;
} cli_command;

int cmd_synth(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_guesses(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_eval(int argc, char **argv);

/* Predictor options shared by fit and eval: the --help text, and a parser
 * for argv[*i] that returns 1 when it consumed the option (and its value,
 * advancing *i), 0 when argv[*i] is not a predictor option, -1 after a
 * usage message. */
extern const char *const CLI_PREDICTOR_OPTS_HELP;
int cli_predictor_opt(const char *cmd, int argc, char **argv, int *i, ec_predictor_opts *o);
/* Prints head, CLI_PREDICTOR_OPTS_HELP and the registered predictors'
 * names on stdout: the --help of fit and eval. */
void cli_predictor_usage(const char *head);
int cmd_extract(int argc, char **argv);
int cmd_rules(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_reuse(int argc, char **argv);

/* Prints "expertcast: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "expertcast: warning: MESSAGE" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints err's message (or the status name) and returns the exit code. */
int cli_fail(ec_status s, const ec_error *err);
/* Maps a library status to an exit code. */
int cli_exit_code(ec_status s);
/* Prints a usage error with a hint to run CMD --help; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when arg is the long or short form (short may be NULL). */
bool cli_is(const char *arg, const char *lng, const char *shrt);
/* True for "--help" or "-h". */
bool cli_is_help(const char *arg);
/* Parses a whole decimal integer in [lo, hi]; false (after an error
 * message naming opt) when it is not one. */
bool cli_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi,
             long long *out);
/* Parses a finite double in [lo, hi]. */
bool cli_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                double *out);
/* Fetches the value of option argv[*i] (advancing *i); NULL after a usage
 * message when it is missing. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
/* True when s looks like an option ("-x", "--xy"), not a negative number. */
bool cli_looks_like_option(const char *s);

/* Writes with write_fn(f, ctx) into PATH with ec_outfile ("-" = stdout). */
int cli_write_file(const char *path, ec_status (*write_fn)(FILE *f, void *ctx, ec_error *err),
                   void *ctx);
/* Every command calls this with its outputs and inputs (NULL entries
 * skipped) before reading anything: refuses an output that is an input or
 * another output (ec_outputs_check), or "-" for more than one output.
 * Returns CLI_OK, or CLI_USAGE after a message. */
int cli_check_outputs(const char *const *outputs, size_t n_out, const char *const *inputs,
                      size_t n_in);
/* Flushes and closes stdout at exit: a write error that went unnoticed
 * (a full disk, a closed pipe) turns exit status rc 0 into CLI_DATA, with
 * a message. Returns the exit status. */
int cli_finish_stdout(int rc);

/* s made safe to print on a terminal: control characters (below 0x20,
 * 0x7f, and U+0080..U+009F in UTF-8) as \xNN, a backslash as \\; the
 * rest (UTF-8 text) as it is. Cut to fit cap with "..." at the end.
 * Returns buf. */
const char *cli_printable(const char *s, char *buf, size_t cap);

/* Loads traces, printing the error; NULL on failure (*rc set). */
ec_trace *cli_load_trace(const char *const *paths, size_t n, int *rc);

#endif
