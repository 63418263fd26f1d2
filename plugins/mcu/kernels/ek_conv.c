/* ek_conv.c: direct float32 convolution, register-blocked, over build-time packed weights.
 *
 * Conv (ek_conv_blocked): the output is cut into columns of 4 pixels per output row; for each
 * column every block of 4 output channels runs a 4-channel x 4-pixel tile with 16 accumulators
 * in FP registers (each tap: 4 inputs and 4 sequential packed weights for 16 multiply-adds).
 * Rows whose window crosses the top/bottom pad use fewer kernel rows (clipped once per output
 * row). Columns whose window crosses the left/right pad, and the last partial column, first
 * copy their input columns into a small zero-padded window (scratch, shared by all output
 * channels) and run the same tile on it, so no loop checks bounds. Output channels left over
 * from the blocks of 4 use a 1-channel x 4-pixel tile over ONNX-ordered weights. The stride
 * (1, 2, other) and the 3-wide / 1x1 kernels are compile-time constants in specialised copies
 * of the tile loops (immediate-offset loads); on ARMv7E-M FPUs the 3-wide and 1x1 taps are VLDM
 * assembly. Pointwise stride-1 convs run as one long row per plane.
 * Depthwise convs (multiplier < 4) copy each input channel into a zero-padded plane (scratch)
 * and compute each output pixel with its kernel's weights held in registers.
 *
 * ConvTranspose: gather form (each output sums the input taps that scatter onto it), with the
 * valid kernel taps found per output pixel and the input channels innermost: no scratch, no
 * output re-reads; not register-blocked (generic speed). */
#include "ek_conv.h"

/* How many taps a tile loop runs per kernel row: known-at-compile-time shapes first. */
enum { EK_TAPS_ANY = 0, EK_TAPS_1X1 = 1, EK_TAPS_3 = 3 };

/* What a tile reduces over: input channels x valid kernel rows x kernel columns, read either
 * straight from the input (interior tiles) or from a zero-padded window copy (edge tiles). */
typedef struct {
    const float *x;    /* input of channel 0, first valid kernel row, tile's first column */
    int32_t icg;       /* input channels reduced over (0 when no kernel row is valid) */
    int32_t n_kh;      /* kernel rows inside the input for this output row */
    int32_t k_w;       /* kernel columns */
    int32_t in_plane;  /* floats between input channels */
    int32_t row_step;  /* floats between kernel rows */
    int32_t dil_w;     /* floats between kernel columns */
    int32_t w_ic_step; /* floats of weights per input channel: k_h * k_w * lanes */
    int32_t w_kh_step; /* floats of weights per kernel row: k_w * lanes */
} ek_conv_span;

/* Kernel taps [*lo, *hi) of a dilated window starting at input index `start` that fall inside
 * [0, size). Computed once per output row, never per multiply-add. */
static void ek_conv_window(int32_t start, int32_t k, int32_t dil, int32_t size, int32_t *lo,
                           int32_t *hi)
{
    int32_t first = 0, last = k;
    if (start < 0) {
        first = (-start + dil - 1) / dil;
    }
    if (start + (k - 1) * dil >= size) {
        last = start >= size ? 0 : (size - 1 - start) / dil + 1;
    }
    *lo = first;
    *hi = last > first ? last : first;
}

/* Store `npx` (1..4) pixels of `lanes` output channels from acc[lane * 4 + pixel], clamped to
 * the fused activation range. Out of line: the tile loops keep only their FMAs and loads. */
static void ek_conv_store(float *o, int32_t out_plane, const float *acc, int32_t lanes,
                          int32_t npx, const ek_conv2d_params *p)
{
    const float lo = p->act_min, hi = p->act_max;
    const int lower_only = hi == INFINITY;
    int32_t j, q;
    for (j = 0; j < lanes; j++, o += out_plane, acc += 4) {
        if (npx == 4) {
            o[0] = ek_act_clampf(acc[0], lower_only, lo, hi);
            o[1] = ek_act_clampf(acc[1], lower_only, lo, hi);
            o[2] = ek_act_clampf(acc[2], lower_only, lo, hi);
            o[3] = ek_act_clampf(acc[3], lower_only, lo, hi);
            continue;
        }
        for (q = 0; q < npx; q++) {
            o[q] = ek_act_clampf(acc[q], lower_only, lo, hi);
        }
    }
}

/* ARMv7E-M with a single-precision FPU (Cortex-M4F/M7F): the 3-wide kernel rows of the 4x4
 * tile (and 1x1 taps) are written with VLDM / VLDR.64, which load all input columns of the
 * row, or a tap's packed weights for 2 lanes, in ONE instruction (GCC only emits single VLDRs here). Other targets use the C taps.
 * Define EK_NO_INLINE_ASM to force C everywhere. */
#if defined(__GNUC__) && defined(__ARM_ARCH_7EM__) && defined(__ARM_FP) && (__ARM_FP & 4) && \
    !defined(EK_NO_INLINE_ASM)
#define EK_CONV_VLDM 1
/* Two lanes (L, L + 1) of one 3-tap kernel row of the 4x4 tile, stride 1: one VLDM for the
 * 6 input columns, one VLDR.64 per tap for the lanes' 2 packed weights, 8 VFMAs per tap. */
