/* ek_norm.c: row-wise LayerNormalization, two-pass mean/variance in float. */
#include "ek_norm.h"

void ek_layernorm_f32(const ek_layernorm_params *p, const float *in, const float *scale,
                      const float *bias, float *out, float *mean, float *inv_std_dev)
{
    const int32_t n = p->size;
    const float inv_n = 1.0f / (float)n;
    int32_t r, i;
    for (r = 0; r < p->outer; r++, in += n, out += n) {
        float sum = 0.0f, dsum = 0.0f, sq = 0.0f, mu, shift, var, inv;
        for (i = 0; i < n; i++) {
            sum += in[i];
        }
        mu = sum * inv_n;
        /* Corrected two-pass (Chan, Golub, LeVeque): the deviations' sum is the rounding error
         * of the first-pass mean; fold it into the mean and out of the variance. */
        for (i = 0; i < n; i++) {
            const float d = in[i] - mu;
            dsum += d;
            sq = EK_FMA(sq, d, d);
        }
        shift = dsum * inv_n;
        mu += shift;
        var = sq * inv_n - shift * shift;
        inv = 1.0f / sqrtf((var > 0.0f ? var : 0.0f) + p->epsilon);
        if (mean) {
            mean[r] = mu;
        }
        if (inv_std_dev) {
            inv_std_dev[r] = inv;
        }
        if (p->scale_size == n && (p->bias_size == n || p->bias_size == 0)) {
            /* The common case (scale/bias cover the whole row): no wrap-around counters. */
            if (bias) {
                for (i = 0; i < n; i++) {
                    out[i] = EK_FMA(bias[i], (in[i] - mu) * inv, scale[i]);
                }
            } else {
                for (i = 0; i < n; i++) {
                    out[i] = (in[i] - mu) * inv * scale[i];
                }
            }
        } else {
            int32_t js = 0, jb = 0;
            for (i = 0; i < n; i++) {
                const float t = (in[i] - mu) * inv * scale[js];
                out[i] = bias ? t + bias[jb] : t;
                if (++js == p->scale_size) {
                    js = 0;
                }
                if (bias && ++jb == p->bias_size) {
                    jb = 0;
                }
            }
        }
    }
}
