"""Build-time side of the int8 element-wise, pooling, softmax and boundary kernels: the fixed-point
constants (TFLite's int8 Add/Mul rescaling, pooling and softmax tables) and the parameters of
``ek_qelementwise.h``, ``ek_pool.h`` (int8 part), ``ek_qsoftmax.h`` and ``ek_quant.h``.

Every builder takes quantization as ``(scale, zero_point)`` pairs and returns a :class:`.QLayer`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgekit.plugins.mcu import qmath
from edgekit.plugins.mcu.qlayer import QLayer
from edgekit.plugins.mcu.shapes import MAX_DIMS, broadcast_strides

Q = tuple[float, int]
#: Bits of the int8 Add multipliers: |M * (q - z)| < 2^22 * 2^8, so the two products and their
#: sum stay in int32.
ADD_MULTIPLIER_BITS = 22
POOL_KEYS = ("batch", "channels", "in_h", "in_w", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w",
             "dil_h", "dil_w", "pad_top", "pad_left", "pad_bottom", "pad_right", "count_include_pad")


def _rescale(x_q: Q, y_q: Q) -> tuple[int, int]:
    """(multiplier, shift) of s_x / s_y, or (0, 0) when the scales are equal (no rescale)."""
    if np.float32(x_q[0]) == np.float32(y_q[0]):
        return 0, 0
    return qmath.quantize_multiplier(float(np.float64(x_q[0]) / np.float64(y_q[0])))


def add_rescale(a_q: Q, b_q: Q, y_q: Q) -> tuple[int, int, int]:
    """(a_multiplier, b_multiplier, shift) of int8 Add: s_a/s_y and s_b/s_y as integers of at most
    ADD_MULTIPLIER_BITS bits over one shared shift."""
    ra, rb = np.float64(a_q[0]) / y_q[0], np.float64(b_q[0]) / y_q[0]
    # the largest shift that keeps both multipliers within ADD_MULTIPLIER_BITS bits; one less when
    # a ratio just below a power of two rounds up to it (s_x/s_y = 0.99999995: 2^22 at shift 22)
    top = int(np.clip(ADD_MULTIPLIER_BITS - 1 - np.floor(np.log2(max(ra, rb))), 1, 30))
    for shift in (top, top - 1) if top > 1 else (top,):
        a_m, b_m = int(np.rint(ra * 2.0 ** shift)), int(np.rint(rb * 2.0 ** shift))
        if max(a_m, b_m) < 1 << ADD_MULTIPLIER_BITS:
            return a_m, b_m, shift
    raise ValueError(f"Add rescale {max(ra, rb):g} is too large for the int8 kernel")


def qbinary_layer(op: str, a_shape, b_shape, out_shape, a_q: Q, b_q: Q, y_q: Q,
                  act: tuple[float | None, float | None] = (None, None), arithmetic: str = "onnx") -> QLayer:
    shape, sa, sb = broadcast_strides(tuple(a_shape), tuple(b_shape), tuple(out_shape))
    if len(shape) > MAX_DIMS:
        raise ValueError(f"broadcast needs {len(shape)} dimensions; at most {MAX_DIMS}")
    pad = MAX_DIMS - len(shape)
    act_min, act_max = qmath.activation_range(act[0], act[1], y_q[0], y_q[1])
    params = {"rank": len(shape), "shape": shape + [0] * pad, "a_stride": sa + [0] * pad,
              "b_stride": sb + [0] * pad, "a_offset": -int(a_q[1]), "b_offset": -int(b_q[1]),
              "a_multiplier": 0, "b_multiplier": 0, "add_shift": 0}
    out_m = out_s = a_s = b_s = 0
    code = qmath.arithmetic_code(arithmetic)
    if op == "Add" and code == qmath.ARITHMETICS["tflite"]:
        a_m, a_s, b_m, b_s, out_m, out_s = qmath.add_rescale_tflite(a_q[0], b_q[0], y_q[0])
        params.update(a_multiplier=a_m, b_multiplier=b_m)
        function = "ek_qadd_s8"
    elif op == "Add":
        a_m, b_m, shift = add_rescale(a_q, b_q, y_q)
        params.update(a_multiplier=a_m, b_multiplier=b_m, add_shift=shift)
        function = "ek_qadd_s8"
    elif op == "Mul":
        out_m, out_s = qmath.quantize_multiplier(float(np.float64(a_q[0]) * b_q[0] / y_q[0]))
        function = "ek_qmul_s8"
    else:
        raise ValueError(f"no int8 kernel for {op}")
    params.update(out_multiplier=out_m, out_shift=out_s, output_offset=int(y_q[1]), act_min=act_min,
                  act_max=act_max, a_shift=a_s, b_shift=b_s, arithmetic=code)
    same_a = tuple(a_shape) == tuple(out_shape)
    return QLayer(function, "ek_qelementwise", "ek_qbinary_params", params, inplace=same_a)


def qpool_layer(kind: str, geometry: dict, x_q: Q, y_q: Q, arithmetic: str = "onnx") -> QLayer:
    multiplier, shift = _rescale(x_q, y_q)
    params = {"pool": [int(geometry[k]) for k in POOL_KEYS], "input_offset": -int(x_q[1]),
              "output_offset": int(y_q[1]), "multiplier": multiplier, "shift": shift,
              "arithmetic": qmath.arithmetic_code(arithmetic)}
    function = {"max": "ek_qmaxpool2d_s8", "avg": "ek_qavgpool2d_s8"}[kind]
    return QLayer(function, "ek_pool", "ek_qpool2d_params", params)


def qglobal_avgpool_layer(n: int, channels: int, spatial: int, x_q: Q, y_q: Q, arithmetic: str = "onnx") -> QLayer:
    multiplier, shift = _rescale(x_q, y_q)
    params = {"planes": int(n * channels), "size": int(spatial), "input_offset": -int(x_q[1]),
              "output_offset": int(y_q[1]), "multiplier": multiplier, "shift": shift,
              "arithmetic": qmath.arithmetic_code(arithmetic)}
    return QLayer("ek_qglobal_avgpool_s8", "ek_pool", "ek_qglobal_pool_params", params,
                  summary="whole-plane mean")


def qsoftmax_layer(shape, axis: int, x_q: Q, y_q: Q) -> QLayer:
    shape = [int(d) for d in shape]
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    if shape[axis] > 32767:
        raise ValueError("softmax axis longer than 32767")
    table = np.rint(2.0 ** 30 * np.exp(-np.float64(x_q[0]) * np.arange(256))).astype(np.int32)
    params = {"outer": outer, "axis": shape[axis], "inner": inner,
              "inv_scale_q16": int(round(65536.0 / y_q[0])), "output_offset": int(y_q[1])}
    if not 0 < params["inv_scale_q16"] < (1 << 31):
        raise ValueError(f"softmax output scale {y_q[0]} is out of range")
    return QLayer("ek_qsoftmax_s8", "ek_qsoftmax", "ek_qsoftmax_params", params,
                  consts=[("exp_q30", table)], summary=f"axis {axis}")


def _boundary_layer(function: str, count: int, q: Q, table: tuple[str, np.ndarray, str] | None) -> QLayer:
    """A float <-> int8 kernel of ek_quant.h; ``table``: (role, array, summary) of its integer-only
    form for cores without an FPU."""
    params = {"size": int(count), "scale": float(np.float32(q[0])), "zero_point": int(q[1])}
    if table is None:
        return QLayer(function, "ek_quant", "ek_quant_params", params)
    role, array, summary = table
    return QLayer(function, "ek_quant", "ek_quant_params", params, consts=[(role, array)], summary=summary)


#: Fewest values for which a core without an FPU takes the integer-only boundary kernels: their
#: tables (about 1 KB each) then hold no more entries than there are values to convert.
TABLE_MIN_COUNT = 256
#: Those kernels: their tables are conversion constants, reported apart from the weights.
BOUNDARY_TABLE_FUNCTIONS = ("ek_quantize_f32_s8_search", "ek_dequantize_s8_f32_table")


def quantize_layer(count: int, y_q: Q, soft_float: bool = False) -> QLayer:
    """float32 -> int8; ``soft_float`` (a core without an FPU): the integer-only binary search."""
    if soft_float and count >= TABLE_MIN_COUNT:
        return _boundary_layer("ek_quantize_f32_s8_search", count, y_q,
                               ("thresholds", qmath.quantize_thresholds(*y_q), "integer-only search"))
    return _boundary_layer("ek_quantize_f32_s8", count, y_q, None)


def dequantize_layer(count: int, x_q: Q, soft_float: bool = False) -> QLayer:
    """int8 -> float32; ``soft_float`` (a core without an FPU): a 256-entry table."""
    if soft_float and count >= TABLE_MIN_COUNT:
        return _boundary_layer("ek_dequantize_s8_f32_table", count, x_q,
                               ("table", qmath.dequantize_table(*x_q), "256-entry table"))
    return _boundary_layer("ek_dequantize_s8_f32", count, x_q, None)


def lut_table(fn: Callable[[np.ndarray], np.ndarray], x_q: Q, y_q: Q) -> np.ndarray:
    """table[v + 128] = Q(fn(DQ(v))) for every int8 v: exactly what DQ -> op -> Q computes."""
    values = np.arange(-128, 128, dtype=np.int32)
    return qmath.quantize(fn(qmath.dequantize(values, x_q[0], x_q[1])), y_q[0], y_q[1])


def lut_layer(count: int, fn: Callable[[np.ndarray], np.ndarray], x_q: Q, y_q: Q, summary: str = "") -> QLayer:
    return QLayer("ek_lut_s8", "ek_quant", "ek_lut_params", {"size": int(count)},
                  consts=[("table", lut_table(fn, x_q, y_q))], inplace=True,
                  summary=f"{summary} as a 256-entry table".strip())


def requantize_layer(count: int, x_q: Q, y_q: Q) -> QLayer:
    return lut_layer(count, lambda x: x, x_q, y_q, summary="rescale")


def tflite_rescale_layer(count: int, x_q: Q, y_q: Q, relu: bool) -> QLayer:
    """TFLite Micro's int8 QUANTIZE (int8 -> int8) and RELU as a table: ``z_y + (v - z_x)`` rescaled by
    ``s_x / s_y`` with MultiplyByQuantizedMultiplier's double rounding (ties away from zero, where
    DQ -> op -> Q rounds them to even), clamped to int8 (RELU: from ``z_y`` up)."""
    values = np.arange(-128, 128, dtype=np.int64)
    multiplier, shift = qmath.quantize_multiplier(float(np.float64(x_q[0]) / np.float64(y_q[0])))
    scaled = qmath.requantize_tflite(values - x_q[1], multiplier, shift) + y_q[1]
    table = np.clip(scaled, max(-128, y_q[1]) if relu else -128, 127).astype(np.int8)
    return QLayer("ek_lut_s8", "ek_quant", "ek_lut_params", {"size": int(count)}, consts=[("table", table)],
                  inplace=True, summary=f"{'Relu' if relu else 'rescale'} as a 256-entry table (TFLite rounding)")


def add_epilogue(conv_q: Q, residual_q: Q, y_q: Q, act: tuple[float | None, float | None],
                 arithmetic: str = "onnx") -> list[int]:
    """ek_qadd_epilogue of a residual Add fused after a conv (field order of the C struct)."""
    p = qbinary_layer("Add", [1], [1], [1], conv_q, residual_q, y_q, act, arithmetic).params
    return [p[k] for k in ("a_offset", "b_offset", "a_multiplier", "b_multiplier", "add_shift", "output_offset",
                           "act_min", "act_max", "a_shift", "b_shift", "out_multiplier", "out_shift", "arithmetic")]
