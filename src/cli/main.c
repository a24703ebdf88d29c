/* expertcast: the command-line entry point and subcommand table. */
#include "cli.h"

#include <signal.h>
#include <string.h>

static const cli_command commands[] = {
    {"synth", cmd_synth, "generate a synthetic routing trace (raw JSONL)"},
    {"guesses", cmd_guesses, "a what-if copy of a trace carrying guesses of a chosen recall"},
    {"info", cmd_info, "summarise routing traces: shape, sequences, completeness"},
    {"fit", cmd_fit, "fit an expert predictor on traces and save it as JSON"},
    {"eval", cmd_eval, "evaluate predictors on held-out sequences (recall@k, top-1, CIs)"},
    {"extract", cmd_extract, "write one problem's complete token journeys (the seed's tool)"},
    {"rules", cmd_rules, "create / evaluate the seed's lookup rules (levels 1-5)"},
    {"demo", cmd_demo, "the main job: the bundled trace through the loader, simulator and seed tools"},
    {"reuse", cmd_reuse, "evaluate the reuse model eviction uses, held out (Brier, AUC)"},
    {"simulate", cmd_simulate, "replay traces through loading policies on a modeled machine"},
    {"replay", cmd_replay, "run the real expert loader over a trace: hit rate and stall per policy"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: expertcast [--version] [--help] COMMAND [ARGS]\n\n"
               "Speculative expert loading for offloaded Mixture-of-Experts decoding.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'expertcast COMMAND --help' for the options of a command.\n"
               "Exit status: 0 success, 1 bad data or I/O failure, 2 usage error.\n");
}

/* A signal that ends the process first removes its output temporaries. */
static void on_fatal_signal(int sig)
{
    ec_outfile_cleanup_signal();
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns: the usual exit status */
}

static void install_signal_cleanup(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGXFSZ};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa = {0};
        /* a signal ignored by the caller (nohup, trap '') stays ignored */
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN)
            continue;
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

static int run(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (cli_is_help(argv[1])) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("expertcast %s\n", ec_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    cli_error("unknown command '%s'\nHINT: run 'expertcast --help' for the list", argv[1]);
    return CLI_USAGE;
}

int main(int argc, char **argv)
{
    install_signal_cleanup();
    return cli_finish_stdout(run(argc, argv));
}
