"""LoRA (Hu et al. 2021) adapters, the way PEFT wires them: ``base(x) + B(A(x)) * (α / r)``, on a
conv stem (A: 3x3 conv to r channels, B: 1x1 conv), the query and value projections of an attention
layer (token input: MatMul) and a classifier (2-D input: Gemm). Plain architecture: the same layers
without adapters.

    edgekit build examples/repparam/lora.py:make_model --input-shape 1,3,8,8 --target x86-64 \
        -o out --passes fold-constants,merge-lora
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import as_trained  # noqa: E402

INPUT_SHAPE = (1, 3, 8, 8)


class LoRA(nn.Module):
    """A base layer plus a rank-r adapter: ``base(x) + lora_B(lora_A(x)) * alpha / rank``."""

    def __init__(self, base: nn.Module, lora_a: nn.Module, lora_b: nn.Module, rank: int, alpha: float = 8.0):
        super().__init__()
        self.base, self.lora_A, self.lora_B = base, lora_a, lora_b
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


def linear(cin: int, cout: int, rank: int, adapted: bool) -> nn.Module:
    base = nn.Linear(cin, cout)
    return LoRA(base, nn.Linear(cin, rank, bias=False), nn.Linear(rank, cout, bias=False), rank) if adapted else base


def conv(cin: int, cout: int, rank: int, adapted: bool) -> nn.Module:
    base = nn.Conv2d(cin, cout, 3, padding=1)
    if not adapted:
        return base
    return LoRA(base, nn.Conv2d(cin, rank, 3, padding=1, bias=False), nn.Conv2d(rank, cout, 1, bias=False), rank)


class AdaptedNet(nn.Module):
    def __init__(self, adapted: bool = True, dim: int = 16, rank: int = 4):
        super().__init__()
        self.stem = conv(3, dim, rank, adapted)
        self.query, self.value = linear(dim, dim, rank, adapted), linear(dim, dim, rank, adapted)
        self.key, self.out = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.head = linear(dim, 10, rank, adapted)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = torch.relu(self.stem(x)).flatten(2).transpose(1, 2)
        q, k, v = self.query(tokens), self.key(tokens), self.value(tokens)
        attention = torch.softmax(q @ k.transpose(1, 2) * q.shape[-1] ** -0.5, dim=-1)
        mixed = tokens + self.out(attention @ v)
        return self.head(mixed.mean(1))


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(AdaptedNet())


def make_plain_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(AdaptedNet(adapted=False))
