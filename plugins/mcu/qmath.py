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
