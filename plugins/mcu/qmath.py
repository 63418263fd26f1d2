"""Integer arithmetic of the int8 kernels, in numpy: the reference the C kernels must match bit for bit.

Technique: the TFLite int8 quantization spec (Jacob et al., "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018). A real multiplier
``M = s_in * s_w / s_out`` is stored as a Q31 fixed-point ``multiplier`` and a power-of-two
``shift`` (positive: scale up); :func:`requantize` is TFLite's ``MultiplyByQuantizedMultiplier`` in
its single-rounding form (TFLITE_SINGLE_ROUNDING, CMSIS-NN's CMSIS_NN_USE_SINGLE_ROUNDING): one
64-bit product rounded half up, which stays within float noise of onnxruntime's requantization.
Quantization of floats rounds half to even, as ONNX ``QuantizeLinear`` does.

Two int8 arithmetics (:data:`ARITHMETICS`, the ``int8_arithmetic`` of a build; C: the
``arithmetic`` field of each int8 layer's parameters, ``EK_ARITH_ONNX`` / ``EK_ARITH_TFLITE``):

* ``onnx`` (default): single rounding as above; the closest to onnxruntime's float rescaling.
* ``tflite``: TensorFlow Lite Micro's reference kernels bit for bit: :func:`requantize_tflite`
  (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT: two roundings), int8 average pools
  as TFLM (:func:`rounding_div_away`: the raw sum divided with ties away from zero) and int8 Add
  with TFLM's 20-bit left shift and three rescalings (:func:`add_rescale_tflite`).
"""

from __future__ import annotations

import math

import numpy as np

#: The int8 arithmetics of the mcu-c kernels, by name: the value of the layers' ``arithmetic`` field.
ARITHMETICS = {"onnx": 0, "tflite": 1}
#: The ONNX model metadata key a front end sets to choose the arithmetic (``--option
#: int8_arithmetic=`` overrides it): the TFLite importer writes ``tflite``.
METADATA_KEY = "edgekit.int8_arithmetic"
#: TFLite's int8 Add shifts both offset inputs left by this many bits before rescaling them.
TFLITE_ADD_LEFT_SHIFT = 20


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier, shift) with ``real ~= multiplier * 2**(shift - 31)``, multiplier in [2**30, 2**31):
    TFLite's QuantizeMultiplier (frexp, the Q31 mantissa rounded half away from zero as std::round,
    2**31 folded into the shift, multipliers below 2**-31 flushed to zero)."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real) or real < 0.0:
        raise ValueError(f"requantization multiplier {real!r} must be finite and >= 0")
    mantissa, shift = math.frexp(real)
    fixed = math.floor(mantissa * (1 << 31) + 0.5)  # exact: mantissa * 2**31 has <= 53 bits
    if fixed == (1 << 31):
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"requantization multiplier {real!r} is too large for a Q31 multiplier")
    return fixed, shift


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise :func:`quantize_multiplier` as two int32 arrays."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, dtype=np.float64).reshape(-1)]
    return (np.array([m for m, _ in pairs], dtype=np.int32),
            np.array([s for _, s in pairs], dtype=np.int32))


def arithmetic_code(arithmetic: str | int) -> int:
    """The ``arithmetic`` field value of a name of :data:`ARITHMETICS` (or the value itself)."""
    if isinstance(arithmetic, (int, np.integer)):
        if int(arithmetic) not in ARITHMETICS.values():
            raise ValueError(f"int8 arithmetic {arithmetic!r}: expected one of {sorted(ARITHMETICS.values())}")
        return int(arithmetic)
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"int8 arithmetic {arithmetic!r}: expected {' or '.join(ARITHMETICS)}")
    return ARITHMETICS[arithmetic]


