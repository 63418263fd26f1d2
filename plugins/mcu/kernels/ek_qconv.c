/* ek_qconv.c: int8 Conv and fully connected layers (see ek_qconv.h for the technique). */
#include <string.h>

#include "ek_qconv.h"

/* The SMLAD inner loops are GNU inline assembly for ARMv7E-M/ARMv8-M with the DSP extension;
 * ARMv6-M (Cortex-M0/M0+) gets a Thumb-1 loop that keeps the accumulators in high registers. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
#define EK_QCONV_DSP 1
#elif defined(__ARM_ARCH_6M__) && defined(__GNUC__) && !defined(EK_NO_INLINE_ASM)
#define EK_QCONV_V6M 1
#endif

/* Requantization of one layer's int32 accumulators to int8, and the optional residual Add. */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t arithmetic;                 /* EK_ARITH_ONNX or EK_ARITH_TFLITE */
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *residual;             /* NULL: no fused Add */
    const ek_qadd_epilogue *add;
    const int8_t *output_base;          /* the residual is indexed like the output */
} ek_qout;

static inline int8_t ek_qadd_apply(const ek_qadd_epilogue *e, int32_t v, int32_t r)
{
    if (e->arithmetic == EK_ARITH_TFLITE) {
        return ek_qadd_value_tflite(v, e->a_offset, e->a_multiplier, e->a_shift, r, e->b_offset,
                                    e->b_multiplier, e->b_shift, e->out_multiplier, e->out_shift,
                                    e->output_offset, e->act_min, e->act_max);
    }
    return ek_qadd_value(v, e->a_offset, e->a_multiplier, r, e->b_offset, e->b_multiplier, e->shift,
                         e->output_offset, e->act_min, e->act_max);
}

/* Every conv/matmul output is requantized, offset (ek_qout_scaled) and clamped to the activation
 * range (ek_qout_clamp); the loops that produce many values of one channel read its multiplier and
 * shift once and pass them in. */
static inline int32_t ek_qout_scaled(const ek_qout *q, int32_t acc, int32_t multiplier, int32_t shift)
{
    return ek_requantize_as(q->arithmetic, acc, multiplier, shift) + q->output_offset;
}

static inline int8_t ek_qout_clamp(const ek_qout *q, int32_t v)
{
    return (int8_t)ek_clamp_i32(v, q->act_min, q->act_max);
}

static inline int8_t ek_qout_value(const ek_qout *q, int32_t c, int32_t acc)
{
    return ek_qout_clamp(q, ek_qout_scaled(q, acc, q->multiplier[c], q->shift[c]));
}


#ifdef EK_QCONV_V6M
/* Entry and exit of the naked ARMv6-M loops below, which take acc[4] in r3: save r4-r11 (and
 * acc), load acc[0..3] into r8-r11; at the end store r8-r11 back into acc and restore. */
#define EK_V6M_ENTER                                                                             \
    "push  {r4, r5, r6, r7, lr}\n\t"                                                            \
    "mov   r4, r8\n\t"                                                                          \
    "mov   r5, r9\n\t"                                                                          \
    "mov   r6, r10\n\t"                                                                         \
    "mov   r7, r11\n\t"                                                                         \
    "push  {r3, r4, r5, r6, r7}\n\t"                                                            \
    "ldr   r4, [r3, #0]\n\t"                                                                    \
    "mov   r8, r4\n\t"                                                                          \
    "ldr   r4, [r3, #4]\n\t"                                                                    \
    "mov   r9, r4\n\t"                                                                          \
    "ldr   r4, [r3, #8]\n\t"                                                                    \
    "mov   r10, r4\n\t"                                                                         \
    "ldr   r4, [r3, #12]\n\t"                                                                   \
    "mov   r11, r4\n\t"
#define EK_V6M_LEAVE                                                                             \
    "pop   {r3, r4, r5, r6, r7}\n\t"                                                            \
    "mov   r0, r8\n\t"                                                                          \
    "str   r0, [r3, #0]\n\t"                                                                    \
    "mov   r0, r9\n\t"                                                                          \
    "str   r0, [r3, #4]\n\t"                                                                    \
    "mov   r0, r10\n\t"                                                                         \
    "str   r0, [r3, #8]\n\t"                                                                    \
    "mov   r0, r11\n\t"                                                                         \
    "str   r0, [r3, #12]\n\t"                                                                   \
    "mov   r8, r4\n\t"                                                                          \
    "mov   r9, r5\n\t"                                                                          \
    "mov   r10, r6\n\t"                                                                         \
    "mov   r11, r7\n\t"                                                                         \
    "pop   {r4, r5, r6, r7, pc}\n\t"
#endif

#ifdef EK_QCONV_V6M
/* The Thumb-1 loop for ARMv6-M, written as a whole function so that every register is ours: the
 * four accumulators live in r8-r11 (ADD reaches them; MULS works on r3-r7). Per k: two int8
 * weights (channels a, b) and two int16 inputs (columns x, y), four MULS. Offsets follow the
 * interleaved column [x0 x1 y0 y1 x2 x3 y2 y3] and the weight groups [a0 a2 a1 a3 b0 b2 b1 b3].
 * r0 = col, r1 = w, r2 = end, r3 = acc (then x), r4 = y, r5 = wa, r6 = wb, r7 = product. */
