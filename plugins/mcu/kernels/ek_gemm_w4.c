/* ek_gemm_w4.c: float32 x int4 (grouped) matrix product (see ek_gemm_w4.h). */
#include "ek_gemm_w4.h"

/* Low and high nibble of a byte as signed int4 values (one SBFX each on ARMv7-M). */
static inline int32_t ek_nibble_lo(uint32_t b) { return (int32_t)(b << 28) >> 28; }
static inline int32_t ek_nibble_hi(uint32_t b) { return (int32_t)(b << 24) >> 28; }

/* Sum over k in [k0, k1) of x[k] * w[k] for two outputs' weight rows (group-local, raw int4). */
static inline void ek_w4_dot2(const float *x, const uint8_t *wa, const uint8_t *wb, int32_t k0,
                              int32_t k1, float *sa, float *sb)
{
    float a0 = 0.0f, a1 = 0.0f, b0 = 0.0f, b1 = 0.0f; /* two chains per output */
    int32_t k;
    for (k = k0; k + 1 < k1; k += 2) {
        const uint32_t ba = wa[k >> 1], bb = wb[k >> 1];
        const float x0 = x[k], x1 = x[k + 1];
        a0 = EK_FMA(a0, x0, (float)ek_nibble_lo(ba));
        a1 = EK_FMA(a1, x1, (float)ek_nibble_hi(ba));
        b0 = EK_FMA(b0, x0, (float)ek_nibble_lo(bb));
        b1 = EK_FMA(b1, x1, (float)ek_nibble_hi(bb));
    }
    if (k < k1) { /* an odd k: the last byte holds one weight */
        a0 = EK_FMA(a0, x[k], (float)ek_nibble_lo(wa[k >> 1]));
        b0 = EK_FMA(b0, x[k], (float)ek_nibble_lo(wb[k >> 1]));
    }
    *sa = a0 + a1;
    *sb = b0 + b1;
}

void ek_gemm_w4_f32(const ek_gemm_w4_params *p, const float *x, const uint8_t *weights,
                    const float *scales, const float *bias, float *y)
{
    const int32_t row_bytes = (p->k + 1) / 2;
    const int lower_only = p->act_max == INFINITY;
    int32_t m, n, g;
    for (m = 0; m < p->m; m++, x += p->k, y += p->n) {
        for (n = 0; n < p->n; n += 2) {
            /* two outputs per pass share every x load; a lone last output is computed twice */
            const int32_t nb = n + 1 < p->n ? n + 1 : n;
            const uint8_t *wa = weights + n * row_bytes, *wb = weights + nb * row_bytes;
            const float *s_a = scales + n * p->k_groups, *s_b = scales + nb * p->k_groups;
            float acc_a = bias != NULL ? bias[n] : 0.0f, acc_b = bias != NULL ? bias[nb] : 0.0f;
            for (g = 0; g < p->k_groups; g++) {
                const int32_t k0 = g * p->group;
                const int32_t k1 = k0 + p->group < p->k ? k0 + p->group : p->k;
                float part_a, part_b;
                ek_w4_dot2(x, wa, wb, k0, k1, &part_a, &part_b);
                acc_a = EK_FMA(acc_a, part_a, s_a[g]);
                acc_b = EK_FMA(acc_b, part_b, s_b[g]);
            }
            y[n] = ek_act_clampf(acc_a, lower_only, p->act_min, p->act_max);
            y[nb] = ek_act_clampf(acc_b, lower_only, p->act_min, p->act_max);
        }
    }
}
