/*
 * Output paths: an output never replaces an input (same file by device and
 * inode, however it is named), special files are written directly, a
 * rewritten file keeps its mode, links are handled as documented, '-' is
 * stdout, write errors (stdout included) fail the run, long names work,
 * temporaries do not outlive a run.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STARTS(s, lit) ((s) && strncmp((s), (lit), strlen(lit)) == 0)

/* A fresh directory of our own: tu_tmpdir's buffers rotate. */
static const char *own_dir(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", tu_tmpdir());
    return buf;
}

/* Runs "cd DIR && expertcast ARGS" with stdout and stderr captured. */
static int run_in(const char *dir, char **out, char **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int run_in(const char *dir, char **out, char **err, const char *fmt, ...)
{
    char args[8192], cmd[9500], o[600], e[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *t = tu_tmpdir();
    snprintf(o, sizeof o, "%s/out", t);
    snprintf(e, sizeof e, "%s/err", t);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s %s >'%s' 2>'%s' </dev/null", dir, EC_CLI_PATH, args,
             o, e);
    int rc = system(cmd);
    if (out)
        *out = tu_read(o, NULL);
    if (err)
        *err = tu_read(e, NULL);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "'%s' failed: %d", cmd, rc);
}

/* Names in dir (dot files included), sorted, joined by spaces. */
static void listing(const char *dir, char *buf, size_t cap)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    cr_assert_geq(n, 0);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s ", names[i]->d_name);
        free(names[i]);
    }
    free(names);
}

static int count_temps(const char *dir)
{
    char buf[8192];
    listing(dir, buf, sizeof buf);
    int n = 0;
    for (const char *p = buf; (p = strstr(p, ".ectmp.")); p++)
        n++;
    return n;
}

/* A work directory with a trace (in.jsonl: 2 sequences, 8 tokens, 4 layers),
 * a predictor fitted on it, rules and a journey, and a copy of a profile. */
static const char *workdir(char *buf, size_t cap)
{
    own_dir(buf, cap);
    sh("cd '%s' && %s synth --sequences 2 --tokens 8 --layers 4 -o in.jsonl 2>/dev/null && "
       "%s synth --sequences 2 --tokens 8 --layers 32 -o in32.jsonl 2>/dev/null && "
       "%s fit in32.jsonl -p temporal -o model.json >/dev/null && "
       "%s extract in.jsonl -p 0 -t 0 2 >/dev/null && "
       "%s rules create p0_token_0.jsonl -o rules.json >/dev/null && "
       "cp '%s' model_profile.json && cp in.jsonl test.jsonl",
       buf, EC_CLI_PATH, EC_CLI_PATH, EC_CLI_PATH, EC_CLI_PATH, EC_CLI_PATH,
       tu_profile_path("mixtral-8x7b"));
    return buf;
}

/* ---- 1. an output that is an input is refused before anything is read ---- */

typedef struct same_case {
    const char *args;  /* the command line; %s is the output spelling */
    const char *input; /* the input it names */
} same_case;

static const same_case same_cases[] = {
    {"fit in.jsonl -p prior -o %s", "in.jsonl"},
    {"eval in.jsonl --json %s", "in.jsonl"},
    {"eval --train in.jsonl --test test.jsonl --json %s", "in.jsonl"},
    {"simulate in32.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --json %s", "in32.jsonl"},
    {"simulate in32.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --sweep --csv %s",
     "in32.jsonl"},
    {"simulate in32.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --sweep --plot %s",
     "in32.jsonl"},
    {"simulate in32.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --predictor model.json "
     "--json %s",
     "model.json"},
    {"simulate in32.jsonl --model model_profile.json --hardware rtx4090-pcie4 --json %s",
     "model_profile.json"},
    {"rules create p0_token_0.jsonl -o %s", "p0_token_0.jsonl"},
    {"rules evaluate --rules rules.json --test p0_token_1.jsonl -o %s", "rules.json"},
    {"rules evaluate --rules rules.json --test p0_token_1.jsonl -o %s", "p0_token_1.jsonl"},
    {"replay in.jsonl --tokens 2 --json %s", "in.jsonl"},
    {"replay in.jsonl --tokens 2 --record %s", "in.jsonl"},
};

