/* ek_elementwise.c: broadcasting binary ops; see ek_elementwise.h for the stride scheme. */
#include "ek_elementwise.h"

typedef void (*ek_binary_row_fn)(int32_t n, const float *a, int32_t sa, const float *b,
                                 int32_t sb, float *out, float lo, float hi);

/* One row of n outputs. The stride pair selects a loop whose body has no index arithmetic:
 * pointers advance by constant steps so the compiler emits post-incremented loads. STORE is
 * either a plain store or a store through the fused activation clamp, giving two row functions
 * per op so the common unclamped case pays nothing for the clamp. */
#define EK_BINARY_ROW(FN, EXPR, STORE)                                                          \
    static void FN(int32_t n, const float *a, int32_t sa, const float *b, int32_t sb,           \
                   float *out, float lo, float hi)                                               \
    {                                                                                            \
        int32_t i;                                                                               \
        (void)lo;                                                                                \
        (void)hi;                                                                                \
        if (sa == 1 && sb == 1) {                                                                \
            /* Same shape (the residual-add case): 4 per iteration to amortise the loop test. */ \
            for (i = 0; i + 4 <= n; i += 4) {                                                    \
                { const float x = a[0]; const float y = b[0]; STORE(EXPR); }                     \
                { const float x = a[1]; const float y = b[1]; STORE(EXPR); }                     \
                { const float x = a[2]; const float y = b[2]; STORE(EXPR); }                     \
                { const float x = a[3]; const float y = b[3]; STORE(EXPR); }                     \
                a += 4;                                                                          \
                b += 4;                                                                          \
            }                                                                                    \
            for (; i < n; i++) { const float x = *a++; const float y = *b++; STORE(EXPR); }     \
        } else if (sa == 1 && sb == 0) {                                                         \
            const float y = *b;                                                                  \
            for (i = 0; i < n; i++) { const float x = *a++; STORE(EXPR); }                       \
        } else if (sa == 0 && sb == 1) {                                                         \
            const float x = *a;                                                                  \
            for (i = 0; i < n; i++) { const float y = *b++; STORE(EXPR); }                       \
        } else {                                                                                 \
            for (i = 0; i < n; i++, a += sa, b += sb) { const float x = *a; const float y = *b; \
                                                         STORE(EXPR); }                          \
        }                                                                                        \
    }

#define EK_STORE_PLAIN(v) (*out++ = (v))
#define EK_STORE_CLAMP(v) (*out++ = ek_clampf((v), lo, hi))
#define EK_STORE_RELU(v) do { const float v_ = (v); *out++ = v_ < 0.0f ? 0.0f : v_; } while (0)

/* Odometer over the outer axes: per row, each operand pointer moves by its axis stride and
 * rewinds when an axis wraps, so no per-element multiply is needed. */
static void ek_binary_walk(const ek_binary_params *p, const float *a, const float *b, float *out,
                           ek_binary_row_fn row)
{
    const int32_t last = p->rank - 1;
    const int32_t n = p->shape[last];
    const int32_t sa = p->a_stride[last];
    const int32_t sb = p->b_stride[last];
    int32_t idx[EK_MAX_DIMS] = {0};
    int32_t rows = 1;
    int32_t r, d;

    for (d = 0; d < last; d++) {
        rows *= p->shape[d];
    }
    for (r = 0; r < rows; r++) {
        row(n, a, sa, b, sb, out, p->act_min, p->act_max);
        out += n;
        for (d = last - 1; d >= 0; d--) {
            a += p->a_stride[d];
            b += p->b_stride[d];
            if (++idx[d] < p->shape[d]) {
                break;
            }
            a -= p->a_stride[d] * p->shape[d];
            b -= p->b_stride[d] * p->shape[d];
            idx[d] = 0;
        }
    }
}

#if EK_SPECIALISE
/* Row flavour for the fused activation: none, Relu (one compare), general clamp. */
static ek_binary_row_fn ek_binary_pick(const ek_binary_params *p, ek_binary_row_fn plain,
                                       ek_binary_row_fn relu, ek_binary_row_fn clamp)
{
    if (ek_act_is_identity(p->act_min, p->act_max)) {
        return plain;
    }
    return (p->act_min == 0.0f && p->act_max == INFINITY) ? relu : clamp;
}

#define EK_DEFINE_BINARY(NAME, EXPR)                                                            \
    EK_BINARY_ROW(ek_##NAME##_row, EXPR, EK_STORE_PLAIN)                                        \
    EK_BINARY_ROW(ek_##NAME##_row_clamp, EXPR, EK_STORE_CLAMP)                                  \
    EK_BINARY_ROW(ek_##NAME##_row_relu, EXPR, EK_STORE_RELU)                                    \
    void ek_##NAME##_f32(const ek_binary_params *p, const float *a, const float *b, float *out)  \
    {                                                                                            \
        ek_binary_walk(p, a, b, out, ek_binary_pick(p, ek_##NAME##_row, ek_##NAME##_row_relu,    \
                                                    ek_##NAME##_row_clamp));                    \
    }

#else
/* -Os: one row loop per op, general strides, the clamp at the store ([-inf, inf] passes every
 * value, NaN included). */
#define EK_DEFINE_BINARY(NAME, EXPR)                                                            \
    static void ek_##NAME##_row(int32_t n, const float *a, int32_t sa, const float *b,          \
                                int32_t sb, float *out, float lo, float hi)                      \
    {                                                                                            \
        int32_t i;                                                                               \
        for (i = 0; i < n; i++, a += sa, b += sb) {                                              \
            const float x = *a;                                                                  \
            const float y = *b;                                                                  \
            *out++ = ek_clampf((EXPR), lo, hi);                                                  \
        }                                                                                        \
    }                                                                                            \
    void ek_##NAME##_f32(const ek_binary_params *p, const float *a, const float *b, float *out)  \
    {                                                                                            \
        ek_binary_walk(p, a, b, out, ek_##NAME##_row);                                           \
    }
#endif

EK_DEFINE_BINARY(add, x + y)
EK_DEFINE_BINARY(sub, x - y)
EK_DEFINE_BINARY(mul, x * y)
EK_DEFINE_BINARY(div, x / y)
/* NaN in either operand propagates, as numpy.maximum/minimum and onnxruntime do. */
EK_DEFINE_BINARY(max, ek_max_nan(y, x))
EK_DEFINE_BINARY(min, ek_min_nan(y, x))
EK_DEFINE_BINARY(pow, powf(x, y))
EK_DEFINE_BINARY(prelu, x < 0.0f ? x * y : x)
