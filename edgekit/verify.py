"""Numerical verification against onnxruntime: seeded inputs, reference runs, error measures."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.errors import BuildError, UsageError, one_line

if TYPE_CHECKING:
    import onnx

    from edgekit.passes import Tolerance

Inputs = dict[str, np.ndarray]
DEFAULT_SEED = 0


def random_inputs(model: onnx.ModelProto, count: int = 1, seed: int = DEFAULT_SEED) -> list[Inputs]:
    """Seeded inputs for every graph input: standard normal floats, small non-negative ints."""
    from edgekit.model import graph_inputs, numpy_dtype, tensor_dims

    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(count):
        feeds = {}
        for value in graph_inputs(model):
            dims, dtype = tensor_dims(value), numpy_dtype(value)
            if np.issubdtype(dtype, np.floating):
                feeds[value.name] = rng.standard_normal(dims).astype(dtype)
            elif dtype == np.bool_:
                feeds[value.name] = rng.integers(0, 2, dims).astype(bool)
            else:
                feeds[value.name] = rng.integers(0, 10, dims).astype(dtype)
        sets.append(feeds)
    return sets


def load_inputs(path: str | Path | Mapping[str, Any] | np.ndarray, model: onnx.ModelProto,
                flag: str = "--inputs") -> list[Inputs]:
    """User inputs from ``.npy`` (one array, the single input; a leading axis of several samples is
    allowed) or ``.npz`` (arrays named after the inputs), checked against the model's inputs.
    ``flag`` (the option that named the file) starts every error message. From Python, ``path`` may
    also be the arrays themselves: a dict by input name (as a .npz holds them) or one array (as a .npy)."""
    from edgekit.model import graph_inputs, numpy_dtype, tensor_dims
    from edgekit.userfiles import load_arrays

    inputs = graph_inputs(model)
    if isinstance(path, (Mapping, np.ndarray)):
        label = f"{flag} (arrays)"
        loaded = _given_arrays(path, label)
    else:
        label = f"{flag} {path}"
        loaded = load_arrays(Path(path), label)
    if isinstance(loaded, np.ndarray):
        if len(inputs) != 1:
            raise UsageError(f"{label}: a .npy file feeds a single input; the model has {len(inputs)}: "
                             f"use .npz with arrays named {', '.join(i.name for i in inputs)}")
        arrays = {inputs[0].name: loaded}
    else:
        arrays = loaded
    samples: list[Inputs] | None = None
    for value in inputs:
        if value.name not in arrays:
            raise UsageError(f"{label}: no array for input '{value.name}' (it holds "
                             f"{', '.join(sorted(arrays)) or 'no arrays'})")
        dims, dtype, array = tensor_dims(value), numpy_dtype(value), arrays[value.name]
        if list(array.shape) == dims:
            batch = [array]
        elif list(array.shape[1:]) == dims:
            batch = list(array)
        else:
            raise UsageError(f"{label}: input '{value.name}' has shape {list(array.shape)}, "
                             f"the model expects {dims}")
        if samples is None:
            samples = [{} for _ in batch]
        if len(batch) != len(samples):
            raise UsageError(f"{label}: inputs have different sample counts")
        for sample, item in zip(samples, batch):
            sample[value.name] = np.ascontiguousarray(item, dtype=dtype)
    if not samples:  # verifying on nothing would pass every build
        raise UsageError(f"{label}: holds no samples (a sample axis of length 0); give at least one")
    return samples


def _given_arrays(given: Mapping[str, Any] | np.ndarray, label: str) -> np.ndarray | dict[str, np.ndarray]:
    """Arrays handed over from Python, checked as a file's are: numeric, keyed by strings."""
    from edgekit.userfiles import NUMERIC_KINDS

    items = {"": given} if isinstance(given, np.ndarray) else dict(given)
    arrays = {}
    for name, value in items.items():
        if not isinstance(name, str):
            raise UsageError(f"{label}: arrays are named by input name (str), got {name!r}")
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:  # a ragged list
            raise UsageError(f"{label}: array {name!r} is not an array ({one_line(exc)})") from None
        if array.dtype.kind not in NUMERIC_KINDS:
            raise UsageError(f"{label}: array {name!r} holds {array.dtype}, not numbers")
        arrays[name] = array
    return arrays[""] if isinstance(given, np.ndarray) else arrays


