"""CIFAR-like calibration data for ResNet-8, from photos that installed packages ship:

    edgekit build examples/models/mlperf-tiny/ic_resnet8.onnx --target cortex-m4 --quantize int8 \\
        --calibration examples/quantize/images.py:cifar_like --validation examples/quantize/images.py:validation

32x32 RGB crops, downscaled (area average) from square regions of six colour photos: matplotlib's
Grace Hopper and scikit-image's astronaut, cat, coffee, motorcycle and rocket, all bundled in those
wheels (the dev extra), none downloaded. Layout and range are the model's: [1, 3, 32, 32] float32, RGB,
whole pixel values in [0, 255]; MLPerf Tiny's int8 ResNet-8 takes the same pixels (input scale 1.0,
zero point -128). Each photo's left half feeds one split and its right half the other (swapped from
photo to photo), so calibration and validation crops never share a pixel. Seeded: the same crops
every run. Real images, but not CIFAR-10 (not available offline).
"""

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

#: (package, file under the package's directory) of every photo used.
PHOTOS = [("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"), ("skimage", "data/astronaut.png"),
          ("skimage", "data/chelsea.png"), ("skimage", "data/coffee.png"),
          ("skimage", "data/motorcycle_left.png"), ("skimage", "data/rocket.jpg")]
SPLITS = ("calibration", "validation")


def photo(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    if spec is None:
        raise FileNotFoundError(f"{name}: package '{package}' is not installed (pip install -e '.[dev]')")
    return Path(spec.submodule_search_locations[0]) / name


def crops(split: str = "calibration", samples: int = 64, seed: int = 0):
    """(photo index, (left, top, right, bottom), mirrored) of each crop of the split, in order."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    sizes = [Image.open(photo(*p)).size for p in PHOTOS]
    for i in range(samples):
        k = i % len(PHOTOS)
        half, height = sizes[k][0] // 2, sizes[k][1]
        x0 = half if (k + SPLITS.index(split)) % 2 else 0  # this split's half of the photo
        side = int(rng.integers(min(half, height) // 3, min(half, height) + 1))
        x, y = x0 + int(rng.integers(0, half - side + 1)), int(rng.integers(0, height - side + 1))
        yield k, (x, y, x + side, y + side), bool(rng.random() < 0.5)


def cifar_like(split: str = "calibration", samples: int = 64, seed: int = 0):
    """``samples`` {"input_1": [1, 3, 32, 32] float32 in [0, 255]} dicts of the given split."""
    images = [Image.open(photo(*p)).convert("RGB") for p in PHOTOS]
    for k, box, mirrored in crops(split, samples, seed):
        pixels = np.asarray(images[k].resize((32, 32), Image.Resampling.BOX, box=box), dtype=np.float32)
        if mirrored:
            pixels = pixels[:, ::-1]
        yield {"input_1": np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])}


def validation():
    """The validation split, for ``--validation examples/quantize/images.py:validation``."""
    return cifar_like("validation")
