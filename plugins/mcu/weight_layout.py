"""Build-time weight packing for the float32 conv/gemm kernels (ek_conv.h, ek_gemm.h).

Technique: reorder constant weights once, at build time, into the order the register-blocked
inner loops read them, so the kernels stream weights linearly (no strided loads, no index
arithmetic per MAC). Packing never changes the element count, so arena/flash sizes are the
ONNX sizes. ``params`` dicts use the C struct field names of ``ek_conv2d_params`` /
``ek_gemm_params`` / ``ek_matmul_params``.
"""

from __future__ import annotations

import numpy as np

import edgekit

#: Output channels per register block in the packed Conv layout (EK_CONV_OC_BLOCK in ek_conv.h).
CONV_OC_BLOCK = 4
#: Columns per packed B panel (EK_GEMM_PANEL in ek_gemm.h).
GEMM_PANEL = 8


def _as_f32(w) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(w, dtype=np.float32))


def pack_conv2d_weights(w: np.ndarray, params: dict) -> np.ndarray:
    """Pack ONNX Conv weights [out_c][in_c/groups][k_h][k_w] (or 1-D [out_c][icg][k_w]).

    Per group: blocks of 4 output channels stored [icg][k_h][k_w][4], then the ocg % 4
    leftover channels in ONNX order. Returns a flat float32 array of the same size.
    """
    w = _as_f32(w)
    groups = int(params.get("groups", 1))
    out_c = w.shape[0]
    if out_c % groups:
        raise edgekit.UsageError(f"Conv weights {list(w.shape)}: output channels {out_c} are not a "
                                 f"multiple of group={groups}; fix the model's Conv node")
    w = w.reshape(out_c, -1)  # [out_c][icg * k_h * k_w]
    ocg = out_c // groups
    full = ocg - ocg % CONV_OC_BLOCK
    parts = []
    for g in range(groups):
        wg = w[g * ocg:(g + 1) * ocg]
        if full:
            blocks = wg[:full].reshape(full // CONV_OC_BLOCK, CONV_OC_BLOCK, -1)
            parts.append(blocks.transpose(0, 2, 1).reshape(-1))
        parts.append(wg[full:].reshape(-1))
    return np.ascontiguousarray(np.concatenate(parts)).astype(np.float32)


def pack_conv_transpose2d_weights(w: np.ndarray, params: dict) -> np.ndarray:
    """Pack ONNX ConvTranspose weights [in_c][out_c/groups][k_h][k_w] (or 1-D [..][k_w]).

    Per group: blocks of 4 output channels stored [k_h][k_w][icg][4] (the gather loop streams 4
    weights per input channel), then the ocg % 4 leftover channels stored [k_h][k_w][icg] each.
    """
    w = _as_f32(w)
    groups = int(params.get("groups", 1))
    in_c, ocg = w.shape[0], w.shape[1]
    if in_c % groups:
        raise edgekit.UsageError(f"ConvTranspose weights {list(w.shape)}: input channels {in_c} are "
                                 f"not a multiple of group={groups}; fix the model's node")
    icg = in_c // groups
    w = w.reshape(groups, icg, ocg, -1)  # [g][icg][ocg][taps]
    full = ocg - ocg % CONV_OC_BLOCK
    parts = []
    for g in range(groups):
        wg = w[g]
        if full:
            blocks = wg[:, :full].reshape(icg, full // CONV_OC_BLOCK, CONV_OC_BLOCK, -1)
            parts.append(blocks.transpose(1, 3, 0, 2).reshape(-1))  # [block][taps][icg][4]
        for oc in range(full, ocg):
            parts.append(wg[:, oc].T.reshape(-1))                   # [taps][icg]
    return np.ascontiguousarray(np.concatenate(parts)).astype(np.float32)


def _pack_panels(bt: np.ndarray) -> np.ndarray:
    """One [k][n] matrix -> column panels of GEMM_PANEL columns, each stored [k][width]."""
    k, n = bt.shape
    full = n - n % GEMM_PANEL
    parts = [bt[:, j:j + GEMM_PANEL].reshape(-1) for j in range(0, full, GEMM_PANEL)]
    if full < n:
        parts.append(bt[:, full:].reshape(-1))
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts)


def pack_gemm_weights(b: np.ndarray, params: dict) -> np.ndarray:
    """Pack Gemm's constant B (ONNX storage; transposed first when params['trans_b'])."""
    b = _as_f32(b)
    if b.ndim != 2:
        raise ValueError(f"Gemm B must be 2-D, got shape {b.shape}")
    bt = b.T if int(params.get("trans_b", 0)) else b
    return np.ascontiguousarray(_pack_panels(np.ascontiguousarray(bt))).astype(np.float32)


def pack_matmul_weights(b: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Pack MatMul's constant B [..., k, n] matrix by matrix (batch strides stay valid)."""
    del params
    b = _as_f32(b)
    if b.ndim < 2:
        raise ValueError("pack_matmul_weights: reshape a 1-D B to [k, 1] first")
    mats = b.reshape(-1, b.shape[-2], b.shape[-1])
    return np.ascontiguousarray(np.concatenate([_pack_panels(m) for m in mats])).astype(np.float32)


def conv2d_scratch_floats(params: dict) -> int:
    """Floats of scratch ek_conv2d_f32 needs (mirrors ek_conv2d_scratch_size in ek_conv.h).

    Depthwise with channel multiplier < 4: one zero-padded input plane; otherwise one
    zero-padded input window of an edge tile, icg * k_h * (3 * stride_w + (k_w - 1) * dil_w + 1).
    """
    get = lambda name, default=0: int(params.get(name, default))  # noqa: E731
    groups = get("groups", 1)
    if get("in_c") == groups and get("out_c") // groups < CONV_OC_BLOCK:
        return ((get("in_h", 1) + get("pad_top") + get("pad_bottom"))
                * (get("in_w") + get("pad_left") + get("pad_right")))
    win_w = 3 * get("stride_w", 1) + (get("k_w") - 1) * get("dil_w", 1) + 1
    return get("in_c") // groups * get("k_h", 1) * win_w


def gemm_scratch_floats(params: dict) -> int:
    """Floats of scratch ek_gemm_f32 / ek_matmul_f32 need (mirrors ek_gemm_scratch_size)."""
    del params
    return 0
