/* ek_gemm_w4.c: float32 x int4 (grouped) matrix product (see ek_gemm_w4.h). */
#include "ek_gemm_w4.h"

/* Low and high nibble of a byte as signed int4 values (one SBFX each on ARMv7-M). */
static inline int32_t ek_nibble_lo(uint32_t b) { return (int32_t)(b << 28) >> 28; }
static inline int32_t ek_nibble_hi(uint32_t b) { return (int32_t)(b << 24) >> 28; }

/* ek_gemm_wq_dot2 for int4 rows (k0 even: groups are even). */
static EK_ALWAYS_INLINE void ek_w4_dot2(const float *x, const uint8_t *wa, const uint8_t *wb, int32_t k0,
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
    ek_gemm_wq_f32(p, x, weights, (p->k + 1) / 2, ek_w4_dot2, scales, bias, y);
}
