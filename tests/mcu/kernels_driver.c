/* kernels_driver.c: host test driver for the conv/gemm kernels, built with
 * -fsanitize=address,undefined. Reads records from stdin until EOF and writes each result to
 * stdout as raw float32. Every buffer is malloc'ed with its exact size so any out-of-bounds
 * access is reported. Record (little-endian int32 unless noted):
 *   op (0 conv2d, 1 conv_transpose2d, 2 gemm, 3 matmul), param_bytes, <params struct bytes>,
 *   then three arrays (input, weights, bias/C), each: count (-1 = NULL) + count float32,
 *   then out_count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ek_conv.h"
#include "ek_gemm.h"

static int read_exact(void *dst, size_t bytes)
{
    return fread(dst, 1, bytes, stdin) == bytes;
}

static float *read_array(int *ok)
{
    int32_t count;
    float *buf;
    if (!read_exact(&count, sizeof count)) {
        *ok = 0;
        return NULL;
    }
    if (count < 0) {
        return NULL;
    }
    buf = (float *)malloc(count > 0 ? (size_t)count * sizeof(float) : 1u);
    if (!buf || !read_exact(buf, (size_t)count * sizeof(float))) {
        *ok = 0;
    }
    return buf;
}

int main(void)
{
    int32_t op, param_bytes;
    while (read_exact(&op, sizeof op)) {
        union {
            ek_conv2d_params conv;
            ek_conv_transpose2d_params convt;
            ek_gemm_params gemm;
            ek_matmul_params matmul;
        } p;
        float *a, *b, *c, *out;
        int32_t out_count;
        int ok = 1;
        if (!read_exact(&param_bytes, sizeof param_bytes) || param_bytes > (int32_t)sizeof p ||
            !read_exact(&p, (size_t)param_bytes)) {
            fprintf(stderr, "bad record header\n");
            return 2;
        }
        a = read_array(&ok);
        b = read_array(&ok);
        c = read_array(&ok);
        if (!ok || !read_exact(&out_count, sizeof out_count) || out_count < 0) {
            fprintf(stderr, "truncated record\n");
            return 2;
        }
        out = (float *)malloc(out_count > 0 ? (size_t)out_count * sizeof(float) : 1u);
        switch (op) {
        case 0: {
            /* Exactly ek_conv2d_scratch_size floats, so an overrun of the window is caught. */
            size_t floats = ek_conv2d_scratch_size(&p.conv);
            float *scratch = (float *)malloc(floats > 0 ? floats * sizeof(float) : 1u);
            ek_conv2d_f32(&p.conv, a, b, c, out, scratch);
            free(scratch);
            break;
        }
        case 1: ek_conv_transpose2d_f32(&p.convt, a, b, c, out); break;
        case 2: ek_gemm_f32(&p.gemm, a, b, c, out); break;
        case 3: ek_matmul_f32(&p.matmul, a, b, c, out); break;
        default: fprintf(stderr, "unknown op %d\n", (int)op); return 2;
        }
        fwrite(out, sizeof(float), (size_t)out_count, stdout);
        free(a);
        free(b);
        free(c);
        free(out);
    }
    return 0;
}
