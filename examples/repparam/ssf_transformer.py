"""A pre-norm transformer block with SSF (Lian et al. 2022) after LayerNorm, qkv, proj, fc1 and fc2.

    edgekit build examples/repparam/ssf_transformer.py:make_model --input-shape 1,16,32 --target x86-64 \
        -o out --passes fold-constants,fold-ssf
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import SSF, as_trained  # noqa: E402

INPUT_SHAPE = (1, 16, 32)


class Block(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4, ssf: bool = True):
        super().__init__()
        maybe = (lambda c: SSF(c, -1)) if ssf else (lambda c: nn.Identity())
        self.heads = heads
        self.norm1, self.ssf_norm1 = nn.LayerNorm(dim), maybe(dim)
        self.qkv, self.ssf_qkv = nn.Linear(dim, 3 * dim), maybe(3 * dim)
        self.proj, self.ssf_proj = nn.Linear(dim, dim), maybe(dim)
        self.norm2, self.ssf_norm2 = nn.LayerNorm(dim), maybe(dim)
        self.fc1, self.ssf_fc1 = nn.Linear(dim, 2 * dim), maybe(2 * dim)
        self.fc2, self.ssf_fc2 = nn.Linear(2 * dim, dim), maybe(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.ssf_qkv(self.qkv(self.ssf_norm1(self.norm1(x))))
        q, k, v = qkv.reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-2, -1) * (dim // self.heads) ** -0.5, dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(batch, tokens, dim)
        x = x + self.ssf_proj(self.proj(mixed))
        hidden = torch.nn.functional.gelu(self.ssf_fc1(self.fc1(self.ssf_norm2(self.norm2(x)))))
        return x + self.ssf_fc2(self.fc2(hidden))


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(Block())


def make_plain_model() -> nn.Module:
    torch.manual_seed(0)
    return as_trained(Block(ssf=False))
