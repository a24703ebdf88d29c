/*
 * The analytic lower bound's transfer count: Belady's furthest-next-use
 * eviction with the requests taken one at a time. No algorithm with the
 * same cache size - prefetching or not - moves fewer experts, and holding a
 * step's experts together only adds constraints, so these loads are a floor
 * for every policy that starts with an empty cache.
 */
#include "internal.h"

#include <string.h>

typedef struct heap_ent {
    int64_t next; /* position of the next request; INT64_MAX never */
    int32_t key;
} heap_ent;

static void heap_push(heap_ent *h, int64_t *n, heap_ent v)
{
    int64_t i = (*n)++;
    while (i > 0) {
        int64_t up = (i - 1) / 2;
        if (!(h[up].next < v.next || (h[up].next == v.next && h[up].key > v.key)))
            break;
        h[i] = h[up];
        i = up;
    }
    h[i] = v;
}

static heap_ent heap_pop(heap_ent *h, int64_t *n)
{
    heap_ent top = h[0], v = h[--*n];
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && (h[c + 1].next > h[c].next ||
                           (h[c + 1].next == h[c].next && h[c + 1].key < h[c].key)))
            c++;
        if (!(h[c].next > v.next || (h[c].next == v.next && h[c].key < v.key)))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

ec_status sim_belady_loads(ec_sim *s, int32_t per_layer, int32_t global)
{
    if (s->bound_per_layer == per_layer && s->bound_global == global)
        return EC_OK;
    size_t LE = (size_t)s->L * (size_t)s->E;
    int64_t P = s->off[s->S];
    heap_ent *heap = ec_malloc((size_t)EC_MAX(P, 1) * sizeof *heap);
    int64_t *cursor = ec_calloc(LE, sizeof *cursor);
    int64_t *cur_next = ec_malloc(LE * sizeof *cur_next);
    uint8_t *resident = ec_calloc(LE, 1);
    if (!heap || !cursor || !cur_next || !resident) {
        ec_free(heap);
        ec_free(cursor);
        ec_free(cur_next);
        ec_free(resident);
        return EC_ERR_NOMEM;
    }
    for (int32_t l = 0; l < s->L; l++)
        s->bound_loads[l] = 0;
    /* per-layer pools are independent: one pass per layer; a global pool:
     * one pass over everything */
    int32_t passes = per_layer > 0 ? s->L : 1;
    int64_t cap = per_layer > 0 ? EC_MIN(per_layer, s->E) : global;
    for (int32_t pass = 0; pass < passes; pass++) {
        int64_t hn = 0, size = 0;
        for (int64_t p = 0; p < P; p++) {
            int32_t l = (int32_t)(s->step_of[p] % s->L);
            if (per_layer > 0 && l != pass)
                continue;
            int32_t key = (int32_t)((size_t)l * s->E + (size_t)s->ex[p]);
            int64_t c = ++cursor[key], first = s->occ_off[key], cnt = s->occ_off[key + 1] - first;
            int64_t next = c < cnt ? s->occ[first + c] : INT64_MAX;
            if (!resident[key]) {
                s->bound_loads[l]++;
                while (size >= cap && hn > 0) {
                    heap_ent v = heap_pop(heap, &hn);
                    if (resident[v.key] && cur_next[v.key] == v.next) {
                        resident[v.key] = 0;
                        size--;
                    }
                }
                resident[key] = 1;
                size++;
            }
            cur_next[key] = next;
            heap_push(heap, &hn, (heap_ent){next, key});
        }
    }
    ec_free(heap);
    ec_free(cursor);
    ec_free(cur_next);
    ec_free(resident);
    s->bound_per_layer = per_layer;
    s->bound_global = global;
    return EC_OK;
}
