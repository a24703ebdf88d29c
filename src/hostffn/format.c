/* Expert weight formats: sizes, validation, quantization and the scalar reference. */
#include "internal.h"

#include <math.h>
#include <string.h>

const char *ec_dtype_name(ec_dtype dt)
{
    switch (dt) {
    case EC_DTYPE_F16: return "f16";
    case EC_DTYPE_Q4: return "q4";
    }
    return NULL;
}

ec_status ec_dtype_parse(const char *name, ec_dtype *out)
{
    if (!name || !out)
        return EC_ERR_INVALID;
    if (!strcmp(name, "f16") || !strcmp(name, "fp16")) {
        *out = EC_DTYPE_F16;
        return EC_OK;
    }
    if (!strcmp(name, "q4") || !strcmp(name, "q4_0") || !strcmp(name, "int4")) {
        *out = EC_DTYPE_Q4;
        return EC_OK;
    }
    return EC_ERR_NOT_FOUND;
}

size_t ec_expert_bytes(ec_dtype dt, int32_t d_model, int32_t d_ff)
{
    if (d_model < 1 || d_ff < 1 || !ec_dtype_name(dt))
        return 0;
    if (dt == EC_DTYPE_Q4 && (d_model % EC_Q4_GROUP || d_ff % EC_Q4_GROUP))
        return 0;
    if ((uint64_t)d_model * (uint64_t)d_ff > SIZE_MAX / 6)
        return 0;
    size_t n = (size_t)d_model * (size_t)d_ff;
    return dt == EC_DTYPE_Q4 ? 3 * (n / EC_Q4_GROUP) * EC_Q4_BLOCK_BYTES : 3 * n * 2;
}

/* ---- positions inside a blob ---------------------------------------------------------- */

static const char *const MATRIX[3] = {"W1", "W3", "W2"};

/* The matrix, row and column of element index e (value index for f16, the
 * group's first column for q4 where e counts groups). */
static void locate(ec_dtype dt, size_t e, int32_t d_model, int32_t d_ff, int *m, size_t *row,
                   size_t *col)
{
    size_t d = (size_t)d_model, ff = (size_t)d_ff, per = dt == EC_DTYPE_Q4 ? EC_Q4_GROUP : 1;
    size_t per_mat = d * ff / per;
    *m = (int)EC_MIN(e / per_mat, 2);
    size_t in = e - (size_t)*m * per_mat, cols = (*m < 2 ? d : ff) / per;
    *row = in / cols;
    *col = in % cols * per;
}

ec_status ec_expert_validate(ec_dtype dt, const void *blob, size_t bytes, int32_t d_model,
                             int32_t d_ff, ec_error *err)
{
    const char *name = ec_dtype_name(dt);
    if (!name)
        return ec_error_set(err, EC_ERR_INVALID, "expert: unknown dtype %d", (int)dt);
    size_t need = ec_expert_bytes(dt, d_model, d_ff);
    if (!need)
        return ec_error_set(err, EC_ERR_RANGE,
                            "%s expert: shape d_model %d x d_ff %d is invalid%s", name,
                            (int)d_model, (int)d_ff,
                            dt == EC_DTYPE_Q4 ? " (both must be multiples of 32)" : "");
    if (!blob && bytes)
        return ec_error_set(err, EC_ERR_INVALID, "%s expert: NULL blob", name);
    size_t unit = dt == EC_DTYPE_Q4 ? EC_Q4_BLOCK_BYTES : 2;
    if (bytes < need) {
        int m;
        size_t row, col, e = bytes / unit;
        locate(dt, e, d_model, d_ff, &m, &row, &col);
        if (dt == EC_DTYPE_Q4)
            return ec_error_set(err, EC_ERR_PARSE,
                                "%s expert: %zu bytes, %zu expected for d_model %d x d_ff %d: "
                                "truncated at %s row %zu group %zu (blob offset %zu)",
                                name, bytes, need, (int)d_model, (int)d_ff, MATRIX[m], row,
                                col / EC_Q4_GROUP, e * unit);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s expert: %zu bytes, %zu expected for d_model %d x d_ff %d: "
                            "truncated at %s row %zu column %zu (blob offset %zu)",
                            name, bytes, need, (int)d_model, (int)d_ff, MATRIX[m], row, col,
                            e * unit);
    }
    if (bytes > need)
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s expert: %zu bytes, %zu expected for d_model %d x d_ff %d: %zu "
                            "bytes past the end of W2 (blob offset %zu)",
                            name, bytes, need, (int)d_model, (int)d_ff, bytes - need, need);
    const uint8_t *p = blob;
    for (size_t e = 0, off = 0; off < need; e++, off += unit) {
        uint16_t h = (uint16_t)(p[off] | (p[off + 1] << 8)); /* the scale, or the value */
        if ((h & 0x7c00u) != 0x7c00u)
            continue;
        int m;
        size_t row, col;
        locate(dt, e, d_model, d_ff, &m, &row, &col);
        const char *what = (h & 0x3ffu) ? "NaN" : (h & 0x8000u) ? "-Inf" : "Inf";
        if (dt == EC_DTYPE_Q4)
            return ec_error_set(err, EC_ERR_PARSE,
                                "%s expert: %s row %zu group %zu (blob offset %zu): scale is %s",
                                name, MATRIX[m], row, col / EC_Q4_GROUP, off, what);
        return ec_error_set(err, EC_ERR_PARSE,
                            "%s expert: %s row %zu column %zu (blob offset %zu): weight is %s",
                            name, MATRIX[m], row, col, off, what);
    }
    return EC_OK;
}

