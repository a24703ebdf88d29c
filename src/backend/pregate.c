/* Pre-gating: a router's softmax on the host (the reference), and the
 * stream entry point that routes to the backend. */
#include "backend_impl.h"
#include "expertcast/pregate.h"

#include <math.h>

static inline double elem(const void *v, ec_gate_dtype dt, size_t i)
{
    return dt == EC_GATE_F16 ? (double)ec_half_to_float(((const uint16_t *)v)[i])
                              : (double)((const float *)v)[i];
}

ec_status ec_pregate_host(const void *w, const void *x, ec_gate_dtype dt, int32_t n_experts,
                          int32_t d, float *probs)
{
    if (!w || !x || !probs || (dt != EC_GATE_F32 && dt != EC_GATE_F16) || n_experts < 1 ||
        n_experts > EC_PREGATE_MAX_EXPERTS || d < 1)
        return EC_ERR_INVALID;
    double mx = -INFINITY;
    for (int32_t e = 0; e < n_experts; e++) { /* logits first, into probs */
        double acc = 0;
        size_t row = (size_t)e * (size_t)d;
        for (int32_t j = 0; j < d; j++)
            acc += elem(w, dt, row + (size_t)j) * elem(x, dt, (size_t)j);
        if (!isfinite(acc) || !(fabs(acc) <= 3.0e38)) {
            for (int32_t i = 0; i < n_experts; i++)
                probs[i] = NAN; /* as the stream paths leave them */
            return EC_ERR_RANGE;
        }
        probs[e] = (float)acc;
        mx = acc > mx ? acc : mx;
    }
    double sum = 0;
    for (int32_t e = 0; e < n_experts; e++)
        sum += exp((double)probs[e] - mx);
    for (int32_t e = 0; e < n_experts; e++)
        probs[e] = (float)(exp((double)probs[e] - mx) / sum);
    return EC_OK;
}

int32_t ec_pregate_topk(const float *probs, int32_t n_experts, int32_t k, int16_t *experts,
                        float *p)
{
    if (!probs || !experts || n_experts < 1 || k < 1)
        return 0;
    if (k > n_experts)
        k = n_experts;
    int32_t filled = 0;
    for (int32_t e = 0; e < n_experts; e++) {
        float v = probs[e];
        if (filled == k && !(v > probs[experts[k - 1]]))
            continue;
        int32_t j = filled < k ? filled++ : k - 1;
        while (j > 0 && v > probs[experts[j - 1]]) {
            experts[j] = experts[j - 1];
            j--;
        }
        experts[j] = (int16_t)e;
    }
    for (int32_t i = 0; p && i < k; i++)
        p[i] = probs[experts[i]];
    return k;
}

ec_status ec_stream_pregate(ec_stream *s, const void *w, const void *x, ec_gate_dtype dt,
                            int32_t n_experts, int32_t d, float *probs_host)
{
    if (!s)
        return EC_ERR_INVALID;
    if (!w || !x || !probs_host)
        return ec_backend_fail(s->backend, EC_ERR_INVALID, "ec_stream_pregate: NULL buffer");
    if ((dt != EC_GATE_F32 && dt != EC_GATE_F16) || n_experts < 1 ||
        n_experts > EC_PREGATE_MAX_EXPERTS || d < 1)
        return ec_backend_fail(s->backend, EC_ERR_INVALID,
                               "ec_stream_pregate: dtype %d, %d experts (1..%d), d %d",
                               (int)dt, (int)n_experts, EC_PREGATE_MAX_EXPERTS, (int)d);
    if (!s->backend->iface->pregate)
        return ec_backend_fail(s->backend, EC_ERR_UNSUPPORTED,
                               "ec_stream_pregate: not available on backend %s",
                               s->backend->iface->name);
    return s->backend->iface->pregate(s->backend, s, w, x, (int)dt, n_experts, d, probs_host);
}
