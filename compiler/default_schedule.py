"""Default schedules for untuned convolution and dense kernels: register (or SIMD) tiles and a
row-sized padding window instead of whole-tensor temporaries.

Technique (register blocking as in CMSIS-NN's and TVM's ARM conv schedules, written as a TIR
schedule): a fused ``conv2d_nchw`` kernel as legalized by Relax copies its whole input into a
padded tensor, accumulates into a whole output-sized tensor and then runs each epilogue op
(bias add, residual add, ReLU) over whole tensors. The rewrite

1. inlines the epilogue chain into its last op and computes that op per output tile
   (``reverse_compute_at``), so the accumulators shrink to one tile;
2. tiles output channels x output columns, reduction loops outside and the tile inside: on a
   microcontroller the tile is unrolled (with the kernel's columns) so LLVM keeps its accumulators
   in registers, each weight load serving a row of the tile and each input load a column of it;
   on a CPU with SIMD the column tile is one vector;
3. computes the padded input per output row (``compute_at`` the row loop): a window of
   ``kernel height`` input rows instead of a padded copy of the tensor.

Dense layers (a one-row ``matmul``) get the same treatment: a tile of outputs accumulates over the
reduction, the epilogue runs per tile.

Kernels that the tuning database schedules are left alone; so is any kernel whose shape does not
divide into tiles (it keeps Relax's schedule).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any


@dataclass(frozen=True)
class Tiles:
    channels: int   # output channels per conv tile
    columns: int    # output columns per conv tile (or the largest divisor of the width below it)
    dense: int      # outputs per dense-layer tile
    vectorize: bool  # the column (dense: output) tile is a SIMD vector, not unrolled scalars


# Measured on ResNet-8, emulated Cortex-M4 (instructions per MAC of the 3x3 convs): 2 x 8 gives
# 2.40-2.52; 4 x 4 2.60-2.71; 1 x 8 2.64-2.79; 8 x 2 3.00-3.13; 4 x 8 (too many accumulators
# for 32 FP registers) 3.51-3.61. Wide column tiles win because the unrolled kernel columns
# reuse the loaded inputs.
# Autoencoder, Cortex-M4, instructions per MAC of the 128x128 layers: 8 gives 3.88, 16 3.74, 4 3.96
# (LLVM emits VMUL + VADD rather than VMLA here: about one instruction per MAC above gcc's code).
MICROCONTROLLER = Tiles(channels=2, columns=8, dense=8, vectorize=False)
# CPUs with 16 or more vector registers of 8+ floats, or 32 of 4 (AVX2, AArch64 NEON). Measured:
# ResNet-8 on x86-64-v3, median latency, 8 x 8 356 us, 4 x 8 504 us, 8 x 16 463 us; cortex-a76
# under qemu-aarch64, instructions, 8 x 8 6.03 M, 4 x 16 6.43 M, 4 x 8 6.67 M; the autoencoder's
# dense layers 32 outputs 129 k, 16 outputs 150 k.
SIMD = Tiles(channels=8, columns=8, dense=32, vectorize=True)
# Baseline x86-64 (SSE2: 16 registers of 4 floats): ResNet-8 4 x 8 875 us, 8 x 8 900 us; the
# autoencoder dense 16 outputs 22.6 us, 32 outputs 27.5 us.
SIMD_NARROW = Tiles(channels=4, columns=8, dense=16, vectorize=True)
BASELINE_X86_CPUS = ("", "x86-64", "x86-64-v2")
CONV_BLOCK = "conv2d_nchw"
MATMUL_BLOCK = "matmul"
PAD_BLOCK = "pad_temp"


def tiles_for(spec: dict[str, Any]) -> Tiles:
    """Tiles for a ``[tvm_target]``: Thumb (Cortex-M) has scalar FP registers only; x86-64 without
    an ``mcpu`` beyond v2 has SSE's 16 four-float registers."""
    triple = str(spec.get("mtriple", ""))
    if triple.startswith("thumb"):
        return MICROCONTROLLER
    if triple.startswith("x86_64") and str(spec.get("mcpu", "")) in BASELINE_X86_CPUS:
        return SIMD_NARROW
    return SIMD


