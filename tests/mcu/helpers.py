"""Shared helpers of the mcu-c back end tests: generate, compile on the host, compare with ORT."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgekit.plugins.mcu import hostbuild
from edgekit.plugins.mcu.generator import Generated, generate

MODELS = Path("/work/shared/models/mlperf-tiny")
RESNET8 = MODELS / "ic_resnet8.onnx"
AUTOENCODER = MODELS / "ad_autoencoder.onnx"


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.ir_version = min(model.ir_version, 10)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def io_shapes(gen: Generated) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    s = gen.schedule
    return [s.tensors[n].shape for n in s.inputs], [s.tensors[n].shape for n in s.outputs]


def build_shared(gens: list[tuple[Path, Generated]], work: Path) -> ctypes.CDLL:
    """One .so with every generated model of the batch and one copy of the kernels (the source
    tree's, with the plain ek_ names): generate the models with ``with_kernels=False``, since a
    library's own kernels/ directory renames the kernel symbols under its prefix."""
    shipped = [str(d) for d, _ in gens if (d / "kernels").exists()]
    assert not shipped, f"generated with their own kernels (with_kernels=True): {shipped}"
    sources = [d / s for d, g in gens for s in g.model_sources] + hostbuild.kernel_sources()
    objs = hostbuild.compile_objects(sources, work / "obj", [hostbuild.KERNEL_DIR.parent])
    return ctypes.CDLL(str(hostbuild.link_shared(objs, work / "batch.so")))


def host_model(lib: ctypes.CDLL, gen: Generated) -> hostbuild.HostModel:
    ins, outs = io_shapes(gen)
    s = gen.schedule
    return hostbuild.HostModel(lib, gen.prefix, ins, outs, gen.plan.arena_bytes,
                               [np.dtype(s.tensors[n].dtype) for n in s.inputs],
                               [np.dtype(s.tensors[n].dtype) for n in s.outputs])


def generate_model(model: onnx.ModelProto, out: Path, name: str, **kw) -> Generated:
    return generate(model, out, name=name, **kw)
