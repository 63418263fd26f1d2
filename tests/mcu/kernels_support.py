"""Host builds of the conv/gemm kernels and one-node onnxruntime references for their tests.

The kernels are compiled twice on the host: a ``-O2 -shared -fPIC`` library called through
ctypes (fast, used for the property tests) and a ``-fsanitize=address,undefined`` executable
(``kernels_driver.c``) fed a batch of cases on stdin, so out-of-bounds reads of exactly-sized
buffers and undefined behaviour fail the test. Parameter structs are packed with ``struct``
in C field order; the library exports ``sizeof`` of each struct so a layout drift fails loudly.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "plugins" / "mcu" / "kernels"
SOURCES = [KERNELS / "ek_conv.c", KERNELS / "ek_gemm.c"]
DRIVER = Path(__file__).with_name("kernels_driver.c")
HOST_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{KERNELS}"]

# Field order and kinds of each C params struct ("i" int32, "f" float, "4i" int32[4]).
CONV_FIELDS = [
    ("n", "i"), ("in_c", "i"), ("in_h", "i"), ("in_w", "i"), ("out_c", "i"), ("out_h", "i"),
    ("out_w", "i"), ("k_h", "i"), ("k_w", "i"), ("stride_h", "i"), ("stride_w", "i"),
    ("dil_h", "i"), ("dil_w", "i"), ("pad_top", "i"), ("pad_left", "i"), ("pad_bottom", "i"),
    ("pad_right", "i"), ("groups", "i"), ("act_min", "f"), ("act_max", "f"),
]
GEMM_FIELDS = [
    ("m", "i"), ("n", "i"), ("k", "i"), ("trans_a", "i"), ("trans_b", "i"), ("b_packed", "i"),
    ("alpha", "f"), ("beta", "f"), ("c_stride_m", "i"), ("c_stride_n", "i"),
    ("act_min", "f"), ("act_max", "f"),
]
MATMUL_FIELDS = [
    ("m", "i"), ("n", "i"), ("k", "i"), ("batch_dims", "i"), ("batch_shape", "4i"),
    ("a_batch_stride", "4i"), ("b_batch_stride", "4i"), ("b_packed", "i"),
    ("act_min", "f"), ("act_max", "f"),
]


@dataclass(frozen=True)
class Op:
    """One kernel entry point: its C name, params layout and the driver's op code."""
    name: str
    fields: list
    code: int
    struct_name: str


CONV = Op("ek_conv2d_f32", CONV_FIELDS, 0, "ek_conv2d_params")
CONV_T = Op("ek_conv_transpose2d_f32", CONV_FIELDS, 1, "ek_conv_transpose2d_params")
GEMM = Op("ek_gemm_f32", GEMM_FIELDS, 2, "ek_gemm_params")
MATMUL = Op("ek_matmul_f32", MATMUL_FIELDS, 3, "ek_matmul_params")
OPS = [CONV, CONV_T, GEMM, MATMUL]


def pack_params(op: Op, params: dict) -> bytes:
    """C struct bytes for ``params`` (all fields are 4-byte, so no padding)."""
    out = b""
    for name, kind in op.fields:
        value = params[name]
        if kind == "i":
            out += struct.pack("<i", int(value))
        elif kind == "f":
            out += struct.pack("<f", float(value))
        else:
            vals = list(value) + [0] * (4 - len(value))
            out += struct.pack("<4i", *[int(v) for v in vals])
    return out


def _build_dir() -> Path:
    text = b"".join(p.read_bytes() for p in [*SOURCES, DRIVER, KERNELS / "ek_conv.h",
                                               KERNELS / "ek_gemm.h", KERNELS / "ek_common.h"])
    d = Path(tempfile.gettempdir()) / f"ek_kernels_{hashlib.sha1(text).hexdigest()[:12]}"
    d.mkdir(exist_ok=True)
    return d


