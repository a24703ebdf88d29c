#include "testutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *tu_shared(const char *rel)
{
    static char path[4][1024];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 1024, "%s/data/%s", EC_SHARED_DIR, rel);
    return access(p, R_OK) == 0 ? p : NULL;
}

const char *tu_tmpdir(void)
{
    static char dirs[8][64];
    static int next;
    char *d = dirs[next++ % 8];
    strcpy(d, "/tmp/ec_test_XXXXXX");
    if (!mkdtemp(d))
        cr_assert_fail("mkdtemp failed");
    return d;
}

const char *tu_write(const char *dir, const char *name, const char *text)
{
    static char paths[8][1024];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 1024, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f)
        cr_assert_fail("cannot write %s", p);
    fputs(text, f);
    fclose(f);
    return p;
}

int tu_count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *c = strstr(s, needle); c; c = strstr(c + strlen(needle), needle))
        n++;
    return n;
}

char *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int tu_cli(char **out, char **err, const char *fmt, ...)
{
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *d = tu_tmpdir();
    snprintf(cmd, sizeof cmd, "%s %s >%s/out 2>%s/err </dev/null", EC_CLI_PATH, args, d, d);
    int rc = system(cmd);
    char p[1024];
    if (out) {
        snprintf(p, sizeof p, "%s/out", d);
        *out = tu_read(p, NULL);
    }
    if (err) {
        snprintf(p, sizeof p, "%s/err", d);
        *err = tu_read(p, NULL);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

int tu_sha256(const char *path, char hex[65])
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int ok = fscanf(p, "%64s", hex) == 1;
    pclose(p);
    return ok ? 0 : -1;
}

static tu_alloc_state *g_state;

static void *t_malloc(size_t n, void *ctx)
{
    tu_alloc_state *s = ctx;
    if (++s->calls == s->fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        s->live++;
    return p;
}

static void *t_realloc(void *p, size_t n, void *ctx)
{
    tu_alloc_state *s = ctx;
    if (++s->calls == s->fail_at)
        return NULL;
    void *q = realloc(p, n);
    if (q && !p)
        s->live++;
    return q;
}

static void t_free(void *p, void *ctx)
{
    tu_alloc_state *s = ctx;
    if (p)
        s->live--;
    free(p);
}

void tu_alloc_install(tu_alloc_state *st)
{
    g_state = st;
    ec_allocator a = {t_malloc, t_realloc, t_free, st};
    ec_set_allocator(&a);
}

void tu_alloc_uninstall(void)
{
    g_state = NULL;
    ec_set_allocator(NULL);
}

void tu_gate_init(tu_gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
}

void tu_gate_wait(void *gate)
{
    tu_gate *g = gate;
    pthread_mutex_lock(&g->mu);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void tu_gate_open(tu_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *tu_profile_path(const char *name)
{
    static char buf[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/data/profiles/%s.json", EC_SOURCE_DIR, name);
    return buf[i];
}

ec_sim_result tu_sim_run(ec_sim *s, ec_policy_kind k, int32_t per_layer, int32_t global,
                         int32_t horizon, const ec_sim_timing *tm)
{
    ec_sim_config cfg = {.kind = k, .cache_per_layer = per_layer, .cache_global = global,
                         .horizon = horizon, .timing = *tm};
    ec_sim_result r;
    ec_error err = {0};
    cr_assert_eq(ec_sim_run(s, &cfg, &r, &err), EC_OK, "%s: %s", ec_policy_kind_name(k),
                 err.message);
    return r;
}
