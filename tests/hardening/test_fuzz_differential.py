"""Differential fuzzing (issue 9): random valid ONNX graphs (tests/hardening/graphs.py) built by
`edgekit build --run`: the mcu-c library on the host under AddressSanitizer and UBSan, and a smaller
set on the emulated cortex-m4 and cortex-m0plus, each run compared with onnxruntime. CI runs a
bounded number of examples; benchmarks/fuzz.py runs 1,000 and more."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings

from tests.hardening.differential import build_and_compare, describe
from tests.hardening.graphs import graphs

logging.getLogger().setLevel(logging.ERROR)
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HOST_EXAMPLES, BOARD_EXAMPLES = 15, 4


def _check(model, target: str) -> None:
    try:
        run = build_and_compare(model, target)
    except Exception as exc:  # the build names the mismatch; the graph makes it reproducible
        raise AssertionError(f"{type(exc).__name__}: {exc}\n{describe(model)}") from exc
    assert run["samples"] == 2 and run["judged_against"] in ("onnxruntime", "float64")
    if target == "x86-64":
        assert run["measurements"]["sanitizers"] == "address,undefined"


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
