"""One static arena for TVM kernels on a microcontroller: the tensors between kernels and every
kernel's workspace.

Technique: TVM's ``StaticPlanBlockMemory`` sizes storages for the Relax VM; here each planned
tensor instead becomes a buffer with the lifetime [first call that touches it, last call], and
each call's workspace (what ``workspace_allocations`` reads from the lowered kernels) a buffer
that lives during that call only. edgekit's interval-conflict placement (the ``mcu-c`` planner's
:func:`~edgekit.plugins.mcu.planner.best_placement`) packs them, so a kernel's temporary buffers
take memory that the tensors not live at that call leave free, instead of a heap on the side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.compiler.lower import Plan
from edgekit.plugins.mcu.planner import ALIGN, Buffer, align_up, best_placement, lower_bound


@dataclass
class ArenaPlan:
    tensor_offsets: dict[str, int]                 # planned tensor (slot name) -> arena offset
    workspace: list[tuple[int, int]]               # per call: (arena offset, bytes); bytes may be 0
    arena_bytes: int
    lower_bound_bytes: int                         # tensors and workspaces live at one call
    tensor_lower_bound_bytes: int                  # tensors only
    workspace_sizes: dict[str, list[int]] = field(default_factory=dict)  # kernel -> allocations

    @property
    def ratio(self) -> float:
        return self.arena_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0

    @property
    def workspace_bytes(self) -> int:
        """The largest workspace one call takes."""
        return max((size for _, size in self.workspace), default=0)


def window_bytes(allocations: list[int]) -> int:
    """Bytes a call's workspace window needs: its allocations, each started at an ``ALIGN`` boundary
    (what the driver's bump allocator does)."""
    return sum(align_up(n, ALIGN) for n in allocations)


def plan_arena(plan: Plan, workspace_sizes: dict[str, list[int]]) -> ArenaPlan:
    lifetimes: dict[str, list[int]] = {}
    for step, call in enumerate(plan.calls):
        for arg in call.args:
            if plan.slots[arg].kind == "storage":
                lifetimes.setdefault(arg, [step, step])[1] = step
    buffers = [Buffer(i, align_up(plan.slots[name].nbytes), start, end, [name])
               for i, (name, (start, end)) in enumerate(lifetimes.items())]
    for step, call in enumerate(plan.calls):
        size = window_bytes(workspace_sizes.get(call.kernel, []))
        if size:
            buffers.append(Buffer(len(buffers), size, step, step, [], scratch_of=step))
    offsets, arena_bytes = best_placement(buffers)
    by_step = {b.scratch_of: (offsets[b.id], b.size) for b in buffers if b.scratch_of >= 0}
    steps = len(plan.calls)
    return ArenaPlan(
        tensor_offsets={b.tensors[0]: offsets[b.id] for b in buffers if b.tensors},
        workspace=[by_step.get(step, (0, 0)) for step in range(steps)],
        arena_bytes=arena_bytes, lower_bound_bytes=lower_bound(buffers, steps),
        tensor_lower_bound_bytes=lower_bound([b for b in buffers if b.scratch_of < 0], steps),
        workspace_sizes=workspace_sizes)
