/* ek_gemm_w8.h: y = x . W + bias with float32 activations and int8 weights (weight-only
 * quantization, groups of `group` consecutive k sharing one float scale per output; the loop and
 * the technique are ek_gemm_wq.h's).
 *
 * The weights stay in flash one byte each and are widened to float as they are read.
 * Layout (edgekit.plugins.mcu.w4_layout.pack_int8): weights per output n, its k values in order,
 * int8 in [-127, 127]; k bytes per output. scales: [n][k_groups] float. bias: [n] or NULL.
 * x [m][k], y [m][n]. Fused Relu/Clip as act_min/act_max. */
#ifndef EK_GEMM_W8_H
#define EK_GEMM_W8_H

#include "ek_gemm_wq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef ek_gemm_wq_params ek_gemm_w8_params;

void ek_gemm_w8_f32(const ek_gemm_w8_params *p, const float *x, const int8_t *weights,
                    const float *scales, const float *bias, float *y);

#ifdef __cplusplus
}
#endif

#endif /* EK_GEMM_W8_H */
