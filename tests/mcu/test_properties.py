"""Property tests (hypothesis) of the build-time arithmetic the kernels trust: broadcasting
strides, strided-copy walks (Transpose/Slice) and the arena packing. The kernels' odometer walk is
replayed in Python and compared with numpy indexing."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.plugins.mcu.planner import Buffer, _place, lower_bound
from edgekit.plugins.mcu.shapes import broadcast_strides, collapse, dense_strides


def _walk(shape, *strides, offsets=None):
    """Element offsets each operand reads, in output order (the kernels' odometer)."""
    offsets = list(offsets or [0] * len(strides))
    out = [[] for _ in strides]
    for idx in np.ndindex(*shape):
        for k, s in enumerate(strides):
            out[k].append(offsets[k] + sum(i * si for i, si in zip(idx, s)))
    return [np.array(o) for o in out]


dims = st.integers(1, 4)


@st.composite
def broadcast_pairs(draw):
    out = draw(st.lists(dims, min_size=0, max_size=5))
    def view():
        r = draw(st.integers(0, len(out)))
        return [d if draw(st.booleans()) else 1 for d in out[len(out) - r:]]
    return view(), view(), out


@settings(max_examples=200, deadline=None)
@given(broadcast_pairs())
def test_broadcast_strides_match_numpy(case):
    a, b, _ = case
    out = list(np.broadcast_shapes(tuple(a), tuple(b)))
    shape, sa, sb = broadcast_strides(a, b, out)
    assert len(shape) <= max(len(out), 1)
    got_a, got_b = _walk(shape, sa, sb)
    size = int(np.prod(out, dtype=np.int64))
    want_a = np.broadcast_to(np.arange(int(np.prod(a, dtype=np.int64))).reshape(a), out).reshape(-1)
    want_b = np.broadcast_to(np.arange(int(np.prod(b, dtype=np.int64))).reshape(b), out).reshape(-1)
    assert len(got_a) == size
    np.testing.assert_array_equal(got_a, want_a)
    np.testing.assert_array_equal(got_b, want_b)


@settings(max_examples=200, deadline=None)
@given(st.lists(dims, min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_transpose_walk_matches_numpy(shape, rnd):
    perm = list(range(len(shape)))
    rnd.shuffle(perm)
    dense = dense_strides(shape)
    cshape, (cstride,) = collapse([shape[p] for p in perm], [dense[p] for p in perm])
    (got,) = _walk(cshape, cstride)
    want = np.arange(int(np.prod(shape))).reshape(shape).transpose(perm).reshape(-1)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.data())
def test_slice_walk_matches_numpy(shape, data):
    slices, begin, step, out = [], [], [], []
    for n in shape:
        s = slice(data.draw(st.integers(-n - 1, n + 1)), data.draw(st.integers(-n - 1, n + 1)),
                  data.draw(st.sampled_from([1, 2, 3, -1, -2])))
        start, stop, stp = s.indices(n)
        slices.append(s)
        begin.append(start), step.append(stp), out.append(len(range(start, stop, stp)))
    want = np.arange(int(np.prod(shape))).reshape(shape)[tuple(slices)].reshape(-1)
    if 0 in out:
        assert want.size == 0
        return
    dense = dense_strides(shape)
    cshape, (cstride,) = collapse(out, [st_ * d for st_, d in zip(step, dense)])
    (got,) = _walk(cshape, cstride, offsets=[sum(b * d for b, d in zip(begin, dense))])
    np.testing.assert_array_equal(got, want)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 5), st.integers(1, 40)), min_size=1,
                max_size=14), st.booleans())
def test_packing_never_overlaps_live_buffers(spans, best_fit):
    buffers = [Buffer(i, 16 * size, start, start + length, [f"t{i}"])
               for i, (start, length, size) in enumerate(spans)]
    order = sorted(buffers, key=lambda b: (-b.size, b.start, b.id))
    offsets = _place(buffers, order, best_fit)
    for i, a in enumerate(buffers):
        assert offsets[a.id] % 16 == 0
        for b in buffers[i + 1:]:
            if a.overlaps_in_time(b):
                assert offsets[a.id] + a.size <= offsets[b.id] or offsets[b.id] + b.size <= offsets[a.id]
    arena = max(offsets[b.id] + b.size for b in buffers)
    assert arena >= lower_bound(buffers, max(b.end for b in buffers) + 1)
