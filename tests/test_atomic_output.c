/*
 * Atomic outputs: a run that fails midway (a write refused past a file-size
 * limit, as on a full disk) or is killed leaves the previous output intact;
 * a failed run also leaves no temporary file behind.
 */
#include "testutil.h"
#include "predict/predictor.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PREVIOUS "previous contents\n"

/* Names in dir other than keep (dot files included), joined by spaces. */
static void others(const char *dir, const char *keep, char *buf, size_t cap)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    buf[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, keep) != 0)
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s ", e->d_name);
    closedir(d);
}

static void assert_previous_intact(const char *path)
{
    char *text = tu_read(path, NULL);
    cr_assert_not_null(text, "%s vanished", path);
    cr_assert_str_eq(text, PREVIOUS, "%s was overwritten", path);
    free(text);
}

Test(atomic, synth_failing_midway_keeps_the_old_file_and_no_temporary)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    const char *out = tu_write(d, "out.jsonl", PREVIOUS);
    /* 4 KiB file-size limit with SIGXFSZ ignored: writes past it fail with
     * EFBIG, as on a full disk; the default trace is ~900 KB. */
    char cmd[2048], errpath[1024];
    snprintf(errpath, sizeof errpath, "%s/stderr", tu_tmpdir());
    snprintf(cmd, sizeof cmd,
             "bash -c \"trap '' XFSZ; ulimit -f 4; exec %s synth -o '%s'\" 2>'%s'", EC_CLI_PATH,
             out, errpath);
    int rc = system(cmd);
    char *err = tu_read(errpath, NULL);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "status %d: %s", rc, err);
    char want[1200];
    snprintf(want, sizeof want, "expertcast: %s: write error: File too large\n", out);
    cr_assert_str_eq(err, want);
    free(err);
    assert_previous_intact(out);
    char left[1024];
    others(d, "out.jsonl", left, sizeof left);
    cr_assert_str_eq(left, "", "left behind: %s", left);
}

Test(atomic, synth_killed_midway_keeps_the_old_file_and_removes_its_temporary)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    const char *out = tu_write(d, "out.jsonl", PREVIOUS);
    /* Same limit, default SIGXFSZ: the process is killed in the middle of
     * writing; its handler removes the temporary before the signal ends it. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "bash -c \"ulimit -f 4; exec %s synth -o '%s'\" 2>/dev/null",
             EC_CLI_PATH, out);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 128 + SIGXFSZ, "status %d", rc);
    assert_previous_intact(out);
    char left[1024];
    others(d, "out.jsonl", left, sizeof left);
    cr_assert_str_eq(left, "", "left behind: %s", left);
}

Test(atomic, a_writer_killed_by_sigkill_leaves_a_temporary_that_a_later_write_sweeps)
{
    char d[256];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    const char *out = tu_write(d, "out.jsonl", PREVIOUS);
    /* SIGKILL cannot be handled: a child writes half an output and is killed. */
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        ec_outfile *o;
        FILE *f;
        if (ec_outfile_open(out, &o, &f, NULL) == EC_OK) {
            fputs("half a", f);
            fflush(f);
        }
        kill(getpid(), SIGKILL);
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_previous_intact(out);
    char left[1024], want[128];
    others(d, "out.jsonl", left, sizeof left);
    snprintf(want, sizeof want, "out.jsonl.ectmp.%ld.", (long)child);
    cr_assert(strncmp(left, want, strlen(want)) == 0, "found '%s'", left);
    /* within its first minute it is left alone (its writer might be in
     * another pid namespace); older, it is swept by the next write */
    cr_assert_eq(tu_cli(NULL, NULL, "synth --tokens 2 --sequences 1 -o '%s'", out), 0);
    char again[1024];
    others(d, "out.jsonl", again, sizeof again);
    cr_assert_str_eq(again, left);
    char tmp[1200], cmd[1400];
    snprintf(tmp, sizeof tmp, "%s/%.*s", d, (int)strcspn(left, " "), left);
    snprintf(cmd, sizeof cmd, "touch -d '-2 minutes' '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(tu_cli(NULL, NULL, "synth --tokens 2 --sequences 1 -o '%s'", out), 0);
    others(d, "out.jsonl", left, sizeof left);
    cr_assert_str_eq(left, "", "not swept: %s", left);
}

Test(atomic, synth_refused_before_writing_keeps_the_old_file)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    const char *out = tu_write(d, "out.jsonl", PREVIOUS);
    cr_assert_eq(tu_cli(NULL, NULL, "synth --experts 4 --top-k 5 -o '%s'", out), 2);
    assert_previous_intact(out);
    char left[1024];
    others(d, "out.jsonl", left, sizeof left);
    cr_assert_str_eq(left, "");
}

