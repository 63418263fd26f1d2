/* ek_file_main.c: the file-protocol harness main of the host build (plain files; the host runner).
 * Firmware speaks frames over its UART instead (ek_serial_main.c).
 *
 * Protocol: EK_INPUT_FILE holds records back to back, each the model's inputs in order (raw bytes);
 * for every record, EK_OUTPUT_FILE receives the outputs in order followed by an ek_record_trailer.
 * One image is fed any number of records without rebuilding. */
#include <stdio.h>

#include "ek_harness.h"

#ifndef EK_INPUT_FILE
#define EK_INPUT_FILE "ek_inputs.bin"
#endif
#ifndef EK_OUTPUT_FILE
#define EK_OUTPUT_FILE "ek_outputs.bin"
#endif

/* Reads one record; returns 1 for a record, 0 at a clean end of file, -1 inside a record. */
static int read_record(FILE *in)
{
    for (unsigned i = 0; i < ek_model.n_inputs; i++) {
        size_t got = fread(ek_model.inputs[i], 1, ek_model.input_bytes[i], in);
        if (got != ek_model.input_bytes[i])
            return (i == 0 && got == 0) ? 0 : -1;
    }
    return 1;
}

static int write_record(FILE *out, const ek_record_trailer *trailer)
{
    for (unsigned i = 0; i < ek_model.n_outputs; i++)
        if (fwrite(ek_model.outputs[i], 1, ek_model.output_bytes[i], out) != ek_model.output_bytes[i])
            return -1;
    return fwrite(trailer, sizeof *trailer, 1, out) == 1 ? 0 : -1;
}

int main(void)
{
    FILE *in = fopen(EK_INPUT_FILE, "rb");
    FILE *out = fopen(EK_OUTPUT_FILE, "wb");
    int got;

    if (!in || !out) {
        fputs("ek-harness: cannot open " EK_INPUT_FILE " or " EK_OUTPUT_FILE "\n", stderr);
        return EK_EXIT_IO;
    }
    /* Unbuffered: no stdio buffers on the small heap, records go straight through. */
    setvbuf(in, NULL, _IONBF, 0);
    setvbuf(out, NULL, _IONBF, 0);
    while ((got = read_record(in)) == 1) {
        ek_record_trailer trailer = {0, 0, 0, 0};
        ek_stack_paint();
        ek_harness_begin();
        trailer.status = (uint32_t)ek_model_invoke();
        ek_harness_end();
        trailer.stack_bytes = ek_stack_used();
        if (ek_stack_overflowed()) /* the heap below the stack may be damaged: no more stdio */
            ek_transport_fail(EK_EXIT_STACK_OVERFLOW, "ek-harness: stack overflow: the model used more "
                                                      "than the reserved stack; reserve more with --option stack_bytes=N\n");
        if (write_record(out, &trailer) != 0) {
            fputs("ek-harness: cannot write " EK_OUTPUT_FILE "\n", stderr);
            return EK_EXIT_IO;
        }
    }
    fclose(in);
    fclose(out);
    if (got < 0) {
        fputs("ek-harness: " EK_INPUT_FILE " ends inside a record\n", stderr);
        return EK_EXIT_SHORT_RECORD;
    }
    return EK_EXIT_OK;
}
