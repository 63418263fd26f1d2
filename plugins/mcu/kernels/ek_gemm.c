/* ek_gemm.c: float32 Gemm / MatMul over column panels of B.
 *
 * One row of A at a time: for each panel of 8 columns of B', 8 accumulators stay in FP
 * registers while the k loop (unrolled by 4; VLDM assembly on ARMv7E-M FPUs) loads one A
 * element and 8 weights per step. With B packed at build time the 8 weights of a step are
 * adjacent and the panel is one linear stream; an unpacked row-major B is the same loop with a
 * row stride of n. Leftover columns and a transposed unpacked B use a plain dot-product loop.
 * With alpha = 1 and beta = 1 (the fully-connected case) C/bias seeds the accumulators and the
 * clamp happens at the store; otherwise alpha, beta * C and the clamp are applied once per
 * output row, after its sums. */
#include "ek_gemm.h"

/* Where element (kk, j) of B' lives. */
typedef enum { EK_B_PACKED, EK_B_ROW_MAJOR, EK_B_COL_MAJOR } ek_b_layout;

/* ARMv7E-M with a single-precision FPU (Cortex-M4F/M7F): the packed-panel loop is written with
 * VLDM, which loads a contiguous run of weights (16 floats: two k steps of a panel) or two A
 * elements in ONE instruction, something GCC never emits for this loop. Every other target,
 * and unpacked B, uses the C loop. Define EK_NO_INLINE_ASM to force the C loop. */
#if defined(__GNUC__) && defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && (__ARM_FP & 4) && \
    !defined(EK_NO_INLINE_ASM)
#define EK_GEMM_VLDM 1
#else
#define EK_GEMM_VLDM 0
#endif

/* One panel of 8 columns of one output row:
 *   y[j] = clamp(init[j * init_step] + sum_kk a[kk * a_sk] * bp[kk * ldb + j]), j < 8
 * (init NULL: 0). The 8 accumulators live in FP registers; the C loop is unrolled by 4. */
#if EK_SPECIALISE
static void ek_gemm_panel8(const float *a, int32_t a_sk, const float *bp, int32_t ldb,
                           int32_t k, const float *init, int32_t init_step, float *y, float lo,
                           float hi)
{
    float c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f, c4 = 0.0f, c5 = 0.0f, c6 = 0.0f, c7 = 0.0f;
    int32_t kk = 0;
    if (init) {
        c0 = init[0]; c1 = init[init_step]; c2 = init[2 * init_step];
        c3 = init[3 * init_step]; c4 = init[4 * init_step]; c5 = init[5 * init_step];
        c6 = init[6 * init_step]; c7 = init[7 * init_step];
    }
#if EK_GEMM_VLDM
    if (ldb == EK_GEMM_PANEL && a_sk == 1 && k >= 2) {
        int32_t pairs = k / 2;
        kk = 2 * pairs;
        __asm__ volatile(
            "1:\n\t"
            "vldmia %[a]!, {s8-s9}\n\t"
            "vldmia %[b]!, {s16-s31}\n\t"
            "vfma.f32 %[c0], s8, s16\n\t"
            "vfma.f32 %[c1], s8, s17\n\t"
            "vfma.f32 %[c2], s8, s18\n\t"
            "vfma.f32 %[c3], s8, s19\n\t"
            "vfma.f32 %[c4], s8, s20\n\t"
            "vfma.f32 %[c5], s8, s21\n\t"
            "vfma.f32 %[c6], s8, s22\n\t"
            "vfma.f32 %[c7], s8, s23\n\t"
            "vfma.f32 %[c0], s9, s24\n\t"
            "vfma.f32 %[c1], s9, s25\n\t"
            "vfma.f32 %[c2], s9, s26\n\t"
            "vfma.f32 %[c3], s9, s27\n\t"
            "vfma.f32 %[c4], s9, s28\n\t"
            "vfma.f32 %[c5], s9, s29\n\t"
            "vfma.f32 %[c6], s9, s30\n\t"
            "vfma.f32 %[c7], s9, s31\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            : [a] "+r"(a), [b] "+r"(bp), [n] "+r"(pairs), [c0] "+t"(c0), [c1] "+t"(c1),
              [c2] "+t"(c2), [c3] "+t"(c3), [c4] "+t"(c4), [c5] "+t"(c5), [c6] "+t"(c6),
              [c7] "+t"(c7)
            :
            : "s8", "s9", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25",
              "s26", "s27", "s28", "s29", "s30", "s31", "cc", "memory");
    }
#endif
#define EK_PANEL_STEP(AV, BP)                                                                    \
    do {                                                                                         \
        const float av_ = (AV);                                                                  \
        const float *bp_ = (BP);                                                                 \
        c0 = EK_FMA(c0, av_, bp_[0]); c1 = EK_FMA(c1, av_, bp_[1]);                              \
        c2 = EK_FMA(c2, av_, bp_[2]); c3 = EK_FMA(c3, av_, bp_[3]);                              \
        c4 = EK_FMA(c4, av_, bp_[4]); c5 = EK_FMA(c5, av_, bp_[5]);                              \
        c6 = EK_FMA(c6, av_, bp_[6]); c7 = EK_FMA(c7, av_, bp_[7]);                              \
    } while (0)
    for (; kk + 4 <= k; kk += 4, a += 4 * a_sk, bp += 4 * ldb) {
        EK_PANEL_STEP(a[0], bp);
        EK_PANEL_STEP(a[a_sk], bp + ldb);
        EK_PANEL_STEP(a[2 * a_sk], bp + 2 * ldb);
        EK_PANEL_STEP(a[3 * a_sk], bp + 3 * ldb);
    }
    for (; kk < k; kk++, a += a_sk, bp += ldb) {
        EK_PANEL_STEP(a[0], bp);
    }
#undef EK_PANEL_STEP
    {
        const int lower_only = hi == INFINITY;
        y[0] = ek_act_clampf(c0, lower_only, lo, hi); y[1] = ek_act_clampf(c1, lower_only, lo, hi);
        y[2] = ek_act_clampf(c2, lower_only, lo, hi); y[3] = ek_act_clampf(c3, lower_only, lo, hi);
        y[4] = ek_act_clampf(c4, lower_only, lo, hi); y[5] = ek_act_clampf(c5, lower_only, lo, hi);
        y[6] = ek_act_clampf(c6, lower_only, lo, hi); y[7] = ek_act_clampf(c7, lower_only, lo, hi);
    }
}
#endif

