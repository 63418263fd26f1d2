/* ek_softmax.c: max-subtracted softmax; three passes over each strided slice. */
#include "ek_softmax.h"

/* The largest of len values spaced inner apart: subtracting it keeps expf from overflowing. */
static float ek_slice_max(const float *x, int32_t len, int32_t inner)
{
    float m = -INFINITY;
    int32_t k;
    for (k = 0; k < len; k++) {
        m = ek_maxf(m, x[k * inner]);
    }
    return m;
}

void ek_softmax_f32(const ek_softmax_params *p, const float *in, float *out)
{
    const int32_t len = p->axis_len, inner = p->inner;
    int32_t o, j, k;
    for (o = 0; o < p->outer; o++) {
        for (j = 0; j < inner; j++) {
            const float *x = in + (o * len) * inner + j;
            float *y = out + (o * len) * inner + j;
            const float m = ek_slice_max(x, len, inner);
            float sum = 0.0f, inv;
            for (k = 0; k < len; k++) {
                const float e = expf(x[k * inner] - m);
                y[k * inner] = e;
                sum += e;
            }
            inv = 1.0f / sum;
            for (k = 0; k < len; k++) {
                y[k * inner] *= inv;
            }
        }
    }
}

void ek_log_softmax_f32(const ek_softmax_params *p, const float *in, float *out)
{
    const int32_t len = p->axis_len, inner = p->inner;
    int32_t o, j, k;
    for (o = 0; o < p->outer; o++) {
        for (j = 0; j < inner; j++) {
            const float *x = in + (o * len) * inner + j;
            float *y = out + (o * len) * inner + j;
            const float m = ek_slice_max(x, len, inner);
            float sum = 0.0f, log_sum;
            for (k = 0; k < len; k++) {
                sum += expf(x[k * inner] - m);
            }
            log_sum = logf(sum);
            /* (x - m) first: it is exact for x near m, whereas folding m + log_sum into one
             * shift rounds that sum at m's magnitude (ulp(1e5) ~ 8e-3). */
            for (k = 0; k < len; k++) {
                y[k * inner] = (x[k * inner] - m) - log_sum;
            }
        }
    }
}
