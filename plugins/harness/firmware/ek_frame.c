/* ek_frame.c: frames over the UART (see ek_frame.h), and the firmware's ways out through them:
 * ek_transport_fail ('F'), exit ('X'), stdout/stderr ('T'). No semihosting, no host calls of any
 * kind: the emulator ends when the firmware requests a system reset (ek_system_reset, ek_startup.c). */
#include <stddef.h>
#include <stdint.h>

#include "ek_frame.h"
#include "ek_harness.h"
#include "ek_uart.h"

/* CRC-32 (IEEE 802.3, reflected, bitwise: no table in flash). */
uint32_t ek_crc_update(uint32_t crc, uint8_t byte)
{
    crc ^= byte;
    for (int bit = 0; bit < 8; bit++)
        crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    return crc;
}

static void frame_byte(ek_frame *f, uint8_t byte)
{
    f->crc = ek_crc_update(f->crc, byte);
    ek_uart_putc(byte);
}

void ek_frame_begin(ek_frame *f, uint8_t kind, uint32_t length)
{
    ek_uart_putc(EK_FRAME_SYNC0);
    ek_uart_putc(EK_FRAME_SYNC1);
    f->crc = 0xFFFFFFFFu;
    frame_byte(f, kind);
    ek_frame_u32(f, length);
}

void ek_frame_u32(ek_frame *f, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        frame_byte(f, (uint8_t)(value >> (8 * i)));
}

void ek_frame_bytes(ek_frame *f, const uint8_t *data, uint32_t size)
{
    for (uint32_t i = 0; i < size; i++)
        frame_byte(f, data[i]);
}

void ek_frame_end(ek_frame *f)
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

void ek_frame_text(uint8_t kind, const char *text)
{
    ek_frame f;
    uint32_t n = text_length(text);
    ek_frame_begin(&f, kind, n);
    ek_frame_bytes(&f, (const uint8_t *)text, n);
    ek_frame_end(&f);
}

void ek_transport_init(void)
{
    ek_uart_init();
}

void ek_transport_fail(uint32_t exit_code, const char *message)
{
    ek_frame f;
    uint32_t n = text_length(message);
    ek_frame_begin(&f, 'F', 4u + n);
    ek_frame_u32(&f, exit_code);
    ek_frame_bytes(&f, (const uint8_t *)message, n);
    ek_frame_end(&f);
    ek_system_reset();
}

/* newlib's exit() ends here (nosys.specs would loop forever): the status travels as an 'X' frame. */
void _exit(int status);
void _exit(int status)
{
    ek_frame f;
    ek_frame_begin(&f, 'X', 4u);
    ek_frame_u32(&f, (uint32_t)status);
    ek_frame_end(&f);
    ek_system_reset();
}

/* printf and friends (stdout, stderr) reach the host as 'T' frames. */
int _write(int fd, const char *data, int size);
int _write(int fd, const char *data, int size)
{
    ek_frame f;
    if (fd != 1 && fd != 2)
        return -1;
    ek_frame_begin(&f, 'T', (uint32_t)size);
    ek_frame_bytes(&f, (const uint8_t *)data, (uint32_t)size);
    ek_frame_end(&f);
    return size;
}
