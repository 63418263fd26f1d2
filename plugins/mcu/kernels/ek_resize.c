/* ek_resize.c: table-driven nearest and bilinear Resize (see ek_resize.h). */
#include "ek_resize.h"

void ek_resize_nearest_f32(const ek_resize_nearest_params *p, const float *in, float *out)
{
    const int32_t in_plane = p->in_h * p->in_w;
    int32_t c, oy, ox;
    for (c = 0; c < p->planes; c++) {
        const float *plane = in + (size_t)c * (size_t)in_plane;
        for (oy = 0; oy < p->out_h; oy++) {
            const float *row = plane + (size_t)p->src_y[oy] * (size_t)p->in_w;
            for (ox = 0; ox < p->out_w; ox++) {
                *out++ = row[p->src_x[ox]];
            }
        }
    }
}

void ek_resize_bilinear_f32(const ek_resize_bilinear_params *p, const float *in, float *out)
{
    const int32_t in_plane = p->in_h * p->in_w;
    int32_t c, oy, ox;
    for (c = 0; c < p->planes; c++) {
        const float *plane = in + (size_t)c * (size_t)in_plane;
        for (oy = 0; oy < p->out_h; oy++) {
            const float *r0 = plane + (size_t)p->y0[oy] * (size_t)p->in_w;
            const float *r1 = plane + (size_t)p->y1[oy] * (size_t)p->in_w;
            const float wy = p->wy[oy];
            for (ox = 0; ox < p->out_w; ox++) {
                const int32_t x0 = p->x0[ox], x1 = p->x1[ox];
                const float wx = p->wx[ox];
                const float top = r0[x0] + wx * (r0[x1] - r0[x0]);
                const float bottom = r1[x0] + wx * (r1[x1] - r1[x0]);
                *out++ = top + wy * (bottom - top);
            }
        }
    }
}
