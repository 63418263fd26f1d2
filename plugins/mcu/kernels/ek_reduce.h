/* ek_reduce.h: ReduceMean/ReduceSum/ReduceMax/ReduceMin over any set of axes. The generator gives the input shape
 * and, per input axis, the output element stride (0 on reduced axes); the kernel accumulates every
 * input row into the output with an odometer, then scales by `scale` (1/count for the mean). */
#ifndef EK_REDUCE_H
#define EK_REDUCE_H

#include "ek_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t rank;
    int32_t shape[EK_MAX_DIMS];       /* input shape */
    int32_t out_stride[EK_MAX_DIMS];  /* output element stride per input axis, 0 if reduced */
    int32_t out_size;
    float scale;
} ek_reduce_params;

/* ReduceMean (scale = 1/count) and ReduceSum (scale = 1). */
void ek_reduce_mean_f32(const ek_reduce_params *p, const float *in, float *out);
/* ReduceMax / ReduceMin (scale unused). */
void ek_reduce_max_f32(const ek_reduce_params *p, const float *in, float *out);
void ek_reduce_min_f32(const ek_reduce_params *p, const float *in, float *out);

#ifdef __cplusplus
}
#endif

#endif /* EK_REDUCE_H */
