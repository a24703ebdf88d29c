/* The seed's rule tables: levels, key index, majority vote, journey cases. */
#include "rules.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name, *description;
    int32_t arity, distance;
} LEVELS[EC_SEED_N_LEVELS] = {
    {"level1", "(Layer, Expert) -> Next Expert", 2, 1},
    {"level2", "(Layer, Prev, Curr) -> Next Expert", 3, 1},
    {"level3", "(Layer, E-2, E-1, E) -> Next Expert", 4, 1},
    {"level4", "(Layer, Primary, Secondary) -> Next Primary", 3, 1},
    {"level5_skip2", "(Layer, Expert) -> Expert at Layer+2", 2, 2},
    {"level5_skip4", "(Layer, Expert) -> Expert at Layer+4", 2, 4},
    {"level5_skip8", "(Layer, Expert) -> Expert at Layer+8", 2, 8},
};

static int valid_level(ec_seed_level lv) { return (int)lv >= 0 && lv < EC_SEED_N_LEVELS; }

const char *ec_seed_level_name(ec_seed_level lv)
{
    return valid_level(lv) ? LEVELS[lv].name : NULL;
}

const char *ec_seed_level_description(ec_seed_level lv)
{
    return valid_level(lv) ? LEVELS[lv].description : NULL;
}

int32_t ec_seed_level_arity(ec_seed_level lv) { return valid_level(lv) ? LEVELS[lv].arity : 0; }

int32_t ec_seed_level_distance(ec_seed_level lv)
{
    return valid_level(lv) ? LEVELS[lv].distance : 0;
}

/* ---- the table ------------------------------------------------------------ */

ec_seed_rules *seed_rules_new(void)
{
    ec_seed_rules *r = ec_calloc(1, sizeof *r);
    if (r)
        r->experts_source = EC_SEED_SHAPE_GIVEN;
    return r;
}

void ec_seed_rules_destroy(ec_seed_rules *r)
{
    if (!r)
        return;
    for (int i = 0; i < EC_SEED_N_LEVELS; i++) {
        ec_free(r->lv[i].rules);
        ec_free(r->lv[i].slots);
        ec_free(r->lv[i].head);
        ec_free(r->lv[i].tail);
    }
    ec_free(r->cand);
    for (size_t i = 0; i < r->n_train; i++)
        ec_free(r->train_files[i]);
    ec_free(r->train_files);
    ec_free(r);
}

static uint32_t key_hash(const int32_t *key, int32_t arity)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int32_t i = 0; i < arity; i++) {
        h ^= (uint32_t)key[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
    }
    return (uint32_t)h;
}

