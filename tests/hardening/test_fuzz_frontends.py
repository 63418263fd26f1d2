"""Front-end fuzzing (issue 9): mutated .onnx and .tflite files through the real CLI keep the bad-input
contract (tests/hardening/contract.py: success, or exit 2 / 1 with one line naming the problem, no
traceback, no output directory, no crash or hang), random valid TFLite graphs build, run and agree with
TFLite Micro, and each bug the fuzzing found stays fixed (the regression cases below, one per finding).
CI runs a bounded, seeded number of inputs; benchmarks/fuzz_frontends.py runs thousands."""

from __future__ import annotations

import logging
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

pytest.importorskip("tflite")
pytest.importorskip("tflite_micro")

from tests.hardening import contract  # noqa: E402
from tests.hardening.corpus import GENERATED, REAL, seed_file  # noqa: E402
from tests.hardening.mutations import ONNX_MUTATIONS, mutate, set_field  # noqa: E402
from tests.hardening.tflite_graphs import describe, differential, tflite_graphs  # noqa: E402
from tests.tflite import tflite_writer as tw  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)
FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Mutants per corpus file in CI: the generated files build in a fraction of a second, the real ones
#: in seconds (and most of their mutants build: the bytes are mostly weights).
MUTANTS = {**{name: 12 for name in GENERATED}, **{name: 3 for name in REAL}}
GRAPH_EXAMPLES = 3


@pytest.fixture(scope="module", autouse=True)
def _preloaded():
    contract.preload()


@pytest.mark.parametrize("name", [*GENERATED, *REAL])
def test_mutated_files_keep_the_bad_input_contract(name, tmp_path):
    """Seeded mutants of one corpus file (byte-level and structure-aware): none gives a traceback,
    an internal error, another exit code, several lines, a directory left behind, a crash or a hang;
    the first that builds is also run (--run) and matches."""
    findings = []
    ran = False
    for seed in range(MUTANTS[name]):
        work = tmp_path / str(seed)
        work.mkdir()
        description, outcome = contract.check_mutant(name, 1000 + seed, work, run_sample=not ran and seed % 4 == 0)
        ran |= outcome.ran
        if outcome.finding:
            findings.append(f"seed {1000 + seed} [{description}]: {outcome.finding}")
    assert not findings, "\n".join(findings)


def test_every_onnx_mutation_applies_to_a_small_model():
    """Each structure-aware ONNX mutation changes the generated model (none silently falls back to
    a byte flip), so the fuzzing covers what it names."""
    import random

    data = seed_file("conv_relu.onnx")
    for mutation in ONNX_MUTATIONS:
        applied = [mutation(data, random.Random(s)) for s in range(5)]
        assert any(d and out != data for out, d in applied), mutation.__name__


def test_mutate_is_reproducible_from_its_seed():
    a, b = mutate(seed_file("int8_ops.tflite"), ".tflite", 7), mutate(seed_file("int8_ops.tflite"), ".tflite", 7)
    assert a == b and a[0] != seed_file("int8_ops.tflite")


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_random_tflite_graphs_build_run_and_agree_with_tflite_micro(int8, tmp_path_factory):
    """Random valid graphs over the importer's ops, built for the host with --run: the run matches
    onnxruntime and TFLite Micro (int8 in TFLite's arithmetic: bit-exact, TFLite Micro judges)."""

    @settings(FUZZ, max_examples=GRAPH_EXAMPLES)
    @given(tflite_graphs(int8=int8, max_ops=4))
    def check(spec):
        problem = differential(spec, tmp_path_factory.mktemp("graph"))
        assert problem is None, f"{problem}\n{describe(spec)}"

    check()


# -- regressions: one per finding of the fuzzing ----------------------------------------------------