#define EK_CONV_ROW3_S1_ASM(XR, WR, L, C00, C01, C02, C03, C10, C11, C12, C13) \
    __asm__ volatile(                                                                        \
        "vldmia %[x], {s20-s25}\n\t"                                                            \
        "vldr.64 d8, [%[w], #(16 * 0 + 4 * " #L ")]\n\t"                              \
        "vfma.f32 %[c00], s16, s20\n\t" "vfma.f32 %[c01], s16, s21\n\t" \
        "vfma.f32 %[c02], s16, s22\n\t" "vfma.f32 %[c03], s16, s23\n\t" \
        "vfma.f32 %[c10], s17, s20\n\t" "vfma.f32 %[c11], s17, s21\n\t" \
        "vfma.f32 %[c12], s17, s22\n\t" "vfma.f32 %[c13], s17, s23\n\t" \
        "vldr.64 d8, [%[w], #(16 * 1 + 4 * " #L ")]\n\t"                              \
        "vfma.f32 %[c00], s16, s21\n\t" "vfma.f32 %[c01], s16, s22\n\t" \
        "vfma.f32 %[c02], s16, s23\n\t" "vfma.f32 %[c03], s16, s24\n\t" \
        "vfma.f32 %[c10], s17, s21\n\t" "vfma.f32 %[c11], s17, s22\n\t" \
        "vfma.f32 %[c12], s17, s23\n\t" "vfma.f32 %[c13], s17, s24\n\t" \
        "vldr.64 d8, [%[w], #(16 * 2 + 4 * " #L ")]\n\t"                              \
        "vfma.f32 %[c00], s16, s22\n\t" "vfma.f32 %[c01], s16, s23\n\t" \
        "vfma.f32 %[c02], s16, s24\n\t" "vfma.f32 %[c03], s16, s25\n\t" \
        "vfma.f32 %[c10], s17, s22\n\t" "vfma.f32 %[c11], s17, s23\n\t" \
        "vfma.f32 %[c12], s17, s24\n\t" "vfma.f32 %[c13], s17, s25\n\t" \
        : [c00] "+t"(C00), [c01] "+t"(C01), [c02] "+t"(C02), [c03] "+t"(C03),       \
          [c10] "+t"(C10), [c11] "+t"(C11), [c12] "+t"(C12), [c13] "+t"(C13)        \
        : [x] "r"(XR), [w] "r"(WR)                                                  \
        : "s16", "s17", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "memory")

#define EK_CONV_ROW3_S1_ASM4(XR, WR)                                                     \
    do {                                                                                 \
        EK_CONV_ROW3_S1_ASM(XR, WR, 0, a00, a01, a02, a03, a10, a11, a12, a13);          \
        EK_CONV_ROW3_S1_ASM(XR, WR, 2, a20, a21, a22, a23, a30, a31, a32, a33);          \
    } while (0)

/* Two lanes (L, L + 1) of one 3-tap kernel row of the 4x4 tile, stride 2: one VLDM for the
 * 9 input columns, one VLDR.64 per tap for the lanes' 2 packed weights, 8 VFMAs per tap. */
#define EK_CONV_ROW3_S2_ASM(XR, WR, L, C00, C01, C02, C03, C10, C11, C12, C13) \
    __asm__ volatile(                                                                        \
        "vldmia %[x], {s20-s28}\n\t"                                                            \
        "vldr.64 d8, [%[w], #(16 * 0 + 4 * " #L ")]\n\t"                              \
        "vfma.f32 %[c00], s16, s20\n\t" "vfma.f32 %[c01], s16, s22\n\t" \
        "vfma.f32 %[c02], s16, s24\n\t" "vfma.f32 %[c03], s16, s26\n\t" \
        "vfma.f32 %[c10], s17, s20\n\t" "vfma.f32 %[c11], s17, s22\n\t" \
        "vfma.f32 %[c12], s17, s24\n\t" "vfma.f32 %[c13], s17, s26\n\t" \
        "vldr.64 d8, [%[w], #(16 * 1 + 4 * " #L ")]\n\t"                              \
        "vfma.f32 %[c00], s16, s21\n\t" "vfma.f32 %[c01], s16, s23\n\t" \
        "vfma.f32 %[c02], s16, s25\n\t" "vfma.f32 %[c03], s16, s27\n\t" \
        "vfma.f32 %[c10], s17, s21\n\t" "vfma.f32 %[c11], s17, s23\n\t" \
        "vfma.f32 %[c12], s17, s25\n\t" "vfma.f32 %[c13], s17, s27\n\t" \
        "vldr.64 d8, [%[w], #(16 * 2 + 4 * " #L ")]\n\t"                              \
        "vfma.f32 %[c00], s16, s22\n\t" "vfma.f32 %[c01], s16, s24\n\t" \
        "vfma.f32 %[c02], s16, s26\n\t" "vfma.f32 %[c03], s16, s28\n\t" \
        "vfma.f32 %[c10], s17, s22\n\t" "vfma.f32 %[c11], s17, s24\n\t" \
        "vfma.f32 %[c12], s17, s26\n\t" "vfma.f32 %[c13], s17, s28\n\t" \
        : [c00] "+t"(C00), [c01] "+t"(C01), [c02] "+t"(C02), [c03] "+t"(C03),       \
          [c10] "+t"(C10), [c11] "+t"(C11), [c12] "+t"(C12), [c13] "+t"(C13)        \
        : [x] "r"(XR), [w] "r"(WR)                                                  \
        : "s16", "s17", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "memory")

#define EK_CONV_ROW3_S2_ASM4(XR, WR)                                                     \
    do {                                                                                 \
        EK_CONV_ROW3_S2_ASM(XR, WR, 0, a00, a01, a02, a03, a10, a11, a12, a13);          \
        EK_CONV_ROW3_S2_ASM(XR, WR, 2, a20, a21, a22, a23, a30, a31, a32, a33);          \
    } while (0)
/* Two lanes (L, L + 1) of one 1x1 tap of the 4x4 tile, stride 1: one VLDM for the 4 input
 * columns, one VLDR.64 for the lanes' 2 packed weights, 8 VFMAs. */
