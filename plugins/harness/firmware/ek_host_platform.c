/* ek_host_platform.c: the host build's stand-ins for the firmware-only pieces. Stack use is not
 * measured on the host (AddressSanitizer owns the stack layout there). */
#include <stdio.h>
#include <stdlib.h>

#include "ek_harness.h"

void ek_stack_paint(void) {}
uint32_t ek_stack_used(void) { return 0; }
int ek_stack_overflowed(void) { return 0; }

void ek_transport_fail(uint32_t exit_code, const char *message)
{
    fputs(message, stderr);
    exit((int)exit_code);
}
