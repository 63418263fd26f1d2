"""The bad-input contract (one line on stderr naming the file, node, flag or key and what to do; exit 2
for bad input; no traceback; no output directory) for the inputs of issue 21, part 3: files that are
not regular files, corrupt or hostile arrays, absurd shapes, config values of the wrong type,
harness options out of range, click's own parse errors, Ctrl-C during start-up, zero verification
samples, a report that ``edgekit run`` cannot use, NaN in Constant nodes, IR version 14 under
``--quantize``, and silence of successful ``-q`` builds.

Builds run through the real CLI in forked children of a process that has loaded edgekit once
(tests/hardening/contract.py), so each case costs its build only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import EDGEKIT
from tests.core.onnx_factory import conv_relu_model, save
from tests.hardening import contract

#: a model input edgekit refuses inside this long, or it hangs (a FIFO read blocks forever)
TIMEOUT = 60.0


@pytest.fixture(scope="module", autouse=True)
def _preloaded():
    contract.preload()


@pytest.fixture
def model(tmp_path) -> str:
    return save(conv_relu_model(), tmp_path / "m.onnx")


def _one_line(result: contract.Outcome, code: int, *names: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.code == code, (result.code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in lines[0], lines[0]
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def _refused(model, tmp_path: Path, *extra: str, names: tuple[str, ...] = (), code: int = 2) -> str:
    """Build ``model`` with ``extra`` flags: refused per the contract, the message naming ``names``."""
    out = tmp_path / "out"
    result = contract.check(Path(model), out, extra, timeout=TIMEOUT)
    assert result.finding is None, result.finding
    assert not out.exists()
    return _one_line(result, code, *names)


# --- what MODEL, --config and data files may be ---------------------------------------------------

@pytest.mark.parametrize("name,kind", [("x.onnx", "dir"), ("x.tflite", "dir"), ("x.pt2", "dir"),
                                       ("x.onnx", "fifo"), ("x.tflite", "fifo")])
def test_model_that_is_not_a_regular_file(tmp_path, name, kind):
    path = tmp_path / name
    path.mkdir() if kind == "dir" else os.mkfifo(path)
    _refused(path, tmp_path, names=(name, "a directory" if kind == "dir" else "FIFO", "give a model file"))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not a zip archive" * 8])
def test_empty_or_corrupt_pt2(tmp_path, content):
    """(A zip archive that is not a program reaches torch.export.load, whose logged traceback the
    front end silences: slow, since it imports torch; not here.)"""
    path = tmp_path / "prog.pt2"
    path.write_bytes(content)
    _refused(path, tmp_path, names=("prog.pt2", "not a torch.export program", "torch.export.save"))


def test_tflite_tensor_of_a_type_the_reader_does_not_know(tmp_path, monkeypatch):
    from tests.tflite import tflite_writer as writer

    class Complex64:  # TFLite TensorType 8, which the reader does not map
        pass

    monkeypatch.setitem(writer.TYPES, Complex64, 8)
    spec = writer.ModelSpec()
    x, y = spec.add("x", (1, 4), Complex64), spec.add("y", (1, 4))
    spec.op("RELU", [x], [y])
    spec.inputs, spec.outputs = [x], [y]
    path = tmp_path / "complex.tflite"
    path.write_bytes(writer.write(spec))
    _refused(path, tmp_path, names=("complex.tflite", "tensor 0 ('x')", "COMPLEX64 (8)", "re-export"))


def test_config_that_is_a_fifo(tmp_path, model):
    os.mkfifo(tmp_path / "edgekit.toml")
    _refused(model, tmp_path, "--config", str(tmp_path / "edgekit.toml"), names=("edgekit.toml", "FIFO"))


# --- arrays: --inputs, --calibration, --validation ----------------------------------------------

def _huge_header_npy(path: Path) -> None:
    """A .npy whose header declares 2^40 float32 elements, followed by 64 bytes."""
    from numpy.lib import format as npy

    with path.open("wb") as file:
        npy.write_array_header_1_0(file, {"descr": "<f4", "fortran_order": False, "shape": (1 << 40,)})
        file.write(bytes(64))


#: name -> (how to write it, what the message says)
BAD_ARRAYS = {
    "objects.npz": (lambda p: np.savez(p, x=np.array([{"a": 1}], dtype=object)), "Python objects"),
    "objects.npy": (lambda p: np.save(p, np.array([None, 1], dtype=object), allow_pickle=True), "Python objects"),
    "strings.npz": (lambda p: np.savez(p, x=np.full((1, 2, 6, 6), "ab")), "dtype <U2"),
    "corrupt.npz": (lambda p: p.write_bytes(b"PK\x03\x04" + bytes(100)), "not a"),
    "corrupt.npy": (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"), "not a readable"),
    "huge.npy": (_huge_header_npy, "declares shape [1099511627776]"),
    "fifo.npy": (lambda p: os.mkfifo(p), "FIFO"),
    "empty.npy": (lambda p: np.save(p, np.zeros((0, 1, 2, 6, 6), np.float32)), "no samples"),
}


@pytest.mark.parametrize("name", sorted(BAD_ARRAYS))
def test_bad_inputs_file(tmp_path, model, name):
    write, said = BAD_ARRAYS[name]
    write(tmp_path / name)
    _refused(model, tmp_path, "--inputs", str(tmp_path / name), names=(f"--inputs {tmp_path / name}", said))


@pytest.mark.parametrize("flag,name", [("--calibration", "objects.npz"), ("--validation", "corrupt.npz")])
def test_bad_quantization_data(tmp_path, model, flag, name):
    write, said = BAD_ARRAYS[name]
    write(tmp_path / name)
    _refused(model, tmp_path, "--quantize", "int8", flag, str(tmp_path / name), names=(flag, name, said))


def test_fifo_inside_a_calibration_directory(tmp_path, model):
    data = tmp_path / "calibration"
    data.mkdir()
    np.save(data / "a.npy", np.zeros((1, 2, 6, 6), np.float32))
    os.mkfifo(data / "b.npy")
    _refused(model, tmp_path, "--quantize", "int8", "--calibration", str(data), names=(str(data / "b.npy"), "FIFO"))


# --- shapes, settings, options and flags ---------------------------------------------------------

@pytest.mark.parametrize("shape,said", [("x=99999999999999999999,2,6,6", "too large"),
                                        ("x=1,2,-6,6", "positive dims"), ("x=0,2,6,6", "positive dims"),
                                        ("x=4294967296,2,6,6", "too large")])
def test_absurd_input_shape(tmp_path, shape, said):
    dynamic = save(conv_relu_model(dynamic_batch=True), tmp_path / "dyn.onnx")
    _refused(dynamic, tmp_path, "--input-shape", shape, names=(f"--input-shape '{shape}'", said))


@pytest.mark.parametrize("setting,said", [
    ("passes = [1, 2]", "'passes' must be a list of strings"),
    ('input_shape = [1, 2, 6, 6]', """'input_shape' must be a list of strings like ["1,2,4,4"]"""),
    ("seed = -1", "'seed' must be an integer of at least 0"),
    ("verify_samples = 0", "'verify_samples' must be an integer of at least 1"),
    ('run = "yes"', "'run' must be true or false"),
    ("seed = true", "'seed' must be an integer"),
    ("name = 3", "'name' must be a string"),
    ("[options]\nstack = [1]", "'options.stack' must be a string, number or true/false"),
])
def test_config_value_of_the_wrong_type(tmp_path, model, setting, said):
    config = tmp_path / "edgekit.toml"
    config.write_text(f'target = "x86-64"\n{setting}\n')
    _refused(model, tmp_path, "--config", str(config), names=("edgekit.toml", said))


HARNESS_OPTIONS = ["stack_bytes=abc", "stack_bytes=-1", "stack_bytes=1e100", "stack_bytes=0", "run_timeout=-1",
                   "run_timeout=nan", "run_timeout=1e309", "run_timeout=0", "run_timeout=true"]


def test_harness_option_out_of_range(tmp_path, model):
    """Through the CLI (the host runner reads them) once, and every value below directly."""
    _refused(model, tmp_path, "--run", "--option", "stack_bytes=abc", names=("--option stack_bytes=abc", "expected"))


@pytest.mark.parametrize("option", HARNESS_OPTIONS)
def test_harness_option_values(option):
    from edgekit.cli import _parse_options
    from edgekit.errors import UsageError
    from edgekit.plugins.harness.options import HarnessOptions

    class Context:
        options = _parse_options((option,))

    key = option.partition("=")[0]
    with pytest.raises(UsageError, match=f"^--option {key}=.*: expected (an integer|a number of seconds)"):
        HarnessOptions.from_context(Context())
    good = HarnessOptions.from_context(type("Good", (), {"options": _parse_options(("stack_bytes=2048",
                                                                                    "run_timeout=1.5"))})())
    assert (good.stack_bytes, good.run_timeout) == (2048, 1.5)


@pytest.mark.parametrize("flags,said", [(("--frobnicate",), "No such option"),
                                        (("--samples", "0"), "'--samples'"), (("--seed", "-1"), "'--seed'"),
                                        (("--samples", "many"), "'--samples'")])
def test_click_parse_errors_are_one_line(tmp_path, model, flags, said):
    _refused(model, tmp_path, *flags, names=("edgekit build", said, "--help"))


@pytest.mark.parametrize("args", [["--help"], ["build", "--help"], ["run", "-h"]])
def test_help_still_works(args):
    from click.testing import CliRunner

    from edgekit.cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and result.output.startswith("Usage: ") and not result.stderr


# --- verification samples, edgekit run ----------------------------------------------------------

def test_empty_npz_and_zero_length_batch_are_refused(tmp_path, model):
    np.savez(tmp_path / "none.npz")
    _refused(model, tmp_path, "--inputs", str(tmp_path / "none.npz"), names=("none.npz", "no array for input 'x'"))


@pytest.mark.parametrize("report", ['{"passes": []}', "[1, 2]", "{not json",
                                    '{"target": {"name": "x86-64", "backend": "onnxruntime"}, "passes": [3]}'])
def test_run_on_a_report_it_cannot_use(tmp_path, report):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text(report)
    result = contract.run_cli(["run", str(out)], TIMEOUT)
    _one_line(result, 2, "report.json", "rebuild with edgekit build")


def test_run_with_zero_samples(tmp_path):
    result = contract.run_cli(["run", str(tmp_path), "--samples", "0"], TIMEOUT)
    _one_line(result, 2, "'--samples'", "x>=1")


# --- models ----------------------------------------------------------------------------------------

def _matmul_with_constant(value: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], name="const_w", value=numpy_helper.from_array(value, "k")),
         helper.make_node("MatMul", ["x", "k"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_nan_in_a_constant_node_is_refused_like_nan_in_a_weight(tmp_path):
    weights = np.eye(4, dtype=np.float32)
    weights[1, 2] = np.nan
    path = save(_matmul_with_constant(weights), tmp_path / "nan.onnx")
    _refused(path, tmp_path, names=("nan.onnx", "Constant node 'const_w'", "1 NaN or Inf"))


def test_quantize_a_model_saved_at_ir_version_14(tmp_path):
    model = conv_relu_model()
    model.ir_version = 14  # what onnx 1.23 writes by default; onnxruntime refuses it
    path = save(model, tmp_path / "ir14.onnx")
    out = tmp_path / "out"
    result = contract.check(Path(path), out, ("--backend", "onnxruntime", "--quantize", "int8"), timeout=TIMEOUT)
    assert result.code == 0 and result.finding is None, result.stderr
    assert result.stderr.strip() == ""


def test_successful_quiet_build_prints_nothing_even_when_numpy_warns(tmp_path):
    """Exp(1000 x) overflows to inf: comparing the passes' outputs makes numpy warn (inf - inf)."""
    graph = helper.make_graph([helper.make_node("Mul", ["x", "k"], ["t"], name="mul"),
                               helper.make_node("Exp", ["t"], ["y"], name="exp")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(np.array([1000.0], np.float32), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out = tmp_path / "out"
    result = contract.check(Path(save(model, tmp_path / "overflow.onnx")), out, ("--backend", "onnxruntime"),
                            timeout=TIMEOUT)
    assert result.code == 0 and result.finding is None, result.stderr
    assert result.stderr == ""


# --- Ctrl-C -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("delay", [0.5])
def test_ctrl_c_while_starting_is_one_line(tmp_path, model, delay):
    """SIGINT while edgekit imports and loads its plugins (before a command runs): one line, 130."""
    proc = subprocess.Popen([str(EDGEKIT), "build", model, "-t", "x86-64", "-o", str(tmp_path / "out"), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "error: interrupted"
    assert not (tmp_path / "out").exists()
