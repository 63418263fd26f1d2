/* ek_harness.h: the contract between the harness main loops, the generated model table and the
 * per-transport pieces (UART frames on firmware, files on the host build). */
#ifndef EK_HARNESS_H
#define EK_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* The model's buffers, generated from the back end's metadata (ek_model_table.c). */
typedef struct {
    unsigned n_inputs;
    unsigned n_outputs;
    const uint32_t *input_bytes;
    const uint32_t *output_bytes;
    uint8_t *const *inputs;
    uint8_t *const *outputs;
} ek_model_io;

extern const ek_model_io ek_model;
int ek_model_invoke(void);             /* one inference: <name>_run_io(inputs, outputs, arena) */

/* Marker functions: never inlined, their entry addresses are what the counting plugin watches. */
void ek_harness_begin(void);
void ek_harness_end(void);
void ek_profile_mark(void);

/* Stack measurement by painting (firmware only; the host build returns 0). */
void ek_stack_paint(void);
uint32_t ek_stack_used(void);          /* bytes used below the paint point since ek_stack_paint() */
int ek_stack_overflowed(void);         /* the guard words at the stack limit were overwritten */

/* Per-record trailer written after the outputs: what the host reads back besides the tensors. */
typedef struct {
    uint32_t status;                   /* the run function's return value (0: success) */
    uint32_t stack_bytes;
    uint32_t cycles;                   /* DWT cycle counter on real silicon; 0 when unavailable */
    uint32_t reserved;
} ek_record_trailer;

/* Exit codes the runners recognise (besides the model's own status). */
#define EK_EXIT_OK 0
#define EK_EXIT_IO 3                   /* inputs unreadable: an I/O file (host), a bad loaded header (RAM-fed) */
#define EK_EXIT_SHORT_RECORD 4         /* the input file ended inside a record */
#define EK_EXIT_STACK_OVERFLOW 98
#define EK_EXIT_FAULT 99

/* Firmware only (ek_startup.c): sends the UART's last bytes, then requests a system reset
 * (SYSRESETREQ); QEMU runs with -no-reboot, so that ends the emulator. */
__attribute__((noreturn)) void ek_system_reset(void);

/* Implemented by the transport: report a failure (EK_EXIT_FAULT, EK_EXIT_STACK_OVERFLOW...) with a
 * one-line message and stop; never returns. Must not rely on stdio or the heap: they may be broken. */
void ek_transport_fail(uint32_t exit_code, const char *message);

#endif /* EK_HARNESS_H */
