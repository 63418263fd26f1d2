"""Registers the mixture-of-experts passes."""

import edgekit
from edgekit.plugins.experts.average import average_experts
from edgekit.plugins.experts.describe import describe_moe
from edgekit.plugins.experts.device_split import split_experts_by_device
from edgekit.plugins.experts.partition import partition_experts
from edgekit.plugins.experts.precision import choose_expert_precision
from edgekit.plugins.experts.prune import prune_experts


@edgekit.hookimpl
def edgekit_register_passes():
    return [partition_experts, prune_experts, average_experts, split_experts_by_device, choose_expert_precision]


@edgekit.hookimpl
def edgekit_describe_model(model, context):
    return describe_moe(model, context)
