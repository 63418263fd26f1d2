"""DEA-Net's detail-enhanced convolution, DEConv (Chen et al., IEEE TIP 2024), in its training form:
a vanilla 3x3 conv plus central (CDC), angular (ADC), horizontal (HDC) and vertical (VDC) difference
convolutions, each run separately and summed. Each difference convolution is an ordinary kernel
derived from a learned one, so the block re-parameterizes to one plain 3x3 conv.

CDC is written in its classic two-convolution form ``conv(x, W) - θ·conv(x, ΣW)`` (Yu et al. 2020);
ADC, HDC and VDC build their kernels from the learned weights in ``forward`` (constant sub-graphs
that ``fold-constants`` evaluates).

    edgekit build examples/repparam/deconv.py:make_model --input-shape 1,8,16,16 --target x86-64 \
        -o out --passes fold-constants,fold-ssf,merge-branches
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import as_trained  # noqa: E402

INPUT_SHAPE = (1, 8, 16, 16)
ANGULAR_ROTATION = [3, 0, 1, 6, 4, 2, 7, 8, 5]  # each tap's clockwise neighbour in a 3x3 window


class DEConv(nn.Module):
    def __init__(self, dim: int, theta: float = 0.7):
        super().__init__()
        self.theta = theta
        self.vanilla = nn.Conv2d(dim, dim, 3, padding=1)
        self.central = nn.Conv2d(dim, dim, 3, padding=1)
        self.angular = nn.Conv2d(dim, dim, 3, padding=1)
        self.horizontal = nn.Conv1d(dim, dim, 3)  # its 3 taps are the left column; the right is negated
        self.vertical = nn.Conv1d(dim, dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        central = (F.conv2d(x, self.central.weight, self.central.bias, padding=1)
                   - self.theta * F.conv2d(x, self.central.weight.sum((2, 3), keepdim=True)))
        w = self.angular.weight.flatten(2)
        angular_kernel = (w - self.theta * w[:, :, ANGULAR_ROTATION]).reshape(self.angular.weight.shape)
        angular = F.conv2d(x, angular_kernel, self.angular.bias, padding=1)
        h = self.horizontal.weight
        horizontal = F.conv2d(x, torch.stack([h, torch.zeros_like(h), -h], dim=-1), self.horizontal.bias, padding=1)
        v = self.vertical.weight
        vertical = F.conv2d(x, torch.stack([v, torch.zeros_like(v), -v], dim=-2), self.vertical.bias, padding=1)
        return self.vanilla(x) + central + angular + horizontal + vertical


def net(plain: bool) -> nn.Module:
    block = (lambda dim: nn.Conv2d(dim, dim, 3, padding=1)) if plain else DEConv
    return nn.Sequential(block(8), nn.ReLU(), block(8))


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(net(plain=False))


def make_plain_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(net(plain=True))
