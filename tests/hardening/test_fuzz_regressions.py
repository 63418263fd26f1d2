"""Regressions found by the differential fuzzers (tests/hardening/test_fuzz_differential.py,
benchmarks/fuzz.py): each failing random graph, reduced to a small explicit one, built and compared
the way the fuzzer does, plus the unit-level fact the fix rests on."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest

from edgekit.plugins.mcu.qops_layout import ADD_MULTIPLIER_BITS, add_rescale
from tests.hardening.differential import build_and_compare
from tests.hardening.graphs import GraphBuilder

logging.getLogger().setLevel(logging.ERROR)


def _reshape(b: GraphBuilder, src: str, shape: list[int]) -> str:
    return b.add("Reshape", [src, b.const(np.array(shape, np.int64))])


def _int8_nodes(model, target: str = "x86-64") -> list[str]:
    """Build with --quantize int8 and run (the build raises on a mismatch); the int8 layers."""
    report = build_and_compare(model, target, flavour="int8")
    assert report["run"]["judged_against"] == "float64"
    return report["backend"]["int8_nodes"]


def test_add_rescale_just_below_one_keeps_its_multiplier_in_range():
    """Found on cortex-m4 (int8 #22): s_x/s_y = 0.02607391/0.026073912 is a hair below 1, so the
    shift was chosen for [0.5, 1) and the multiplier rounded up to 2^22, which the kernel's int32
    sums cannot take: the build crashed with 'Add rescale 1 is too large'."""
    a_m, b_m, shift = add_rescale((0.0018697088, 127), (0.02607391, 8), (0.026073912, 26))
    assert max(a_m, b_m) < 1 << ADD_MULTIPLIER_BITS
    assert abs(b_m / 2.0 ** shift - 0.02607391 / 0.026073912) < 2.0 ** -ADD_MULTIPLIER_BITS


def test_int8_add_of_a_constant_whose_output_scale_equals_the_input_scale():
    """The fuzzer's graph: x + c with one constant value, which calibration gives an output scale
    one float32 step from the input's. It must run as the int8 Add and match."""
    b = GraphBuilder([1, 2, 6, 2])
    out = b.add("Add", [b.const(np.array([-0.47677574], np.float32)), "x"])
    assert _int8_nodes(b.model([out])) == ["n1_Add"]


def _reshape_chain_with_two_outputs(first: str = "Relu") -> onnx.ModelProto:
    """x -> first -> Reshape [1, 40] -> t1 -> Reshape to the same shape -> t2; outputs t2 and t1.
    fold-constants turns the second Reshape into Identity(t1): one tensor, two output names."""
    b = GraphBuilder([1, 4, 2, 5])
    src = b.add(first, ["x"]) if first else "x"
    t1 = _reshape(b, src, [1, 40])
    return b.model([_reshape(b, t1, [1, 40]), t1])


def test_dead_code_keeps_both_outputs_of_an_identity_between_outputs():
    """Found by the int8 host fuzzer (#145-#148, seed 0): onnx_ir's IdentityEliminationPass renamed
    t1 to t2 and listed t2 twice, so the pipeline's check failed with "eliminate-dead-code changed
    the model's outputs: output 't1' is missing" (float builds too)."""
    report = build_and_compare(_reshape_chain_with_two_outputs(first=""))
    assert report["run"]["max_abs_error"] == 0.0  # both outputs present and exact copies of x


def test_tvm_output_that_is_the_input_reshaped_to_its_own_shape():
    """Found by the TVM fuzzer (#94, #95; cortex-m4 #16): Relax drops a Reshape to the same shape,
    so output t0 was the input buffer and the build failed ("output 0 is a input tensor, not a
    result buffer"); so did an Identity of the input next to another output."""
    b = GraphBuilder([1, 1])
    out = _reshape(b, "x", [1, 1])
    build_and_compare(b.model([out]), flavour="tvm")
    b = GraphBuilder([1, 3])
    outs = [b.add("Relu", ["x"]), b.add("Identity", ["x"])]
    build_and_compare(b.model(outs), flavour="tvm")


@pytest.mark.parametrize("target", ["x86-64", "cortex-m4"])
def test_tvm_two_outputs_that_are_one_tensor_are_both_written(target):
    """Once the dead-code pass kept both outputs (above), TVM bound them to one result buffer: on
    x86-64 output t2 was left unwritten (garbage, 3.4 off onnxruntime), on cortex-m4 missing."""
    report = build_and_compare(_reshape_chain_with_two_outputs(), target, flavour="tvm")
    assert report["run"]["max_abs_error"] <= 1e-4
