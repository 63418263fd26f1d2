/* CHANGED (~09:05 UTC): ek_conv2d_f32 now NEEDS its scratch buffer (it was documented as 0
 * floats / NULL before): allocate ek_conv2d_scratch_size(p) floats in the arena
 * (weight_layout.conv2d_scratch_floats(params) in Python) and pass it as the last argument.
 * Signatures are unchanged.
 * CHANGED (~09:15 UTC): the scratch size of depthwise convs (multiplier < 4) is one padded input
 * plane; conv2d_scratch_floats(params) follows (it now also reads in_h/in_w/pads/out_c).
 * CHANGED (~09:22 UTC): ConvTranspose weights now have a real packed layout (blocks of 4 output
 * channels, see below): keep calling weight_layout.pack_conv_transpose2d_weights.
 *
 * ek_conv.h: float32 Conv and ConvTranspose (1-D as in_h = out_h = k_h = 1, and 2-D), NCHW.
 *
 * Technique: direct convolution (no im2col), register-blocked 4 output channels x 4 output
 * pixels per inner loop, weights pre-packed at build time so the inner loop reads them
 * sequentially, and padding handled by clipping the kernel rows once per output row and by
 * running the same 4-pixel tile over a small zero-padded copy of the input columns (scratch)
 * for the left/right edge and the last partial column, so no loop carries bounds checks.
 * On ARMv7E-M FPUs (Cortex-M4F/M7F) the 3-wide and 1x1 taps are VLDM/VLDR.64 inline assembly
 * (EK_NO_INLINE_ASM forces the C loops). Depthwise convs with a channel multiplier below 4 take
 * a separate path over a zero-padded input plane (scratch) with the kernel held in registers.
 *
 * Everything the generator must know to call these kernels:
 *  - Tensors are dense float32 in ONNX order: input [n][in_c][in_h][in_w], output
 *    [n][out_c][out_h][out_w]. 1-D ops: set in_h = out_h = k_h = 1, stride_h = dil_h = 1,
 *    pad_top = pad_bottom = 0.
 *  - auto_pad is resolved by the generator into explicit begin/end pads; output sizes are
 *    given explicitly (they must match ONNX's shape inference).
 *  - Conv weights MUST be packed with weight_layout.pack_conv2d_weights(w, params) (same
 *    element count as the ONNX tensor, see EK_CONV_OC_BLOCK below). ConvTranspose weights MUST
 *    be packed with weight_layout.pack_conv_transpose2d_weights(w, params).
 *  - bias is [out_c] or NULL.
 *  - Fused activation: every output is clamped to [act_min, act_max] (Relu: [0, INFINITY],
 *    Relu6/Clip: [lo, hi], none: [-INFINITY, INFINITY]).
 *  - scratch: float buffer of ek_conv2d_scratch_size(p) floats (required, never NULL);
 *    weight_layout.conv2d_scratch_floats(params) computes the same number in Python. It is
 *    only used during the call (the arena can reuse it between layers).
 *  - Not in place: out must not overlap in.
 */
#ifndef EK_CONV_H
#define EK_CONV_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Packed Conv weight layout (what pack_conv2d_weights produces), per group g in order
 * (ocg = out_c / groups output channels, icg = in_c / groups input channels per group):
 *   1. floor(ocg / 4) blocks of EK_CONV_OC_BLOCK = 4 consecutive output channels, each stored as
 *      [icg][k_h][k_w][4]  (the 4 output channels of the block innermost);
 *   2. the remaining ocg % 4 output channels in ONNX order [r][icg][k_h][k_w].
 * Size is out_c * icg * k_h * k_w floats, exactly the ONNX size; group g starts at
 * g * ocg * icg * k_h * k_w. */
#define EK_CONV_OC_BLOCK 4

