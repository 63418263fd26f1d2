"""MoE models through the TVM back end: the router's TopK lowers to a plain kernel (TVM 0.27 has no
legalization for it) and the built library matches onnxruntime on inputs that reach every expert,
for the original and the partitioned model. TVM computes the experts densely (no conditional
execution on TVM targets yet)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgekit.build import BuildRequest, build
from tests.experts.test_moe_on_device import covering_inputs

pytest.importorskip("tvm", reason="the tvm extra is not installed")


def tvm_build(path, out, inputs=None, passes=None, samples=1):
    from tests.tvm.conftest import tvm_registry

    request = BuildRequest(model=str(path), target="x86-64-v3", output=out, run=True, backend="tvm",
                           inputs_file=inputs, passes=passes, verify_samples=samples,
                           options={"no_tuning": True, "timing_repeats": 1})
    return build(request, tvm_registry())


@pytest.mark.parametrize("factory", ["make_moe_mlp", "make_gather_moe_mlp", "make_moe_block"])
@pytest.mark.parametrize("passes", [None, ["fold-constants", "experts-partition"]], ids=["original", "partitioned"])
def test_moe_on_tvm_matches_onnxruntime(moe_onnx, tmp_path, factory, passes):
    inputs = covering_inputs(onnx.load(moe_onnx(factory)), tmp_path / "in.npy")
    report = tvm_build(moe_onnx(factory), tmp_path / "out", inputs, passes)
    run = report["run"]
    assert run["samples"] == 48 and run["max_abs_error"] <= 1e-4, run
    assert any("topk" in kernel for kernel in report["backend"]["kernels"]), report["backend"]["kernels"]


def _topk_model(path, largest: int, k: int) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 6])
    values = helper.make_tensor_value_info("values", TensorProto.FLOAT, [3, k])
    indices = helper.make_tensor_value_info("indices", TensorProto.INT64, [3, k])
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=1, largest=largest, sorted=1)
    graph = helper.make_graph([node], "topk", [x], [values, indices],
                              [helper.make_tensor("k", TensorProto.INT64, [1], [k])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_kernel_breaks_ties_like_onnx(tmp_path, largest):
    """Ties go to the lower index (ONNX's order): rows with repeated values catch a rank kernel
    that counts ties on the wrong side (duplicate or missing indices)."""
    _topk_model(tmp_path / "topk.onnx", largest, k=3)
    rows = np.array([[1, 5, 5, 2, 5, 0], [3, 3, 3, 3, 3, 3], [-1, 4, -2, 4, -2, 0]], dtype=np.float32)
    np.save(tmp_path / "x.npy", rows[None])
    report = tvm_build(tmp_path / "topk.onnx", tmp_path / "out", str(tmp_path / "x.npy"))
    assert report["run"]["max_abs_error"] == 0.0, report["run"]
