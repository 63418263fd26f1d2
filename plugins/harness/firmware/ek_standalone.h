/* ek_standalone.h: what the generated ek_standalone_data.c gives the standalone image's main
 * (ek_standalone_main.c): the verification inputs as const arrays, and how to print each output. */
#ifndef EK_STANDALONE_H
#define EK_STANDALONE_H

#include <stdint.h>

/* Element types of the model's tensors, as the library stores them. */
typedef enum {
    EK_DTYPE_FLOAT32 = 0,
    EK_DTYPE_INT8 = 1,
    EK_DTYPE_UINT8 = 2,
    EK_DTYPE_INT16 = 3,
    EK_DTYPE_INT32 = 4
} ek_dtype;

/* How one output is printed: its heading text (index, name, type, shape, quantization), then its
 * values. */
typedef struct {
    const char *heading;
    ek_dtype dtype;
    uint32_t count;
} ek_standalone_output;

extern const char ek_standalone_title[];           /* the first line: the model and the sample count */
extern const uint32_t ek_standalone_samples;
/* ek_standalone_inputs[sample * ek_model.n_inputs + input]: the input tensor's bytes as the library
 * takes them (ek_model.input_bytes[input] of them) */
extern const void *const ek_standalone_inputs[];
extern const ek_standalone_output ek_standalone_outputs[];   /* ek_model.n_outputs of them */

#endif /* EK_STANDALONE_H */
