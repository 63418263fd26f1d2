/* ek_uart.h: the byte transport the serial harness needs. ek_uart_cmsdk.c implements it for the Arm
 * CMSDK APB UART (MPS2 boards); a board port provides its own file with the same three functions. */
#ifndef EK_UART_H
#define EK_UART_H

#include <stdint.h>

void ek_uart_init(void);
void ek_uart_putc(uint8_t byte);
uint8_t ek_uart_getc(void);            /* blocks until a byte arrives */

#endif /* EK_UART_H */
