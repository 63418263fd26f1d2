/* ek_qsoftmax.h: int8 Softmax along one axis, integer only.
 *
 * exp(s_in * (x - max)) for the 256 possible differences is a table of Q30 values built at build
 * time from the input scale; the probabilities are e / sum, brought to the output scale with one
 * rounded 64-bit division per value. Q30 (not Q16) keeps the result within about 1e-9 of the exact
 * quotient, so it rounds like DequantizeLinear -> Softmax -> QuantizeLinear in exact arithmetic
 * except within that distance of a rounding boundary. */
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

/* exp_q30[d] = round(2^30 * exp(-input_scale * d)), d = max - x in [0, 255]; axis <= 32767 keeps
 * every sum and product in int64 */
void ek_qsoftmax_s8(const ek_qsoftmax_params *p, const int8_t *in, const int32_t *exp_q30, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_QSOFTMAX_H */
