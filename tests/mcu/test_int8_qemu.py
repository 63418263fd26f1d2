"""The MLPerf Tiny models quantized to int8 (QDQ), built by the mcu-c back end and run on the emulated
boards, every compute layer in int8. The build itself fails beyond the back end's step tolerance;
the exact-match ratio of the outputs is bounded here (per layer the kernels are exact: see
test_int8_models; onnxruntime's float round-off spreads through ResNet-8's depth to ~5% of the
softmax outputs, measured)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import version_converter

from edgekit.build import BuildRequest, build
from edgekit.registry import default_registry
from tests.mcu import qdq_models

logging.getLogger().setLevel(logging.ERROR)

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models" / "mlperf-tiny"
SHAPES = {"ic_resnet8": (1, 3, 32, 32), "ad_autoencoder": (1, 640)}


def quantized(name: str, path: Path) -> Path:
    model = version_converter.convert_version(onnx.load(MODELS / f"{name}.onnx"), 13)
    qdq = qdq_models.quantize(model, {model.graph.input[0].name: SHAPES[name]}, samples=16)
    onnx.save(qdq, path)
    return path


@pytest.fixture(scope="module")
def qdq_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("qdq")
    return {name: quantized(name, root / f"{name}_int8.onnx") for name in SHAPES}


@pytest.mark.parametrize("name,target,io", [("ic_resnet8", "cortex-m4", "float"),
                                            ("ad_autoencoder", "cortex-m4", "int8"),
                                            ("ad_autoencoder", "cortex-m0plus", "float")])
def test_int8_model_on_emulated_board(qdq_files, tmp_path, name, target, io):
    report = build(BuildRequest(model=str(qdq_files[name]), target=target, output=tmp_path / "out",
                                run=True, verify_samples=4, options={"io": io}), default_registry())
    run, backend = report["run"], report["backend"]
    assert run["exact_ratio"] and min(run["exact_ratio"].values()) >= 0.9, run["exact_ratio"]
    compute = [l for l in backend["layers"] if l["macs"]]
    assert compute and all(l["dtype"] == "int8" for l in compute), [l["op"] for l in compute]
    assert all(layer["kernel"].endswith("_s8") or layer["kernel"].startswith("ek_q")
               or layer["kernel"].startswith("ek_quantize") or layer["kernel"].startswith("ek_dequantize")
               for layer in backend["layers"]), [l["kernel"] for l in backend["layers"]]
    assert [t["dtype"] for t in backend["inputs"]] == (["int8"] if io == "int8" else ["float32"])
    assert run["measurements"]["instructions"] > 0