#define EK_CONV_TAP1_S1_ASM(XR, WR, L, C00, C01, C02, C03, C10, C11, C12, C13) \
    __asm__ volatile(                                                                        \
        "vldmia %[x], {s20-s23}\n\t"                                                            \
        "vldr.64 d8, [%[w], #(4 * " #L ")]\n\t"                              \
        "vfma.f32 %[c00], s16, s20\n\t" "vfma.f32 %[c01], s16, s21\n\t" \
        "vfma.f32 %[c02], s16, s22\n\t" "vfma.f32 %[c03], s16, s23\n\t" \
        "vfma.f32 %[c10], s17, s20\n\t" "vfma.f32 %[c11], s17, s21\n\t" \
        "vfma.f32 %[c12], s17, s22\n\t" "vfma.f32 %[c13], s17, s23\n\t" \
        : [c00] "+t"(C00), [c01] "+t"(C01), [c02] "+t"(C02), [c03] "+t"(C03),       \
          [c10] "+t"(C10), [c11] "+t"(C11), [c12] "+t"(C12), [c13] "+t"(C13)        \
        : [x] "r"(XR), [w] "r"(WR)                                                  \
        : "s16", "s17", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "memory")

#define EK_CONV_TAP1_S1_ASM4(XR, WR)                                                     \
    do {                                                                                 \
        EK_CONV_TAP1_S1_ASM(XR, WR, 0, a00, a01, a02, a03, a10, a11, a12, a13);          \
        EK_CONV_TAP1_S1_ASM(XR, WR, 2, a20, a21, a22, a23, a30, a31, a32, a33);          \
    } while (0)

/* Two lanes (L, L + 1) of one 1x1 tap of the 4x4 tile, stride 2: one VLDM for the 7 input
 * columns, one VLDR.64 for the lanes' 2 packed weights, 8 VFMAs. */
#define EK_CONV_TAP1_S2_ASM(XR, WR, L, C00, C01, C02, C03, C10, C11, C12, C13) \
    __asm__ volatile(                                                                        \
        "vldmia %[x], {s20-s26}\n\t"                                                            \
        "vldr.64 d8, [%[w], #(4 * " #L ")]\n\t"                              \
        "vfma.f32 %[c00], s16, s20\n\t" "vfma.f32 %[c01], s16, s22\n\t" \
        "vfma.f32 %[c02], s16, s24\n\t" "vfma.f32 %[c03], s16, s26\n\t" \
        "vfma.f32 %[c10], s17, s20\n\t" "vfma.f32 %[c11], s17, s22\n\t" \
        "vfma.f32 %[c12], s17, s24\n\t" "vfma.f32 %[c13], s17, s26\n\t" \
        : [c00] "+t"(C00), [c01] "+t"(C01), [c02] "+t"(C02), [c03] "+t"(C03),       \
          [c10] "+t"(C10), [c11] "+t"(C11), [c12] "+t"(C12), [c13] "+t"(C13)        \
        : [x] "r"(XR), [w] "r"(WR)                                                  \
        : "s16", "s17", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "memory")

#define EK_CONV_TAP1_S2_ASM4(XR, WR)                                                     \
    do {                                                                                 \
        EK_CONV_TAP1_S2_ASM(XR, WR, 0, a00, a01, a02, a03, a10, a11, a12, a13);          \
        EK_CONV_TAP1_S2_ASM(XR, WR, 2, a20, a21, a22, a23, a30, a31, a32, a33);          \
    } while (0)
#define EK_ACC_REG(name) __asm__(name)
#else
#define EK_CONV_VLDM 0
#define EK_ACC_REG(name)
#endif

/* Four output channels x four output pixels (pixel q reads input column q * S). The clamp
 * bounds are read from p only at the end, so all 32 FP registers serve the tap loop. */
