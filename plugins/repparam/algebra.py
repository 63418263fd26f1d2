"""The linear algebra every re-parameterization pass shares, on plain numpy arrays.

A *linear layer* (:class:`Linear`) is one of

* ``conv``: ``y = conv(x, W) + b`` with ``W[Cout, Cin/group, *k]`` (ONNX ``Conv``);
* ``dense``: ``y = x @ W + b`` over the last axis with ``W[K, N]`` (``MatMul``, ``Gemm``);
* ``convtranspose``: ``W[Cin, Cout/group, *k]`` (ONNX ``ConvTranspose``; only output affines fold).

An *affine* (:class:`Affine`) is a per-channel ``y = scale * x + shift`` (a Mul/Add by a constant,
an inference BatchNormalization, a LayerNorm's elementwise affine).

Every rewrite is an identity of real arithmetic:

* affine after a layer:  ``s*(Wx + b) + t = (diag(s) W) x + (s*b + t)``;
* affine before a layer: ``W(s*x + t) + b = (W diag(s)) x + (b + W t)``. The scale part is exact for
  any convolution (zero padding scales to zero); the shift part only when the convolution reads no
  padding, since a padded border would see ``0`` instead of ``t``;
* chains: ``W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)``; for convolutions when one of the two
  is a 1x1, stride-1, unpadded convolution;
* parallel sums: ``Σ conv(x, W_i) = conv(x, Σ pad(W_i))`` when every kernel, zero-padded to a common
  size, reads the same input positions (same stride, dilation, groups and aligned padding). An
  identity branch is a delta kernel.

All arithmetic runs in float64; callers cast the results back to the model's dtype once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

CONV, DENSE, CONVTRANSPOSE = "conv", "dense", "convtranspose"


class NotExact(Exception):
    """A rewrite that would not compute the same function; the message says why."""


@dataclass(frozen=True)
class ConvGeometry:
    """Strides, dilations, padding (``begin..., end...`` as ONNX ``pads``) and groups of a convolution.
    ``pads`` is None when the model asks for ``auto_pad=SAME_*`` (padding decided at run time)."""

    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...] | None
    group: int = 1

    @property
    def unpadded(self) -> bool:
        return self.pads is not None and not any(self.pads)


@dataclass
class Linear:
    kind: str
    weight: np.ndarray
    bias: np.ndarray  # zeros when the layer had none
    has_bias: bool = False
    geometry: ConvGeometry | None = None
    extra: dict = field(default_factory=dict)  # attributes carried unchanged (ConvTranspose)

    @property
    def out_channels(self) -> int:
        if self.kind == CONVTRANSPOSE:
            return self.weight.shape[1] * self.geometry.group
        return self.weight.shape[0] if self.kind == CONV else self.weight.shape[1]

    @property
    def in_channels(self) -> int:
        if self.kind == CONV:
            return self.weight.shape[1] * self.geometry.group
        return self.weight.shape[0]

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:]) if self.kind != DENSE else ()

    def macs_per_output(self) -> int:
        """Multiply-accumulates per output element (of a Conv or dense layer)."""
        if self.kind == DENSE:
            return self.weight.shape[0]
        return self.weight.shape[1] * math.prod(self.kernel)


@dataclass
class Affine:
    """``y = scale * x + shift`` along ``axis`` of ``x`` (vectors of the channel count)."""

    scale: np.ndarray
    shift: np.ndarray


def as_float64(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def per_channel(constant: np.ndarray, rank: int, axis: int, channels: int) -> np.ndarray | None:
    """The length-``channels`` vector a constant holds when it broadcasts against a rank-``rank``
    value along ``axis`` only (scalars included), or None when it varies along another axis or would
    change the value's shape by broadcasting."""
    if constant.ndim > rank:
        return None
    offset = rank - constant.ndim
    for i, dim in enumerate(constant.shape):
        if dim != 1 and (offset + i != axis % rank or dim != channels):
            return None
    return np.broadcast_to(as_float64(constant).reshape(-1), (channels,)).copy() \
        if constant.size in (1, channels) else None


# ---------------------------------------------------------------------------------------------------
# Channel bookkeeping for grouped convolutions
# ---------------------------------------------------------------------------------------------------

def _input_channel_index(linear: Linear) -> np.ndarray:
    """``index[o, j]``: the input channel weight ``W[o, j]`` reads, for grouped convolutions."""
    out_channels, in_per_group = linear.weight.shape[:2]
    out_per_group = out_channels // linear.geometry.group
    groups = np.arange(out_channels) // out_per_group
    return groups[:, None] * in_per_group + np.arange(in_per_group)[None, :]


