"""ONNX front end: reads ``.onnx`` files (opset >= 11, weights inline or as external data)."""

from __future__ import annotations

import edgekit
from edgekit.frontends import ModelSource
from edgekit.model import load_model


@edgekit.hookimpl
def edgekit_export_model(source: ModelSource, context: edgekit.BuildContext):
    if source.function is not None or source.suffix != ".onnx":
        return None
    return load_model(source.path)