#define EK_V6M_STEP(XO, YO, AO, BO)                                                              \
    "ldrb  r5, [r1, #" #AO "]\n\t"                                                              \
    "sxtb  r5, r5\n\t"                                                                          \
    "ldrb  r6, [r1, #" #BO "]\n\t"                                                              \
    "sxtb  r6, r6\n\t"                                                                          \
    "ldrh  r3, [r0, #" #XO "]\n\t"                                                              \
    "sxth  r3, r3\n\t"                                                                          \
    "ldrh  r4, [r0, #" #YO "]\n\t"                                                              \
    "sxth  r4, r4\n\t"                                                                          \
    "movs  r7, r3\n\t"                                                                          \
    "muls  r7, r5, r7\n\t"                                                                      \
    "add   r8, r7\n\t"                                                                          \
    "muls  r3, r6, r3\n\t"                                                                      \
    "add   r10, r3\n\t"                                                                         \
    "movs  r7, r4\n\t"                                                                          \
    "muls  r7, r5, r7\n\t"                                                                      \
    "add   r9, r7\n\t"                                                                          \
    "muls  r4, r6, r4\n\t"                                                                      \
    "add   r11, r4\n\t"
/* acc = {a.x, a.y, b.x, b.y} += the dot products over [w, end) (at least one group of four). */
static void __attribute__((naked, noinline)) ek_qdot_2x2_v6m(const int16_t *col EK_UNUSED,
                                                             const int8_t *w EK_UNUSED,
                                                             const int8_t *end EK_UNUSED,
                                                             int32_t acc[4] EK_UNUSED)
{
    __asm__ volatile(
        ".syntax unified\n\t" /* gcc hands Thumb-1 inline assembly over in divided syntax */
        EK_V6M_ENTER
        "1:\n\t"
        EK_V6M_STEP(0, 4, 0, 4)
        EK_V6M_STEP(2, 6, 2, 6)
        EK_V6M_STEP(8, 12, 1, 5)
        EK_V6M_STEP(10, 14, 3, 7)
        "adds  r0, #16\n\t"
        "adds  r1, #8\n\t"
        "cmp   r1, r2\n\t"
        "bne   1b\n\t"
        EK_V6M_LEAVE);
}
#undef EK_V6M_STEP
#endif

/* Two output channels x two columns over k_pad values. w: the pair's weights, per group of four k
 * the four of channel a then the four of channel b, each permuted [w0 w2 w1 w3]; col: the two
 * columns interleaved by pairs (x0 x1 y0 y1 x2 x3 y2 y3 ...). acc = {a.x, a.y, b.x, b.y}. */