def _expanded(linear: Linear) -> np.ndarray:
    """A grouped convolution's weight as the equivalent dense-channel ``[Cout, Cin, *k]`` kernel."""
    if linear.geometry.group == 1:
        return linear.weight
    full = np.zeros((linear.weight.shape[0], linear.in_channels, *linear.kernel))
    index = _input_channel_index(linear)
    rows = np.arange(linear.weight.shape[0])[:, None]
    full[rows, index] = linear.weight
    return full


def _spatial(vector: np.ndarray, rank: int) -> np.ndarray:
    return vector.reshape(vector.shape + (1,) * rank)


# ---------------------------------------------------------------------------------------------------
# Affines around a layer
# ---------------------------------------------------------------------------------------------------

def affine_after(linear: Linear, affine: Affine) -> Linear:
    """The layer followed by a per-output-channel affine: ``W' = diag(s) W``, ``b' = s*b + t``."""
    s, t = affine.scale, affine.shift
    if linear.kind == DENSE:
        weight = linear.weight * s[None, :]
    elif linear.kind == CONV:
        weight = linear.weight * _spatial(s, linear.weight.ndim - 1)
    else:  # ConvTranspose: W[Cin, Cout/g, *k]; output channel of W[:, j] in group g is g*Cout_g + j
        groups, per_group = linear.geometry.group, linear.weight.shape[1]
        in_per_group = linear.weight.shape[0] // groups
        group_of_row = np.arange(linear.weight.shape[0]) // in_per_group
        columns = group_of_row[:, None] * per_group + np.arange(per_group)[None, :]
        weight = linear.weight * s[columns].reshape(columns.shape + (1,) * len(linear.kernel))
    has_bias = linear.has_bias or bool(np.any(t != 0))
    return replace(linear, weight=weight, bias=linear.bias * s + t, has_bias=has_bias)


def affine_before(linear: Linear, affine: Affine) -> Linear:
    """The layer reading a per-input-channel affine: ``W' = W diag(s)``, ``b' = b + W t``.

    Raises :class:`NotExact` for a shift before a convolution that reads zero padding."""
    s, t = affine.scale, affine.shift
    shifted = bool(np.any(t != 0))
    if linear.kind == DENSE:
        weight = linear.weight * s[:, None]
        bias = linear.bias + t @ linear.weight
    elif linear.kind == CONV:
        if shifted and not linear.geometry.unpadded:
            raise NotExact("a shift before a zero-padded convolution is not exact: the padded border "
                           "would read 0 where the unfolded graph reads the shift")
        index = _input_channel_index(linear)
        spatial = linear.weight.ndim - 2
        bias = linear.bias + (linear.weight * _spatial(t[index], spatial)).reshape(len(index), -1).sum(1)
        weight = linear.weight * _spatial(s[index], spatial)
    else:
        raise NotExact("an affine before a ConvTranspose is not folded")
    return replace(linear, weight=weight, bias=bias, has_bias=linear.has_bias or shifted)


# ---------------------------------------------------------------------------------------------------
# Chains and sums
# ---------------------------------------------------------------------------------------------------

def _pointwise(linear: Linear) -> bool:
    return (linear.kind == CONV and all(k == 1 for k in linear.kernel) and linear.geometry.unpadded
            and all(s == 1 for s in linear.geometry.strides))


def compose(first: Linear, second: Linear) -> Linear:
    """``second(first(x))`` as one layer; raises :class:`NotExact` when no single layer computes it."""
    if first.kind != second.kind or first.kind == CONVTRANSPOSE:
        raise NotExact(f"cannot compose {first.kind} with {second.kind}")
    if first.kind == DENSE:
        return Linear(DENSE, first.weight @ second.weight, first.bias @ second.weight + second.bias,
                      first.has_bias or second.has_bias)
    if len(first.kernel) != len(second.kernel):
        raise NotExact("convolutions of different rank")
    if _pointwise(second) and second.geometry.group == 1:
        # W[o, c, k] = Σ_r W2[o, r] W1[r, c, k]
        w2 = second.weight.reshape(second.weight.shape[:2])
        weight = np.tensordot(w2, _expanded(first), axes=(1, 0))
        return Linear(CONV, weight, w2 @ first.bias + second.bias, first.has_bias or second.has_bias,
                      replace(first.geometry, group=1))
    if _pointwise(first) and first.geometry.group == 1:
        if first.has_bias and np.any(first.bias != 0) and not second.geometry.unpadded:
            raise NotExact("the first convolution's bias would be read as 0 in the second one's padding")
        w1 = first.weight.reshape(first.weight.shape[:2])
        full = _expanded(second)
        weight = np.einsum("or...,rc->oc...", full, w1)
        bias = second.bias + full.sum(axis=tuple(range(2, full.ndim))) @ first.bias
        return Linear(CONV, weight, bias, first.has_bias or second.has_bias, replace(second.geometry, group=1))
    raise NotExact("neither convolution is 1x1, stride 1, unpadded and ungrouped")


