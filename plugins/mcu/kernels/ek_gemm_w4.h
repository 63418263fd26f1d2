/* ek_gemm_w4.h: y = x . W + bias with float32 activations and int4 weights (weight-only
 * quantization, groups of `group` consecutive k sharing one float scale per output).
 *
 * Technique: the weights stay packed in flash, two per byte, and are widened as they are read;
 * products of one group are summed with the raw integer weights and the group's scale is applied
 * once per group (sum_k x_k * (q_k * s) = s * sum_k x_k * q_k), so dequantizing costs one multiply
 * per group, not per weight.
 *
 * Layout (edgekit.plugins.mcu.w4_layout.pack): weights per output n, its k values in order, two per
 * byte (even k in the low nibble, two's complement int4); (k + 1) / 2 bytes per output. scales:
 * [n][k_groups] float. bias: [n] or NULL. x [m][k], y [m][n]. Fused Relu/Clip as act_min/act_max. */
#ifndef EK_GEMM_W4_H
#define EK_GEMM_W4_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t m, n, k;
    int32_t group;      /* even */
    int32_t k_groups;   /* ceil(k / group) */
    float act_min, act_max;
} ek_gemm_w4_params;

void ek_gemm_w4_f32(const ek_gemm_w4_params *p, const float *x, const uint8_t *weights,
                    const float *scales, const float *bias, float *y);

#ifdef __cplusplus
}
#endif

#endif /* EK_GEMM_W4_H */
