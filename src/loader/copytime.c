/* The measured cost of one expert copy on a backend. */
#include "../core/internal.h"
#include "expertcast/replay.h"

ec_status ec_replay_measure_copy_ms(ec_backend *b, ec_store *s, double *ms_out, ec_error *err)
{
    if (!b || !s || !ms_out)
        return ec_error_set(err, EC_ERR_INVALID, "ec_replay_measure_copy_ms: NULL argument");
    ec_stream *st = NULL;
    ec_event *e0 = NULL, *e1 = NULL;
    void *dev = NULL;
    size_t n = ec_store_expert_bytes(s);
    ec_status r;
    float ms[5];
    if (!(r = ec_stream_create(b, &st)) && !(r = ec_event_create(b, EC_EVENT_TIMING, &e0)) &&
        !(r = ec_event_create(b, EC_EVENT_TIMING, &e1)) &&
        !(r = ec_backend_dev_alloc(b, n, &dev))) {
        for (int i = 0; i < 5 && !r; i++) {
            if (!(r = ec_event_record(e0, st)) &&
                !(r = ec_stream_copy_h2d(st, dev, ec_store_expert(s, 0, i % ec_store_n_experts(s)),
                                         n)) &&
                !(r = ec_event_record(e1, st)) && !(r = ec_event_sync(e1)))
                r = ec_event_elapsed(e0, e1, &ms[i]);
        }
    }
    if (r) {
        ec_error_set(err, r, "measuring the copy time: %s", ec_backend_errmsg(b));
        /* a copy that may still be running keeps its device buffer (not freed) */
        if (dev && ec_stream_sync(st) != EC_OK)
            dev = NULL;
    } else {
        for (int i = 1; i < 5; i++) /* insertion sort of 5 */
            for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
                float t = ms[j];
                ms[j] = ms[j - 1];
                ms[j - 1] = t;
            }
        *ms_out = ms[2];
    }
    ec_backend_dev_free(b, dev);
    ec_event_destroy(e0);
    ec_event_destroy(e1);
    ec_stream_destroy(st);
    return r;
}