static EK_ALWAYS_INLINE void ek_conv_tile4x4(const ek_conv_span *sp, const float *w,
                                             const int32_t S, const int32_t taps,
                                             const float *b4, float *o, int32_t out_plane,
                                             int32_t npx, const ek_conv2d_params *p)
{
    const float *x = sp->x;
    const int32_t icg = sp->icg, n_kh = sp->n_kh, k_w = sp->k_w, in_plane = sp->in_plane;
    const int32_t row_step = sp->row_step, dil_w = sp->dil_w;
    const int32_t w_ic_step = sp->w_ic_step, w_kh_step = sp->w_kh_step;
    /* Pinned to s0..s15 for the VLDM assembly (GCC's allocator otherwise shuffles some of
     * them through spare registers around every asm block); plain locals elsewhere. This is
     * safe only because no caller this tile is inlined into takes float arguments (the
     * hard-float ABI passes them in s0..s15, which the pinned variables would overwrite). */
    register float a00 EK_ACC_REG("s0") = b4[0], a01 EK_ACC_REG("s1") = b4[0];
    register float a02 EK_ACC_REG("s2") = b4[0], a03 EK_ACC_REG("s3") = b4[0];
    register float a10 EK_ACC_REG("s4") = b4[1], a11 EK_ACC_REG("s5") = b4[1];
    register float a12 EK_ACC_REG("s6") = b4[1], a13 EK_ACC_REG("s7") = b4[1];
    register float a20 EK_ACC_REG("s8") = b4[2], a21 EK_ACC_REG("s9") = b4[2];
    register float a22 EK_ACC_REG("s10") = b4[2], a23 EK_ACC_REG("s11") = b4[2];
    register float a30 EK_ACC_REG("s12") = b4[3], a31 EK_ACC_REG("s13") = b4[3];
    register float a32 EK_ACC_REG("s14") = b4[3], a33 EK_ACC_REG("s15") = b4[3];
    int32_t ic, kh, kw;
#define EK_TAP4X4(XP, WP)                                                                        \
    do {                                                                                         \
        const float *xp_ = (XP), *wp_ = (WP);                                                    \
        const float x0 = xp_[0], x1 = xp_[S], x2 = xp_[2 * S], x3 = xp_[3 * S];                  \
        const float w0 = wp_[0], w1 = wp_[1], w2 = wp_[2], w3 = wp_[3];                          \
        a00 = EK_FMA(a00, w0, x0); a01 = EK_FMA(a01, w0, x1);                                    \
        a02 = EK_FMA(a02, w0, x2); a03 = EK_FMA(a03, w0, x3);                                    \
        a10 = EK_FMA(a10, w1, x0); a11 = EK_FMA(a11, w1, x1);                                    \
        a12 = EK_FMA(a12, w1, x2); a13 = EK_FMA(a13, w1, x3);                                    \
        a20 = EK_FMA(a20, w2, x0); a21 = EK_FMA(a21, w2, x1);                                    \
        a22 = EK_FMA(a22, w2, x2); a23 = EK_FMA(a23, w2, x3);                                    \
        a30 = EK_FMA(a30, w3, x0); a31 = EK_FMA(a31, w3, x1);                                    \
        a32 = EK_FMA(a32, w3, x2); a33 = EK_FMA(a33, w3, x3);                                    \
    } while (0)
#if EK_CONV_VLDM
#define EK_CONV_ROW3_S1(XR, WR) EK_CONV_ROW3_S1_ASM4(XR, WR)
#define EK_CONV_ROW3_S2(XR, WR) EK_CONV_ROW3_S2_ASM4(XR, WR)
#define EK_CONV_TAP1_S1(XR, WR) EK_CONV_TAP1_S1_ASM4(XR, WR)
#define EK_CONV_TAP1_S2(XR, WR) EK_CONV_TAP1_S2_ASM4(XR, WR)
#else
#define EK_CONV_ROW3_S1(XR, WR) ((void)0)
#define EK_CONV_ROW3_S2(XR, WR) ((void)0)
#define EK_CONV_TAP1_S1(XR, WR) ((void)0)
#define EK_CONV_TAP1_S2(XR, WR) ((void)0)
#endif
    for (ic = 0; ic < icg; ic++, x += in_plane, w += w_ic_step) {
        const float *xr = x, *wr = w;
        if (taps == EK_TAPS_1X1 && EK_CONV_VLDM && S == 1) {
            EK_CONV_TAP1_S1(xr, wr);
            continue;
        }
        if (taps == EK_TAPS_1X1 && EK_CONV_VLDM && S == 2) {
            EK_CONV_TAP1_S2(xr, wr);
            continue;
        }
        if (taps == EK_TAPS_1X1) {
            EK_TAP4X4(xr, wr);
            continue;
        }
        for (kh = 0; kh < n_kh; kh++, xr += row_step, wr += w_kh_step) {
            if (taps == EK_TAPS_3 && EK_CONV_VLDM && S == 1) {
                EK_CONV_ROW3_S1(xr, wr);
            } else if (taps == EK_TAPS_3 && EK_CONV_VLDM && S == 2) {
                EK_CONV_ROW3_S2(xr, wr);
            } else if (taps == EK_TAPS_3) {
                EK_TAP4X4(xr, wr);
                EK_TAP4X4(xr + 1, wr + 4);
                EK_TAP4X4(xr + 2, wr + 8);
            } else {
                for (kw = 0; kw < k_w; kw++) {
                    EK_TAP4X4(xr + kw * dil_w, wr + kw * 4);
                }
            }
        }
    }
#undef EK_TAP4X4
#undef EK_CONV_ROW3_S1
#undef EK_CONV_ROW3_S2
#undef EK_CONV_TAP1_S1
#undef EK_CONV_TAP1_S2
    {
        float acc[16];
        acc[0] = a00; acc[1] = a01; acc[2] = a02; acc[3] = a03;
        acc[4] = a10; acc[5] = a11; acc[6] = a12; acc[7] = a13;
        acc[8] = a20; acc[9] = a21; acc[10] = a22; acc[11] = a23;
        acc[12] = a30; acc[13] = a31; acc[14] = a32; acc[15] = a33;
        ek_conv_store(o, out_plane, acc, 4, npx, p);
    }
}

/* One output channel x four pixels (channels left over from the blocks of 4, depthwise). */
static EK_ALWAYS_INLINE void ek_conv_tile1x4(const ek_conv_span *sp, const float *w,
                                             const int32_t S, const int32_t taps, float b,
                                             float *o, int32_t npx, const ek_conv2d_params *p)
{
    const float *x = sp->x;
    const int32_t icg = sp->icg, n_kh = sp->n_kh, k_w = sp->k_w, in_plane = sp->in_plane;
    const int32_t row_step = sp->row_step, dil_w = sp->dil_w;
    const int32_t w_ic_step = sp->w_ic_step, w_kh_step = sp->w_kh_step;
    float acc[4];
    float a0 = b, a1 = b, a2 = b, a3 = b;
    int32_t ic, kh, kw;
#define EK_TAP1X4(XP, WV)                                                                        \
    do {                                                                                         \
        const float *xp_ = (XP);                                                                 \
        const float wv_ = (WV);                                                                  \
        a0 = EK_FMA(a0, wv_, xp_[0]); a1 = EK_FMA(a1, wv_, xp_[S]);                              \
        a2 = EK_FMA(a2, wv_, xp_[2 * S]); a3 = EK_FMA(a3, wv_, xp_[3 * S]);                      \
    } while (0)
    for (ic = 0; ic < icg; ic++, x += in_plane, w += w_ic_step) {
        const float *xr = x, *wr = w;
        if (taps == EK_TAPS_1X1) {
            EK_TAP1X4(xr, wr[0]);
            continue;
        }
        for (kh = 0; kh < n_kh; kh++, xr += row_step, wr += w_kh_step) {
            if (taps == EK_TAPS_3) {
                EK_TAP1X4(xr, wr[0]);
                EK_TAP1X4(xr + 1, wr[1]);
                EK_TAP1X4(xr + 2, wr[2]);
            } else {
                for (kw = 0; kw < k_w; kw++) {
                    EK_TAP1X4(xr + kw * dil_w, wr[kw]);
                }
            }
        }
    }
#undef EK_TAP1X4
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    ek_conv_store(o, 0, acc, 1, npx, p);
}