static inline void ek_qdot_2x2(const int16_t *col, const int8_t *w, int32_t k_pad, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    const int8_t *const end = w + 2 * k_pad;
#ifdef EK_QCONV_DSP
    /* Hand-scheduled: 3 LDRD + 4 SXTB16 + 8 SMLAD + 2 loop instructions per 16 MACs (the compiler's
     * version spends 3 more on address arithmetic). k_pad >= 4, so the body runs at least once. */
    const int8_t *wp = w;
    const int16_t *cp = col;
    uint32_t wa, wb, x, y, t;
    __asm__ volatile(
        "1:\n\t"
        "ldrd   %[wa], %[wb], [%[wp]], #8\n\t"
        "ldrd   %[x], %[y], [%[cp]], #8\n\t"
        "sxtb16 %[t], %[wa]\n\t"
        "smlad  %[a0], %[t], %[x], %[a0]\n\t"
        "smlad  %[a1], %[t], %[y], %[a1]\n\t"
        "sxtb16 %[t], %[wb]\n\t"
        "smlad  %[b0], %[t], %[x], %[b0]\n\t"
        "smlad  %[b1], %[t], %[y], %[b1]\n\t"
        "ldrd   %[x], %[y], [%[cp]], #8\n\t"
        "sxtb16 %[t], %[wa], ror #8\n\t"
        "smlad  %[a0], %[t], %[x], %[a0]\n\t"
        "smlad  %[a1], %[t], %[y], %[a1]\n\t"
        "sxtb16 %[t], %[wb], ror #8\n\t"
        "smlad  %[b0], %[t], %[x], %[b0]\n\t"
        "smlad  %[b1], %[t], %[y], %[b1]\n\t"
        "cmp    %[wp], %[end]\n\t"
        "bne    1b\n\t"
        : [wp] "+r"(wp), [cp] "+r"(cp), [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1),
          [wa] "=&r"(wa), [wb] "=&r"(wb), [x] "=&r"(x), [y] "=&r"(y), [t] "=&r"(t)
        : [end] "r"(end)
        : "cc", "memory");
#elif defined(EK_QCONV_V6M)
    {
        int32_t v[4] = {a0, a1, b0, b1};
        ek_qdot_2x2_v6m(col, w, end, v);
        a0 = v[0], a1 = v[1], b0 = v[2], b1 = v[3];
    }
#else
    while (w < end) {
        const int32_t x0 = col[0], x1 = col[1], y0 = col[2], y1 = col[3];
        const int32_t x2 = col[4], x3 = col[5], y2 = col[6], y3 = col[7];
        a0 += x0 * w[0] + x1 * w[2] + x2 * w[1] + x3 * w[3];
        a1 += y0 * w[0] + y1 * w[2] + y2 * w[1] + y3 * w[3];
        b0 += x0 * w[4] + x1 * w[6] + x2 * w[5] + x3 * w[7];
        b1 += y0 * w[4] + y1 * w[6] + y2 * w[5] + y3 * w[7];
        w += 8;
        col += 8;
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* Requantized int8 values of one channel's two columns (its multiplier and shift read once:
 * int8 stores may alias anything, so the caller stores only after both are computed). */
static inline void ek_qout_two(const ek_qout *q, int32_t c, int32_t acc_x, int32_t acc_y, int8_t *x,
                               int8_t *y)
{
    const int32_t m = q->multiplier[c], s = q->shift[c];
    const int32_t vx = ek_qout_scaled(q, acc_x, m, s), vy = ek_qout_scaled(q, acc_y, m, s);
    *x = ek_qout_clamp(q, vx);
    *y = ek_qout_clamp(q, vy);
}

/* out[c * oc_stride + j * col_stride] for channels [0, channels) and columns j < ncols (1 or 2). */
static void ek_qmatmul_cols(const int16_t *col, int32_t ncols, const int8_t *weights, int32_t channels,
                            int32_t k_pad, const int32_t *bias, const ek_qout *q, int32_t c_base,
                            int8_t *out, int32_t oc_stride, int32_t col_stride)
{
    int32_t c;
    for (c = 0; c < channels; c += 2) {
        const int32_t pair = c + 1 < channels;
        int32_t acc[4];
        int8_t v[4] = {0, 0, 0, 0};
        acc[0] = acc[1] = bias[c_base + c];
        acc[2] = acc[3] = pair ? bias[c_base + c + 1] : 0;
        ek_qdot_2x2(col, weights + c * k_pad, k_pad, acc);
        ek_qout_two(q, c_base + c, acc[0], acc[1], &v[0], &v[1]);
        if (pair) {
            ek_qout_two(q, c_base + c + 1, acc[2], acc[3], &v[2], &v[3]);
        }
        if (q->residual != NULL) { /* every residual value is read before any output is stored */
            const int8_t *r = q->residual + (out - q->output_base);
            v[0] = ek_qadd_apply(q->add, v[0], r[c * oc_stride]);
            v[1] = ek_qadd_apply(q->add, v[1], r[c * oc_stride + (ncols > 1 ? col_stride : 0)]);
            if (pair) {
                v[2] = ek_qadd_apply(q->add, v[2], r[(c + 1) * oc_stride]);
                v[3] = ek_qadd_apply(q->add, v[3], r[(c + 1) * oc_stride + (ncols > 1 ? col_stride : 0)]);
            }
        }
        out[c * oc_stride] = v[0];
        if (ncols > 1) {
            out[c * oc_stride + col_stride] = v[1];
        }
        if (pair) {
            out[(c + 1) * oc_stride] = v[2];
            if (ncols > 1) {
                out[(c + 1) * oc_stride + col_stride] = v[3];
            }
        }
    }
}

/* Zero pairs from d up to the end of the k_pad values of column j. */
static inline void ek_qcol_zero_tail(int16_t *d, const int16_t *end)
{
    for (; d < end; d += 4) {
        d[0] = 0;
        d[1] = 0;
    }
}

/* Appends value v to column j of the pair-interleaved buffer: values are held until a pair is
 * complete, then the pair is stored with one write and the cursor skips the other column's pair. */
#define EK_QCOL_PUT(v)                                                                       \
    do {                                                                                     \
        if (held) {                                                                          \
            d[0] = (int16_t)first;                                                           \
            d[1] = (int16_t)(v);                                                             \
            d += 4;                                                                          \
            held = 0;                                                                        \
        } else {                                                                             \
            first = (v);                                                                     \
            held = 1;                                                                        \
        }                                                                                    \
    } while (0)

/* The receptive field of output pixel (oy, ox) of one group into column j, offset added, zero
 * padded to k_pad. */
static void ek_qim2col(const ek_qconv_params *p, const int8_t *in_group, int32_t icg, int32_t oy,
                       int32_t ox, int16_t *col, int32_t j)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, k_h = p->k_h, k_w = p->k_w;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w, offset = p->input_offset;
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    const int32_t plane = in_h * in_w;
    const int32_t inside_w = ix0 >= 0 && ix0 + (k_w - 1) * dil_w < in_w;
    int16_t *d = col + 2 * j;
    const int16_t *const end = col + 2 * p->k_pad;
    int32_t first = 0, held = 0, ic, ky, kx;
    for (ic = 0; ic < icg; ic++) {
        const int8_t *src = in_group + ic * plane;
        for (ky = 0; ky < k_h; ky++) {
            const int32_t iy = iy0 + ky * dil_h;
            if (iy < 0 || iy >= in_h) {
                for (kx = 0; kx < k_w; kx++) {
                    EK_QCOL_PUT(0);
                }
            } else if (inside_w) {
                const int8_t *x = src + iy * in_w + ix0;
                for (kx = 0; kx < k_w; kx++, x += dil_w) {
                    EK_QCOL_PUT(*x + offset);
                }
            } else {
                const int8_t *row = src + iy * in_w;
                for (kx = 0; kx < k_w; kx++) {
                    const int32_t ix = ix0 + kx * dil_w;
                    EK_QCOL_PUT((ix < 0 || ix >= in_w) ? 0 : row[ix] + offset);
                }
            }
        }
    }
    if (held) {
        EK_QCOL_PUT(0);
    }
    ek_qcol_zero_tail(d, end);
}