/* y[j] = sum_kk a[kk * a_sk] * bp[kk * ldb + j * ldc] for j < width (any layout). */
static void ek_gemm_columns(const float *a, int32_t a_sk, const float *bp, int32_t ldb,
                            int32_t ldc, int32_t k, int32_t width, float *y)
{
    int32_t j, kk;
    for (j = 0; j < width; j++, bp += ldc) {
        float acc = 0.0f;
        for (kk = 0; kk < k; kk++) {
            acc = EK_FMA(acc, a[kk * a_sk], bp[kk * ldb]);
        }
        y[j] = acc;
    }
}

/* Shared core: Y[m][n] = clamp(alpha * A'B' + beta * C'), A'(i, kk) = a[i * a_sm + kk * a_sk],
 * C'(i, j) = c[i * c_sm + j * c_sn] (c may be NULL). */
typedef struct {
    int32_t m, n, k;
    int32_t a_sm, a_sk;
    ek_b_layout layout;
    const float *c;
    int32_t c_sm, c_sn;
    float alpha, beta, lo, hi;
} ek_gemm_job;

#if !EK_SPECIALISE
/* -Os: every column through the plain dot-product loop (no 8-column panels), then alpha, beta * C
 * and the clamp. Column j of a packed B lies in panel j / 8 (stride 8) or, past the last whole
 * panel, in the row-major leftover block. */
