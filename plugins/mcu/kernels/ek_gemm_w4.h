/* ek_gemm_w4.h: y = x . W + bias with float32 activations and int4 weights (weight-only
 * quantization, groups of `group` consecutive k sharing one float scale per output; the loop and
 * the technique are ek_gemm_wq.h's).
 *
 * The weights stay packed in flash, two per byte, and are widened as they are read.
 * Layout (edgekit.plugins.mcu.w4_layout.pack): weights per output n, its k values in order, two per
 * byte (even k in the low nibble, two's complement int4); (k + 1) / 2 bytes per output. scales:
 * [n][k_groups] float. bias: [n] or NULL. x [m][k], y [m][n]. Fused Relu/Clip as act_min/act_max. */
#ifndef EK_GEMM_W4_H
#define EK_GEMM_W4_H

#include "ek_gemm_wq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef ek_gemm_wq_params ek_gemm_w4_params; /* group even */

void ek_gemm_w4_f32(const ek_gemm_w4_params *p, const float *x, const uint8_t *weights,
                    const float *scales, const float *bias, float *y);

#ifdef __cplusplus
}
#endif

#endif /* EK_GEMM_W4_H */