static int key_eq(const int32_t *a, const int32_t *b, int32_t arity)
{
    for (int32_t i = 0; i < arity; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* Slot of key in t (empty slot when absent); n_slots must be > 0. */
static size_t probe(const seed_table *t, const int32_t *key, int32_t arity)
{
    size_t mask = t->n_slots - 1, i = key_hash(key, arity) & mask;
    while (t->slots[i] && !key_eq(t->rules[t->slots[i] - 1].key, key, arity))
        i = (i + 1) & mask;
    return i;
}

static ec_status rehash(seed_table *t, size_t n_slots, int32_t arity)
{
    uint32_t *slots = ec_calloc(n_slots, sizeof *slots);
    if (!slots)
        return EC_ERR_NOMEM;
    ec_free(t->slots);
    t->slots = slots;
    t->n_slots = n_slots;
    for (size_t j = 0; j < t->n; j++)
        t->slots[probe(t, t->rules[j].key, arity)] = (uint32_t)(j + 1);
    return EC_OK;
}

ec_status seed_table_get(ec_seed_rules *r, ec_seed_level lv, const int32_t *key,
                         ec_seed_rule **out, int *created)
{
    seed_table *t = &r->lv[lv];
    int32_t arity = LEVELS[lv].arity;
    *created = 0;
    if (t->n_slots) {
        size_t i = probe(t, key, arity);
        if (t->slots[i]) {
            *out = &t->rules[t->slots[i] - 1];
            return EC_OK;
        }
    }
    if (t->n + 1 > UINT32_MAX - 1)
        return EC_ERR_NOMEM;
    if (2 * (t->n + 1) > t->n_slots && rehash(t, t->n_slots ? 2 * t->n_slots : 64, arity))
        return EC_ERR_NOMEM;
    if (ec_grow((void **)&t->rules, &t->cap, t->n + 1, sizeof *t->rules) ||
        ec_grow((void **)&t->head, &t->cap_head, t->n + 1, sizeof *t->head) ||
        ec_grow((void **)&t->tail, &t->cap_tail, t->n + 1, sizeof *t->tail))
        return EC_ERR_NOMEM;
    ec_seed_rule *rule = &t->rules[t->n];
    memset(rule, 0, sizeof *rule);
    memcpy(rule->key, key, (size_t)arity * sizeof *key);
    t->head[t->n] = t->tail[t->n] = -1;
    t->slots[probe(t, key, arity)] = (uint32_t)(t->n + 1);
    t->n++;
    *out = rule;
    *created = 1;
    return EC_OK;
}

ec_status seed_rules_add_votes(ec_seed_rules *r, ec_seed_level lv, size_t i, int32_t target,
                               int32_t count)
{
    seed_table *t = &r->lv[lv];
    for (int32_t c = t->head[i]; c >= 0; c = r->cand[c].next)
        if (r->cand[c].expert == target) {
            r->cand[c].count += count;
            return EC_OK;
        }
    if (r->n_cand >= INT32_MAX ||
        ec_grow((void **)&r->cand, &r->cap_cand, r->n_cand + 1, sizeof *r->cand))
        return EC_ERR_NOMEM;
    int32_t c = (int32_t)r->n_cand++;
    r->cand[c] = (seed_cand){target, count, -1};
    if (t->tail[i] >= 0)
        r->cand[t->tail[i]].next = c;
    else
        t->head[i] = c;
    t->tail[i] = c;
    return EC_OK;
}

ec_status seed_rules_vote(ec_seed_rules *r, ec_seed_level lv, const int32_t *key, int32_t target)
{
    ec_seed_rule *rule;
    int created;
    if (seed_table_get(r, lv, key, &rule, &created))
        return EC_ERR_NOMEM;
    if (seed_rules_add_votes(r, lv, (size_t)(rule - r->lv[lv].rules), target, 1))
        return EC_ERR_NOMEM;
    rule->samples++;
    return EC_OK;
}

void seed_rules_finish(ec_seed_rules *r)
{
    for (int lv = 0; lv < EC_SEED_N_LEVELS; lv++) {
        seed_table *t = &r->lv[lv];
        for (size_t i = 0; i < t->n; i++) {
            int32_t best = -1, votes = 0;
            /* strictly more votes replaces: a tie keeps the first seen */
            for (int32_t c = t->head[i]; c >= 0; c = r->cand[c].next)
                if (r->cand[c].count > votes) {
                    votes = r->cand[c].count;
                    best = r->cand[c].expert;
                }
            if (best >= 0) {
                t->rules[i].prediction = best;
                t->rules[i].votes = votes;
            }
        }
    }
}

/* ---- cases of a journey ---------------------------------------------------- */

ec_status seed_journey_cases(const int32_t *p, const int32_t *sec, int32_t L, seed_case_fn fn,
                             void *ctx)
{
    static const ec_seed_level skips[3] = {EC_SEED_SKIP2, EC_SEED_SKIP4, EC_SEED_SKIP8};
    ec_status s;
    int32_t key[4];
    for (int32_t l = 0; l < L; l++) {
        if (p[l] < 0)
            continue;
        if (l + 1 < L && p[l + 1] >= 0) {
            int32_t next = p[l + 1];
            key[0] = l;
            key[1] = p[l];
            if ((s = fn(ctx, EC_SEED_L1, key, next)))
                return s;
            if (l >= 1 && p[l - 1] >= 0) {
                key[1] = p[l - 1];
                key[2] = p[l];
                if ((s = fn(ctx, EC_SEED_L2, key, next)))
                    return s;
                if (l >= 2 && p[l - 2] >= 0) {
                    key[1] = p[l - 2];
                    key[2] = p[l - 1];
                    key[3] = p[l];
                    if ((s = fn(ctx, EC_SEED_L3, key, next)))
                        return s;
                }
            }
            if (sec[l] >= 0) {
                key[1] = p[l];
                key[2] = sec[l];
                if ((s = fn(ctx, EC_SEED_L4, key, next)))
                    return s;
            }
        }
        for (int i = 0; i < 3; i++) {
            int32_t d = LEVELS[skips[i]].distance;
            if (l + d < L && p[l + d] >= 0) {
                key[0] = l;
                key[1] = p[l];
                if ((s = fn(ctx, skips[i], key, p[l + d])))
                    return s;
            }
        }
    }
    return EC_OK;
}

void seed_row_journey(const ec_trace *t, size_t row, int32_t *primary, int32_t *secondary)
{
    for (int32_t l = 0; l < t->n_layers; l++) {
        const int16_t *e = ec_trace_experts(t, row, l);
        primary[l] = e[0] >= 0 ? e[0] : -1;
        secondary[l] = e[0] >= 0 && t->k >= 2 ? e[1] : -1;
    }
}

/* ---- keys ------------------------------------------------------------------- */

void seed_key_format(const int32_t *key, int32_t arity, char *buf, size_t size)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, size - n, "(");
    for (int32_t i = 0; i < arity && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%d", i ? ", " : "", key[i]);
    if (n < size)
        snprintf(buf + n, size - n, ")");
}

int seed_key_parse(const char *s, int32_t arity, int32_t *key)
{
    while (isspace((unsigned char)*s))
        s++;
    if (*s++ != '(')
        return -1;
    for (int32_t i = 0; i < arity; i++) {
        while (isspace((unsigned char)*s))
            s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || v > INT32_MAX)
            return -1;
        key[i] = (int32_t)v;
        s = end;
        while (isspace((unsigned char)*s))
            s++;
        if (*s++ != (i + 1 < arity ? ',' : ')'))
            return -1;
    }
    while (isspace((unsigned char)*s))
        s++;
    return *s ? -1 : 0;
}

