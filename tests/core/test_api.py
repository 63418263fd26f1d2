"""The Python API (``edgekit.build``/``run``/``inspect``, ``Report``) and ``edgekit run --option/--save``:
the CLI's defaults, settings file and exit codes, as exceptions in the caller's own process."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit import BuildError, Report, UsageError
from tests.conftest import REPO, run_edgekit
from tests.core.onnx_factory import conv_relu_model, save


def _report_json(out) -> dict:
    return json.loads((Path(out) / "report.json").read_text())


def _onnxruntime(model: str, x: np.ndarray) -> np.ndarray:
    """The model's output for one input set, straight from onnxruntime (not through edgekit)."""
    import onnxruntime as ort

    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return save(conv_relu_model(), tmp_path_factory.mktemp("model") / "conv.onnx")


@pytest.fixture(scope="module")
def host(model, tmp_path_factory) -> Report:
    """A host build, output given as a Path."""
    return edgekit.build(model, target="x86-64", output=tmp_path_factory.mktemp("host") / "out", run=True,
                         samples=2)


@pytest.fixture(scope="module")
def m4(model, tmp_path_factory) -> Report:
    """A cortex-m4 build run on the emulated board, output given as a str."""
    return edgekit.build(model, "cortex-m4", output=str(tmp_path_factory.mktemp("m4") / "out"), run=True)


def test_host_report_is_a_view_of_report_json(host, model):
    data = _report_json(host.output_dir)
    assert host.output_dir.is_absolute() and host.output_dir.name == "out"
    assert host.to_dict() == data == Report.load(str(host.output_dir)).to_dict()
    assert host.target == data["target"]["name"] == "x86-64"
    assert host.passed is True and host.samples == data["run"]["samples"] == 2
    assert host.max_abs_error == data["run"]["max_abs_error"]
    assert host.model_sha256 == hashlib.sha256(Path(model).read_bytes()).hexdigest()
    assert host.edgekit_version == edgekit.__version__
    assert host.passes == [p["name"] for p in data["passes"]] and host.passes
    assert host.macs == data["model"]["after"]["macs"] > 0
    # onnxruntime measures none of these: missing figures are None, not KeyError
    assert host.instructions is None and host.flash_bytes is None and host.arena_bytes is None
    assert host.get("backend", "no such key") is None and host.get("target", "name") == "x86-64"
    with pytest.raises(AttributeError):
        host.instructions = 1


def test_cortex_m4_run_figures(m4, model):
    data = _report_json(m4.output_dir)
    measured = data["run"]["measurements"]
    assert m4.runner == data["target"]["runner"] and m4.passed is True
    assert m4.instructions == measured["instructions"] > 0
    assert m4.instructions_per_layer == measured["instructions_per_layer"]
    assert m4.flash_bytes == measured["flash_bytes"] > m4.model_flash_bytes == measured["model_flash_bytes"] > 0
    assert m4.ram_bytes == measured["ram_bytes"] and m4.model_ram_bytes == measured["model_ram_bytes"]
    assert m4.stack_bytes == measured["stack_bytes"] > 0
    assert m4.arena_bytes == data["backend"]["arena_bytes"] and m4.code_bytes == data["backend"]["code_bytes"]
    assert m4.max_abs_error == data["run"]["max_abs_error"] <= data["run"]["tolerance"]["atol"]
    assert m4.measurements == measured
    assert Report.load(Path(m4.output_dir)).to_dict() == data


