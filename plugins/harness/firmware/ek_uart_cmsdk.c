/* ek_uart_cmsdk.c: polled driver for the Arm CMSDK APB UART (UART0 of the MPS2 AN385/AN386/AN500
 * boards at 0x40004000). Registers: DATA, STATE (bit 0 TX full, bit 1 RX full), CTRL (bit 0 TX
 * enable, bit 1 RX enable), INTSTATUS, BAUDDIV (>= 16). */
#include "ek_uart.h"

#ifndef EK_UART_BASE
#define EK_UART_BASE 0x40004000u
#endif
#ifndef EK_UART_BAUDDIV
#define EK_UART_BAUDDIV 217u           /* 25 MHz / 115200 baud */
#endif

#define UART_REG(offset) (*(volatile uint32_t *)(EK_UART_BASE + (offset)))
#define UART_DATA UART_REG(0x00u)
#define UART_STATE UART_REG(0x04u)
#define UART_CTRL UART_REG(0x08u)
#define UART_BAUDDIV UART_REG(0x10u)
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u

/* CMSDK TIMER0 (MPS2: 0x40000000), free running, no interrupt. QEMU 7.2 can miss the moment its
 * UART may take the next input byte and sleep until some other event; with no network backend
 * nothing else wakes it. A running timer wakes QEMU's main loop every millisecond. */
#define TIMER_REG(offset) (*(volatile uint32_t *)(0x40000000u + (offset)))

void ek_uart_init(void)
{
    UART_BAUDDIV = EK_UART_BAUDDIV;
    UART_CTRL = 0x3u;                  /* TX and RX enabled, no interrupts */
    TIMER_REG(0x08u) = 25000u;         /* RELOAD: 1 ms at 25 MHz */
    TIMER_REG(0x04u) = 25000u;         /* VALUE */
    TIMER_REG(0x00u) = 0x1u;           /* CTRL: enable, no interrupt */
}

void ek_uart_putc(uint8_t byte)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = byte;
}

uint8_t ek_uart_getc(void)
{
    while (!(UART_STATE & STATE_RX_FULL)) {
    }
    return (uint8_t)UART_DATA;
}

void ek_uart_flush(void)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
}
