/* ek_qelementwise.h: int8 Add and Mul with numpy broadcasting (TFLite int8 arithmetic).
 *
 * Add: out = (Ma * (a - za) + Mb * (b - zb) + 2^(shift-1)) >> shift + zo with Ma, Mb = s_a/s_out,
 * s_b/s_out as integers of at most 22 bits sharing one shift: two multiply-accumulates and one
 * rounding per element in int32 (TFLite's reference add rescales three times, in 64 bits: that is
 * what EK_ARITH_TFLITE layers compute, ek_qadd_value_tflite).
 * Mul: the product of the offset inputs is rescaled once (ek_requantize). Broadcasting is resolved at build
 * time as for ek_binary_params (collapsed shape, per-axis element strides, 0 = broadcast). In place
 * (out == a or out == b) is allowed when that operand has the output's shape. */
#ifndef EK_QELEMENTWISE_H
#define EK_QELEMENTWISE_H

#include "ek_qcommon.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t rank;
    int32_t shape[EK_MAX_DIMS];
    int32_t a_stride[EK_MAX_DIMS];
    int32_t b_stride[EK_MAX_DIMS];
    int32_t a_offset, b_offset;           /* minus the input zero points */
    int32_t a_multiplier, b_multiplier;   /* Add: s_a / s_out and s_b / s_out times 2^add_shift */
    int32_t add_shift;                    /* Add */
    int32_t out_multiplier, out_shift;    /* Mul: s_a * s_b / s_out as ek_requantize takes it;
                                             Add, EK_ARITH_TFLITE: the output rescale */
    int32_t output_offset;
    int32_t act_min, act_max;
    int32_t a_shift, b_shift;             /* Add, EK_ARITH_TFLITE: the inputs' rescale shifts */
    int32_t arithmetic;                   /* EK_ARITH_ONNX or EK_ARITH_TFLITE (see ek_qcommon.h) */
} ek_qbinary_params;

void ek_qadd_s8(const ek_qbinary_params *p, const int8_t *a, const int8_t *b, int8_t *out);
void ek_qmul_s8(const ek_qbinary_params *p, const int8_t *a, const int8_t *b, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_QELEMENTWISE_H */
