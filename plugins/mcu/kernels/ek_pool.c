/* ek_pool.c: window pooling with per-window clipping and global pooling. */
#include "ek_pool.h"

/* Taps k in [lo, hi) of a dilated window starting at `start` that fall inside [0, size). */
static void ek_window_taps(int32_t start, int32_t k, int32_t dil, int32_t size, int32_t *lo,
                           int32_t *hi)
{
    int32_t first = 0, last = k;
    if (start < 0) {
        first = (-start + dil - 1) / dil;
    }
    while (last > first && start + (last - 1) * dil >= size) {
        last--;
    }
    *lo = first;
    *hi = last > first ? last : first;
}

/* Taps of the window that fall inside the padded input [-pad_begin, size + pad_end). */
static int32_t ek_padded_taps(int32_t start, int32_t k, int32_t dil, int32_t size,
                              int32_t pad_begin, int32_t pad_end)
{
    int32_t lo, hi;
    ek_window_taps(start + pad_begin, k, dil, size + pad_begin + pad_end, &lo, &hi);
    return hi - lo;
}

#define EK_POOL_LOOP(INIT, ACC, FINISH) EK_POOL_LOOP_OF(float, INIT, ACC, FINISH)
/* The window walk for any element type (float32 and int8 kernels share it). */
#define EK_POOL_LOOP_OF(TYPE, INIT, ACC, FINISH)                                               \
    int32_t plane, oh, ow, kh, kw;                                                             \
    const int32_t planes = p->batch * p->channels;                                             \
    const int32_t in_plane = p->in_h * p->in_w;                                                \
    for (plane = 0; plane < planes; plane++, in += in_plane) {                                 \
        for (oh = 0; oh < p->out_h; oh++) {                                                    \
            const int32_t hs = oh * p->stride_h - p->pad_top;                                  \
            int32_t kh0, kh1;                                                                  \
            ek_window_taps(hs, p->k_h, p->dil_h, p->in_h, &kh0, &kh1);                         \
            for (ow = 0; ow < p->out_w; ow++) {                                                \
                const int32_t ws = ow * p->stride_w - p->pad_left;                             \
                int32_t kw0, kw1;                                                              \
                INIT;                                                                          \
                ek_window_taps(ws, p->k_w, p->dil_w, p->in_w, &kw0, &kw1);                     \
                for (kh = kh0; kh < kh1; kh++) {                                               \
                    const TYPE *row = in + (hs + kh * p->dil_h) * p->in_w + ws + kw0 * p->dil_w; \
                    for (kw = kw0; kw < kw1; kw++, row += p->dil_w) {                          \
                        ACC;                                                                   \
                    }                                                                          \
                }                                                                              \
                FINISH;                                                                        \
            }                                                                                  \
        }                                                                                      \
    }

void ek_maxpool2d_f32(const ek_pool2d_params *p, const float *in, float *out)
{
    EK_POOL_LOOP(float m = -INFINITY,
                 m = ek_max_nan(m, *row),
                 *out++ = m)
}

void ek_avgpool2d_f32(const ek_pool2d_params *p, const float *in, float *out)
{
    EK_POOL_LOOP(float s = 0.0f,
                 s += *row,
                 {
                     int32_t taps = (kh1 - kh0) * (kw1 - kw0);
                     if (p->count_include_pad) {
                         taps = ek_padded_taps(hs, p->k_h, p->dil_h, p->in_h, p->pad_top,
                                               p->pad_bottom) *
                                ek_padded_taps(ws, p->k_w, p->dil_w, p->in_w, p->pad_left,
                                               p->pad_right);
                     }
                     *out++ = taps > 0 ? s / (float)taps : 0.0f;
                 })
}

/* Two accumulators per plane halve the add dependency chain and the loop overhead. */
void ek_global_avgpool_f32(const ek_global_pool_params *p, const float *in, float *out)
{
    const float inv = 1.0f / (float)p->size;
    int32_t c, i;
    for (c = 0; c < p->planes; c++) {
        float s0 = 0.0f, s1 = 0.0f;
        for (i = 0; i + 2 <= p->size; i += 2) {
            s0 += in[0];
            s1 += in[1];
            in += 2;
        }
        if (i < p->size) {
            s0 += *in++;
        }
        *out++ = (s0 + s1) * inv;
    }
}

void ek_global_maxpool_f32(const ek_global_pool_params *p, const float *in, float *out)
{
    int32_t c, i;
    for (c = 0; c < p->planes; c++) {
        float m = -INFINITY;
        for (i = 0; i < p->size; i++) {
            m = ek_max_nan(m, *in++);
        }
        *out++ = m;
    }
}