Test(atomic, synth_success_replaces_the_file_and_leaves_no_temporary)
{
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    const char *out = tu_write(d, "out.jsonl", PREVIOUS);
    cr_assert_eq(tu_cli(NULL, NULL, "synth --tokens 2 --sequences 1 --layers 2 -o '%s'", out), 0);
    char *text = tu_read(out, NULL);
    cr_assert(strncmp(text, "{\"dataset\": \"synth\"", 19) == 0, "%s", text);
    free(text);
    char left[1024];
    others(d, "out.jsonl", left, sizeof left);
    cr_assert_str_eq(left, "");
    struct stat sb;
    cr_assert_eq(stat(out, &sb), 0);
    cr_assert_neq(sb.st_mode & 0044, 0, "mode %o: the temporary's 0600 was kept", sb.st_mode);
}

/* The library's own writers under the same failure: ec_predictor_save. */
Test(atomic, predictor_save_failing_midway_keeps_the_old_model)
{
    ec_synth_opts o;
    ec_synth_opts_default(&o);
    o.n_layers = 64;
    o.n_experts = 256; /* a prior of 16384 numbers: ~150 KB of JSON */
    o.k = 4;
    o.n_seqs = 1;
    o.n_tokens = 4;
    ec_trace *t;
    ec_predictor *p;
    cr_assert_eq(ec_synth_generate(&o, &t, NULL), EC_OK);
    cr_assert_eq(ec_predictor_create("prior", NULL, &p, NULL), EC_OK);
    cr_assert_eq(ec_predictor_fit(p, t, NULL), EC_OK);
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    const char *path = tu_write(d, "model.json", PREVIOUS);
    /* This test runs in its own process: limit it, and ignore SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {16384, 16384};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ec_error err = {0};
    ec_status s = ec_predictor_save(p, path, &err);
    cr_assert_eq(s, EC_ERR_IO, "status %d: %s", s, err.message);
    char want[1200];
    snprintf(want, sizeof want, "%s: write failed: File too large", path);
    cr_assert_str_eq(err.message, want);
    assert_previous_intact(path);
    char left[1024];
    others(d, "model.json", left, sizeof left);
    cr_assert_str_eq(left, "", "left behind: %s", left);
    ec_predictor_destroy(p);
    ec_trace_destroy(t);
}

Test(atomic, outfile_mode_follows_the_umask_and_concurrent_writers_do_not_collide)
{
    umask(027); /* this test's own process */
    char d[256]; /* tu_tmpdir reuses its buffers after 8 calls (tu_cli makes one each) */
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char path[1024];
    snprintf(path, sizeof path, "%s/o.txt", d);
    ec_outfile *a, *b;
    FILE *fa, *fb;
    cr_assert_eq(ec_outfile_open(path, &a, &fa, NULL), EC_OK);
    cr_assert_eq(ec_outfile_open(path, &b, &fb, NULL), EC_OK);
    cr_assert_neq(fa, fb);
    fputs("first\n", fa);
    fputs("second\n", fb);
    cr_assert_eq(ec_outfile_commit(a, NULL), EC_OK);
    cr_assert_eq(ec_outfile_commit(b, NULL), EC_OK);
    char *text = tu_read(path, NULL);
    cr_assert_str_eq(text, "second\n"); /* the last commit wins, whole */
    free(text);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0640, "mode %o", sb.st_mode & 0777);
    char left[1024];
    others(d, "o.txt", left, sizeof left);
    cr_assert_str_eq(left, "");
}

Test(atomic, rules_create_failing_midway_keeps_the_old_rules)
{
    char d[256];
    snprintf(d, sizeof d, "%s", tu_tmpdir());
    char trace[512];
    snprintf(trace, sizeof trace, "%s/t.jsonl", tu_tmpdir());
    cr_assert_eq(tu_cli(NULL, NULL, "synth --layers 16 --experts 16 -k 2 --tokens 32 -o '%s'",
                        trace),
                 0);
    const char *out = tu_write(d, "rules.json", PREVIOUS);
    char cmd[2048], errpath[1024];
    snprintf(errpath, sizeof errpath, "%s/stderr", tu_tmpdir());
    /* the rules of 128 journeys over 16 layers are far more than 8 KiB */
    snprintf(cmd, sizeof cmd,
             "bash -c \"trap '' XFSZ; ulimit -f 8; exec %s rules create '%s' -o '%s'\" "
             ">/dev/null 2>'%s'",
             EC_CLI_PATH, trace, out, errpath);
    int rc = system(cmd);
    char *err = tu_read(errpath, NULL);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "status %d: %s", rc, err);
    cr_assert(strstr(err, "File too large"), "%s", err);
    free(err);
    assert_previous_intact(out);
    char left[1024];
    others(d, "rules.json", left, sizeof left);
    cr_assert_str_eq(left, "", "left behind: %s", left);
}
