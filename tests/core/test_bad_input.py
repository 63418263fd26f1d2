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
