/* ek_activation.c: unary activations; plain pointer-increment loops the compiler can pipeline. */
#include "ek_activation.h"

void ek_relu_f32(const ek_activation_params *p, const float *in, float *out)
{
    int32_t i;
    for (i = 0; i < p->size; i++) {
        const float x = *in++;
        *out++ = x < 0.0f ? 0.0f : x;
    }
}

void ek_clip_f32(const ek_activation_params *p, const float *in, float *out)
{
    const float lo = p->alpha, hi = p->beta;
    int32_t i;
    for (i = 0; i < p->size; i++) {
        *out++ = ek_clampf(*in++, lo, hi);
    }
}

void ek_leaky_relu_f32(const ek_activation_params *p, const float *in, float *out)
{
    const float slope = p->alpha;
    int32_t i;
    for (i = 0; i < p->size; i++) {
        const float x = *in++;
        *out++ = x < 0.0f ? x * slope : x;
    }
}

void ek_sigmoid_f32(const ek_activation_params *p, const float *in, float *out)
{
    int32_t i;
    for (i = 0; i < p->size; i++) {
        *out++ = ek_sigmoidf(*in++);
    }
}

void ek_tanh_f32(const ek_activation_params *p, const float *in, float *out)
{
    int32_t i;
    for (i = 0; i < p->size; i++) {
        *out++ = tanhf(*in++);
    }
}

void ek_hard_sigmoid_f32(const ek_activation_params *p, const float *in, float *out)
{
    const float alpha = p->alpha, beta = p->beta;
    int32_t i;
    for (i = 0; i < p->size; i++) {
        *out++ = ek_clampf(alpha * *in++ + beta, 0.0f, 1.0f);
    }
}

/* HardSwish(x) = x * HardSigmoid(x) with alpha = 1/6, beta = 0.5 (ONNX definition). */
void ek_hard_swish_f32(const ek_activation_params *p, const float *in, float *out)
{
    int32_t i;
    for (i = 0; i < p->size; i++) {
        const float x = *in++;
        *out++ = x * ek_clampf(x * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f);
    }
}

/* The simple unary maps share one loop shape; EXPR reads x. */
#define EK_UNARY(NAME, EXPR)                                                                    \
    void NAME(const ek_activation_params *p, const float *in, float *out)                       \
    {                                                                                            \
        const float alpha = p->alpha, beta = p->beta;                                            \
        int32_t i;                                                                               \
        (void)alpha;                                                                             \
        (void)beta;                                                                              \
        for (i = 0; i < p->size; i++) {                                                          \
            const float x = *in++;                                                               \
            *out++ = (EXPR);                                                                     \
        }                                                                                        \
    }

EK_UNARY(ek_exp_f32, expf(x))
EK_UNARY(ek_log_f32, logf(x))
EK_UNARY(ek_sqrt_f32, sqrtf(x))
EK_UNARY(ek_neg_f32, -x)
EK_UNARY(ek_abs_f32, fabsf(x))
EK_UNARY(ek_reciprocal_f32, 1.0f / x)
EK_UNARY(ek_floor_f32, floorf(x))
EK_UNARY(ek_ceil_f32, ceilf(x))
EK_UNARY(ek_elu_f32, x < 0.0f ? alpha * (expf(x) - 1.0f) : x)
EK_UNARY(ek_selu_f32, x <= 0.0f ? beta * (alpha * expf(x) - alpha) : beta * x)
/* log(1 + e^x) without overflow: x + log1p(e^-x) for large x. */
EK_UNARY(ek_softplus_f32, x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x)))
EK_UNARY(ek_softsign_f32, x / (1.0f + fabsf(x)))
EK_UNARY(ek_erf_f32, erff(x))
/* Exact GELU x/2 (1 + erf(x/sqrt 2)) or its tanh approximation (ONNX Gelu approximate="tanh"). */
EK_UNARY(ek_gelu_f32, alpha != 0.0f
                          ? 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)))
                          : 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)))