Test(output_paths, an_output_naming_an_input_in_any_spelling_is_refused_and_the_input_kept)
{
    char d[256];
    workdir(d, sizeof d);
    /* every spelling of the same file: name, ./name, absolute, hard link, symlink */
    for (size_t i = 0; i < sizeof same_cases / sizeof same_cases[0]; i++) {
        const same_case *c = &same_cases[i];
        sh("cd '%s' && rm -f hard sym && ln '%s' hard && ln -s '%s' sym", d, c->input, c->input);
        char abs[600], dot[600];
        snprintf(abs, sizeof abs, "%s/%s", d, c->input);
        snprintf(dot, sizeof dot, "./%s", c->input);
        const char *spellings[] = {c->input, dot, abs, "hard", "sym"};
        char path[600], before[65], after[65];
        snprintf(path, sizeof path, "%s/%s", d, c->input);
        cr_assert_eq(tu_sha256(path, before), 0);
        for (size_t s = 0; s < 5; s++) {
            char args[1024], *out = NULL, *err = NULL, want[1200];
            snprintf(args, sizeof args, c->args, spellings[s]);
            int rc = run_in(d, &out, &err, "%s", args);
            snprintf(want, sizeof want, "output %s is the input %s (the same file)", spellings[s],
                     c->input);
            cr_assert_eq(rc, 2, "'%s': exit %d: %s", args, rc, err);
            cr_assert(strstr(err, want), "'%s': stderr lacks '%s': %s", args, want, err);
            cr_assert_str_eq(out, "", "'%s' printed: %s", args, out);
            free(out);
            free(err);
            cr_assert_eq(tu_sha256(path, after), 0);
            cr_assert_str_eq(before, after, "'%s' changed %s", args, c->input);
        }
    }
    cr_assert_eq(count_temps(d), 0);
}

Test(output_paths, a_profile_found_by_name_is_an_input_too)
{
    char d[256];
    workdir(d, sizeof d);
    const char *hw = tu_profile_path("rtx4090-pcie4");
    char before[65], after[65], *err = NULL;
    cr_assert_eq(tu_sha256(hw, before), 0);
    int rc = run_in(d, NULL, &err,
                    "simulate in32.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --json '%s'",
                    hw);
    cr_assert_eq(rc, 2, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "rtx4090-pcie4.json (the same file)"), "%s", err);
    free(err);
    cr_assert_eq(tu_sha256(hw, after), 0);
    cr_assert_str_eq(before, after);
}

Test(output_paths, two_outputs_naming_one_file_or_two_dashes_are_refused)
{
    char d[256];
    workdir(d, sizeof d);
    char *err = NULL;
    cr_assert_eq(run_in(d, NULL, &err, "replay in.jsonl --tokens 2 --record r.jsonl --json "
                                       "./r.jsonl"),
                 2);
    cr_assert(strstr(err, "outputs ./r.jsonl and r.jsonl are the same file"), "%s", err);
    free(err);
    cr_assert_eq(run_in(d, NULL, &err, "replay in.jsonl --tokens 2 --record - --json -"), 2);
    cr_assert(strstr(err, "'-' (standard output) is given for 2 outputs"), "%s", err);
    free(err);
    cr_assert_eq(access("r.jsonl", F_OK), -1);
}

Test(output_paths, extract_into_the_folder_of_its_input_does_not_overwrite_it)
{
    char d[256];
    workdir(d, sizeof d);
    /* the input, under a name extract would write */
    sh("cd '%s' && cp in.jsonl src.jsonl && ln -f src.jsonl p0_token_5.jsonl", d);
    char path[600], before[65], after[65], *err = NULL;
    snprintf(path, sizeof path, "%s/src.jsonl", d);
    cr_assert_eq(tu_sha256(path, before), 0);
    int rc = run_in(d, NULL, &err, "extract src.jsonl -p 0 -t 0 8 -o .");
    cr_assert_eq(rc, 2, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "output ./p0_token_5.jsonl is the input src.jsonl (the same file)"),
              "%s", err);
    free(err);
    cr_assert_eq(tu_sha256(path, after), 0);
    cr_assert_str_eq(before, after);
    /* outside the token range the same name is no output: the run goes ahead */
    cr_assert_eq(run_in(d, NULL, &err, "extract src.jsonl -p 0 -t 6 8 -o ."), 0, "%s", err);
    free(err);
    cr_assert_eq(tu_sha256(path, after), 0);
    cr_assert_str_eq(before, after);
}

