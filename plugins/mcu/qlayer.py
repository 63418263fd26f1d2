"""What an int8 kernel family hands the code generator for one layer.

The int8 kernel families keep their quantization arithmetic (multipliers, LUTs, packed weights,
folded offsets) next to their C code: each offers a Python builder that turns the ONNX-level
description of a layer (shapes, scales, zero points, integer weights) into a :class:`QLayer`. The
lowering (:mod:`.ops_quant`) then only places tensors and emits the call

    function(&params, <input tensors...>, <consts in order...>, <output tensor>[, scratch or NULL])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class QLayer:
    function: str                      # C function, e.g. "ek_qconv_s8"
    family: str                        # kernel family (file stem), e.g. "ek_qconv"
    params_type: str                   # C typedef of the params struct
    params: dict[str, Any]             # struct fields in declaration order (ints, lists of ints)
    consts: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (role, int8/int16/int32 array)
    scratch_bytes: int = 0             # bytes of the scratch buffer (void *) passed last
    takes_scratch: bool = False        # the kernel has a scratch argument (NULL when 0 bytes)
    inplace: bool = False              # the output may share the (first) input's buffer
    summary: str = ""                  # short text for the layer comment, e.g. "k3x3 s1 p1"
