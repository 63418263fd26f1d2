/* ek_qsoftmax.h: int8 Softmax along one axis, integer only.
 *
 * exp(s_in * (x - max)) for the 256 possible differences is a table of Q16 values built at build
 * time from the input scale; the probabilities are e / sum, brought to the output scale with one
 * rounded 64-bit division per value. */
#ifndef EK_QSOFTMAX_H
#define EK_QSOFTMAX_H

#include "ek_qcommon.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t outer, axis, inner;  /* the input viewed as [outer][axis][inner] */
    int32_t inv_scale_q16;       /* round(65536 / output scale) */
    int32_t output_offset;
} ek_qsoftmax_params;

/* exp_q16[d] = round(65536 * exp(-input_scale * d)), d = max - x in [0, 255] */
void ek_qsoftmax_s8(const ek_qsoftmax_params *p, const int8_t *in, const int32_t *exp_q16, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_QSOFTMAX_H */
