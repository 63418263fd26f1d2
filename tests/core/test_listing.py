"""`edgekit targets`, `plugins`, `passes` and `inspect`."""

from __future__ import annotations

from tests.conftest import run_edgekit

REQUIRED_TARGETS = ["cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m55", "cortex-a53", "cortex-a76",
                    "mali-g78", "adreno-650", "x86-64"]


def test_targets_lists_every_required_profile():
    result = run_edgekit("targets")
    assert result.code == 0, result.stderr
    for name in REQUIRED_TARGETS:
        assert name in result.stdout


def test_plugins_lists_first_party_plugins_with_version_and_what_they_provide():
    result = run_edgekit("plugins")
    assert result.code == 0, result.stderr
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    assert "0.1.0" in lines["cleanup"] and "fold-constants" in lines["cleanup"]
    assert "front end" in lines["onnx"] and "front end" in lines["torch"]
    assert "backends: onnxruntime" in lines["onnxruntime"]
    assert "cortex-m4" in lines["targets"]
    # TVM's kernels for mcu-c come through the kernel-library hook, as a third party's would
    assert "kernel_libraries: tvm" in lines["tvm"]


def test_passes_lists_registered_passes():
    result = run_edgekit("passes")
    assert result.code == 0
    assert "fold-constants" in result.stdout and "eliminate-dead-code" in result.stdout


def test_inspect_reports_ops_macs_and_support(resnet8):
    result = run_edgekit("inspect", str(resnet8), "--target", "x86-64")
    assert result.code == 0, result.stderr
    assert "77,708 parameters" in result.stdout and "12,501,632 MACs" in result.stdout
    conv = next(line for line in result.stdout.splitlines() if "│ Conv " in line)
    assert "9" in conv and "yes" in conv


def test_inspect_json_api_flags_unsupported_ops(tmp_path):
    from edgekit.inspection import inspect_model
    from edgekit.registry import Registry
    from tests.core.onnx_factory import conv_relu_model, save

    path = save(conv_relu_model(), tmp_path / "m.onnx")
    info = inspect_model(path, Registry(), "x86-64", [])
    assert info["ops"]["Conv"]["supported"] is True
    assert info["ops"]["Conv"]["macs"] == 4 * 6 * 6 * 2 * 9
    assert "Conv" in info["supported_ops"]


def test_user_target_profile_from_a_file(tmp_path):
    from tests.core.onnx_factory import conv_relu_model, save

    profile = tmp_path / "my-board.toml"
    profile.write_text('name = "my-board"\nbackend = "onnxruntime"\nrunner = "onnxruntime"\n'
                       'passes = ["eliminate-dead-code"]\n')
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    out = tmp_path / "o"
    result = run_edgekit("build", model, "--target", str(profile), "-o", str(out), "-q", "--run")
    assert result.code == 0, result.stderr
    import json

    report = json.loads((out / "report.json").read_text())
    assert report["target"]["name"] == "my-board"
    assert [p["name"] for p in report["passes"]] == ["eliminate-dead-code"]


def test_user_target_profile_with_unknown_field_is_named(tmp_path):
    profile = tmp_path / "typo.toml"
    profile.write_text('name = "typo"\nbakend = "onnxruntime"\n')
    result = run_edgekit("build", "whatever.onnx", "--target", str(profile), "-o", str(tmp_path / "o"))
    assert result.code == 2
    assert "typo.toml: unknown target field(s) bakend" in result.stderr


def test_passes_dry_run_on_a_model_shows_matches(tmp_path):
    from onnx import helper

    from tests.core.onnx_factory import conv_relu_model, save

    model = conv_relu_model()
    model.graph.node.append(helper.make_node("Identity", ["y"], ["y_copy"], name="dead_identity"))
    path = save(model, tmp_path / "m.onnx")
    from edgekit.inspection import dry_run_passes
    from edgekit.registry import Registry

    results = {r["pass"]: r for r in dry_run_passes(path, Registry(), None, [])}
    assert results["eliminate-dead-code"]["before"]["nodes"] == 2  # fold-constants already dropped it
    result = run_edgekit("passes", path)
    assert result.code == 0 and "eliminate-dead-code" in result.stdout and "no match" in result.stdout
