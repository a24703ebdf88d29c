/* The device slot table: which expert sits in which slot, and its state. */
#include "internal.h"

#include <string.h>

static const ec_slot EMPTY_SLOT = {
    .layer = -1, .expert = -1, .state = EC_SLOT_EMPTY, .pins = 0, .prefetched = 0,
    .last_use = -1, .uses = 0, .filled_at = -1, .target_step = -1, .need_step = -1,
};

ec_status ec_cache_create(int32_t n_layers, int32_t n_experts, int32_t per_layer, int32_t global,
                          ec_cache **out)
{
    if (!out)
        return EC_ERR_INVALID;
    *out = NULL;
    if (n_layers < 1 || n_layers > EC_MAX_LAYERS || n_experts < 1 || n_experts > EC_MAX_EXPERTS)
        return EC_ERR_INVALID;
    if (per_layer <= 0 && global <= 0)
        return EC_ERR_INVALID;
    int64_t all = (int64_t)n_layers * n_experts;
    ec_cache *c = ec_calloc(1, sizeof *c);
    if (!c)
        return EC_ERR_NOMEM;
    c->L = n_layers;
    c->E = n_experts;
    if (per_layer > 0) {
        c->per_layer = EC_MIN(per_layer, n_experts); /* more could never be filled */
        c->n_slots = c->per_layer * n_layers;
    } else {
        c->global = (int32_t)EC_MIN((int64_t)global, all);
        c->n_slots = c->global;
    }
    c->slots = ec_malloc((size_t)c->n_slots * sizeof *c->slots);
    c->prev = ec_malloc((size_t)c->n_slots * sizeof *c->prev);
    c->where = ec_malloc((size_t)all * sizeof *c->where);
    c->freq = ec_malloc((size_t)all * sizeof *c->freq);
    c->occ = ec_malloc((size_t)n_layers * sizeof *c->occ);
    if (!c->slots || !c->prev || !c->where || !c->freq || !c->occ) {
        ec_cache_destroy(c);
        return EC_ERR_NOMEM;
    }
    ec_cache_reset(c);
    *out = c;
    return EC_OK;
}

void ec_cache_destroy(ec_cache *c)
{
    if (!c)
        return;
    ec_free(c->slots);
    ec_free(c->prev);
    ec_free(c->where);
    ec_free(c->freq);
    ec_free(c->occ);
    ec_free(c->quota);
    ec_free(c);
}

void ec_cache_reset(ec_cache *c)
{
    for (int32_t i = 0; i < c->n_slots; i++)
        c->slots[i] = c->prev[i] = EMPTY_SLOT;
    size_t all = (size_t)c->L * (size_t)c->E;
    memset(c->where, 0xff, all * sizeof *c->where);
    memset(c->freq, 0, all * sizeof *c->freq);
    memset(c->occ, 0, (size_t)c->L * sizeof *c->occ);
    memset(&c->stats, 0, sizeof c->stats);
}

int32_t ec_cache_n_slots(const ec_cache *c) { return c->n_slots; }

const ec_slot *ec_cache_slot(const ec_cache *c, int32_t slot)
{
    return slot >= 0 && slot < c->n_slots ? &c->slots[slot] : NULL;
}

int32_t ec_cache_find(const ec_cache *c, int32_t layer, int32_t expert)
{
    if (layer < 0 || layer >= c->L || expert < 0 || expert >= c->E)
        return -1;
    return c->where[cache_key(c, layer, expert)];
}

void ec_cache_pool(const ec_cache *c, int32_t layer, int32_t *first, int32_t *n)
{
    cache_pool(c, layer, first, n);
}

const ec_cache_stats *ec_cache_stats_get(const ec_cache *c) { return &c->stats; }

ec_status ec_cache_set_quotas(ec_cache *c, const int32_t *quota)
{
    if (!c)
        return EC_ERR_INVALID;
    if (!quota) {
        ec_free(c->quota);
        c->quota = NULL;
        return EC_OK;
    }
    if (c->per_layer > 0)
        return EC_ERR_INVALID;
    int64_t sum = 0;
    for (int32_t l = 0; l < c->L; l++) {
        if (quota[l] < 0 || quota[l] > c->E)
            return EC_ERR_INVALID;
        sum += quota[l];
    }
    if (sum != c->n_slots)
        return EC_ERR_INVALID;
    if (!c->quota && !(c->quota = ec_malloc((size_t)c->L * sizeof *c->quota)))
        return EC_ERR_NOMEM;
    memcpy(c->quota, quota, (size_t)c->L * sizeof *c->quota);
    return EC_OK;
}

int32_t ec_cache_quota(const ec_cache *c, int32_t layer)
{
    return c->quota && layer >= 0 && layer < c->L ? c->quota[layer] : -1;
}

void cache_assign(ec_cache *c, int32_t slot, int32_t layer, int32_t expert, int64_t step,
                  int demand, int64_t target_step)
{
    ec_slot *s = &c->slots[slot];
    if (s->layer >= 0) {
        c->where[cache_key(c, s->layer, s->expert)] = -1;
        c->occ[s->layer]--;
    }
    c->occ[layer]++;
    c->prev[slot] = *s;
    *s = EMPTY_SLOT;
    s->layer = layer;
    s->expert = expert;
    s->state = EC_SLOT_QUEUED;
    s->prefetched = (uint8_t)!demand;
    s->filled_at = step;
    s->target_step = target_step;
    s->need_step = demand ? step : -1;
    c->where[cache_key(c, layer, expert)] = slot;
}

void cache_restore(ec_cache *c, int32_t slot)
{
    ec_slot *s = &c->slots[slot];
    if (s->layer >= 0) {
        if (c->where[cache_key(c, s->layer, s->expert)] == slot)
            c->where[cache_key(c, s->layer, s->expert)] = -1;
        c->occ[s->layer]--;
    }
    const ec_slot *p = &c->prev[slot];
    if (p->layer >= 0 && c->where[cache_key(c, p->layer, p->expert)] < 0) {
        *s = *p;
        c->occ[p->layer]++;
        c->where[cache_key(c, p->layer, p->expert)] = slot;
    } else {
        *s = EMPTY_SLOT;
    }
    c->prev[slot] = EMPTY_SLOT;
}

void cache_drop(ec_cache *c, int32_t slot)
{
    ec_slot *s = &c->slots[slot];
    if (s->layer >= 0) {
        c->where[cache_key(c, s->layer, s->expert)] = -1;
        c->occ[s->layer]--;
    }
    *s = EMPTY_SLOT;
    c->stats.evictions++;
}

void cache_fill_all(ec_cache *c)
{
    for (int32_t l = 0; l < c->L; l++)
        for (int32_t e = 0; e < c->E; e++) {
            int32_t first, n;
            cache_pool(c, l, &first, &n);
            int32_t slot = c->per_layer > 0 ? first + e : l * c->E + e;
            ec_slot *s = &c->slots[slot];
            *s = EMPTY_SLOT;
            s->layer = l;
            s->expert = e;
            s->state = EC_SLOT_READY;
            c->where[cache_key(c, l, e)] = slot;
            c->occ[l]++;
        }
}
