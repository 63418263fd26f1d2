"""The generated library's contract as the harness reads it: the ``backend`` section of ``report.json``
(sources, run function, tensors, layers), and the binary record format inputs and outputs travel in.

A record is the model's inputs (or outputs) as raw little-endian bytes, one tensor after the other in
metadata order; each output record is followed by a fixed trailer (``ek_record_trailer`` in
``firmware/ek_harness.h``: status, stack bytes, cycles, reserved; four uint32)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import edgekit

DTYPES = {"float32": "<f4", "int8": "i1", "uint8": "u1", "int16": "<i2", "int32": "<i4"}
TRAILER = np.dtype([("status", "<u4"), ("stack_bytes", "<u4"), ("cycles", "<u4"), ("reserved", "<u4")])


@dataclass(frozen=True)
class TensorSpec:
    name: str
    c_name: str
    shape: tuple[int, ...]
    dtype: str
    count: int
    bytes: int
    #: (scale, zero point) of an int8 tensor standing for a float graph tensor (option io=int8):
    #: float inputs are quantized before they are sent, outputs dequantized after they are read,
    #: exactly as the model's QuantizeLinear/DequantizeLinear would
    quantization: tuple[float, int] | None = None

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.dtype])

    def to_device(self, array: np.ndarray) -> np.ndarray:
        if self.quantization is not None and np.asarray(array).dtype.kind == "f":
            from edgekit.plugins.mcu.qmath import quantize

            return quantize(array, self.quantization[0], self.quantization[1], self.numpy_dtype)
        return np.ascontiguousarray(array, dtype=self.numpy_dtype)

    def from_device(self, array: np.ndarray) -> np.ndarray:
        if self.quantization is not None:
            from edgekit.plugins.mcu.qmath import dequantize

            return dequantize(array, self.quantization[0], self.quantization[1])
        return array


@dataclass(frozen=True)
class LibraryMeta:
    """What the harness needs to know about one generated library."""

    name: str
    header: str
    sources: tuple[str, ...]
    include_dirs: tuple[str, ...]
    run_function: str
    static_arena: bool
    arena_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    layers: tuple[dict[str, Any], ...]
    profile_macro: str = "EK_PROFILE"
    #: prebuilt objects the library links (TVM's kernels), relative to the artifact directory
    objects: tuple[str, ...] = ()

    @property
    def input_record_bytes(self) -> int:
        return sum(t.bytes for t in self.inputs)

    @property
    def output_record_bytes(self) -> int:
        return sum(t.bytes for t in self.outputs) + TRAILER.itemsize

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> LibraryMeta:
        missing = [k for k in ("header", "sources", "run_function", "inputs", "outputs") if k not in data]
        if missing:
            raise edgekit.UsageError(f"{where}: backend metadata lacks {', '.join(missing)}; "
                                     "was this built by the mcu-c back end?")
        if not data["inputs"] or not data["outputs"]:
            raise edgekit.UsageError(f"{where}: the library has no inputs or no outputs; "
                                     "the harness feeds inputs and reads outputs")
        _check_names(data, where)
        return cls(
            name=str(data.get("name", "model")), header=str(data["header"]),
            sources=tuple(data["sources"]), include_dirs=tuple(data.get("include_dirs", ())),
            run_function=str(data["run_function"]), static_arena=bool(data.get("static_arena", False)),
            arena_bytes=int(data.get("arena_bytes", 0)),
            inputs=tuple(_tensor(t, where) for t in data["inputs"]),
            outputs=tuple(_tensor(t, where) for t in data["outputs"]),
            layers=tuple(data.get("layers", ())), profile_macro=str(data.get("profile_macro", "EK_PROFILE")),
            objects=tuple(data.get("objects", ())))


def _check_names(data: dict[str, Any], where: str) -> None:
    """The names the harness writes into its C (``ek_model_table.c``) and command lines come from
    the metadata, which an output directory carries: only identifiers and plain relative paths."""
    from edgekit.naming import require_identifier, require_relative_path

    try:
        for key in ("run_function", "profile_macro"):
            if key in data:
                require_identifier(data[key], f"metadata '{key}'")
        require_relative_path(data["header"], "metadata 'header'")
        for key in ("sources", "include_dirs", "objects"):
            for path in data.get(key, ()):
                require_relative_path(path, f"metadata '{key}' entry")
    except edgekit.BuildError as exc:
        raise edgekit.UsageError(f"{where}: {exc}") from None


def _tensor(data: dict[str, Any], where: str) -> TensorSpec:
    dtype = str(data.get("dtype", "float32"))
    if dtype not in DTYPES:
        raise edgekit.UsageError(f"{where}: tensor '{data.get('name')}' has dtype {dtype}; "
                                 f"the harness handles {', '.join(DTYPES)}")
    shape = tuple(int(d) for d in data.get("shape", ()))
    count = int(data.get("count", int(np.prod(shape)) if shape else 1))
    size = int(data.get("bytes", count * np.dtype(DTYPES[dtype]).itemsize))
    quant = data.get("quantization")
    return TensorSpec(name=str(data["name"]), c_name=str(data.get("c_name", data["name"])), shape=shape,
                      dtype=dtype, count=count, bytes=size,
                      quantization=(float(quant["scale"]), int(quant["zero_point"])) if quant else None)


def load_metadata(artifact_dir: Path, context: edgekit.BuildContext | None = None,
                  metadata: dict[str, Any] | None = None) -> LibraryMeta:
    """The library metadata: ``metadata`` if given, else ``context.report["backend"]`` (set during a
    build, before report.json exists), else ``artifact_dir/report.json``."""
    if metadata is not None:
        return LibraryMeta.from_dict(metadata, "backend metadata")
    if context is not None and isinstance(context.report.get("backend"), dict) and "sources" in context.report["backend"]:
        return LibraryMeta.from_dict(context.report["backend"], f"{artifact_dir}/report.json")
    report_path = Path(artifact_dir) / "report.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise edgekit.UsageError(f"{report_path}: not found; the harness needs the back end's metadata") from None
    except (OSError, ValueError) as exc:
        raise edgekit.UsageError(f"{report_path}: unreadable ({exc})") from None
    if not isinstance(report.get("backend"), dict):
        raise edgekit.UsageError(f"{report_path}: no 'backend' section")
    return LibraryMeta.from_dict(report["backend"], str(report_path))


def pack_inputs(meta: LibraryMeta, inputs: list[dict[str, np.ndarray]]) -> bytes:
    """All input sets as consecutive records."""
    chunks = []
    for index, feed in enumerate(inputs):
        for spec in meta.inputs:
            if spec.name not in feed:
                raise edgekit.UsageError(f"input set {index} lacks input '{spec.name}' "
                                         f"(the library takes {', '.join(t.name for t in meta.inputs)})")
            array = np.asarray(feed[spec.name])
            if array.size != spec.count:
                raise edgekit.UsageError(f"input '{spec.name}' of set {index} has {array.size} values; "
                                         f"the library takes shape {list(spec.shape)} ({spec.count} values)")
            chunks.append(np.ascontiguousarray(spec.to_device(array)).tobytes())
    return b"".join(chunks)


def unpack_outputs(meta: LibraryMeta, data: bytes, expected: int, where: str
                   ) -> list[tuple[dict[str, np.ndarray], dict[str, int]]]:
    """Output records → [(outputs by name, trailer fields)]; a short file is a BuildError."""
    size = meta.output_record_bytes
    if len(data) != size * expected:
        raise edgekit.BuildError(f"{where}: got {len(data)} output bytes for {expected} record(s) of "
                                 f"{size} bytes; the run stopped early")
    records = []
    for index in range(expected):
        record = data[index * size:(index + 1) * size]
        outputs, offset = {}, 0
        for spec in meta.outputs:
            array = np.frombuffer(record, dtype=spec.numpy_dtype, count=spec.count, offset=offset)
            outputs[spec.name] = spec.from_device(
                array.reshape(spec.shape).astype(spec.numpy_dtype.newbyteorder("=")))
            offset += spec.bytes
        trailer = np.frombuffer(record, dtype=TRAILER, count=1, offset=offset)[0]
        records.append((outputs, {k: int(trailer[k]) for k in TRAILER.names}))
    return records


def check_statuses(records: list[tuple[dict, dict[str, int]]], meta: LibraryMeta, where: str) -> None:
    for index, (_, trailer) in enumerate(records):
        if trailer["status"] != 0:
            raise edgekit.BuildError(f"{where}: {meta.run_function} returned {trailer['status']} "
                                     f"for input set {index} (0 means success)")
