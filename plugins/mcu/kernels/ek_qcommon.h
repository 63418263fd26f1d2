/* ek_qcommon.h: integer arithmetic shared by every edgekit int8 kernel family.
 *
 * Quantization follows the TFLite int8 spec: real = scale * (q - zero_point), int8 activations
 * (asymmetric, per tensor), int8 symmetric weights (per output channel), int32 bias with scale
 * s_in * s_w. An int32 accumulator is brought to the output scale by ek_requantize(acc, multiplier,
 * shift) (Q31 multiplier, shift > 0 scales up); the Python reference is
 * edgekit.plugins.mcu.qmath.requantize and the two agree bit for bit.
 * Tensors are dense int8 in ONNX (NCHW) order.
 *
 * Two arithmetics, chosen per layer by the `arithmetic` field of its parameters:
 *  - EK_ARITH_ONNX (0): single rounding (ek_requantize); int8 means rounded half to even; Add with
 *    two 22-bit multipliers and one shift. Closest to onnxruntime's float rescaling.
 *  - EK_ARITH_TFLITE (1): TensorFlow Lite Micro's reference kernels bit for bit: double rounding
 *    (ek_requantize_tflite), average pools dividing the raw sum with ties away from zero, Add with
 *    TFLite's 20-bit left shift and three rescalings (ek_qadd_value_tflite). The TFLite importer
 *    selects it; `--option int8_arithmetic=onnx|tflite` overrides. */
#ifndef EK_QCOMMON_H
#define EK_QCOMMON_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* acc * multiplier * 2^(shift - 31) rounded half up in one step: TFLite's single-rounding
 * MultiplyByQuantizedMultiplier (TFLITE_SINGLE_ROUNDING; CMSIS_NN_USE_SINGLE_ROUNDING in CMSIS-NN).
 * One rounding keeps integer kernels within float rounding noise of onnxruntime's float
 * requantization; the double-rounding variant differs in about 1 value in 300 per layer. */
#if defined(__ARM_ARCH_6M__)
/* floor(a * m / 2^32) for m >= 0 from four 16 x 16 -> 32-bit MULS: ARMv6-M has no long multiply,
 * and the generic 64-bit product is a libgcc call several times longer. */
static inline int32_t ek_mul_high(int32_t a, int32_t m)
{
    const int32_t a_hi = a >> 16, m_hi = m >> 16;
    const uint32_t a_lo = (uint32_t)a & 0xFFFFu, m_lo = (uint32_t)m & 0xFFFFu;
    const uint32_t low = a_lo * m_lo;
    const uint32_t mid_u = a_lo * (uint32_t)m_hi + (low >> 16); /* < 2^31 */
    const int32_t mid_s = a_hi * (int32_t)m_lo;                /* |.| < 2^31 */
    /* floor((mid_s + mid_u) / 2^16), without forming the sum (it may not fit in 32 bits) */
    const int32_t mid = (mid_s >> 16) + (int32_t)(mid_u >> 16) +
                        (int32_t)((((uint32_t)mid_s & 0xFFFFu) + (mid_u & 0xFFFFu)) >> 16);
    return a_hi * m_hi + mid;
}
#define EK_MUL_HIGH(a, m) ek_mul_high((a), (m))
#else
#define EK_MUL_HIGH(a, m) ((int32_t)(((int64_t)(a) * (int64_t)(m)) >> 32))
#endif

static inline int32_t ek_requantize(int32_t acc, int32_t multiplier, int32_t shift)
{
    /* round_half_up(x / 2^t) = (floor(x / 2^(t-1)) + 1) >> 1: no 64-bit rounding constant */
    const int32_t total = 31 - shift; /* 1..62 for every multiplier quantize_multiplier makes */
    if (EK_LIKELY(total >= 33)) {
        /* the usual case (multiplier < 0.25): the high word alone, and the +1 cannot overflow */
        return ((EK_MUL_HIGH(acc, multiplier) >> (total - 33)) + 1) >> 1;
    }
    const int64_t product = (int64_t)acc * (int64_t)multiplier;
    return (int32_t)(((product >> (total - 1)) + 1) >> 1);
}

