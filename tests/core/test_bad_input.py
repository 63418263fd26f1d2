"""Bad input: one line on stderr naming what is wrong, exit code 2, and no output directory."""

from __future__ import annotations

import pytest

from tests.conftest import run_edgekit
from tests.core.onnx_factory import conv_relu_model, save


def _assert_usage_error(result, *fragments):
    assert result.code == 2, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _build(model, tmp_path, *extra):
    out = tmp_path / "out"
    result = run_edgekit("build", str(model), "--target", "x86-64", "-o", str(out), "-q", *extra)
    if result.code != 0:
        assert not out.exists(), "a failed build must not leave an output directory"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")], "staging left behind"
    return result


def test_missing_file(tmp_path):
    _assert_usage_error(_build(tmp_path / "nope.onnx", tmp_path), "nope.onnx", "no such file")


def test_not_onnx(tmp_path):
    path = tmp_path / "text.onnx"
    path.write_text("this is not a model\n" * 20)
    _assert_usage_error(_build(path, tmp_path), "text.onnx", "not an ONNX model")


def test_truncated_onnx(tmp_path, resnet8):
    path = tmp_path / "truncated.onnx"
    path.write_bytes(resnet8.read_bytes()[: 50_000])
    _assert_usage_error(_build(path, tmp_path), "truncated.onnx")