@functools.lru_cache(maxsize=1)
def onnxruntime_ops() -> frozenset[str]:
    """Op keys (``Conv``, ``com.microsoft::QuickGelu``) onnxruntime's CPU provider has kernels for."""
    from onnxruntime.capi import _pybind_state

    return frozenset(k.op_name if k.domain in ("", "ai.onnx") else f"{k.domain}::{k.op_name}"
                     for k in _pybind_state.get_all_opkernel_def() if k.provider == "CPUExecutionProvider")


def run_onnxruntime(model: onnx.ModelProto, inputs: list[Inputs], what: str = "model",
                    error: type[Exception] = BuildError) -> list[dict[str, np.ndarray]]:
    """Run a model in onnxruntime (all optimizations off: the reference must be the graph as written).
    ``error`` is what a failure raises: a user's model that onnxruntime cannot run is bad input."""
    import onnxruntime as ort

    from edgekit.model import for_runtime

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # 4 (fatal only): at 3 a failing kernel also logs its error, in colour, straight to the
    # terminal; the error raised below is the one line the user gets
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(for_runtime(model).SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return [dict(zip(names, session.run(None, feeds))) for feeds in inputs]
    except Exception as exc:
        raise error(f"onnxruntime cannot run the {what}: {ort_message(exc)}") from None


#: What onnxruntime's messages carry for its developers: the status prefix, and the C++ source
#: location and function signature of the check that failed.
_ORT_NOISE = re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : |/onnxruntime_src/\S+:\d+ [^(]*\(.*?\)\s*(const\s+)?")


def ort_message(exc: BaseException) -> str:
    """An onnxruntime error as one line a user can read: its message without the noise above."""
    return _ORT_NOISE.sub("", one_line(exc)).strip() or one_line(exc)


@dataclass
class Comparison:
    """Worst error over all outputs and input sets; ``output`` is the name where it occurred."""

    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_output: str = ""
    worst_excess: float = 0.0  # how far past the tolerance the worst element is (<= 0: within)
    mismatch: str = ""  # a structural problem: missing output, shape or dtype change
    #: for outputs compared in quantization steps (see :func:`quantized_outputs`): the fraction of
    #: values that agree exactly (within half a step)
    exact_ratio: dict[str, float] = field(default_factory=dict)

    def within(self) -> bool:
        return not self.mismatch and self.worst_excess <= 0.0


#: Opset the onnx reference evaluator implements Q/DQ at (it has no opset-13 QuantizeLinear).
_REFERENCE_OPSET = 21


def run_float64(model: onnx.ModelProto, inputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]] | None:
    """The model evaluated in float64 by onnx's reference evaluator, float32 constants and inputs
    widened. For a QDQ model this is its exact arithmetic: float32 round-off, which onnxruntime's
    float kernels carry through every layer, is 2^29 times smaller here and no longer moves values
    to a neighbouring quantization step. None when the evaluator cannot run the model."""
    import onnx
    from onnx import numpy_helper, version_converter
    from onnx.reference import ReferenceEvaluator

    wide = onnx.ModelProto()
    wide.CopyFrom(model)
    try:
        opset = max((o.version for o in wide.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset < _REFERENCE_OPSET:  # before widening: the converter re-infers float32 types
            wide = version_converter.convert_version(wide, _REFERENCE_OPSET)
        del wide.graph.value_info[:]  # recorded float32 types that no longer hold
        for init in wide.graph.initializer:
            array = numpy_helper.to_array(init)
            if array.dtype == np.float32:
                init.CopyFrom(numpy_helper.from_array(array.astype(np.float64), init.name))
        evaluator = ReferenceEvaluator(wide)
        names = [o.name for o in wide.graph.output]
        return [dict(zip(names, evaluator.run(None, {k: v.astype(np.float64) if v.dtype == np.float32 else v
                                                     for k, v in feeds.items()})))
                for feeds in inputs]
    except Exception:  # an op or attribute the evaluator or the converter lacks: no such reference
        return None


def quantized_outputs(model: onnx.ModelProto) -> dict[str, float]:
    """Graph outputs that a per-tensor DequantizeLinear produces, with their quantization step.

    An integer kernel and onnxruntime's float arithmetic may round such a value to neighbouring
    steps, so these outputs are compared in steps rather than in float error."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    steps = {}
    for out in model.graph.output:
        node = producers.get(out.name)
        if node is None or node.op_type != "DequantizeLinear" or len(node.input) < 2:
            continue
        scale = inits.get(node.input[1])
        if scale is not None and int(np.prod(scale.dims)) == 1:
            steps[out.name] = float(numpy_helper.to_array(scale).reshape(-1)[0])
    return steps


def compare(reference: list[dict[str, np.ndarray]], actual: list[dict[str, np.ndarray]],
            tolerance: Tolerance | None = None, steps: dict[str, float] | None = None,
            max_steps: float = 1.0) -> Comparison:
    """Worst error of ``actual`` against ``reference``; outputs named in ``steps`` (output ->
    quantization step) may differ by ``max_steps`` steps instead of the float tolerance."""
    atol, rtol = (tolerance.atol, tolerance.rtol) if tolerance else (0.0, 0.0)
    steps = steps or {}
    result = Comparison(worst_excess=-np.inf)
    exact: dict[str, list[int]] = {}
    for ref_set, act_set in zip(reference, actual, strict=True):
        for name, ref in ref_set.items():
            act = act_set.get(name)
            if act is None:
                result.mismatch = f"output '{name}' is missing"
                return result
            if act.shape != ref.shape:
                result.mismatch = f"output '{name}' has shape {list(act.shape)}, expected {list(ref.shape)}"
                return result
            ref64, act64 = ref.astype(np.float64), act.astype(np.float64)
            nan_mismatch = np.isnan(ref64) != np.isnan(act64)
            if nan_mismatch.any():
                result.mismatch = f"output '{name}' has NaN where the reference has none (or the reverse)"
                return result
            infinite = np.isinf(ref64) | np.isinf(act64)
            if (ref64[infinite] != act64[infinite]).any():
                # inf - inf is NaN and inf - tolerance(inf) too: compared below, they would pass
                result.mismatch = (f"output '{name}' has an infinity where the reference has another value "
                                   "(or the reverse)")
                return result
            with np.errstate(invalid="ignore"):
                diff = np.where(infinite, 0.0, np.nan_to_num(np.abs(ref64 - act64), nan=0.0))
            ref64 = np.where(infinite, 0.0, ref64)
            if diff.size == 0:
                continue
            # Relative error is measured against values of meaningful size: near-zero references would
            # turn round-off into huge ratios that say nothing.
            floor = max(float(np.abs(ref64).max()) * 1e-3, float(np.finfo(np.float32).tiny))
            rel = diff / np.maximum(np.abs(ref64), floor)
            if name in steps:
                step = steps[name]
                counts = exact.setdefault(name, [0, 0])
                counts[0] += int(np.count_nonzero(diff <= 0.5 * step))
                counts[1] += diff.size
                # whole steps, with float32 round-off of the dequantized values on top
                excess = float(np.max(diff - step * max_steps * (1.0 + 1e-5) - 1e-6 * np.abs(ref64)))
            else:
                excess = float(np.max(diff - (atol + rtol * np.abs(ref64))))
            if excess > result.worst_excess:
                result.worst_excess, result.worst_output = excess, name
            result.max_abs = max(result.max_abs, float(diff.max()))
            result.max_rel = max(result.max_rel, float(rel.max()))
    if result.worst_excess == -np.inf:
        result.worst_excess = 0.0
    result.exact_ratio = {name: hits / max(total, 1) for name, (hits, total) in exact.items()}
    return result


def sqnr_db(reference: list[dict[str, np.ndarray]], actual: list[dict[str, np.ndarray]]) -> float:
    """Signal-to-quantization-noise ratio in dB over every output value of every input set:
    10 log10(sum ref^2 / sum (ref - actual)^2); inf when identical."""
    signal = noise = 0.0
    for ref_set, act_set in zip(reference, actual, strict=True):
        for name, ref in ref_set.items():
            r = np.asarray(ref, dtype=np.float64)
            signal += float(np.sum(r * r))
            noise += float(np.sum((r - np.asarray(act_set[name], dtype=np.float64)) ** 2))
    if noise == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max(signal, 1e-300) / noise))