/* The 1-channel tile in one generic copy (runtime stride, any kernel): it only serves the
 * ocg % 4 leftover channels, so specialising it is not worth its code size. */
static void ek_conv_tile1x4_any(const ek_conv_span *sp, const float *w, float b, float *o,
                                int32_t npx, const ek_conv2d_params *p)
{
    ek_conv_tile1x4(sp, w, p->stride_w, EK_TAPS_ANY, b, o, npx, p);
}

/* The bias of a block of 4 channels when the Conv has none. */
static const float ek_conv_zero_bias[EK_CONV_OC_BLOCK] = {0.0f, 0.0f, 0.0f, 0.0f};

/* Which specialised tile loop fits this conv: stride and kernel width as constants. */
typedef enum {
    EK_TILE_S1_K3, EK_TILE_S2_K3, EK_TILE_S1_1X1, EK_TILE_S2_1X1,
    EK_TILE_S1, EK_TILE_S2, EK_TILE_ANY
} ek_conv_tile_kind;

static ek_conv_tile_kind ek_conv_pick_tile(const ek_conv2d_params *p)
{
#if !EK_SPECIALISE
    (void)p;
    return EK_TILE_ANY; /* one generic tile: about 3 KB less code */
#else
    const int is1x1 = p->k_h == 1 && p->k_w == 1;
    const int is3 = p->k_w == 3 && p->dil_w == 1;
    if (p->stride_w == 1) {
        return is1x1 ? EK_TILE_S1_1X1 : (is3 ? EK_TILE_S1_K3 : EK_TILE_S1);
    }
    if (p->stride_w == 2) {
        return is1x1 ? EK_TILE_S2_1X1 : (is3 ? EK_TILE_S2_K3 : EK_TILE_S2);
    }
    return EK_TILE_ANY;
#endif
}

/* Every output channel of a group for one 4-pixel output column: blocks of 4 channels (sp4,
 * packed weights), then the leftover channels one by one (sp1, ONNX-ordered weights). S and T
 * are compile-time constants in each expansion, so each switch case in ek_conv_column is its
 * own specialised 4x4 loop nest. */
#define EK_CONV_ALL_CHANNELS(S, T)                                                               \
    do {                                                                                         \
        int32_t oc_;                                                                             \
        for (oc_ = 0; oc_ < full; oc_ += EK_CONV_OC_BLOCK) {                                     \
            ek_conv_tile4x4(sp4, w_g + (size_t)oc_ * w_oc_step + kh0 * sp4->w_kh_step, S, T,     \
                            bias ? bias + oc_ : ek_conv_zero_bias, o + (size_t)oc_ * out_plane,  \
                            out_plane, npx, p);                                                  \
        }                                                                                        \
        for (; oc_ < ocg; oc_++) {                                                               \
            ek_conv_tile1x4_any(sp1, w_g + (size_t)oc_ * w_oc_step + kh0 * sp1->w_kh_step,       \
                                bias ? bias[oc_] : 0.0f, o + (size_t)oc_ * out_plane, npx, p);   \
        }                                                                                        \
    } while (0)

/* One 4-pixel output column (npx valid pixels) of every channel of a group. w_g: the group's
 * packed weights; kh0: first valid kernel row; bias: the group's bias; o: output of the
 * group's channel 0 at the column. bias may be NULL. */
static void ek_conv_column(const ek_conv2d_params *p, ek_conv_tile_kind kind,
                           const ek_conv_span *sp4, const ek_conv_span *sp1, const float *w_g,
                           int32_t kh0, const float *bias, float *o, int32_t npx)
{
    const int32_t ocg = p->out_c / p->groups, full = ocg - ocg % EK_CONV_OC_BLOCK;
    const int32_t out_plane = p->out_h * p->out_w, stride_w = p->stride_w;
    const int32_t w_oc_step = sp1->w_ic_step * (p->in_c / p->groups); /* icg * k_h * k_w */
#if EK_SPECIALISE
    switch (kind) {
    case EK_TILE_S1_K3: EK_CONV_ALL_CHANNELS(1, EK_TAPS_3); break;
    case EK_TILE_S2_K3: EK_CONV_ALL_CHANNELS(2, EK_TAPS_3); break;
    case EK_TILE_S1_1X1: EK_CONV_ALL_CHANNELS(1, EK_TAPS_1X1); break;
    case EK_TILE_S2_1X1: EK_CONV_ALL_CHANNELS(2, EK_TAPS_1X1); break;
    case EK_TILE_S1: EK_CONV_ALL_CHANNELS(1, EK_TAPS_ANY); break;
    case EK_TILE_S2: EK_CONV_ALL_CHANNELS(2, EK_TAPS_ANY); break;
    default: EK_CONV_ALL_CHANNELS(stride_w, EK_TAPS_ANY); break;
    }
#else
    (void)kind;
    EK_CONV_ALL_CHANNELS(stride_w, EK_TAPS_ANY);
#endif
}
#undef EK_CONV_ALL_CHANNELS

