/* ek_pool.h: MaxPool / AveragePool (1-D as H = 1, 2-D) and global average/max pooling, NCHW.
 * Padding, dilation and ceil_mode are resolved by the generator into explicit pads and output
 * sizes; the kernel clips each window to the input once per output position (no per-tap checks). */
#ifndef EK_POOL_H
#define EK_POOL_H

#include "ek_qcommon.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t batch, channels;
    int32_t in_h, in_w, out_h, out_w;
    int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w;
    int32_t pad_top, pad_left, pad_bottom, pad_right;
    int32_t count_include_pad;  /* AveragePool: divide by the taps inside the padded input */
} ek_pool2d_params;

typedef struct {
    int32_t planes;  /* N * C */
    int32_t size;    /* elements per plane */
} ek_global_pool_params;

/* int8 pooling: the window geometry of ek_pool2d_params, plus requantization. multiplier == 0
 * means input and output share the scale (only the zero points may differ). Padded taps are
 * real 0 for the average (count_include_pad) and ignored by the max.
 * Averages: EK_ARITH_ONNX rounds the mean of (x - zero point) half to even (QuantizeLinear's
 * rounding); EK_ARITH_TFLITE, with multiplier == 0, divides the raw sum of x rounding ties away
 * from zero, then moves it to the output zero point (TFLite's int8 AVERAGE_POOL_2D, which has equal
 * input and output quantization); with a rescale (multiplier != 0) both take the EK_ARITH_ONNX mean. */
typedef struct {
    ek_pool2d_params pool;
    int32_t input_offset;   /* minus the input zero point */
    int32_t output_offset;  /* output zero point */
    int32_t multiplier, shift;
    int32_t arithmetic;     /* EK_ARITH_ONNX or EK_ARITH_TFLITE (see ek_qcommon.h) */
} ek_qpool2d_params;

typedef struct {
    int32_t planes, size;
    int32_t input_offset, output_offset;
    int32_t multiplier, shift;
    int32_t arithmetic;     /* EK_ARITH_ONNX or EK_ARITH_TFLITE */
} ek_qglobal_pool_params;

void ek_qmaxpool2d_s8(const ek_qpool2d_params *q, const int8_t *in, int8_t *out);
void ek_qavgpool2d_s8(const ek_qpool2d_params *q, const int8_t *in, int8_t *out);
void ek_qglobal_avgpool_s8(const ek_qglobal_pool_params *q, const int8_t *in, int8_t *out);

void ek_maxpool2d_f32(const ek_pool2d_params *p, const float *in, float *out);
void ek_avgpool2d_f32(const ek_pool2d_params *p, const float *in, float *out);
void ek_global_avgpool_f32(const ek_global_pool_params *p, const float *in, float *out);
void ek_global_maxpool_f32(const ek_global_pool_params *p, const float *in, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_POOL_H */
