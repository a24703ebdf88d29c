/*
 * Perfect knowledge from a trace: for every (layer, expert) the sorted list
 * of steps that use it, so that "next use at or after step" is a binary
 * search. step = i * n_layers + layer for the i-th replayed row.
 */
#include "../core/internal.h"
#include "expertcast/replay.h"

struct ec_trace_future {
    ec_future fn;
    const ec_trace *t;
    const size_t *rows; /* copy of the replayed rows */
    size_t n_rows;
    size_t *start;      /* [L * E + 1] offsets into steps */
    int64_t *steps;     /* uses, grouped by (layer, expert), ascending */
};

static int64_t next_use(void *ctx, int64_t from, int32_t layer, int32_t expert)
{
    const ec_trace_future *f = ctx;
    if (layer < 0 || layer >= f->t->n_layers || expert < 0 || expert >= f->t->n_experts)
        return INT64_MAX;
    size_t key = (size_t)layer * (size_t)f->t->n_experts + (size_t)expert;
    size_t lo = f->start[key], hi = f->start[key + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->steps[mid] < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < f->start[key + 1] ? f->steps[lo] : INT64_MAX;
}

static int32_t experts_at(void *ctx, int64_t step, int32_t *layer, int16_t *experts)
{
    const ec_trace_future *f = ctx;
    int32_t L = f->t->n_layers;
    if (step < 0 || (uint64_t)(step / L) >= f->n_rows)
        return 0;
    *layer = (int32_t)(step % L);
    const int16_t *e = ec_trace_experts(f->t, f->rows[step / L], *layer);
    if (e[0] < 0)
        return 0;
    for (int32_t i = 0; i < f->t->k; i++)
        experts[i] = e[i];
    return f->t->k;
}

ec_status ec_trace_future_create(const ec_trace *t, const size_t *rows, size_t n_rows,
                                 ec_trace_future **out)
{
    if (!out)
        return EC_ERR_INVALID;
    *out = NULL;
    if (!t || (!rows && n_rows))
        return EC_ERR_INVALID;
    size_t LE = (size_t)t->n_layers * (size_t)t->n_experts;
    ec_trace_future *f = ec_calloc(1, sizeof *f);
    if (!f)
        return EC_ERR_NOMEM;
    f->t = t;
    f->n_rows = n_rows;
    size_t *rcopy = ec_malloc((n_rows ? n_rows : 1) * sizeof *rcopy);
    f->start = ec_calloc(LE + 1, sizeof *f->start);
    size_t uses = n_rows * (size_t)t->n_layers * (size_t)t->k;
    f->steps = ec_malloc((uses ? uses : 1) * sizeof *f->steps);
    size_t *fill = ec_calloc(LE, sizeof *fill);
    if (!rcopy || !f->start || !f->steps || !fill) {
        ec_free(rcopy);
        ec_free(fill);
        f->rows = NULL;
        ec_trace_future_destroy(f);
        return EC_ERR_NOMEM;
    }
    for (size_t i = 0; i < n_rows; i++)
        rcopy[i] = rows[i];
    f->rows = rcopy;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n_rows; i++) {
            for (int32_t l = 0; l < t->n_layers; l++) {
                const int16_t *e = ec_trace_experts(t, rows[i], l);
                if (e[0] < 0)
                    continue;
                for (int32_t j = 0; j < t->k; j++) {
                    size_t key = (size_t)l * (size_t)t->n_experts + (size_t)e[j];
                    if (pass == 0)
                        f->start[key + 1]++;
                    else
                        f->steps[f->start[key] + fill[key]++] = (int64_t)i * t->n_layers + l;
                }
            }
        }
        if (pass == 0)
            for (size_t key = 0; key < LE; key++)
                f->start[key + 1] += f->start[key];
    }
    ec_free(fill);
    f->fn = (ec_future){.next_use = next_use, .experts_at = experts_at, .ctx = f};
    *out = f;
    return EC_OK;
}

void ec_trace_future_destroy(ec_trace_future *f)
{
    if (!f)
        return;
    ec_free((void *)f->rows);
    ec_free(f->start);
    ec_free(f->steps);
    ec_free(f);
}

const ec_future *ec_trace_future_get(const ec_trace_future *f) { return &f->fn; }