/* Copy the input columns [iw0, iw0 + win_w) of the valid kernel rows of every input channel
 * into `win` ([icg][n_kh][win_w]), zeros where a column lies in the left/right padding. */
static void ek_conv_fill_window(const float *x_rows, int32_t icg, int32_t n_kh, int32_t in_plane,
                                int32_t row_step, int32_t in_w, int32_t iw0, int32_t win_w,
                                float *win)
{
    int32_t ic, r, c;
    for (ic = 0; ic < icg; ic++) {
        for (r = 0; r < n_kh; r++) {
            const float *src = x_rows + (size_t)ic * in_plane + (size_t)r * row_step;
            for (c = 0; c < win_w; c++) {
                const int32_t col = iw0 + c;
                *win++ = (col >= 0 && col < in_w) ? src[col] : 0.0f;
            }
        }
    }
}

/* floor(a / b) for b > 0 and any sign of a. */
static int32_t ek_floor_div(int32_t a, int32_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* One output row of a 3x3 depthwise kernel (9 weights in registers) over zero-padded input
 * rows r0..r2, two pixels per step so neighbouring pixels share input loads (stride S). */
static EK_ALWAYS_INLINE void ek_conv_dw_row3(const float *r0, const float *r1, const float *r2,
                                             const float *wc, float bv, float *o, int32_t out_w,
                                             const int32_t S, int lower_only, float lo, float hi)
{
    const float w0 = wc[0], w1 = wc[1], w2 = wc[2], w3 = wc[3], w4 = wc[4];
    const float w5 = wc[5], w6 = wc[6], w7 = wc[7], w8 = wc[8];
    int32_t ow = 0;
    for (; ow + 2 <= out_w; ow += 2, r0 += 2 * S, r1 += 2 * S, r2 += 2 * S, o += 2) {
        float a = bv, c = bv;
        a = EK_FMA(a, w0, r0[0]); c = EK_FMA(c, w0, r0[S]);
        a = EK_FMA(a, w1, r0[1]); c = EK_FMA(c, w1, r0[S + 1]);
        a = EK_FMA(a, w2, r0[2]); c = EK_FMA(c, w2, r0[S + 2]);
        a = EK_FMA(a, w3, r1[0]); c = EK_FMA(c, w3, r1[S]);
        a = EK_FMA(a, w4, r1[1]); c = EK_FMA(c, w4, r1[S + 1]);
        a = EK_FMA(a, w5, r1[2]); c = EK_FMA(c, w5, r1[S + 2]);
        a = EK_FMA(a, w6, r2[0]); c = EK_FMA(c, w6, r2[S]);
        a = EK_FMA(a, w7, r2[1]); c = EK_FMA(c, w7, r2[S + 1]);
        a = EK_FMA(a, w8, r2[2]); c = EK_FMA(c, w8, r2[S + 2]);
        o[0] = ek_act_clampf(a, lower_only, lo, hi);
        o[1] = ek_act_clampf(c, lower_only, lo, hi);
    }
    if (ow < out_w) {
        float a = bv;
        a = EK_FMA(a, w0, r0[0]); a = EK_FMA(a, w1, r0[1]); a = EK_FMA(a, w2, r0[2]);
        a = EK_FMA(a, w3, r1[0]); a = EK_FMA(a, w4, r1[1]); a = EK_FMA(a, w5, r1[2]);
        a = EK_FMA(a, w6, r2[0]); a = EK_FMA(a, w7, r2[1]); a = EK_FMA(a, w8, r2[2]);
        o[0] = ek_act_clampf(a, lower_only, lo, hi);
    }
}

/* Depthwise conv (one input channel per group, channel multiplier below 4: the blocks of 4
 * output channels cannot form). Each input channel is copied into a zero-padded plane (its
 * borders are zeroed once per call), then every output pixel reads it with no bounds checks;
 * a 3-wide kernel keeps its 9 weights in FP registers. Weights: ONNX order. */
static void ek_conv_depthwise(const ek_conv2d_params *p, const float *in, const float *w,
                              const float *bias, float *out, float *plane)
{
    const int32_t m = p->out_c / p->groups;
    const int32_t taps = p->k_h * p->k_w;
    const int32_t pw = p->in_w + p->pad_left + p->pad_right;
    const int32_t ph = p->in_h + p->pad_top + p->pad_bottom;
    const int32_t in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
    const int32_t sh = p->stride_h, sw = p->stride_w, row_step = p->dil_h * pw;
    const float lo = p->act_min, hi = p->act_max;
    const int lower_only = hi == INFINITY;
    const int k3 = p->k_h == 3 && p->k_w == 3 && p->dil_w == 1;
    int32_t b, c, j, r, q, oh, ow, kh, kw;
    for (r = 0; r < ph; r++) {
        for (q = 0; q < pw; q++) {
            plane[r * pw + q] = 0.0f;
        }
    }
    for (b = 0; b < p->n; b++) {
        for (c = 0; c < p->in_c; c++) {
            const float *src = in + ((size_t)b * p->in_c + c) * in_plane;
            for (r = 0; r < p->in_h; r++) {
                float *dst = plane + (size_t)(r + p->pad_top) * pw + p->pad_left;
                for (q = 0; q < p->in_w; q++) {
                    dst[q] = src[r * p->in_w + q];
                }
            }
            for (j = 0; j < m; j++) {
                const int32_t oc = c * m + j;
                const float *wc = w + (size_t)oc * taps;
                const float bv = bias ? bias[oc] : 0.0f;
                float *o = out + ((size_t)b * p->out_c + oc) * out_plane;
                for (oh = 0; oh < p->out_h; oh++) {
                    const float *row = plane + (size_t)oh * sh * pw;
                    if (k3) {
                        const float *r0 = row, *r1 = row + row_step, *r2 = row + 2 * row_step;
                        if (sw == 1) {
                            ek_conv_dw_row3(r0, r1, r2, wc, bv, o, p->out_w, 1, lower_only, lo, hi);
                        } else if (sw == 2) {
                            ek_conv_dw_row3(r0, r1, r2, wc, bv, o, p->out_w, 2, lower_only, lo, hi);
                        } else {
                            ek_conv_dw_row3(r0, r1, r2, wc, bv, o, p->out_w, sw, lower_only, lo, hi);
                        }
                        o += p->out_w;
                    } else {
                        for (ow = 0; ow < p->out_w; ow++) {
                            const float *x = row + (size_t)ow * sw;
                            const float *wk = wc;
                            float acc = bv;
                            for (kh = 0; kh < p->k_h; kh++, x += row_step) {
                                for (kw = 0; kw < p->k_w; kw++) {
                                    acc = EK_FMA(acc, *wk++, x[kw * p->dil_w]);
                                }
                            }
                            *o++ = ek_act_clampf(acc, lower_only, lo, hi);
                        }
                    }
                }
            }
        }
    }
}

/* Every other conv: blocks of 4 output channels x 4-pixel tiles (see the top of the file). */
static void ek_conv_blocked(const ek_conv2d_params *p, const float *in, const float *w_packed,
                            const float *bias, float *out, float *scratch)
{
    const int32_t groups = p->groups;
    const int32_t icg = p->in_c / groups, ocg = p->out_c / groups;
    const int32_t taps = p->k_h * p->k_w;
    const int32_t in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
    const int32_t win_w = EK_CONV_WINDOW_W(p);
    const ek_conv_tile_kind kind = ek_conv_pick_tile(p);
    /* Output columns whose whole window lies inside the input: [ow_lo, ow_hi). */
    const int32_t ow_lo = (p->pad_left + p->stride_w - 1) / p->stride_w;
    const int32_t ow_hi =
        ek_floor_div(p->in_w - 1 - (p->k_w - 1) * p->dil_w + p->pad_left, p->stride_w) + 1;
    ek_conv_span sp4, sp1;
    int32_t b, g, oh, ow;
    sp4.k_w = p->k_w;
    sp4.dil_w = p->dil_w;
    sp4.w_ic_step = taps * EK_CONV_OC_BLOCK;
    sp4.w_kh_step = p->k_w * EK_CONV_OC_BLOCK;
    for (b = 0; b < p->n; b++) {
        for (g = 0; g < groups; g++) {
            const float *in_g = in + ((size_t)b * p->in_c + (size_t)g * icg) * in_plane;
            const float *w_g = w_packed + (size_t)g * ocg * icg * taps;
            const float *bias_g = bias ? bias + (size_t)g * ocg : NULL;
            float *out_g = out + ((size_t)b * p->out_c + (size_t)g * ocg) * out_plane;
            for (oh = 0; oh < p->out_h; oh++) {
                const int32_t ih = oh * p->stride_h - p->pad_top;
                int32_t kh0, kh1;
                const float *x_rows;
                ek_conv_window(ih, p->k_h, p->dil_h, p->in_h, &kh0, &kh1);
                sp4.n_kh = kh1 - kh0;
                /* A row entirely in the padding reduces over nothing (1x1 tiles ignore n_kh). */
                sp4.icg = sp4.n_kh > 0 ? icg : 0;
                x_rows = sp4.n_kh > 0 ? in_g + (size_t)(ih + kh0 * p->dil_h) * p->in_w : in_g;
                for (ow = 0; ow < p->out_w; ow += 4) {
                    const int32_t npx = p->out_w - ow < 4 ? p->out_w - ow : 4;
                    const int32_t iw0 = ow * p->stride_w - p->pad_left;
                    if (ow >= ow_lo && ow + 4 <= ow_hi) {
                        sp4.x = x_rows + iw0;
                        sp4.in_plane = in_plane;
                        sp4.row_step = p->dil_h * p->in_w;
                    } else {
                        /* Edge or partial column: read a zero-padded copy instead. */
                        ek_conv_fill_window(x_rows, sp4.icg, sp4.n_kh, in_plane,
                                            p->dil_h * p->in_w, p->in_w, iw0, win_w, scratch);
                        sp4.x = scratch;
                        sp4.in_plane = sp4.n_kh * win_w;
                        sp4.row_step = win_w;
                    }
                    sp1 = sp4;
                    sp1.w_ic_step = taps;
                    sp1.w_kh_step = p->k_w;
                    ek_conv_column(p, kind, &sp4, &sp1, w_g, kh0, bias_g,
                                   out_g + oh * p->out_w + ow, npx);
                }
            }
        }
    }
}

void ek_conv2d_f32(const ek_conv2d_params *p, const float *in, const float *w_packed,
                   const float *bias, float *out, float *scratch)
{
    if (p->in_c == p->groups && p->out_c / p->groups < EK_CONV_OC_BLOCK) {
        ek_conv_depthwise(p, in, w_packed, bias, out, scratch);
    } else if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
               p->pad_top == 0 && p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0) {
        /* Pointwise conv: a plane is one contiguous row of pixels, so run it as 1 x (h * w)
         * and only the very last 4-pixel tile can be partial (not one per output row). */
        ek_conv2d_params flat = *p;
        flat.in_w = p->in_h * p->in_w;
        flat.out_w = p->out_h * p->out_w;
        flat.in_h = flat.out_h = 1;
        ek_conv_blocked(&flat, in, w_packed, bias, out, scratch);
    } else {
        ek_conv_blocked(p, in, w_packed, bias, out, scratch);
    }
}