def requantize(acc, multiplier, shift, arithmetic: str | int = "onnx") -> np.ndarray:
    """``acc * multiplier * 2**(shift - 31)`` rounded half up once (TFLite's single-rounding
    MultiplyByQuantizedMultiplier), broadcasting; int64 result (the C kernels keep int32).
    ``arithmetic="tflite"``: :func:`requantize_tflite` instead."""
    if arithmetic_code(arithmetic) == ARITHMETICS["tflite"]:
        return requantize_tflite(acc, multiplier, shift)
    acc = np.asarray(acc, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    product = acc * np.asarray(multiplier, dtype=np.int64)
    return (product + (np.int64(1) << (total - 1))) >> total


def _wrap32(v) -> np.ndarray:
    return ((np.asarray(v, dtype=np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def requantize_tflite(acc, multiplier, shift) -> np.ndarray:
    """TFLite's default (double-rounding) MultiplyByQuantizedMultiplier, as TFLite Micro's reference
    kernels and CMSIS-NN's arm_nn_requantize compute it: SaturatingRoundingDoublingHighMul of
    ``acc << max(shift, 0)`` (int32, wrapping) and the Q31 multiplier, i.e. the 64-bit product
    rounded half up by 31 bits, then RoundingDivideByPOT by ``max(-shift, 0)`` (ties away from
    zero). Broadcasting; int64 result."""
    shift = np.asarray(shift, dtype=np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    x = _wrap32(np.asarray(acc, dtype=np.int64) << left)
    high = (x * np.asarray(multiplier, dtype=np.int64) + (1 << 30)) >> 31  # = the C truncating division
    mask = (np.int64(1) << right) - 1
    return (high >> right) + ((high & mask) > ((mask >> 1) + (high < 0)))


def rounding_div_away(x, d) -> np.ndarray:
    """x / d (d > 0) rounded to nearest, ties away from zero: TFLite's int8 average pool,
    ``x > 0 ? (x + d / 2) / d : (x - d / 2) / d`` with C's truncating division."""
    x, d = np.asarray(x, dtype=np.int64), np.asarray(d, dtype=np.int64)
    num = np.where(x > 0, x + d // 2, x - d // 2)
    return np.sign(num) * (np.abs(num) // d)


def add_rescale_tflite(a_scale: float, b_scale: float, y_scale: float) -> tuple[int, int, int, int, int, int]:
    """(a_multiplier, a_shift, b_multiplier, b_shift, out_multiplier, out_shift) of TFLite's int8
    Add (PrepareGeneralSubOp / CalculateOpData of add.cc): each input over twice the larger input
    scale, the output over 2**TFLITE_ADD_LEFT_SHIFT times the output scale, float scales widened
    to double."""
    sa, sb, sy = float(np.float32(a_scale)), float(np.float32(b_scale)), float(np.float32(y_scale))
    twice_max = 2.0 * max(sa, sb)
    a_m, a_s = quantize_multiplier(sa / twice_max)
    b_m, b_s = quantize_multiplier(sb / twice_max)
    o_m, o_s = quantize_multiplier(twice_max / ((1 << TFLITE_ADD_LEFT_SHIFT) * sy))
    if max(a_s, b_s, o_s) > 0:
        raise ValueError("TFLite int8 Add rescale is not below one")
    return a_m, a_s, b_m, b_s, o_m, o_s


def add_tflite(a, a_offset, b, b_offset, rescale, output_offset) -> np.ndarray:
    """TFLite's int8 Add of the int8 values a, b (before the clamp): both offset inputs shifted left
    by TFLITE_ADD_LEFT_SHIFT and rescaled, summed, rescaled to the output. ``rescale``: the six
    integers of :func:`add_rescale_tflite`."""
    a_m, a_s, b_m, b_s, o_m, o_s = rescale
    sa = requantize_tflite((np.asarray(a, np.int64) + a_offset) << TFLITE_ADD_LEFT_SHIFT, a_m, a_s)
    sb = requantize_tflite((np.asarray(b, np.int64) + b_offset) << TFLITE_ADD_LEFT_SHIFT, b_m, b_s)
    return requantize_tflite(sa + sb, o_m, o_s) + output_offset


def quantize(x, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """ONNX QuantizeLinear: saturate(round_half_even(x / scale) + zero_point)."""
    info = np.iinfo(dtype)
    with np.errstate(over="ignore"):  # a huge x / scale is inf, which saturates like the kernels
        q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q, scale, zero_point) -> np.ndarray:
    """ONNX DequantizeLinear: (q - zero_point) * scale, in float32."""
    return ((np.asarray(q, dtype=np.int32) - np.asarray(zero_point, dtype=np.int32)).astype(np.float32)
            * np.asarray(scale, dtype=np.float32))


def activation_range(lo: float | None, hi: float | None, scale: float, zero_point: int,
                     dtype=np.int8) -> tuple[int, int]:
    """Integer clamp [q(lo), q(hi)] of a fused Relu/Clip (None: unbounded on that side)."""
    info = np.iinfo(dtype)
    qlo = info.min if lo is None or lo == -math.inf else int(quantize(lo, scale, zero_point, dtype))
    qhi = info.max if hi is None or hi == math.inf else int(quantize(hi, scale, zero_point, dtype))
    return max(qlo, info.min), min(qhi, info.max)


def float_order_key(x) -> np.ndarray:
    """float32 -> int32 whose signed order is the floats' order (-0.0 just below +0.0): the bits
    of a non-negative float, the bits with the magnitude bits flipped for a negative one."""
    bits = np.asarray(x, dtype=np.float32).view(np.int32)
    return np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits).astype(np.int32)


def _float_of_key(key) -> np.ndarray:
    key = np.asarray(key, dtype=np.int32)
    return np.where(key < 0, key ^ np.int32(0x7FFFFFFF), key).astype(np.int32).view(np.float32)


def quantize_thresholds(scale: float, zero_point: int) -> np.ndarray:
    """int32 [255]: entry i is the smallest float_order_key(x) with quantize(x) >= i - 127, so that
    quantize(x) = -128 + (the number of entries <= float_order_key(x)) for every float x but NaN.
    QuantizeLinear is monotone in x, so the 255 level boundaries describe it exactly; a core
    without an FPU finds the level by an 8-step binary search over integers, with no float
    division. Computed by bisection over the keys of -inf..+inf, with quantize() as the oracle."""
    levels = np.arange(-127, 128, dtype=np.int64)
    lo = np.full(levels.shape, int(float_order_key(np.float32(-np.inf))), dtype=np.int64)
    hi = np.full(levels.shape, int(float_order_key(np.float32(np.inf))), dtype=np.int64)
    # invariant: quantize(key lo) < level <= quantize(key hi); levels never reached get hi + 1
    q_lo = quantize(_float_of_key(lo.astype(np.int32)), scale, zero_point).astype(np.int64)
    q_hi = quantize(_float_of_key(hi.astype(np.int32)), scale, zero_point).astype(np.int64)
    below_all = q_lo >= levels   # -inf already reaches the level
    above_all = q_hi < levels    # +inf does not reach it
    while True:
        open_ = (hi - lo > 1) & ~below_all & ~above_all
        if not open_.any():
            break
        mid = (lo + hi) // 2
        q_mid = quantize(_float_of_key(mid.astype(np.int32)), scale, zero_point).astype(np.int64)
        reached = q_mid >= levels
        hi = np.where(open_ & reached, mid, hi)
        lo = np.where(open_ & ~reached, mid, lo)
    return np.where(below_all, lo, np.where(above_all, np.iinfo(np.int32).max, hi)).astype(np.int32)


def dequantize_table(scale: float, zero_point: int) -> np.ndarray:
    """float32 [256]: entry v + 128 is DequantizeLinear of the int8 value v."""
    return dequantize(np.arange(-128, 128, dtype=np.int32), scale, zero_point)
