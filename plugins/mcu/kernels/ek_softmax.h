/* ek_softmax.h: numerically stable softmax / log-softmax over one axis of a tensor viewed as
 * [outer, axis_len, inner] (the generator computes the view for opset < 13 and >= 13 semantics). */
#ifndef EK_SOFTMAX_H
#define EK_SOFTMAX_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t outer;
    int32_t axis_len;
    int32_t inner;
} ek_softmax_params;

void ek_softmax_f32(const ek_softmax_params *p, const float *in, float *out);
/* LogSoftmax: x - max - log(sum(exp(x - max))). */
void ek_log_softmax_f32(const ek_softmax_params *p, const float *in, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_SOFTMAX_H */
