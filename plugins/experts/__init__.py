"""Mixture-of-experts passes: find MoE layers and partition them for conditional execution
(``experts-partition``), then optionally prune rarely routed experts, average them (EWA), choose
a weight precision per expert, and plan their placement on multi-unit targets. Run
``experts-partition`` first: the others work on the layers it records (:mod:`edgekit.moe`)."""
