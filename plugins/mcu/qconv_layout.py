"""Build-time side of the int8 Conv / fully connected kernels (``kernels/ek_qconv.h``): weight
packing, requantization multipliers, the integer clamp of a fused activation, and the parameters.

Weights are stored so the DSP inner loop reads them with one 32-bit load per four: each output
channel's K weights ([ic][ky][kx], ONNX order) are zero-padded to a multiple of four and each group
of four is stored as ``[w0, w2, w1, w3]``; SXTB16 of the word then yields the pair (w0, w1) and
SXTB16 of the word rotated by 8 the pair (w2, w3), matching the int16 columns (CMSIS-NN's
reordered-weights idea, done once at build time instead of in the kernel).
"""

from __future__ import annotations

import numpy as np

from edgekit.plugins.mcu import qmath
from edgekit.plugins.mcu.qlayer import QLayer

#: The int8 value order of one group of four weights in flash.
GROUP_ORDER = (0, 2, 1, 3)


def k_pad(k: int) -> int:
    return (k + 3) & ~3


def pack_rows(rows: np.ndarray, groups: int = 1) -> np.ndarray:
    """[R, K] int8 (R = groups x channels) -> the kernel's layout: per group, channels in pairs (a
    zero channel completes an odd count), per pair and group of four k the four weights of the first
    channel then the second's, each permuted [w0 w2 w1 w3]; K zero padded to k_pad(K)."""
    rows = np.asarray(rows, dtype=np.int8)
    r, k = rows.shape
    per_group = r // groups
    paired = per_group + (per_group & 1)
    padded = np.zeros((groups, paired, k_pad(k)), dtype=np.int8)
    padded[:, :per_group, :k] = rows.reshape(groups, per_group, k)
    quads = padded.reshape(groups, paired // 2, 2, -1, 4)[..., GROUP_ORDER]  # [g, pair, ch, quad, 4]
    return np.ascontiguousarray(quads.transpose(0, 1, 3, 2, 4)).reshape(-1)


#: ek_qfc_s8 computes eight output features per pass.
FC_FEATURES = 8
#: ek_qfc_s8's weights are offset-binary: u = w + 128 as uint8.
FC_WEIGHT_OFFSET = 128


def fc_features_padded(n: int) -> int:
    return -(-n // FC_FEATURES) * FC_FEATURES


def pack_fc(weights: np.ndarray) -> np.ndarray:
    """[N, K] int8 -> ek_qfc_s8's layout: offset-binary uint8 (w + 128), features in octets (zero
    features complete the last), per octet and group of four k the eight features' four weights in
    natural order; K zero padded."""
    weights = np.asarray(weights, dtype=np.int8)
    n, k = weights.shape
    n8 = fc_features_padded(n)
    padded = np.zeros((n8, k_pad(k)), dtype=np.int16)
    padded[:n, :k] = weights
    octets = padded.reshape(n8 // FC_FEATURES, FC_FEATURES, -1, 4).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(octets + FC_WEIGHT_OFFSET).astype(np.uint8).reshape(-1)


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=array.dtype)
    out[:array.size] = array
    return out


def _requant(x_scale: float, weight_scale: np.ndarray, y_scale: float, n: int):
    real = (np.float64(x_scale) * np.broadcast_to(np.asarray(weight_scale, dtype=np.float64), (n,))
            / np.float64(y_scale))
    return qmath.quantize_multipliers(real)


def _bias(bias: np.ndarray | None, n: int) -> np.ndarray:
    if bias is None:
        return np.zeros(n, dtype=np.int32)
    return np.ascontiguousarray(np.asarray(bias, dtype=np.int32).reshape(n))


def qconv_layer(geometry: dict, weights: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None,
                x_scale: float, x_zero_point: int, y_scale: float, y_zero_point: int,
                act: tuple[float | None, float | None] = (None, None), arithmetic: str = "onnx") -> QLayer:
    """An int8 Conv (weights [out_c, in_c/groups, k_h, k_w], symmetric per output channel);
    ``arithmetic``: a name of qmath.ARITHMETICS (how the accumulators are requantized)."""
    g = geometry
    out_c, icg = weights.shape[0], weights.shape[1]
    depthwise = int(icg == 1 and g["groups"] == g["in_c"] and g["groups"] > 1)
    k = int(np.prod(weights.shape[1:]))
    kp = k_pad(k)
    packed = (np.ascontiguousarray(weights, dtype=np.int8).reshape(-1) if depthwise
              else pack_rows(weights.reshape(out_c, k), g["groups"]))
    multiplier, shift = _requant(x_scale, weight_scale, y_scale, out_c)
    act_min, act_max = qmath.activation_range(act[0], act[1], y_scale, y_zero_point)
    params = {key: int(g[key]) for key in ("n", "in_c", "in_h", "in_w", "out_c", "out_h", "out_w",
                                            "k_h", "k_w", "stride_h", "stride_w", "dil_h", "dil_w",
                                            "pad_top", "pad_left", "groups")}
    params.update(depthwise=depthwise, k_pad=kp, input_offset=-int(x_zero_point),
                  output_offset=int(y_zero_point), act_min=act_min, act_max=act_max,
                  arithmetic=qmath.arithmetic_code(arithmetic))
    return QLayer(function="ek_qconv_s8", family="ek_qconv", params_type="ek_qconv_params", params=params,
                  consts=[("weights", packed), ("bias", _bias(bias, out_c)), ("multiplier", multiplier),
                          ("shift", shift)],
                  scratch_bytes=_depthwise_scratch(g) if depthwise else 4 * kp, takes_scratch=True,
                  summary="depthwise" if depthwise else "")


def _depthwise_scratch(g: dict) -> int:
    """ek_qconv_scratch_bytes of a depthwise conv: three padded int16 input rows for a 3x3 undilated kernel."""
    if (g["k_h"], g["k_w"], g["dil_h"], g["dil_w"]) != (3, 3, 1, 1):
        return 0
    return (6 * ((g["out_w"] - 1) * g["stride_w"] + 3) + 3) & ~3


def qgemm_layer(m: int, weights: np.ndarray, weight_scale: np.ndarray, bias: np.ndarray | None,
                x_scale: float, x_zero_point: int, y_scale: float, y_zero_point: int,
                act: tuple[float | None, float | None] = (None, None), arithmetic: str = "onnx") -> QLayer:
    """An int8 fully connected layer: y[m, n] from x[m, k] and weights [n, k]."""
    n, k = weights.shape
    kp = k_pad(k)
    n8 = fc_features_padded(n)
    multiplier, shift = _requant(x_scale, weight_scale, y_scale, n)
    act_min, act_max = qmath.activation_range(act[0], act[1], y_scale, y_zero_point)
    params = {"m": int(m), "n": int(n), "k": int(k), "k_pad": kp, "input_offset": -int(x_zero_point),
              "output_offset": int(y_zero_point), "act_min": act_min, "act_max": act_max,
              "arithmetic": qmath.arithmetic_code(arithmetic)}
    # (x - zp) . w = x . w - zp * sum(w): the offset becomes part of the bias
    folded = _bias(bias, n).astype(np.int64) - int(x_zero_point) * weights.astype(np.int64).sum(axis=1)
    if np.abs(folded).max(initial=0) >= 1 << 31:
        raise ValueError("fully connected bias with the folded input offset overflows int32")
    return QLayer(function="ek_qfc_s8", family="ek_qconv", params_type="ek_qfc_params", params=params,
                  consts=[("weights", pack_fc(weights)), ("bias", _pad_to(folded.astype(np.int32), n8)),
                          ("multiplier", _pad_to(multiplier, n8)), ("shift", _pad_to(shift, n8))])


def reference_conv(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, geometry: dict,
                   layer: QLayer) -> np.ndarray:
    """What ek_qconv_s8 computes, in numpy (int64 accumulation, the layer's requantization)."""
    g, p = geometry, layer.params
    n, groups = g["n"], g["groups"]
    xi = x.astype(np.int64).reshape(n, g["in_c"], g["in_h"], g["in_w"]) - (-p["input_offset"])
    xi = np.pad(xi, ((0, 0), (0, 0), (g["pad_top"], g["pad_bottom"] + g["k_h"] * g["dil_h"]),
                     (g["pad_left"], g["pad_right"] + g["k_w"] * g["dil_w"])))
    out = np.zeros((n, g["out_c"], g["out_h"], g["out_w"]), dtype=np.int64)
    icg, ocg = g["in_c"] // groups, g["out_c"] // groups
    w = weights.astype(np.int64)
    for ky in range(g["k_h"]):
        for kx in range(g["k_w"]):
            oy = ky * g["dil_h"] + g["stride_h"] * np.arange(g["out_h"])
            ox = kx * g["dil_w"] + g["stride_w"] * np.arange(g["out_w"])
            patch = xi[:, :, oy][:, :, :, ox]  # [n, in_c, out_h, out_w]
            for gi in range(groups):
                out[:, gi * ocg:(gi + 1) * ocg] += np.einsum(
                    "bihw,oi->bohw", patch[:, gi * icg:(gi + 1) * icg], w[gi * ocg:(gi + 1) * ocg, :, ky, kx])
    acc = out + _bias(bias, g["out_c"]).astype(np.int64).reshape(1, -1, 1, 1)
    return _finish(acc, layer, axis_shape=(1, -1, 1, 1))


def reference_fc(x: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, layer: QLayer) -> np.ndarray:
    p = layer.params
    layer = QLayer(layer.function, layer.family, layer.params_type, p,
                   consts=[(role, a[:p["n"]]) for role, a in layer.consts])
    acc = (x.astype(np.int64).reshape(p["m"], p["k"]) + p["input_offset"]) @ weights.astype(np.int64).T
    return _finish(acc + _bias(bias, p["n"]).astype(np.int64), layer, axis_shape=(1, -1))


def _finish(acc: np.ndarray, layer: QLayer, axis_shape) -> np.ndarray:
    consts = dict(layer.consts)
    p = layer.params
    v = qmath.requantize(acc, consts["multiplier"].reshape(axis_shape), consts["shift"].reshape(axis_shape),
                         p.get("arithmetic", 0))
    return np.clip(v + p["output_offset"], p["act_min"], p["act_max"]).astype(np.int8)
