/* ek_qconv.c: int8 Conv and fully connected layers (see ek_qconv.h for the technique). */
#include <string.h>

#include "ek_qconv.h"

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
#include <arm_acle.h>
#define EK_QCONV_DSP 1
#endif

/* Requantization of one layer's int32 accumulators to int8. */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t output_offset;
    int32_t act_min, act_max;
} ek_qout;

static inline int8_t ek_qout_value(const ek_qout *q, int32_t c, int32_t acc)
{
    const int32_t v = ek_requantize(acc, q->multiplier[c], q->shift[c]) + q->output_offset;
    return (int8_t)ek_clamp_i32(v, q->act_min, q->act_max);
}

#ifdef EK_QCONV_DSP
/* Words read from int8/int16 arrays: may_alias keeps the access legal C, the 4-byte alignment (the
 * weights are 8-aligned, the scratch 4-aligned, every row a multiple of 4 bytes) lets two neighbours
 * load with one LDRD. */
typedef uint32_t __attribute__((may_alias, aligned(4))) ek_word;

/* Bytes 1 and 3 sign-extended into two halfwords (SXTB16 with its free rotation). */
static inline int32_t ek_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return (int32_t)r;
}
#endif

/* Two output channels x two columns over k_pad values. w: the pair's weights, per group of four k
 * the four of channel a then the four of channel b, each permuted [w0 w2 w1 w3]; col: the two
 * columns interleaved by pairs (x0 x1 y0 y1 x2 x3 y2 y3 ...). acc = {a.x, a.y, b.x, b.y}. */
