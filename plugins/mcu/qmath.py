"""Integer arithmetic of the int8 kernels, in numpy: the reference the C kernels must match bit for bit.

Technique: the TFLite int8 quantization spec (Jacob et al., "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018). A real multiplier
``M = s_in * s_w / s_out`` is stored as a Q31 fixed-point ``multiplier`` and a power-of-two
``shift`` (positive: scale up); :func:`requantize` is TFLite's ``MultiplyByQuantizedMultiplier`` in
its single-rounding form (TFLITE_SINGLE_ROUNDING, CMSIS-NN's CMSIS_NN_USE_SINGLE_ROUNDING): one
64-bit product rounded half up, which stays within float noise of onnxruntime's requantization. Quantization of floats rounds half to even, as ONNX
``QuantizeLinear`` does.
"""

from __future__ import annotations

import math

import numpy as np



def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier, shift) with ``real ~= multiplier * 2**(shift - 31)``, multiplier in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real) or real < 0.0:
        raise ValueError(f"requantization multiplier {real!r} must be finite and >= 0")
    mantissa, shift = math.frexp(real)
    fixed = int(round(mantissa * (1 << 31)))
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


def requantize(acc, multiplier, shift) -> np.ndarray:
    """``acc * multiplier * 2**(shift - 31)`` rounded half up once (TFLite's single-rounding
    MultiplyByQuantizedMultiplier), broadcasting; int64 result (the C kernels keep int32)."""
    acc = np.asarray(acc, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    product = acc * np.asarray(multiplier, dtype=np.int64)
    return (product + (np.int64(1) << (total - 1))) >> total


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
