/* ek_standalone_main.c: the main of the standalone image. The verification inputs are linked in
 * (ek_standalone_data.c, generated); the image runs the model once per sample and prints the
 * outputs as text on the board's UART, then ends with a system reset (QEMU -no-reboot exits):
 *
 *   edgekit: <title>
 *   sample 0: status 0, stack 500 bytes
 *   output 0 'y': float32 [1, 5]
 *     1.00000000e+00 -2.50000000e-01 ...        (eight values a line)
 *   ...
 *   edgekit: done
 *
 * A quantized output (int8 I/O) prints its integers, its heading names the scale and zero point.
 * A sample whose run function returns non-zero is still printed; the last line then says how many
 * failed, and the exit status is 1. A fault or stack overflow prints "error: ..." (ek_console.c). */
#include <stdint.h>
#include <string.h>

#include "ek_console.h"
#include "ek_harness.h"
#include "ek_standalone.h"

#define VALUES_PER_LINE 8u

/* One element of an output buffer (copied out: the buffer is bytes, the element may be wider). */
static void put_value(const uint8_t *data, ek_dtype dtype, uint32_t index)
{
    switch (dtype) {
    case EK_DTYPE_FLOAT32: {
        float v;
        memcpy(&v, data + 4u * index, sizeof v);
        ek_console_put_float(v);
        break;
    }
    case EK_DTYPE_INT8:
        ek_console_put_int((int8_t)data[index]);
        break;
    case EK_DTYPE_UINT8:
        ek_console_put_uint(data[index]);
        break;
    case EK_DTYPE_INT16: {
        int16_t v;
        memcpy(&v, data + 2u * index, sizeof v);
        ek_console_put_int(v);
        break;
    }
    case EK_DTYPE_INT32: {
        int32_t v;
        memcpy(&v, data + 4u * index, sizeof v);
        ek_console_put_int(v);
        break;
    }
    }
}

static void put_output(unsigned index)
{
    const ek_standalone_output *out = &ek_standalone_outputs[index];
    ek_console_puts(out->heading);
    for (uint32_t i = 0; i < out->count; i++) {
        ek_console_puts(i % VALUES_PER_LINE == 0 ? "\n  " : " ");
        put_value(ek_model.outputs[index], out->dtype, i);
    }
    ek_console_putc('\n');
}

int main(void)
{
    uint32_t failed = 0;
    ek_console_puts("edgekit: ");
    ek_console_puts(ek_standalone_title);
    ek_console_putc('\n');
    for (uint32_t sample = 0; sample < ek_standalone_samples; sample++) {
        int status;
        uint32_t stack;
        for (unsigned i = 0; i < ek_model.n_inputs; i++)
            memcpy(ek_model.inputs[i], ek_standalone_inputs[sample * ek_model.n_inputs + i], ek_model.input_bytes[i]);
        ek_stack_paint();
        ek_harness_begin();
        status = ek_model_invoke();
        ek_harness_end();
        stack = ek_stack_used();
        if (ek_stack_overflowed())
            ek_transport_fail(EK_EXIT_STACK_OVERFLOW, "stack overflow: the model used more than the reserved "
                                                      "stack; reserve more with --option stack_bytes=N");
        if (status != 0)
            failed++;
        ek_console_puts("sample ");
        ek_console_put_uint(sample);
        ek_console_puts(": status ");
        ek_console_put_int(status);
        ek_console_puts(", stack ");
        ek_console_put_uint(stack);
        ek_console_puts(" bytes\n");
        for (unsigned o = 0; o < ek_model.n_outputs; o++)
            put_output(o);
    }
    if (failed) {
        ek_console_puts("edgekit: ");
        ek_console_put_uint(failed);
        ek_console_puts(" of ");
        ek_console_put_uint(ek_standalone_samples);
        ek_console_puts(" samples failed (status other than 0)\n");
        return 1;
    }
    ek_console_puts("edgekit: done\n");
    return 0;
}
