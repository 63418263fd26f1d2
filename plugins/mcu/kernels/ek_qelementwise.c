/* ek_qelementwise.c: int8 Add and Mul (see ek_qelementwise.h). */
#include "ek_qelementwise.h"

static inline int8_t ek_qadd_one(const ek_qbinary_params *p, int32_t a, int32_t b)
{
    if (p->arithmetic == EK_ARITH_TFLITE) {
        return ek_qadd_value_tflite(a, p->a_offset, p->a_multiplier, p->a_shift, b, p->b_offset,
                                    p->b_multiplier, p->b_shift, p->out_multiplier, p->out_shift,
                                    p->output_offset, p->act_min, p->act_max);
    }
    return ek_qadd_value(a, p->a_offset, p->a_multiplier, b, p->b_offset, p->b_multiplier, p->add_shift,
                         p->output_offset, p->act_min, p->act_max);
}

static inline int8_t ek_qmul_one(const ek_qbinary_params *p, int32_t a, int32_t b)
{
    const int32_t v = ek_requantize_as(p->arithmetic, (a + p->a_offset) * (b + p->b_offset),
                                       p->out_multiplier, p->out_shift) + p->output_offset;
    return (int8_t)ek_clamp_i32(v, p->act_min, p->act_max);
}

/* The outer axes walk as an odometer, one update per row; the innermost axis is the hot loop. */
#define EK_QBINARY_WALK(ONE)                                                                 \
    const int32_t last = p->rank - 1;                                                        \
    const int32_t n = p->shape[last], sa = p->a_stride[last], sb = p->b_stride[last];        \
    int32_t idx[EK_MAX_DIMS] = {0};                                                          \
    int32_t rows = 1, r, d, i;                                                               \
    for (d = 0; d < last; d++) {                                                             \
        rows *= p->shape[d];                                                                 \
    }                                                                                        \
    for (r = 0; r < rows; r++) {                                                             \
        const int8_t *pa = a, *pb = b;                                                       \
        for (i = 0; i < n; i++, pa += sa, pb += sb) {                                        \
            *out++ = ONE(p, *pa, *pb);                                                       \
        }                                                                                    \
        for (d = last - 1; d >= 0; d--) {                                                    \
            a += p->a_stride[d];                                                             \
            b += p->b_stride[d];                                                             \
            if (++idx[d] < p->shape[d]) {                                                    \
                break;                                                                       \
            }                                                                                \
            a -= p->a_stride[d] * p->shape[d];                                               \
            b -= p->b_stride[d] * p->shape[d];                                               \
            idx[d] = 0;                                                                      \
        }                                                                                    \
    }

void ek_qadd_s8(const ek_qbinary_params *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    EK_QBINARY_WALK(ek_qadd_one)
}

void ek_qmul_s8(const ek_qbinary_params *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    EK_QBINARY_WALK(ek_qmul_one)
}
