/* ek_transform.c: copies driven by build-time strides. */
#include <string.h>

#include "ek_transform.h"

void ek_copy_f32(const ek_copy_params *p, const float *in, float *out)
{
    if (in != out) {
        memcpy(out, in, (size_t)p->size * sizeof(float));
    }
}

void ek_copy_s8(const ek_copy_params *p, const int8_t *in, int8_t *out)
{
    if (in != out) {
        memcpy(out, in, (size_t)p->size);
    }
}

/* One strided-copy body per element type (the walk is the same, only the element differs). */
#define EK_DEFINE_STRIDED_COPY(name, type)                                                  \
    void name(const ek_strided_copy_params *p, const type *in, type *out)                  \
    {                                                                                      \
        const int32_t last = p->rank - 1;                                                  \
        const int32_t n = p->shape[last];                                                  \
        const int32_t s = p->stride[last];                                                 \
        int32_t idx[EK_MAX_DIMS] = {0};                                                    \
        int32_t rows = 1, r, d, i;                                                         \
        const type *src = in + p->offset;                                                  \
        for (d = 0; d < last; d++) {                                                       \
            rows *= p->shape[d];                                                           \
        }                                                                                  \
        for (r = 0; r < rows; r++) {                                                       \
            if (s == 1) {                                                                  \
                memcpy(out, src, (size_t)n * sizeof(type));                                \
                out += n;                                                                  \
            } else {                                                                       \
                const type *q = src;                                                       \
                for (i = 0; i < n; i++, q += s) {                                          \
                    *out++ = *q;                                                           \
                }                                                                          \
            }                                                                              \
            for (d = last - 1; d >= 0; d--) {                                              \
                src += p->stride[d];                                                       \
                if (++idx[d] < p->shape[d]) {                                              \
                    break;                                                                 \
                }                                                                          \
                src -= p->stride[d] * p->shape[d];                                         \
                idx[d] = 0;                                                                \
            }                                                                              \
        }                                                                                  \
    }

EK_DEFINE_STRIDED_COPY(ek_strided_copy_f32, float)
EK_DEFINE_STRIDED_COPY(ek_strided_copy_s8, int8_t)

void ek_concat_f32(const ek_concat_params *p, const float *const *inputs, float *out)
{
    int32_t o, k;
    for (k = 0; k < p->num_inputs; k++) {
        const int32_t block = p->in_blocks[k];
        const float *src = inputs[k];
        float *dst = out;
        for (o = 0; o < p->outer; o++, src += block, dst += p->out_block) {
            memcpy(dst, src, (size_t)block * sizeof(float));
        }
        out += block;
    }
}

/* Source index along one axis for output index i, or -1 when it reads the constant. */
static int32_t ek_pad_source(int32_t i, int32_t n, int32_t mode)
{
    if (i >= 0 && i < n) {
        return i;
    }
    switch (mode) {
    case EK_PAD_REFLECT:
        if (n == 1) {
            return 0;
        }
        while (i < 0 || i >= n) {  /* repeated reflection for pads wider than the axis */
            i = i < 0 ? -i : 2 * (n - 1) - i;
        }
        return i;
    case EK_PAD_EDGE:
        return i < 0 ? 0 : n - 1;
    case EK_PAD_WRAP:
        i %= n;
        return i < 0 ? i + n : i;
    default:
        return -1;
    }
}

void ek_pad_f32(const ek_pad_params *p, const float *in, float *out)
{
    const int32_t last = p->rank - 1;
    const int32_t n_out = p->out_shape[last];
    const int32_t n_in = p->in_shape[last];
    int32_t in_stride[EK_MAX_DIMS];
    int32_t idx[EK_MAX_DIMS] = {0};
    int32_t rows = 1, r, d, i;

    in_stride[last] = 1;
    for (d = last - 1; d >= 0; d--) {
        in_stride[d] = in_stride[d + 1] * p->in_shape[d + 1];
    }
    for (d = 0; d < last; d++) {
        rows *= p->out_shape[d];
    }
    for (r = 0; r < rows; r++) {
        int32_t offset = 0, inside = 1;
        for (d = 0; d < last; d++) {
            const int32_t s = ek_pad_source(idx[d] - p->pad_begin[d], p->in_shape[d], p->mode);
            if (s < 0) {
                inside = 0;
                break;
            }
            offset += s * in_stride[d];
        }
        if (!inside) {
            for (i = 0; i < n_out; i++) {
                *out++ = p->value;
            }
        } else {
            /* Only the border columns need the mode's index mapping; the middle is a copy. */
            const float *row = in + offset;
            const int32_t pb = p->pad_begin[last];
            const int32_t mid_lo = pb > 0 ? pb : 0;
            const int32_t mid_hi = pb + n_in < n_out ? pb + n_in : n_out;
            for (i = 0; i < mid_lo && i < n_out; i++) {
                const int32_t s = ek_pad_source(i - pb, n_in, p->mode);
                *out++ = s < 0 ? p->value : row[s];
            }
            if (mid_hi > mid_lo) {
                memcpy(out, row + (mid_lo - pb), (size_t)(mid_hi - mid_lo) * sizeof(float));
                out += mid_hi - mid_lo;
            }
            for (i = mid_hi > mid_lo ? mid_hi : (mid_lo < n_out ? mid_lo : n_out); i < n_out; i++) {
                const int32_t s = ek_pad_source(i - pb, n_in, p->mode);
                *out++ = s < 0 ? p->value : row[s];
            }
        }
        for (d = last - 1; d >= 0; d--) {
            if (++idx[d] < p->out_shape[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
}

void ek_gather_f32(const ek_gather_params *p, const float *in, float *out)
{
    const size_t row = (size_t)p->inner * sizeof(float);
    int32_t o, i;
    for (o = 0; o < p->outer; o++) {
        const float *base = in + (size_t)o * p->axis_len * p->inner;
        for (i = 0; i < p->count; i++) {
            memcpy(out, base + (size_t)p->indices[i] * p->inner, row);
            out += p->inner;
        }
    }
}