typedef struct {
    int32_t n;                     /* batch */
    int32_t in_c, in_h, in_w;      /* input channels and spatial size (1-D: in_h = 1) */
    int32_t out_c, out_h, out_w;   /* output channels and spatial size (1-D: out_h = 1) */
    int32_t k_h, k_w;              /* kernel size (1-D: k_h = 1) */
    int32_t stride_h, stride_w;    /* >= 1 */
    int32_t dil_h, dil_w;          /* dilations, >= 1 */
    int32_t pad_top, pad_left;     /* begin pads (ONNX pads[0], pads[1] for 2-D) */
    int32_t pad_bottom, pad_right; /* end pads (ONNX pads[2], pads[3] for 2-D) */
    int32_t groups;                /* in_c and out_c are multiples of groups; depthwise: groups = in_c */
    float act_min, act_max;        /* fused activation clamp */
} ek_conv2d_params;

/* Width of the zero-padded input window an edge tile of 4 output pixels reads. */
#define EK_CONV_WINDOW_W(p) (3 * (p)->stride_w + ((p)->k_w - 1) * (p)->dil_w + 1)

/* Floats of scratch ek_conv2d_f32 needs (never 0). Python: weight_layout.conv2d_scratch_floats.
 *  - depthwise with channel multiplier < 4 (in_c == groups, out_c / groups < 4): one
 *    zero-padded input plane, (in_h + pad_top + pad_bottom) * (in_w + pad_left + pad_right);
 *  - otherwise one zero-padded input window per edge tile,
 *    (in_c / groups) * k_h * (3 * stride_w + (k_w - 1) * dil_w + 1)
 *    (e.g. ResNet-8's 64->64 3x3 conv: 1,152 floats). */
static inline size_t ek_conv2d_scratch_size(const ek_conv2d_params *p)
{
    if (p->in_c == p->groups && p->out_c / p->groups < EK_CONV_OC_BLOCK) {
        return (size_t)(p->in_h + p->pad_top + p->pad_bottom) *
               (size_t)(p->in_w + p->pad_left + p->pad_right);
    }
    return (size_t)(p->in_c / p->groups) * (size_t)p->k_h * (size_t)EK_CONV_WINDOW_W(p);
}

/* Conv: out = clamp(conv(in, w) + bias). w is packed (see above), bias may be NULL. */
void ek_conv2d_f32(const ek_conv2d_params *p, const float *in, const float *w_packed,
                   const float *bias, float *out, float *scratch);

/* ConvTranspose. ONNX weight shape is [in_c][out_c / groups][k_h][k_w]; the kernel needs the
 * packed layout of weight_layout.pack_conv_transpose2d_weights (same size), per group g:
 * floor(ocg / 4) blocks of 4 output channels stored [k_h][k_w][icg][4], then the ocg % 4
 * leftover output channels stored [k_h][k_w][icg] each. output_padding and output_shape are
 * folded by the generator into out_h / out_w:
 *   out_h = stride_h * (in_h - 1) + output_padding_h + ((k_h - 1) * dil_h + 1) - pad_top - pad_bottom
 * (same for w). Gather form, 4 output channels per pixel: no scratch. */
typedef struct {
    int32_t n;                     /* batch */
    int32_t in_c, in_h, in_w;      /* input channels and spatial size (1-D: in_h = 1) */
    int32_t out_c, out_h, out_w;   /* output channels and spatial size, output_padding included */
    int32_t k_h, k_w;              /* kernel size (1-D: k_h = 1) */
    int32_t stride_h, stride_w;    /* >= 1 */
    int32_t dil_h, dil_w;          /* >= 1 */
    int32_t pad_top, pad_left;     /* begin pads */
    int32_t pad_bottom, pad_right; /* end pads (only out_h/out_w depend on them; kept for docs) */
    int32_t groups;                /* in_c and out_c are multiples of groups */
    float act_min, act_max;        /* fused activation clamp */
} ek_conv_transpose2d_params;

void ek_conv_transpose2d_f32(const ek_conv_transpose2d_params *p, const float *in,
                             const float *w_packed, const float *bias, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_CONV_H */
