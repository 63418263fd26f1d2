/* ek_batchnorm.h: inference BatchNormalization as a per-channel affine map y = x * scale[c] + shift[c].
 * scale = gamma / sqrt(var + eps) and shift = beta - mean * scale are folded at build time.
 * In-place use (out == in) is allowed. */
#ifndef EK_BATCHNORM_H
#define EK_BATCHNORM_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t batch;     /* N */
    int32_t channels;  /* C */
    int32_t inner;     /* product of the spatial dims (1 for [N, C]) */
} ek_batchnorm_params;

void ek_batchnorm_f32(const ek_batchnorm_params *p, const float *in, const float *scale,
                      const float *shift, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_BATCHNORM_H */
