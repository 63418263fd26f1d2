"""Memory planner: no two live tensors overlap (checked independently of the planner's own
buffer bookkeeping), arena close to the lower bound, scratch planned, offsets aligned."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.plugins.mcu.generator import lower_model
from edgekit.plugins.mcu.planner import plan

from .helpers import AUTOENCODER, RESNET8


def _live_ranges(sched):
    """Per tensor: [step written, last step read], following view aliases to their source."""
    def root(n):
        while n in sched.aliases:
            n = sched.aliases[n]
        return n
    written, last_read = {}, {}
    for layer in sched.layers:
        for n in layer.outputs:
            written.setdefault(n, layer.index)
        for n in layer.inputs:
            last_read[root(n)] = max(last_read.get(root(n), -1), layer.index)
            last_read[n] = max(last_read.get(n, -1), layer.index)
    ranges = {}
    for n in sched.tensors:
        r = root(n)
        if r in written:
            ranges[n] = (written[r], max(last_read.get(r, written[r]), last_read.get(n, written[r])))
    return ranges, root


def assert_no_live_overlap(sched, mem):
    ranges, root = _live_ranges(sched)
    # every planned tensor: (region, first byte, end byte); region "" is the arena, else the output
    # whose buffer holds the tensor before that output is written
    placed = {n: ("", mem.tensor_offsets[n], mem.tensor_offsets[n] + sched.tensors[n].nbytes)
              for n in mem.tensor_offsets}
    placed.update({n: (out, off, off + sched.tensors[n].nbytes) for n, (out, off) in mem.borrowed.items()})
    for region, lo, hi in placed.values():
        limit = sched.tensors[region].nbytes if region else mem.arena_bytes
        assert lo % 16 == 0 and hi <= limit, f"a tensor does not fit in {region or 'the arena'}"
    for off in mem.scratch_offsets.values():
        assert off % 16 == 0 and off <= mem.arena_bytes
    names = sorted(placed)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if root(a) == root(b):
                continue  # a view of the same bytes
            (ra, a0, a1), (rb, b0, b1) = placed[a], placed[b]
            if ra != rb or a1 <= b0 or b1 <= a0:
                continue
            (sa, ea), (sb, eb) = ranges[a], ranges[b]
            if ea < sb or eb < sa:
                continue
            # Overlap in bytes and in time: only legal as a declared in-place pair at its step.
            step = max(sa, sb)
            layer = sched.layers[step]
            pair = {root(x) for x in (layer.inplace or ())}
            assert layer.inplace and {root(a), root(b)} == pair and min(ea, eb) == step, \
                f"tensors '{a}' and '{b}' overlap while both live (step {step})"
    for idx, off in mem.scratch_offsets.items():
        size = sched.layers[idx].scratch_bytes
        for n, (region, t0, t1) in placed.items():
            s, e = ranges[n]
            if not region and s <= idx <= e:
                assert t1 <= off or off + size <= t0, f"scratch of layer {idx} overlaps '{n}'"
    first_write = {}
    for layer in sched.layers:
        for n in layer.outputs:
            first_write.setdefault(root(n), layer.index)
    for name, (output, offset) in mem.borrowed.items():
        # an output's buffer is free only before its first write, except for the input that
        # write widens into it from offset 0 (a kernel that runs last to first)
        out = sched.tensors[output]
        assert out.kind == "output" and out.dtype == "float32"
        step = first_write[output]
        writer = sched.layers[step]
        widened = writer.widens_in_place and root(writer.inputs[0]) == root(name)
        assert ranges[name][1] < step or (widened and offset == 0 and ranges[name][1] == step), \
            f"'{name}' is still live when output '{output}' is written (step {step})"


@pytest.mark.parametrize("path", [RESNET8, AUTOENCODER])
def test_real_models_plan(path):
    sched = lower_model(onnx.load(str(path)))
    mem = plan(sched)
    assert_no_live_overlap(sched, mem)
    assert mem.arena_bytes <= 1.05 * mem.lower_bound_bytes
    if path == RESNET8:
        assert mem.tensor_lower_bound_bytes == 196608  # three live 16x32x32 float maps
        assert mem.arena_bytes == mem.lower_bound_bytes  # optimal, conv scratch included


def _chain_with_branches(n_branches: int, width: int, seed: int) -> onnx.ModelProto:
    """Random DAG of unary/binary ops with skip connections to stress lifetimes and in-place."""
    rng = np.random.default_rng(seed)
    nodes, inits, live = [], [], ["x"]
    for i in range(n_branches):
        kind = rng.integers(0, 4)
        src = live[int(rng.integers(0, len(live)))]
        out = f"t{i}"
        if kind == 0:
            nodes.append(helper.make_node("Relu", [src], [out]))
        elif kind == 1:
            other = live[int(rng.integers(0, len(live)))]
            nodes.append(helper.make_node("Add", [src, other], [out]))
        elif kind == 2:
            w = rng.standard_normal((width, width)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            nodes.append(helper.make_node("MatMul", [src, f"w{i}"], [out]))
        else:
            nodes.append(helper.make_node("Sigmoid", [src], [out]))
        live.append(out)
    # Sum everything that is still unused so no tensor is dead.
    used = {i for n in nodes for i in n.input}
    tails = [t for t in live if t not in used] or [live[-1]]
    acc = tails[0]
    for j, t in enumerate(tails[1:]):
        nodes.append(helper.make_node("Add", [acc, t], [f"s{j}"]))
        acc = f"s{j}"
    nodes.append(helper.make_node("Identity", [acc], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("seed", range(12))
def test_random_dags_never_overlap_live_tensors(seed):
    model = _chain_with_branches(6 + seed, 4 + 4 * (seed % 3), seed)
    sched = lower_model(model)
    mem = plan(sched)
    assert_no_live_overlap(sched, mem)
    assert mem.lower_bound_bytes <= mem.arena_bytes


def test_inplace_activation_shares_buffer():
    # Sigmoid after MatMul: the sigmoid may write over its input, which dies there.
    w = numpy_helper.from_array(np.eye(8, dtype=np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Sigmoid", ["a"], ["b"]),
             helper.make_node("MatMul", ["b", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [w])
    sched = lower_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    mem = plan(sched)
    assert mem.tensor_offsets["a"] == mem.tensor_offsets["b"]
    assert mem.arena_bytes == 32 and mem.lower_bound_bytes == 32


def test_overlap_checker_catches_a_corrupted_plan():
    sched = lower_model(onnx.load(str(RESNET8)))
    mem = plan(sched)
    # Move every arena tensor to offset 0: live tensors now collide and the checker must say so.
    for name in mem.tensor_offsets:
        mem.tensor_offsets[name] = 0
    with pytest.raises(AssertionError, match="overlap"):
        assert_no_live_overlap(sched, mem)


def test_output_buffer_serves_as_workspace_before_it_is_written():
    """The autoencoder's hidden layers die before the last layer writes the 640-float output, so
    they live in that buffer: the arena keeps only the last hidden layer (512 B, not 1,024 B)."""
    sched = lower_model(onnx.load(str(AUTOENCODER)))
    mem = plan(sched)
    alone = plan(sched, borrow_outputs=False)
    assert_no_live_overlap(sched, mem)
    assert alone.arena_bytes == 1024 and not alone.borrowed
    assert mem.arena_bytes == 512 and mem.lower_bound_bytes == 512
    # two 128-float hidden layers live at once, and the 8-float bottleneck: 1,056 of the output's 2,560 B
    assert mem.borrowed_bytes == 2 * 512 + 32
    assert {output for output, _ in mem.borrowed.values()} == {sched.outputs[0]}


def test_overlap_checker_catches_a_corrupted_borrowed_tensor():
    sched = lower_model(onnx.load(str(AUTOENCODER)))
    mem = plan(sched)
    name = max(mem.borrowed, key=lambda n: sched.tensors[n].nbytes)
    output = mem.borrowed[name][0]
    mem.borrowed[name] = (output, sched.tensors[output].nbytes)  # past the end of the output
    with pytest.raises(AssertionError, match="does not fit in Identity"):
        assert_no_live_overlap(sched, mem)
