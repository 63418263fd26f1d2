"""The quantize plugin: the int8 scheme of the QDQ model it writes, calibration data formats, the
report, mixed precision, the error paths, and `edgekit build --quantize int8` end to end."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from edgekit.building import BuildRequest, build
from edgekit.cli import main
from edgekit.registry import default_registry
from tests.mcu import qdq_models

logging.getLogger().setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "cnn.onnx"
    onnx.save(qdq_models.conv_block(), path)
    return path


def _build(model, out, **kw):
    options = kw.pop("options", {})
    return build(BuildRequest(model=str(model), target="cortex-m4", output=out, backend="onnxruntime",
                              quantize="int8", options=options, **kw), default_registry())


def test_qdq_model_follows_the_int8_scheme(cnn_file, tmp_path):
    report = _build(cnn_file, tmp_path / "out")
    model = onnx.load(tmp_path / "out" / "reference.onnx")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        wdq = producers[conv.input[1]]
        w, w_scale, w_zp = (inits[i] for i in wdq.input)
        assert w.dtype == np.int8 and w.min() >= -127 and np.all(w_zp == 0)
        assert w_scale.shape == (w.shape[0],)  # per output channel
        assert any(a.name == "axis" and a.i == 0 for a in wdq.attribute)
        bdq = producers[conv.input[2]]
        b, b_scale = inits[bdq.input[0]], inits[bdq.input[1]]
        x_scale = inits[producers[conv.input[0]].input[1]]
        assert b.dtype == np.int32
        np.testing.assert_allclose(b_scale, x_scale * w_scale, rtol=1e-6)
    activations = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert activations and all(z.dtype == np.int8 and z.size == 1 for z in activations)
    q = report["quantization"]
    assert q["calibration"] == {"method": "minmax", "data": "seeded random", "samples": 32}
    assert q["accuracy_known"] is False
    assert q["weights_bytes"]["after"] < 0.4 * q["weights_bytes"]["before"]
    assert q["output_sqnr_db"] > 15 and 0.0 <= q["top1_agreement"] <= 1.0
    # one entry per quantized tensor the float model computes too, named by its producer
    assert {layer["node"] for layer in q["layers"]} >= {"relu1", "relu2", "fc"}
    assert all(isinstance(layer["sqnr_db"], float) for layer in q["layers"])
    (record,) = [p for p in report["passes"] if p["name"] == "quantize-int8"]
    assert record["tolerance"] == {"approximate": True} and record["sqnr_db"] == pytest.approx(
        q["output_sqnr_db"], abs=30)


@pytest.mark.parametrize("fmt", ["npy", "npz", "dir", "function"])
def test_calibration_formats(cnn_file, tmp_path, fmt):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((6, 1, 3, 12, 12)).astype(np.float32)
    if fmt == "npy":
        np.save(tmp_path / "c.npy", data)
        spec = tmp_path / "c.npy"
    elif fmt == "npz":
        np.savez(tmp_path / "c.npz", x=data)
        spec = tmp_path / "c.npz"
    elif fmt == "dir":
        (tmp_path / "d").mkdir()
        for i in range(6):
            np.save(tmp_path / "d" / f"{i}.npy", data[i])
        spec = tmp_path / "d"
    else:
        np.save(tmp_path / "c.npy", data)
        (tmp_path / "calib.py").write_text(
            "import numpy as np\n"
            f"def samples():\n    for x in np.load({str(tmp_path / 'c.npy')!r}):\n        yield {{'x': x}}\n")
        spec = f"{tmp_path / 'calib.py'}:samples"
    report = _build(cnn_file, tmp_path / "out", options={"calibration": str(spec)})
    q = report["quantization"]
    assert q["calibration"]["samples"] == 6 and q["accuracy_known"] is True


def test_calibration_methods_give_different_ranges(cnn_file, tmp_path, capsys):
    scales = {}
    for method in ("minmax", "percentile", "entropy"):
        _build(cnn_file, tmp_path / method, options={"calibration_method": method})
        model = onnx.load(tmp_path / method / "reference.onnx")
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        scales[method] = [float(inits[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"]
    # percentile clips the tails MinMax keeps; entropy (KL) may or may not move a range on this data
    assert scales["minmax"] != scales["percentile"]
    assert all(s > 0 for s in scales["entropy"]) and len(scales["entropy"]) == len(scales["minmax"])
    assert "Collecting tensor data" not in capsys.readouterr().out  # onnxruntime's prints are kept quiet


def test_mixed_precision_keeps_sensitive_layers_float_until_the_floor(cnn_file, tmp_path):
    plain = _build(cnn_file, tmp_path / "plain")["quantization"]["output_sqnr_db"]
    floor = plain + 6.0  # unreachable with every layer in int8
    report = _build(cnn_file, tmp_path / "mixed", options={"accuracy_floor": f"{floor}dB"})
    q = report["quantization"]
    mp = q["mixed_precision"]
    assert q["float_layers"], "a floor above the all-int8 SQNR must keep a layer in float"
    assert {row["node"] for row in mp["layers"]} == {"conv1", "conv2", "fc"}
    assert [row["node"] for row in mp["layers"] if row["choice"] == "float"] == \
        [n for n in ("conv1", "conv2", "fc") if n in q["float_layers"]]
    assert mp["met"] == (mp["reached"] >= floor)
    model = onnx.load(tmp_path / "mixed" / "reference.onnx")
    float_inits = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    for node in model.graph.node:
        if node.name in q["float_layers"]:
            assert node.input[1] in float_inits  # its weights stayed float32


@pytest.mark.parametrize("args,needle", [
    (["--quantize", "int3"], "--quantize int3"),
    (["--quantize", "int8", "--calibration", "missing.npz"], "--calibration missing.npz"),
    (["--quantize", "int8", "--calibration", "data.csv"], "unsupported data"),
    (["--quantize", "int8", "--calibration-method", "magic"], "--calibration-method magic"),
    (["--quantize", "int8", "--accuracy-floor", "loud"], "--accuracy-floor loud"),
    (["--quantize", "int4", "--group-size", "3"], "--group-size 3"),
    (["--quantize", "int8", "--run", "--option", "quantized_tolerance_steps=lots"],
     "quantized_tolerance_steps=lots"),
])
def test_bad_quantization_flags_are_usage_errors(cnn_file, tmp_path, args, needle):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["build", str(cnn_file), "-t", "cortex-m4", "--backend",
                                       "onnxruntime", "-o", str(out), "-q", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    # one error line: -q keeps the run case's warning about calibrating on random data to the report
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not out.exists()


def test_quantized_build_runs_int8_kernels_on_the_emulated_board(cnn_file, tmp_path):
    result = CliRunner().invoke(main, ["build", str(cnn_file), "-t", "cortex-m4", "--quantize", "int8",
                                       "-o", str(tmp_path / "out"), "--run", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(report["backend"]["int8_nodes"]) >= {"conv1", "conv2", "fc", "softmax"}  # the residual Add merges into conv2 (merge-branches)
    assert report["run"]["exact_ratio"]["y"] >= 0.9


def test_int4_weight_only_form_and_mcu_kernel(tmp_path):
    """--quantize int4: MatMul/Gemm weights become DequantizeLinear(INT4, blocked along K) and the
    mcu-c back end keeps them two per byte; the emulated M4 matches onnxruntime on the int4 model."""
    model = qdq_models.mlp()
    path = tmp_path / "mlp.onnx"
    onnx.save(model, path)
    report = build(BuildRequest(model=str(path), target="cortex-m4", output=tmp_path / "out", run=True,
                                verify_samples=3, quantize="int4", options={"group_size": 4}),
                   default_registry())
    ref = onnx.load(tmp_path / "out" / "reference.onnx")
    dqs = [n for n in ref.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dqs) == 2 and all(
        {a.name: a.i for a in n.attribute} == {"axis": 0, "block_size": 4} for n in dqs)
    inits = {t.name: t for t in ref.graph.initializer}
    assert all(inits[n.input[0]].data_type == onnx.TensorProto.INT4 for n in dqs)
    q = report["quantization"]
    assert sorted(q["int4_nodes"]) == ["fc2", "mm"]
    # 20x24 + 24x6 weights at half a byte, one float scale per 4 of them, float biases and constant
    int4 = (20 * 24 + 24 * 6) // 2 + 4 * (20 * 24 + 24 * 6) // 4
    assert q["weights_bytes"] == {"before": 4 * (20 * 24 + 24 + 24 * 6 + 6 + 6),
                                  "after": int4 + 4 * (24 + 6 + 6)}
    kernels = {layer["kernel"] for layer in report["backend"]["layers"]}
    assert "ek_gemm_w4_f32" in kernels and "ek_matmul_f32" not in kernels
    assert report["run"]["max_abs_error"] < 1e-4


def test_int4_packing_roundtrip():
    from edgekit.plugins.mcu import w4_layout

    rng = np.random.default_rng(0)
    q = rng.integers(-8, 8, size=(7, 3)).astype(np.int8)  # odd K
    packed = w4_layout.pack(q)
    assert packed.dtype == np.uint8 and packed.size == 3 * 4
    lo = (packed.reshape(3, 4) & 0xF).astype(np.int16)
    hi = (packed.reshape(3, 4) >> 4).astype(np.int16)
    unpacked = np.stack([lo, hi], axis=2).reshape(3, 8)[:, :7]
    unpacked = np.where(unpacked >= 8, unpacked - 16, unpacked)
    np.testing.assert_array_equal(unpacked, q.T)


def test_int4_library_is_clean_under_sanitizers(tmp_path):
    from edgekit.plugins.mcu import hostbuild
    from edgekit.plugins.mcu.generator import generate
    from edgekit.plugins.quantize.int4 import quantize_weights_int4
    from edgekit.verify import compare, run_onnxruntime

    model, nodes = quantize_weights_int4(qdq_models.mlp(), 8)
    assert nodes == ["mm", "fc2"]
    gen = generate(model, tmp_path, name="mlp4", with_integration=False)
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, 1, 1, gen.plan.arena_bytes)
    rng = np.random.default_rng(4)
    feeds = [{"x": rng.standard_normal((3, 20)).astype(np.float32)} for _ in range(2)]
    expected = run_onnxruntime(model, feeds, "int4 model")
    actual = [{"y": hostbuild.run_driver(exe, [f["x"]], [(3, 6)])[0]} for f in feeds]
    from edgekit.plugins.mcu.plugin import McuBackend

    assert compare(expected, actual, McuBackend.tolerance).within()


def test_example_calibration_function_yields_the_autoencoder_frames():
    from pathlib import Path

    from edgekit.plugins.quantize.calibration import load_samples

    repo = Path(__file__).resolve().parents[2]
    model = onnx.load(repo / "examples" / "models" / "mlperf-tiny" / "ad_autoencoder.onnx")
    samples = load_samples(f"{repo / 'examples' / 'quantize' / 'calibration.py'}:frames", model)
    assert len(samples) == 40 and samples[0]["input_1"].shape == (1, 640)
    assert len({float(s["input_1"].sum()) for s in samples}) == 40  # forty different frames
