/* ek_norm.h: LayerNormalization (ONNX opset 17, stash_type 1) over the trailing `size` elements of
 * every row: y = (x - mean) / sqrt(var + epsilon) * scale + bias, mean and variance in float by the
 * corrected two-pass algorithm (mean first, then the squared deviations and their sum, which
 * corrects the mean's rounding error: no E[x^2] - E[x]^2 cancellation).
 * scale/bias broadcast over the normalized dims as a repeated trailing block of scale_size/bias_size
 * elements (the generator expands any other broadcast of constant operands at build time).
 * In-place use (out == in) is allowed: a row is read fully before any of it is written. */
#ifndef EK_NORM_H
#define EK_NORM_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t outer;       /* rows: product of the dims before axis */
    int32_t size;        /* normalized elements per row: product of dims [axis, rank) */
    int32_t scale_size;  /* scale repeats every scale_size elements (divides size) */
    int32_t bias_size;   /* bias repeats every bias_size elements; 0: no bias */
    float epsilon;
} ek_layernorm_params;

/* mean/inv_std_dev may be NULL; else they receive one value per row (ONNX outputs Mean, InvStdDev). */
void ek_layernorm_f32(const ek_layernorm_params *p, const float *in, const float *scale,
                      const float *bias, float *out, float *mean, float *inv_std_dev);

#ifdef __cplusplus
}
#endif

#endif /* EK_NORM_H */
