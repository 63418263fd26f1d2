"""The valid model files front-end fuzzing starts from (issue 9): the repository's MLPerf Tiny models
(.onnx and int8 .tflite, real exporters' output) and small generated ones that build in a fraction of
a second (so most of a fuzzing budget goes to many inputs, not to a few large builds)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "examples" / "models" / "mlperf-tiny"
REAL = ("ic_resnet8.onnx", "ad_autoencoder.onnx", "kws_dscnn_int8.tflite", "ic_resnet8_int8.tflite",
        "ad_autoencoder_int8.tflite")
GENERATED = ("conv_relu.onnx", "float_cnn.tflite", "int8_ops.tflite")


def _generated(name: str) -> bytes:
    if name == "conv_relu.onnx":
        from tests.core.onnx_factory import conv_relu_model

        return conv_relu_model().SerializeToString()
    from tests.tflite import tflite_writer as tw

    return tw.write({"float_cnn.tflite": tw.float_cnn, "int8_ops.tflite": tw.int8_ops}[name]())


@lru_cache(maxsize=None)
def seed_file(name: str) -> bytes:
    """The bytes of corpus file ``name`` (one of REAL or GENERATED)."""
    return (MODELS / name).read_bytes() if name in REAL else _generated(name)