Test(output_paths, demo_refuses_a_trace_its_outputs_would_replace)
{
    char d[256];
    workdir(d, sizeof d);
    sh("cd '%s' && mkdir out && cp in.jsonl out/rules.json", d);
    char *err = NULL;
    int rc = run_in(d, NULL, &err, "demo --trace out/rules.json -o out");
    cr_assert_eq(rc, 2, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "output out/rules.json is the input out/rules.json"), "%s", err);
    free(err);
}

/* ---- 2. special files ---------------------------------------------------- */

Test(output_paths, dev_null_is_written_not_replaced_and_dev_full_fails)
{
    char d[256];
    workdir(d, sizeof d);
    struct stat before, after;
    cr_assert_eq(stat("/dev/null", &before), 0);
    char *err = NULL;
    cr_assert_eq(run_in(d, NULL, &err, "fit in.jsonl -p prior -o /dev/null"), 0, "%s", err);
    free(err);
    cr_assert_eq(run_in(d, NULL, &err, "eval in.jsonl -p prior --json /dev/null"), 0, "%s", err);
    free(err);
    cr_assert_eq(stat("/dev/null", &after), 0);
    cr_assert(S_ISCHR(after.st_mode) && after.st_ino == before.st_ino &&
                  after.st_rdev == before.st_rdev,
              "/dev/null was replaced");
    static const char *const full[] = {
        "fit in.jsonl -p prior -o /dev/full",
        "synth -o /dev/full",
        "eval in.jsonl -p prior --json /dev/full",
        "simulate in32.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --policy lru "
        "--json /dev/full",
        "rules create p0_token_0.jsonl -o /dev/full",
        "replay in.jsonl --tokens 2 --policy lru --record /dev/full",
    };
    for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) {
        int rc = run_in(d, NULL, &err, "%s", full[i]);
        cr_assert_eq(rc, 1, "'%s': exit %d: %s", full[i], rc, err);
        cr_assert(strstr(err, "/dev/full: write failed: No space left on device") ||
                      strstr(err, "/dev/full: write error: No space left on device"),
                  "'%s': %s", full[i], err);
        free(err);
    }
    cr_assert_eq(count_temps("/dev"), 0);
}

Test(output_paths, a_fifo_reader_gets_the_whole_output)
{
    char d[256];
    workdir(d, sizeof d);
    char fifo[600], got[600];
    snprintf(fifo, sizeof fifo, "%s/pipe", d);
    snprintf(got, sizeof got, "%s/got.json", d);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    /* a reader in the background; the writer blocks in open until it comes */
    sh("(cat '%s' > '%s') & cd '%s' && timeout 30 %s fit in.jsonl -p prior -o pipe >/dev/null; "
       "wait",
       fifo, got, d, EC_CLI_PATH);
    struct stat sb;
    cr_assert_eq(lstat(fifo, &sb), 0);
    cr_assert(S_ISFIFO(sb.st_mode), "the FIFO was replaced by a file");
    char *text = tu_read(got, NULL);
    cr_assert(STARTS(text, "{\"format\":\"expertcast-predictor\""), "%s", text);
    cr_assert(text[strlen(text) - 1] == '\n');
    free(text);
}

/* ---- 3. modes, owners, symbolic and hard links ----------------------------- */

Test(output_paths, a_rewritten_file_keeps_its_mode)
{
    char d[256];
    workdir(d, sizeof d);
    static const mode_t modes[] = {0600, 0640, 0604};
    for (size_t i = 0; i < 3; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/kept.json", d);
        sh("echo old > '%s'", path);
        cr_assert_eq(chmod(path, modes[i]), 0);
        char *err = NULL;
        cr_assert_eq(run_in(d, NULL, &err, "fit in.jsonl -p prior -o kept.json"), 0, "%s", err);
        free(err);
        struct stat sb;
        cr_assert_eq(stat(path, &sb), 0);
        cr_assert_eq(sb.st_mode & 07777, modes[i], "mode %o became %o", modes[i],
                     sb.st_mode & 07777);
        char *text = tu_read(path, NULL);
        cr_assert(strncmp(text, "{\"format\"", 9) == 0);
        free(text);
    }
}

