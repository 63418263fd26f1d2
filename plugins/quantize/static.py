"""Static post-training int8 quantization to QDQ ONNX, by onnxruntime's quantization tools.

Technique: calibrated post-training quantization (Jacob et al., CVPR 2018; the TFLite int8 scheme):
int8 symmetric per-channel weights (zero point 0, range [-127, 127]), int8 asymmetric per-tensor
activations whose ranges come from calibration (MinMax, Percentile or Entropy, as onnxruntime
implements them), int32 bias with scale s_x * s_w, Relu/Clip folded into the preceding op's output
range. The rewrite inserts QuantizeLinear/DequantizeLinear pairs (QDQ format), which every back end
can run: onnxruntime in float, the mcu-c back end as integer kernels.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import version_converter

from edgekit.errors import BuildError, UsageError, one_line
from edgekit.model import for_runtime

METHODS = ("minmax", "percentile", "entropy")
#: Opset the per-channel QDQ form needs (the axis attribute of Q/DQ).
MIN_OPSET = 13
#: Ops whose weights make them the layers a mixed-precision sweep looks at.
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of input dicts."""

    def __init__(self, samples: list[dict[str, np.ndarray]]):
        self._samples = samples
        self._it = iter(samples)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._samples)


@contextlib.contextmanager
def _quiet_onnxruntime_logging():
    """onnxruntime's quantizer logs advice to the root logger (and a traceback, as an error, when its
    optional pre-processing fails) and prints calibration progress to stdout (which is the CLI's
    report): keep both out of the user's terminal. Its real failures raise, and are reported."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantize_int8(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]], method: str = "minmax",
                  exclude: list[str] | None = None, only: list[str] | None = None) -> onnx.ModelProto:
    """The QDQ int8 model; ``exclude``/``only`` name nodes to keep in float / to quantize alone."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise UsageError(f"--calibration-method {method}: expected one of {', '.join(METHODS)}")
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    if _opset(model) < MIN_OPSET:
        model = version_converter.convert_version(model, MIN_OPSET)
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as tmp, _quiet_onnxruntime_logging():
        src, pre, dst = Path(tmp) / "float.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "qdq.onnx"
        # onnxruntime (the pre-processing and the calibration sessions) refuses IR versions newer
        # than it knows, which onnx writes by default
        onnx.save(for_runtime(model), src)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # pre-processing is advice; quantization works without it
            pre = src
        try:
            quantize_static(str(pre), str(dst), _Reader(samples), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            per_channel=True, calibrate_method=calibrate,
                            nodes_to_exclude=list(exclude or []), nodes_to_quantize=list(only or []),
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        except Exception as exc:
            raise BuildError(f"onnxruntime quantization failed: {type(exc).__name__}: {one_line(exc)}") from None
        return onnx.load(dst)


def compute_nodes(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS and n.name]
