/* ek_gemm_w8.c: float32 x int8 (grouped) matrix product (see ek_gemm_w8.h). */
#include "ek_gemm_w8.h"

/* ek_gemm_wq_dot2 for int8 rows: four k per step (LDRSB with immediate offsets, one pointer
 * update per step), two accumulation chains per output. */
static EK_ALWAYS_INLINE void ek_w8_dot2(const float *x, const uint8_t *wa_bytes, const uint8_t *wb_bytes,
                                        int32_t k0, int32_t k1, float *sa, float *sb)
{
    const int8_t *wa = (const int8_t *)wa_bytes + k0, *wb = (const int8_t *)wb_bytes + k0;
    const float *xk = x + k0;
    float a0 = 0.0f, a1 = 0.0f, b0 = 0.0f, b1 = 0.0f;
    int32_t left = k1 - k0;
    for (; left >= 4; left -= 4, xk += 4, wa += 4, wb += 4) {
        const float x0 = xk[0], x1 = xk[1], x2 = xk[2], x3 = xk[3];
        a0 = EK_FMA(a0, x0, (float)wa[0]);
        a1 = EK_FMA(a1, x1, (float)wa[1]);
        b0 = EK_FMA(b0, x0, (float)wb[0]);
        b1 = EK_FMA(b1, x1, (float)wb[1]);
        a0 = EK_FMA(a0, x2, (float)wa[2]);
        a1 = EK_FMA(a1, x3, (float)wa[3]);
        b0 = EK_FMA(b0, x2, (float)wb[2]);
        b1 = EK_FMA(b1, x3, (float)wb[3]);
    }
    for (; left > 0; left--, xk++, wa++, wb++) {
        a0 = EK_FMA(a0, xk[0], (float)wa[0]);
        b0 = EK_FMA(b0, xk[0], (float)wb[0]);
    }
    *sa = a0 + a1;
    *sb = b0 + b1;
}

void ek_gemm_w8_f32(const ek_gemm_w8_params *p, const float *x, const int8_t *weights,
                    const float *scales, const float *bias, float *y)
{
    ek_gemm_wq_f32(p, x, (const uint8_t *)weights, p->k, ek_w8_dot2, scales, bias, y);
}
