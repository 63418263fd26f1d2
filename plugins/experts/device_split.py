"""``experts-device-split``: a CPU/GPU placement plan for mixture-of-experts layers, after Fiddler
("Fiddler: CPU-GPU Orchestration for Fast Inference of Mixture-of-Experts Models", Kamahori et al.,
2024): on a device with a CPU and a GPU, the backbone (every non-expert op: attention, norms, the
router and the combination) runs on the GPU, and each expert runs where it is cheaper.

Fiddler's observation is that moving an expert's *activations* between the units costs far less
than moving its *weights*, so an expert that does not earn its place on the GPU is better computed
by the CPU where its weights already are. This pass applies that with a simple threshold rule (not
Fiddler's measured latency model, and no GPU memory budget): an expert is planned on the GPU when

* its routing frequency (fraction of tokens whose top-k holds it, measured by ``experts-partition``
  on the calibration data) is at least ``experts_gpu_min_frequency`` (default 0.2), and
* it has at least ``experts_gpu_min_parameters`` parameters (default 4096);

otherwise on the CPU. A rarely routed expert does not amortise uploading and keeping its weights on
the GPU; a tiny expert does too little work to pay for a kernel launch and the activation round
trip between the units. On a target with one compute unit (no GPU among its features or its
``[tvm_target]`` kind: ``opencl``, ``vulkan``, ``cuda``...), everything is planned on the CPU, with
a note.

The pass plans; it does not change the graph or its numerics (verified exactly: atol = rtol = 0).
The plan is stored in the MoE metadata (``Expert.device``, ``MoeLayer.backbone_device``, see
:mod:`edgekit.moe`) and reported as ``experts.device_split``. Executing it is a separate matter: no
back end runs it yet. The tvm back end copies each expert's unit into its placement map, but compiles
the whole graph for the profile's one ``[tvm_target]`` (on a GPU profile such as ``mali-g78``, every
kernel for the GPU); the microcontroller back end has one unit anyway.
"""

from __future__ import annotations

import numpy as np
import onnx

import edgekit
from edgekit.moe import MoeLayer, moe_layers, set_moe_layers
from edgekit.plugins.experts import routing

DEFAULT_MIN_FREQUENCY = 0.2
DEFAULT_MIN_PARAMETERS = 4096
#: Programming interfaces that mean "this target has a GPU" in a profile's features or tvm_target kind.
GPU_APIS = ("opencl", "vulkan", "cuda", "metal", "rocm", "webgpu")
CPU, GPU = "cpu", "gpu"


def gpu_api(target: edgekit.Target | None) -> str:
    """The GPU programming interface of ``target`` ("" when it has only a CPU)."""
    if target is None:
        return ""
    kind = str(target.tvm_target.get("kind", "")).lower()
    if kind in GPU_APIS:
        return kind
    return next((f for f in target.features if f.lower() in GPU_APIS), "")


def _frequencies(model: onnx.ModelProto, layers: list[MoeLayer],
                 context: edgekit.BuildContext) -> str:
    """Fill in routing frequencies the metadata lacks; says where the frequencies came from."""
    missing = [layer for layer in layers if not layer.frequency or len(layer.frequency) != layer.count]
    if not missing:
        return "experts-partition"
    data = routing.samples(model, context, "MoE routing frequencies for the device split measured")
    for name, freq in routing.frequencies(model, missing, data).items():
        next(layer for layer in missing if layer.name == name).frequency = freq
    return "measured by experts-device-split" if len(missing) == len(layers) else \
        "experts-partition, some measured by experts-device-split"


@edgekit.model_pass("experts-device-split", atol=0.0, rtol=0.0)
def split_experts_by_device(model: onnx.ModelProto, context: edgekit.BuildContext) -> onnx.ModelProto:
    """Plan CPU or GPU per expert from routing frequency and size, backbone on the GPU (Fiddler); numerics unchanged."""
    min_frequency = context.number("experts_gpu_min_frequency", DEFAULT_MIN_FREQUENCY, high=1.0)
    min_parameters = context.number("experts_gpu_min_parameters", DEFAULT_MIN_PARAMETERS, integer=True)
    layers = moe_layers(model)
    if not layers:
        context.note("no partitioned MoE layer (run experts-partition first): nothing to plan")
        return model
    target = context.target
    api = gpu_api(target)
    name = target.name if target is not None else "(no target)"
    if not api:
        context.note(f"target {name} has one compute unit (no GPU: none of {', '.join(GPU_APIS)} among its "
                     f"features or tvm_target kind): backbone and every expert planned on the CPU")
    source = _frequencies(model, layers, context)
    backbone = GPU if api else CPU
    entries = []
    for layer in layers:
        layer.backbone_device = backbone
        experts = []
        for index, (expert, frequency) in enumerate(zip(layer.experts, layer.frequency)):
            wanted = frequency >= min_frequency and expert.parameters >= min_parameters
            expert.device = GPU if api and wanted else CPU
            experts.append({"expert": index, "unit": expert.device, "frequency": frequency,
                            "parameters": expert.parameters})
        on_gpu = [e for e in experts if e["unit"] == GPU]
        # share of the layer's expert executions (k per token) that land on the GPU
        gpu_share = round(sum(e["frequency"] for e in on_gpu) / layer.k, 6)
        entries.append({"name": layer.name, "backbone": backbone, "experts": experts,
                        "gpu_experts": len(on_gpu), "cpu_experts": len(experts) - len(on_gpu),
                        "gpu_routed_share": gpu_share})
        if api:
            context.note(f"{layer.name}: {len(on_gpu)} of {layer.count} experts on the GPU "
                         f"({gpu_share:.0%} of routed expert work), the rest on the CPU",
                         gpu=[e["expert"] for e in on_gpu],
                         cpu=[e["expert"] for e in experts if e["unit"] == CPU])
    set_moe_layers(model, layers)
    all_experts = [e for entry in entries for e in entry["experts"]]
    expert_parameters = sum(e["parameters"] for e in all_experts)
    total_parameters = sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer)
    section = context.section("experts")
    section["device_split"] = {
        "target": name, "units": [CPU, GPU] if api else [CPU], "gpu_api": api or None,
        "backbone": backbone, "min_frequency": min_frequency, "min_parameters": min_parameters,
        "frequency_source": source, "layers": entries,
        "totals": {
            "gpu_experts": sum(e["unit"] == GPU for e in all_experts),
            "cpu_experts": sum(e["unit"] == CPU for e in all_experts),
            "gpu_expert_parameters": sum(e["parameters"] for e in all_experts if e["unit"] == GPU),
            "cpu_expert_parameters": sum(e["parameters"] for e in all_experts if e["unit"] == CPU),
            "backbone_parameters": max(0, total_parameters - expert_parameters),
        },
        "executed": False,  # a plan: no back end reads it yet (see the pass's docstring)
    }
    return model