Test(output_paths, a_rewritten_file_keeps_its_owner_when_run_as_root)
{
    if (geteuid() != 0)
        cr_skip_test("not root: another user's file cannot be made here");
    char d[256];
    workdir(d, sizeof d);
    char path[600];
    snprintf(path, sizeof path, "%s/theirs.json", d);
    sh("echo old > '%s'", path);
    cr_assert_eq(chown(path, 12345, 23456), 0);
    char *err = NULL;
    cr_assert_eq(run_in(d, NULL, &err, "fit in.jsonl -p prior -o theirs.json"), 0, "%s", err);
    free(err);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert(sb.st_uid == 12345 && sb.st_gid == 23456, "owner %d:%d", (int)sb.st_uid,
              (int)sb.st_gid);
}

Test(output_paths, a_read_only_file_is_not_replaced_through_the_directory)
{
    char d[256];
    workdir(d, sizeof d);
    char path[600];
    snprintf(path, sizeof path, "%s/locked.json", d);
    sh("echo old > '%s' && chmod 444 '%s' && chmod 777 '%s' && chmod 644 '%s'/*.jsonl", path,
       path, d, d);
    /* root writes anything: run as nobody, who may write the directory but
     * not the file (a rename would replace it) */
    const char *as = "";
    if (geteuid() == 0) {
        if (system("setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null") != 0)
            cr_skip_test("running as root without setpriv: cannot act as another user");
        as = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
    }
    char cmd[2048], errpath[600];
    snprintf(errpath, sizeof errpath, "%s/err.txt", own_dir((char[256]){0}, 256));
    snprintf(cmd, sizeof cmd, "cd '%s' && %s%s fit in.jsonl -p prior -o locked.json 2>'%s'", d,
             as, EC_CLI_PATH, errpath);
    int rc = system(cmd);
    char *err = tu_read(errpath, NULL);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "status %d: %s", rc, err);
    cr_assert(strstr(err, "locked.json: cannot write: Permission denied"), "%s", err);
    free(err);
    char *text = tu_read(path, NULL);
    cr_assert_str_eq(text, "old\n");
    free(text);
}

Test(output_paths, a_symlink_output_writes_its_target_and_stays_a_link)
{
    char d[256];
    workdir(d, sizeof d);
    sh("cd '%s' && mkdir sub && echo old > sub/target.json && chmod 600 sub/target.json && "
       "ln -s sub/target.json link.json && ln -s missing.json dangling.json",
       d);
    char *err = NULL;
    cr_assert_eq(run_in(d, NULL, &err, "fit in.jsonl -p prior -o link.json"), 0, "%s", err);
    free(err);
    char p[600];
    struct stat sb;
    snprintf(p, sizeof p, "%s/link.json", d);
    cr_assert_eq(lstat(p, &sb), 0);
    cr_assert(S_ISLNK(sb.st_mode), "the link was replaced by a file");
    snprintf(p, sizeof p, "%s/sub/target.json", d);
    char *text = tu_read(p, NULL);
    cr_assert(strncmp(text, "{\"format\"", 9) == 0, "%s", text);
    free(text);
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    snprintf(p, sizeof p, "%s/sub", d);
    cr_assert_eq(count_temps(p), 0);
    /* a link to nothing is refused, and nothing is created */
    cr_assert_eq(run_in(d, NULL, &err, "fit in.jsonl -p prior -o dangling.json"), 1);
    cr_assert(strstr(err, "dangling.json: symbolic link to a file that cannot be reached"), "%s",
              err);
    free(err);
    snprintf(p, sizeof p, "%s/missing.json", d);
    cr_assert_eq(access(p, F_OK), -1);
}

