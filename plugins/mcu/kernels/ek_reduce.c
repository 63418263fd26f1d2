/* ek_reduce.c: accumulate-then-finish reductions driven by an odometer over the input rows. */
#include "ek_reduce.h"

/* Folds every input element into out[] with COMBINE(acc, v); the inner axis either folds a row
 * into one output (reduced) or adds a row elementwise (kept). */
#define EK_REDUCE_WALK(INIT, COMBINE)                                                           \
    const int32_t last = p->rank - 1;                                                           \
    const int32_t n = p->shape[last];                                                           \
    const int32_t s = p->out_stride[last];                                                      \
    int32_t idx[EK_MAX_DIMS] = {0};                                                             \
    int32_t rows = 1, r, d, i;                                                                  \
    float *dst = out;                                                                           \
    for (i = 0; i < p->out_size; i++) {                                                         \
        out[i] = (INIT);                                                                        \
    }                                                                                           \
    for (d = 0; d < last; d++) {                                                                \
        rows *= p->shape[d];                                                                    \
    }                                                                                           \
    for (r = 0; r < rows; r++) {                                                                \
        if (s == 0) {                                                                           \
            float acc = *dst;                                                                   \
            for (i = 0; i < n; i++) {                                                           \
                const float v = *in++;                                                          \
                acc = COMBINE(acc, v);                                                          \
            }                                                                                   \
            *dst = acc;                                                                         \
        } else {                                                                                \
            float *q = dst;                                                                     \
            for (i = 0; i < n; i++, q += s) {                                                   \
                const float v = *in++;                                                          \
                *q = COMBINE(*q, v);                                                            \
            }                                                                                   \
        }                                                                                       \
        for (d = last - 1; d >= 0; d--) {                                                       \
            dst += p->out_stride[d];                                                            \
            if (++idx[d] < p->shape[d]) {                                                       \
                break;                                                                          \
            }                                                                                   \
            dst -= p->out_stride[d] * p->shape[d];                                              \
            idx[d] = 0;                                                                         \
        }                                                                                       \
    }

#define EK_ADD(a, v) ((a) + (v))
#define EK_MAX(a, v) ek_max_nan((a), (v))
#define EK_MIN(a, v) ek_min_nan((a), (v))

void ek_reduce_mean_f32(const ek_reduce_params *p, const float *in, float *out)
{
    EK_REDUCE_WALK(0.0f, EK_ADD)
    if (p->scale != 1.0f) {
        for (i = 0; i < p->out_size; i++) {
            out[i] *= p->scale;
        }
    }
}

void ek_reduce_max_f32(const ek_reduce_params *p, const float *in, float *out)
{
    EK_REDUCE_WALK(-INFINITY, EK_MAX)
}

void ek_reduce_min_f32(const ek_reduce_params *p, const float *in, float *out)
{
    EK_REDUCE_WALK(INFINITY, EK_MIN)
}
