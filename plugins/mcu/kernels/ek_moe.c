/* ek_moe.c: mixture-of-experts layer with conditional execution (see ek_moe.h). */
#include "ek_moe.h"

/* The k largest of probs[0..n), by insertion: the lower index wins among equals. */
static void ek_moe_top_k(const float *probs, int32_t n, int32_t k, int32_t *index, float *gate)
{
    int32_t count = 0;
    int32_t e;
    for (e = 0; e < n; ++e) {
        const float v = probs[e];
        int32_t pos = count;
        while (pos > 0 && v > gate[pos - 1]) {
            --pos;
        }
        if (pos < k) {
            int32_t j = count < k ? count : k - 1;
            for (; j > pos; --j) {
                gate[j] = gate[j - 1];
                index[j] = index[j - 1];
            }
            gate[pos] = v;
            index[pos] = e;
            if (count < k) {
                ++count;
            }
        }
    }
}

/* The weights expert e runs from: where they are stored, or a RAM slot it is loaded into. */
static const void *ek_moe_weights(const ek_moe_params *p, int32_t e, uint8_t *slots, int32_t *slot_expert,
                                  int32_t *next_slot)
{
    int32_t s;
    uint8_t *slot;
    if (p->load == NULL) {
        return p->table[e].weights;
    }
    for (s = 0; s < p->k; ++s) {
        if (slot_expert[s] == e) {
            return slots + (size_t)s * (size_t)p->slot_bytes;
        }
    }
    /* Round robin over the k slots: the other expert of the token stays resident. */
    s = *next_slot;
    *next_slot = (s + 1) % p->k;
    slot = slots + (size_t)s * (size_t)p->slot_bytes;
    p->load((uint32_t)p->layer, (uint32_t)e, slot, p->table[e].weights, p->table[e].weight_bytes);
    slot_expert[s] = e;
    return slot;
}

void ek_moe_f32(const ek_moe_params *p, const void *input, const float *probs, float *output,
                float *scratch_f32)
{
    uint8_t *const scratch = (uint8_t *)(void *)scratch_f32;
    /* Bounds of the top-k bookkeeping kept on the stack. */
    enum { EK_MOE_MAX_K = 16 };
    int32_t index[EK_MOE_MAX_K];
    float gate[EK_MOE_MAX_K];
    int32_t slot_expert[EK_MOE_MAX_K];
    int32_t next_slot = 0;
    uint8_t *const expert_arena = scratch + p->expert_arena_offset;
    float *const row = (float *)(void *)(scratch + p->row_offset);
    uint8_t *const slots = scratch + p->slots_offset;
    const int32_t k = p->k < EK_MOE_MAX_K ? p->k : EK_MOE_MAX_K;
    int32_t t, j, i;
    for (j = 0; j < EK_MOE_MAX_K; ++j) {
        slot_expert[j] = -1;
    }
    for (t = 0; t < p->tokens; ++t) {
        const void *const x = (const uint8_t *)input + (size_t)t * (size_t)p->dim_in * (size_t)p->input_bytes;
        float *const y = output + (size_t)t * (size_t)p->dim_out;
        ek_moe_top_k(probs + (size_t)t * (size_t)p->experts, p->experts, k, index, gate);
        if (p->renormalize) {
            float sum = 0.0f;
            for (j = 0; j < k; ++j) {
                sum += gate[j];
            }
            for (j = 0; j < k; ++j) {
                gate[j] /= sum;
            }
        }
        for (i = 0; i < p->dim_out; ++i) {
            y[i] = 0.0f;
        }
        if (p->conditional) {
            for (j = 0; j < k; ++j) {
                const int32_t e = index[j];
                (void)p->table[e].run(x, row, ek_moe_weights(p, e, slots, slot_expert, &next_slot), expert_arena);
                for (i = 0; i < p->dim_out; ++i) {
                    y[i] += gate[j] * row[i];
                }
            }
        } else {
            int32_t e;
            for (e = 0; e < p->experts; ++e) {
                float g = 0.0f;
                for (j = 0; j < k; ++j) {
                    if (index[j] == e) {
                        g = gate[j];
                    }
                }
                (void)p->table[e].run(x, row, ek_moe_weights(p, e, slots, slot_expert, &next_slot), expert_arena);
                for (i = 0; i < p->dim_out; ++i) {
                    y[i] += g * row[i];
                }
            }
        }
    }
}