Test(output_paths, a_hard_linked_output_is_rewritten_in_place_for_every_link)
{
    char d[256];
    workdir(d, sizeof d);
    sh("cd '%s' && echo old > a.json && ln a.json b.json", d);
    char *err = NULL;
    cr_assert_eq(run_in(d, NULL, &err, "fit in.jsonl -p prior -o a.json"), 0, "%s", err);
    free(err);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/a.json", d);
    snprintf(b, sizeof b, "%s/b.json", d);
    struct stat sa, sb;
    cr_assert_eq(stat(a, &sa), 0);
    cr_assert_eq(stat(b, &sb), 0);
    cr_assert(sa.st_ino == sb.st_ino && sa.st_nlink == 2, "the hard link was split");
    char *ta = tu_read(a, NULL);
    cr_assert(strncmp(ta, "{\"format\"", 9) == 0, "%s", ta);
    free(ta);
    cr_assert_eq(count_temps(d), 0);
}

/* ---- 6. '-' is stdout; write errors on stdout fail the run ------------------ */

Test(output_paths, dash_is_stdout_for_fit_replay_record_and_simulate_csv)
{
    char d[256];
    workdir(d, sizeof d);
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_in(d, &out, &err, "fit in.jsonl -p prior -o -"), 0, "%s", err);
    cr_assert(STARTS(out, "{\"format\":\"expertcast-predictor\""), "%s", out);
    cr_assert(strstr(err, "fitted prior on 2 sequences"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(run_in(d, &out, &err, "replay in.jsonl --tokens 2 --warmup 0 --policy lru "
                                       "--backend cpu --record -"),
                 0, "%s", err);
    cr_assert(STARTS(out, "{\"dataset\": \"synth\", \"problem_id\": 0, \"layer\": 0,"), "%s", out);
    cr_assert(strstr(err, "hit%"), "the table should go to stderr: %s", err);
    free(out);
    free(err);
    cr_assert_eq(run_in(d, &out, &err, "simulate in32.jsonl --model mixtral-8x7b --hardware "
                                       "rtx4090-pcie4 --sweep --policy lru --cache-experts 2,4 "
                                       "--csv -"),
                 0, "%s", err);
    cr_assert(STARTS(out, "model,dtype,hardware,policy,"), "the CSV alone on stdout: %s", out);
    cr_assert_eq(strstr(out, "\n\n"), NULL, "a table was mixed in: %s", out);
    free(out);
    free(err);
    char p[600];
    snprintf(p, sizeof p, "%s/-", d);
    cr_assert_eq(access(p, F_OK), -1, "a file named '-' was written");
}

Test(output_paths, printing_to_a_full_disk_fails)
{
    char d[256];
    workdir(d, sizeof d);
    static const char *const cmds[] = {
        "info in.jsonl",
        "eval in.jsonl -p prior",
        "simulate in32.jsonl --model mixtral-8x7b --hardware rtx4090-pcie4 --policy lru",
        "rules evaluate --rules rules.json --test p0_token_1.jsonl",
        "fit in.jsonl -p prior -o -",
        "synth -o -",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char cmd[2048], errpath[600];
        snprintf(errpath, sizeof errpath, "%s/stderr.txt", d);
        snprintf(cmd, sizeof cmd, "cd '%s' && %s %s >/dev/full 2>'%s'", d, EC_CLI_PATH, cmds[i],
                 errpath);
        int rc = system(cmd);
        char *err = tu_read(errpath, NULL);
        cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "'%s': status %d: %s", cmds[i], rc,
                  err);
        cr_assert(strstr(err, "No space left on device"), "'%s': %s", cmds[i], err);
        free(err);
    }
}

/* ---- 7. temporaries: signals, stale ones ----------------------------------- */

Test(output_paths, replay_record_holds_no_temporary_and_sigterm_leaves_none)
{
    char d[256];
    workdir(d, sizeof d);
    /* about 16 tokens x 4 layers x 20 ms: long enough to be killed midway */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && (%s replay in.jsonl --backend cpu --policy lru --tokens 16 --warmup 0 "
             "--attn-us 20000 --record rec.jsonl --json rep.json >/dev/null 2>&1 & pid=$!; "
             "sleep 0.5; ls; kill -TERM $pid; wait $pid; echo status $?) > ls.txt",
             d, EC_CLI_PATH);
    sh("%s", cmd);
    char p[600];
    snprintf(p, sizeof p, "%s/ls.txt", d);
    char *seen = tu_read(p, NULL);
    cr_assert(strstr(seen, "status 143"), "not killed by SIGTERM midway: %s", seen);
    cr_assert_null(strstr(seen, ".ectmp."), "a temporary existed during the run: %s", seen);
    free(seen);
    cr_assert_eq(count_temps(d), 0);
    snprintf(p, sizeof p, "%s/rec.jsonl", d);
    cr_assert_eq(access(p, F_OK), -1);
}

