"""Lowering of LSTM and GRU onto ek_rnn.

Supported: directions forward/reverse/bidirectional, layout 0 and 1, default activations (given
explicitly or not), ``clip``, LSTM peepholes, GRU ``linear_before_reset``, optional initial states
(constant or computed), ``sequence_lens`` absent or constant and equal to the sequence length.
Refused with a BuildError naming the node: non-default activations, LSTM ``input_forget``,
ragged ``sequence_lens``. LSTM biases Wb + Rb are summed at build time.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgekit.plugins.mcu.graph import attrs_of
from edgekit.plugins.mcu.schedule import Lowerer, dims_str

_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}
_GATES = {"LSTM": 4, "GRU": 3}


def _input(node: onnx.NodeProto, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


def _output(node: onnx.NodeProto, i: int) -> str:
    return node.output[i] if len(node.output) > i else ""


def lower_rnn(lw: Lowerer, node: onnx.NodeProto) -> None:
    op = node.op_type
    attrs = attrs_of(node)
    dirs = 2 if attrs.get("direction", "forward") == "bidirectional" else 1
    acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
    if acts and acts != _DEFAULT_ACTS[op] * dirs:
        raise lw.error(node, f"activations {acts} are not supported (default {_DEFAULT_ACTS[op]} only)")
    if attrs.get("activation_alpha") or attrs.get("activation_beta"):
        raise lw.error(node, "activation_alpha/beta are not supported")
    if op == "LSTM" and attrs.get("input_forget", 0):
        raise lw.error(node, "input_forget=1 is not supported")
    x = node.input[0]
    lw.require_float(node, x, *[o for o in node.output if o])
    batch_major = int(attrs.get("layout", 0))
    if batch_major:
        batch, seq, in_size = lw.shape(x, node)
    else:
        seq, batch, in_size = lw.shape(x, node)
    hidden = int(attrs["hidden_size"])
    gates = _GATES[op]
    w, r = lw.view.const(_input(node, 1)), lw.view.const(_input(node, 2))
    if w is None or r is None:
        raise lw.error(node, "W and R must be constants (initializers)")
    for what, arr, want in (("W", w, (dirs, gates * hidden, in_size)), ("R", r, (dirs, gates * hidden, hidden))):
        if tuple(arr.shape) != want:
            raise lw.error(node, f"{what} has shape {list(arr.shape)}, expected {list(want)} for "
                                 f"direction/hidden_size/input")
    bias_name = _input(node, 3)
    bias = lw.view.const(bias_name) if bias_name else None
    if bias_name and bias is None:
        raise lw.error(node, "B must be a constant (initializer)")
    lens_name = _input(node, 4)
    if lens_name:
        lens = lw.view.const(lens_name)
        if lens is None or not np.all(lens == seq):
            raise lw.error(node, "sequence_lens must be absent or a constant equal to the sequence length")
    name = node.name or node.output[0] or op
    consts = {"w": lw.const(f"{name}__W", w, node), "r": lw.const(f"{name}__R", r, node)}
    b_arg: tuple = ("null",)
    if bias is not None:
        if bias.size != dirs * 2 * gates * hidden:
            raise lw.error(node, f"B has {bias.size} elements, expected {dirs * 2 * gates * hidden}")
        b = bias.reshape(dirs, 2 * gates * hidden).astype(np.float64)
        if op == "LSTM":  # only the sum Wb + Rb is ever used
            b = b[:, :gates * hidden] + b[:, gates * hidden:]
        b_arg = ("const", lw.const(f"{name}__B", b, node))

    def state(i):
        n = _input(node, i)
        if n and int(np.prod(lw.shape(n, node), dtype=np.int64)) != dirs * batch * hidden:
            raise lw.error(node, f"initial state '{n}' has shape {list(lw.shape(n, node))}, expected "
                                 f"{dirs * batch * hidden} elements")
        return lw.operand(node, n) if n else ("null",)

    def out(i):
        n = _output(node, i)
        return ("out", n) if n else ("null",)

    params = {"seq_len": seq, "batch": batch, "input_size": in_size, "hidden": hidden,
              "num_dirs": dirs, "reverse": int(attrs.get("direction", "forward") == "reverse"),
              "clip": float(np.float32(attrs.get("clip", 0.0))),
              "linear_before_reset": int(attrs.get("linear_before_reset", 0)),
              "batch_major": batch_major}
    summary = f"{dims_str((seq, batch, in_size))} -> hidden {hidden}, {attrs.get('direction', 'forward')}"
    if op == "LSTM":
        peep = _input(node, 7)
        p_arg: tuple = ("null",)
        if peep:
            pv = lw.view.const(peep)
            if pv is None:
                raise lw.error(node, "P (peepholes) must be a constant")
            if pv.size != dirs * 3 * hidden:
                raise lw.error(node, f"P has {pv.size} elements, expected {dirs * 3 * hidden}")
            p_arg = ("const", lw.const(f"{name}__P", pv, node))
        scratch = (4 * hidden + 2 * batch * hidden) * 4
        args = [lw.operand(node, x), state(5), state(6), ("const", consts["w"]), ("const", consts["r"]),
                b_arg, p_arg, out(0), out(1), out(2), ("scratch",)]
        fn = "ek_lstm_f32"
    else:
        scratch = (7 * hidden + batch * hidden) * 4
        args = [lw.operand(node, x), state(5), ("const", consts["w"]), ("const", consts["r"]), b_arg,
                out(0), out(1), ("scratch",)]
        fn = "ek_gru_f32"
    macs = seq * batch * dirs * gates * hidden * (in_size + hidden)
    lw.add(node, "ek_rnn", fn, "ek_rnn_params", params, args, summary=summary, macs=macs,
           scratch_bytes=scratch)


LOWERINGS = {"LSTM": lower_rnn, "GRU": lower_rnn}
