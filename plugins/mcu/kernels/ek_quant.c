/* ek_quant.c: QuantizeLinear, DequantizeLinear and int8 lookup tables (see ek_quant.h). */
#include <string.h>

#include "ek_quant.h"

#if defined(__GNUC__) && defined(__ARM_FP) && (__ARM_FP & 4) && defined(__ARM_FEATURE_SAT) && \
    !defined(EK_NO_INLINE_ASM)
/* Single-precision FPU with saturation instructions (Cortex-M4F/M7/M33/M55): VCVTR converts with the
 * FPSCR rounding mode, round to nearest even by default, saturating out-of-range values and taking
 * NaN to 0: QuantizeLinear's rounding in one instruction. SSAT does the int8 saturation. */
void ek_quantize_f32_s8(const ek_quant_params *p, const float *in, int8_t *out)
{
    const int32_t size = p->size, zero_point = p->zero_point;
    const float scale = p->scale;
    int32_t i;
    for (i = 0; i < size; i++) {
        float r;
        int32_t q;
        __asm__("vcvtr.s32.f32 %0, %1" : "=t"(r) : "t"(in[i] / scale));
        memcpy(&q, &r, sizeof q);
        /* 16 bits first, so that adding the zero point cannot overflow */
        out[i] = (int8_t)__builtin_arm_ssat(__builtin_arm_ssat(q, 16) + zero_point, 8);
    }
}
#else
void ek_quantize_f32_s8(const ek_quant_params *p, const float *in, int8_t *out)
{
    /* Adding and subtracting 1.5 * 2^23 rounds a float of magnitude below 2^22 to an integer,
     * half to even, in the FPU's default rounding mode: no libm call per value. */
    const volatile float magic_source = 12582912.0f; /* volatile: keep the two steps apart */
    const float magic = magic_source;
    /* locals: the int8 stores could alias *p, which would reload it per value */
    const int32_t size = p->size, zero_point = p->zero_point;
    const float scale = p->scale;
    int32_t i;
    for (i = 0; i < size; i++) {
        float v = in[i] / scale;
        if (v != v) {
            v = 0.0f; /* NaN: QuantizeLinear's saturating cast gives the zero point */
        }
        v = ek_clampf(v, -1024.0f, 1024.0f); /* beyond the int8 range either way */
        const int32_t q = (int32_t)((v + magic) - magic);
        out[i] = (int8_t)ek_clamp_i32(q + zero_point, -128, 127);
    }
}
#endif

void ek_dequantize_s8_f32(const ek_quant_params *p, const int8_t *in, float *out)
{
    const int32_t size = p->size, zero_point = p->zero_point;
    const float scale = p->scale;
    int32_t i;
    for (i = size - 1; i >= 0; i--) { /* last to first: see ek_quant.h */
        out[i] = (float)(in[i] - zero_point) * scale;
    }
}

void ek_quantize_f32_s8_search(const ek_quant_params *p, const float *in, const int32_t *thresholds,
                               int8_t *out)
{
    const int32_t size = p->size;
    const int8_t nan_value = (int8_t)ek_clamp_i32(p->zero_point, -128, 127);
    int32_t i;
    for (i = 0; i < size; i++) {
        union {
            float f;
            uint32_t u;
        } value; /* not memcpy: gcc calls it for ARMv6-M */
        value.f = in[i];
        const uint32_t bits = value.u;
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
            out[i] = nan_value;
            continue;
        }
        /* the float's order as a signed integer: flip the magnitude bits of a negative float */
        const int32_t key = (int32_t)(bits ^ ((uint32_t)(-(int32_t)(bits >> 31)) >> 1));
        const int32_t *t = thresholds;
        /* count the entries <= key: 8 halving steps over 255 sorted entries */
        if (t[127] <= key) t += 128;
        if (t[63] <= key) t += 64;
        if (t[31] <= key) t += 32;
        if (t[15] <= key) t += 16;
        if (t[7] <= key) t += 8;
        if (t[3] <= key) t += 4;
        if (t[1] <= key) t += 2;
        if (t[0] <= key) t += 1;
        out[i] = (int8_t)((t - thresholds) - 128);
    }
}

void ek_dequantize_s8_f32_table(const ek_quant_params *p, const int8_t *in, const float *table, float *out)
{
    const float *center = table + 128;
    const int32_t size = p->size;
    int32_t i;
    for (i = size - 1; i >= 0; i--) { /* last to first: see ek_quant.h */
        out[i] = center[in[i]];
    }
}

void ek_lut_s8(const ek_lut_params *p, const int8_t *in, const int8_t *table, int8_t *out)
{
    const int8_t *center = table + 128;
    const int32_t size = p->size;
    int32_t i;
    for (i = 0; i < size; i++) {
        out[i] = center[in[i]];
    }
}
