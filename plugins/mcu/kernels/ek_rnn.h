/* ek_rnn.h: LSTM and GRU (ONNX semantics), forward, reverse or bidirectional, default activations
 * (Sigmoid, Tanh, Tanh), optional cell clip and LSTM peepholes, both ONNX layouts
 * (layout 0: X [seq][batch][input]; layout 1 = batch_major: X [batch][seq][input]).
 *
 * Technique: per time step and batch row, all gate pre-activations are computed first as row dot
 * products with the ONNX weight matrices (rows contiguous: W is [gates*hidden][input], R is
 * [gates*hidden][hidden]), then the state is updated, so the recurrent input is never overwritten
 * while it is still being read. Directions run one after the other on the same scratch state.
 * Outputs (layout 0): y [seq][dirs][batch][hidden], y_h [dirs][batch][hidden], y_c (LSTM) likewise;
 * layout 1: y [batch][seq][dirs][hidden], y_h/y_c/h0/c0 [batch][dirs][hidden]. Any output may be
 * NULL; h0/c0 may be NULL (zeros). Not in place. */
#ifndef EK_RNN_H
#define EK_RNN_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t seq_len, batch, input_size, hidden;
    int32_t num_dirs;      /* 1 or 2 */
    int32_t reverse;       /* direction 0 runs backwards in time (direction="reverse") */
    float clip;            /* > 0: gate pre-activations clamped to [-clip, clip] */
    int32_t linear_before_reset;  /* GRU only */
    int32_t batch_major;   /* ONNX layout = 1 */
} ek_rnn_params;

/* LSTM. w: [dirs][4H][I], r: [dirs][4H][H] (gate order i, o, f, c), b: [dirs][4H] = Wb + Rb
 * (NULL: zero), peep: [dirs][3H] (i, o, f; NULL: none). Scratch: ek_lstm_scratch_size floats. */
void ek_lstm_f32(const ek_rnn_params *p, const float *x, const float *h0, const float *c0,
                 const float *w, const float *r, const float *b, const float *peep, float *y,
                 float *y_h, float *y_c, float *scratch);

/* GRU. w: [dirs][3H][I], r: [dirs][3H][H] (gate order z, r, h), b: [dirs][6H] = Wb then Rb
 * (NULL: zero). Scratch: ek_gru_scratch_size floats. */
void ek_gru_f32(const ek_rnn_params *p, const float *x, const float *h0, const float *w,
                const float *r, const float *b, float *y, float *y_h, float *scratch);

/* Floats of scratch: gates plus the recurrent state of one direction. */
#define EK_LSTM_SCRATCH_SIZE(hidden, batch) (4 * (hidden) + 2 * (batch) * (hidden))
#define EK_GRU_SCRATCH_SIZE(hidden, batch) (7 * (hidden) + (batch) * (hidden))

#ifdef __cplusplus
}
#endif

#endif /* EK_RNN_H */
