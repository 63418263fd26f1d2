"""Static memory planner: every intermediate tensor and kernel scratch buffer gets a fixed offset
in one arena.

Technique:
1. Storage groups. A view op (Reshape...) shares its source's bytes (alias). An op the kernel
   allows in place (unary elementwise, BatchNorm, binary elementwise whose same-shaped operand dies
   at that op) puts its output into the buffer of the input that dies there. Each group becomes a
   *buffer* with a lifetime [first step written, last step read] over the schedule.
2. Interval-conflict graph: two buffers conflict when their lifetimes intersect.
3. Greedy placement: buffers in a chosen order each take a 16-byte-aligned offset that overlaps
   no already-placed conflicting buffer: first fit (lowest offset) or best fit (smallest hole,
   filled from its top). Several orders (size, lifetime length, start, size x lifetime) times both
   rules are tried and the smallest arena kept.

Model inputs and outputs live in the caller's buffers, outside the arena. The lower bound is the
largest total size of buffers live at one step; no placement can beat it. ``tensor_lower_bound``
counts tensors only (ResNet-8: the 196,608 B of three live 64 KiB activations); ``lower_bound``
adds the kernels' scratch buffers, which live in the arena too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.plugins.mcu.schedule import Schedule

ALIGN = 16  # EK_ARENA_ALIGN


def align_up(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass
class Buffer:
    id: int
    size: int                     # aligned bytes
    start: int                    # first step (layer index) that writes it
    end: int                      # last step that reads it
    tensors: list[str] = field(default_factory=list)  # storage roots sharing it (in-place chain)
    scratch_of: int = -1          # layer index when this is a kernel scratch buffer
    offset: int = -1

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass
class MemoryPlan:
    buffers: list[Buffer]
    tensor_offsets: dict[str, int]    # every arena tensor (aliases included) -> byte offset
    scratch_offsets: dict[int, int]   # layer index -> byte offset of its scratch buffer
    arena_bytes: int
    lower_bound_bytes: int          # tensors and kernel scratch
    steps: int
    tensor_lower_bound_bytes: int = 0  # tensors only (what the activations alone need)

    @property
    def ratio(self) -> float:
        return self.arena_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0


def _lifetimes(sched: Schedule) -> dict[str, list[int]]:
    """[first write, last read] per storage root of arena tensors."""
    life: dict[str, list[int]] = {}
    for layer in sched.layers:
        for name in layer.outputs:
            root = sched.root(name)
            span = life.setdefault(root, [layer.index, layer.index])
            span[0] = min(span[0], layer.index)
        for name in layer.inputs:
            root = sched.root(name)
            if root in life:
                life[root][1] = max(life[root][1], layer.index)
    return {r: s for r, s in life.items() if sched.tensors[r].kind == "arena"}


def build_buffers(sched: Schedule) -> tuple[list[Buffer], dict[str, int]]:
    """Buffers (in-place chains merged) and the buffer index of every arena storage root."""
    life = _lifetimes(sched)
    buffers: list[Buffer] = []
    owner: dict[str, int] = {}
    for layer in sched.layers:
        for name in layer.outputs:
            root = sched.root(name)
            if root not in life or root in owner:
                continue
            merged = False
            if layer.inplace and layer.inplace[0] == name:
                src = sched.root(layer.inplace[1])
                if src in owner and life[src][1] == layer.index and \
                        sched.tensors[src].nbytes == sched.tensors[root].nbytes:
                    buf = buffers[owner[src]]
                    buf.tensors.append(root)
                    buf.end = max(buf.end, life[root][1])
                    owner[root] = buf.id
                    merged = True
            if not merged:
                buf = Buffer(len(buffers), align_up(sched.tensors[root].nbytes), life[root][0],
                             life[root][1], [root])
                buffers.append(buf)
                owner[root] = buf.id
        if layer.scratch_bytes:
            buffers.append(Buffer(len(buffers), align_up(layer.scratch_bytes), layer.index,
                                  layer.index, [], scratch_of=layer.index))
    return buffers, owner


def lower_bound(buffers: list[Buffer], steps: int) -> int:
    """Largest total size of the buffers live at one schedule step."""
    best = 0
    for step in range(steps):
        best = max(best, sum(b.size for b in buffers if b.start <= step <= b.end))
    return best


def _place(buffers: list[Buffer], order: list[Buffer], best_fit: bool) -> dict[int, int]:
    """Offsets for ``order``. First fit: the lowest offset clear of every conflicting placed
    buffer. Best fit: the smallest bounded gap that holds the buffer, filled from its top end
    (keeps the gap's bottom free for a later neighbour), else the lowest offset above all."""
    offsets: dict[int, int] = {}
    placed: list[Buffer] = []
    for buf in order:
        busy = sorted((offsets[p.id], offsets[p.id] + p.size) for p in placed
                      if p.overlaps_in_time(buf))
        gaps, cursor = [], 0
        for lo, hi in busy:
            if lo - cursor >= buf.size:
                gaps.append((cursor, lo))
            cursor = max(cursor, align_up(hi))
        if best_fit and gaps:
            lo, hi = min(gaps, key=lambda g: (g[1] - g[0], g[0]))
            offset = (hi - buf.size) // ALIGN * ALIGN
            offset = max(offset, lo)
        else:
            offset = gaps[0][0] if gaps else cursor
        offsets[buf.id] = offset
        placed.append(buf)
    return offsets


def plan(sched: Schedule) -> MemoryPlan:
    buffers, owner = build_buffers(sched)
    steps = len(sched.layers)
    orders = [
        sorted(buffers, key=lambda b: (-b.size, b.start, b.id)),
        sorted(buffers, key=lambda b: (-(b.end - b.start), -b.size, b.id)),
        sorted(buffers, key=lambda b: (b.start, -b.size, b.id)),
        sorted(buffers, key=lambda b: (-b.size * (b.end - b.start + 1), b.id)),
    ]
    best: dict[int, int] | None = None
    best_size = -1
    for best_fit in (False, True):
        for order in orders:
            offsets = _place(buffers, order, best_fit)
            size = max((offsets[b.id] + b.size for b in buffers), default=0)
            if best is None or size < best_size:
                best, best_size = offsets, size
    assert best is not None or not buffers
    best = best or {}
    for b in buffers:
        b.offset = best[b.id]
    tensor_offsets: dict[str, int] = {}
    for name, t in sorted(sched.tensors.items()):
        root = sched.root(name)
        if root in owner:
            tensor_offsets[name] = buffers[owner[root]].offset
    scratch = {b.scratch_of: b.offset for b in buffers if b.scratch_of >= 0}
    return MemoryPlan(buffers, tensor_offsets, scratch, max(best_size, 0),
                      lower_bound(buffers, steps), steps,
                      lower_bound([b for b in buffers if b.scratch_of < 0], steps))
