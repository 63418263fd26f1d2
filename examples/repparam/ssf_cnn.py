"""An SSF-tuned CNN (Lian et al. 2022): SSF scale/shift after every conv and the classifier.

    edgekit build examples/repparam/ssf_cnn.py:make_model --input-shape 1,3,32,32 --target x86-64 \
        -o out --passes fold-constants,fold-ssf
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SSF, as_trained  # noqa: E402

INPUT_SHAPE = (1, 3, 32, 32)


class SSFCNN(nn.Module):
    def __init__(self, ssf: bool = True, classes: int = 10):
        super().__init__()
        maybe = (lambda c, dim=1: SSF(c, dim)) if ssf else (lambda c, dim=1: nn.Identity())
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), maybe(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), maybe(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, groups=4), maybe(32), nn.ReLU(),
            nn.Conv2d(32, 32, 1), maybe(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32, classes), maybe(classes, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(SSFCNN())


def make_plain_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(SSFCNN(ssf=False))