def default_schedules(spec: dict[str, Any]):
    """The ``default_schedules`` callable :func:`edgekit.compiler.lower.optimize` takes."""
    return partial(apply_default_schedules, tiles=tiles_for(spec))


def _find(func, block_name: str, n_loops: int):
    """(schedule, block names in order, the block, its loops) when ``func`` has a block
    ``block_name`` under ``n_loops`` loops, else None."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    try:
        root = sch.get_sblock("root")
    except s_tir.ScheduleError:  # hand-written TIR without blocks (TopK, ScatterElements): no rule applies
        return None
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(root)]
    if block_name not in names:
        return None
    block = sch.get_sblock(block_name)
    loops = sch.get_loops(block)
    return (sch, names, block, loops) if len(loops) == n_loops else None


def schedule_conv(func, tiles: Tiles = MICROCONTROLLER):
    """The schedule (its ``mod["main"]`` the tiled kernel, its ``trace`` replayable on ``func``),
    or None when ``func`` is not a conv kernel this rule tiles."""
    from tvm import s_tir

    found = _find(func, CONV_BLOCK, 7)
    if found is None:
        return None
    sch, names, conv, (nn, ff, yy, xx, rc, ry, rx) = found
    channels, columns = (int(sch.get(loop).extent) for loop in (ff, xx))
    column_tile = _largest_divisor(columns, tiles.columns)
    if channels % tiles.channels or column_tile < 2:
        return None
    epilogue = names[names.index(CONV_BLOCK) + 1:]
    try:
        for name in epilogue[:-1]:
            sch.compute_inline(sch.get_sblock(name))
        ff_outer, ff_inner = sch.split(ff, [None, tiles.channels])
        xx_outer, xx_inner = sch.split(xx, [None, column_tile])
        sch.reorder(nn, yy, ff_outer, xx_outer, rc, ry, rx, ff_inner, xx_inner)
        if epilogue:
            sch.reverse_compute_at(sch.get_sblock(epilogue[-1]), xx_outer)
        if PAD_BLOCK in names:
            sch.compute_at(sch.get_sblock(PAD_BLOCK), yy)
        for loop in (rx, ff_inner) if tiles.vectorize else (rx, ff_inner, xx_inner):
            sch.unroll(loop)
        if tiles.vectorize:  # before the init is split off: a reduction block without one cannot be
            sch.vectorize(xx_inner)
        sch.decompose_reduction(conv, rc)
    except s_tir.ScheduleError:
        return None
    return sch


def schedule_matmul(func, tiles: Tiles = MICROCONTROLLER):
    """A ``matmul`` kernel of one row (a dense layer, as Relax legalizes Gemm/MatMul with a
    [K, N] weight) tiled by ``tiles.dense`` outputs, as a schedule; None when the rule does not apply."""
    from tvm import s_tir

    found = _find(func, MATMUL_BLOCK, 3)
    if found is None or int(found[0].get(found[3][0]).extent) != 1:
        return None
    sch, names, block, (rows, cols, reduce) = found
    columns = int(sch.get(cols).extent)
    tile = _largest_divisor(columns, tiles.dense)
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
        if tiles.vectorize:
            sch.vectorize(inner)
        else:
            sch.unroll(inner)
        sch.decompose_reduction(block, reduce)
    except s_tir.ScheduleError:
        return None
    return sch


def _largest_divisor(extent: int, limit: int) -> int:
    return next((t for t in range(min(limit, extent), 1, -1) if extent % t == 0), 1)


def apply_default_schedules(mod, tiles: Tiles = MICROCONTROLLER):
    """``mod`` with every conv and dense kernel the tuning database did not schedule tiled."""
    import tvm

    for gv, func in list(mod.functions.items()):
        if not isinstance(func, tvm.tirx.PrimFunc) or func.attrs and func.attrs.get("tirx.is_scheduled"):
            continue
        scheduled = schedule_kernel(func, tiles)
        if scheduled is not None:
            mod[gv] = scheduled.mod["main"].with_attr("tirx.is_scheduled", True)
    return mod


def schedule_kernel(func, tiles: Tiles = MICROCONTROLLER):
    """The default schedule of one kernel (conv or dense), or None when no rule applies."""
    return schedule_conv(func, tiles) or schedule_matmul(func, tiles)