static inline void ek_qdot_2x2(const int16_t *col, const int8_t *w, int32_t k_pad, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    const int8_t *const end = w + 2 * k_pad;
#ifdef EK_QCONV_DSP
    while (w < end) {
        const ek_word *wp = (const ek_word *)(const void *)w, *cp = (const ek_word *)(const void *)col;
        const uint32_t wa = wp[0], wb = wp[1];
        const int32_t x01 = (int32_t)cp[0], y01 = (int32_t)cp[1];
        const int32_t x23 = (int32_t)cp[2], y23 = (int32_t)cp[3];
        int32_t lo = (int32_t)__sxtb16((int32_t)wa);
        a0 = __smlad(lo, x01, a0);
        a1 = __smlad(lo, y01, a1);
        lo = (int32_t)__sxtb16((int32_t)wb);
        b0 = __smlad(lo, x01, b0);
        b1 = __smlad(lo, y01, b1);
        lo = ek_sxtb16_ror8(wa);
        a0 = __smlad(lo, x23, a0);
        a1 = __smlad(lo, y23, a1);
        lo = ek_sxtb16_ror8(wb);
        b0 = __smlad(lo, x23, b0);
        b1 = __smlad(lo, y23, b1);
        w += 8;
        col += 8;
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

/* out[c * oc_stride + j * col_stride] for channels [0, channels) and columns j < ncols (1 or 2). */
static void ek_qmatmul_cols(const int16_t *col, int32_t ncols, const int8_t *weights, int32_t channels,
                            int32_t k_pad, const int32_t *bias, const ek_qout *q, int32_t c_base,
                            int8_t *out, int32_t oc_stride, int32_t col_stride)
{
    int32_t c;
    for (c = 0; c < channels; c += 2) {
        const int32_t pair = c + 1 < channels;
        int32_t acc[4];
        acc[0] = acc[1] = bias[c_base + c];
        acc[2] = acc[3] = pair ? bias[c_base + c + 1] : 0;
        ek_qdot_2x2(col, weights + c * k_pad, k_pad, acc);
        out[c * oc_stride] = ek_qout_value(q, c_base + c, acc[0]);
        if (ncols > 1) {
            out[c * oc_stride + col_stride] = ek_qout_value(q, c_base + c, acc[1]);
        }
        if (pair) {
            out[(c + 1) * oc_stride] = ek_qout_value(q, c_base + c + 1, acc[2]);
            if (ncols > 1) {
                out[(c + 1) * oc_stride + col_stride] = ek_qout_value(q, c_base + c + 1, acc[3]);
            }
        }
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
    int16_t *const end = col + 2 * p->k_pad;
    int32_t first = 0, held = 0, ic, ky, kx;
    for (ic = 0; ic < icg; ic++) {
        const int8_t *src = in_group + ic * plane;
        for (ky = 0; ky < k_h; ky++) {
            const int32_t iy = iy0 + ky * dil_h;
            if (iy < 0 || iy >= in_h) {
                for (kx = 0; kx < k_w; kx++) {
                    EK_QCOL_PUT(0);
                }
            } else if (inside_w && k_w == 3 && dil_w == 1) {
                /* the 3x3 case: a row of three completes one pair and holds a value, or the
                 * reverse, so no per-value test is needed */
                const int8_t *x = src + iy * in_w + ix0;
                const int32_t v0 = x[0] + offset, v1 = x[1] + offset, v2 = x[2] + offset;
                if (held) {
                    d[0] = (int16_t)first;
                    d[1] = (int16_t)v0;
                    d[4] = (int16_t)v1;
                    d[5] = (int16_t)v2;
                    d += 8;
                    held = 0;
                } else {
                    d[0] = (int16_t)v0;
                    d[1] = (int16_t)v1;
                    d += 4;
                    first = v2;
                    held = 1;
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
    for (; d < end; d += 4) { /* k_pad padding */
        d[0] = 0;
        d[1] = 0;
    }
}

static void ek_qconv_depthwise(const ek_qconv_params *p, const int8_t *input, const int8_t *weights,
                               const int32_t *bias, const ek_qout *q, int8_t *output)
{
    const int32_t mult = p->out_c / p->in_c;
    const int32_t plane = p->in_h * p->in_w, ksize = p->k_h * p->k_w;
    int32_t b, c, oy, ox, ky, kx;
    for (b = 0; b < p->n; b++) {
        for (c = 0; c < p->out_c; c++) {
            const int8_t *src = input + (b * p->in_c + c / mult) * plane;
            const int8_t *w = weights + c * ksize;
            int8_t *dst = output + (b * p->out_c + c) * p->out_h * p->out_w;
            for (oy = 0; oy < p->out_h; oy++) {
                const int32_t iy0 = oy * p->stride_h - p->pad_top;
                for (ox = 0; ox < p->out_w; ox++) {
                    const int32_t ix0 = ox * p->stride_w - p->pad_left;
                    int32_t acc = bias[c];
                    for (ky = 0; ky < p->k_h; ky++) {
                        const int32_t iy = iy0 + ky * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        const int8_t *row = src + iy * p->in_w;
                        const int8_t *wr = w + ky * p->k_w;
                        for (kx = 0; kx < p->k_w; kx++) {
                            const int32_t ix = ix0 + kx * p->dil_w;
                            if (ix >= 0 && ix < p->in_w) {
                                acc += (row[ix] + p->input_offset) * wr[kx];
                            }
                        }
                    }
                    *dst++ = ek_qout_value(q, c, acc);
                }
            }
        }
    }
}

void ek_qconv_s8(const ek_qconv_params *p, const int8_t *input, const int8_t *weights,
                 const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *output,
                 void *scratch)
{
    const ek_qout q = {multiplier, shift, p->output_offset, p->act_min, p->act_max};
    const int32_t icg = p->in_c / p->groups, ocg = p->out_c / p->groups;
    const int32_t pixels = p->out_h * p->out_w, plane = p->in_h * p->in_w;
    int16_t *col = (int16_t *)scratch;
    int32_t b, g, px;
    if (p->depthwise) {
        ek_qconv_depthwise(p, input, weights, bias, &q, output);
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
                ek_qim2col(p, in_group, icg, px / p->out_w, px % p->out_w, col, 0);
                ek_qim2col(p, in_group, icg, px1 / p->out_w, px1 % p->out_w, col, 1);
                ek_qmatmul_cols(col, ncols, w_group, ocg, p->k_pad, bias, &q, g * ocg, out_group + px,
                                pixels, 1);
            }
        }
    }
}

/* Four output channels of one input row: acc[i] += sum_k x[k] * w_i[k] over k values (x raw
 * int8: the input offset is folded into the bias). w: per group of four k, the four channels' four
 * weights in natural order, so SXTB16 pairs (w0, w2) / (w1, w3) meet the same pairs of x. */
static inline void ek_qfc_dot4(const int8_t *x, const int8_t *w, int32_t k, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t i = 0;
#ifdef EK_QCONV_DSP
    for (; i + 4 <= k; i += 4, w += 16) {
        uint32_t xw;
        memcpy(&xw, x + i, sizeof xw); /* one LDR: ARMv7E-M loads unaligned words */
        const int32_t x02 = (int32_t)__sxtb16((int32_t)xw), x13 = ek_sxtb16_ror8(xw);
        const ek_word *wp = (const ek_word *)(const void *)w;
        const uint32_t w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
        a0 = __smlad((int32_t)__sxtb16((int32_t)w0), x02, a0);
        a0 = __smlad(ek_sxtb16_ror8(w0), x13, a0);
        a1 = __smlad((int32_t)__sxtb16((int32_t)w1), x02, a1);
        a1 = __smlad(ek_sxtb16_ror8(w1), x13, a1);
        a2 = __smlad((int32_t)__sxtb16((int32_t)w2), x02, a2);
        a2 = __smlad(ek_sxtb16_ror8(w2), x13, a2);
        a3 = __smlad((int32_t)__sxtb16((int32_t)w3), x02, a3);
        a3 = __smlad(ek_sxtb16_ror8(w3), x13, a3);
    }
#else
    for (; i + 4 <= k; i += 4, w += 16) {
        const int32_t x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
        a0 += x0 * w[0] + x1 * w[1] + x2 * w[2] + x3 * w[3];
        a1 += x0 * w[4] + x1 * w[5] + x2 * w[6] + x3 * w[7];
        a2 += x0 * w[8] + x1 * w[9] + x2 * w[10] + x3 * w[11];
        a3 += x0 * w[12] + x1 * w[13] + x2 * w[14] + x3 * w[15];
    }
#endif
    for (int32_t t = 0; i < k; i++, t++) { /* the last k % 4 values: x is not read past its end */
        a0 += x[i] * w[t];
        a1 += x[i] * w[4 + t];
        a2 += x[i] * w[8 + t];
        a3 += x[i] * w[12 + t];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

void ek_qfc_s8(const ek_qfc_params *p, const int8_t *input, const int8_t *weights, const int32_t *bias,
               const int32_t *multiplier, const int32_t *shift, int8_t *output)
{
    const ek_qout q = {multiplier, shift, p->output_offset, p->act_min, p->act_max};
    int32_t row, c, i;
    for (row = 0; row < p->m; row++) {
        const int8_t *x = input + row * p->k;
        int8_t *y = output + row * p->n;
        for (c = 0; c < p->n; c += 4) {
            int32_t acc[4] = {bias[c], bias[c + 1], bias[c + 2], bias[c + 3]};
            ek_qfc_dot4(x, weights + c * p->k_pad, p->k, acc);
            for (i = 0; i < 4 && c + i < p->n; i++) {
                y[c + i] = ek_qout_value(&q, c + i, acc[i]);
            }
        }
    }
}
