/* ek_common.h: types and macros shared by every edgekit float32 kernel family.
 *
 * Kernel contract (CMSIS-NN style, one call per layer):
 *   void ek_<op>_f32(const ek_<op>_params *p, <inputs...>, <const weights...>, <output>);
 * Tensors are dense float32 in ONNX (NCHW) order; batch is handled inside the kernel.
 * Only the elementwise/activation families may be called in place (output == input). */
#ifndef EK_COMMON_H
#define EK_COMMON_H

/* Per-library symbol names (<prefix>_ek_...): first, so every declaration below sees them. */
#include "ek_names.h"

#include <stddef.h>
#include <stdint.h>
#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Highest tensor rank the shape-generic kernels (broadcast, transpose, slice, pad, reduce) handle. */
#define EK_MAX_DIMS 6

/* Alignment of every tensor offset in the arena, in bytes. */
#define EK_ARENA_ALIGN 16

#if defined(__GNUC__) || defined(__clang__)
#define EK_ALIGNED(n) __attribute__((aligned(n)))
#define EK_RESTRICT __restrict__
#define EK_UNUSED __attribute__((unused))
/* a hot loop with many live values kept out of its caller, so it gets the registers to itself */
#define EK_NOINLINE __attribute__((noinline))
#else
#define EK_ALIGNED(n)
#define EK_RESTRICT
#define EK_UNUSED
#define EK_NOINLINE
#endif

#ifndef INFINITY
#define INFINITY (1.0f / 0.0f)
#endif

/* min(max(v, lo), hi) as ONNX Clip defines it (lo > hi gives hi); NaN passes through because
 * both comparisons are false for NaN. */
static inline float ek_clampf(float v, float lo, float hi)
{
    const float r = v < lo ? lo : v;
    return r > hi ? hi : r;
}

/* Logistic function; exp(-|x|) never overflows, so both branches stay finite for any input.
 * Shared by the activation and recurrent families. */
static inline float ek_sigmoidf(float x)
{
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    } else {
        const float e = expf(x);
        return e / (1.0f + e);
    }
}

static inline float ek_maxf(float a, float b) { return a > b ? a : b; }

/* max/min that propagate NaN from either operand (numpy.maximum, ONNX Max/MaxPool/ReduceMax). */
static inline float ek_max_nan(float acc, float v) { return (v > acc || v != v) ? v : acc; }
static inline float ek_min_nan(float acc, float v) { return (v < acc || v != v) ? v : acc; }
static inline float ek_minf(float a, float b) { return a < b ? a : b; }

/* True when [act_min, act_max] is the identity range, so a kernel can skip its clamp loop. */
static inline int ek_act_is_identity(float act_min, float act_max)
{
    return act_min == -INFINITY && act_max == INFINITY;
}

/* Fused-activation clamp for conv/gemm outputs. lower_only (act_max == INFINITY: none or
 * Relu) needs a single compare with lo; NaN passes through in both forms, like ek_clampf. */
static inline float ek_act_clampf(float v, int lower_only, float lo, float hi)
{
    return lower_only ? (v < lo ? lo : v) : ek_clampf(v, lo, hi);
}

/* Fused multiply-add acc + a * b as one instruction (VFMA) where the target has it; a plain
 * multiply-add elsewhere (-std=c99 disables GCC's automatic contraction, so ask explicitly). */
#if defined(__ARM_FEATURE_FMA) || defined(__FMA__)
#define EK_FMA(acc, a, b) __builtin_fmaf((a), (b), (acc))
#else
#define EK_FMA(acc, a, b) ((acc) + (a) * (b))
#endif

/* -Os builds (gcc defines __OPTIMIZE_SIZE__) keep one generic loop where -O2 builds compile
 * several specialised copies; define EK_SPECIALISE to choose either way explicitly. */
#ifndef EK_SPECIALISE
#ifdef __OPTIMIZE_SIZE__
#define EK_SPECIALISE 0
#else
#define EK_SPECIALISE 1
#endif
#endif

/* Force inlining of small kernel helpers whose constant arguments select a specialised loop. */
#if defined(__GNUC__) || defined(__clang__)
#define EK_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define EK_ALWAYS_INLINE inline
#endif

/* Branch hint for the common case of a two-way split (plain C elsewhere). */
#if defined(__GNUC__) || defined(__clang__)
#define EK_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define EK_LIKELY(x) (x)
#endif

#ifdef __cplusplus
}
#endif

#endif /* EK_COMMON_H */