/* Two values as one pair of the interleaved buffer. */
#define EK_QCOL_PAIR(u, v)                                                                   \
    do {                                                                                     \
        d[0] = (int16_t)(u);                                                                 \
        d[1] = (int16_t)(v);                                                                 \
        d += 4;                                                                              \
    } while (0)

/* im2col of a pixel whose 3x3 window (dilation 1) lies inside the input: straight-line code, two
 * channels (18 values, 9 pairs) per step. x: the window's top-left in the group's first channel. */
static void ek_qim2col_3x3(const int8_t *x, int32_t in_w, int32_t plane, int32_t icg, int32_t offset,
                           int16_t *d, const int16_t *end)
{
    int32_t ic;
    for (ic = 0; ic + 2 <= icg; ic += 2, x += 2 * plane) {
        const int8_t *a0 = x, *a1 = x + in_w, *a2 = x + 2 * in_w;
        const int8_t *b0 = a0 + plane, *b1 = a1 + plane, *b2 = a2 + plane;
        EK_QCOL_PAIR(a0[0] + offset, a0[1] + offset);
        EK_QCOL_PAIR(a0[2] + offset, a1[0] + offset);
        EK_QCOL_PAIR(a1[1] + offset, a1[2] + offset);
        EK_QCOL_PAIR(a2[0] + offset, a2[1] + offset);
        EK_QCOL_PAIR(a2[2] + offset, b0[0] + offset);
        EK_QCOL_PAIR(b0[1] + offset, b0[2] + offset);
        EK_QCOL_PAIR(b1[0] + offset, b1[1] + offset);
        EK_QCOL_PAIR(b1[2] + offset, b2[0] + offset);
        EK_QCOL_PAIR(b2[1] + offset, b2[2] + offset);
    }
    if (ic < icg) { /* an odd channel count: nine values, the last paired with padding */
        const int8_t *a0 = x, *a1 = x + in_w, *a2 = x + 2 * in_w;
        EK_QCOL_PAIR(a0[0] + offset, a0[1] + offset);
        EK_QCOL_PAIR(a0[2] + offset, a1[0] + offset);
        EK_QCOL_PAIR(a1[1] + offset, a1[2] + offset);
        EK_QCOL_PAIR(a2[0] + offset, a2[1] + offset);
        EK_QCOL_PAIR(a2[2] + offset, 0);
    }
    ek_qcol_zero_tail(d, end);
}

/* im2col of a 1x1 window: one value per channel, a plane apart. */
static void ek_qim2col_1x1(const int8_t *x, int32_t plane, int32_t icg, int32_t offset, int16_t *d,
                           const int16_t *end)
{
    int32_t ic;
    for (ic = 0; ic + 2 <= icg; ic += 2, x += 2 * plane) {
        EK_QCOL_PAIR(x[0] + offset, x[plane] + offset);
    }
    if (ic < icg) {
        EK_QCOL_PAIR(x[0] + offset, 0);
    }
    ek_qcol_zero_tail(d, end);
}

/* One column j for output pixel px: the fast forms for windows inside the input, else the
 * general walk. */
static void ek_qcolumn(const ek_qconv_params *p, const int8_t *in_group, int32_t icg, int32_t px,
                       int16_t *col, int32_t j)
{
    const int32_t oy = px / p->out_w, ox = px - oy * p->out_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    const int32_t plane = p->in_h * p->in_w;
    const int16_t *end = col + 2 * p->k_pad;
    if (iy0 >= 0 && ix0 >= 0 && p->dil_h == 1 && p->dil_w == 1) {
        const int8_t *x = in_group + iy0 * p->in_w + ix0;
        if (p->k_h == 3 && p->k_w == 3 && iy0 + 2 < p->in_h && ix0 + 2 < p->in_w) {
            ek_qim2col_3x3(x, p->in_w, plane, icg, p->input_offset, col + 2 * j, end);
            return;
        }
        if (p->k_h == 1 && p->k_w == 1 && iy0 < p->in_h && ix0 < p->in_w) {
            ek_qim2col_1x1(x, plane, icg, p->input_offset, col + 2 * j, end);
            return;
        }
    }
    ek_qim2col(p, in_group, icg, oy, ox, col, j);
}

/* One depthwise output pixel, any geometry: only the taps inside the input are summed (those outside
 * hold the zero point, i.e. real 0); their ranges are found once, so the loops do not branch. */
