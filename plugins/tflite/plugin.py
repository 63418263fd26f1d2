"""TFLite front end plugin: ``edgekit build model.tflite ...`` reads the flatbuffer
(:mod:`.reader`) and converts it to ONNX (:mod:`.convert`): float models to plain ONNX, int8 models
to QDQ ONNX with the file's exact scales and zero points. Registered through the ``edgekit``
entry-point group (``tflite = "edgekit.plugins.tflite.plugin"``), as a third-party front end would be.
The graph's input and output keep TFLite's shapes (NHWC); inside, rank-4 tensors are NCHW.
A run (``--run``) of such a model is also compared with TensorFlow Lite Micro (:mod:`.compare`).
"""

from __future__ import annotations

import edgekit
from edgekit.frontends import ModelSource


@edgekit.hookimpl
def edgekit_export_model(source: ModelSource, context: edgekit.BuildContext):
    if source.function is not None or source.suffix != ".tflite":
        return None
    from edgekit.plugins.tflite.convert import convert
    from edgekit.plugins.tflite.reader import read

    return convert(read(source.path), str(source.path)).model


@edgekit.hookimpl
def edgekit_compare_run(source: ModelSource, model, context: edgekit.BuildContext, outputs, rerun):
    if source.function is not None or source.suffix != ".tflite":
        return None
    from edgekit.plugins.tflite.compare import compare_run

    return compare_run(source, model, context, outputs, rerun)
