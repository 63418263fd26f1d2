/* ek_resize.h: Resize of the two spatial axes of NCHW float tensors (ONNX Resize, modes nearest
 * and linear).
 *
 * The coordinate transformation (half_pixel, align_corners, ...) and the nearest rounding are
 * resolved at build time into per-axis tables, so the kernels only gather: output row oy reads
 * input row(s) from the y tables, output column ox from the x tables. Every plane (N x C of them)
 * uses the same tables. Not callable in place (the output is a different size). */
#ifndef EK_RESIZE_H
#define EK_RESIZE_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t planes;            /* N * C */
    int32_t in_h, in_w;
    int32_t out_h, out_w;
    const int32_t *src_y;      /* [out_h] input row of each output row */
    const int32_t *src_x;      /* [out_w] input column of each output column */
} ek_resize_nearest_params;

/* Bilinear: out[oy][ox] = (1 - wy) * ((1 - wx) * in[y0][x0] + wx * in[y0][x1])
 *                            + wy  * ((1 - wx) * in[y1][x0] + wx * in[y1][x1])
 * with y0/y1/wy taken at oy and x0/x1/wx at ox (indices already clamped to the input). */
typedef struct {
    int32_t planes;            /* N * C */
    int32_t in_h, in_w;
    int32_t out_h, out_w;
    const int32_t *y0, *y1;    /* [out_h] the two input rows of each output row */
    const float *wy;           /* [out_h] weight of row y1 */
    const int32_t *x0, *x1;    /* [out_w] the two input columns of each output column */
    const float *wx;           /* [out_w] weight of column x1 */
} ek_resize_bilinear_params;

void ek_resize_nearest_f32(const ek_resize_nearest_params *p, const float *in, float *out);
void ek_resize_bilinear_f32(const ek_resize_bilinear_params *p, const float *in, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_RESIZE_H */