static int32_t ek_qdw_pixel(const ek_qconv_params *p, const int8_t *src, const int8_t *w, int32_t acc,
                            int32_t iy0, int32_t ix0)
{
    int32_t ky0 = 0, ky1 = p->k_h, kx0 = 0, kx1 = p->k_w, ky, kx;
    while (ky0 < ky1 && iy0 + ky0 * p->dil_h < 0) {
        ky0++;
    }
    while (ky1 > ky0 && iy0 + (ky1 - 1) * p->dil_h >= p->in_h) {
        ky1--;
    }
    while (kx0 < kx1 && ix0 + kx0 * p->dil_w < 0) {
        kx0++;
    }
    while (kx1 > kx0 && ix0 + (kx1 - 1) * p->dil_w >= p->in_w) {
        kx1--;
    }
    for (ky = ky0; ky < ky1; ky++) {
        const int8_t *row = src + (iy0 + ky * p->dil_h) * p->in_w + ix0;
        const int8_t *wr = w + ky * p->k_w;
        for (kx = kx0; kx < kx1; kx++) {
            acc += (row[kx * p->dil_w] + p->input_offset) * wr[kx];
        }
    }
    return acc;
}

/* Input row iy of one channel as the 3x3 windows read it: ek_qdw3x3_width(p) values from column
 * -pad_left, as int16 with the input offset added (so the padding is 0, which is real 0). */
static void ek_qdw3x3_fill_row(const ek_qconv_params *p, const int8_t *src, int32_t iy, int16_t *row)
{
    const int32_t width = ek_qdw3x3_width(p);
    int32_t j;
    if (iy < 0 || iy >= p->in_h) {
        for (j = 0; j < width; j++) {
            row[j] = 0;
        }
        return;
    }
    src += iy * p->in_w;
    for (j = 0; j < width; j++) {
        const int32_t ix = j - p->pad_left;
        row[j] = (int16_t)(ix >= 0 && ix < p->in_w ? src[ix] + p->input_offset : 0);
    }
}

/* Three taps of one row: acc + x[0] * w0 + x[1] * w1 + x[2] * w2, with w01 = {w0, w1} as two int16
 * halves (one SMLAD on a DSP core; x[0..1] is read as one word, unaligned loads being allowed). */
static inline int32_t ek_qdw3_taps(const int16_t *x, uint32_t w01, int32_t w0, int32_t w1, int32_t w2, int32_t acc)
{
#ifdef EK_QCONV_DSP
    uint32_t pair;
    (void)w0, (void)w1;
    memcpy(&pair, x, sizeof pair);
    __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(pair), "r"(w01));
    return acc + x[2] * w2;
#else
    (void)w01;
    return acc + x[0] * w0 + x[1] * w1 + x[2] * w2;
#endif
}

/* One channel of a 3x3 undilated depthwise conv: the input rows padded and offset in the scratch
 * (a ring of three: each output row loads only the rows it has not seen yet), so every pixel,
 * border ones included, takes the same branch-free nine taps, with the weights in registers and
 * the channel's requantization read once. Not inlined: its live values need all the registers. */
static EK_NOINLINE void ek_qdw3x3_channel(const ek_qconv_params *p, const ek_qout *q, int32_t c, const int8_t *src,
                                          const int8_t *weights, int32_t bias, int16_t *rows, int8_t *dst)
{
    const int32_t width = ek_qdw3x3_width(p), stride = p->stride_w, out_w = p->out_w;
    const ek_qout out = *q; /* a local copy: the int8 stores below cannot alias it */
    const int32_t m = q->multiplier[c], s = q->shift[c];
    const int32_t w0 = weights[0], w1 = weights[1], w2 = weights[2], w3 = weights[3], w4 = weights[4],
                  w5 = weights[5], w6 = weights[6], w7 = weights[7], w8 = weights[8];
    const uint32_t w01 = (uint16_t)w0 | ((uint32_t)(uint16_t)w1 << 16);
    const uint32_t w34 = (uint16_t)w3 | ((uint32_t)(uint16_t)w4 << 16);
    const uint32_t w67 = (uint16_t)w6 | ((uint32_t)(uint16_t)w7 << 16);
    int32_t oy, ox, next = -p->pad_top; /* the first input row not in the ring yet */
    for (oy = 0; oy < p->out_h; oy++, dst += out_w) {
        const int32_t iy0 = oy * p->stride_h - p->pad_top;
        if (next < iy0) {
            next = iy0;
        }
        for (; next < iy0 + 3; next++) {
            ek_qdw3x3_fill_row(p, src, next, rows + ((next + p->pad_top) % 3) * width);
        }
        {
            const int16_t *a = rows + ((iy0 + p->pad_top) % 3) * width;
            const int16_t *b = rows + ((iy0 + 1 + p->pad_top) % 3) * width;
            const int16_t *d = rows + ((iy0 + 2 + p->pad_top) % 3) * width;
            for (ox = 0; ox < out_w; ox++, a += stride, b += stride, d += stride) {
                int32_t acc = ek_qdw3_taps(a, w01, w0, w1, w2, bias);
                acc = ek_qdw3_taps(b, w34, w3, w4, w5, acc);
                acc = ek_qdw3_taps(d, w67, w6, w7, w8, acc);
                dst[ox] = ek_qout_clamp(&out, ek_qout_scaled(&out, acc, m, s));
            }
        }
    }
}

