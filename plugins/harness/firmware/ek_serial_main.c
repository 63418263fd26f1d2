/* ek_serial_main.c: the harness main for a board on a UART, speaking edgekit's framed protocol.
 *
 * Frame: 0xEC 0x5A, kind (1 byte), payload length (uint32 LE), payload, CRC-32 (IEEE, uint32 LE)
 * over kind + length + payload. The host drives: 'H' (hello) is answered by 'H' with five uint32
 * (protocol version, input record bytes, output bytes, input count, output count); 'I' carries one
 * input record and is answered by 'O' (outputs then an ek_record_trailer); 'Q' is acknowledged by
 * 'Q' and ends the program. A bad frame is answered by 'E' with a text; a fault sends 'F'. */
#include <stdint.h>

#include "ek_harness.h"
#include "ek_uart.h"

#define EK_PROTOCOL_VERSION 1u
#define SYNC0 0xECu
#define SYNC1 0x5Au

/* ---- CRC-32 (IEEE 802.3, reflected, bitwise: no table in flash) ---- */
static uint32_t crc_update(uint32_t crc, uint8_t byte)
{
    crc ^= byte;
    for (int bit = 0; bit < 8; bit++)
        crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    return crc;
}

typedef struct {
    uint32_t crc;
} frame_out;

static void out_byte(frame_out *f, uint8_t byte)
{
    f->crc = crc_update(f->crc, byte);
    ek_uart_putc(byte);
}

static void out_u32(frame_out *f, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        out_byte(f, (uint8_t)(value >> (8 * i)));
}

static void out_bytes(frame_out *f, const uint8_t *data, uint32_t size)
{
    for (uint32_t i = 0; i < size; i++)
        out_byte(f, data[i]);
}

static void frame_begin(frame_out *f, uint8_t kind, uint32_t length)
{
    ek_uart_putc(SYNC0);
    ek_uart_putc(SYNC1);
    f->crc = 0xFFFFFFFFu;
    out_byte(f, kind);
    out_u32(f, length);
}

static void frame_end(frame_out *f)
{
    uint32_t crc = ~f->crc;
    for (int i = 0; i < 4; i++)
        ek_uart_putc((uint8_t)(crc >> (8 * i)));
}

static uint32_t text_length(const char *text)
{
    uint32_t n = 0;
    while (text[n])
        n++;
    return n;
}

static void send_text(uint8_t kind, const char *text)
{
    frame_out f;
    uint32_t n = text_length(text);
    frame_begin(&f, kind, n);
    out_bytes(&f, (const uint8_t *)text, n);
    frame_end(&f);
}

/* ---- receiving ---- */
static uint32_t in_u32(uint32_t *crc)
{
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t byte = ek_uart_getc();
        if (crc)
            *crc = crc_update(*crc, byte);
        value |= (uint32_t)byte << (8 * i);
    }
    return value;
}

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

/* Reads a payload of `length` bytes: an input record goes straight into the input buffers,
 * anything else is consumed. Returns the running CRC. */
static uint32_t read_payload(uint32_t crc, uint32_t length, int into_inputs)
{
    unsigned tensor = 0;
    uint32_t offset = 0;
    for (uint32_t i = 0; i < length; i++) {
        uint8_t byte = ek_uart_getc();
        crc = crc_update(crc, byte);
        if (!into_inputs)
            continue;
        while (tensor < ek_model.n_inputs && offset == ek_model.input_bytes[tensor]) {
            tensor++;
            offset = 0;
        }
        if (tensor < ek_model.n_inputs)
            ek_model.inputs[tensor][offset++] = byte;
    }
    return crc;
}

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

void ek_transport_init(void)
{
    ek_uart_init();
    cycles_init();
}

void ek_transport_fail(uint32_t exit_code, const char *message)
{
    (void)exit_code;                   /* the frame kind says it: the host cannot see an exit status */
    send_text('F', message);
    for (;;) {
    }
}

static void run_record(void)
{
    ek_record_trailer trailer = {0, 0, 0, 0};
    frame_out f;
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
    frame_begin(&f, 'O', output_bytes() + (uint32_t)sizeof trailer);
    for (unsigned i = 0; i < ek_model.n_outputs; i++)
        out_bytes(&f, ek_model.outputs[i], ek_model.output_bytes[i]);
    out_bytes(&f, (const uint8_t *)&trailer, (uint32_t)sizeof trailer);
    frame_end(&f);
}

int main(void)
{
    for (;;) {
        uint32_t crc = 0xFFFFFFFFu, length, expected;
        uint8_t kind;
        if (ek_uart_getc() != SYNC0)
            continue;
        if (ek_uart_getc() != SYNC1)
            continue;
        kind = ek_uart_getc();
        crc = crc_update(crc, kind);
        length = in_u32(&crc);
        crc = read_payload(crc, length, kind == 'I' && length == input_record_bytes());
        expected = in_u32(0);
        if (~crc != expected) {
            send_text('E', "bad CRC");
            continue;
        }
        if (kind == 'H') {
            frame_out f;
            frame_begin(&f, 'H', 20);
            out_u32(&f, EK_PROTOCOL_VERSION);
            out_u32(&f, input_record_bytes());
            out_u32(&f, output_bytes());
            out_u32(&f, ek_model.n_inputs);
            out_u32(&f, ek_model.n_outputs);
            frame_end(&f);
        } else if (kind == 'I' && length == input_record_bytes()) {
            run_record();
        } else if (kind == 'I') {
            send_text('E', "input record of the wrong size");
        } else if (kind == 'Q') {
            send_text('Q', "");
            return 0;
        } else {
            send_text('E', "unknown frame kind");
        }
    }
}
