/* ek_rnn.c: LSTM/GRU time loops; see ek_rnn.h. */
#include <string.h>

#include "ek_rnn.h"

static float ek_dot(const float *a, const float *b, int32_t n)
{
    float acc = 0.0f;
    int32_t i;
    for (i = 0; i < n; i++) {
        acc += *a++ * *b++;
    }
    return acc;
}

static float ek_rnn_clip(float v, float clip)
{
    return clip > 0.0f ? ek_clampf(v, -clip, clip) : v;
}

/* Element offset of the [hidden] row of batch n, direction d in a state tensor (h0, y_h...). */
static size_t ek_state_row(const ek_rnn_params *p, int32_t d, int32_t n)
{
    return (p->batch_major ? (size_t)n * p->num_dirs + d : (size_t)d * p->batch + n) * p->hidden;
}

/* Offset of x[t] of batch n, and of y[t] of direction d, batch n. */
static size_t ek_x_row(const ek_rnn_params *p, int32_t t, int32_t n)
{
    return (p->batch_major ? (size_t)n * p->seq_len + t : (size_t)t * p->batch + n) * p->input_size;
}

static size_t ek_y_row(const ek_rnn_params *p, int32_t t, int32_t d, int32_t n)
{
    return (p->batch_major ? ((size_t)n * p->seq_len + t) * p->num_dirs + d
                           : ((size_t)t * p->num_dirs + d) * p->batch + n) * p->hidden;
}

/* State of direction d at the start: the given initial value or zeros. */
static void ek_rnn_init(const ek_rnn_params *p, float *state, const float *init, int32_t d)
{
    int32_t n;
    for (n = 0; n < p->batch; n++) {
        float *dst = state + (size_t)n * p->hidden;
        if (init != NULL) {
            memcpy(dst, init + ek_state_row(p, d, n), (size_t)p->hidden * sizeof(float));
        } else {
            memset(dst, 0, (size_t)p->hidden * sizeof(float));
        }
    }
}

static void ek_rnn_store(const ek_rnn_params *p, float *out, const float *state, int32_t d)
{
    int32_t n;
    if (out == NULL) {
        return;
    }
    for (n = 0; n < p->batch; n++) {
        memcpy(out + ek_state_row(p, d, n), state + (size_t)n * p->hidden,
               (size_t)p->hidden * sizeof(float));
    }
}

void ek_lstm_f32(const ek_rnn_params *p, const float *x, const float *h0, const float *c0,
                 const float *w, const float *r, const float *b, const float *peep, float *y,
                 float *y_h, float *y_c, float *scratch)
{
    const int32_t H = p->hidden, B = p->batch, I = p->input_size, T = p->seq_len, D = p->num_dirs;
    float *gates = scratch;
    float *h = scratch + 4 * H;
    float *c = h + B * H;
    int32_t d, step, n, j, k;

    for (d = 0; d < D; d++) {
        const float *wd = w + (size_t)d * 4 * H * I;
        const float *rd = r + (size_t)d * 4 * H * H;
        const float *bd = b != NULL ? b + (size_t)d * 4 * H : NULL;
        const float *pd = peep != NULL ? peep + (size_t)d * 3 * H : NULL;
        const int backwards = (d == 1) || p->reverse;
        ek_rnn_init(p, h, h0, d);
        ek_rnn_init(p, c, c0, d);
        for (step = 0; step < T; step++) {
            const int32_t t = backwards ? T - 1 - step : step;
            for (n = 0; n < B; n++) {
                const float *xt = x + ek_x_row(p, t, n);
                float *hn = h + n * H;
                float *cn = c + n * H;
                for (j = 0; j < 4 * H; j++) {
                    gates[j] = (bd != NULL ? bd[j] : 0.0f) + ek_dot(xt, wd + (size_t)j * I, I) +
                               ek_dot(hn, rd + (size_t)j * H, H);
                }
                for (k = 0; k < H; k++) {
                    float gi = gates[k], go = gates[H + k], gf = gates[2 * H + k];
                    const float gc = ek_rnn_clip(gates[3 * H + k], p->clip);
                    float ct;
                    if (pd != NULL) {
                        gi += pd[k] * cn[k];
                        gf += pd[2 * H + k] * cn[k];
                    }
                    ct = ek_sigmoidf(ek_rnn_clip(gf, p->clip)) * cn[k] +
                         ek_sigmoidf(ek_rnn_clip(gi, p->clip)) * tanhf(gc);
                    if (pd != NULL) {
                        go += pd[H + k] * ct;
                    }
                    cn[k] = ct;
                    hn[k] = ek_sigmoidf(ek_rnn_clip(go, p->clip)) * tanhf(ct);
                }
                if (y != NULL) {
                    memcpy(y + ek_y_row(p, t, d, n), hn, (size_t)H * sizeof(float));
                }
            }
        }
        ek_rnn_store(p, y_h, h, d);
        ek_rnn_store(p, y_c, c, d);
    }
}

