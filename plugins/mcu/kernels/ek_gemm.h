/* ek_gemm.h: float32 Gemm (ONNX Gemm) and MatMul (batched, broadcast batch dims).
 *
 * Technique: B is pre-packed at build time into column panels of EK_GEMM_PANEL = 8 columns
 * stored k-major ([k][8]), so for each row of A the inner loop streams the weights linearly,
 * keeps 8 accumulators in FP registers and loads each A element once per panel. This is the
 * matrix-vector (batch 1 fully-connected) case that dominates MCU models. On ARMv7E-M with an
 * FPU (Cortex-M4F/M7F) that loop is VLDM assembly: 16 weights (two k steps) per load
 * instruction, about 1.3 executed instructions per MAC; C elsewhere (EK_NO_INLINE_ASM forces C).
 *
 * Packed B layout (weight_layout.pack_gemm_weights / pack_matmul_weights), for one [k][n]
 * matrix B' (B' = B^T when trans_b): floor(n / 8) panels, panel j holding columns
 * 8j .. 8j+7 as [k][8]; then the last n % 8 columns as [k][n % 8]. Same size as B' (k * n
 * floats); panel j starts at j * 8 * k. A batched MatMul B is packed matrix by matrix, so
 * batch strides are unchanged.
 *
 * Unpacked B is accepted too (b_packed = 0: runtime B, or a generator that does not pack),
 * slower when trans_b = 1.
 *
 * Neither kernel needs scratch; neither may be called in place (y must not overlap a, b, c).
 */
#ifndef EK_GEMM_H
#define EK_GEMM_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EK_GEMM_PANEL 8

/* Y[m][n] = clamp(alpha * A' B' + beta * C), A' = trans_a ? A^T : A, B' = trans_b ? B^T : B. */
typedef struct {
    int32_t m, n, k;         /* Y is [m][n], A' is [m][k], B' is [k][n] */
    int32_t trans_a;         /* 1: A is stored [k][m] */
    int32_t trans_b;         /* 1: B is stored [n][k]; ignored when b_packed (packing resolved it) */
    int32_t b_packed;        /* 1: B was packed with weight_layout.pack_gemm_weights */
    float alpha, beta;       /* ONNX alpha / beta (defaults 1.0) */
    int32_t c_stride_m;      /* C broadcast to [m][n]: C'(i, j) = c[i * c_stride_m + j * c_stride_n]. */
    int32_t c_stride_n;      /*   scalar: 0,0   [n] or [1,n]: 0,1   [m,1]: 1,0   [m,n]: n,1 */
    float act_min, act_max;  /* fused activation clamp */
} ek_gemm_params;

/* c may be NULL (no C input; beta ignored). */
void ek_gemm_f32(const ek_gemm_params *p, const float *a, const float *b, const float *c,
                 float *y);

/* Floats of scratch ek_gemm_f32 needs: always 0 (no scratch argument). */
static inline size_t ek_gemm_scratch_size(const ek_gemm_params *p)
{
    (void)p;
    return 0u;
}

#define EK_MATMUL_MAX_BATCH_DIMS 4

/* MatMul with numpy broadcasting. The generator reshapes 1-D operands first: A [k] -> [1][k]
 * (m = 1), B [k] -> [k][1] (n = 1), and drops those dims from the output shape itself (the
 * output data layout is the same). Batch dims of A and B are broadcast to the output batch
 * shape; the generator passes, per output batch dim, the element stride of A's and B's
 * matrices along that dim (0 where the operand is broadcast or lacks the dim).
 * Example: A [2][1][m][k], B [3][k][n] -> Y [2][3][m][n]: batch_dims = 2, batch_shape = {2,3},
 * a_batch_stride = {m*k, 0}, b_batch_stride = {0, k*n}.
 * Y is dense [batch_shape...][m][n]. bias ([n], NULL allowed) lets the generator fuse a
 * following Add of a [n] constant. */
typedef struct {
    int32_t m, n, k;
    int32_t batch_dims;                                  /* 0 .. EK_MATMUL_MAX_BATCH_DIMS */
    int32_t batch_shape[EK_MATMUL_MAX_BATCH_DIMS];       /* output batch dims, outermost first */
    int32_t a_batch_stride[EK_MATMUL_MAX_BATCH_DIMS];    /* elements; 0 = broadcast */
    int32_t b_batch_stride[EK_MATMUL_MAX_BATCH_DIMS];    /* elements; 0 = broadcast */
    int32_t b_packed;        /* 1: B packed with weight_layout.pack_matmul_weights */
    float act_min, act_max;  /* fused activation clamp */
} ek_matmul_params;

void ek_matmul_f32(const ek_matmul_params *p, const float *a, const float *b, const float *bias,
                   float *y);

static inline size_t ek_matmul_scratch_size(const ek_matmul_params *p)
{
    (void)p;
    return 0u;
}

#ifdef __cplusplus
}
#endif

#endif /* EK_GEMM_H */
