"""The quantize plugin: calibrated static int8 quantization (QDQ) through onnxruntime's tools."""
