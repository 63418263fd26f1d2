"""LayerNormalization beyond the random op cases: a constant scale/bias broadcast that is not a
trailing block (expanded at build time), a large-offset row (two-pass variance, no cancellation),
in-place planning, and the refusals a user can hit."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit.plugins.mcu.optable import LIMITS, supported_ops_list

from .helpers import build_shared, generate_model, host_model, ort_run

F = TensorProto.FLOAT


def _model(x_shape, scale, bias=None, inputs=(), pre="Sigmoid", **attrs):
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k)
             for k, v in (("scale", scale), ("bias", bias)) if v is not None and k not in inputs]
    ins = ["xs", "scale"] + (["bias"] if bias is not None else [])
    nodes = [helper.make_node(pre, ["x"], ["xs"]),
             helper.make_node("LayerNormalization", ins, ["y"], name="ln", **attrs)]
    graph_inputs = [helper.make_tensor_value_info("x", F, x_shape)]
    graph_inputs += [helper.make_tensor_value_info(k, F, np.shape(v)) for k, v in
                     (("scale", scale), ("bias", bias)) if k in inputs]
    graph = helper.make_graph(nodes, "g", graph_inputs, [helper.make_tensor_value_info("y", F, None)],
                              inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_non_trailing_constant_broadcast_and_offset_rows_match_onnxruntime(tmp_path):
    rng = np.random.default_rng(7)
    cases = [  # scale [4, 1] over normalized [4, 3]: expanded to a whole-row constant
        (_model([2, 4, 3], rng.uniform(0.5, 1.5, (4, 1)), rng.standard_normal((1, 3)), axis=1),
         {"x": rng.standard_normal((2, 4, 3)).astype(np.float32)}),
        # rows far from zero with a small spread: a float E[x^2] - E[x]^2 loses most digits
        (_model([3, 256], np.ones(256), np.zeros(256), pre="Relu", epsilon=1e-12),
         {"x": (4.0 + 0.1 * rng.standard_normal((3, 256))).astype(np.float32)})]
    gens = [(tmp_path / f"m{i}", generate_model(m, tmp_path / f"m{i}", f"m{i}", with_kernels=False,
                                                 with_integration=False)) for i, (m, _) in enumerate(cases)]
    assert gens[0][1].schedule.layers[1].params["scale_size"] == 12  # expanded, not a trailing block
    lib = build_shared(gens, tmp_path)
    for (model, feeds), (_, gen) in zip(cases, gens):
        got = host_model(lib, gen).run([feeds["x"]])[0]
        ref = ort_run(model, feeds)[0]
        np.testing.assert_allclose(got, ref.reshape(got.shape), rtol=1e-5, atol=1e-5)


def test_layernorm_runs_in_place_when_its_input_dies(tmp_path):
    gen = generate_model(_model([4, 8], np.ones(8)), tmp_path, "ln")
    sig, ln = gen.schedule.layers
    assert ln.function == "ek_layernorm_f32" and ln.inplace == (ln.outputs[0], sig.outputs[0])


@pytest.mark.parametrize("kw, match", [
    (dict(scale=np.ones((4, 1)), inputs=("scale",), axis=1),
     "node 'ln' \\(op LayerNormalization\\).*scale 'scale' of shape \\[4, 1\\] broadcasts over "
     "non-trailing normalized dims"),
    (dict(scale=np.ones(3), stash_type=0), "node 'ln' \\(op LayerNormalization\\).*stash_type 0"),
    (dict(scale=np.ones(5), axis=1), "node 'ln' \\(op LayerNormalization\\).*scale shape \\[5\\] "
                                       "does not broadcast"),
])
def test_unsupported_forms_are_refused_naming_the_node(tmp_path, kw, match):
    with pytest.raises(edgekit.BuildError, match=match):
        generate_model(_model([2, 4, 3], **kw), tmp_path, "bad")


def test_layernorm_is_claimed_and_documented():
    assert "LayerNormalization" in supported_ops_list() and "LayerNormalization" in LIMITS
