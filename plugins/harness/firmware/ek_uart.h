/* ek_uart.h: the byte transport the harness firmware needs. ek_uart_cmsdk.c implements it for the Arm
 * CMSDK APB UART (MPS2 boards), ek_uart_stm32.c for the STM32 USART (netduinoplus2); a board port
 * provides its own file with the same four functions. */
#ifndef EK_UART_H
#define EK_UART_H

#include <stdint.h>

void ek_uart_init(void);
void ek_uart_putc(uint8_t byte);
uint8_t ek_uart_getc(void);            /* blocks until a byte arrives */
void ek_uart_flush(void);              /* returns when every byte put has left the transmitter */

#endif /* EK_UART_H */
