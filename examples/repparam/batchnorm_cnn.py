"""A CNN whose export keeps its BatchNormalization nodes (as a training-mode export or another
converter leaves them): BN after a conv, BN before an unpadded 1x1 conv, BN after a ConvTranspose and
BN after a Linear. ``export.py`` exports it with BN preserved (legacy: ``training=PRESERVE``, no
constant folding; dynamo: ``optimize=False``). Plain architecture: the same layers without BN.

    python examples/repparam/export.py out/  # then
    edgekit build out/batchnorm_cnn.legacy.onnx --target x86-64 -o build --passes fold-constants,fold-batchnorm
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import as_trained  # noqa: E402

INPUT_SHAPE = (1, 3, 16, 16)
KEEPS_BATCHNORM = True


class BatchNormCNN(nn.Module):
    def __init__(self, bn: bool = True, classes: int = 10):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), norm(16), nn.ReLU(),
            norm(16), nn.Conv2d(16, 8, 1), nn.ReLU(),
            nn.ConvTranspose2d(8, 8, 2, stride=2), norm(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32, classes), nn.BatchNorm1d(classes) if bn else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(BatchNormCNN())


def make_plain_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(BatchNormCNN(bn=False))