static void ek_gemm_run(const ek_gemm_job *job, const float *a, const float *b, float *y)
{
    const int32_t n = job->n, k = job->k, full = n - n % EK_GEMM_PANEL;
    int32_t i, j;
    for (i = 0; i < job->m; i++, a += job->a_sm, y += n) {
        const float *c = job->c ? job->c + (size_t)i * job->c_sm : NULL;
        for (j = 0; j < n; j++) {
            const float *bj;
            int32_t ldb;
            if (job->layout == EK_B_COL_MAJOR) {
                bj = b + (size_t)j * k, ldb = 1;
            } else if (job->layout == EK_B_ROW_MAJOR) {
                bj = b + j, ldb = n;
            } else if (j < full) {
                bj = b + (size_t)(j - j % EK_GEMM_PANEL) * k + j % EK_GEMM_PANEL, ldb = EK_GEMM_PANEL;
            } else {
                bj = b + (size_t)full * k + (j - full), ldb = n - full;
            }
            ek_gemm_columns(a, job->a_sk, bj, ldb, 1, k, 1, y + j);
            {
                float v = job->alpha == 1.0f ? y[j] : job->alpha * y[j];
                if (c) {
                    v = EK_FMA(v, job->beta, c[j * job->c_sn]);
                }
                y[j] = ek_clampf(v, job->lo, job->hi);
            }
        }
    }
}
#else
static void ek_gemm_run(const ek_gemm_job *job, const float *a, const float *b, float *y)
{
    const int32_t n = job->n, k = job->k;
    const int32_t full = job->layout == EK_B_COL_MAJOR ? 0 : n - n % EK_GEMM_PANEL;
    /* Common case (alpha = 1, beta = 1 or no C): C seeds the accumulators and the panel
     * loop clamps and stores; otherwise raw sums, then alpha / beta * C / clamp per row. */
    const int fused = job->alpha == 1.0f && (job->c == NULL || job->beta == 1.0f);
    const float lo = fused ? job->lo : -INFINITY, hi = fused ? job->hi : INFINITY;
    int32_t i, j;
    for (i = 0; i < job->m; i++, a += job->a_sm, y += n) {
        const float *c = job->c ? job->c + (size_t)i * job->c_sm : NULL;
        const float *init = fused ? c : NULL;
        for (j = 0; j < full; j += EK_GEMM_PANEL) {
            const float *bp = job->layout == EK_B_PACKED ? b + (size_t)j * k : b + j;
            ek_gemm_panel8(a, job->a_sk, bp, job->layout == EK_B_PACKED ? EK_GEMM_PANEL : n, k,
                           init ? init + (size_t)j * job->c_sn : NULL, job->c_sn, y + j, lo, hi);
        }
        if (full < n) {
            if (job->layout == EK_B_PACKED) {
                ek_gemm_columns(a, job->a_sk, b + (size_t)full * k, n - full, 1, k, n - full,
                                y + full);
            } else if (job->layout == EK_B_ROW_MAJOR) {
                ek_gemm_columns(a, job->a_sk, b + full, n, 1, k, n - full, y + full);
            } else {
                ek_gemm_columns(a, job->a_sk, b, 1, k, k, n, y);
            }
        }
        /* Epilogue: the whole row when not fused, else only the leftover columns. */
        for (j = fused ? full : 0; j < n; j++) {
            float v = job->alpha == 1.0f ? y[j] : job->alpha * y[j];
            if (c) {
                v = EK_FMA(v, job->beta, c[j * job->c_sn]);
            }
            y[j] = ek_clampf(v, job->lo, job->hi);
        }
    }
}
#endif

void ek_gemm_f32(const ek_gemm_params *p, const float *a, const float *b, const float *c,
                 float *y)
{
    ek_gemm_job job;
    job.m = p->m;
    job.n = p->n;
    job.k = p->k;
    job.a_sm = p->trans_a ? 1 : p->k;
    job.a_sk = p->trans_a ? p->m : 1;
    job.layout = p->b_packed ? EK_B_PACKED : (p->trans_b ? EK_B_COL_MAJOR : EK_B_ROW_MAJOR);
    job.c = c;
    job.c_sm = p->c_stride_m;
    job.c_sn = p->c_stride_n;
    job.alpha = p->alpha;
    job.beta = p->beta;
    job.lo = p->act_min;
    job.hi = p->act_max;
    ek_gemm_run(&job, a, b, y);
}

void ek_matmul_f32(const ek_matmul_params *p, const float *a, const float *b, const float *bias,
                   float *y)
{
    const int32_t dims = p->batch_dims;
    const size_t y_step = (size_t)p->m * p->n;
    int32_t idx[EK_MATMUL_MAX_BATCH_DIMS] = {0, 0, 0, 0};
    int32_t total = 1, t, d;
    ek_gemm_job job;
    job.m = p->m;
    job.n = p->n;
    job.k = p->k;
    job.a_sm = p->k;
    job.a_sk = 1;
    job.layout = p->b_packed ? EK_B_PACKED : EK_B_ROW_MAJOR;
    job.c = bias;
    job.c_sm = 0;
    job.c_sn = 1;
    job.alpha = 1.0f;
    job.beta = 1.0f;
    job.lo = p->act_min;
    job.hi = p->act_max;
    for (d = 0; d < dims; d++) {
        total *= p->batch_shape[d];
    }
    for (t = 0; t < total; t++) {
        /* Odometer over the output batch dims; offsets follow the (broadcast) strides. */
        size_t a_off = 0, b_off = 0;
        for (d = 0; d < dims; d++) {
            a_off += (size_t)idx[d] * p->a_batch_stride[d];
            b_off += (size_t)idx[d] * p->b_batch_stride[d];
        }
        ek_gemm_run(&job, a + a_off, b + b_off, y + (size_t)t * y_step);
        for (d = dims - 1; d >= 0; d--) {
            if (++idx[d] < p->batch_shape[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
}
