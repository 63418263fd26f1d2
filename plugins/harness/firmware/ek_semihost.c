/* ek_semihost.c: the semihosting transport (QEMU -semihosting, or a debugger): newlib's rdimon
 * gives files on the host; faults are printed with SYS_WRITE0 and end the program with
 * SYS_EXIT_EXTENDED so the host sees the exit status (EK_EXIT_FAULT...). */
#include <stdint.h>

#include "ek_harness.h"

extern void initialise_monitor_handles(void);

#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static int semihost_call(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void ek_transport_init(void)
{
    initialise_monitor_handles();
}

void ek_transport_fail(uint32_t exit_code, const char *message)
{
    /* Straight to the monitor: stdio may be what broke. */
    static uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, 0};
    block[1] = exit_code;
    semihost_call(SYS_WRITE0, message);
    semihost_call(SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}
