"""Calibration and validation data: where the quantize pass gets its sample inputs.

Formats: a ``.npy`` file (the single input; a leading sample axis when its rank is one more than the
input's), a ``.npz`` file (arrays named after the inputs, same rule), a directory of such files
(sorted by name, each one or more samples), or ``file.py:function`` returning an iterable of
``{input name: array}`` dicts. Without data the pass calibrates on seeded random inputs and says
loudly that the accuracy it reports means nothing for real data.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx

from edgekit.errors import UsageError, one_line
from edgekit.model import graph_inputs
from edgekit.userfiles import load_arrays, regular_file

SUPPORTED = ".npy, .npz, a directory of them, or file.py:function"


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    return {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim) for vi in graph_inputs(model)}


def _split(name: str, array: np.ndarray, shape: tuple[int, ...], where: str) -> list[np.ndarray]:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise UsageError(f"{where}: array for input '{name}' has dtype {array.dtype}; the model takes float32 "
                         f"(convert it with the preprocessing the model was trained with)")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise UsageError(f"{where}: array for input '{name}' holds {int(array.size - np.isfinite(array).sum())} "
                         f"NaN or Inf value(s)")
    if array.ndim == len(shape) + 1 and tuple(array.shape[1:]) == shape:
        return list(array)
    if array.shape == shape:
        return [array]
    if array.size % max(int(np.prod(shape)), 1) == 0 and array.ndim == len(shape) and array.shape[1:] == shape[1:]:
        return [a[None] for a in array]  # samples stacked along the batch axis of a batch-1 input
    raise UsageError(f"{where}: array for input '{name}' has shape {list(array.shape)}; the model takes "
                     f"{list(shape)} (add a leading sample axis for several samples)")


def _from_arrays(arrays: dict[str, np.ndarray], shapes, where: str) -> list[dict[str, np.ndarray]]:
    missing = sorted(set(shapes) - set(arrays))
    if missing:
        raise UsageError(f"{where}: no array for input(s) {', '.join(missing)} (it holds "
                         f"{', '.join(sorted(arrays)) or 'nothing'})")
    per_input = {name: _split(name, arrays[name], shape, where) for name, shape in shapes.items()}
    counts = {len(v) for v in per_input.values()}
    if len(counts) != 1:
        raise UsageError(f"{where}: inputs have different sample counts {sorted(counts)}")
    return [{name: per_input[name][i] for name in shapes} for i in range(counts.pop())]


def _load_file(path: Path, shapes, flag: str) -> list[dict[str, np.ndarray]]:
    label = f"{flag} {path}"
    data = load_arrays(path, label)
    if isinstance(data, dict):
        return _from_arrays(data, shapes, label)
    if len(shapes) != 1:
        raise UsageError(f"{label}: a .npy file feeds a single input; the model has {len(shapes)} "
                         f"({', '.join(shapes)}): use a .npz with arrays named after them")
    return _from_arrays({next(iter(shapes)): data}, shapes, label)


def _load_function(spec: str, shapes, flag: str) -> list[dict[str, np.ndarray]]:
    file, _, function = spec.rpartition(":")
    path = regular_file(Path(file), f"{flag} {spec}", "a Python file")
    module_spec = importlib.util.spec_from_file_location(f"edgekit_calibration_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
        samples = list(getattr(module, function)())
    except AttributeError:
        raise UsageError(f"{flag} {spec}: '{file}' has no function '{function}'") from None
    except Exception as exc:
        raise UsageError(f"{flag} {spec}: {type(exc).__name__}: {one_line(exc)}") from None
    out = []
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict):
            raise UsageError(f"{flag} {spec}: item {i} is a {type(sample).__name__}, expected a "
                             f"dict of input name -> array")
        out.extend(_from_arrays(sample, shapes, f"{spec} item {i}"))
    return out


def load_samples(spec: str, model: onnx.ModelProto, flag: str = "--calibration") -> list[dict[str, np.ndarray]]:
    """Every sample the spec names, as input dicts; UsageError naming the flag/file otherwise."""
    shapes = _shapes(model)
    if ".py:" in spec:
        samples = _load_function(spec, shapes, flag)
    else:
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".npy", ".npz"))
            if not files:
                raise UsageError(f"{flag} {spec}: the directory holds no .npy/.npz files")
            samples = [s for f in files for s in _load_file(f, shapes, flag)]
        elif path.suffix in (".npy", ".npz"):
            samples = _load_file(path, shapes, flag)
        else:
            raise UsageError(f"{flag} {spec}: unsupported data; give {SUPPORTED}")
    if not samples:
        raise UsageError(f"{flag} {spec}: no samples")
    return samples
