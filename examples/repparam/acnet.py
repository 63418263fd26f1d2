"""ACNet asymmetric convolution blocks (Ding et al. 2019): 3x3 + 1x3 + 3x1 conv-BN branches summed.
Plain architecture: one 3x3 conv.

    edgekit build examples/repparam/acnet.py:make_model --input-shape 1,8,16,16 --target x86-64 \
        -o out --passes fold-constants,fold-batchnorm,merge-branches
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import as_trained  # noqa: E402
from repvgg import conv_bn  # noqa: E402

INPUT_SHAPE = (1, 8, 16, 16)


class ACBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.square = conv_bn(cin, cout, (3, 3), stride, (1, 1))
        self.horizontal = conv_bn(cin, cout, (1, 3), stride, (0, 1))
        self.vertical = conv_bn(cin, cout, (3, 1), stride, (1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.square(x) + self.horizontal(x) + self.vertical(x))


def net(plain: bool) -> nn.Module:
    if plain:
        return nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU())
    return nn.Sequential(ACBlock(8, 16, 2), ACBlock(16, 16))


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(net(plain=False))


def make_plain_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(net(plain=True))
