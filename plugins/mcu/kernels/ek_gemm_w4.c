/* ek_gemm_w4.c: float32 x int4 (grouped) matrix product (see ek_gemm_w4.h). */
#include "ek_gemm_w4.h"

/* Low and high nibble of a byte as signed int4 values. */
static inline int32_t ek_nibble_lo(uint32_t b) { return (int32_t)((b & 0xFu) ^ 0x8u) - 8; }
static inline int32_t ek_nibble_hi(uint32_t b) { return (int32_t)((b >> 4) ^ 0x8u) - 8; }

void ek_gemm_w4_f32(const ek_gemm_w4_params *p, const float *x, const uint8_t *weights,
                    const float *scales, const float *bias, float *y)
{
    const int32_t row_bytes = (p->k + 1) / 2;
    const int lower_only = p->act_max == INFINITY;
    int32_t m, n, g, k;
    for (m = 0; m < p->m; m++, x += p->k, y += p->n) {
        for (n = 0; n < p->n; n++) {
            const uint8_t *w = weights + n * row_bytes;
            const float *s = scales + n * p->k_groups;
            float acc = bias != NULL ? bias[n] : 0.0f;
            for (g = 0; g < p->k_groups; g++) {
                const int32_t k0 = g * p->group;
                const int32_t k1 = k0 + p->group < p->k ? k0 + p->group : p->k;
                float part0 = 0.0f, part1 = 0.0f; /* two chains: half the FMA dependency */
                for (k = k0; k + 1 < k1; k += 2) {
                    const uint32_t b = w[k >> 1];
                    part0 = EK_FMA(part0, x[k], (float)ek_nibble_lo(b));
                    part1 = EK_FMA(part1, x[k + 1], (float)ek_nibble_hi(b));
                }
                if (k < k1) { /* an odd k: the last byte holds one weight */
                    part0 = EK_FMA(part0, x[k], (float)ek_nibble_lo(w[k >> 1]));
                }
                acc = EK_FMA(acc, part0 + part1, s[g]);
            }
            y[n] = ek_act_clampf(acc, lower_only, p->act_min, p->act_max);
        }
    }
}
