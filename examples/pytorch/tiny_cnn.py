"""A small PyTorch CNN for edgekit's PyTorch front end.

    edgekit build examples/pytorch/tiny_cnn.py:make_model --input-shape 1,3,32,32 --target x86-64
    python examples/pytorch/tiny_cnn.py out.pt2   # save as a torch.export program, then: edgekit build out.pt2 ...
"""

from __future__ import annotations

import sys

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Conv-BN-ReLU ×2, a residual add, global pooling and a classifier: the shape of an MLPerf Tiny model."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(x)


def make_model() -> nn.Module:
    """The factory edgekit calls (``file.py:make_model``): seeded weights, eval mode."""
    torch.manual_seed(0)
    model = TinyCNN()
    for module in model.modules():  # non-trivial BatchNorm statistics, so folding them matters
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


if __name__ == "__main__":
    program = torch.export.export(make_model(), (torch.randn(1, 3, 32, 32),))
    torch.export.save(program, sys.argv[1] if len(sys.argv) > 1 else "tiny_cnn.pt2")
