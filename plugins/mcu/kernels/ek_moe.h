/* ek_moe.h: a mixture-of-experts layer with conditional execution (top-k of N experts).
 *
 * Per token: the k largest router probabilities (the lower expert index first among equals, as
 * ONNX TopK), optionally renormalised to sum to one, then
 *     output[t] = sum_j gate[j] * expert[index[j]](input[t])
 * Each expert is a generated sub-library run on one token's row. Only the k selected experts run;
 * with `conditional` = 0 all N run and the unselected ones are weighted by zero (the dense
 * reference). An expert stored outside addressable memory (or in slow memory) is copied into one of
 * k RAM slots by the `load` hook before it runs. */
#ifndef EK_MOE_H
#define EK_MOE_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One expert's generated entry point: input row, output row, its weights, its working memory. */
typedef int (*ek_expert_run_fn)(const void *input, void *output, const void *weights, uint8_t *arena);

/* Copies `bytes` of expert `expert` of MoE layer `layer` from `stored` (where the linker placed
 * it) into the RAM slot `slot`. */
typedef void (*ek_expert_load_fn)(uint32_t layer, uint32_t expert, void *slot, const void *stored,
                                  uint32_t bytes);

typedef struct {
    ek_expert_run_fn run;
    const void *weights;
    uint32_t weight_bytes;
} ek_moe_expert;

typedef struct {
    int32_t tokens;
    int32_t dim_in;
    int32_t dim_out;
    int32_t experts;
    int32_t k;
    int32_t renormalize;
    int32_t conditional;
    int32_t layer;
    int32_t input_bytes;      /* bytes per input element: 4 (float32), 1 (int8 rows of a QDQ model) */
    const ek_moe_expert *table;
    ek_expert_load_fn load;   /* NULL: experts run from where they are stored */
    int32_t slot_bytes;       /* bytes of one RAM slot (with `load`) */
    /* byte offsets in the scratch buffer (16-byte aligned) */
    int32_t expert_arena_offset;
    int32_t row_offset;
    int32_t slots_offset;
} ek_moe_params;

/* Scratch: the experts' working memory (one at a time), one output row, the k RAM slots.
 * `input`: float32, or int8 (input_bytes = 1) passed to the experts as they are. */
void ek_moe_f32(const ek_moe_params *p, const void *input, const float *probs, float *output,
                float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* EK_MOE_H */
