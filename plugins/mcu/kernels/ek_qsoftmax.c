/* ek_qsoftmax.c: int8 Softmax (see ek_qsoftmax.h). */
#include "ek_qsoftmax.h"

void ek_qsoftmax_s8(const ek_qsoftmax_params *p, const int8_t *in, const int32_t *exp_q30, int8_t *out)
{
    int32_t o, j, i;
    for (o = 0; o < p->outer; o++) {
        for (j = 0; j < p->inner; j++) {
            const int8_t *x = in + o * p->axis * p->inner + j;
            int8_t *y = out + o * p->axis * p->inner + j;
            int32_t max = -128;
            int64_t sum = 0, denominator;
            for (i = 0; i < p->axis; i++) {
                max = x[i * p->inner] > max ? x[i * p->inner] : max;
            }
            for (i = 0; i < p->axis; i++) {
                sum += exp_q30[max - x[i * p->inner]];
            }
            denominator = sum << 16;
            for (i = 0; i < p->axis; i++) {
                const int64_t num = (int64_t)exp_q30[max - x[i * p->inner]] * p->inv_scale_q16;
                const int32_t q = (int32_t)((num + denominator / 2) / denominator);
                y[i * p->inner] = (int8_t)ek_clamp_i32(q + p->output_offset, -128, 127);
            }
        }
    }
}
