/* ek_uart_stm32.c: polled driver for the STM32F2/F4 USART (USART1 at 0x40011000 on the STM32F405 of
 * QEMU's netduinoplus2, its serial0). Registers: SR (bit 5 RXNE, bit 6 TC, bit 7 TXE), DR, BRR, CR1
 * (bit 13 UE, bit 3 TE, bit 2 RE). QEMU models no clocks, so the RCC enable is not needed there; a
 * real board port enables the USART's clock and pins first. */
#include "ek_uart.h"

#ifndef EK_UART_BASE
#define EK_UART_BASE 0x40011000u
#endif
#ifndef EK_UART_BRR
#define EK_UART_BRR 0x2D9u             /* 84 MHz APB2 / 115200 baud (16x oversampling) */
#endif

#define UART_REG(offset) (*(volatile uint32_t *)(EK_UART_BASE + (offset)))
#define USART_SR UART_REG(0x00u)
#define USART_DR UART_REG(0x04u)
#define USART_BRR UART_REG(0x08u)
#define USART_CR1 UART_REG(0x0Cu)
#define SR_RXNE 0x20u
#define SR_TC 0x40u
#define SR_TXE 0x80u

/* TIM2 (0x40000000), free running, no interrupt: wakes QEMU's main loop (see ek_uart_cmsdk.c). */
#define TIM2_REG(offset) (*(volatile uint32_t *)(0x40000000u + (offset)))

void ek_uart_init(void)
{
    USART_BRR = EK_UART_BRR;
    USART_CR1 = (1u << 13) | (1u << 3) | (1u << 2);   /* UE, TE, RE; no interrupts */
    TIM2_REG(0x28u) = 0u;              /* PSC */
    TIM2_REG(0x2Cu) = 1000000u;        /* ARR: 1 ms at QEMU's 1 GHz timer clock */
    TIM2_REG(0x00u) = 1u;              /* CR1: CEN */
}

void ek_uart_putc(uint8_t byte)
{
    while (!(USART_SR & SR_TXE)) {
    }
    USART_DR = byte;
}

uint8_t ek_uart_getc(void)
{
    while (!(USART_SR & SR_RXNE)) {
    }
    return (uint8_t)USART_DR;
}

void ek_uart_flush(void)
{
    while (!(USART_SR & SR_TC)) {
    }
}
