/* ek_qconv.h: int8 Conv (1-D/2-D, groups, depthwise, strides, pads, dilations) and fully connected
 * layers (Gemm/MatMul with constant weights), TFLite int8 arithmetic (see ek_qcommon.h).
 *
 * Technique: im2col of two output pixels (two input rows for a fully connected layer) into an int16
 * buffer with the input zero point already subtracted (so padding is a plain 0), then a matrix kernel
 * that computes 2 output channels x 2 pixels per pass with four int32 accumulators. On cores with
 * the DSP extension (__ARM_FEATURE_DSP: Cortex-M4/M7/M33/M55) one 32-bit load of four int8 weights
 * and two SXTB16 give two int16 pairs and each SMLAD does two MACs; the weights are stored
 * pre-permuted at build time ([w0 w2 w1 w3] per group of four) so that no shuffle is needed at run
 * time. Portable C elsewhere (Cortex-M0+, the host). Depthwise convs (one input channel per group)
 * take a direct loop over the plane instead: there is no reduction over channels to vectorise.
 *
 * What the generator must know:
 *  - Tensors are int8, dense, ONNX order (NCHW for conv, [m][k] -> [m][n] for fully connected).
 *  - weights: packed by edgekit.plugins.mcu.qconv_layout.pack_rows: per group, output channels in
 *    pairs (a zero channel completes an odd count); per pair and per group of four of the
 *    K = in_c/groups * k_h * k_w weights ([ic][ky][kx] order, zero padded to
 *    k_pad = ek_qconv_k_pad(K)), channel a's four then channel b's four, each permuted
 *    [w0 w2 w1 w3]. Depthwise convs keep the ONNX order [c][ky][kx].
 *  - bias: int32 [out_c] (scale in_scale * weight_scale[c]), never NULL (zeros when absent).
 *  - Fully connected (ek_qfc_s8): no scratch; weights offset-binary (uint8 u = w + 128, so no
 *    kernel path sign-extends a weight), output features in octets (zero features, u = 128,
 *    complete the last one; bias and requantization arrays padded alike), per octet and group of
 *    four k the eight features' four weights in natural order; the bias has the input offset folded
 *    in (bias + input_offset * sum_k w), so the kernel reads the int8 input as it is.
 *  - multiplier/shift: int32 [out_c], the requantization of each output channel; `arithmetic`
 *    (EK_ARITH_ONNX / EK_ARITH_TFLITE) says how it rounds (ek_requantize_as).
 *  - scratch: ek_qconv_scratch_bytes / ek_qfc_scratch_bytes bytes, 4-byte aligned.
 */
#ifndef EK_QCONV_H
#define EK_QCONV_H

#include "ek_qcommon.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t n;
    int32_t in_c, in_h, in_w;
    int32_t out_c, out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left;
    int32_t groups;
    int32_t depthwise;      /* 1: one input channel per group (direct loop) */
    int32_t k_pad;          /* padded reduction length of one output channel (multiple of 4) */
    int32_t input_offset;   /* -input zero point */
    int32_t output_offset;  /* output zero point */
    int32_t act_min, act_max;
    int32_t arithmetic;     /* EK_ARITH_ONNX or EK_ARITH_TFLITE (see ek_qcommon.h) */
} ek_qconv_params;

/* A residual Add fused after a conv: out = clamp(((v - zv) * a_multiplier + (r - zr) * b_multiplier
 * + 2^(shift-1)) >> shift + zo) with v the conv's int8 output and r the residual input (the
 * arithmetic of ek_qadd_s8; EK_ARITH_TFLITE: ek_qadd_value_tflite with a_multiplier/a_shift,
 * b_multiplier/b_shift and out_multiplier/out_shift). The conv's output never goes to memory, and
 * the sum may overwrite the residual in place (each value is read before the one written at its
 * position). */
typedef struct {
    int32_t a_offset, b_offset;         /* minus the zero points of the conv output and the residual */
    int32_t a_multiplier, b_multiplier, shift;
    int32_t output_offset;
    int32_t act_min, act_max;
    int32_t a_shift, b_shift, out_multiplier, out_shift; /* EK_ARITH_TFLITE only */
    int32_t arithmetic;                 /* EK_ARITH_ONNX or EK_ARITH_TFLITE */
} ek_qadd_epilogue;

typedef struct {
    ek_qconv_params conv;               /* depthwise must be 0 */
    ek_qadd_epilogue add;
} ek_qconv_add_params;

typedef struct {
    int32_t m, n, k;
    int32_t k_pad;
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    int32_t arithmetic;     /* EK_ARITH_ONNX or EK_ARITH_TFLITE (see ek_qcommon.h) */
} ek_qfc_params;

/* Reduction length rounded up to the 4 weights one 32-bit load holds. */
#define ek_qconv_k_pad(k) (((k) + 3) & ~3)
/* A depthwise conv with a 3x3 undilated kernel runs from three padded input rows of
 * ek_qdw3x3_width int16 values each (the columns its windows read). */
#define ek_qdw3x3_fast(p) ((p)->k_h == 3 && (p)->k_w == 3 && (p)->dil_h == 1 && (p)->dil_w == 1)
#define ek_qdw3x3_width(p) (((p)->out_w - 1) * (p)->stride_w + 3)
/* Scratch: two int16 columns of k_pad values, interleaved by pairs; depthwise: the three padded
 * rows of a 3x3 kernel (rounded up to 4 bytes), else none. */
#define ek_qconv_scratch_bytes(p)                                                                 \
    ((p)->depthwise ? (ek_qdw3x3_fast(p) ? (6 * ek_qdw3x3_width(p) + 3) & ~3 : 0) : 4 * (p)->k_pad)

void ek_qconv_s8(const ek_qconv_params *p, const int8_t *input, const int8_t *weights,
                 const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *output,
                 void *scratch);

void ek_qconv_add_s8(const ek_qconv_add_params *p, const int8_t *input, const int8_t *weights,
                     const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                     const int8_t *residual, int8_t *output, void *scratch);

void ek_qfc_s8(const ek_qfc_params *p, const int8_t *input, const uint8_t *weights, const int32_t *bias,
               const int32_t *multiplier, const int32_t *shift, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* EK_QCONV_H */
