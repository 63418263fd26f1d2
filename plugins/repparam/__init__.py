"""Re-parameterization passes: fold training-time structure (SSF affines, BatchNorm, parallel
branches, LoRA adapters, linear chains) into plain layers, exactly, before quantization.

Suggested order (after ``fold-constants``): ``fold-batchnorm``, ``fold-ssf``, ``merge-lora``,
``merge-branches``, ``collapse-linear-chains``.
"""
