/* ek_console.c: the standalone image's ways out, as plain text on the board's UART (the harness
 * images send frames instead: ek_frame.c). A terminal shows the text as it is; a line ends in
 * "\r\n", because QEMU puts the terminal of -nographic into raw mode, where "\n" alone only moves
 * down a line.
 *
 * ek_transport_fail prints "error: <message>", exit() prints the status when it is not 0; both then
 * request a system reset, which ends QEMU run with -no-reboot. */
#include <stdint.h>

#include "ek_console.h"
#include "ek_harness.h"
#include "ek_uart.h"

void ek_console_putc(char c)
{
    if (c == '\n')
        ek_uart_putc('\r');
    ek_uart_putc((uint8_t)c);
}

void ek_console_puts(const char *text)
{
    while (*text)
        ek_console_putc(*text++);
}

void ek_console_put_uint(uint32_t value)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value);
    while (n)
        ek_console_putc(digits[--n]);
}

void ek_console_put_int(int32_t value)
{
    if (value < 0) {
        ek_console_putc('-');
        ek_console_put_uint(0u - (uint32_t)value);   /* INT32_MIN too */
    } else {
        ek_console_put_uint((uint32_t)value);
    }
}

/* Nine significant digits (printf's "%.8e"): enough to give back the float exactly. No printf: newlib's
 * float formatting needs its heap and an extra link flag; this needs neither. The scaling in double
 * (software on an FPU that only has single precision) errs by far less than the last digit. */
void ek_console_put_float(float value)
{
    union {
        float f;
        uint32_t u;
    } bits;
    double x;
    uint32_t digits;
    int exponent = 0;

    bits.f = value;
    if (bits.u >> 31)
        ek_console_putc('-');
    if ((bits.u & 0x7F800000u) == 0x7F800000u) {
        ek_console_puts((bits.u & 0x007FFFFFu) ? "nan" : "inf");
        return;
    }
    x = (double)value;
    if (x < 0)
        x = -x;
    if (x == 0.0) {
        ek_console_puts("0.00000000e+00");
        return;
    }
    while (x >= 10.0) {
        x /= 10.0;
        exponent++;
    }
    while (x < 1.0) {
        x *= 10.0;
        exponent--;
    }
    digits = (uint32_t)(x * 1e8 + 0.5);
    if (digits >= 1000000000u) {       /* 9.999999995 and above rounds up to 10 */
        digits = 100000000u;
        exponent++;
    }
    ek_console_putc((char)('0' + digits / 100000000u));
    ek_console_putc('.');
    for (uint32_t scale = 10000000u; scale; scale /= 10u)
        ek_console_putc((char)('0' + digits / scale % 10u));
    ek_console_putc('e');
    ek_console_putc(exponent < 0 ? '-' : '+');
    if (exponent < 0)
        exponent = -exponent;
    ek_console_putc((char)('0' + exponent / 10));
    ek_console_putc((char)('0' + exponent % 10));
}

void ek_transport_init(void)
{
    ek_uart_init();
}

void ek_transport_fail(uint32_t exit_code, const char *message)
{
    const char *end = message;
    while (*end)
        end++;
    ek_console_puts("error: ");
    ek_console_puts(message);
    if (end == message || end[-1] != '\n')   /* the start-up code's messages end in "\n" already */
        ek_console_putc('\n');
    ek_console_puts("exit status ");
    ek_console_put_uint(exit_code);
    ek_console_putc('\n');
    ek_system_reset();
}

/* newlib's exit() ends here (nosys.specs would loop forever). */
void _exit(int status);
void _exit(int status)
{
    if (status != 0) {
        ek_console_puts("exit status ");
        ek_console_put_int((int32_t)status);
        ek_console_putc('\n');
    }
    ek_system_reset();
}

/* printf and friends (stdout, stderr), should a library use them: the text as it is. */
int _write(int fd, const char *data, int size);
int _write(int fd, const char *data, int size)
{
    if (fd != 1 && fd != 2)
        return -1;
    for (int i = 0; i < size; i++)
        ek_console_putc(data[i]);
    return size;
}
