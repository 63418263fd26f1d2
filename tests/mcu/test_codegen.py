"""Generated C: byte-identical regeneration, warning-free cross-compilation for every Cortex-M
profile, C identifiers for hostile ONNX names, header constants, static arena, error messages."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit.plugins.mcu import hostbuild
from edgekit.plugins.mcu.generator import KERNEL_DIR, generate
from edgekit.plugins.mcu.plugin import McuBackend
from edgekit.target import Target

from .helpers import AUTOENCODER, RESNET8, generate_model, io_shapes, ort_run

ROOT = Path(__file__).resolve().parents[2]
ARM_TARGETS = ["cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m55"]


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_regeneration_is_byte_identical(tmp_path):
    model = onnx.load(str(RESNET8))
    generate(model, tmp_path / "a", name="net")
    # The second run is another process with another string-hash seed: no set/dict order leaks.
    import os
    import sys
    code = ("import onnx, sys; from edgekit.plugins.mcu.generator import generate; "
            "generate(onnx.load(sys.argv[1]), sys.argv[2], name='net')")
    subprocess.run([sys.executable, "-c", code, str(RESNET8), str(tmp_path / "b")], check=True,
                   env={**os.environ, "PYTHONHASHSEED": "12345"})
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys() and a == b
    assert {"net.c", "net.h", "net_weights.c", "memory_plan.svg", "CMakeLists.txt", "net.mk",
            "library.json", "zephyr/module.yml", "zephyr/CMakeLists.txt", "zephyr/Kconfig",
            "example_main.c", "kernels/ek_common.h"} <= a.keys()
    text = b"".join(a.values())
    assert str(tmp_path).encode() not in text  # no absolute paths leak into the output


def test_only_used_kernel_families_are_copied(tmp_path):
    gen = generate(onnx.load(str(AUTOENCODER)), tmp_path, name="ae")
    kernels = sorted(p.name for p in (tmp_path / "kernels").iterdir())
    assert kernels == ["ek_common.h", "ek_gemm.c", "ek_gemm.h", "ek_names.h"]
    assert gen.schedule.families == {"ek_gemm"}
    # the library's kernel symbols under its own prefix: only the families it ships
    names = (tmp_path / "kernels" / "ek_names.h").read_text()
    assert "#define ek_gemm_f32   ae_ek_gemm_f32" in names and "ek_conv2d_f32" not in names


def _all_ops_model() -> onnx.ModelProto:
    """One graph touching every kernel family (for the cross-compilation test)."""
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = {"w": f(4, 3, 3, 3), "b": f(4), "wt": f(4, 2, 2, 2), "g": f(8, 6), "s": f(2),
             "bn_s": f(2) ** 2 + 0.5, "bn_b": f(2), "bn_m": f(2), "bn_v": f(2) ** 2 + 0.5,
             "W": f(1, 12, 6), "R": f(1, 12, 3), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
             "st": np.array([0], np.int64), "en": np.array([6], np.int64),
             "ax": np.array([1], np.int64), "sq": np.array([0], np.int64)}
    n = helper.make_node
    nodes = [n("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             n("Relu", ["c"], ["cr"]),
             n("MaxPool", ["cr"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
             n("ConvTranspose", ["mp", "wt"], ["ct"], strides=[2, 2]),
             n("Pad", ["ct", "pads"], ["pd"], mode="reflect"),
             n("AveragePool", ["pd"], ["ap"], kernel_shape=[3, 3], strides=[3, 3]),
             n("BatchNormalization", ["ap", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"]),
             n("Sigmoid", ["bn"], ["sg"]),
             n("GlobalAveragePool", ["sg"], ["gp"]),
             n("ReduceMean", ["sg"], ["rm"], axes=[2, 3], keepdims=1),
             n("Mul", ["gp", "rm"], ["mu"]),
             n("Transpose", ["sg"], ["tr"], perm=[0, 2, 3, 1]),
             n("Flatten", ["tr"], ["fl"]),
             n("Slice", ["fl", "st", "en", "ax"], ["sl"]),
             n("Gemm", ["sl", "g"], ["ge"], transB=1),
             n("Flatten", ["mu"], ["mu_flat"]),
             n("Concat", ["ge", "mu_flat"], ["cc"], axis=1),
             n("Unsqueeze", ["cc", "sq"], ["cc_3d"]),
             n("Squeeze", ["cc_3d", "sq"], ["cc2"]),
             n("Softmax", ["cc2"], ["y"]),
             n("Unsqueeze", ["x_seq", "sq"], ["xs"]),
             n("Squeeze", ["xs", "sq"], ["xs2"]),
             n("LSTM", ["xs2", "W", "R"], ["ly"], hidden_size=3),
             n("Tanh", ["ly"], ["y2"])]
    graph = helper.make_graph(nodes, "all_ops",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6]),
                               helper.make_tensor_value_info("x_seq", TensorProto.FLOAT, [2, 1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _extra_ops_model() -> onnx.ModelProto:
    """The ops beyond the core list: variadic Max, PRelu, Gelu, Split, Gather, Expand, LogSoftmax,
    ReduceMax/Sum, Pow, GRU, LayerNormalization."""
    rng = np.random.default_rng(1)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = {"slope": f(4, 1), "c": f(1, 5), "split": np.array([2, 3], np.int64),
             "idx": np.array([4, 0, 2, 2], np.int64), "shape": np.array([2, 4, 4], np.int64),
             "axes": np.array([1], np.int64), "e": np.array(2.0, np.float32),
             "W": f(2, 9, 5), "R": f(2, 9, 3), "ln_s": f(5), "ln_b": f(5)}
    n = helper.make_node
    nodes = [n("Max", ["x", "c", "x"], ["m"]),
             n("PRelu", ["m", "slope"], ["p"]),
             n("Gelu", ["p"], ["g"], approximate="tanh"),
             n("Split", ["g", "split"], ["s0", "s1"], axis=1),
             n("Gather", ["g", "idx"], ["ga"], axis=1),
             n("Expand", ["ga", "shape"], ["ex"]),
             n("LogSoftmax", ["ex"], ["ls"], axis=1),
             n("ReduceMax", ["ls", "axes"], ["rmax"], keepdims=0),
             n("ReduceSum", ["s1", "axes"], ["rsum"], keepdims=1),
             n("Pow", ["rsum", "e"], ["pw"]),
             n("Unsqueeze", ["s0", "axes"], ["seq"]),
             n("GRU", ["g_seq", "W", "R"], ["gy"], hidden_size=3, direction="bidirectional"),
             n("Unsqueeze", ["x", "axes"], ["g_seq"])]
    nodes = nodes[:11] + [nodes[12], nodes[11]]
    nodes.append(n("LayerNormalization", ["p", "ln_s", "ln_b"], ["ln", "ln_mean", "ln_inv_std"]))
    graph = helper.make_graph(nodes, "extra_ops",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 5])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                               for o in ("rmax", "pw", "seq", "gy", "ln", "ln_inv_std")],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


@pytest.mark.parametrize("make", [_all_ops_model, _extra_ops_model])
def test_all_ops_model_matches_onnxruntime_under_sanitizers(tmp_path, make):
    model = make()
    gen = generate_model(model, tmp_path, "allops", static_arena=True)
    assert len(gen.schedule.families) >= (10 if make is _all_ops_model else 5)
    ins, outs = io_shapes(gen)
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, len(ins), len(outs),
                                 gen.plan.arena_bytes)
    rng = np.random.default_rng(3)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in zip(gen.schedule.inputs, ins)}
    got = hostbuild.run_driver(exe, [feeds[n] for n in gen.schedule.inputs], outs)
    for g, r in zip(got, ort_run(model, feeds)):
        np.testing.assert_allclose(g, r.reshape(g.shape), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def arm_sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("arm")
    g1 = generate(onnx.load(str(RESNET8)), d / "resnet8", name="resnet8")
    g2 = generate(_all_ops_model(), d / "allops", name="allops", static_arena=True)
    g3 = generate(_extra_ops_model(), d / "extra", name="extra")
    srcs = [d / "resnet8" / s for s in g1.model_sources] + [d / "allops" / s for s in g2.model_sources]
    srcs += [d / "extra" / s for s in g3.model_sources]
    srcs += [d / "resnet8" / "example_main.c"]
    return d, srcs + sorted(KERNEL_DIR.glob("*.c"))


@pytest.mark.parametrize("target_name", ARM_TARGETS)
def test_generated_code_compiles_warning_free_for_cortex_m(arm_sources, target_name, tmp_path):
    d, sources = arm_sources
    target = Target.from_toml(ROOT / "targets" / f"{target_name}.toml")

    def compile_one(src: Path):
        cmd = [target.toolchain.cc, *target.toolchain.cflags, "-std=c99", "-Wall", "-Wextra",
               "-Werror", "-O2", f"-I{src.parent}", "-c", str(src), "-o",
               str(tmp_path / f"{src.parent.name}_{src.stem}.o")]
        return subprocess.run(cmd, capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(compile_one, sources))
    problems = [f"{s.name}: {r.stderr}" for s, r in zip(sources, results) if r.returncode or r.stderr]
    assert not problems, "\n".join(problems)


def test_hostile_names_become_unique_identifiers(tmp_path):
    # Names that sanitize to the same identifier, C keywords, leading digits, comment terminators.
    nodes = [helper.make_node("Relu", ["in put"], ["a/b"], name="n*/1"),
             helper.make_node("Sigmoid", ["a/b"], ["a-b"], name="int"),
             helper.make_node("Add", ["a/b", "a-b"], ["9out"], name="n*/1 ")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("in put", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("9out", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    gen = generate_model(model, tmp_path, "2bad name")
    assert gen.prefix.isidentifier() and not gen.prefix[0].isdigit()
    names = [t.c_name for t in gen.schedule.tensors.values()]
    assert len(set(n.lower() for n in names)) == len(names)
    assert all(n.isidentifier() for n in names)
    ins, outs = io_shapes(gen)
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, 1, 1, gen.plan.arena_bytes)
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    got = hostbuild.run_driver(exe, [x], outs)[0]
    r = np.maximum(x, 0)
    np.testing.assert_allclose(got, r + 1 / (1 + np.exp(-r)), rtol=1e-6)


def _context(target_name: str, **options) -> edgekit.BuildContext:
    from edgekit.registry import Registry
    return edgekit.BuildContext(target=Target.from_toml(ROOT / "targets" / f"{target_name}.toml"),
                                registry=Registry(), options=options)


def test_unsupported_op_stops_the_build_before_writing(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node("Hardmax", ["r"], ["y"], name="hardmax_node")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(edgekit.BuildError) as err:
        McuBackend().check(model, _context("cortex-m4"))
    msg = str(err.value)
    assert "'hardmax_node'" in msg and "Hardmax" in msg and "cortex-m4" in msg and "Conv, ConvTranspose" in msg
    assert "\n" not in msg


def test_inconsistent_rnn_weights_are_refused():
    # ONNX shape inference accepts a bidirectional GRU with one direction of weights; the kernel
    # would read past W, so the lowering must refuse it.
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), k)
             for k, s in (("W", (1, 9, 5)), ("R", (1, 9, 3)))]
    graph = helper.make_graph([helper.make_node("GRU", ["x", "W", "R"], ["y"], hidden_size=3,
                                                direction="bidirectional", name="gru")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(edgekit.BuildError, match="node 'gru' \\(op GRU\\).*W has shape \\[1, 9, 5\\]"):
        McuBackend().check(model, _context("cortex-m4"))


def test_unsupported_attribute_is_refused_with_the_node_name():
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv3d")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(edgekit.BuildError, match="node 'conv3d' \\(op Conv\\).*3-D Conv is not supported"):
        McuBackend().check(model, _context("cortex-m4"))


def test_supported_ops_are_the_lowering_table():
    ops = McuBackend().supported_ops(None)
    assert {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Clip",
            "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softmax", "MaxPool",
            "AveragePool", "GlobalAveragePool", "BatchNormalization", "Reshape", "Flatten", "Squeeze",
            "Unsqueeze", "Transpose", "Concat", "Slice", "Pad", "ReduceMean", "LSTM", "GRU",
            "Identity"} <= ops
    from edgekit.plugins.mcu.optable import LIMITS
    assert set(LIMITS) == ops  # the claim table documents every claimed op and nothing else


def test_dynamic_shapes_are_refused_with_a_hint():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(edgekit.BuildError, match="'x' has no static shape.*--input-shape"):
        McuBackend().check(model, _context("cortex-m4"))


def test_model_prefix_is_a_safe_identifier():
    from edgekit.naming import library_prefix

    assert library_prefix("ic-resnet8 v2") == "ic_resnet8_v2"
    assert library_prefix("8bit") == "model_8bit"
    assert library_prefix("int") == "model_int"
    assert library_prefix("EK") == "m_EK" and library_prefix("ek_net") == "model_ek_net"
    assert library_prefix("stdint") == "m_stdint" and library_prefix("example_main") == "m_example_main"
    assert library_prefix(None) == "model"