def _small_tflite(**quant) -> tw.ModelSpec:
    """x[1,4] -> FULLY_CONNECTED -> y[1,2], float or (with ``quant``: tensor -> (scales, zps, axis))
    int8; the regression cases break one thing in it."""
    m = tw.ModelSpec()
    int8 = bool(quant)
    q = {"x": ([0.05], [0], 0), "w": ([0.01, 0.02], [0, 0], 0), "b": ([0.0005, 0.001], [0, 0], 0),
         "y": ([0.1], [3], 0), **quant}
    x = m.add("x", (1, 4), np.int8 if int8 else np.float32, quant=q["x"] if int8 else None)
    w = m.add("w", (2, 4), np.int8 if int8 else np.float32, data=np.arange(8).reshape(2, 4) - 3,
              quant=q["w"] if int8 else None)
    b = m.add("b", (2,), np.int32 if int8 else np.float32, data=np.array([1, -1]), quant=q["b"] if int8 else None)
    y = m.add("y", (1, 2), np.int8 if int8 else np.float32, quant=q["y"] if int8 else None)
    m.op("FULLY_CONNECTED", [x, w, b], [y], ("FullyConnectedOptions", dict(FusedActivationFunction="NONE")))
    m.inputs, m.outputs = [x], [y]
    return m


def _with(spec: tw.ModelSpec, change) -> bytes:
    change(spec)
    return tw.write(spec)


def _pool_with_stride_zero() -> bytes:
    m = tw.ModelSpec()
    x, y = m.add("x", (1, 4, 4, 1)), m.add("y", (1, 2, 2, 1))
    m.op("MAX_POOL_2D", [x], [y], ("Pool2DOptions", dict(Padding="SAME", StrideH=0, StrideW=2, FilterHeight=2,
                                                        FilterWidth=2)))
    m.inputs, m.outputs = [x], [y]
    return tw.write(m)


def _onnx_bytes(change) -> bytes:
    from tests.core.onnx_factory import conv_relu_model

    model = conv_relu_model()
    change(model)
    return model.SerializeToString()


def _gather_out_of_range() -> bytes:
    """A model onnx.checker accepts and onnxruntime fails to run: Gather of index 7 from 4 values."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("Gather", ["x", "i"], ["y"], name="gather", axis=1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
                              [numpy_helper.from_array(np.array([7], np.int64), "i")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _set_opset(model, version):
    model.opset_import[0].version = version


def _output_twice(model):
    model.graph.output.add().CopyFrom(model.graph.output[0])


def _long_raw_data(model):
    model.graph.initializer[1].raw_data += b"\0\0\0"


def _fc_inputs(spec, inputs):
    spec.ops[0].inputs = inputs


def _fc_output_shape(spec):
    spec.tensors[3].shape = (1, 3)


def _fc_then_relu() -> bytes:
    """The small model and a RELU: its operator's opcode index (1) is stored (0 would be a default)."""
    spec = _small_tflite()
    z = spec.add("z", (1, 2))
    spec.op("RELU", [3], [z])
    spec.outputs = [z]
    return tw.write(spec)


def _int8_unary(op: str, quant_in: tuple[float, int], quant_out: tuple[float, int], out_shape=(1, 4, 8, 2)):
    """x[1,4,8,2] int8 -> ``op`` -> y, with the given (scale, zero point) of each."""
    m = tw.ModelSpec()
    q = lambda s, z: (np.array([s], np.float32), np.array([z]), 0)  # noqa: E731
    x = m.add("x", (1, 4, 8, 2), np.int8, quant=q(*quant_in))
    y = m.add("y", out_shape, np.int8, quant=q(*quant_out))
    m.op(op, [x], [y])
    m.inputs, m.outputs = [x], [y]
    return m


