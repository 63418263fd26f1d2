"""Differential fuzzing (issue 9): random valid ONNX graphs built by `edgekit build --run`, each run
compared with onnxruntime by the build itself:

- float graphs (tests/hardening/graphs.py): the mcu-c library on the host under AddressSanitizer
  and UBSan, and a smaller set on the emulated cortex-m4 and cortex-m0plus;
- int8 graphs (tests/hardening/int8_graphs.py) with ``--quantize int8``: mcu-c's integer kernels on
  the host under the sanitizers (onnxruntime's rounding; TFLite's, on graphs of quantized ops
  only) and on the emulated cortex-m4 and cortex-m0plus, within the back end's quantization-step
  tolerance of the QDQ model's exact arithmetic;
- float graphs with TVM's kernels: ``--backend tvm`` on x86-64, ``--kernels tvm`` on the cortex-m4 and
  cortex-m0plus.

CI runs a bounded number of examples; benchmarks/fuzz.py runs hundreds and more."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings

from edgekit.backends import Backend
from tests.hardening.differential import build_and_compare, describe
from tests.hardening.graphs import graphs
from tests.hardening.int8_graphs import int8_graphs

logging.getLogger().setLevel(logging.ERROR)
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HOST_EXAMPLES, BOARD_EXAMPLES = 15, 4
INT8_HOST_EXAMPLES, INT8_TFLITE_EXAMPLES, INT8_BOARD_EXAMPLES = 12, 4, 3
TVM_HOST_EXAMPLES, TVM_BOARD_EXAMPLES = 12, 3


def _check(model, target: str, flavour: str = "float") -> dict:
    """Build, run and compare; the report. A failure names the error and prints the graph."""
    try:
        report = build_and_compare(model, target, flavour=flavour)
    except Exception as exc:  # the build names the mismatch; the graph makes it reproducible
        raise AssertionError(f"{type(exc).__name__}: {exc}\n{describe(model)}") from exc
    run = report["run"]
    assert run["samples"] == 2 and run["judged_against"] in ("onnxruntime", "float64")
    if target == "x86-64" and report["target"]["backend"] == "mcu-c":
        assert run["measurements"]["sanitizers"] == "address,undefined"
    return report


def _check_int8(model, target: str, flavour: str) -> bool:
    """An int8 build: quantized by the pass, judged in steps of the back end's bound for every
    output dequantized from int8; whether any layer ran as an int8 kernel."""
    report = _check(model, target, flavour)
    assert report["quantization"]["scheme"].startswith("int8 QDQ")
    tolerance = report["run"]["tolerance"]
    if "quantization_steps" in tolerance:
        assert tolerance["max_steps"] == Backend.quantized_tolerance_steps
    assert report["backend"].get("int8_arithmetic", "") in ("", flavour.partition("-")[2] or "onnx")
    return bool(report["backend"]["int8_nodes"])


def _check_tvm(model, target: str) -> None:
    report = _check(model, target, "tvm")
    if target == "x86-64":
        assert report["target"]["backend"] == "tvm" and report["run"]["runner"] == "tvm-host"
    else:
        assert report["backend"]["kernel_library"] == "tvm" and report["run"]["runner"] == "qemu"


@settings(FUZZ, max_examples=HOST_EXAMPLES)
@given(graphs())
def test_random_graphs_on_the_host_under_sanitizers_match_onnxruntime(model):
    _check(model, "x86-64")


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus"])
def test_random_graphs_on_emulated_boards_match_onnxruntime(target):
    @settings(FUZZ, max_examples=BOARD_EXAMPLES)
    @given(graphs(max_ops=4))
    def check(model):
        _check(model, target)

    check()


@pytest.mark.parametrize("target,flavour,examples,int8_share", [
    ("x86-64", "int8", INT8_HOST_EXAMPLES, 0.5),
    ("x86-64", "int8-tflite", INT8_TFLITE_EXAMPLES, 0.0),
    ("cortex-m4", "int8", INT8_BOARD_EXAMPLES, 0.0),
    ("cortex-m0plus", "int8", INT8_BOARD_EXAMPLES, 0.0),
])
def test_random_int8_graphs_match_the_quantized_model(target, flavour, examples, int8_share):
    """--quantize int8 builds of random graphs agree with the QDQ model within the step bound,
    and int8 kernels run: in some graph of every set, in more than ``int8_share`` of them (the
    first examples hypothesis draws are the smallest graphs, a lone view or float op). A matcher
    that silently fell back to float would fail this."""
    ran_int8: list[bool] = []

    @settings(FUZZ, max_examples=examples)
    @given(int8_graphs(max_ops=6 if target == "x86-64" else 5, quantized_only=flavour == "int8-tflite"))
    def check(model):
        ran_int8.append(_check_int8(model, target, flavour))

    check()
    assert sum(ran_int8) > int8_share * len(ran_int8), f"int8 kernels ran in {sum(ran_int8)} of {len(ran_int8)}"


@pytest.mark.parametrize("target,examples", [("x86-64", TVM_HOST_EXAMPLES), ("cortex-m4", TVM_BOARD_EXAMPLES),
                                             ("cortex-m0plus", TVM_BOARD_EXAMPLES)])
def test_random_graphs_with_tvm_kernels_match_onnxruntime(target, examples):
    @settings(FUZZ, max_examples=examples)
    @given(graphs(max_ops=6 if target == "x86-64" else 4))
    def check(model):
        _check_tvm(model, target)

    check()
