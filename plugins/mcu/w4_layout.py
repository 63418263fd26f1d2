"""Build-time side of the weight-only kernels (``kernels/ek_gemm_wq.h``: ``ek_gemm_w4.h``,
``ek_gemm_w8.h``): the weights per output, nibble-packed for int4 or one byte each for int8, and
the scale table they share."""

from __future__ import annotations

import numpy as np


def pack(values: np.ndarray) -> np.ndarray:
    """int4 values [K, N] (in [-8, 7]) -> uint8 [N * ceil(K/2)]: per output n its k in order, two
    per byte, even k in the low nibble."""
    q = np.asarray(values, dtype=np.int8).T  # [N, K]
    n, k = q.shape
    if k % 2:
        q = np.concatenate([q, np.zeros((n, 1), dtype=np.int8)], axis=1)
    nibbles = (q.astype(np.int16) & 0xF).astype(np.uint8)
    return np.ascontiguousarray(nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)).reshape(-1)


def pack_int8(values: np.ndarray) -> np.ndarray:
    """int8 values [K, N] -> int8 [N * K]: per output n its k in order."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.int8).T).reshape(-1)


def scales(scale: np.ndarray, k: int, n: int, group: int) -> np.ndarray:
    """[N][ceil(K/group)] float32 from ONNX's blocked [ceil(K/group), N], per-column [N] or scalar."""
    s = np.asarray(scale, dtype=np.float32)
    groups = -(-k // group)
    if s.ndim == 2:
        table = s
    else:
        table = np.broadcast_to(s.reshape(1, -1) if s.size == n else s.reshape(1, 1), (groups, n))
    if table.shape != (groups, n):
        raise ValueError(f"weight-only scales {list(s.shape)} do not match K={k}, N={n}, group {group}")
    return np.ascontiguousarray(table.T, dtype=np.float32).reshape(-1)