TFLITE = tw.write(_small_tflite())
#: (file name, its bytes, fragments the one-line message must hold): each was a finding, before its
#: fix an internal error (IndexError, ValueError, OverflowError from the importer), a message of
#: onnxruntime's internals, or a quietly accepted broken file.
REGRESSIONS = {
    "onnx-opset-from-the-future": ("m.onnx", lambda: _onnx_bytes(lambda m: _set_opset(m, 10_000)),
                                   ("m.onnx", "opset 10000 is newer than 26")),
    "onnx-output-listed-twice": ("m.onnx", lambda: _onnx_bytes(_output_twice),
                                 ("m.onnx", "graph output 'y' is listed more than once")),
    "onnx-weight-data-longer-than-dims": ("m.onnx", lambda: _onnx_bytes(_long_raw_data),
                                          ("m.onnx", "weight tensor 'b'", "does not match its dims")),
    # onnxruntime's kernel error was also logged, in colour, to the terminal (the contract reads fd 2)
    "onnx-kernel-error-is-one-line": ("m.onnx", _gather_out_of_range,
                                      ("Gather node. Name:'gather'", "out of data bounds")),
    "tflite-zero-point-outside-int8": ("m.tflite", lambda: tw.write(_small_tflite(y=([0.1], [128], 0))),
                                       ("m.tflite", "tensor 3 ('y')", "zero point(s) [128]")),
    "tflite-negative-scale": ("m.tflite", lambda: tw.write(_small_tflite(w=([0.01, -1.0], [0, 0], 0))),
                              ("tensor 1 ('w')", "scale(s) [-1.0]", "finite and positive")),
    "tflite-nan-scale": ("m.tflite", lambda: tw.write(_small_tflite(x=([float("nan")], [0], 0))),
                         ("tensor 0 ('x')", "finite and positive")),
    "tflite-input-index-out-of-range": ("m.tflite", lambda: _with(_small_tflite(), lambda s: _fc_inputs(s, [0, 99, 2])),
                                        ("operator 0 (FULLY_CONNECTED) input refers to tensor 99", "4 tensors")),
    "tflite-negative-index-is-not-the-last-tensor": (
        "m.tflite", lambda: _with(_small_tflite(), lambda s: _fc_inputs(s, [-2, 1, 2])), ("refers to tensor -2",)),
    "tflite-required-input-omitted": ("m.tflite", lambda: _with(_small_tflite(), lambda s: _fc_inputs(s, [0, -1])),
                                      ("operator 0 (FULLY_CONNECTED)", "input 1 is omitted")),
    "tflite-too-few-inputs": ("m.tflite", lambda: _with(_small_tflite(), lambda s: _fc_inputs(s, [0])),
                              ("operator 0 (FULLY_CONNECTED)", "has 1 input(s), expected 2 to 3")),
    "tflite-shapes-that-do-not-fit": ("m.tflite", lambda: _with(_small_tflite(), _fc_output_shape),
                                      ("operator 0 (FULLY_CONNECTED)", "do not fit together")),
    "tflite-opcode-index-out-of-range": ("m.tflite", lambda: set_field(_fc_then_relu(), "operator 1 opcode index", 5),
                                         ("operator 1 has opcode index 5", "2 operator code(s)")),
    "tflite-buffer-index-out-of-range": ("m.tflite", lambda: set_field(TFLITE, "tensor 1 buffer", 99),
                                         ("tensor 1 ('w') refers to buffer 99",)),
    "tflite-buffer-shorter-than-shape": ("m.tflite", lambda: set_field(TFLITE, "tensor 1 shape[1]", 5),
                                         ("tensor 1 ('w')", "holds 32 bytes", "needs 40")),
    "tflite-negative-dim": ("m.tflite", lambda: set_field(TFLITE, "tensor 3 shape[1]", -1),
                            ("tensor 3 ('y') has shape [1, -1]", "negative dim")),
    "tflite-denormal-scale": ("m.tflite", lambda: tw.write(_small_tflite(w=([0.01, 1e-45], [0, 0], 0))),
                              ("tensor 1 ('w')", "not denormal")),
    "tflite-elementwise-output-of-another-shape": (
        "m.tflite", lambda: tw.write(_int8_unary("LOGISTIC", (0.05, 0), (1 / 256, -128), out_shape=())),
        ("operator 0 (LOGISTIC)", "output tensor 1 has shape [], expected [1, 4, 8, 2]")),
    "tflite-relu6-that-rescales": ("m.tflite", lambda: tw.write(_int8_unary("RELU6", (0.0078125, 0), (0.02, 0))),
                                   ("operator 0 (RELU6)", "quantization differ", "TFLite Micro clamps")),
    "tflite-stride-zero": ("m.tflite", _pool_with_stride_zero,
                           ("operator 0 (MAX_POOL_2D)", "StrideH 0: must be at least 1")),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_fuzzing_finding_is_a_one_line_usage_error(case, tmp_path):
    name, make, fragments = REGRESSIONS[case]
    path = tmp_path / name
    path.write_bytes(make())
    outcome = contract.check(path, tmp_path / "out")
    assert outcome.finding is None and outcome.code == 2, (outcome.finding, outcome.stderr)
    for fragment in fragments:
        assert fragment in outcome.stderr, outcome.stderr


#: Mutants the fuzzing found (corpus file, seed of tests/hardening/mutations.mutate), replayed exactly.
FOUND = [("ic_resnet8.onnx", 0),          # opset 10000: onnxruntime's C++ source location as the message
         ("conv_relu.onnx", 45),          # initializer dims [] for 4 values: ValueError from numpy
         ("conv_relu.onnx", 68),          # raw data 3 bytes longer: ValueError from numpy
         ("ad_autoencoder_int8.tflite", 9),  # swapped FC weights: a Reshape onnxruntime cannot run
         ("int8_ops.tflite", 13),         # zero point 128: OverflowError
         ("int8_ops.tflite", 16),         # input index 99: IndexError
         ("float_cnn.tflite", 25),        # no inputs: IndexError
         ("int8_ops.tflite", 60),         # scale 1e-45: ValueError in the back end's check
         ("int8_ops.tflite", 171),        # LOGISTIC output of shape []: IndexError
         ("kws_dscnn_int8.tflite", 80)]   # weight scale 1e-45: built, and the run differed from TFLite Micro


@pytest.mark.parametrize("name,seed", FOUND)
def test_found_mutant_is_refused_cleanly(name, seed, tmp_path):
    description, outcome = contract.check_mutant(name, seed, tmp_path)
    assert outcome.finding is None and outcome.code == 2, (description, outcome.finding, outcome.stderr)


def test_onnxruntime_errors_lose_their_source_locations():
    """A message of onnxruntime's keeps what is wrong and drops the status prefix, the C++ file and
    line and the function signature (they named onnxruntime's internals, not the user's model)."""
    from edgekit.verify import ort_message

    raw = ("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. "
           "Name:'op5/Reshape33' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/"
           "reshape_helper.h:91 onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, "
           "onnxruntime::TensorShapeVector&, bool) input_shape_size == size was false. The input tensor cannot "
           "be reshaped to the requested shape. Input shape:{1,128}, requested shape:{1,640}")
    clean = ort_message(RuntimeError(raw))
    assert "onnxruntime_src" not in clean and "ONNXRuntimeError" not in clean and "TensorShape&" not in clean
    assert "Reshape node. Name:'op5/Reshape33'" in clean and "requested shape:{1,640}" in clean


def test_tiny_tflite_model_with_large_activations_runs_in_tflite_micro(tmp_path):
    """A 1 kB file whose tensors need more than ten times that: the TFLite Micro comparison of
    --run crashed the process (a segfault in its arena allocation), now it sizes the arena from the
    tensors and the run is compared."""
    m = tw.ModelSpec()
    x, y = m.add("x", (1, 7, 6, 2)), m.add("y", (1, 7, 6, 4))
    m.op("CONCATENATION", [x, x], [y], ("ConcatenationOptions", dict(Axis=3)))
    m.inputs, m.outputs = [x], [y]
    assert differential(m, tmp_path) is None


def test_a_patched_field_is_the_one_named():
    data = set_field(TFLITE, "tensor 3 shape[1]", 7)
    from edgekit.plugins.tflite.reader import read_bytes

    assert read_bytes(data).tensors[3].shape == (1, 7)
    assert struct.unpack_from("<I", data, 0) == struct.unpack_from("<I", TFLITE, 0)


def test_int8_relu_that_rescales_is_bit_exact_with_tflite_micro(tmp_path):
    """A standalone int8 RELU from (0.035, 15) to (0.08, 15), as TFLite's converter may write one:
    0.4375 x (q - 15) has ties, which TFLite Micro's ReluQuantized rounds away from zero (found by
    fuzzing: the table rounded them to even, 1 value in 8 was 1 LSB off)."""
    assert differential(_int8_unary("RELU", (0.035, 15), (0.08, 15)), tmp_path, samples=4) is None


def test_scales_no_int8_kernel_can_hold_fail_the_build_naming_the_node(tmp_path):
    """An output scale of 1e-30 (normal, so the importer takes it): s_in / s_out = 3.5e28 is beyond
    any Q31 multiplier and shift. Found by fuzzing: a bare ValueError from the back end's plugin."""
    path = tmp_path / "m.tflite"
    path.write_bytes(tw.write(_int8_unary("RELU", (0.035, 15), (1e-30, 15))))
    outcome = contract.check(path, tmp_path / "out")
    assert outcome.finding is None and outcome.code == 1, (outcome.finding, outcome.stderr)
    assert "(op Relu)" in outcome.stderr and "too large for a Q31 multiplier" in outcome.stderr, outcome.stderr