_SIZES_C = "#include \"ek_conv.h\"\n#include \"ek_gemm.h\"\n" + "".join(
    f"size_t ek_sizeof_{op.struct_name}(void) {{ return sizeof({op.struct_name}); }}\n" for op in OPS
) + "size_t ek_probe_conv2d_scratch(const ek_conv2d_params *p) { return ek_conv2d_scratch_size(p); }\n"


def build_host_library() -> Path:
    """gcc -O2 -shared -fPIC of the kernels plus sizeof probes; cached by source hash."""
    d = _build_dir()
    lib = d / "libek_kernels.so"
    if not lib.exists():
        probe = d / "sizes.c"
        probe.write_text(_SIZES_C)
        tmp = d / "libek_kernels.tmp.so"
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", *HOST_FLAGS, *map(str, SOURCES),
                        str(probe), "-o", str(tmp), "-lm"], check=True)
        tmp.rename(lib)
    return lib


def build_sanitizer_driver() -> Path:
    """The stdin-fed test driver built with -fsanitize=address,undefined."""
    d = _build_dir()
    exe = d / "ek_kernels_asan"
    if not exe.exists():
        tmp = d / "ek_kernels_asan.tmp"
        subprocess.run(["gcc", "-O1", "-g", "-fsanitize=address,undefined",
                        "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", *HOST_FLAGS,
                        *map(str, SOURCES), str(DRIVER), "-o", str(tmp), "-lm"], check=True)
        tmp.rename(exe)
    return exe


class HostKernels:
    """ctypes view of the host library: ``run(op, params, a, b, c, out_size)``."""

    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        for op in OPS:
            probe = getattr(self.lib, f"ek_sizeof_{op.struct_name}")
            probe.restype = ctypes.c_size_t
            expected = len(pack_params(op, _zero_params(op)))
            if probe() != expected:
                raise AssertionError(f"{op.struct_name}: C sizeof {probe()} != Python {expected}")

    def conv2d_scratch_size(self, params: dict) -> int:
        """ek_conv2d_scratch_size(p) as the C header computes it."""
        probe = self.lib.ek_probe_conv2d_scratch
        probe.restype = ctypes.c_size_t
        return int(probe(ctypes.create_string_buffer(pack_params(CONV, params))))

    def run(self, op: Op, params: dict, a, b, c, out_size: int) -> np.ndarray:
        raw = ctypes.create_string_buffer(pack_params(op, params))
        arrays = [None if v is None else np.ascontiguousarray(v, dtype=np.float32).ravel()
                  for v in (a, b, c)]
        ptrs = [None if v is None else v.ctypes.data_as(ctypes.c_void_p) for v in arrays]
        out = np.full(out_size, np.nan, dtype=np.float32)
        args = [raw, *ptrs, out.ctypes.data_as(ctypes.c_void_p)]
        if op is CONV:
            # NaN-filled, exactly sized: a read of scratch the kernel did not write shows up.
            from edgekit.plugins.mcu.weight_layout import conv2d_scratch_floats
            scratch = np.full(max(conv2d_scratch_floats(params), 1), np.nan, dtype=np.float32)
            args.append(scratch.ctypes.data_as(ctypes.c_void_p))
        getattr(self.lib, op.name)(*args)
        return out


def _zero_params(op: Op) -> dict:
    return {name: ([0] * 4 if kind == "4i" else 0) for name, kind in op.fields}


def encode_case(op: Op, params: dict, a, b, c, out_size: int) -> bytes:
    """One record of the sanitizer driver's stdin protocol (see kernels_driver.c)."""
    body = pack_params(op, params)
    rec = struct.pack("<ii", op.code, len(body)) + body
    for arr in (a, b, c):
        if arr is None:
            rec += struct.pack("<i", -1)
        else:
            flat = np.ascontiguousarray(arr, dtype=np.float32).ravel()
            rec += struct.pack("<i", flat.size) + flat.tobytes()
    return rec + struct.pack("<i", out_size)


