/* ek_startup.c: Cortex-M start-up for the harness firmware (ARMv6-M and ARMv7-M/ARMv8-M).
 *
 * Vector table, Reset_Handler (copy .data, zero .bss, enable the FPU through CPACR when the code
 * uses it, start the transport, exit(main())), the system reset every image ends with, one fault
 * handler that names the fault and the faulting PC, and stack painting: the free stack is filled
 * with a pattern before an inference and scanned afterwards for the lowest word that changed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ek_harness.h"
#include "ek_uart.h"

/* Linker-script symbols (ek_firmware.ld). */
extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_limit[], __stack_top[];
extern void __ek_initial_sp(void);     /* same address as __stack_top, typed for the vector table */

void Reset_Handler(void);
void ek_fault_entry(void);
void ek_unexpected_handler(void);
void ek_transport_init(void);           /* the transport's start-up (the UART) */
int main(void);

/* newlib's exit path calls these; crti/crtn are not linked (-nostartfiles). */
void _init(void) {}
void _fini(void) {}

typedef void (*ek_vector)(void);

__attribute__((section(".isr_vector"), used))
const ek_vector ek_vectors[16] = {
    __ek_initial_sp,
    Reset_Handler,
    ek_fault_entry,        /* NMI */
    ek_fault_entry,        /* HardFault */
    ek_fault_entry,        /* MemManage (escalates to HardFault unless enabled) */
    ek_fault_entry,        /* BusFault */
    ek_fault_entry,        /* UsageFault */
    0, 0, 0, 0,
    ek_unexpected_handler, /* SVCall */
    ek_unexpected_handler, /* DebugMonitor */
    0,
    ek_unexpected_handler, /* PendSV */
    ek_unexpected_handler, /* SysTick */
};

void Reset_Handler(void)
{
    size_t data_bytes = (size_t)((uint8_t *)__data_end - (uint8_t *)__data_start);
    size_t bss_bytes = (size_t)((uint8_t *)__bss_end - (uint8_t *)__bss_start);
    memcpy(__data_start, __data_load, data_bytes);
    memset(__bss_start, 0, bss_bytes);
#if defined(__ARM_FP)
    /* CPACR: full access to CP10 and CP11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    ek_transport_init();
    exit(main());
}

/* ---- the end: a system reset, which QEMU -no-reboot turns into its exit ---- */

void ek_system_reset(void)
{
    ek_uart_flush();
    __asm__ volatile("dsb" ::: "memory");
    *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u;   /* AIRCR: VECTKEY | SYSRESETREQ */
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
    }
}

/* ---- faults ---- */

/* The naked entry passes the exception frame (on MSP: the harness never switches to PSP). */
__attribute__((naked)) void ek_fault_entry(void)
{
    __asm__ volatile(
        "mrs r0, msp\n\t"
        "ldr r1, =ek_fault_report\n\t"
        "bx r1\n\t"
        ".ltorg\n\t");
}

static char *put_text(char *p, const char *text)
{
    while (*text)
        *p++ = *text++;
    return p;
}

static char *put_hex(char *p, uint32_t value)
{
    static const char digits[] = "0123456789abcdef";
    p = put_text(p, "0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        *p++ = digits[(value >> shift) & 0xFu];
    return p;
}

__attribute__((used, noreturn)) void ek_fault_report(const uint32_t *frame)
{
    static const char *const names[] = {"thread", "reset", "NMI", "HardFault", "MemManage", "BusFault",
                                        "UsageFault"};
    static char message[160];
    uint32_t ipsr;
    char *p = message;

    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    ipsr &= 0x1FFu;
    p = put_text(p, "ek-harness: ");
    p = put_text(p, ipsr < 7 ? names[ipsr] : "exception");
    p = put_text(p, " at pc=");
    p = put_hex(p, frame[6]);
    p = put_text(p, " lr=");
    p = put_hex(p, frame[5]);
#if !defined(__ARM_ARCH_6M__)
    p = put_text(p, " cfsr=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED28u);
    p = put_text(p, " hfsr=");
    p = put_hex(p, *(volatile uint32_t *)0xE000ED2Cu);
#endif
    p = put_text(p, "\n");
    *p = '\0';
    ek_transport_fail(EK_EXIT_FAULT, message);
    for (;;) {
    }
}

void ek_unexpected_handler(void)
{
    ek_transport_fail(EK_EXIT_FAULT, "ek-harness: unexpected exception (SVC, PendSV or SysTick)\n");
    for (;;) {
    }
}

/* ---- stack painting ---- */

#define EK_STACK_PAINT 0xC5C5C5C5u
#define EK_STACK_GUARD_WORDS 8u

static uintptr_t paint_top;   /* the stack pointer when painting started */

__attribute__((noinline)) void ek_stack_paint(void)
{
    volatile uint32_t *word = __stack_limit;
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    paint_top = sp & ~(uintptr_t)3;
    while ((uintptr_t)word < paint_top)
        *word++ = EK_STACK_PAINT;
}

uint32_t ek_stack_used(void)
{
    const volatile uint32_t *word = __stack_limit;
    while ((uintptr_t)word < paint_top && *word == EK_STACK_PAINT)
        word++;
    return (uint32_t)(paint_top - (uintptr_t)word);
}

int ek_stack_overflowed(void)
{
    const volatile uint32_t *word = __stack_limit;
    for (uint32_t i = 0; i < EK_STACK_GUARD_WORDS; i++)
        if (word[i] != EK_STACK_PAINT)
            return 1;
    return 0;
}
