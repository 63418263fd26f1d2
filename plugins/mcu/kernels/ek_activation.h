/* ek_activation.h: unary elementwise activations over a dense tensor of `size` elements.
 * Every function may be called in place (out == in). */
#ifndef EK_ACTIVATION_H
#define EK_ACTIVATION_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t size;   /* number of elements */
    float alpha;    /* Clip: min, LeakyRelu: slope, HardSigmoid: alpha */
    float beta;     /* Clip: max, HardSigmoid: beta */
} ek_activation_params;

void ek_relu_f32(const ek_activation_params *p, const float *in, float *out);
void ek_clip_f32(const ek_activation_params *p, const float *in, float *out);
void ek_leaky_relu_f32(const ek_activation_params *p, const float *in, float *out);
void ek_sigmoid_f32(const ek_activation_params *p, const float *in, float *out);
void ek_tanh_f32(const ek_activation_params *p, const float *in, float *out);
void ek_hard_sigmoid_f32(const ek_activation_params *p, const float *in, float *out);
void ek_hard_swish_f32(const ek_activation_params *p, const float *in, float *out);
void ek_exp_f32(const ek_activation_params *p, const float *in, float *out);
void ek_log_f32(const ek_activation_params *p, const float *in, float *out);
void ek_sqrt_f32(const ek_activation_params *p, const float *in, float *out);
void ek_neg_f32(const ek_activation_params *p, const float *in, float *out);
void ek_abs_f32(const ek_activation_params *p, const float *in, float *out);
void ek_reciprocal_f32(const ek_activation_params *p, const float *in, float *out);
void ek_floor_f32(const ek_activation_params *p, const float *in, float *out);
void ek_ceil_f32(const ek_activation_params *p, const float *in, float *out);
void ek_elu_f32(const ek_activation_params *p, const float *in, float *out);       /* alpha */
void ek_selu_f32(const ek_activation_params *p, const float *in, float *out);      /* alpha, beta = gamma */
void ek_softplus_f32(const ek_activation_params *p, const float *in, float *out);
void ek_softsign_f32(const ek_activation_params *p, const float *in, float *out);
void ek_erf_f32(const ek_activation_params *p, const float *in, float *out);
void ek_gelu_f32(const ek_activation_params *p, const float *in, float *out);      /* alpha: 1 = tanh approximation */

#ifdef __cplusplus
}
#endif

#endif /* EK_ACTIVATION_H */