static void ek_qconv_depthwise(const ek_qconv_params *p, const int8_t *input, const int8_t *weights,
                               const int32_t *bias, const ek_qout *q, int8_t *output, void *scratch)
{
    const int32_t mult = p->out_c / p->in_c;
    const int32_t plane = p->in_h * p->in_w, ksize = p->k_h * p->k_w;
    int32_t b, c, oy, ox;
    for (b = 0; b < p->n; b++) {
        for (c = 0; c < p->out_c; c++) {
            const int8_t *src = input + (b * p->in_c + c / mult) * plane;
            const int8_t *w = weights + c * ksize;
            int8_t *dst = output + (b * p->out_c + c) * p->out_h * p->out_w;
            if (ek_qdw3x3_fast(p)) {
                ek_qdw3x3_channel(p, q, c, src, w, bias[c], (int16_t *)scratch, dst);
                continue;
            }
            for (oy = 0; oy < p->out_h; oy++, dst += p->out_w) {
                const int32_t iy0 = oy * p->stride_h - p->pad_top;
                for (ox = 0; ox < p->out_w; ox++) {
                    dst[ox] = ek_qout_value(q, c, ek_qdw_pixel(p, src, w, bias[c], iy0, ox * p->stride_w - p->pad_left));
                }
            }
        }
    }
}

static void ek_qconv_run(const ek_qconv_params *p, const ek_qout *qp, const int8_t *input,
                         const int8_t *weights, const int32_t *bias, int8_t *output, void *scratch);

void ek_qconv_s8(const ek_qconv_params *p, const int8_t *input, const int8_t *weights,
                 const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *output,
                 void *scratch)
{
    const ek_qout q = {multiplier, shift, p->arithmetic, p->output_offset, p->act_min,
                       p->act_max, NULL, NULL, output};
    ek_qconv_run(p, &q, input, weights, bias, output, scratch);
}

void ek_qconv_add_s8(const ek_qconv_add_params *p, const int8_t *input, const int8_t *weights,
                     const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                     const int8_t *residual, int8_t *output, void *scratch)
{
    const ek_qconv_params *c = &p->conv;
    const ek_qout q = {multiplier, shift, c->arithmetic, c->output_offset, c->act_min, c->act_max,
                       residual, &p->add, output};
    ek_qconv_run(c, &q, input, weights, bias, output, scratch);
}

static void ek_qconv_run(const ek_qconv_params *p, const ek_qout *qp, const int8_t *input,
                         const int8_t *weights, const int32_t *bias, int8_t *output, void *scratch)
{
    const ek_qout q = *qp;
    const int32_t icg = p->in_c / p->groups, ocg = p->out_c / p->groups;
    const int32_t pixels = p->out_h * p->out_w, plane = p->in_h * p->in_w;
    int16_t *col = (int16_t *)scratch;
    int32_t b, g, px;
    if (p->depthwise) {
        ek_qconv_depthwise(p, input, weights, bias, &q, output, scratch);
        return;
    }
    for (b = 0; b < p->n; b++) {
        for (g = 0; g < p->groups; g++) {
            const int8_t *in_group = input + (b * p->in_c + g * icg) * plane;
            int8_t *out_group = output + (b * p->out_c + g * ocg) * pixels;
            const int8_t *w_group = weights + g * ((ocg + 1) & ~1) * p->k_pad;
            for (px = 0; px < pixels; px += 2) {
                const int32_t ncols = px + 1 < pixels ? 2 : 1;
                const int32_t px1 = ncols > 1 ? px + 1 : px; /* a lone last pixel is computed twice */
                ek_qcolumn(p, in_group, icg, px, col, 0);
                ek_qcolumn(p, in_group, icg, px1, col, 1);
                ek_qmatmul_cols(col, ncols, w_group, ocg, p->k_pad, bias, &q, g * ocg, out_group + px,
                                pixels, 1);
            }
        }
    }
}

/* Fully connected: eight output features per pass over one input row. The weights are stored
 * offset-binary (u = w + 128, uint8), so no path sign-extends a weight: ARMv6-M loads each with one
 * LDRB and multiplies it as it is, the DSP path widens pairs with UXTB16. Every dot product below
 * therefore computes sum_k x[k] * u[k]; ek_qfc_s8 takes 128 * sum_k x[k] off once per row. The
 * accumulators are uint32_t: the sums wrap as the asm does, and only the final value (the true
 * int32 accumulator) must be in range. */

#ifdef EK_QCONV_V6M
/* The Thumb-1 loop: acc[0..3] in r4-r7 and acc[4..7] in r8-r11 (MULS needs low registers for
 * its operands, ADD reaches the high ones), the input row's end in lr. Per k one LDRB + SXTB of
 * x, then per feature LDRB, MULS, ADD: 3.25 instructions per MAC. r0 = x, r1 = w, r2 = x value,
 * r3 = weight and product. Runs k4 > 0 inputs (a multiple of four). */
