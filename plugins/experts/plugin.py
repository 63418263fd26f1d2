"""Registers the mixture-of-experts passes."""

import edgekit
from edgekit.plugins.experts.partition import partition_experts


@edgekit.hookimpl
def edgekit_register_passes():
    return [partition_experts]
