/*
 * fuzz_rules_json: ec_seed_rules_load on a file holding arbitrary bytes (the
 * loader reads files only, so the bytes go to a scratch file on tmpfs).
 * Either a clean one-line parse error naming the file, or rules whose every
 * key and prediction fit the shape, that ec_seed_rules_find finds again,
 * that write and load back the same, and that load as the hybrid predictor.
 */
#include "targets.h"

#include "expertcast/seed.h"
#include "predict/predictor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A per-process scratch folder, on tmpfs when there is one. */
static const char *scratch(const char *name)
{
    static char dir[64];
    static char path[2][128];
    static int next;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/ec_fuzz_rules_XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
            abort();
    }
    char *p = path[next++ % 2];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static int write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static const char *check_rules(const ec_seed_rules *r)
{
    int32_t L = ec_seed_rules_n_layers(r), E = ec_seed_rules_n_experts(r);
    if (L < 1 || L > EC_MAX_LAYERS || E < 1 || E > EC_MAX_EXPERTS || ec_seed_rules_k(r) < 1 ||
        ec_seed_rules_k(r) > EC_MAX_K)
        return "rules shape out of bounds";
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        int32_t arity = ec_seed_level_arity((ec_seed_level)lv);
        int32_t dist = ec_seed_level_distance((ec_seed_level)lv);
        for (size_t i = 0; i < ec_seed_rules_count(r, (ec_seed_level)lv); i++) {
            const ec_seed_rule *u = ec_seed_rules_at(r, (ec_seed_level)lv, i);
            if (!u || u->key[0] < 0 || u->key[0] + dist >= L)
                return "rule layer (plus its distance) outside n_layers";
            for (int32_t j = 1; j < arity; j++)
                if (u->key[j] < 0 || u->key[j] >= E)
                    return "rule key expert outside n_experts";
            if (u->prediction < 0 || u->prediction >= E)
                return "rule prediction outside n_experts";
            if (u->votes < 1 || u->votes > u->samples)
                return "rule votes not in [1, samples]";
            if (ec_seed_rules_find(r, (ec_seed_level)lv, u->key) != u)
                return "ec_seed_rules_find does not find a rule of the table";
        }
    }
    return NULL;
}

static const char *same_rules(const ec_seed_rules *a, const ec_seed_rules *b)
{
    if (ec_seed_rules_n_layers(a) != ec_seed_rules_n_layers(b) ||
        ec_seed_rules_n_experts(a) != ec_seed_rules_n_experts(b) ||
        ec_seed_rules_k(a) != ec_seed_rules_k(b))
        return "write and load changed the shape";
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        size_t n = ec_seed_rules_count(a, (ec_seed_level)lv);
        if (ec_seed_rules_count(b, (ec_seed_level)lv) != n)
            return "write and load changed a level's rule count";
        for (size_t i = 0; i < n; i++) {
            const ec_seed_rule *x = ec_seed_rules_at(a, (ec_seed_level)lv, i);
            const ec_seed_rule *y = ec_seed_rules_at(b, (ec_seed_level)lv, i);
            if (memcmp(x->key, y->key, sizeof x->key) != 0 || x->prediction != y->prediction ||
                x->votes != y->votes || x->samples != y->samples)
                return "write and load changed a rule";
        }
    }
    return NULL;
}

const char *fuzz_rules_json(const uint8_t *data, size_t size)
{
    const char *path = scratch("rules.json");
    if (write_file(path, data, size))
        abort();
    ec_seed_rules *r = (ec_seed_rules *)path; /* must come back NULL on failure */
    ec_error err = {0};
    ec_status s = ec_seed_rules_load(path, &r, &err);
    if (s != EC_OK) {
        if (r)
            return "failed load left rules behind";
        if (s != EC_ERR_PARSE)
            return "malformed rules gave a status other than EC_ERR_PARSE";
        if (strchr(err.message, '\n'))
            return "error message spans several lines";
        if (strncmp(err.message, path, strlen(path)) != 0)
            return "error message does not start with the file name";
        return NULL;
    }
    const char *bad = check_rules(r);
    if (!bad) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
            abort();
        s = ec_seed_rules_write(r, f, &err);
        fclose(f);
        const char *again = scratch("again.json");
        ec_seed_rules *r2 = NULL;
        if (s != EC_OK)
            bad = "writing loaded rules failed";
        else if (write_file(again, text, len))
            abort();
        else if (ec_seed_rules_load(again, &r2, &err) != EC_OK)
            bad = "written rules do not load back";
        else
            bad = same_rules(r, r2);
        ec_seed_rules_destroy(r2);
        free(text);
    }
    if (!bad) {
        /* The same file as the hybrid predictor: predictions are distributions. */
        ec_predictor *p = NULL;
        if (ec_predictor_load_seed_rules(path, "hybrid", &p, &err) != EC_OK)
            bad = "rules that load do not load as the hybrid predictor";
        else if (ec_predictor_n_layers(p) != ec_seed_rules_n_layers(r) ||
                 ec_predictor_n_experts(p) != ec_seed_rules_n_experts(r))
            bad = "the hybrid predictor's shape differs from the rules'";
        else
            bad = fuzz_check_predictor(p);
        ec_predictor_destroy(p);
    }
    ec_seed_rules_destroy(r);
    return bad;
}