def run_sanitizer_driver(exe: Path, records: list[bytes], sizes: list[int]) -> list[np.ndarray]:
    proc = subprocess.run([str(exe)], input=b"".join(records), capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"sanitizer driver failed ({proc.returncode}):\n"
                             f"{proc.stderr.decode(errors='replace')[-4000:]}")
    flat = np.frombuffer(proc.stdout, dtype=np.float32)
    assert flat.size == sum(sizes), (flat.size, sum(sizes))
    return np.split(flat, np.cumsum(sizes)[:-1])


# ---- onnxruntime references ---------------------------------------------------------------

def run_onnx_node(op_type: str, inputs: dict, attrs: dict) -> np.ndarray:
    """Run one ONNX node in onnxruntime (graph optimisations off, one thread).

    ``inputs`` maps names to arrays in the node's input order; a None value is an omitted
    optional input."""
    names = [n if v is not None else "" for n, v in inputs.items()]
    while names and names[-1] == "":
        names.pop()
    feeds = {n: np.asarray(v, dtype=np.float32) for n, v in inputs.items() if v is not None}
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(np.shape(v)))
                    for n, v in feeds.items()]
    node = helper.make_node(op_type, names, ["y"], **attrs)
    graph = helper.make_graph([node], "one_node", graph_inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


#: Fused activation ranges the tests draw from: none, Relu, Clip(-0.25, 0.5).
ACTIVATIONS = {"none": (-np.inf, np.inf), "relu": (0.0, np.inf), "clip": (-0.25, 0.5)}


def activate(ref: np.ndarray, kind: str) -> np.ndarray:
    """Relu / Clip applied to the reference (exact: a clamp does not round)."""
    lo, hi = ACTIVATIONS[kind]
    return np.clip(ref, np.float32(lo), np.float32(hi)).astype(np.float32)


def assert_close_to_reference(got: np.ndarray, ref: np.ndarray, magnitude: np.ndarray,
                              what: str, rtol: float = 1e-5) -> None:
    """|got - ref| <= rtol * (sum of |terms|): float32 rounding scales with the terms' size."""
    got = got.reshape(ref.shape)
    assert not np.isnan(got).any(), f"{what}: NaN in kernel output (unwritten element?)"
    bound = rtol * magnitude.reshape(ref.shape) + 1e-12
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bad = err > bound
    if bad.any():
        idx = np.argwhere(bad)[0]
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} outputs off; first at {tuple(idx)}: "
                             f"got {got[tuple(idx)]}, onnxruntime {ref[tuple(idx)]}, "
                             f"bound {bound[tuple(idx)]}")
# ---- random cases: attributes drawn through `pick(lo, hi)` (hypothesis or a seeded RNG) ----

@dataclass
class Case:
    """A kernel call and its onnxruntime reference."""
    op: Op
    params: dict
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray | None
    ref: np.ndarray
    magnitude: np.ndarray  # sum of |terms| per output, the scale of float32 rounding
    desc: str

    @property
    def out_size(self) -> int:
        return int(self.ref.size)


