"""First-party front ends: ONNX files and PyTorch (torch.export programs and module factories)."""
