/* ek_frame.h: edgekit's frames over the board's UART, the firmware's only channel to the host.
 *
 * Frame: 0xEC 0x5A, kind (1 byte), payload length (uint32 LE), payload, CRC-32 (IEEE, uint32 LE)
 * over kind + length + payload. Besides the conversation of ek_serial_main.c the board sends, on its
 * own: 'R' (ready, empty) when it starts listening, 'T' (text written to stdout/stderr), 'X' (exit
 * status, uint32, from exit()/return from main) and 'F' (failure: uint32 exit code, then a one-line
 * text), then requests a system reset: under QEMU -no-reboot that ends the emulator.
 *
 * Why a UART and not semihosting: the harness runs generated, untrusted code. Semihosting would give
 * that code the host's files and shell (SYS_OPEN, SYS_SYSTEM); a UART only reaches the bytes the
 * host side chooses to read. */
#ifndef EK_FRAME_H
#define EK_FRAME_H

#include <stdint.h>

#define EK_FRAME_SYNC0 0xECu
#define EK_FRAME_SYNC1 0x5Au

typedef struct {
    uint32_t crc;
} ek_frame;

uint32_t ek_crc_update(uint32_t crc, uint8_t byte);
void ek_frame_begin(ek_frame *f, uint8_t kind, uint32_t length);
void ek_frame_u32(ek_frame *f, uint32_t value);
void ek_frame_bytes(ek_frame *f, const uint8_t *data, uint32_t size);
void ek_frame_end(ek_frame *f);
void ek_frame_text(uint8_t kind, const char *text);   /* a whole frame holding a NUL-terminated text */

#endif /* EK_FRAME_H */
