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

Model inputs and outputs live in the caller's buffers, outside the arena. A float32 output's
buffer is free memory until the output's first write, so buffers whose lifetime ends before
that step are placed in it instead of the arena (first fit, largest first); so is the int8
tensor that a DequantizeLinear widens into the output (the kernel runs backwards, so each value is
read before its bytes are overwritten). The plan keeps this only when it makes the arena smaller.
The lower bound is the largest total size of the arena's buffers live at one step; no placement
of them can beat it. ``tensor_lower_bound``
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
    region: str = ""              # "": the arena; else the output tensor whose buffer holds it

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
    # tensors placed in an output's buffer before it is written: name -> (output, byte offset)
    borrowed: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def borrowed_bytes(self) -> int:
        """Bytes of output buffers used as workspace (the extent used in each, added up)."""
        extent: dict[str, int] = {}
        for b in self.buffers:
            if b.region:
                extent[b.region] = max(extent.get(b.region, 0), b.offset + b.size)
        return sum(extent.values())

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


def _gaps(buf: Buffer, placed: list[Buffer], offsets: dict[int, int]) -> tuple[list[tuple[int, int]], int]:
    """The holes that fit ``buf`` between the placed buffers live at the same time as it, and the
    first offset above all of them."""
    busy = sorted((offsets[p.id], offsets[p.id] + p.size) for p in placed if p.overlaps_in_time(buf))
    gaps, cursor = [], 0
    for lo, hi in busy:
        if lo - cursor >= buf.size:
            gaps.append((cursor, lo))
        cursor = max(cursor, align_up(hi))
    return gaps, cursor


def _place(buffers: list[Buffer], order: list[Buffer], best_fit: bool) -> dict[int, int]:
    """Offsets for ``order``. First fit: the lowest offset clear of every conflicting placed
    buffer. Best fit: the smallest bounded gap that holds the buffer, filled from its top end
    (keeps the gap's bottom free for a later neighbour), else the lowest offset above all."""
    offsets: dict[int, int] = {}
    placed: list[Buffer] = []
    for buf in order:
        gaps, cursor = _gaps(buf, placed, offsets)
        if best_fit and gaps:
            lo, hi = min(gaps, key=lambda g: (g[1] - g[0], g[0]))
            offset = (hi - buf.size) // ALIGN * ALIGN
            offset = max(offset, lo)
        else:
            offset = gaps[0][0] if gaps else cursor
        offsets[buf.id] = offset
        placed.append(buf)
    return offsets


def best_placement(buffers: list[Buffer]) -> tuple[dict[int, int], int]:
    """The smallest arena over several orders (size, lifetime length, start, size x lifetime)
    and both fitting rules."""
    orders = [
        sorted(buffers, key=lambda b: (-b.size, b.start, b.id)),
        sorted(buffers, key=lambda b: (-(b.end - b.start), -b.size, b.id)),
        sorted(buffers, key=lambda b: (b.start, -b.size, b.id)),
        sorted(buffers, key=lambda b: (-b.size * (b.end - b.start + 1), b.id)),
    ]
    best: dict[int, int] = {}
    best_size = -1
    for best_fit in (False, True):
        for order in orders:
            offsets = _place(buffers, order, best_fit)
            size = max((offsets[b.id] + b.size for b in buffers), default=0)
            if best_size < 0 or size < best_size:
                best, best_size = offsets, size
    return best, max(best_size, 0)


def _borrow_outputs(sched: Schedule, buffers: list[Buffer]) -> dict[int, tuple[str, int]]:
    """Buffer id -> (output, offset) for the tensors that can live in a float32 output's buffer:
    dead before the output's first write, or widened into it by that write (placed at offset 0)."""
    first_write: dict[str, int] = {}
    for layer in sched.layers:
        for name in layer.outputs:
            root = sched.root(name)
            if sched.tensors[root].kind == "output":
                first_write.setdefault(root, layer.index)
    holder = {t: b for b in buffers for t in b.tensors}
    borrowed: dict[int, tuple[str, int]] = {}
    outputs = sorted((r for r in first_write if sched.tensors[r].dtype == "float32"),
                     key=lambda r: (-sched.tensors[r].nbytes, r))
    for out in outputs:
        step, limit = first_write[out], sched.tensors[out].nbytes
        placed: list[Buffer] = []
        offsets: dict[int, int] = {}
        writer = sched.layers[step]
        if writer.widens_in_place:
            widened = holder.get(sched.root(writer.inputs[0]))
            if widened is not None and widened.id not in borrowed and widened.end == step \
                    and widened.size <= limit:
                placed.append(widened)
                offsets[widened.id] = 0
        for buf in sorted(buffers, key=lambda b: (-b.size, b.id)):
            if buf.id in borrowed or buf.id in offsets or buf.end >= step or buf.scratch_of >= 0:
                continue
            gaps, cursor = _gaps(buf, placed, offsets)
            offset = gaps[0][0] if gaps else cursor
            if offset + buf.size <= limit:
                placed.append(buf)
                offsets[buf.id] = offset
        borrowed.update({b.id: (out, offsets[b.id]) for b in placed})
    return borrowed


def plan(sched: Schedule, borrow_outputs: bool = True) -> MemoryPlan:
    """``borrow_outputs``: let tensors use float32 output buffers before they are written."""
    buffers, owner = build_buffers(sched)
    steps = len(sched.layers)
    offsets, arena_bytes = best_placement(buffers)
    borrowed = _borrow_outputs(sched, buffers) if borrow_outputs else {}
    if borrowed:
        rest, rest_bytes = best_placement([b for b in buffers if b.id not in borrowed])
        if rest_bytes < arena_bytes:
            offsets, arena_bytes = rest, rest_bytes
        else:
            borrowed = {}
    for b in buffers:
        b.region, b.offset = borrowed.get(b.id, ("", offsets.get(b.id, -1)))
    in_arena = [b for b in buffers if not b.region]
    tensor_offsets: dict[str, int] = {}
    borrowed_tensors: dict[str, tuple[str, int]] = {}
    for name, t in sorted(sched.tensors.items()):
        root = sched.root(name)
        if root in owner:
            buf = buffers[owner[root]]
            if buf.region:
                borrowed_tensors[name] = (buf.region, buf.offset)
            else:
                tensor_offsets[name] = buf.offset
    scratch = {b.scratch_of: b.offset for b in in_arena if b.scratch_of >= 0}
    return MemoryPlan(buffers, tensor_offsets, scratch, arena_bytes, lower_bound(in_arena, steps), steps,
                      lower_bound([b for b in in_arena if b.scratch_of < 0], steps), borrowed_tensors)
