/* ek_gemm_wq.h: what the weight-only quantized matrix products share (ek_gemm_w4.h: int4,
 * ek_gemm_w8.h: int8): y = x . W + bias with float32 activations, the weights integers in groups
 * of `group` consecutive k with one float scale per group and output.
 *
 * Technique: products of one group are summed with the raw integer weights and the group's scale
 * is applied once per group (sum_k x_k * (q_k * s) = s * sum_k x_k * q_k), so dequantizing costs
 * one multiply per group, not per weight. Two outputs per pass share every x load.
 *
 * Layout: weights per output n, its k values in order, `row_bytes` bytes per output (the width's
 * own packing, see its header). scales: [n][k_groups] float. bias: [n] or NULL. x [m][k],
 * y [m][n]. Fused Relu/Clip as act_min/act_max. */
#ifndef EK_GEMM_WQ_H
#define EK_GEMM_WQ_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t m, n, k;
    int32_t group;      /* int4: even */
    int32_t k_groups;   /* ceil(k / group) */
    float act_min, act_max;
} ek_gemm_wq_params;

/* Sum over k in [k0, k1) of x[k] * w[k] for two outputs' weight rows wa, wb (raw integers). */
typedef void (*ek_gemm_wq_dot2)(const float *x, const uint8_t *wa, const uint8_t *wb, int32_t k0,
                                int32_t k1, float *sa, float *sb);

/* The loop over rows, output pairs and groups; each width's kernel calls it with its own dot2
 * (a constant: inlined, so each width gets its own specialised loop). */
static EK_ALWAYS_INLINE void ek_gemm_wq_f32(const ek_gemm_wq_params *p, const float *x,
                                            const uint8_t *weights, int32_t row_bytes,
                                            ek_gemm_wq_dot2 dot2, const float *scales,
                                            const float *bias, float *y)
{
    const int lower_only = p->act_max == INFINITY;
    int32_t m, n, g;
    for (m = 0; m < p->m; m++, x += p->k, y += p->n) {
        for (n = 0; n < p->n; n += 2) {
            /* a lone last output is computed twice */
            const int32_t nb = n + 1 < p->n ? n + 1 : n;
            const uint8_t *wa = weights + n * row_bytes, *wb = weights + nb * row_bytes;
            const float *s_a = scales + n * p->k_groups, *s_b = scales + nb * p->k_groups;
            float acc_a = bias != NULL ? bias[n] : 0.0f, acc_b = bias != NULL ? bias[nb] : 0.0f;
            for (g = 0; g < p->k_groups; g++) {
                const int32_t k0 = g * p->group;
                const int32_t k1 = k0 + p->group < p->k ? k0 + p->group : p->k;
                float part_a, part_b;
                dot2(x, wa, wb, k0, k1, &part_a, &part_b);
                acc_a = EK_FMA(acc_a, part_a, s_a[g]);
                acc_b = EK_FMA(acc_b, part_b, s_b[g]);
            }
            y[n] = ek_act_clampf(acc_a, lower_only, p->act_min, p->act_max);
            y[nb] = ek_act_clampf(acc_b, lower_only, p->act_min, p->act_max);
        }
    }
}

#ifdef __cplusplus
}
#endif

#endif /* EK_GEMM_WQ_H */
