/*
 * The transfer queue: transfers decided but not started, one per slot at
 * most. Two intrusive lists indexed by slot (demands, then prefetches), so
 * that push, remove and pop are O(1) and a demand always leaves first.
 */
#include "internal.h"

#include <string.h>

ec_status ec_queue_create(int32_t capacity, ec_queue **out)
{
    if (!out)
        return EC_ERR_INVALID;
    *out = NULL;
    if (capacity < 1)
        return EC_ERR_INVALID;
    ec_queue *q = ec_calloc(1, sizeof *q);
    if (!q)
        return EC_ERR_NOMEM;
    q->cap = capacity;
    q->node = ec_calloc((size_t)capacity, sizeof *q->node);
    q->next = ec_malloc((size_t)capacity * sizeof *q->next);
    q->prv = ec_malloc((size_t)capacity * sizeof *q->prv);
    q->list = ec_calloc((size_t)capacity, 1);
    if (!q->node || !q->next || !q->prv || !q->list) {
        ec_queue_destroy(q);
        return EC_ERR_NOMEM;
    }
    queue_clear(q);
    *out = q;
    return EC_OK;
}

void ec_queue_destroy(ec_queue *q)
{
    if (!q)
        return;
    ec_free(q->node);
    ec_free(q->next);
    ec_free(q->prv);
    ec_free(q->list);
    ec_free(q);
}

void queue_clear(ec_queue *q)
{
    memset(q->list, 0, (size_t)q->cap);
    for (int i = 0; i < 3; i++)
        q->head[i] = q->tail[i] = -1;
    q->len = 0;
}

int32_t ec_queue_len(const ec_queue *q) { return q->len; }

void queue_push(ec_queue *q, const ec_transfer *t)
{
    int32_t s = t->slot, l = t->demand ? QUEUE_DEMAND : QUEUE_PREFETCH;
    q->node[s] = *t;
    q->list[s] = (uint8_t)l;
    q->next[s] = -1;
    q->prv[s] = q->tail[l];
    if (q->tail[l] >= 0)
        q->next[q->tail[l]] = s;
    else
        q->head[l] = s;
    q->tail[l] = s;
    q->len++;
}

void queue_remove(ec_queue *q, int32_t s)
{
    if (s < 0 || s >= q->cap || !q->list[s])
        return;
    int32_t l = q->list[s];
    if (q->prv[s] >= 0)
        q->next[q->prv[s]] = q->next[s];
    else
        q->head[l] = q->next[s];
    if (q->next[s] >= 0)
        q->prv[q->next[s]] = q->prv[s];
    else
        q->tail[l] = q->prv[s];
    q->list[s] = QUEUE_NONE;
    q->len--;
}

int ec_queue_pop(ec_queue *q, ec_transfer *out)
{
    int32_t s = q->head[QUEUE_DEMAND] >= 0 ? q->head[QUEUE_DEMAND] : q->head[QUEUE_PREFETCH];
    if (s < 0)
        return 0;
    if (out)
        *out = q->node[s];
    queue_remove(q, s);
    return 1;
}

const ec_transfer *ec_queue_at(const ec_queue *q, int32_t i)
{
    if (i < 0)
        return NULL;
    for (int l = QUEUE_DEMAND; l <= QUEUE_PREFETCH; l++)
        for (int32_t s = q->head[l]; s >= 0; s = q->next[s])
            if (i-- == 0)
                return &q->node[s];
    return NULL;
}
