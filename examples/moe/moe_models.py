"""Small mixture-of-experts models (N = 8 experts, top-2) in the two forms PyTorch code writes them.

* **Dense form** (:class:`DenseMoE`): every expert runs, and each output is weighted by a gate that is
  zero outside the top-k (the form of Shazeer et al. 2017 and Switch Transformer reference code).
* **Gather form** (:class:`GatherMoE`): the experts' weights are stacked, the top-k experts' weights are
  gathered per token and only they run (static shapes: k slots per token).

Both export to ONNX with static shapes. edgekit recognises either and rewrites it for conditional
execution (plugin ``experts``)::

    edgekit inspect examples/moe/moe_models.py:make_moe_mlp --input-shape 1,16
    edgekit build examples/moe/moe_models.py:make_moe_mlp --input-shape 1,16 --target cortex-m4 \\
        --passes experts-partition --run
    edgekit build examples/moe/moe_models.py:make_moe_block --input-shape 1,8,32 --target cortex-m4 \\
        --passes experts-partition --run
"""

from __future__ import annotations

import torch
from torch import nn

EXPERTS = 8
TOP_K = 2


class Expert(nn.Module):
    """A transformer feed-forward network: Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


def _top_k_gates(router: nn.Linear, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the router's logits, the k largest, renormalised to sum to one (Mixtral's gating)."""
    probs = torch.softmax(router(x), dim=-1)
    values, indices = probs.topk(k, dim=-1)
    return values / values.sum(dim=-1, keepdim=True), indices


class DenseMoE(nn.Module):
    """Compute every expert, weight by the (sparse) gates."""

    def __init__(self, dim: int, hidden: int, experts: int = EXPERTS, k: int = TOP_K):
        super().__init__()
        self.router = nn.Linear(dim, experts)
        self.experts = nn.ModuleList(Expert(dim, hidden) for _ in range(experts))
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, indices = _top_k_gates(self.router, x, self.k)
        probs_shape = x.shape[:-1] + (len(self.experts),)
        gates = torch.zeros(probs_shape, dtype=x.dtype).scatter(-1, indices, values)
        out = gates[..., 0:1] * self.experts[0](x)
        for e in range(1, len(self.experts)):
            out = out + gates[..., e:e + 1] * self.experts[e](x)
        return out


class GatherMoE(nn.Module):
    """Stacked expert weights; each token gathers its top-k experts' weights and runs only those."""

    def __init__(self, dim: int, hidden: int, experts: int = EXPERTS, k: int = TOP_K):
        super().__init__()
        self.router = nn.Linear(dim, experts)
        reference = [Expert(dim, hidden) for _ in range(experts)]  # the same initialisation as DenseMoE
        self.w1 = nn.Parameter(torch.stack([e.fc1.weight.T for e in reference]))  # [N, dim, hidden]
        self.b1 = nn.Parameter(torch.stack([e.fc1.bias for e in reference]))      # [N, hidden]
        self.w2 = nn.Parameter(torch.stack([e.fc2.weight.T for e in reference]))  # [N, hidden, dim]
        self.b2 = nn.Parameter(torch.stack([e.fc2.bias for e in reference]))      # [N, dim]
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [tokens, dim]
        values, indices = _top_k_gates(self.router, x, self.k)
        h = torch.einsum("td,tkdh->tkh", x, self.w1[indices]) + self.b1[indices]
        h = torch.nn.functional.gelu(h)
        o = torch.einsum("tkh,tkhd->tkd", h, self.w2[indices]) + self.b2[indices]
        return (o * values.unsqueeze(-1)).sum(dim=1)


class MoEMLP(nn.Module):
    """features -> Linear -> ReLU -> MoE -> Linear -> classes (one token per input row)."""

    def __init__(self, moe: nn.Module, features: int = 16, dim: int = 32, classes: int = 10):
        super().__init__()
        self.embed = nn.Linear(features, dim)
        self.moe = moe
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.moe(torch.relu(self.embed(x))))


class MoEBlock(nn.Module):
    """A pre-norm transformer block (single-head self-attention) whose feed-forward network is a MoE."""

    def __init__(self, dim: int = 32, hidden: int = 128):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.moe = DenseMoE(dim, hidden)
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [batch, tokens, dim]
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        attention = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        x = x + self.proj(attention @ v)
        return x + self.moe(self.norm2(x))


def _seeded(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():  # a router with spread logits, so test inputs reach every expert
        for module in model.modules():
            if isinstance(module, (DenseMoE, GatherMoE)):
                module.router.weight.mul_(4.0)
    return model.eval()


def make_moe_mlp() -> nn.Module:
    """The MoE MLP in the dense form (``--input-shape 1,16``)."""
    torch.manual_seed(0)
    return _seeded(MoEMLP(DenseMoE(32, 128)), 0)


def make_gather_moe_mlp() -> nn.Module:
    """The same MoE MLP in the gather form, with the same weights (``--input-shape 1,16``)."""
    torch.manual_seed(0)
    dense = MoEMLP(DenseMoE(32, 128))
    torch.manual_seed(0)
    gather = MoEMLP(GatherMoE(32, 128))
    gather.load_state_dict(_gather_state(dense.state_dict()))
    return _seeded(gather, 0)


def _gather_state(dense: dict) -> dict:
    state = {k: v for k, v in dense.items() if ".experts." not in k}
    for name, key, transpose in (("w1", "fc1.weight", True), ("b1", "fc1.bias", False),
                                 ("w2", "fc2.weight", True), ("b2", "fc2.bias", False)):
        tensors = [dense[f"moe.experts.{e}.{key}"] for e in range(EXPERTS)]
        state[f"moe.{name}"] = torch.stack([t.T if transpose else t for t in tensors])
    return state


def make_moe_block() -> nn.Module:
    """The MoE transformer block (``--input-shape 1,8,32``: 8 tokens of 32 features)."""
    torch.manual_seed(1)
    return _seeded(MoEBlock(), 1)


def make_skewed_moe_mlp() -> nn.Module:
    """A MoE MLP whose router favours experts 0-3: experts 4-7 are (almost) never routed to."""
    model = make_moe_mlp()
    with torch.no_grad():
        model.moe.router.bias[4:] -= 12.0
    return model


def make_averaged_moe_mlp() -> nn.Module:
    """A MoE MLP trained with Experts Weights Averaging: its experts stay close to their mean."""
    model = make_moe_mlp()
    experts = model.moe.experts
    with torch.no_grad():
        for name, _ in experts[0].named_parameters():
            stack = torch.stack([dict(e.named_parameters())[name] for e in experts])
            mean = stack.mean(0)
            for e in experts:
                dict(e.named_parameters())[name].copy_(mean + 0.002 * (dict(e.named_parameters())[name] - mean))
    return model
