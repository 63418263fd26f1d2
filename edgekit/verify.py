"""Numerical verification against onnxruntime: seeded inputs, reference runs, error measures."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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


def load_inputs(path: str | Path, model: onnx.ModelProto) -> list[Inputs]:
    """User inputs from ``.npy`` (one array, the single input; a leading axis of several samples is
    allowed) or ``.npz`` (arrays named after the inputs), checked against the model's inputs."""
    from edgekit.model import graph_inputs, numpy_dtype, tensor_dims

    path = Path(path)
    inputs = graph_inputs(model)
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such input file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a .npy/.npz file ({one_line(exc)})") from None
    if isinstance(loaded, np.ndarray):
        if len(inputs) != 1:
            raise UsageError(f"{path}: a .npy file feeds a single input; the model has {len(inputs)}: "
                             f"use .npz with arrays named {', '.join(i.name for i in inputs)}")
        arrays = {inputs[0].name: loaded}
    else:
        arrays = {name: loaded[name] for name in loaded.files}
    samples: list[Inputs] | None = None
    for value in inputs:
        if value.name not in arrays:
            raise UsageError(f"{path}: no array for input '{value.name}'")
        dims, dtype, array = tensor_dims(value), numpy_dtype(value), arrays[value.name]
        if list(array.shape) == dims:
            batch = [array]
        elif list(array.shape[1:]) == dims:
            batch = list(array)
        else:
            raise UsageError(f"{path}: input '{value.name}' has shape {list(array.shape)}, "
                             f"the model expects {dims}")
        if samples is None:
            samples = [{} for _ in batch]
        if len(batch) != len(samples):
            raise UsageError(f"{path}: inputs have different sample counts")
        for sample, item in zip(samples, batch):
            sample[value.name] = np.ascontiguousarray(item, dtype=dtype)
    return samples or []


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
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(for_runtime(model).SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return [dict(zip(names, session.run(None, feeds))) for feeds in inputs]
    except Exception as exc:
        raise error(f"onnxruntime cannot run the {what}: {one_line(exc)}") from None


@dataclass
class Comparison:
    """Worst error over all outputs and input sets; ``output`` is the name where it occurred."""

    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_output: str = ""
    worst_excess: float = 0.0  # how far past the tolerance the worst element is (<= 0: within)
    mismatch: str = ""  # a structural problem: missing output, shape or dtype change

    def within(self) -> bool:
        return not self.mismatch and self.worst_excess <= 0.0


def compare(reference: list[dict[str, np.ndarray]], actual: list[dict[str, np.ndarray]],
            tolerance: Tolerance | None = None) -> Comparison:
    atol, rtol = (tolerance.atol, tolerance.rtol) if tolerance else (0.0, 0.0)
    result = Comparison(worst_excess=-np.inf)
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
            diff = np.nan_to_num(np.abs(ref64 - act64), nan=0.0, posinf=np.inf)
            if diff.size == 0:
                continue
            # Relative error is measured against values of meaningful size: near-zero references would
            # turn round-off into huge ratios that say nothing.
            floor = max(float(np.abs(ref64).max()) * 1e-3, float(np.finfo(np.float32).tiny))
            rel = diff / np.maximum(np.abs(ref64), floor)
            excess = float(np.max(diff - (atol + rtol * np.abs(ref64))))
            if excess > result.worst_excess:
                result.worst_excess, result.worst_output = excess, name
            result.max_abs = max(result.max_abs, float(diff.max()))
            result.max_rel = max(result.max_rel, float(rel.max()))
    if result.worst_excess == -np.inf:
        result.worst_excess = 0.0
    return result
