/* ek_transform.h: data movement: copy, strided copy (Transpose, Slice, Expand, Split), Concat, Pad
 * and Gather.
 *
 * Strided copy: the output is dense; element (i0..i{r-1}) is read from
 * in[offset + sum_d i_d * stride[d]], strides may be negative (Slice with negative steps) and are
 * per-axis input strides already permuted (Transpose). The walk is row-based: an odometer over the
 * outer axes, a tight constant-stride inner loop. None of these kernels may be called in place. */
#ifndef EK_TRANSFORM_H
#define EK_TRANSFORM_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t size;  /* elements */
} ek_copy_params;

typedef struct {
    int32_t rank;
    int32_t shape[EK_MAX_DIMS];   /* output shape */
    int32_t stride[EK_MAX_DIMS];  /* input element stride per output axis */
    int32_t offset;               /* input element offset of output element 0 */
} ek_strided_copy_params;

typedef struct {
    int32_t outer;              /* product of the dims before the concat axis */
    int32_t num_inputs;
    const int32_t *in_blocks;   /* per input: its axis length times the inner dims */
    int32_t out_block;          /* sum of in_blocks */
} ek_concat_params;

enum { EK_PAD_CONSTANT = 0, EK_PAD_REFLECT = 1, EK_PAD_EDGE = 2, EK_PAD_WRAP = 3 };

typedef struct {
    int32_t rank;
    int32_t in_shape[EK_MAX_DIMS];
    int32_t out_shape[EK_MAX_DIMS];
    int32_t pad_begin[EK_MAX_DIMS];  /* may be negative (cropping) */
    int32_t mode;                    /* EK_PAD_* */
    float value;                     /* constant mode fill value */
} ek_pad_params;

void ek_copy_f32(const ek_copy_params *p, const float *in, float *out);
/* The same for int8 tensors (size in elements = bytes). */
void ek_copy_s8(const ek_copy_params *p, const int8_t *in, int8_t *out);
void ek_strided_copy_f32(const ek_strided_copy_params *p, const float *in, float *out);
void ek_strided_copy_s8(const ek_strided_copy_params *p, const int8_t *in, int8_t *out);
void ek_concat_f32(const ek_concat_params *p, const float *const *inputs, float *out);
void ek_pad_f32(const ek_pad_params *p, const float *in, float *out);

/* Gather along one axis with constant indices: input viewed as [outer][axis_len][inner], output
 * [outer][count][inner], out[o][i] = in[o][indices[i]] (indices normalised to >= 0). */
typedef struct {
    int32_t outer, axis_len, inner, count;
    const int32_t *indices;
} ek_gather_params;

void ek_gather_f32(const ek_gather_params *p, const float *in, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_TRANSFORM_H */
