"""Resize (nearest and bilinear over H and W of NCHW float tensors) vs onnxruntime: a grid of
mode x coordinate mode x nearest mode x up/down x scales/sizes on the host (one shared library),
an FPN-like model built with the CLI for the emulated Cortex-M4 with --run, and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.errors import BuildError
from edgekit.plugins.mcu.generator import generate
from tests.conftest import run_edgekit

from .helpers import build_shared, generate_model, host_model, ort_run

F = TensorProto.FLOAT
X_SHAPE = [1, 3, 5, 8]


def _resize_model(x_shape, attrs, scales=None, sizes=None, opset=13, const_node=False, name="rs"):
    """Sigmoid -> Resize (the Sigmoid keeps the Resize input a runtime tensor); scales or sizes as
    an initializer or, with ``const_node``, a Constant node."""
    nodes = [helper.make_node("Sigmoid", ["x"], ["xs"])]
    # empty roi and (with sizes) empty scales: opset 11 requires both inputs
    inits = [numpy_helper.from_array(np.zeros(0, np.float32), n) for n in ("roi", "no_scales")]
    value = np.asarray(scales, np.float32) if scales is not None else np.asarray(sizes, np.int64)
    key = "scales" if scales is not None else "sizes"
    if const_node:
        nodes.append(helper.make_node("Constant", [], [key], value=numpy_helper.from_array(value, key)))
    else:
        inits.append(numpy_helper.from_array(value, key))
    ins = ["xs", "roi", "scales"] if scales is not None else ["xs", "roi", "no_scales", "sizes"]
    nodes.append(helper.make_node("Resize", ins, ["y"], name=name, **attrs))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, x_shape)],
                              [helper.make_tensor_value_info("y", F, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


# (name, attrs, scales, sizes): up and down sampling with integer and fractional factors.
_SHAPES = [("up2", [1, 1, 2, 2], None), ("upfrac", [1, 1, 1.6, 2.5], None),
           ("down", [1, 1, 0.6, 0.75], None), ("downfrac", [1, 1, 0.5, 0.7], None),
           ("sizes_up", None, [1, 3, 8, 11]), ("sizes_down", None, [1, 3, 3, 5]),
           ("sizes_one", None, [1, 3, 1, 3])]
_COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]
_NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def _cases():
    cases = []
    for i, (tag, scales, sizes) in enumerate(_SHAPES):
        for j, coord in enumerate(_COORDS):
            if tag == "downfrac" and coord == "align_corners":  # fractional 5 x 0.5: refused below
                continue
            linear = {"mode": "linear", "coordinate_transformation_mode": coord}
            cases.append((f"linear-{coord}-{tag}", linear, scales, sizes))
            # every nearest mode under every coordinate mode, rotating over the shapes
            nearest = _NEAREST[(i + j) % 4]
            attrs = {"mode": "nearest", "coordinate_transformation_mode": coord, "nearest_mode": nearest}
            cases.append((f"nearest-{nearest}-{coord}-{tag}", attrs, scales, sizes))
    # coordinates on exact .5 ties (asymmetric x2 up: k + 0.5; half_pixel x0.5 down: 2k + 0.5),
    # where the two round_prefer modes disagree
    for nearest in _NEAREST[:2]:
        for coord, scales in (("asymmetric", [1, 1, 2, 2]), ("half_pixel", [1, 1, 0.5, 0.5])):
            cases.append((f"nearest-{nearest}-{coord}-ties", {"mode": "nearest", "nearest_mode": nearest,
                                                              "coordinate_transformation_mode": coord},
                          scales, None))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    work = tmp_path_factory.mktemp("resize")
    rng = np.random.default_rng(11)
    built, gens = [], []
    for idx, (_, attrs, scales, sizes) in enumerate(CASES):
        # every fifth case takes its scales/sizes from a Constant node, the rest from initializers;
        # every seventh is opset 11 (scales input required, empty with sizes)
        model = _resize_model(X_SHAPE, attrs, scales, sizes, opset=11 if idx % 7 == 3 else 13,
                              const_node=idx % 5 == 0)
        feeds = {"x": rng.standard_normal(X_SHAPE).astype(np.float32) * 3}
        gen = generate_model(model, work / f"r{idx}", f"r{idx}", with_kernels=False, with_integration=False)
        gens.append((work / f"r{idx}", gen))
        built.append((model, feeds, gen))
    return build_shared(gens, work), built


@pytest.mark.parametrize("idx", range(len(CASES)), ids=[c[0] for c in CASES])
def test_resize_matches_onnxruntime(batch, idx):
    lib, built = batch
    model, feeds, gen = built[idx]
    assert [layer.function for layer in gen.schedule.layers][-1].startswith("ek_resize_")
    ref = ort_run(model, feeds)[0]
    got = host_model(lib, gen).run([feeds["x"]])[0]
    np.testing.assert_allclose(got, ref.reshape(got.shape), rtol=1e-5, atol=1e-5)


def test_nearest_ties_follow_nearest_mode():
    """Exact .5 coordinates go down or up as nearest_mode says (numpy's round-half-even would
    send 0.5 and 2.5 down and 1.5 up); out-of-range indices clamp to the input."""
    from edgekit.plugins.mcu.ops_resize import _nearest_indices
    coords = np.array([-0.5, 0.5, 1.5, 2.5, 3.5], np.float32)
    assert _nearest_indices(coords, "round_prefer_floor", 4).tolist() == [0, 0, 1, 2, 3]
    assert _nearest_indices(coords, "round_prefer_ceil", 4).tolist() == [0, 1, 2, 3, 3]


def _fpn_model(path):
    rng = np.random.default_rng(5)
    w1 = rng.standard_normal([4, 3, 3, 3]).astype(np.float32) * 0.3
    w2 = rng.standard_normal([4, 3, 1, 1]).astype(np.float32) * 0.3
    w3 = rng.standard_normal([2, 4, 3, 3]).astype(np.float32) * 0.3
    nodes = [helper.make_node("Conv", ["x", "w1"], ["coarse"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["coarse", "", "scales"], ["up"], name="up2", mode="nearest"),
             helper.make_node("Conv", ["x", "w2"], ["lateral"]),
             helper.make_node("Add", ["up", "lateral"], ["merged"]),
             helper.make_node("Conv", ["merged", "w3"], ["y"], pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(v, k) for k, v in
             (("w1", w1), ("w2", w2), ("w3", w3), ("scales", np.array([1, 1, 2, 2], np.float32)))]
    graph = helper.make_graph(nodes, "fpn", [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", F, [1, 2, 8, 8])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path.write_bytes(m.SerializeToString())
    return path


def test_fpn_like_model_runs_on_cortex_m4(tmp_path):
    """`edgekit build -t cortex-m4 --run`: the build compares the emulated board's output with
    onnxruntime and fails beyond tolerance."""
    model = _fpn_model(tmp_path / "fpn.onnx")
    out = tmp_path / "out"
    done = run_edgekit("build", str(model), "-t", "cortex-m4", "-o", str(out), "--run", "-q")
    assert done.code == 0, done.stderr
    run = json.loads((out / "report.json").read_text())["run"]
    assert run["judged_against"] == "onnxruntime" and run["runner"] == "qemu", run
    assert run["max_abs_error"] <= 1e-5, run
    assert "ek_resize_nearest_f32(&up2_params" in (out / "model.c").read_text()


_REFUSALS = [
    ({"mode": "cubic"}, [1, 1, 2, 2], None, 13, "mode 'cubic'"),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, [1, 1, 2, 2], None, 13,
     "coordinate_transformation_mode 'tf_crop_and_resize'"),
    ({"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nearest"}, [1, 1, 2, 2], None,
     11, "coordinate_transformation_mode 'tf_half_pixel_for_nearest'"),
    ({"mode": "nearest", "nearest_mode": "bogus"}, [1, 1, 2, 2], None, 13, "nearest_mode 'bogus'"),
    ({"mode": "linear", "antialias": 1}, [1, 1, 0.5, 0.5], None, 18, "antialias=1"),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 0.5, 0.7], None, 13,
     "coordinate_transformation_mode 'align_corners' with scale 0.5 on axis 2 gives a fractional length"),
    ({"mode": "nearest"}, [1, 2, 2, 2], None, 13, "resizing N or C"),
    ({"mode": "nearest"}, None, [2, 3, 5, 7], 13, "resizing N or C"),
]


@pytest.mark.parametrize("attrs,scales,sizes,opset,why", _REFUSALS, ids=[r[4].split("'")[0] + str(i)
                                                                         for i, r in enumerate(_REFUSALS)])
def test_refusals_name_node_op_and_value(tmp_path, attrs, scales, sizes, opset, why):
    model = _resize_model(X_SHAPE, attrs, scales, sizes, opset=opset, name="neck_up")
    with pytest.raises(BuildError) as err:
        generate(model, tmp_path, name="m", with_kernels=False, with_integration=False)
    msg = str(err.value)
    assert "node 'neck_up' (op Resize)" in msg and why in msg and "\n" not in msg, msg


def test_runtime_scales_and_other_ranks_are_refused(tmp_path):
    runtime = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "s"], ["y"], name="dyn", mode="nearest")], "g",
        [helper.make_tensor_value_info("x", F, [1, 1, 4, 4]), helper.make_tensor_value_info("s", F, [4])],
        [helper.make_tensor_value_info("y", F, None)])
    m = helper.make_model(runtime, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    with pytest.raises(BuildError, match=r"node 'dyn' \(op Resize\).*scales 's' must be a constant"):
        generate(m, tmp_path / "a", name="m", with_kernels=False, with_integration=False)
    rank3 = _resize_model([1, 3, 5], {"mode": "nearest"}, [1, 1, 2], name="r3")
    with pytest.raises(BuildError, match=r"node 'r3' \(op Resize\).*rank-3 input"):
        generate(rank3, tmp_path / "b", name="m", with_kernels=False, with_integration=False)


def test_kernels_clean_under_sanitizers(tmp_path):
    """Nearest up and bilinear down in one generated library, built with -fsanitize=address,undefined
    (exact-size buffers: any table index past the input shows up) and checked against onnxruntime."""
    from edgekit.plugins.mcu import hostbuild
    inits = [numpy_helper.from_array(np.array(v, np.float32), k)
             for k, v in (("up", [1, 1, 2.5, 3]), ("down", [1, 1, 0.4, 0.7]))]
    nodes = [helper.make_node("Resize", ["x", "", "up"], ["u"], mode="nearest", nearest_mode="ceil",
                              coordinate_transformation_mode="half_pixel"),
             helper.make_node("Resize", ["u", "", "down"], ["y"], mode="linear",
                              coordinate_transformation_mode="pytorch_half_pixel")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2, 3, 5, 8])],
                              [helper.make_tensor_value_info("y", F, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    gen = generate(m, tmp_path, name="rs")
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, 1, 1, gen.plan.arena_bytes)
    x = np.random.default_rng(3).standard_normal([2, 3, 5, 8]).astype(np.float32)
    ref = ort_run(m, {"x": x})[0]
    got = hostbuild.run_driver(exe, [x], [ref.shape])[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cpu", ["cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m55"])
def test_kernel_compiles_warning_free_for_every_profile(tmp_path, cpu):
    import subprocess

    from . import kernels_support as ks
    from .test_kernels_targets import TARGET_FLAGS
    proc = subprocess.run(["arm-none-eabi-gcc", *TARGET_FLAGS[cpu], "-O2", *ks.HOST_FLAGS, "-c",
                           str(ks.KERNELS / "ek_resize.c"), "-o", str(tmp_path / "ek_resize.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
