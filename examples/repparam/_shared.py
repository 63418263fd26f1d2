"""Pieces the re-parameterization examples share: an SSF module and seeded "trained" parameters.

Each example file defines ``make_model`` (the training-time structure) and ``make_plain_model``
(the plain architecture it re-parameterizes to, with its own weights): edgekit's passes must turn
the first into exactly the node types and parameter count of the second.
"""

from __future__ import annotations

import torch
from torch import nn


class SSF(nn.Module):
    """Scale & shift of features (Lian et al. 2022): ``γ ⊙ x + β`` along ``dim`` (1 for NCHW, -1 for tokens)."""

    def __init__(self, channels: int, dim: int = 1):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return x * self.scale.view(shape) + self.shift.view(shape)


def as_trained(model: nn.Module, seed: int = 0) -> nn.Module:
    """Perturb parameters and BN statistics as training would, so every fold has work to do
    (fresh SSF is the identity, fresh LoRA B is zero, fresh BN statistics are trivial)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("scale", "weight")) and parameter.dim() == 1:
                parameter.copy_(1.0 + 0.3 * torch.randn(parameter.shape, generator=generator))
            elif parameter.dim() == 1:
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
            elif "lora_B" in name:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(0.3 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
    return model.eval()