/* TFLite's default MultiplyByQuantizedMultiplier (TFLite Micro's reference kernels, CMSIS-NN's
 * arm_nn_requantize without CMSIS_NN_USE_SINGLE_ROUNDING), two roundings:
 *   SaturatingRoundingDoublingHighMul(acc << max(shift, 0), multiplier): the 64-bit product rounded
 *   half up by 31 bits (gemmlowp's nudge-and-truncate is exactly that; it cannot saturate, as the
 *   multiplier is never INT32_MIN), then
 *   RoundingDivideByPOT(., max(-shift, 0)): ties away from zero.
 * Python reference: qmath.requantize_tflite. */
static inline int32_t ek_requantize_tflite(int32_t acc, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift; /* right <= 31 */
    const int32_t x = (int32_t)((uint32_t)acc << left); /* TFLite: acc * (1 << left), wrapping */
    const int32_t high = (int32_t)(((int64_t)x * (int64_t)multiplier + (INT64_C(1) << 30)) >> 31);
    const uint32_t mask = (1u << right) - 1u; /* right == 31: 0x7FFFFFFF */
    const uint32_t remainder = (uint32_t)high & mask;
    const uint32_t threshold = (mask >> 1) + (high < 0 ? 1u : 0u);
    return (high >> right) + (remainder > threshold ? 1 : 0);
}

#define EK_ARITH_ONNX 0
#define EK_ARITH_TFLITE 1

/* The requantization of the layer's arithmetic (a loop-invariant branch). */
static inline int32_t ek_requantize_as(int32_t arithmetic, int32_t acc, int32_t multiplier, int32_t shift)
{
    return arithmetic == EK_ARITH_TFLITE ? ek_requantize_tflite(acc, multiplier, shift)
                                         : ek_requantize(acc, multiplier, shift);
}

static inline int32_t ek_clamp_i32(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* int8 Add: ((a + a_offset) * a_multiplier + (b + b_offset) * b_multiplier) >> shift, rounded
 * half up, plus the output zero point, clamped. The multipliers (s_a / s_out, s_b / s_out with the
 * shared shift, at most 22 bits) keep every term in int32. Shared by ek_qadd_s8 and the residual
 * Add fused into ek_qconv_add_s8. */
static inline int8_t ek_qadd_value(int32_t a, int32_t a_offset, int32_t a_multiplier, int32_t b,
                                   int32_t b_offset, int32_t b_multiplier, int32_t shift,
                                   int32_t output_offset, int32_t act_min, int32_t act_max)
{
    const int32_t acc = (a + a_offset) * a_multiplier + (b + b_offset) * b_multiplier;
    const int32_t v = ((acc + (1 << (shift - 1))) >> shift) + output_offset;
    return (int8_t)ek_clamp_i32(v, act_min, act_max);
}

/* TFLite's int8 Add (EK_ARITH_TFLITE): both offset inputs shifted left by 20 bits, each rescaled by
 * its multiplier and shift (s_a / (2 max(s_a, s_b)), likewise b), summed, rescaled by the output's
 * (2 max(s_a, s_b) / (2^20 s_out)), plus the output zero point, clamped. Python reference:
 * qmath.add_tflite. */
#define EK_TFLITE_ADD_LEFT_SHIFT 20
static inline int8_t ek_qadd_value_tflite(int32_t a, int32_t a_offset, int32_t a_multiplier, int32_t a_shift,
                                          int32_t b, int32_t b_offset, int32_t b_multiplier, int32_t b_shift,
                                          int32_t out_multiplier, int32_t out_shift, int32_t output_offset,
                                          int32_t act_min, int32_t act_max)
{
    const int32_t sa = ek_requantize_tflite((a + a_offset) * (1 << EK_TFLITE_ADD_LEFT_SHIFT), a_multiplier, a_shift);
    const int32_t sb = ek_requantize_tflite((b + b_offset) * (1 << EK_TFLITE_ADD_LEFT_SHIFT), b_multiplier, b_shift);
    const int32_t v = ek_requantize_tflite(sa + sb, out_multiplier, out_shift) + output_offset;
    return (int8_t)ek_clamp_i32(v, act_min, act_max);
}

#ifdef __cplusplus
}
#endif

#endif /* EK_QCOMMON_H */