/* ---- quantization ------------------------------------------------------------------- */

/* One group of 32 weights into one block, as ggml's reference quantize_row_q4_0. */
static void quantize_group(const float *x, uint8_t *blk)
{
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < EC_Q4_GROUP; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    float d = max / -8.f, id = d != 0.f ? 1.f / d : 0.f;
    uint16_t h = ec_half_from_float(d);
    blk[0] = (uint8_t)(h & 0xff);
    blk[1] = (uint8_t)(h >> 8);
    for (int j = 0; j < 16; j++) {
        int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[16 + j] * id + 8.5f);
        q0 = q0 > 15 ? 15 : q0;
        q1 = q1 > 15 ? 15 : q1;
        blk[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static ec_status quantize(const float *wf, const uint16_t *wh, int32_t d_model, int32_t d_ff,
                          void *dst, ec_error *err)
{
    if ((!wf && !wh) || !dst)
        return ec_error_set(err, EC_ERR_INVALID, "ec_expert_quantize_q4: NULL buffer");
    if (!ec_expert_bytes(EC_DTYPE_Q4, d_model, d_ff))
        return ec_error_set(err, EC_ERR_RANGE,
                            "ec_expert_quantize_q4: shape d_model %d x d_ff %d is invalid (both "
                            "must be multiples of 32)",
                            (int)d_model, (int)d_ff);
    size_t groups = 3 * (size_t)d_model * (size_t)d_ff / EC_Q4_GROUP;
    uint8_t *out = dst;
    float x[EC_Q4_GROUP];
    for (size_t g = 0; g < groups; g++) {
        for (int j = 0; j < EC_Q4_GROUP; j++) {
            size_t i = g * EC_Q4_GROUP + (size_t)j;
            x[j] = wf ? wf[i] : ec_half_to_float(wh[i]);
            if (!isfinite(x[j])) {
                int m;
                size_t row, col;
                locate(EC_DTYPE_F16, i, d_model, d_ff, &m, &row, &col);
                return ec_error_set(err, EC_ERR_RANGE,
                                    "ec_expert_quantize_q4: %s row %zu column %zu is not finite",
                                    MATRIX[m], row, col);
            }
        }
        quantize_group(x, out + g * EC_Q4_BLOCK_BYTES);
    }
    return EC_OK;
}

ec_status ec_expert_quantize_q4(const float *w, int32_t d_model, int32_t d_ff, void *dst,
                                ec_error *err)
{
    return quantize(w, NULL, d_model, d_ff, dst, err);
}

ec_status ec_expert_quantize_q4_f16(const uint16_t *w, int32_t d_model, int32_t d_ff, void *dst,
                                    ec_error *err)
{
    return quantize(NULL, w, d_model, d_ff, dst, err);
}

/* ---- reading weights -------------------------------------------------------------------- */

float ec_weight_at(ec_dtype dt, const uint8_t *mat, size_t row, size_t col, size_t n_cols)
{
    if (dt == EC_DTYPE_F16) {
        const uint8_t *p = mat + 2 * (row * n_cols + col);
        return ec_half_to_float((uint16_t)(p[0] | (p[1] << 8)));
    }
    const uint8_t *blk =
        mat + (row * (n_cols / EC_Q4_GROUP) + col / EC_Q4_GROUP) * EC_Q4_BLOCK_BYTES;
    return ec_half_to_float(ec_q4_scale_bits(blk)) *
           (float)(ec_q4_quant(blk, (int)(col % EC_Q4_GROUP)) - 8);
}

ec_status ec_expert_dequantize(ec_dtype dt, const void *w, int32_t d_model, int32_t d_ff,
                               float *dst, ec_error *err)
{
    if (!w || !dst)
        return ec_error_set(err, EC_ERR_INVALID, "ec_expert_dequantize: NULL buffer");
    if (!ec_expert_bytes(dt, d_model, d_ff))
        return ec_error_set(err, EC_ERR_RANGE,
                            "ec_expert_dequantize: shape d_model %d x d_ff %d is invalid for %s",
                            (int)d_model, (int)d_ff, ec_dtype_name(dt) ? ec_dtype_name(dt) : "?");
    size_t d = (size_t)d_model, ff = (size_t)d_ff;
    const uint8_t *mat = w;
    for (int m = 0; m < 3; m++) {
        size_t rows = m < 2 ? ff : d, cols = m < 2 ? d : ff;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                *dst++ = ec_weight_at(dt, mat, r, c, cols);
        mat += rows * ec_row_bytes(dt, (int32_t)cols);
    }
    return EC_OK;
}

/* ---- the scalar reference ----------------------------------------------------------------- */

void ec_expert_reference_token(ec_dtype dt, const void *w, const float *xf, const uint16_t *xh,
                               float *out, int32_t d_model, int32_t d_ff, float *scratch)
{
    size_t d = (size_t)d_model, ff = (size_t)d_ff, up = ff * ec_row_bytes(dt, d_model);
    const uint8_t *w1 = w, *w3 = w1 + up, *w2 = w3 + up;
    for (size_t r = 0; r < ff; r++) {
        double a = 0, b = 0;
        for (size_t j = 0; j < d; j++) {
            double xj = xf ? xf[j] : ec_half_to_float(xh[j]);
            a += ec_weight_at(dt, w1, r, j, d) * xj;
            b += ec_weight_at(dt, w3, r, j, d) * xj;
        }
        scratch[r] = (float)(a / (1.0 + exp(-a)) * b); /* silu(a) * b */
    }
    for (size_t i = 0; i < d; i++) {
        double acc = 0;
        for (size_t r = 0; r < ff; r++)
            acc += ec_weight_at(dt, w2, i, r, ff) * (double)scratch[r];
        out[i] = (float)acc;
    }
}

ec_status ec_hostffn_reference(ec_dtype dt, const void *w, const float *x, float *y,
                               int32_t batch, int32_t d_model, int32_t d_ff, ec_error *err)
{
    if (!w || !x || !y)
        return ec_error_set(err, EC_ERR_INVALID, "ec_hostffn_reference: NULL buffer");
    if (!ec_expert_bytes(dt, d_model, d_ff) || batch < 1)
        return ec_error_set(err, EC_ERR_RANGE,
                            "ec_hostffn_reference: batch %d, d_model %d x d_ff %d is invalid "
                            "for %s",
                            (int)batch, (int)d_model, (int)d_ff,
                            ec_dtype_name(dt) ? ec_dtype_name(dt) : "?");
    float *scratch = ec_malloc(sizeof(float) * (size_t)d_ff);
    if (!scratch)
        return ec_error_set(err, EC_ERR_NOMEM, "ec_hostffn_reference: out of memory");
    for (int32_t t = 0; t < batch; t++)
        ec_expert_reference_token(dt, w, x + (size_t)t * (size_t)d_model, NULL,
                                  y + (size_t)t * (size_t)d_model, d_model, d_ff, scratch);
    ec_free(scratch);
    return EC_OK;
}