#define EK_V6M_FC_MAC(J, F, ACC, ADD)                                                            \
    "ldrb  r3, [r1, #(4 * " #F " + " #J ")]\n\t"                                                \
    "muls  r3, r2, r3\n\t"                                                                      \
    ADD "   " #ACC ", r3\n\t"
#define EK_V6M_FC_STEP(J)                                                                        \
    "ldrb  r2, [r0, #" #J "]\n\t"                                                               \
    "sxtb  r2, r2\n\t"                                                                          \
    EK_V6M_FC_MAC(J, 0, r4, "adds") EK_V6M_FC_MAC(J, 1, r5, "adds")                             \
    EK_V6M_FC_MAC(J, 2, r6, "adds") EK_V6M_FC_MAC(J, 3, r7, "adds")                             \
    EK_V6M_FC_MAC(J, 4, r8, "add ") EK_V6M_FC_MAC(J, 5, r9, "add ")                             \
    EK_V6M_FC_MAC(J, 6, r10, "add ") EK_V6M_FC_MAC(J, 7, r11, "add ")
static void __attribute__((naked, noinline)) ek_qfc_dot8_v6m(const int8_t *x EK_UNUSED,
                                                             const uint8_t *w EK_UNUSED,
                                                             const int8_t *xend EK_UNUSED,
                                                             uint32_t acc[8] EK_UNUSED)
{
    __asm__ volatile(
        ".syntax unified\n\t"
        "push  {r4, r5, r6, r7, lr}\n\t"
        "mov   r4, r8\n\t"
        "mov   r5, r9\n\t"
        "mov   r6, r10\n\t"
        "mov   r7, r11\n\t"
        "push  {r3, r4, r5, r6, r7}\n\t"
        "mov   lr, r2\n\t"
        "ldr   r4, [r3, #16]\n\t"
        "mov   r8, r4\n\t"
        "ldr   r4, [r3, #20]\n\t"
        "mov   r9, r4\n\t"
        "ldr   r4, [r3, #24]\n\t"
        "mov   r10, r4\n\t"
        "ldr   r4, [r3, #28]\n\t"
        "mov   r11, r4\n\t"
        "ldr   r4, [r3, #0]\n\t"
        "ldr   r5, [r3, #4]\n\t"
        "ldr   r6, [r3, #8]\n\t"
        "ldr   r7, [r3, #12]\n\t"
        "1:\n\t"
        EK_V6M_FC_STEP(0)
        EK_V6M_FC_STEP(1)
        EK_V6M_FC_STEP(2)
        EK_V6M_FC_STEP(3)
        "adds  r0, #4\n\t"
        "adds  r1, #32\n\t"
        "cmp   r0, lr\n\t"
        "bne   1b\n\t"
        "ldr   r3, [sp, #0]\n\t"
        "str   r4, [r3, #0]\n\t"
        "str   r5, [r3, #4]\n\t"
        "str   r6, [r3, #8]\n\t"
        "str   r7, [r3, #12]\n\t"
        "mov   r4, r8\n\t"
        "str   r4, [r3, #16]\n\t"
        "mov   r4, r9\n\t"
        "str   r4, [r3, #20]\n\t"
        "mov   r4, r10\n\t"
        "str   r4, [r3, #24]\n\t"
        "mov   r4, r11\n\t"
        "str   r4, [r3, #28]\n\t"
        "pop   {r3, r4, r5, r6, r7}\n\t"
        "mov   r8, r4\n\t"
        "mov   r9, r5\n\t"
        "mov   r10, r6\n\t"
        "mov   r11, r7\n\t"
        "pop   {r4, r5, r6, r7, pc}\n\t");
}
#undef EK_V6M_FC_STEP
#undef EK_V6M_FC_MAC
#endif

#ifdef EK_QCONV_DSP
/* Four of the eight features (w points at their first weight) over k4 > 0 inputs. Per four inputs
 * (16 MACs): one LDR and two SXTB16 of x, two LDRD and eight UXTB16 of weights, eight SMLAD, two
 * loop instructions. The weights of a feature are in natural order, so UXTB16 pairs (u0, u2) /
 * (u1, u3) meet the same pairs of x; the second LDRD skips the other four features' 16 bytes. */
