"""RepVGG blocks (Ding et al. 2021): 3x3 conv-BN + 1x1 conv-BN (+ identity BN when shapes allow),
summed, then ReLU. Plain architecture: one 3x3 conv + ReLU per block.

    edgekit build examples/repparam/repvgg.py:make_model --input-shape 1,8,16,16 --target x86-64 \
        -o out --passes fold-constants,fold-batchnorm,merge-branches
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import as_trained  # noqa: E402

INPUT_SHAPE = (1, 8, 16, 16)


def conv_bn(cin: int, cout: int, kernel: int, stride: int, padding, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False),
                         nn.BatchNorm2d(cout))


class RepVGGBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.dense = conv_bn(cin, cout, 3, stride, 1, groups)
        self.pointwise = conv_bn(cin, cout, 1, stride, 0, groups)
        self.identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dense(x) + self.pointwise(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return torch.relu(out)


def net(plain: bool) -> nn.Module:
    block = (lambda cin, cout, stride=1, groups=1: nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, groups=groups), nn.ReLU())) if plain else RepVGGBlock
    return nn.Sequential(block(8, 16, 2), block(16, 16), block(16, 16, 1, 4))


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(net(plain=False))


def make_plain_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(net(plain=True))
