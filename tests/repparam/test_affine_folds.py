"""fold-ssf and fold-batchnorm: per-channel affines after/before Conv, ConvTranspose, Gemm, MatMul,
over random geometries, checked against onnxruntime on the unfolded graph. Folds that are not exact
(a shift before a zero-padded conv, data-dependent Mul) must leave the graph untouched."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from edgekit.context import BuildContext
from edgekit.plugins.repparam.batchnorm_fold import fold_batchnorm
from edgekit.plugins.repparam.ssf_fold import fold_ssf
from tests.repparam.graphs import GraphBuilder, apply, note_text, ops, parameters, unchanged
from tests.repparam.strategies import channel_shape, conv_cases

SETTINGS = settings(max_examples=50, deadline=None)


def conv(g: GraphBuilder, x: str, case, name: str = "conv") -> str:
    inputs = [x, g.weight(f"{name}_w", case.weight_shape())]
    if case.bias:
        inputs.append(g.vector(f"{name}_b", [case.cout]))
    return g.node("Conv", inputs, name, **case.attrs())


def batchnorm(g: GraphBuilder, x: str, channels: int, name: str = "bn") -> str:
    params = [g.vector(f"{name}_gamma", [channels], 1.0, 0.3), g.vector(f"{name}_beta", [channels]),
              g.vector(f"{name}_mean", [channels]), g.const(f"{name}_var", 0.5 + g.rng.random(channels))]
    return g.node("BatchNormalization", [x, *params], name, epsilon=1e-3)


@SETTINGS
@given(conv_cases(), st.data())
def test_ssf_after_conv_folds_into_weights_and_bias(case, data):
    g = GraphBuilder()
    y = conv(g, g.input("x", case.input_shape()), case)
    rank = case.rank + 2
    y = g.node("Mul", [y, g.vector("scale", channel_shape(data.draw, case.cout, rank, 1), 1.0)], "scaled")
    shift_op = data.draw(st.sampled_from(["Add", "Sub"]))
    y = g.node(shift_op, [y, g.vector("shift", channel_shape(data.draw, case.cout, rank, 1))], "y")
    model = g.model(y)
    result, notes = apply(fold_ssf, model)
    assert ops(result) == {"Conv": 1}
    assert "folded Mul into the preceding Conv" in note_text(notes)


@SETTINGS
@given(st.data())
def test_ssf_after_dense_layers_folds(data):
    g = GraphBuilder()
    k, n = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    form = data.draw(st.sampled_from(["Gemm", "MatMul"]))
    rank = 2 if form == "Gemm" else data.draw(st.integers(2, 3))
    x = g.input("x", [2] * (rank - 1) + [k])
    if form == "Gemm":
        trans_b = data.draw(st.booleans())
        inputs = [x, g.weight("w", [n, k] if trans_b else [k, n], k)]
        if data.draw(st.booleans()):
            inputs.append(g.vector("c", data.draw(st.sampled_from([[n], [1, n]]))))
        y = g.node("Gemm", inputs, "dense", transB=int(trans_b), alpha=data.draw(st.sampled_from([1.0, 0.5])),
                   beta=data.draw(st.sampled_from([1.0, 2.0])))
    else:
        y = g.node("MatMul", [x, g.weight("w", [k, n], k)], "dense")
        if data.draw(st.booleans()):
            y = g.node("Add", [g.vector("b", [n]), y], "biased")  # the legacy exporter's operand order
    y = g.node("Mul", [y, g.vector("scale", channel_shape(data.draw, n, rank, -1), 1.0)], "scaled")
    y = g.node("Add", [y, g.vector("shift", channel_shape(data.draw, n, rank, -1))], "y")
    result, _ = apply(fold_ssf, g.model(y))
    assert ops(result) == ({"Gemm": 1} if form == "Gemm" else {"MatMul": 1, "Add": 1})


@SETTINGS
@given(conv_cases(), st.data())
def test_scale_before_conv_folds_even_with_padding(case, data):
    g = GraphBuilder()
    x = g.input("x", case.input_shape())
    scaled = g.node("Mul", [x, g.vector("scale", channel_shape(data.draw, case.cin, case.rank + 2, 1), 1.0)], "s")
    result, _ = apply(fold_ssf, g.model(conv(g, scaled, case)))
    assert ops(result) == {"Conv": 1}


@SETTINGS
@given(conv_cases(pads=st.sampled_from([0, 0, 1])), st.data())
def test_shift_before_conv_folds_only_without_padding(case, data):
    g = GraphBuilder()
    x = g.input("x", case.input_shape())
    shifted = g.node("Add", [x, g.vector("shift", channel_shape(data.draw, case.cin, case.rank + 2, 1))], "s")
    model = g.model(conv(g, shifted, case))
    result, notes = apply(fold_ssf, model)
    if case.unpadded:
        assert ops(result) == {"Conv": 1}
    else:
        assert unchanged(model, result)
        assert "shift before a zero-padded convolution is not exact" in note_text(notes)


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from(["Gemm", "MatMul"]), st.data())
def test_affine_before_dense_layer_folds(k, n, form, data):
    g = GraphBuilder()
    x = g.input("x", [3, k])
    y = g.node("Mul", [x, g.vector("scale", channel_shape(data.draw, k, 2, -1), 1.0)], "s")
    y = g.node("Add", [y, g.vector("shift", channel_shape(data.draw, k, 2, -1))], "t")
    if form == "Gemm":
        y = g.node("Gemm", [y, g.weight("w", [n, k], k)], "y", transB=1)
    else:
        y = g.node("MatMul", [y, g.weight("w", [k, n], k)], "y")
    result, _ = apply(fold_ssf, g.model(y))
    assert ops(result) == ({"Gemm": 1} if form == "Gemm" else {"MatMul": 1, "Add": 1})


@SETTINGS
@given(conv_cases(groups=(1, 2)), st.sampled_from(["Conv", "ConvTranspose", "Gemm"]))
def test_batchnorm_after_layer_folds(case, layer):
    g = GraphBuilder()
    if layer == "Gemm":
        y = g.node("Gemm", [g.input("x", [2, case.cin]), g.weight("w", [case.cout, case.cin], case.cin)], "d", transB=1)
    elif layer == "Conv":
        y = conv(g, g.input("x", case.input_shape()), case)
    else:  # ConvTranspose weights are [Cin, Cout/group, *k]
        inputs = [g.input("x", case.input_shape()), g.weight("w", [case.cin, case.cout // case.groups, *case.kernel])]
        if case.bias:
            inputs.append(g.vector("b", [case.cout]))
        attrs = case.attrs()
        attrs["pads"] = [0] * (2 * case.rank)
        y = g.node("ConvTranspose", inputs, "d", **attrs)
    result, _ = apply(fold_batchnorm, g.model(batchnorm(g, y, case.cout)))
    assert ops(result) == {layer: 1}


@SETTINGS
@given(conv_cases(pads=st.sampled_from([0, 0, 1])))
def test_batchnorm_before_conv_folds_only_without_padding(case):
    g = GraphBuilder()
    model = g.model(conv(g, batchnorm(g, g.input("x", case.input_shape()), case.cin), case))
    result, notes = apply(fold_batchnorm, model)
    if case.unpadded:
        assert ops(result) == {"Conv": 1}
    else:
        assert unchanged(model, result)
        assert "zero-padded" in note_text(notes)


def test_data_dependent_mul_and_add_are_never_folded():
    g = GraphBuilder()
    x, gate = g.input("x", [1, 2, 5, 5]), g.input("gate", [1, 4, 1, 1])
    y = g.node("Conv", [x, g.weight("w", [4, 2, 3, 3])], "c", pads=[1, 1, 1, 1])
    y = g.node("Mul", [y, gate], "m")
    y = g.node("Add", [y, gate], "y")
    model = g.model(y)
    result, notes = apply(fold_ssf, model)
    assert unchanged(model, result) and not notes


def test_a_shared_weight_is_copied_not_changed_under_its_other_reader():
    g = GraphBuilder()
    x = g.input("x", [1, 2, 5, 5])
    w = g.weight("w", [3, 2, 3, 3])
    first = g.node("Conv", [x, w], "c1", pads=[1, 1, 1, 1])
    second = g.node("Conv", [x, w], "c2", pads=[1, 1, 1, 1])
    scaled = g.node("Mul", [first, g.vector("s", [1, 3, 1, 1], 1.0)], "y1")
    model = g.model(scaled, second)
    result, _ = apply(fold_ssf, model)  # apply() checks both outputs against the unfolded graph
    assert ops(result) == {"Conv": 2}
    assert parameters(result) == parameters(model) - 3 + 54


def test_ssf_after_layernorm_and_layernorm_affine_fold_into_the_next_linear():
    g = GraphBuilder()
    x = g.input("x", [1, 4, 6])
    y = g.node("LayerNormalization", [x, g.vector("gamma", [6], 1.0), g.vector("beta", [6])], "ln", axis=-1)
    y = g.node("Mul", [y, g.vector("s", [6], 1.0)], "s1")
    y = g.node("Add", [y, g.vector("t", [1, 1, 6])], "t1")
    y = g.node("MatMul", [y, g.weight("w", [6, 5])], "mm")
    y = g.node("Add", [y, g.vector("b", [5])], "y")
    result, notes = apply(fold_ssf, g.model(y))
    assert ops(result) == {"LayerNormalization": 1, "MatMul": 1, "Add": 1}
    norm = next(n for n in result.graph.node if n.op_type == "LayerNormalization")
    scale = next(t for t in result.graph.initializer if t.name == norm.input[1])
    assert len(norm.input) == 2 and np.all(np.frombuffer(scale.raw_data, np.float32) == 1.0)
    assert "LayerNormalization's affine" in note_text(notes)


def test_training_mode_batchnorm_is_left_and_reported():
    g = GraphBuilder()
    x = g.input("x", [2, 3, 4, 4])
    y = g.node("Conv", [x, g.weight("w", [3, 3, 1, 1])], "c")
    params = [g.vector("g", [3], 1.0), g.vector("b", [3]), g.vector("m", [3]), g.const("v", np.ones(3))]
    g.nodes.append(helper.make_node("BatchNormalization", [y, *params], ["y", "running_mean", "running_var"],
                                    name="bn", training_mode=1))
    model = g.model("y")
    context = BuildContext(target=None, registry=None)
    assert unchanged(model, fold_batchnorm(model, context))
    assert "batch statistics" in note_text(context.take_notes())
