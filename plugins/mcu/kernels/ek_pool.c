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

#define EK_POOL_LOOP(INIT, ACC, FINISH)                                                        \
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
                    const float *row = in + (hs + kh * p->dil_h) * p->in_w + ws + kw0 * p->dil_w; \
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
