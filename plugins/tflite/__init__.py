"""The TensorFlow Lite front end: ``.tflite`` flatbuffers to ONNX (float, or int8 as QDQ)."""