/* ---- accessors ------------------------------------------------------------- */

size_t ec_seed_rules_count(const ec_seed_rules *r, ec_seed_level lv)
{
    return r && valid_level(lv) ? r->lv[lv].n : 0;
}

const ec_seed_rule *ec_seed_rules_at(const ec_seed_rules *r, ec_seed_level lv, size_t i)
{
    return r && valid_level(lv) && i < r->lv[lv].n ? &r->lv[lv].rules[i] : NULL;
}

const ec_seed_rule *ec_seed_rules_find(const ec_seed_rules *r, ec_seed_level lv,
                                       const int32_t *key)
{
    if (!r || !valid_level(lv) || !r->lv[lv].n_slots)
        return NULL;
    const seed_table *t = &r->lv[lv];
    size_t i = probe(t, key, LEVELS[lv].arity);
    return t->slots[i] ? &t->rules[t->slots[i] - 1] : NULL;
}

int32_t ec_seed_rules_n_layers(const ec_seed_rules *r) { return r ? r->n_layers : 0; }
int32_t ec_seed_rules_n_experts(const ec_seed_rules *r) { return r ? r->n_experts : 0; }
int32_t ec_seed_rules_k(const ec_seed_rules *r) { return r ? r->k : 0; }
size_t ec_seed_rules_n_journeys(const ec_seed_rules *r) { return r ? r->n_journeys : 0; }
size_t ec_seed_rules_n_training_files(const ec_seed_rules *r) { return r ? r->n_train : 0; }

ec_seed_shape_source ec_seed_rules_experts_source(const ec_seed_rules *r)
{
    return r ? r->experts_source : EC_SEED_SHAPE_GIVEN;
}

const char *ec_seed_rules_training_file(const ec_seed_rules *r, size_t i)
{
    return r && i < r->n_train ? r->train_files[i] : NULL;
}
