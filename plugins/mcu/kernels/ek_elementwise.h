/* ek_elementwise.h: binary elementwise ops (Add, Sub, Mul, Div, Max, Min, Pow, PRelu) with numpy
 * broadcasting.
 *
 * Broadcasting is resolved at build time: the generator collapses the output shape to the fewest
 * axes where both operands keep a regular stride and gives each operand an element stride per
 * axis (0 where the operand is broadcast). The kernel walks the outer axes with an odometer (one
 * update per row, not per element) and runs a specialised inner loop for the common stride pairs
 * (same shape, per-channel/scalar operand on either side). In-place use (out == a or out == b) is
 * allowed when that operand has the output's shape. */
#ifndef EK_ELEMENTWISE_H
#define EK_ELEMENTWISE_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t rank;                    /* collapsed rank, 1..EK_MAX_DIMS */
    int32_t shape[EK_MAX_DIMS];      /* collapsed output shape, outermost first */
    int32_t a_stride[EK_MAX_DIMS];   /* element stride of A along each axis (0: broadcast) */
    int32_t b_stride[EK_MAX_DIMS];   /* element stride of B along each axis (0: broadcast) */
    float act_min;                   /* fused activation clamp; [-inf, inf] for none */
    float act_max;
} ek_binary_params;

void ek_add_f32(const ek_binary_params *p, const float *a, const float *b, float *out);
void ek_sub_f32(const ek_binary_params *p, const float *a, const float *b, float *out);
void ek_mul_f32(const ek_binary_params *p, const float *a, const float *b, float *out);
void ek_div_f32(const ek_binary_params *p, const float *a, const float *b, float *out);
void ek_max_f32(const ek_binary_params *p, const float *a, const float *b, float *out);
void ek_min_f32(const ek_binary_params *p, const float *a, const float *b, float *out);
void ek_pow_f32(const ek_binary_params *p, const float *a, const float *b, float *out);
/* PRelu: a < 0 ? a * b : a (b is the broadcast slope). */
void ek_prelu_f32(const ek_binary_params *p, const float *a, const float *b, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_ELEMENTWISE_H */
