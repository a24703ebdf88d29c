/* expertcast fit: fit a predictor on traces and save it. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *USAGE_HEAD =
    "usage: expertcast fit TRACE.jsonl... --predictor NAME [options] --output MODEL.json\n\n"
    "Fits an expert predictor on every complete token of the traces and saves it as\n"
    "JSON that eval, simulate and the loader can load.\n\n"
    "Options:\n"
    "  -p, --predictor NAME     predictor to fit (required; see the list below)\n"
    "  -o, --output FILE        model file, written atomically (required; '-' = stdout)\n"
    "  -h, --help               this text\n\n";

int cmd_fit(int argc, char **argv)
{
    const char *name = NULL, *output = NULL;
    ec_predictor_opts po = {0};
    const char **paths = calloc((size_t)argc, sizeof *paths);
    size_t n_paths = 0;
    int rc = CLI_OK;
    if (!paths) {
        cli_error("out of memory");
        return CLI_DATA;
    }
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *a = argv[i];
        int r;
        if (cli_is_help(a)) {
            cli_predictor_usage(USAGE_HEAD);
            free(paths);
            return CLI_OK;
        }
        if (!cli_looks_like_option(a))
            paths[n_paths++] = a;
        else if ((r = cli_predictor_opt("fit", argc, argv, &i, &po)) != 0)
            rc = r < 0 ? CLI_USAGE : CLI_OK;
        else if (cli_is(a, "--predictor", "-p")) {
            if (!(name = cli_value("fit", argc, argv, &i)))
                rc = CLI_USAGE;
        } else if (cli_is(a, "--output", "-o")) {
            if (!(output = cli_value("fit", argc, argv, &i)))
                rc = CLI_USAGE;
        } else
            rc = cli_usage_error("fit", "unknown option '%s'", a);
    }
    if (rc == CLI_OK && n_paths == 0)
        rc = cli_usage_error("fit", "no trace given");
    else if (rc == CLI_OK && !name)
        rc = cli_usage_error("fit", "--predictor is required");
    else if (rc == CLI_OK && !output)
        rc = cli_usage_error("fit", "--output is required");
    if (rc == CLI_OK)
        rc = cli_check_outputs(&output, 1, paths, n_paths);
    if (rc != CLI_OK) {
        free(paths);
        return rc;
    }
    ec_error err = {0};
    ec_predictor *p = NULL;
    ec_status s = ec_predictor_create(name, &po, &p, &err);
    if (s) {
        free(paths);
        if (s == EC_ERR_NOT_FOUND)
            return cli_usage_error("fit", "%s", err.message);
        return cli_fail(s, &err);
    }
    ec_trace *t = cli_load_trace(paths, n_paths, &rc);
    if (!t) {
        free(paths);
        ec_predictor_destroy(p);
        return rc;
    }
    if (t->n_rows == t->n_incomplete) {
        cli_error("%s%s: no complete token (%zu tokens, each missing a layer): nothing to fit",
                  paths[0], n_paths > 1 ? " and the other traces" : "", t->n_rows);
        free(paths);
        ec_predictor_destroy(p);
        ec_trace_destroy(t);
        return CLI_DATA;
    }
    free(paths);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    s = ec_predictor_fit(p, t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (s) {
        cli_error("fitting '%s': %s", name, ec_predictor_errmsg(p));
        rc = cli_exit_code(s);
    } else if ((s = ec_predictor_save(p, output, &err))) {
        rc = cli_fail(s, &err);
    } else {
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        /* the model itself may be on stdout */
        fprintf(strcmp(output, "-") ? stdout : stderr, "fitted %s on %zu sequences, %zu complete tokens (%d layers, %d experts, top-%d) "
               "in %.1f ms; wrote %s\n",
               name, t->n_seqs, t->n_rows - t->n_incomplete, t->n_layers, t->n_experts, t->k, ms,
               output);
    }
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
    return rc;
}