void ek_gru_f32(const ek_rnn_params *p, const float *x, const float *h0, const float *w,
                const float *r, const float *b, float *y, float *y_h, float *scratch)
{
    const int32_t H = p->hidden, B = p->batch, I = p->input_size, T = p->seq_len, D = p->num_dirs;
    float *xg = scratch;        /* 3H: W x + Wb */
    float *hg = xg + 3 * H;     /* 3H: R h + Rb (h part: see linear_before_reset) */
    float *rh = hg + 3 * H;     /* H: r * h */
    float *h = rh + H;          /* B*H state */
    int32_t d, step, n, j, k;

    for (d = 0; d < D; d++) {
        const float *wd = w + (size_t)d * 3 * H * I;
        const float *rd = r + (size_t)d * 3 * H * H;
        const float *wb = b != NULL ? b + (size_t)d * 6 * H : NULL;
        const float *rb = b != NULL ? wb + 3 * H : NULL;
        const int backwards = (d == 1) || p->reverse;
        ek_rnn_init(p, h, h0, d);
        for (step = 0; step < T; step++) {
            const int32_t t = backwards ? T - 1 - step : step;
            for (n = 0; n < B; n++) {
                const float *xt = x + ek_x_row(p, t, n);
                float *hn = h + n * H;
                for (j = 0; j < 3 * H; j++) {
                    xg[j] = (wb != NULL ? wb[j] : 0.0f) + ek_dot(xt, wd + (size_t)j * I, I);
                }
                for (j = 0; j < 2 * H; j++) {
                    hg[j] = (rb != NULL ? rb[j] : 0.0f) + ek_dot(hn, rd + (size_t)j * H, H);
                }
                /* hg[0..H) z, hg[H..2H) r: reset gate first, it shapes the candidate state. */
                for (k = 0; k < H; k++) {
                    const float rk = ek_sigmoidf(ek_rnn_clip(xg[H + k] + hg[H + k], p->clip));
                    hg[H + k] = rk;
                    rh[k] = rk * hn[k];
                }
                for (k = 0; k < H; k++) {
                    const float *rrow = rd + (size_t)(2 * H + k) * H;
                    const float rbh = rb != NULL ? rb[2 * H + k] : 0.0f;
                    const float hpart = p->linear_before_reset
                                            ? hg[H + k] * (ek_dot(hn, rrow, H) + rbh)
                                            : ek_dot(rh, rrow, H) + rbh;
                    hg[2 * H + k] = tanhf(ek_rnn_clip(xg[2 * H + k] + hpart, p->clip));
                }
                for (k = 0; k < H; k++) {
                    const float z = ek_sigmoidf(ek_rnn_clip(xg[k] + hg[k], p->clip));
                    hn[k] = (1.0f - z) * hg[2 * H + k] + z * hn[k];
                }
                if (y != NULL) {
                    memcpy(y + ek_y_row(p, t, d, n), hn, (size_t)H * sizeof(float));
                }
            }
        }
        ek_rnn_store(p, y_h, h, d);
    }
}
