"""merge-lora: ``base(x) + s·B(A(x))`` in the forms exporters emit (MatMul, Gemm with transB,
scale as Mul before or after the adapter, bias Add either side) and the conv form (A: k×k conv,
B: 1×1 conv) merge into the base layer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.plugins.repparam.lora_merge import merge_lora
from tests.repparam.graphs import GraphBuilder, apply, note_text, ops
from tests.repparam.strategies import conv_cases

SETTINGS = settings(max_examples=60, deadline=None)


def dense(g, x, k, n, form, name, bias=False):
    if form == "Gemm":
        inputs = [x, g.weight(f"{name}_w", [n, k], k)] + ([g.vector(f"{name}_b", [n])] if bias else [])
        return g.node("Gemm", inputs, name, transB=1)
    y = g.node("MatMul", [x, g.weight(f"{name}_w", [k, n], k)], f"{name}_mm")
    return g.node("Add", [y, g.vector(f"{name}_b", [n])], name) if bias else y


@SETTINGS
@given(st.integers(2, 6), st.integers(2, 6), st.integers(1, 3), st.sampled_from(["Gemm", "MatMul"]),
       st.sampled_from(["after", "before", "none"]), st.integers(2, 3), st.booleans())
def test_dense_lora_merges_into_the_base_layer(k, n, rank, form, scale_at, input_rank, bias):
    if form == "Gemm":
        input_rank = 2
    g = GraphBuilder(seed=k * n + rank)
    x = g.input("x", [2] * (input_rank - 1) + [k])
    base = dense(g, x, k, n, form, "base", bias)
    adapter_in = g.node("Mul", [x, g.const("s_in", 0.5)], "scaled_x") if scale_at == "before" else x
    adapter = dense(g, dense(g, adapter_in, k, rank, form, "lora_A"), rank, n, form, "lora_B")
    if scale_at == "after":
        adapter = g.node("Mul", [adapter, g.const("s_out", 2.0)], "scaled")
    result, notes = apply(merge_lora, g.model(g.node("Add", [base, adapter], "y")))
    expected = {"Gemm": 1} if form == "Gemm" else ({"MatMul": 1, "Add": 1} if bias else {"MatMul": 1})
    assert ops(result) == expected
    assert "merged LoRA adapter" in note_text(notes)


@SETTINGS
@given(conv_cases(groups=(1,)), st.integers(1, 3))
def test_conv_lora_merges_into_the_base_conv(case, rank):
    g = GraphBuilder()
    x = g.input("x", case.input_shape())
    base_inputs = [x, g.weight("w", case.weight_shape())] + ([g.vector("b", [case.cout])] if case.bias else [])
    base = g.node("Conv", base_inputs, "base", **case.attrs())
    down = g.node("Conv", [x, g.weight("a", [rank, case.cin, *case.kernel])], "lora_A", **case.attrs())
    up = g.node("Conv", [down, g.weight("bw", [case.cout, rank] + [1] * case.rank)], "lora_B",
                kernel_shape=[1] * case.rank)
    scaled = g.node("Mul", [up, g.const("scaling", 2.0)], "scaled")
    result, _ = apply(merge_lora, g.model(g.node("Add", [base, scaled], "y")))
    assert ops(result) == {"Conv": 1}


def test_parallel_single_layers_are_not_lora():
    g = GraphBuilder()
    x = g.input("x", [2, 4])
    y = g.node("Add", [dense(g, x, 4, 3, "Gemm", "a"), dense(g, x, 4, 3, "Gemm", "b")], "y")
    model = g.model(y)
    result, _ = apply(merge_lora, model)
    assert ops(result) == {"Gemm": 2, "Add": 1}
