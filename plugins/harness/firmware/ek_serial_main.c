/* ek_serial_main.c: the harness main, speaking edgekit's framed protocol (ek_frame.h) over the
 * board's UART: on a real board, and on the emulated boards of the qemu and serial runners.
 *
 * UART-fed (the default): on start the board sends 'R' (ready). The host drives: 'H' (hello) is
 * answered by 'H' with five uint32 (protocol version, input record bytes, output bytes, input count,
 * output count); 'I' carries one input record and is answered by 'O' (outputs then an
 * ek_record_trailer); 'Q' is acknowledged by 'Q' and ends the program (exit status 0: an 'X' frame,
 * then a reset). A bad frame is answered by 'E' with a text.
 *
 * RAM-fed (built with EK_IO_BASE and EK_IO_BYTES, for an emulated board whose loader put the input
 * records there before the start): a header of four uint32 (magic "EKIO", version, record count,
 * record bytes), then the records back to back. The board runs every record, sends its 'O' frame as
 * above, then 'Q' and exits; it reads nothing from the UART. A bad header is an 'F' frame.
 *
 * Either way a fault or stack overflow sends 'F' (see ek_transport_fail). */
#include <stdint.h>

#include "ek_frame.h"
#include "ek_harness.h"
#include "ek_uart.h"

#define EK_PROTOCOL_VERSION 2u

static uint32_t input_record_bytes(void)
{
    uint32_t total = 0;
    for (unsigned i = 0; i < ek_model.n_inputs; i++)
        total += ek_model.input_bytes[i];
    return total;
}

static uint32_t output_bytes(void)
{
    uint32_t total = 0;
    for (unsigned i = 0; i < ek_model.n_outputs; i++)
        total += ek_model.output_bytes[i];
    return total;
}

/* Where the next byte of an input record goes: records hold the input tensors back to back, in
 * metadata order. */
typedef struct {
    unsigned tensor;
    uint32_t offset;
} record_cursor;

static void record_put(record_cursor *at, uint8_t byte)
{
    while (at->tensor < ek_model.n_inputs && at->offset == ek_model.input_bytes[at->tensor]) {
        at->tensor++;
        at->offset = 0;
    }
    if (at->tensor < ek_model.n_inputs)
        ek_model.inputs[at->tensor][at->offset++] = byte;
}

#ifndef EK_IO_BASE
/* Reads a payload of `length` bytes: an input record goes straight into the input buffers,
 * anything else is consumed. Returns the running CRC. */
static uint32_t read_payload(uint32_t crc, uint32_t length, int into_inputs)
{
    record_cursor at = {0, 0};
    for (uint32_t i = 0; i < length; i++) {
        uint8_t byte = ek_uart_getc();
        crc = ek_crc_update(crc, byte);
        if (into_inputs)
            record_put(&at, byte);
    }
    return crc;
}
#endif

/* ---- the cycle counter (DWT), where the core has one; QEMU's reads 0 ---- */
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__) || \
    defined(__ARM_ARCH_8_1M_MAIN__)
#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
static void cycles_init(void)
{
    DEMCR |= 1u << 24;                 /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;                    /* CYCCNTENA */
}
static uint32_t cycles_now(void) { return DWT_CYCCNT; }
#else
static void cycles_init(void) {}
static uint32_t cycles_now(void) { return 0; }
#endif

static void run_record(void)
{
    ek_record_trailer trailer = {0, 0, 0, 0};
    ek_frame f;
    uint32_t start;
    ek_stack_paint();
    start = cycles_now();
    ek_harness_begin();
    trailer.status = (uint32_t)ek_model_invoke();
    ek_harness_end();
    trailer.cycles = cycles_now() - start;
    trailer.stack_bytes = ek_stack_used();
    if (ek_stack_overflowed())
        ek_transport_fail(EK_EXIT_STACK_OVERFLOW, "ek-harness: stack overflow: the model used more than "
                                                  "the reserved stack; reserve more with --option stack_bytes=N");
    ek_frame_begin(&f, 'O', output_bytes() + (uint32_t)sizeof trailer);
    for (unsigned i = 0; i < ek_model.n_outputs; i++)
        ek_frame_bytes(&f, ek_model.outputs[i], ek_model.output_bytes[i]);
    ek_frame_bytes(&f, (const uint8_t *)&trailer, (uint32_t)sizeof trailer);
    ek_frame_end(&f);
}

