"""Legalizations TVM 0.27 lacks, so the graphs edgekit feeds it lower to plain kernels.

``relax.topk`` (ONNX TopK, the router of a mixture-of-experts layer) has no legalization: it stays a
Relax op that only the Relax VM can run, and ``topi.topk`` itself calls the runtime's packed
``tvm.contrib.sort.topk``, which a bare-metal driver does not have. The rewrite here is a sort-free
kernel: an element's rank is the number of elements along the axis that beat it (greater, or equal
at a lower index, which is ONNX's tie order), and output position ``r`` takes the element of rank
``r``. That is O(N^2) compares per row, cheap for router widths (N experts) and exact.
"""

from __future__ import annotations

_LEGALIZE_ATTR = "FLegalize"


def _topk(bb, call):
    from tvm import te, tirx

    data = call.args[0]
    attrs = call.attrs
    k, largest, dtype = int(attrs.k), bool(attrs.largest), str(attrs.dtype)
    ret_type = str(attrs.ret_type)
    axis = int(attrs.axis)

    def kernel(x):
        shape = [int(d) for d in x.shape]
        ax = axis % len(shape)
        n = shape[ax]
        count = k if 1 <= k <= n else n

        def at(index, value):
            return tuple(value if d == ax else i for d, i in enumerate(index))

        other = te.reduce_axis((0, n), name="other")

        def beats(index):
            mine, theirs = x[index], x[at(index, other)]
            strict = theirs > mine if largest else theirs < mine
            return tirx.Select(tirx.any(strict, tirx.all(theirs == mine, other < index[ax])), 1, 0)

        rank = te.compute(shape, lambda *index: te.sum(beats(index), axis=other), name="topk_rank")
        out_shape = at(shape, count)
        source = te.reduce_axis((0, n), name="source")
        indices = te.compute(
            out_shape,
            lambda *index: te.sum(tirx.Select(rank[at(index, source)] == index[ax], source.astype(dtype),
                                              tirx.const(0, dtype)), axis=source),
            name="topk_indices")
        values = te.compute(out_shape, lambda *index: x[at(index, indices[index])], name="topk_values")
        return {"both": [values, indices], "values": values, "indices": indices}[ret_type]

    return bb.call_te(kernel, data, primfunc_name_hint="topk")


def register() -> None:
    """Register the legalizations above where TVM has none (idempotent; TVM's own wins)."""
    import tvm

    op = tvm.ir.Op.get("relax.topk")
    if op.get_attr(_LEGALIZE_ATTR) is None:
        tvm.ir.register_op_attr("relax.topk", _LEGALIZE_ATTR, _topk)