def identity_like(template: Linear, channels: int) -> Linear:
    """The identity map in the form of ``template``: a delta kernel for convolutions."""
    if template.kind == DENSE:
        return Linear(DENSE, np.eye(channels), np.zeros(channels))
    geometry = template.geometry
    rank = len(template.kernel)
    if any(s != 1 for s in geometry.strides):
        raise NotExact("an identity branch next to a strided convolution")
    if channels % geometry.group:
        raise NotExact(f"{channels} channels do not split into {geometry.group} groups")
    per_group = channels // geometry.group
    weight = np.zeros((channels, per_group) + (1,) * rank)
    weight[np.arange(channels), np.arange(channels) % per_group] = 1.0
    return Linear(CONV, weight, np.zeros(channels), False,
                  ConvGeometry((1,) * rank, geometry.dilations, (0,) * (2 * rank), geometry.group))


def negate(linear: Linear) -> Linear:
    return replace(linear, weight=-linear.weight, bias=-linear.bias)


def add(terms: list[Linear]) -> Linear:
    """The sum of layers reading the same input: kernels zero-padded to a common, aligned size."""
    kinds = {t.kind for t in terms}
    if len(kinds) != 1 or CONVTRANSPOSE in kinds:
        raise NotExact(f"branches of different kinds ({', '.join(sorted(kinds))})")
    has_bias = any(t.has_bias for t in terms)
    bias = sum(t.bias for t in terms)
    if terms[0].kind == DENSE:
        if len({t.weight.shape for t in terms}) != 1:
            raise NotExact("dense branches of different shapes")
        return Linear(DENSE, sum(t.weight for t in terms), bias, has_bias)
    geometries = [t.geometry for t in terms]
    for name in ("strides", "dilations", "group"):
        if len({getattr(g, name) for g in geometries}) != 1:
            raise NotExact(f"branches with different {name}")
    if any(g.pads is None for g in geometries):
        raise NotExact("a branch uses auto_pad SAME; explicit pads are needed to align kernels")
    if len({t.weight.shape[:2] for t in terms}) != 1:
        raise NotExact("branches with different channel counts")
    rank = len(terms[0].kernel)
    dilations = geometries[0].dilations
    pads_begin = [max(g.pads[i] for g in geometries) for i in range(rank)]
    pads_end = [max(g.pads[rank + i] for g in geometries) for i in range(rank)]
    padded = []
    size = None
    for term in terms:
        widths = [(0, 0), (0, 0)]
        for i in range(rank):
            before = pads_begin[i] - term.geometry.pads[i]
            after = pads_end[i] - term.geometry.pads[rank + i]
            if before % dilations[i] or after % dilations[i]:
                raise NotExact("branch paddings differ by a non-multiple of the dilation")
            widths.append((before // dilations[i], after // dilations[i]))
        weight = np.pad(term.weight, widths)
        if size is not None and weight.shape != size:
            raise NotExact("branch kernels do not align to one common kernel")
        size = weight.shape
        padded.append(weight)
    geometry = replace(geometries[0], pads=tuple(pads_begin + pads_end))
    return Linear(CONV, sum(padded), bias, has_bias, geometry)


# ---------------------------------------------------------------------------------------------------
# Normalization layers as affines
# ---------------------------------------------------------------------------------------------------

def batchnorm_affine(gamma, beta, mean, var, epsilon: float) -> Affine:
    """Inference BatchNormalization: ``γ (x - μ) / sqrt(σ² + ε) + β``."""
    scale = as_float64(gamma) / np.sqrt(as_float64(var) + float(np.float32(epsilon)))
    return Affine(scale, as_float64(beta) - as_float64(mean) * scale)
