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
static inline uint32_t ek_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* one LDR: ARMv7E-M loads unaligned words */
    return v;
}

/* Bytes 1 and 3 sign-extended into two halfwords (SXTB16 with its free rotation). */
static inline int32_t ek_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return (int32_t)r;
}
#endif

/* Two output channels (weights wa, wb) x two columns: acc[channel][column] += dot products over
 * k_pad values. Weights are permuted per group of four as [w0 w2 w1 w3]. */
static inline void ek_qdot_2x2(const int16_t *col0, const int16_t *col1, const int8_t *wa,
                               const int8_t *wb, int32_t k_pad, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    int32_t k;
#ifdef EK_QCONV_DSP
    for (k = 0; k < k_pad; k += 4) {
        const uint32_t wa4 = ek_ld32(wa + k), wb4 = ek_ld32(wb + k);
        const int32_t wa01 = (int32_t)__sxtb16((int32_t)wa4), wa23 = ek_sxtb16_ror8(wa4);
        const int32_t wb01 = (int32_t)__sxtb16((int32_t)wb4), wb23 = ek_sxtb16_ror8(wb4);
        const int32_t x01 = (int32_t)ek_ld32(col0 + k), x23 = (int32_t)ek_ld32(col0 + k + 2);
        const int32_t y01 = (int32_t)ek_ld32(col1 + k), y23 = (int32_t)ek_ld32(col1 + k + 2);
        a0 = __smlad(wa01, x01, a0);
        a0 = __smlad(wa23, x23, a0);
        a1 = __smlad(wa01, y01, a1);
        a1 = __smlad(wa23, y23, a1);
        b0 = __smlad(wb01, x01, b0);
        b0 = __smlad(wb23, x23, b0);
        b1 = __smlad(wb01, y01, b1);
        b1 = __smlad(wb23, y23, b1);
    }
#else
    for (k = 0; k < k_pad; k += 4) {
        const int32_t x0 = col0[k], x1 = col0[k + 1], x2 = col0[k + 2], x3 = col0[k + 3];
        const int32_t y0 = col1[k], y1 = col1[k + 1], y2 = col1[k + 2], y3 = col1[k + 3];
        const int8_t *pa = wa + k, *pb = wb + k;
        a0 += x0 * pa[0] + x1 * pa[2] + x2 * pa[1] + x3 * pa[3];
        a1 += y0 * pa[0] + y1 * pa[2] + y2 * pa[1] + y3 * pa[3];
        b0 += x0 * pb[0] + x1 * pb[2] + x2 * pb[1] + x3 * pb[3];
        b1 += y0 * pb[0] + y1 * pb[2] + y2 * pb[1] + y3 * pb[3];
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* out[c * oc_stride + j * col_stride] for channels [0, channels) and columns j < ncols (1 or 2);
 * col1 is read even when ncols == 1 (the caller passes col0 twice). */
static void ek_qmatmul_cols(const int16_t *col0, const int16_t *col1, int32_t ncols,
                            const int8_t *weights, int32_t channels, int32_t k_pad,
                            const int32_t *bias, const ek_qout *q, int32_t c_base, int8_t *out,
                            int32_t oc_stride, int32_t col_stride)
{
    int32_t c;
    for (c = 0; c < channels; c += 2) {
        const int32_t pair = c + 1 < channels;
        const int8_t *wa = weights + c * k_pad;
        const int8_t *wb = pair ? wa + k_pad : wa;
        int32_t acc[4];
        acc[0] = acc[1] = bias[c_base + c];
        acc[2] = acc[3] = pair ? bias[c_base + c + 1] : 0;
        ek_qdot_2x2(col0, col1, wa, wb, k_pad, acc);
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

/* The receptive field of output pixel (oy, ox) of one group, offset added, zero padded. */
static void ek_qim2col(const ek_qconv_params *p, const int8_t *in_group, int32_t icg, int32_t oy,
                       int32_t ox, int16_t *col)
{
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    const int32_t plane = p->in_h * p->in_w;
    const int16_t offset = (int16_t)p->input_offset;
    int32_t ic, ky, kx, k = 0;
    for (ic = 0; ic < icg; ic++) {
        const int8_t *src = in_group + ic * plane;
        for (ky = 0; ky < p->k_h; ky++) {
            const int32_t iy = iy0 + ky * p->dil_h;
            if (iy < 0 || iy >= p->in_h) {
                for (kx = 0; kx < p->k_w; kx++) {
                    col[k++] = 0;
                }
                continue;
            }
            const int8_t *row = src + iy * p->in_w;
            if (ix0 >= 0 && ix0 + (p->k_w - 1) * p->dil_w < p->in_w) {
                const int8_t *x = row + ix0;
                for (kx = 0; kx < p->k_w; kx++, x += p->dil_w) {
                    col[k++] = (int16_t)(*x + offset);
                }
            } else {
                for (kx = 0; kx < p->k_w; kx++) {
                    const int32_t ix = ix0 + kx * p->dil_w;
                    col[k++] = (ix < 0 || ix >= p->in_w) ? 0 : (int16_t)(row[ix] + offset);
                }
            }
        }
    }
    for (; k < p->k_pad; k++) {
        col[k] = 0;
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
    int16_t *col0 = (int16_t *)scratch;
    int16_t *col1 = col0 + p->k_pad;
    int32_t b, g, px;
    if (p->depthwise) {
        ek_qconv_depthwise(p, input, weights, bias, &q, output);
        return;
    }
    for (b = 0; b < p->n; b++) {
        for (g = 0; g < p->groups; g++) {
            const int8_t *in_group = input + (b * p->in_c + g * icg) * plane;
            int8_t *out_group = output + (b * p->out_c + g * ocg) * pixels;
            const int8_t *w_group = weights + g * ocg * p->k_pad;
            for (px = 0; px < pixels; px += 2) {
                const int32_t ncols = px + 1 < pixels ? 2 : 1;
                ek_qim2col(p, in_group, icg, px / p->out_w, px % p->out_w, col0);
                if (ncols > 1) {
                    ek_qim2col(p, in_group, icg, (px + 1) / p->out_w, (px + 1) % p->out_w, col1);
                }
                ek_qmatmul_cols(col0, ncols > 1 ? col1 : col0, ncols, w_group, ocg, p->k_pad, bias,
                                &q, g * ocg, out_group + px, pixels, 1);
            }
        }
    }
}

/* One input row with the offset added, zero padded to k_pad. */
static void ek_qrow(const int8_t *x, int32_t k, int32_t k_pad, int16_t offset, int16_t *col)
{
    int32_t i;
    for (i = 0; i < k; i++) {
        col[i] = (int16_t)(x[i] + offset);
    }
    for (; i < k_pad; i++) {
        col[i] = 0;
    }
}

void ek_qfc_s8(const ek_qfc_params *p, const int8_t *input, const int8_t *weights, const int32_t *bias,
               const int32_t *multiplier, const int32_t *shift, int8_t *output, void *scratch)
{
    const ek_qout q = {multiplier, shift, p->output_offset, p->act_min, p->act_max};
    int16_t *col0 = (int16_t *)scratch;
    int16_t *col1 = col0 + p->k_pad;
    int32_t row;
    for (row = 0; row < p->m; row += 2) {
        const int32_t nrows = row + 1 < p->m ? 2 : 1;
        ek_qrow(input + row * p->k, p->k, p->k_pad, (int16_t)p->input_offset, col0);
        if (nrows > 1) {
            ek_qrow(input + (row + 1) * p->k, p->k, p->k_pad, (int16_t)p->input_offset, col1);
        }
        ek_qmatmul_cols(col0, nrows > 1 ? col1 : col0, nrows, weights, p->n, p->k_pad, bias, &q, 0,
                        output + row * p->n, 1, p->n);
    }
}