def test_unknown_file_kind(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF")
    _assert_usage_error(_build(path, tmp_path), "model.h5", "no front end")


def test_pickled_torch_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x80\x04pickle")
    _assert_usage_error(_build(path, tmp_path), "model.pt", "torch.export")


def test_unknown_target_suggests_closest(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    result = run_edgekit("build", model, "--target", "cortex-m5", "-o", str(tmp_path / "out"))
    _assert_usage_error(result, "unknown target 'cortex-m5'", "did you mean", "cortex-m55")
    assert not (tmp_path / "out").exists()


def test_dynamic_shape_needs_input_shape(tmp_path):
    model = save(conv_relu_model(dynamic_batch=True), tmp_path / "dyn.onnx")
    _assert_usage_error(_build(model, tmp_path), "dynamic input dims", "'x'", "--input-shape")
    assert _build(model, tmp_path, "--input-shape", "1,2,6,6").code == 0


def test_input_shape_of_wrong_rank(tmp_path):
    model = save(conv_relu_model(dynamic_batch=True), tmp_path / "dyn.onnx")
    _assert_usage_error(_build(model, tmp_path, "--input-shape", "1,2,6"), "rank 4")


def test_unreadable_config(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    (tmp_path / "edgekit.toml").write_text('target = "x86-64\n')
    result = run_edgekit("build", model, "-o", "out", cwd=tmp_path)
    _assert_usage_error(result, "edgekit.toml", "not valid TOML")


def test_config_with_unknown_key(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    (tmp_path / "edgekit.toml").write_text('target = "x86-64"\ntargte = "cortex-m4"\n')
    _assert_usage_error(run_edgekit("build", model, "-o", "out", cwd=tmp_path), "unknown setting(s) targte")


def test_unknown_pass(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    _assert_usage_error(_build(model, tmp_path, "--passes", "fold-constant"), "unknown pass", "fold-constants")


def test_output_is_a_file(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    (tmp_path / "file").write_text("x")
    result = run_edgekit("build", model, "-t", "x86-64", "-o", str(tmp_path / "file"))
    _assert_usage_error(result, "not a directory")


def test_opset_too_old(tmp_path):
    model = conv_relu_model(opset=9)
    path = save(model, tmp_path / "old.onnx")
    _assert_usage_error(_build(path, tmp_path), "opset 9")


@pytest.mark.parametrize("flag", [["--samples", "0"], ["--option", "novalue"]])
def test_bad_flags(tmp_path, flag):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    assert _build(model, tmp_path, *flag).code == 2


def test_failed_build_leaves_existing_output_untouched(tmp_path):
    good = save(conv_relu_model(), tmp_path / "m.onnx")
    out = tmp_path / "out"
    assert run_edgekit("build", good, "-t", "x86-64", "-o", str(out), "-q").code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.onnx"
    bad.write_text("garbage")
    assert run_edgekit("build", str(bad), "-t", "x86-64", "-o", str(out), "-q").code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _graph_model(nodes, inits=(), opsets=(("", 17),), x_type=None):
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", x_type or TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    return model


def test_graph_with_a_cycle(tmp_path):
    from onnx import helper

    model = _graph_model([helper.make_node("Add", ["x", "z"], ["y"], name="add"),
                          helper.make_node("Relu", ["y"], ["z"], name="relu")])
    _assert_usage_error(_build(save(model, tmp_path / "cycle.onnx"), tmp_path), "cycle.onnx", "topologically sorted")


def test_unknown_operator_domain(tmp_path):
    from onnx import helper

    model = _graph_model([helper.make_node("Frobnicate", ["x"], ["y"], name="frob", domain="com.example")],
                         opsets=(("", 17), ("com.example", 1)))
    _assert_usage_error(_build(save(model, tmp_path / "custom.onnx"), tmp_path),
                        "node 'frob'", "com.example::Frobnicate")


def test_wrong_dtype(tmp_path):
    from onnx import TensorProto, helper

    model = _graph_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], x_type=TensorProto.INT64)
    _assert_usage_error(_build(save(model, tmp_path / "int.onnx"), tmp_path), "int.onnx", "elem type")


def test_nan_weights_are_refused_naming_the_tensor(tmp_path):
    import numpy as np
    from onnx import helper, numpy_helper

    weights = np.eye(4, dtype=np.float32)
    weights[1, 2] = np.nan
    model = _graph_model([helper.make_node("MatMul", ["x", "dense_w"], ["y"], name="mm")],
                         [numpy_helper.from_array(weights, "dense_w")])
    _assert_usage_error(_build(save(model, tmp_path / "nan.onnx"), tmp_path), "'dense_w'", "1 NaN or Inf")


def _external_model(tmp_path, location):
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    sub = tmp_path / "sub"
    sub.mkdir(exist_ok=True)
    model = _graph_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                         [numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")])
    onnx.save(model, str(sub / "m.onnx"), save_as_external_data=True, location="w.bin", size_threshold=0)
    if location != "w.bin":
        model = onnx.load(str(sub / "m.onnx"), load_external_data=False)
        for entry in model.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        onnx.save(model, str(sub / "m.onnx"))
    return sub / "m.onnx"


def test_external_weights_load_and_their_faults_are_named(tmp_path):
    good = _external_model(tmp_path, "w.bin")
    assert _build(good, tmp_path).code == 0
    (good.parent / "w.bin").unlink()
    _assert_usage_error(_build(good, tmp_path / "sub"), "m.onnx", "cannot load external weights")


def test_external_weights_outside_the_model_directory_are_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    model = _external_model(tmp_path, "../secret.bin")
    _assert_usage_error(_build(model, tmp_path / "sub"), "points outside the directory")


def test_output_directory_not_writable(tmp_path):
    import os

    if os.geteuid() == 0:
        locked = tmp_path / "file-parent"
        locked.write_text("a file cannot hold an output directory")
        result = run_edgekit("build", save(conv_relu_model(), tmp_path / "m.onnx"), "-t", "x86-64",
                             "-o", str(locked / "out"))
        _assert_usage_error(result, "file-parent")
        return
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run_edgekit("build", save(conv_relu_model(), tmp_path / "m.onnx"), "-t", "x86-64",
                         "-o", str(locked / "out"))
    _assert_usage_error(result, "not writable")


def _io_model(nodes, x_dims, y_dims, inits=()):
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_zero_size_tensor_is_refused(tmp_path):
    from onnx import helper

    model = _io_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [1, 0, 4], [1, 0, 4])
    _assert_usage_error(_build(save(model, tmp_path / "empty.onnx"), tmp_path),
                        "empty.onnx", "input 'x' [1, 0, 4] is zero-size")


@pytest.mark.parametrize("case", ["input", "intermediate"])
def test_tensor_beyond_32_bit_offsets_is_refused_before_anything_allocates_it(tmp_path, case):
    """A 19.6 GB input, or a 4 GiB tensor an Expand makes from a 4-byte input: named, exit 2 (it
    was a MemoryError from the verification inputs)."""
    import numpy as np
    from onnx import helper, numpy_helper

    if case == "input":
        model = _io_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [70000, 70000], [70000, 70000])
        fragments = ("tensor 'x' [70000, 70000]", "19,600,000,000 bytes")
    else:
        shape = numpy_helper.from_array(np.array([1 << 28, 4], np.int64), "s")
        model = _io_model([helper.make_node("Expand", ["x", "s"], ["y"], name="expand")], [1, 1], [1 << 28, 4],
                          [shape])
        fragments = ("tensor 'y' [268435456, 4]", "4,294,967,296 bytes", "32-bit")
    _assert_usage_error(_build(save(model, tmp_path / f"{case}.onnx"), tmp_path), *fragments)


@pytest.mark.parametrize("problem", ["shape", "dtype", "nan"])
def test_calibration_file_with_the_wrong_shape_or_dtype_is_named(tmp_path, problem):
    import numpy as np

    from tests.conftest import MODELS

    data = {"shape": np.zeros((4, 1, 3, 8, 8), np.float32), "dtype": np.zeros((4, 1, 3, 32, 32), np.int64),
            "nan": np.full((2, 1, 3, 32, 32), np.nan, np.float32)}[problem]
    path = tmp_path / f"{problem}.npy"
    np.save(path, data)
    out = tmp_path / "out"
    result = run_edgekit("build", str(MODELS / "ic_resnet8.onnx"), "--target", "cortex-m4", "--quantize", "int8",
                         "--option", f"calibration={path}", "-o", str(out), "-q")
    expected = {"shape": "has shape [4, 1, 3, 8, 8]", "dtype": "has dtype int64", "nan": "NaN or Inf"}[problem]
    _assert_usage_error(result, f"{problem}.npy", "input 'input_1'", expected)
    assert not out.exists()


def test_non_ascii_tensor_and_node_names_build_and_run_under_sanitizers(tmp_path):
    """Names that are not C identifiers, not ASCII, and that clash once made C-safe: the library
    compiles, and runs on the host under AddressSanitizer and UBSan matching onnxruntime."""
    import json

    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["é x"], ["ü/1"], name="nœud"),
             helper.make_node("Sigmoid", ["ü/1"], ["ü_1"], name="nœud 2"),
             helper.make_node("Add", ["ü/1", "ü_1"], ["出力"], name="加算")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("é x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("出力", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out = tmp_path / "out"
    result = run_edgekit("build", save(model, tmp_path / "names.onnx"), "--target", "x86-64", "--backend", "mcu-c",
                         "--run", "-o", str(out), "-q")
    assert result.code == 0, result.stderr
    run = json.loads((out / "report.json").read_text())["run"]
    assert run["runner"] == "host" and run["measurements"]["sanitizers"] == "address,undefined"
    (out / "model.c").read_text(encoding="ascii")  # the C is ASCII
