/* ek_quant.h: the int8 <-> float32 boundary of a quantized model, and int8 lookup tables.
 *
 * ek_quantize_f32_s8 is ONNX QuantizeLinear (x / scale rounded half to even, plus the zero point,
 * saturated); ek_dequantize_s8_f32 is DequantizeLinear. ek_lut_s8 maps every int8 value through a
 * 256-entry table built at build time: any element-wise op between a DequantizeLinear and a
 * QuantizeLinear (Sigmoid, Tanh, HardSwish, a standalone Relu/Clip, a change of scale) is exactly
 * such a table. The LUT may run in place (out == in). Both DequantizeLinear kernels run from the
 * last value to the first, so their int8 input may occupy the first bytes of their float output
 * (the planner puts it there when the output buffer serves as workspace).
 *
 * Cores without an FPU take the integer-only forms, which compute the same values: a float takes
 * 100-600 instructions of soft-float division or multiplication there.
 *  - ek_quantize_f32_s8_search reads the float's bits as an integer whose order is the floats'
 *    order and counts, by binary search, the QuantizeLinear level boundaries at or below it
 *    (thresholds[255], edgekit.plugins.mcu.qmath.quantize_thresholds); NaN gives the zero point.
 *  - ek_dequantize_s8_f32_table looks each value up in table[256] (index v + 128). */
#ifndef EK_QUANT_H
#define EK_QUANT_H

#include "ek_qcommon.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} ek_quant_params;

typedef struct {
    int32_t size;
} ek_lut_params;

void ek_quantize_f32_s8(const ek_quant_params *p, const float *in, int8_t *out);
void ek_dequantize_s8_f32(const ek_quant_params *p, const int8_t *in, float *out);
void ek_quantize_f32_s8_search(const ek_quant_params *p, const float *in, const int32_t *thresholds,
                               int8_t *out);
void ek_dequantize_s8_f32_table(const ek_quant_params *p, const int8_t *in, const float *table, float *out);
/* table[256]: output for input value v at index v + 128. */
void ek_lut_s8(const ek_lut_params *p, const int8_t *in, const int8_t *table, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_QUANT_H */
