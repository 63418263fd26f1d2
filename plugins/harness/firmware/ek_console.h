/* ek_console.h: plain text on the board's UART, for the standalone image (ek_console.c). */
#ifndef EK_CONSOLE_H
#define EK_CONSOLE_H

#include <stdint.h>

void ek_console_putc(char c);          /* "\n" goes out as "\r\n" */
void ek_console_puts(const char *text);
void ek_console_put_uint(uint32_t value);
void ek_console_put_int(int32_t value);
void ek_console_put_float(float value); /* "-1.23456791e+00": nine significant digits, "nan", "inf" */

#endif /* EK_CONSOLE_H */