/* int8 output of a pooled value v (an input-domain integer, zero point not yet removed). */
static inline int8_t ek_qpool_out(const ek_qpool2d_params *q, int32_t v)
{
    v += q->input_offset;
    if (q->multiplier != 0) {
        v = ek_requantize_as(q->arithmetic, v, q->multiplier, q->shift);
    }
    return (int8_t)ek_clamp_i32(v + q->output_offset, -128, 127);
}

/* x / d rounded to nearest, ties to even (d > 0): the rounding of QuantizeLinear, so a mean
 * lands where onnxruntime's float average followed by QuantizeLinear lands. */
static inline int32_t ek_rounding_div(int32_t x, int32_t d)
{
    int32_t q = x / d, r = x % d;
    if (r < 0) {
        q -= 1; /* floor division */
        r += d;
    }
    if (2 * r > d || (2 * r == d && (q & 1) != 0)) {
        q += 1;
    }
    return q;
}

/* x / d rounded to nearest, ties away from zero (d > 0): TFLite's int8 average pool
 * (qmath.rounding_div_away). */
static inline int32_t ek_rounding_div_away(int32_t x, int32_t d)
{
    return x > 0 ? (x + d / 2) / d : (x - d / 2) / d;
}

/* Mean of `taps` values whose offset sum is acc, rescaled: the division comes last so a scale
 * change is applied with 8 extra fraction bits and rounded once more only by the divide.
 * EK_ARITH_TFLITE without a rescale: TFLite's mean of the raw values (acc - taps * input_offset). */
static inline int8_t ek_qmean_out(int32_t arithmetic, int32_t acc, int32_t taps, int32_t input_offset,
                                  int32_t multiplier, int32_t shift, int32_t output_offset)
{
    int32_t v;
    if (taps <= 0) {
        return (int8_t)ek_clamp_i32(output_offset, -128, 127);
    }
    if (multiplier == 0 && arithmetic == EK_ARITH_TFLITE) {
        v = ek_rounding_div_away(acc - taps * input_offset, taps) + input_offset;
    } else if (multiplier == 0) {
        v = ek_rounding_div(acc, taps);
    } else if (taps <= (1 << 14)) {
        v = ek_rounding_div(ek_requantize(acc * 256, multiplier, shift), taps * 256);
    } else {
        v = ek_rounding_div(ek_requantize(acc, multiplier, shift), taps);
    }
    return (int8_t)ek_clamp_i32(v + output_offset, -128, 127);
}

void ek_qmaxpool2d_s8(const ek_qpool2d_params *q, const int8_t *in, int8_t *out)
{
    const ek_pool2d_params *p = &q->pool;
    EK_POOL_LOOP_OF(int8_t, int32_t m = -128,
                    m = *row > m ? *row : m,
                    *out++ = ek_qpool_out(q, m))
}

void ek_qavgpool2d_s8(const ek_qpool2d_params *q, const int8_t *in, int8_t *out)
{
    const ek_pool2d_params *p = &q->pool;
    EK_POOL_LOOP_OF(int8_t, int32_t s = 0,
                    s += *row,
                    {
                        int32_t taps = (kh1 - kh0) * (kw1 - kw0);
                        const int32_t inside = taps;
                        if (p->count_include_pad) {
                            taps = ek_padded_taps(hs, p->k_h, p->dil_h, p->in_h, p->pad_top,
                                                  p->pad_bottom) *
                                   ek_padded_taps(ws, p->k_w, p->dil_w, p->in_w, p->pad_left,
                                                  p->pad_right);
                        }
                        /* padded taps hold real 0, i.e. the zero point: they add nothing */
                        *out++ = ek_qmean_out(q->arithmetic, s + inside * q->input_offset, taps,
                                              q->input_offset, q->multiplier, q->shift,
                                              q->output_offset);
                    })
}

void ek_qglobal_avgpool_s8(const ek_qglobal_pool_params *q, const int8_t *in, int8_t *out)
{
    int32_t plane, i;
    for (plane = 0; plane < q->planes; plane++, in += q->size) {
        int32_t s = 0;
        for (i = 0; i < q->size; i++) {
            s += in[i];
        }
        out[plane] = ek_qmean_out(q->arithmetic, s + q->size * q->input_offset, q->size,
                                  q->input_offset, q->multiplier, q->shift, q->output_offset);
    }
}
