"""Registers the re-parameterization passes (in their suggested pipeline order)."""

import edgekit
from edgekit.plugins.repparam.batchnorm_fold import fold_batchnorm
from edgekit.plugins.repparam.branch_merge import merge_branches
from edgekit.plugins.repparam.linear_chain import collapse_linear_chains
from edgekit.plugins.repparam.lora_merge import merge_lora
from edgekit.plugins.repparam.ssf_fold import fold_ssf

PIPELINE_ORDER = (fold_batchnorm, fold_ssf, merge_lora, merge_branches, collapse_linear_chains)


@edgekit.hookimpl
def edgekit_register_passes():
    return list(PIPELINE_ORDER)
