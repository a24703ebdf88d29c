/* Helpers shared by the subcommands: messages, numbers, output files. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("expertcast: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("expertcast: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_exit_code(ec_status s)
{
    switch (s) {
    case EC_OK: return CLI_OK;
    case EC_ERR_INVALID:
    case EC_ERR_NOT_FOUND: return CLI_USAGE;
    default: return CLI_DATA;
    }
}

int cli_fail(ec_status s, const ec_error *err)
{
    if (err && err->message[0])
        cli_error("%s", err->message);
    else
        cli_error("%s", ec_status_str(s));
    return cli_exit_code(s);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "expertcast %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nHINT: run 'expertcast %s --help' for the options\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

bool cli_is(const char *arg, const char *lng, const char *shrt)
{
    return strcmp(arg, lng) == 0 || (shrt && strcmp(arg, shrt) == 0);
}

bool cli_is_help(const char *arg) { return cli_is(arg, "--help", "-h"); }

bool cli_looks_like_option(const char *s)
{
    if (s[0] != '-' || s[1] == '\0')
        return false;
    return !(s[1] >= '0' && s[1] <= '9') && s[1] != '.';
}

bool cli_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi,
             long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0') {
        cli_usage_error(cmd, "%s: '%s' is not an integer", opt, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_usage_error(cmd, "%s: %lld is out of range [%lld, %lld]", opt, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v)) {
        cli_usage_error(cmd, "%s: '%s' is not a number", opt, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_usage_error(cmd, "%s: %g is out of range [%g, %g]", opt, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

const char *cli_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_check_outputs(const char *const *outputs, size_t n_out, const char *const *inputs,
                      size_t n_in)
{
    size_t to_stdout = 0;
    for (size_t i = 0; i < n_out; i++)
        to_stdout += outputs[i] && strcmp(outputs[i], "-") == 0;
    if (to_stdout > 1) {
        cli_error("'-' (standard output) is given for %zu outputs: at most one can go there",
                  to_stdout);
        return CLI_USAGE;
    }
    ec_error err = {0};
    ec_status s = ec_outputs_check(outputs, n_out, inputs, n_in, &err);
    return s ? cli_fail(s, &err) : CLI_OK;
}

int cli_write_file(const char *path, ec_status (*write_fn)(FILE *f, void *ctx, ec_error *err),
                   void *ctx)
{
    ec_error err = {0};
    ec_status s;
    ec_outfile *o;
    FILE *f;
    if ((s = ec_outfile_open(path, &o, &f, &err)))
        return cli_fail(s, &err);
    if ((s = write_fn(f, ctx, &err))) {
        ec_outfile_abort(o);
        if (!strstr(err.message, path)) { /* writers know the stream, not its name */
            cli_error("%s: %s", path, err.message[0] ? err.message : ec_status_str(s));
            return cli_exit_code(s);
        }
        return cli_fail(s, &err);
    }
    if ((s = ec_outfile_commit(o, &err)))
        return cli_fail(s, &err);
    return CLI_OK;
}

int cli_finish_stdout(int rc)
{
    errno = 0;
    int bad = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !bad) {
        e = errno;
        bad = 1;
    }
    if (!bad)
        return rc;
    if (e)
        cli_error("standard output: write error: %s", strerror(e));
    else
        cli_error("standard output: write error");
    return rc ? rc : CLI_DATA;
}

const char *cli_printable(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (; *u && n + 8 < cap; u++) {
        int c1 = u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f; /* a C1 control */
        if (*u < 0x20 || *u == 0x7f || c1) {
            if (c1)
                n += (size_t)snprintf(buf + n, cap - n, "\\xc2");
            u += c1;
            n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", *u);
        } else if (*u == '\\') {
            buf[n++] = '\\';
            buf[n++] = '\\';
        } else
            buf[n++] = (char)*u;
    }
    if (*u && cap >= 4)
        strcpy(buf + (n + 4 <= cap ? n : cap - 4), "...");
    else
        buf[n < cap ? n : cap - 1] = '\0';
    return buf;
}

ec_trace *cli_load_trace(const char *const *paths, size_t n, int *rc)
{
    ec_trace *t = NULL;
    ec_error err = {0};
    ec_status s = ec_trace_load(paths, n, NULL, &t, &err);
    if (s) {
        *rc = cli_fail(s, &err);
        return NULL;
    }
    *rc = CLI_OK;
    return t;
}