#ifdef EK_IO_BASE
/* ---- RAM-fed: the records the emulator's loader placed at EK_IO_BASE ---- */
#define EK_IO_MAGIC 0x4F494B45u        /* "EKIO" */
#define EK_IO_VERSION 1u
#define EK_IO_HEADER_BYTES 16u

static const uint8_t *const io = (const uint8_t *)EK_IO_BASE;

static uint32_t io_u32(uint32_t offset)
{
    return (uint32_t)io[offset] | (uint32_t)io[offset + 1] << 8 | (uint32_t)io[offset + 2] << 16 |
           (uint32_t)io[offset + 3] << 24;
}

int main(void)
{
    uint32_t count = io_u32(8), record_bytes = io_u32(12);
    cycles_init();
    if (io_u32(0) != EK_IO_MAGIC || io_u32(4) != EK_IO_VERSION)
        ek_transport_fail(EK_EXIT_IO, "ek-harness: no input records at io_base (bad header)");
    if (record_bytes != input_record_bytes() || record_bytes == 0)
        ek_transport_fail(EK_EXIT_IO, "ek-harness: the input records at io_base have the wrong size");
    if (count > ((uint32_t)EK_IO_BYTES - EK_IO_HEADER_BYTES) / record_bytes)
        ek_transport_fail(EK_EXIT_IO, "ek-harness: more input records than io_bytes holds");
    for (uint32_t r = 0; r < count; r++) {
        const uint8_t *record = io + EK_IO_HEADER_BYTES + r * record_bytes;
        record_cursor at = {0, 0};
        for (uint32_t i = 0; i < record_bytes; i++)
            record_put(&at, record[i]);
        run_record();
    }
    ek_frame_text('Q', "");
    return 0;
}
#else
/* ---- UART-fed: the host's frames ---- */
static void hello(void)
{
    ek_frame f;
    ek_frame_begin(&f, 'H', 20);
    ek_frame_u32(&f, EK_PROTOCOL_VERSION);
    ek_frame_u32(&f, input_record_bytes());
    ek_frame_u32(&f, output_bytes());
    ek_frame_u32(&f, ek_model.n_inputs);
    ek_frame_u32(&f, ek_model.n_outputs);
    ek_frame_end(&f);
}

/* Reads one uint32 (little-endian) from the UART, adding it to *crc unless crc is NULL. */
static uint32_t in_u32(uint32_t *crc)
{
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t byte = ek_uart_getc();
        if (crc)
            *crc = ek_crc_update(*crc, byte);
        value |= (uint32_t)byte << (8 * i);
    }
    return value;
}

int main(void)
{
    cycles_init();
    /* Some UARTs (the STM32 USART model) drop what arrives before they are enabled: the host waits
     * for this frame before it speaks. */
    ek_frame_text('R', "");
    for (;;) {
        uint32_t crc = 0xFFFFFFFFu, length, expected;
        uint8_t kind;
        if (ek_uart_getc() != EK_FRAME_SYNC0)
            continue;
        if (ek_uart_getc() != EK_FRAME_SYNC1)
            continue;
        kind = ek_uart_getc();
        crc = ek_crc_update(crc, kind);
        length = in_u32(&crc);
        crc = read_payload(crc, length, kind == 'I' && length == input_record_bytes());
        expected = in_u32(0);
        if (~crc != expected) {
            ek_frame_text('E', "bad CRC");
            continue;
        }
        if (kind == 'H') {
            hello();
        } else if (kind == 'I' && length == input_record_bytes()) {
            run_record();
        } else if (kind == 'I') {
            ek_frame_text('E', "input record of the wrong size");
        } else if (kind == 'Q') {
            ek_frame_text('Q', "");
            return 0;
        } else {
            ek_frame_text('E', "unknown frame kind");
        }
    }
}
#endif