/* The input taps that scatter onto output pixel (oh, ow) of a ConvTranspose: for every kernel
 * tap (kh, kw) with oh = ih * stride_h + kh * dil_h - pad_top (same for w) and (ih, iw) inside
 * the input, runs BODY with x = input of channel 0 at (ih, iw) and t = kh * k_w + kw. */
#define EK_CONVT_FOR_TAPS(BODY)                                                                  \
    do {                                                                                         \
        int32_t kh_, kw_;                                                                        \
        for (kh_ = 0; kh_ < p->k_h; kh_++) {                                                     \
            const int32_t th_ = oh + p->pad_top - kh_ * p->dil_h;                                \
            if (th_ < 0 || th_ % p->stride_h || th_ / p->stride_h >= p->in_h) {                  \
                continue;                                                                        \
            }                                                                                    \
            for (kw_ = 0; kw_ < p->k_w; kw_++) {                                                 \
                const int32_t tw_ = ow + p->pad_left - kw_ * p->dil_w;                           \
                const float *x;                                                                  \
                int32_t t;                                                                       \
                if (tw_ < 0 || tw_ % p->stride_w || tw_ / p->stride_w >= p->in_w) {              \
                    continue;                                                                    \
                }                                                                                \
                x = in_g + (th_ / p->stride_h) * p->in_w + tw_ / p->stride_w;                    \
                t = kh_ * p->k_w + kw_;                                                          \
                BODY;                                                                            \
            }                                                                                    \
        }                                                                                        \
    } while (0)

