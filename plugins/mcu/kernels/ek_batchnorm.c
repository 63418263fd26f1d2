/* ek_batchnorm.c: per-channel affine map over NC(spatial) data. */
#include "ek_batchnorm.h"

void ek_batchnorm_f32(const ek_batchnorm_params *p, const float *in, const float *scale,
                      const float *shift, float *out)
{
    int32_t n, c, i;
    for (n = 0; n < p->batch; n++) {
        for (c = 0; c < p->channels; c++) {
            const float s = scale[c], t = shift[c];
            for (i = 0; i < p->inner; i++) {
                *out++ = *in++ * s + t;
            }
        }
    }
}
