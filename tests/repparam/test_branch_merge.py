"""merge-branches: parallel convolutions (random kernel sizes, asymmetric kernels and paddings,
strides, dilations, groups) plus identity and BN-identity branches, summed with Add/Sub, become
one convolution exactly when a common aligned kernel exists and it does not cost more MACs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.plugins.repparam.branch_merge import merge_branches
from tests.repparam.graphs import GraphBuilder, apply, note_text, ops, unchanged
from tests.repparam.test_affine_folds import batchnorm

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def branch_blocks(draw):
    """Branches that all read the same input positions once their kernels are zero-padded to K."""
    rank = draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 2]))
    channels = groups * draw(st.integers(1, 3))
    identity = draw(st.booleans())
    axes = []
    for _ in range(rank):
        size, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        if identity:  # output size == input size: P_b + P_e = d (K - 1), both on the kernel grid
            front = draw(st.integers(0, size - 1))
            pads = (front * dilation, (size - 1 - front) * dilation)
        else:
            pads = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        axes.append((size, dilation, pads))
    stride = 1 if identity else draw(st.integers(1, 2))
    count = draw(st.integers(1 if identity else 2, 3))
    branches = []
    for index in range(count):
        kernel, pads_begin, pads_end = [], [], []
        for size, dilation, (p_b, p_e) in axes:
            full = index == 0 and draw(st.booleans())
            before = 0 if full else draw(st.integers(0, min(size - 1, p_b // dilation)))
            after = 0 if full else draw(st.integers(0, min(size - 1 - before, p_e // dilation)))
            kernel.append(size - before - after)
            pads_begin.append(p_b - before * dilation)
            pads_end.append(p_e - after * dilation)
        branches.append({"kernel_shape": kernel, "pads": pads_begin + pads_end, "strides": [stride] * rank,
                         "dilations": [a[1] for a in axes], "group": groups})
    spatial = [draw(st.integers(max(1, d * (k - 1) + 1 - sum(p)), d * (k - 1) + 4)) for k, d, p in axes]
    signs = [draw(st.sampled_from([1, -1])) for _ in range(count + 2)]
    return {"channels": channels, "groups": groups, "branches": branches, "spatial": spatial,
            "identity": identity, "bn_identity": identity and draw(st.booleans()), "signs": signs,
            "size": [a[0] for a in axes], "bias": draw(st.booleans())}


def build_block(block):
    g = GraphBuilder(seed=len(block["branches"]))
    c = block["channels"]
    x = g.input("x", [1, c, *block["spatial"]])
    terms = []
    for i, attrs in enumerate(block["branches"]):
        inputs = [x, g.weight(f"w{i}", [c, c // block["groups"], *attrs["kernel_shape"]])]
        if block["bias"]:
            inputs.append(g.vector(f"b{i}", [c]))
        terms.append(g.node("Conv", inputs, f"branch{i}", **attrs))
    if block["identity"]:
        terms.append(x)
    if block["bn_identity"]:
        terms.append(batchnorm(g, x, c, "bn_identity"))
    total = terms[0]
    for i, term in enumerate(terms[1:]):
        op = "Add" if block["signs"][i] > 0 else "Sub"
        total = g.node(op, [total, term], f"sum{i}" if i < len(terms) - 2 else "y")
    return g.model(g.node("Relu", [total], "out"))


def merged_kernel(block) -> list[int]:
    """Per axis, the taps the branches read together, as input offsets ``-pad + dilation * tap``."""
    sizes = []
    for axis, dilation in enumerate(block["branches"][0]["dilations"]):
        spans = [(-b["pads"][axis], -b["pads"][axis] + dilation * (b["kernel_shape"][axis] - 1))
                 for b in block["branches"]]
        if block["identity"] or block["bn_identity"]:
            spans.append((0, 0))
        sizes.append((max(s[1] for s in spans) - min(s[0] for s in spans)) // dilation + 1)
    return sizes


@SETTINGS
@given(branch_blocks())
def test_parallel_branches_merge_when_aligned_and_not_costlier(block):
    model = build_block(block)
    result, notes = apply(merge_branches, model)
    merged_cost = math.prod(merged_kernel(block))
    branch_cost = sum(math.prod(b["kernel_shape"]) for b in block["branches"])
    if merged_cost <= branch_cost:
        assert ops(result) == {"Conv": 1, "Relu": 1}, note_text(notes)
        assert "merged parallel branches" in note_text(notes)
    else:
        assert unchanged(model, result)
        assert "MACs" in note_text(notes)


def test_branches_with_different_dilations_are_left_untouched():
    g = GraphBuilder()
    x = g.input("x", [1, 2, 7, 7])
    a = g.node("Conv", [x, g.weight("wa", [2, 2, 3, 3])], "a", pads=[1, 1, 1, 1])
    b = g.node("Conv", [x, g.weight("wb", [2, 2, 3, 3])], "b", pads=[2, 2, 2, 2], dilations=[2, 2])
    model = g.model(g.node("Add", [a, b], "y"))
    result, notes = apply(merge_branches, model)
    assert unchanged(model, result)
    assert "different dilations" in note_text(notes)


def test_identity_off_the_kernel_grid_is_left_untouched():
    g = GraphBuilder()
    x = g.input("x", [1, 2, 7, 7])
    a = g.node("Conv", [x, g.weight("wa", [2, 2, 3, 3])], "a", pads=[1, 1, 3, 3], dilations=[2, 2])
    model = g.model(g.node("Add", [a, x], "y"))
    result, notes = apply(merge_branches, model)
    assert unchanged(model, result)
    assert "non-multiple of the dilation" in note_text(notes)


@pytest.mark.parametrize("inner, outer", [("Add", "Add"), ("Sub", "Add"), ("Sub", "Sub"), ("Add", "Sub")])
def test_only_the_branches_sharing_an_input_merge(inner, outer):
    g = GraphBuilder()
    x, z = g.input("x", [1, 2, 6, 6]), g.input("z", [1, 2, 6, 6])
    a = g.node("Conv", [x, g.weight("wa", [2, 2, 3, 3])], "a", pads=[1, 1, 1, 1])
    b = g.node("Conv", [x, g.weight("wb", [2, 2, 1, 1])], "b")
    c = g.node("Conv", [z, g.weight("wc", [2, 2, 1, 1])], "c")
    y = g.node(outer, [g.node(inner, [a, c], "ac"), b], "y")  # a - c - b: c stays, with its sign
    result, _ = apply(merge_branches, g.model(y))
    assert ops(result) == {"Conv": 2, "Add" if inner == "Add" else "Sub": 1}


def test_branches_with_unfolded_batchnorm_and_scales_compose_on_the_way():
    g = GraphBuilder()
    x = g.input("x", [1, 4, 6, 6])
    a = batchnorm(g, g.node("Conv", [x, g.weight("wa", [4, 4, 3, 3])], "a", pads=[1, 1, 1, 1]), 4, "bn_a")
    b = g.node("Conv", [x, g.weight("wb", [4, 4, 1, 1])], "b")
    b = g.node("Mul", [b, g.const("theta", 0.7)], "b_scaled")
    y = g.node("Sub", [g.node("Add", [a, batchnorm(g, x, 4, "bn_id")], "ai"), b], "y")
    result, notes = apply(merge_branches, g.model(y))
    assert ops(result) == {"Conv": 1}
    assert "3 branches" in note_text(notes)