static inline void ek_qfc_dot4_dsp(const int8_t *x, const uint8_t *w, int32_t k4, uint32_t acc[4])
{
    uint32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t *xp = x;
    const int8_t *const xend = x + k4;
    uint32_t xw, x02, x13, w0, w1, t;
    __asm__ volatile(
        "1:\n\t"
        "ldr    %[xw], [%[xp]], #4\n\t"
        "sxtb16 %[x02], %[xw]\n\t"
        "sxtb16 %[x13], %[xw], ror #8\n\t"
        "ldrd   %[w0], %[w1], [%[wp]], #8\n\t"
        "uxtb16 %[t], %[w0]\n\t"
        "smlad  %[a0], %[t], %[x02], %[a0]\n\t"
        "uxtb16 %[t], %[w0], ror #8\n\t"
        "smlad  %[a0], %[t], %[x13], %[a0]\n\t"
        "uxtb16 %[t], %[w1]\n\t"
        "smlad  %[a1], %[t], %[x02], %[a1]\n\t"
        "uxtb16 %[t], %[w1], ror #8\n\t"
        "smlad  %[a1], %[t], %[x13], %[a1]\n\t"
        "ldrd   %[w0], %[w1], [%[wp]], #24\n\t"
        "uxtb16 %[t], %[w0]\n\t"
        "smlad  %[a2], %[t], %[x02], %[a2]\n\t"
        "uxtb16 %[t], %[w0], ror #8\n\t"
        "smlad  %[a2], %[t], %[x13], %[a2]\n\t"
        "uxtb16 %[t], %[w1]\n\t"
        "smlad  %[a3], %[t], %[x02], %[a3]\n\t"
        "uxtb16 %[t], %[w1], ror #8\n\t"
        "smlad  %[a3], %[t], %[x13], %[a3]\n\t"
        "cmp    %[xp], %[xend]\n\t"
        "bne    1b\n\t"
        : [xp] "+r"(xp), [wp] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
          [xw] "=&r"(xw), [x02] "=&r"(x02), [x13] "=&r"(x13), [w0] "=&r"(w0), [w1] "=&r"(w1),
          [t] "=&r"(t)
        : [xend] "r"(xend)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#endif

/* Up to eight output features of one input row: acc[f] += sum_k x[k] * u_f[k] over k values for f
 * < features (the DSP path skips a last quad that is only padding). w: per group of four k, the
 * eight features' four weights in natural order (32 bytes). */
static inline void ek_qfc_dot8(const int8_t *x, const uint8_t *w, int32_t k, uint32_t acc[8], int32_t features)
{
    int32_t i = k & ~3, f;
    if (i > 0) {
#if defined(EK_QCONV_DSP)
        ek_qfc_dot4_dsp(x, w, i, acc);
        if (features > 4) {
            ek_qfc_dot4_dsp(x, w + 16, i, acc + 4);
        }
#elif defined(EK_QCONV_V6M)
        ek_qfc_dot8_v6m(x, w, x + i, acc);
#else
        int32_t j;
        for (j = 0; j < i; j += 4) {
            const uint32_t x0 = (uint32_t)x[j], x1 = (uint32_t)x[j + 1], x2 = (uint32_t)x[j + 2],
                           x3 = (uint32_t)x[j + 3];
            const uint8_t *g = w + 8 * j;
            for (f = 0; f < features; f++) {
                acc[f] += x0 * g[4 * f] + x1 * g[4 * f + 1] + x2 * g[4 * f + 2] + x3 * g[4 * f + 3];
            }
        }
#endif
    }
    w += 8 * i;
    for (int32_t t = 0; i < k; i++, t++) { /* the last k % 4 values: x is not read past its end */
        for (f = 0; f < features; f++) {
            acc[f] += (uint32_t)x[i] * w[4 * f + t];
        }
    }
}

/* sum_k x[k] (the offset-binary correction of one input row) */
static int32_t ek_qsum_s8(const int8_t *x, int32_t k)
{
    int32_t sum = 0, i = 0;
#ifdef EK_QCONV_DSP
    const uint32_t ones = 0x00010001u;
    for (; i + 4 <= k; i += 4) {
        uint32_t w, t;
        memcpy(&w, x + i, sizeof w);
        __asm__("sxtb16 %[t], %[w]\n\t"
                "smlad  %[s], %[t], %[ones], %[s]\n\t"
                "sxtb16 %[t], %[w], ror #8\n\t"
                "smlad  %[s], %[t], %[ones], %[s]\n\t"
                : [s] "+r"(sum), [t] "=&r"(t)
                : [w] "r"(w), [ones] "r"(ones));
    }
#endif
    for (; i < k; i++) {
        sum += x[i];
    }
    return sum;
}

void ek_qfc_s8(const ek_qfc_params *p, const int8_t *input, const uint8_t *weights, const int32_t *bias,
               const int32_t *multiplier, const int32_t *shift, int8_t *output)
{
    const ek_qout q = {multiplier, shift, p->arithmetic, p->output_offset, p->act_min,
                       p->act_max, NULL, NULL, output};
    /* locals: the int8 stores could alias *p */
    const int32_t m = p->m, n = p->n, k = p->k, k_pad = p->k_pad;
    int32_t row, c, i;
    for (row = 0; row < m; row++) {
        const int8_t *x = input + row * k;
        int8_t *y = output + row * n;
        /* sum x * (u - 128) = sum x * u - 128 * sum x */
        const uint32_t offset_binary = (uint32_t)ek_qsum_s8(x, k) * 128u;
        for (c = 0; c < n; c += 8) {
            uint32_t acc[8];
            for (i = 0; i < 8; i++) {
                acc[i] = (uint32_t)bias[c + i] - offset_binary;
            }
            const int32_t count = n - c < 8 ? n - c : 8;
            ek_qfc_dot8(x, weights + c * k_pad, k, acc, count);
            for (i = 0; i < count; i++) {
                y[c + i] = ek_qout_value(&q, c + i, (int32_t)acc[i]);
            }
        }
    }
}