Test(output_paths, a_signal_handler_can_remove_the_live_temporaries)
{
    char d[256];
    own_dir(d, sizeof d);
    char path[600];
    snprintf(path, sizeof path, "%s/o.json", d);
    ec_outfile *o;
    FILE *f;
    cr_assert_eq(ec_outfile_open(path, &o, &f, NULL), EC_OK);
    fputs("partial", f);
    fflush(f);
    cr_assert_eq(count_temps(d), 1);
    ec_outfile_cleanup_signal();
    cr_assert_eq(count_temps(d), 0);
    ec_outfile_abort(o);
    cr_assert_eq(access(path, F_OK), -1);
}

/* A pid that is not running: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    cr_assert_gt(p, 0);
    waitpid(p, NULL, 0);
    return p;
}

static void make_temp(const char *dir, const char *stem, long pid, const char *tag, int age_s)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s.ectmp.%ld.%s", dir, stem, pid, tag);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= age_s;
    ts[1] = ts[0];
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

Test(output_paths, stale_temporaries_of_dead_writers_are_swept_and_no_others)
{
    char d[256];
    own_dir(d, sizeof d);
    long gone = (long)dead_pid();
    make_temp(d, "out.json", gone, "aaaaaa", 120);   /* stale: removed */
    make_temp(d, "other.json", gone, "dddddd", 120); /* another output's, stale: removed */
    make_temp(d, "out.json", gone, "bbbbbb", 0);     /* just written: kept */
    make_temp(d, "out.json", 1, "cccccc", 120);      /* writer alive: kept */
    make_temp(d, "out.json", gone, "eeeee", 120);    /* not the pattern: kept */
    char path[600];
    snprintf(path, sizeof path, "%s/out.json", d);
    ec_outfile *o;
    FILE *f;
    cr_assert_eq(ec_outfile_open(path, &o, &f, NULL), EC_OK);
    fputs("x\n", f);
    cr_assert_eq(ec_outfile_commit(o, NULL), EC_OK);
    static const char *const kept[] = {"out.json", "out.json.ectmp.%ld.bbbbbb",
                                       "out.json.ectmp.1.cccccc", "out.json.ectmp.%ld.eeeee"};
    for (size_t i = 0; i < 4; i++) {
        char name[200], p[700];
        snprintf(name, sizeof name, kept[i], gone);
        snprintf(p, sizeof p, "%s/%s", d, name);
        cr_assert_eq(access(p, F_OK), 0, "%s was removed", name);
    }
    static const char *const swept[] = {"out.json.ectmp.%ld.aaaaaa",
                                        "other.json.ectmp.%ld.dddddd"};
    for (size_t i = 0; i < 2; i++) {
        char name[200], p[700];
        snprintf(name, sizeof name, swept[i], gone);
        snprintf(p, sizeof p, "%s/%s", d, name);
        cr_assert_eq(access(p, F_OK), -1, "%s was kept", name);
    }
}

/* ---- 8. a 250-character name --------------------------------------------- */

Test(output_paths, a_250_character_output_name_is_written)
{
    char d[256];
    workdir(d, sizeof d);
    char name[251];
    memset(name, 'n', 250);
    name[250] = '\0';
    memcpy(name + 245, ".json", 5);
    char *err = NULL;
    cr_assert_eq(run_in(d, NULL, &err, "fit in.jsonl -p prior -o %s", name), 0, "%s", err);
    free(err);
    cr_assert_eq(run_in(d, NULL, &err, "fit in.jsonl -p prior -o %s", name), 0,
                 "rewriting: %s", err);
    free(err);
    cr_assert_eq(run_in(d, NULL, &err, "synth --tokens 2 -o %s", name), 0, "%s", err);
    free(err);
    char p[600];
    snprintf(p, sizeof p, "%s/%s", d, name);
    char *text = tu_read(p, NULL);
    cr_assert(text && strncmp(text, "{\"dataset\": \"synth\"", 19) == 0);
    free(text);
    cr_assert_eq(count_temps(d), 0);
}