def _values(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def _conv_out(size: int, k: int, s: int, d: int, pb: int, pe: int) -> int:
    return (size + pb + pe - ((k - 1) * d + 1)) // s + 1


def draw_conv_attrs(pick) -> dict:
    """Random Conv attributes: 1-D/2-D, groups (incl. depthwise with multiplier), strides,
    dilations, asymmetric pads, optional bias, fused activation."""
    rank = pick(1, 2)
    attrs = dict(groups=pick(1, 3), icg=1 if pick(0, 2) == 0 else pick(1, 5), ocg=pick(1, 9),
                 ks=[pick(1, 4) for _ in range(rank)], ss=[pick(1, 3) for _ in range(rank)],
                 ds=[pick(1, 2) for _ in range(rank)], pb=[pick(0, 2) for _ in range(rank)],
                 pe=[pick(0, 2) for _ in range(rank)])
    sizes = []
    for i in range(rank):
        size = pick(1, 14)
        while _conv_out(size, attrs["ks"][i], attrs["ss"][i], attrs["ds"][i], attrs["pb"][i],
                        attrs["pe"][i]) < 1:
            size += 1
        sizes.append(size)
    attrs.update(sizes=sizes, n=pick(1, 2), bias=pick(0, 1) == 1, act=list(ACTIVATIONS)[pick(0, 2)])
    return attrs


def conv_case(pick, rng: np.random.Generator) -> Case:
    return make_conv_case(draw_conv_attrs(pick), rng)


def _conv2d(name, groups, icg, ocg, k, s, pads, size, dil=None, n=1, bias=True, act="none"):
    dil = dil or (1,) * len(k)
    half = len(pads) // 2
    return name, dict(groups=groups, icg=icg, ocg=ocg, ks=list(k), ss=list(s), ds=list(dil),
                      pb=list(pads[:half]), pe=list(pads[half:]), sizes=list(size), n=n, bias=bias,
                      act=act)


#: One case per specialised code path of ek_conv.c (random draws reach them only now and then):
#: every tile kind with 2 blocks of 4 output channels + 1 leftover, pads on every side,
#: widths that leave a partial last tile, rows entirely in the padding, depthwise multipliers.
TARGETED_CONVS = [
    _conv2d("k3 s1 (3-wide rows)", 1, 3, 9, (3, 3), (1, 1), (1, 2, 2, 1), (7, 11)),
    _conv2d("k3 s2 (3-wide rows)", 1, 4, 9, (3, 3), (2, 2), (0, 0, 1, 1), (9, 13), act="relu"),
    _conv2d("1x1 s1 (flattened pointwise)", 1, 5, 9, (1, 1), (1, 1), (0, 0, 0, 0), (5, 7)),
    _conv2d("1x1 s1 with pads (rows in padding)", 1, 3, 9, (1, 1), (1, 1), (2, 1, 1, 2), (4, 6)),
    _conv2d("1x1 s2", 1, 6, 9, (1, 1), (2, 2), (0, 0, 0, 0), (9, 15), act="clip"),
    _conv2d("k5 s1 (any width)", 1, 2, 9, (5, 5), (1, 1), (2, 2, 2, 2), (8, 10)),
    _conv2d("k3 s1 dilation 2", 1, 3, 9, (3, 3), (1, 1), (2, 2, 2, 2), (9, 10), dil=(2, 2)),
    _conv2d("k2 s3 (any stride)", 1, 3, 9, (2, 2), (3, 3), (1, 0, 0, 1), (10, 14)),
    _conv2d("10x4 s2, 1 input channel (KWS first layer)", 1, 1, 8, (10, 4), (2, 2), (4, 1, 5, 1),
            (25, 10)),
    _conv2d("grouped 3 x (4 -> 6)", 3, 4, 6, (3, 3), (1, 1), (1, 1, 1, 1), (6, 9), n=2),
    _conv2d("depthwise k3 s1", 6, 1, 1, (3, 3), (1, 1), (1, 1, 1, 1), (7, 5), act="relu"),
    _conv2d("depthwise x3 k3 s2", 4, 1, 3, (3, 3), (2, 2), (0, 1, 1, 0), (9, 8), bias=False),
    _conv2d("depthwise x2 k2 dilation 2", 3, 1, 2, (2, 2), (1, 2), (1, 0, 0, 1), (6, 9), dil=(2, 2)),
    _conv2d("depthwise x5 (blocked path)", 2, 1, 5, (3, 3), (1, 1), (1, 1, 1, 1), (6, 6)),
    _conv2d("1-D k3 s1", 1, 3, 9, (3,), (1,), (1, 2), (17,)),
    _conv2d("1-D depthwise k5 s2", 4, 1, 1, (5,), (2,), (2, 2), (15,)),
]


def make_conv_case(attrs: dict, rng: np.random.Generator) -> Case:
    """A Conv case from attributes (keys as draw_conv_attrs returns) and onnxruntime's answer."""
    from edgekit.plugins.mcu.weight_layout import pack_conv2d_weights

    groups, icg, ocg = attrs["groups"], attrs["icg"], attrs["ocg"]
    ks, ss, ds, pb, pe = attrs["ks"], attrs["ss"], attrs["ds"], attrs["pb"], attrs["pe"]
    sizes, n, has_bias, act = attrs["sizes"], attrs["n"], attrs["bias"], attrs["act"]
    rank = len(ks)
    in_c, out_c = groups * icg, groups * ocg
    x = _values(rng, [n, in_c, *sizes])
    w = _values(rng, [out_c, icg, *ks])
    bias = _values(rng, [out_c]) if has_bias else None
    onnx_attrs = dict(group=groups, kernel_shape=ks, strides=ss, dilations=ds, pads=pb + pe)
    ref = run_onnx_node("Conv", {"x": x, "w": w, "b": bias}, onnx_attrs)
    mag = run_onnx_node("Conv", {"x": np.abs(x), "w": np.abs(w),
                                 "b": None if bias is None else np.abs(bias)}, onnx_attrs)
    outs = [_conv_out(sizes[i], ks[i], ss[i], ds[i], pb[i], pe[i]) for i in range(rank)]
    assert list(ref.shape) == [n, out_c, *outs], (ref.shape, outs)
    pad = lambda v, one: ([one] if rank == 1 else []) + v  # noqa: E731  1-D: H axis of size 1
    h_in, w_in = pad(sizes, 1)
    h_out, w_out = pad(outs, 1)
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = pad(ks, 1), pad(ss, 1), pad(ds, 1)
    (p_t, p_l), (p_b, p_r) = pad(pb, 0), pad(pe, 0)
    lo, hi = ACTIVATIONS[act]
    params = dict(n=n, in_c=in_c, in_h=h_in, in_w=w_in, out_c=out_c, out_h=h_out, out_w=w_out,
                  k_h=k_h, k_w=k_w, stride_h=s_h, stride_w=s_w, dil_h=d_h, dil_w=d_w,
                  pad_top=p_t, pad_left=p_l, pad_bottom=p_b, pad_right=p_r, groups=groups,
                  act_min=lo, act_max=hi)
    desc = (f"Conv{rank}d x{list(x.shape)} w{list(w.shape)} g{groups} s{ss} d{ds} "
            f"pads{pb + pe} bias={has_bias} act={act}")
    return Case(CONV, params, x, pack_conv2d_weights(w, params), bias, activate(ref, act), mag,
                desc)


def conv_transpose_case(pick, rng: np.random.Generator) -> Case:
    """ConvTranspose 1-D/2-D: groups, strides, dilations, pads, output_padding, bias."""
    from edgekit.plugins.mcu.weight_layout import pack_conv_transpose2d_weights

    rank = pick(1, 2)
    groups = pick(1, 3)
    icg, ocg = pick(1, 4), pick(1, 6)  # ocg >= 4: blocks of 4 output channels + leftovers
    ks = [pick(1, 4) for _ in range(rank)]
    ss = [pick(1, 3) for _ in range(rank)]
    ds = [pick(1, 2) for _ in range(rank)]
    opad = [pick(0, s - 1) for s in ss]
    sizes = [pick(1, 7) for _ in range(rank)]
    pb, pe = [], []
    for i in range(rank):
        full = ss[i] * (sizes[i] - 1) + opad[i] + (ks[i] - 1) * ds[i] + 1
        b0 = pick(0, min(2, (full - 1) // 2))
        e0 = pick(0, min(2, full - 1 - b0))
        pb.append(b0)
        pe.append(e0)
    n = pick(1, 2)
    has_bias = pick(0, 1) == 1
    act = list(ACTIVATIONS)[pick(0, 2)]
    in_c, out_c = groups * icg, groups * ocg
    x = _values(rng, [n, in_c, *sizes])
    w = _values(rng, [in_c, ocg, *ks])
    bias = _values(rng, [out_c]) if has_bias else None
    attrs = dict(group=groups, kernel_shape=ks, strides=ss, dilations=ds, pads=pb + pe,
                 output_padding=opad)
    ref = run_onnx_node("ConvTranspose", {"x": x, "w": w, "b": bias}, attrs)
    mag = run_onnx_node("ConvTranspose", {"x": np.abs(x), "w": np.abs(w),
                                          "b": None if bias is None else np.abs(bias)}, attrs)
    outs = list(ref.shape[2:])
    pad = lambda v, one: ([one] if rank == 1 else []) + v  # noqa: E731
    h_in, w_in = pad(sizes, 1)
    h_out, w_out = pad(outs, 1)
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = pad(ks, 1), pad(ss, 1), pad(ds, 1)
    (p_t, p_l), (p_b, p_r) = pad(pb, 0), pad(pe, 0)
    lo, hi = ACTIVATIONS[act]
    params = dict(n=n, in_c=in_c, in_h=h_in, in_w=w_in, out_c=out_c, out_h=h_out, out_w=w_out,
                  k_h=k_h, k_w=k_w, stride_h=s_h, stride_w=s_w, dil_h=d_h, dil_w=d_w,
                  pad_top=p_t, pad_left=p_l, pad_bottom=p_b, pad_right=p_r, groups=groups,
                  act_min=lo, act_max=hi)
    desc = (f"ConvTranspose{rank}d x{list(x.shape)} w{list(w.shape)} g{groups} s{ss} d{ds} "
            f"pads{pb + pe} out_pad{opad} bias={has_bias} act={act}")
    return Case(CONV_T, params, x, pack_conv_transpose2d_weights(w, params), bias,
                activate(ref, act), mag, desc)


GEMM_C_SHAPES = ["none", "scalar", "n", "1n", "m1", "mn"]


def gemm_case(pick, rng: np.random.Generator) -> Case:
    """Gemm: alpha, beta, transA, transB, every C broadcast shape, packed or runtime B."""
    from edgekit.plugins.mcu.weight_layout import pack_gemm_weights

    m, k, n = pick(1, 5), pick(1, 21), pick(1, 21)
    ta, tb = pick(0, 1), pick(0, 1)
    packed = pick(0, 1)
    alpha = [1.0, 0.5, -1.25][pick(0, 2)]
    beta = [1.0, 0.75, -2.0][pick(0, 2)]
    c_kind = GEMM_C_SHAPES[pick(0, len(GEMM_C_SHAPES) - 1)]
    act = list(ACTIVATIONS)[pick(0, 2)]
    a = _values(rng, [k, m] if ta else [m, k])
    b = _values(rng, [n, k] if tb else [k, n])
    c_shape, (c_sm, c_sn) = {
        "none": (None, (0, 0)), "scalar": ([1], (0, 0)), "n": ([n], (0, 1)),
        "1n": ([1, n], (0, 1)), "m1": ([m, 1], (1, 0)), "mn": ([m, n], (n, 1)),
    }[c_kind]
    c = None if c_shape is None else _values(rng, c_shape)
    attrs = dict(alpha=alpha, beta=beta, transA=ta, transB=tb)
    ref = run_onnx_node("Gemm", {"a": a, "b": b, "c": c}, attrs)
    a2 = np.abs(a.T if ta else a).astype(np.float64)
    b2 = np.abs(b.T if tb else b).astype(np.float64)
    mag = abs(alpha) * a2 @ b2
    if c is not None:
        mag = mag + abs(beta) * np.broadcast_to(np.abs(c).astype(np.float64), (m, n))
    lo, hi = ACTIVATIONS[act]
    params = dict(m=m, n=n, k=k, trans_a=ta, trans_b=tb, b_packed=packed, alpha=alpha,
                  beta=beta, c_stride_m=c_sm, c_stride_n=c_sn, act_min=lo, act_max=hi)
    b_arg = pack_gemm_weights(b, params) if packed else b
    desc = (f"Gemm m{m} k{k} n{n} transA={ta} transB={tb} packed={packed} alpha={alpha} "
            f"beta={beta} C={c_kind} act={act}")
    return Case(GEMM, params, a, b_arg, c, activate(ref, act), mag, desc)


def _batch_strides(shape: tuple, out_batch: tuple, mat: int) -> list[int]:
    """Per output batch dim, the element stride of this operand's matrices (0 = broadcast)."""
    batch = shape[:-2] if len(shape) >= 2 else ()
    strides, step = [], mat
    for i in range(1, len(out_batch) + 1):
        size = batch[-i] if i <= len(batch) else 1
        strides.append(step if size != 1 else 0)
        step *= size
    return strides[::-1]


def matmul_case(pick, rng: np.random.Generator) -> Case:
    """MatMul: 1-D operands, batched with broadcast batch dims, packed B, bias, activation."""
    from edgekit.plugins.mcu.weight_layout import pack_matmul_weights

    m, k, n = pick(1, 4), pick(1, 19), pick(1, 19)
    out_rank = pick(0, 3)
    out_batch = [pick(1, 3) for _ in range(out_rank)]

    def operand_batch():
        rank = pick(0, out_rank)
        return [d if pick(0, 2) else 1 for d in out_batch[out_rank - rank:]]

    a_1d, b_1d = pick(0, 4) == 0, pick(0, 4) == 0
    a_shape = [k] if a_1d else [*operand_batch(), m, k]
    b_shape = [k] if b_1d else [*operand_batch(), k, n]
    m_eff, n_eff = (1 if a_1d else m), (1 if b_1d else n)
    packed = pick(0, 1)
    has_bias = pick(0, 1) == 1
    act = list(ACTIVATIONS)[pick(0, 2)]
    a = _values(rng, a_shape)
    b = _values(rng, b_shape)
    bias = _values(rng, [n_eff]) if has_bias else None
    ref = run_onnx_node("MatMul", {"a": a, "b": b}, {})
    mag = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    if bias is not None:
        ref = (ref + (bias if not b_1d else bias[0])).astype(np.float32)
        mag = mag + np.abs(bias if not b_1d else bias[0])
    # 1-D operands are reshaped by the generator: A [k] -> [1, k], B [k] -> [k, 1].
    a2 = a.reshape(1, k) if a_1d else a
    b2 = b.reshape(k, 1) if b_1d else b
    batch = tuple(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    lo, hi = ACTIVATIONS[act]
    params = dict(m=m_eff, n=n_eff, k=k, batch_dims=len(batch), batch_shape=list(batch),
                  a_batch_stride=_batch_strides(a2.shape, batch, m_eff * k),
                  b_batch_stride=_batch_strides(b2.shape, batch, k * n_eff),
                  b_packed=packed, act_min=lo, act_max=hi)
    b_arg = pack_matmul_weights(b2, params) if packed else b2
    desc = f"MatMul a{a_shape} b{b_shape} packed={packed} bias={has_bias} act={act}"
    return Case(MATMUL, params, a2, b_arg, bias, activate(ref, act), mag, desc)


CASE_MAKERS = {"conv": conv_case, "conv_transpose": conv_transpose_case, "gemm": gemm_case,
               "matmul": matmul_case}


def seeded_pick(rng: np.random.Generator):
    """`pick(lo, hi)` drawing from a seeded RNG (for batches outside hypothesis)."""
    return lambda lo, hi: int(rng.integers(lo, hi + 1))


def check_case(kernels: HostKernels, case: Case) -> None:
    got = kernels.run(case.op, case.params, case.a, case.b, case.c, case.out_size)
    assert_close_to_reference(got, case.ref, case.magnitude, case.desc)
