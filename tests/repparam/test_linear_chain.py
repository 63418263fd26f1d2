"""collapse-linear-chains: consecutive linear layers merge exactly when one layer is cheaper in MACs;
non-exact chains (a biased 1×1 conv before a padded conv) are left with a note."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.plugins.repparam.linear_chain import collapse_linear_chains
from tests.repparam.graphs import GraphBuilder, apply, note_text, ops, unchanged
from tests.repparam.strategies import conv_cases

SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 8), st.booleans())
def test_gemm_chains_merge_only_when_cheaper(k, r, n, bias):
    g = GraphBuilder(seed=k + r + n)
    x = g.input("x", [3, k])
    h = g.node("Gemm", [x, g.weight("w1", [r, k], k)] + ([g.vector("b1", [r])] if bias else []), "h", transB=1)
    model = g.model(g.node("Gemm", [h, g.weight("w2", [r, n], r), g.vector("b2", [n])], "y"))
    result, notes = apply(collapse_linear_chains, model)
    if k * n < k * r + r * n:
        assert ops(result) == {"Gemm": 1}
    else:
        assert unchanged(model, result) and "MACs" in note_text(notes)


@SETTINGS
@given(conv_cases(), st.integers(1, 6))
def test_conv_then_pointwise_conv_merges_only_when_cheaper(case, out_channels):
    g = GraphBuilder()
    x = g.input("x", case.input_shape())
    first = [x, g.weight("w1", case.weight_shape())] + ([g.vector("b1", [case.cout])] if case.bias else [])
    h = g.node("Conv", first, "h", **case.attrs())
    model = g.model(g.node("Conv", [h, g.weight("w2", [out_channels, case.cout] + [1] * case.rank)], "y",
                           kernel_shape=[1] * case.rank))
    result, notes = apply(collapse_linear_chains, model)
    taps = math.prod(case.kernel)
    chain = case.cin // case.groups * taps * case.cout + case.cout * out_channels
    if case.cin * taps * out_channels < chain:
        assert ops(result) == {"Conv": 1}
    else:
        assert unchanged(model, result) and "MACs" in note_text(notes)


@SETTINGS
@given(conv_cases(pads=st.sampled_from([0, 0, 0, 1]), groups=(1,)), st.integers(1, 6))
def test_pointwise_conv_before_a_conv_merges_when_exact(case, in_channels):
    g = GraphBuilder()
    x = g.input("x", [1, in_channels, *case.spatial])
    h = g.node("Conv", [x, g.weight("w1", [case.cin, in_channels] + [1] * case.rank), g.vector("b1", [case.cin])],
               "h", kernel_shape=[1] * case.rank)
    model = g.model(g.node("Conv", [h, g.weight("w2", case.weight_shape())], "y", **case.attrs()))
    result, notes = apply(collapse_linear_chains, model)
    taps, pixels = math.prod(case.kernel), math.prod(case.spatial)
    outputs = math.prod((n + p_b + p_e - d * (k - 1) - 1) // s + 1 for n, k, d, s, p_b, p_e in zip(
        case.spatial, case.kernel, case.dilations, case.strides, case.pads[:case.rank], case.pads[case.rank:]))
    chain = pixels * in_channels * case.cin + outputs * case.cin * taps * case.cout
    cheaper = outputs * in_channels * taps * case.cout < chain
    if not case.unpadded:
        assert unchanged(model, result) and "padding" in note_text(notes)
    elif cheaper:
        assert ops(result) == {"Conv": 1}
    else:
        assert unchanged(model, result)


def test_batchnorm_before_a_pointwise_conv_folds():
    from tests.repparam.test_affine_folds import batchnorm

    g = GraphBuilder()
    x = g.input("x", [1, 3, 4, 4])
    y = g.node("Relu", [x], "r")
    y = g.node("Conv", [batchnorm(g, y, 3), g.weight("w", [5, 3, 1, 1])], "y", kernel_shape=[1, 1])
    result, _ = apply(collapse_linear_chains, g.model(y))
    assert ops(result) == {"Relu": 1, "Conv": 1}
