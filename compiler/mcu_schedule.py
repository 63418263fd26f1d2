"""Default schedule for untuned convolution kernels on microcontrollers: register tiles and a
row-sized padding window instead of whole-tensor temporaries.

Technique (register blocking as in CMSIS-NN's and TVM's ARM conv schedules, written as a TIR
schedule): a fused ``conv2d_nchw`` kernel as legalized by Relax copies its whole input into a
padded tensor, accumulates into a whole output-sized tensor and then runs each epilogue op
(bias add, residual add, ReLU) over whole tensors. The rewrite

1. inlines the epilogue chain into its last op and computes that op per output tile
   (``reverse_compute_at``), so the accumulators shrink to one tile;
2. tiles output channels x output columns by ``CHANNEL_TILE`` x ``COLUMN_TILE``, reduction loops
   outside and the tile inside, unrolled (with the kernel's columns), so LLVM keeps the tile's
   accumulators in registers: each weight load serves a row of the tile and each input load a
   column of it;
3. computes the padded input per output row (``compute_at`` the row loop): a window of
   ``kernel height`` input rows instead of a padded copy of the tensor.

Dense layers (a one-row ``matmul``) get the same treatment: ``MATMUL_TILE`` outputs accumulate
in registers over the reduction, the epilogue runs per tile.

Kernels that the tuning database schedules are left alone; so is any kernel whose shape does not
divide into tiles (it keeps Relax's schedule).
"""

from __future__ import annotations

# Measured on ResNet-8, emulated Cortex-M4 (instructions per MAC of the 3x3 convs): 2 x 8 gives
# 2.40-2.52; 4 x 4 2.60-2.71; 1 x 8 2.64-2.79; 8 x 2 3.00-3.13; 4 x 8 (too many accumulators
# for 32 FP registers) 3.51-3.61. Wide column tiles win because the unrolled kernel columns
# reuse the loaded inputs.
CHANNEL_TILE = 2
COLUMN_TILE = 8  # or the largest divisor of the width below it
# Autoencoder, Cortex-M4, instructions per MAC of the 128x128 layers: 8 gives 3.88, 16 3.74, 4 3.96
# (LLVM emits VMUL + VADD rather than VMLA here: about one instruction per MAC above gcc's code).
MATMUL_TILE = 8
CONV_BLOCK = "conv2d_nchw"
MATMUL_BLOCK = "matmul"
PAD_BLOCK = "pad_temp"


def schedule_conv(func):
    """The scheduled PrimFunc, or None when ``func`` is not a conv kernel this rule tiles."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    if CONV_BLOCK not in names:
        return None
    conv = sch.get_sblock(CONV_BLOCK)
    loops = sch.get_loops(conv)
    if len(loops) != 7:
        return None
    nn, ff, yy, xx, rc, ry, rx = loops
    channels, columns = (int(sch.get(loop).extent) for loop in (ff, xx))
    column_tile = next((t for t in range(min(COLUMN_TILE, columns), 1, -1) if columns % t == 0), 1)
    if channels % CHANNEL_TILE or column_tile < 2:
        return None
    epilogue = names[names.index(CONV_BLOCK) + 1:]
    try:
        for name in epilogue[:-1]:
            sch.compute_inline(sch.get_sblock(name))
        ff_outer, ff_inner = sch.split(ff, [None, CHANNEL_TILE])
        xx_outer, xx_inner = sch.split(xx, [None, column_tile])
        sch.reorder(nn, yy, ff_outer, xx_outer, rc, ry, rx, ff_inner, xx_inner)
        if epilogue:
            sch.reverse_compute_at(sch.get_sblock(epilogue[-1]), xx_outer)
        if PAD_BLOCK in names:
            sch.compute_at(sch.get_sblock(PAD_BLOCK), yy)
        sch.decompose_reduction(conv, rc)
        for loop in (rx, ff_inner, xx_inner):
            sch.unroll(loop)
    except s_tir.ScheduleError:
        return None
    return sch.mod["main"]


def schedule_matmul(func):
    """A ``matmul`` kernel of one row (a dense layer, as Relax legalizes Gemm/MatMul with a
    [K, N] weight) tiled by ``MATMUL_TILE`` outputs; None when the rule does not apply."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    if MATMUL_BLOCK not in names:
        return None
    block = sch.get_sblock(MATMUL_BLOCK)
    loops = sch.get_loops(block)
    if len(loops) != 3 or int(sch.get(loops[0]).extent) != 1:
        return None
    rows, cols, reduce = loops
    columns = int(sch.get(cols).extent)
    tile = next((t for t in range(min(MATMUL_TILE, columns), 1, -1) if columns % t == 0), 1)
    if tile < 2:
        return None
    epilogue = names[names.index(MATMUL_BLOCK) + 1:]
    try:
        for name in epilogue[:-1]:
            sch.compute_inline(sch.get_sblock(name))
        outer, inner = sch.split(cols, [None, tile])
        sch.reorder(rows, outer, reduce, inner)
        if epilogue:
            sch.reverse_compute_at(sch.get_sblock(epilogue[-1]), outer)
        sch.decompose_reduction(block, reduce)
        sch.unroll(inner)
    except s_tir.ScheduleError:
        return None
    return sch.mod["main"]


def apply_default_schedules(mod):
    """``mod`` with every conv kernel the tuning database did not schedule tiled by this rule."""
    import tvm

    for gv, func in list(mod.functions.items()):
        if not isinstance(func, tvm.tirx.PrimFunc) or func.attrs and func.attrs.get("tirx.is_scheduled"):
            continue
        scheduled = schedule_conv(func) or schedule_matmul(func)
        if scheduled is not None:
            mod[gv] = scheduled.with_attr("tirx.is_scheduled", True)
    return mod