/* Four output channels of one ConvTranspose output pixel; w: the block's packed weights
 * ([k_h][k_w][icg][4]), so each tap streams 4 weights per input channel. */
static void ek_convt_pixel4(const ek_conv_transpose2d_params *p, const float *in_g,
                            const float *w, const float *b4, float *o, int32_t oh, int32_t ow)
{
    const int32_t icg = p->in_c / p->groups, in_plane = p->in_h * p->in_w;
    const int32_t out_plane = p->out_h * p->out_w;
    const int lower_only = p->act_max == INFINITY;
    float a0 = b4[0], a1 = b4[1], a2 = b4[2], a3 = b4[3];
    EK_CONVT_FOR_TAPS({
        const float *wt = w + (size_t)t * icg * 4;
        int32_t ic;
        for (ic = 0; ic < icg; ic++, x += in_plane, wt += 4) {
            const float xv = *x;
            a0 = EK_FMA(a0, wt[0], xv);
            a1 = EK_FMA(a1, wt[1], xv);
            a2 = EK_FMA(a2, wt[2], xv);
            a3 = EK_FMA(a3, wt[3], xv);
        }
    });
    o[0] = ek_act_clampf(a0, lower_only, p->act_min, p->act_max);
    o[out_plane] = ek_act_clampf(a1, lower_only, p->act_min, p->act_max);
    o[2 * out_plane] = ek_act_clampf(a2, lower_only, p->act_min, p->act_max);
    o[3 * out_plane] = ek_act_clampf(a3, lower_only, p->act_min, p->act_max);
}

/* One output channel of one ConvTranspose output pixel; w: [k_h][k_w][icg]. */
static void ek_convt_pixel1(const ek_conv_transpose2d_params *p, const float *in_g,
                            const float *w, float b, float *o, int32_t oh, int32_t ow)
{
    const int32_t icg = p->in_c / p->groups, in_plane = p->in_h * p->in_w;
    float acc = b;
    EK_CONVT_FOR_TAPS({
        const float *wt = w + (size_t)t * icg;
        int32_t ic;
        for (ic = 0; ic < icg; ic++, x += in_plane) {
            acc = EK_FMA(acc, wt[ic], *x);
        }
    });
    *o = ek_act_clampf(acc, p->act_max == INFINITY, p->act_min, p->act_max);
}
#undef EK_CONVT_FOR_TAPS

void ek_conv_transpose2d_f32(const ek_conv_transpose2d_params *p, const float *in,
                             const float *w_packed, const float *bias, float *out)
{
    const int32_t groups = p->groups;
    const int32_t icg = p->in_c / groups, ocg = p->out_c / groups;
    const int32_t taps = p->k_h * p->k_w, full = ocg - ocg % EK_CONV_OC_BLOCK;
    const int32_t in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
    int32_t b, g, oc, oh, ow;
    for (b = 0; b < p->n; b++) {
        for (g = 0; g < groups; g++) {
            const float *in_g = in + ((size_t)b * p->in_c + (size_t)g * icg) * in_plane;
            const float *w_g = w_packed + (size_t)g * ocg * icg * taps;
            const float *bias_g = bias ? bias + (size_t)g * ocg : NULL;
            float *out_g = out + ((size_t)b * p->out_c + (size_t)g * ocg) * out_plane;
            for (oc = 0; oc < ocg; oc += oc < full ? EK_CONV_OC_BLOCK : 1) {
                const float *w_oc = w_g + (size_t)oc * icg * taps;
                float *o = out_g + (size_t)oc * out_plane;
                for (oh = 0; oh < p->out_h; oh++) {
                    for (ow = 0; ow < p->out_w; ow++, o++) {
                        if (oc < full) {
                            ek_convt_pixel4(p, in_g, w_oc, bias_g ? bias_g + oc : ek_conv_zero_bias,
                                            o, oh, ow);
                        } else {
                            ek_convt_pixel1(p, in_g, w_oc, bias_g ? bias_g[oc] : 0.0f, o, oh, ow);
                        }
                    }
                }
            }
        }
    }
}
