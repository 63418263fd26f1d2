"""Calibration data for `edgekit build ... --quantize int8 --calibration examples/quantize/calibration.py:frames`.

The autoencoder's 40 real input frames (raw little-endian float32, 40 x 640) as input dicts. Any
function returning an iterable of {input name: array} dicts works the same way; so do .npy/.npz
files or a directory of them.
"""

from pathlib import Path

import numpy as np

FRAMES = Path(__file__).resolve().parents[1] / "models" / "mlperf-tiny" / "ad_sample_input_f32.bin"


def frames():
    for frame in np.fromfile(FRAMES, dtype="<f4").reshape(40, 1, 640):
        yield {"input_1": frame}
