"""examples/quantize/images.py: CIFAR-like crops of shipped photos for calibrating ResNet-8, and the
accuracy that calibrating on them gives (quantize pass and onnxruntime only, no emulated run)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from edgekit.building import BuildRequest, build
from edgekit.registry import default_registry

logging.getLogger().setLevel(logging.ERROR)

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "examples" / "quantize" / "images.py"
RESNET8 = REPO / "examples" / "models" / "mlperf-tiny" / "ic_resnet8.onnx"
#: Measured with onnxruntime 1.31.1 and scikit-image 0.26.0 on the 64 + 64 default crops: output SQNR
#: 18.48 dB (minmax), top-1 agreement 0.953; random-data calibration gives -0.6 dB on the same crops.
SQNR_FLOOR_DB = 16.0
TOP1_FLOOR = 0.85


@pytest.fixture(scope="module")
def images():
    spec = importlib.util.spec_from_file_location("edgekit_example_images", IMAGES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_crops_are_resnet8_inputs_deterministic_and_disjoint(images):
    calibration, validation = list(images.cifar_like()), list(images.validation())
    assert len(calibration) == len(validation) == 64
    for sample in calibration + validation:
        (x,) = sample.values()
        assert list(sample) == ["input_1"] and x.shape == (1, 3, 32, 32) and x.dtype == np.float32
        assert x.min() >= 0 and x.max() <= 255 and np.array_equal(x, np.round(x))  # whole pixel values
    pixels = np.concatenate([s["input_1"] for s in calibration])
    assert pixels.max() > 200 and pixels.std() > 30  # real photos in the 0..255 range, not [0, 1]
    again = list(images.cifar_like())
    assert all(np.array_equal(a["input_1"], b["input_1"]) for a, b in zip(calibration, again))
    other_seed = list(images.cifar_like(seed=1))
    assert not np.array_equal(other_seed[0]["input_1"], calibration[0]["input_1"])
    # every photo contributes to both splits, and no calibration crop overlaps a validation crop
    boxes = {split: list(images.crops(split)) for split in images.SPLITS}
    for k in range(len(images.PHOTOS)):
        cal = [box for i, box, _ in boxes["calibration"] if i == k]
        val = [box for i, box, _ in boxes["validation"] if i == k]
        assert cal and val
        assert all(c[2] <= v[0] or v[2] <= c[0] or c[3] <= v[1] or v[3] <= c[1] for c in cal for v in val)
    with pytest.raises(ValueError, match="split 'test'"):
        next(images.cifar_like("test"))


def test_calibrating_resnet8_on_the_crops(tmp_path):
    report = build(BuildRequest(model=str(RESNET8), target="cortex-m4", output=tmp_path / "out",
                                backend="onnxruntime", quantize="int8",
                                options={"calibration": f"{IMAGES}:cifar_like",
                                         "validation": f"{IMAGES}:validation"}),
                   default_registry())
    q = report["quantization"]
    assert q["accuracy_known"] is True
    assert q["calibration"]["samples"] == 64 and q["samples"] == 64
    assert q["validation"] == f"{IMAGES}:validation"
    assert q["output_sqnr_db"] >= SQNR_FLOOR_DB and q["top1_agreement"] >= TOP1_FLOOR