def test_defaults_and_settings_file_are_the_clis(model, tmp_path, monkeypatch):
    """No target and no output given: both come from edgekit.toml and the default, as for the CLI,
    whose build of the same call writes a byte-identical report.json."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDGEKIT_REPRODUCIBLE", "1")
    (tmp_path / "edgekit.toml").write_text('target = "x86-64"\nseed = 3\nverify_samples = 2\nname = "conv"\n'
                                           '[options]\nsome_option = 5\n')
    report = edgekit.build(model)
    out = tmp_path / "build" / "conv-x86-64"
    assert report.output_dir == out and report.target == "x86-64"
    assert report.get("verification", "seed") == 3 and report.get("verification", "samples") == 2
    assert report.get("options") == {"name": "conv", "some_option": 5}
    written = (out / "report.json").read_bytes()
    result = run_edgekit("build", model, "-q", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert (out / "report.json").read_bytes() == written


@pytest.mark.parametrize("case", ["unknown target", "missing model", "corrupt model", "negative seed"])
def test_bad_input_raises_usage_error_with_the_clis_exit_code(case, model, tmp_path):
    out = tmp_path / "out"
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    source, api_flags, cli_flags = {
        "unknown target": (model, {"target": "no-such-board"}, ["-t", "no-such-board"]),
        "missing model": (str(tmp_path / "missing.onnx"), {"target": "x86-64"}, ["-t", "x86-64"]),
        "corrupt model": (corrupt, {"target": "x86-64"}, ["-t", "x86-64"]),
        "negative seed": (model, {"target": "x86-64", "seed": -1}, ["-t", "x86-64", "--seed", "-1"]),
    }[case]
    with pytest.raises(UsageError) as caught:
        edgekit.build(source, output=out, **api_flags)
    assert caught.value.exit_code == 2 and not out.exists()
    cli = run_edgekit("build", str(source), "-o", str(out), "-q", *cli_flags)
    assert cli.code == caught.value.exit_code and not out.exists()
    if case != "negative seed":  # there click words its own error, naming --seed
        assert f"error: {caught.value}" in cli.stderr


def test_unknown_keyword_is_named_with_the_valid_ones(model, tmp_path):
    with pytest.raises(UsageError, match="unknown keyword argument 'frobnicate'") as caught:
        edgekit.build(model, target="x86-64", output=tmp_path / "out", frobnicate=1)
    assert caught.value.exit_code == 2 and not (tmp_path / "out").exists()
    for valid in ("input_shape", "samples", "calibration", "accuracy_floor", "force", "config"):
        assert valid in str(caught.value)
    with pytest.raises(UsageError, match=r"edgekit.build\(samples=True\)"):
        edgekit.build(model, target="x86-64", output=tmp_path / "out", samples=True)


def test_failed_build_raises_build_error_with_the_clis_exit_code(model, tmp_path):
    """A third-party pass that breaks the numerics (tests/core/fake_plugins): exit code 1."""
    env = {**os.environ, "EDGEKIT_PLUGINS": "tests.core.fake_plugins.breaks_numerics", "PYTHONPATH": str(REPO)}
    out = tmp_path / "out"
    script = ("import edgekit\n"
              "try:\n"
              f"    edgekit.build({model!r}, target='x86-64', output={str(out)!r}, passes='fold-constants,scale-weights')\n"
              "except edgekit.BuildError as exc:\n"
              "    print(type(exc).__name__, exc.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["BuildError", "1"], proc.stderr
    cli = run_edgekit("build", model, "-t", "x86-64", "-o", str(out), "-q", "--passes",
                      "fold-constants,scale-weights", env=env)
    assert cli.code == 1 and not out.exists()
    assert BuildError.exit_code == 1 and issubclass(BuildError, edgekit.EdgekitError)


def test_exit_codes_are_defined_once():
    from edgekit.errors import exit_code
    from edgekit.interrupts import Interrupted

    assert exit_code(UsageError("x")) == UsageError.exit_code == 2
    assert exit_code(BuildError("x")) == 1 and exit_code(ValueError("a bug")) == 1
    assert exit_code(Interrupted(signal.SIGINT)) == 130 and exit_code(Interrupted(signal.SIGTERM)) == 143


def test_build_leaves_the_process_as_it_was(model, tmp_path, capfd):
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    steps: list[str] = []
    report = edgekit.build(model, target="x86-64", output=tmp_path / "out", progress=steps.append, quiet=True)
    assert report.passed is None and report.max_abs_error is None  # no run asked
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    assert "front end" in steps and any(step.startswith("back end") for step in steps)
    os.write(2, b"stderr is back\n")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == "stderr is back\n"


def test_run_with_arrays_a_file_or_one_array(host, model, tmp_path):
    x = np.random.default_rng(7).standard_normal((3, 1, 2, 6, 6)).astype(np.float32)
    by_dict = edgekit.run(host.output_dir, {"x": x})
    assert by_dict.samples == 3 and by_dict.passed is True and len(by_dict.outputs) == 3
    for sample, result in zip(x, by_dict.outputs):
        np.testing.assert_allclose(result["y"], _onnxruntime(model, sample), rtol=1e-6, atol=1e-6)
    np.savez(tmp_path / "inputs.npz", x=x)
    by_file = edgekit.run(str(host.output_dir), tmp_path / "inputs.npz")
    assert all(np.array_equal(a["y"], b["y"]) for a, b in zip(by_file.outputs, by_dict.outputs))
    one = edgekit.run(host.output_dir, x[1])
    assert one.samples == 1 and np.array_equal(one.outputs[0]["y"], by_dict.outputs[1]["y"])
    assert by_dict.arrays()["y"].shape == (3, 1, 4, 6, 6) and one.arrays()["y"].shape == (1, 4, 6, 6)
    with pytest.raises(UsageError, match="input 'x' has shape") as caught:
        edgekit.run(host.output_dir, {"x": np.zeros((2, 2), np.float32)})
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="no array for input 'x'"):
        edgekit.run(host.output_dir, {"z": x})
    with pytest.raises(UsageError, match="no report.json"):
        edgekit.run(tmp_path)


def test_run_options_override_the_build_for_that_run_only(m4, model):
    before = (m4.output_dir / "report.json").read_bytes()
    x = np.random.default_rng(3).standard_normal((2, 1, 2, 6, 6)).astype(np.float32)
    result = edgekit.run(m4.output_dir, {"x": x}, options={"optimize": "-Os"})
    assert result.measurements["optimize"] == "-Os" != m4.measurements["optimize"]
    assert result.instructions != m4.instructions and result.instructions > 0
    tolerance = result.to_dict()["tolerance"]
    for sample, outputs in zip(x, result.outputs):
        np.testing.assert_allclose(outputs["y"], _onnxruntime(model, sample), atol=tolerance["atol"],
                                   rtol=tolerance["rtol"])
    assert (m4.output_dir / "report.json").read_bytes() == before


def test_cli_run_option_and_save(m4, model, tmp_path):
    from edgekit.model import load_model
    from edgekit.verify import random_inputs

    saved = tmp_path / "outputs.npz"
    result = run_edgekit("run", str(m4.output_dir), "--option", "optimize=-Os", "--samples", "2", "--seed", "4",
                         "--save", str(saved))
    assert result.code == 0, result.stderr
    assert "optimize: -Os" in result.stdout and f"outputs saved to {saved}" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs.npz"]  # no temporary file left
    with np.load(saved) as arrays:
        assert arrays.files == ["y"] and arrays["y"].shape == (2, 1, 4, 6, 6)  # samples stacked first
        inputs = random_inputs(load_model(m4.output_dir / "reference.onnx"), 2, 4)
        for stacked, feeds in zip(arrays["y"], inputs):
            np.testing.assert_allclose(stacked, _onnxruntime(model, feeds["x"]), atol=1e-4, rtol=1e-3)


def test_cli_save_of_one_sample_is_what_the_api_returns(host, tmp_path):
    saved = tmp_path / "one.npz"
    assert run_edgekit("run", str(host.output_dir), "--seed", "5", "--save", str(saved)).code == 0
    expected = edgekit.run(host.output_dir, seed=5)
    with np.load(saved) as arrays:
        assert arrays.files == ["y"] and np.array_equal(arrays["y"], expected.outputs[0]["y"])
    expected.save(tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == saved.read_bytes()  # one writer, deterministic


@pytest.mark.parametrize("name", ["missing/outputs.npz", "outputs.txt", "directory.npz"])
def test_cli_save_to_a_bad_path_is_a_usage_error_before_running(host, tmp_path, name):
    (tmp_path / "directory.npz").mkdir()
    path = tmp_path / name
    result = run_edgekit("run", str(host.output_dir), "--save", str(path))
    assert result.code == 2 and f"--save {path}" in result.stderr
    assert "run on" not in result.stdout and not (tmp_path / "missing").exists()


def test_inspect_returns_what_the_command_shows(m4, model):
    info = edgekit.inspect(Path(model), "cortex-m4")
    assert info["stats"] == m4.get("model", "before")
    assert {op: entry["count"] for op, entry in info["ops"].items()} == m4.get("model", "ops")
    assert info["backend"] == m4.backend and all(entry["supported"] for entry in info["ops"].values())
    assert info["inputs"] == m4.inputs and info["outputs"] == m4.outputs
    plain = edgekit.inspect(model, input_shapes=["1,2,6,6"])
    assert plain["target"] is None and plain["supported_ops"] is None and plain["stats"] == info["stats"]
    with pytest.raises(UsageError):
        edgekit.inspect(model, input_shape=[1, 2, 6, 6])


def test_import_edgekit_stays_light_and_keeps_the_functions():
    script = ("import sys, edgekit, edgekit.building, edgekit.inspection, edgekit.api, edgekit.request\n"
              "print([m for m in ('onnx', 'onnxruntime', 'torch', 'tvm') if m in sys.modules])\n"
              "print(edgekit.build is edgekit.api.build, edgekit.run is edgekit.api.run, "
              "edgekit.inspect is edgekit.api.inspect)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "True True True"]
