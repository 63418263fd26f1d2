"""The .tflite front end (plugins/tflite): reading, QDQ with the file's exact quantization, the NHWC ->
NCHW layout change at the boundary, float import against the TFLite interpreter, unsupported ops, and
the int8 MLPerf Tiny models built for cortex-m4, run on the emulated board and compared value by
value, every operator's output too, with TensorFlow Lite Micro (the ``tflite-micro`` package) on 100
seeded random inputs: bit-exact, because the importer marks the model for TFLite Micro's arithmetic
(``edgekit.int8_arithmetic=tflite``: double rounding, TFLite's average pool and Add rescaling) and
mcu-c's int8 kernels implement it. The ONNX arithmetic (single rounding, ``--option
int8_arithmetic=onnx``) stays within 1 LSB per operator, and a run's report then names the first
operator that differs (operator 0: the rounding).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("tflite")
tflm = pytest.importorskip("tflite_micro")

from edgekit.building import BuildRequest, build  # noqa: E402
from edgekit.plugins.mcu import qmath  # noqa: E402
from edgekit.plugins.tflite import oracle  # noqa: E402
from edgekit.plugins.tflite.convert import convert  # noqa: E402
from edgekit.plugins.tflite.reader import read, read_bytes  # noqa: E402
from edgekit.registry import default_registry  # noqa: E402
from tests.tflite import tflite_writer as tw  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)
REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "examples" / "models" / "mlperf-tiny"
INT8_MODELS = ["kws_dscnn_int8", "ic_resnet8_int8", "ad_autoencoder_int8"]
TARGET = REPO / "targets" / "cortex-m4.toml"
N_INPUTS = 100


def test_reader_reads_the_kws_model():
    sg = read(MODELS / "kws_dscnn_int8.tflite")
    assert [o.op for o in sg.operators] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
                                            "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D",
                                            "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    x = sg.tensors[sg.inputs[0]]
    assert x.shape == (1, 49, 10, 1) and x.dtype is np.int8
    assert np.float32(x.quant.scale[0]) == np.float32(0.5847029) and int(x.quant.zero_point[0]) == 83
    assert sg.operators[0].options["Padding"] == "SAME" and sg.operators[0].options["FusedActivationFunction"] == "RELU"


def _producer(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if name in n.output)


@pytest.mark.parametrize("name", INT8_MODELS)
def test_int8_import_keeps_the_files_quantization(name):
    """Every conv / depthwise / FC: int8 weights transposed to ONNX layout behind DequantizeLinear
    with the file's per-channel scales (bit for bit, axis 0), int32 biases with the file's values."""
    sg = read(MODELS / f"{name}.tflite")
    conv = convert(sg, name)
    onnx.checker.check_model(conv.model, full_check=True)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in conv.model.graph.initializer}
    nodes = {n.name: n for n in conv.model.graph.node}
    checked = 0
    for op in sg.operators:
        onnx_op = {"CONV_2D": "Conv", "DEPTHWISE_CONV_2D": "Conv", "FULLY_CONNECTED": "Gemm"}.get(op.op)
        if onnx_op is None:
            continue
        node = nodes[f"op{op.index}_{op.op}"]
        assert node.op_type == onnx_op
        w_file = sg.tensors[op.inputs[1]]
        dq = _producer(conv.model, node.input[1])
        assert dq.op_type == "DequantizeLinear"
        want = {"CONV_2D": lambda d: d.transpose(0, 3, 1, 2), "DEPTHWISE_CONV_2D": lambda d: d.transpose(3, 0, 1, 2),
                "FULLY_CONNECTED": lambda d: d}[op.op](w_file.data)
        np.testing.assert_array_equal(inits[dq.input[0]], want)
        assert inits[dq.input[0]].dtype == np.int8
        np.testing.assert_array_equal(inits[dq.input[1]].reshape(-1), w_file.quant.scale)
        b_file = sg.tensors[op.inputs[2]]
        bq = _producer(conv.model, node.input[2])
        np.testing.assert_array_equal(inits[bq.input[0]], b_file.data)
        assert inits[bq.input[0]].dtype == np.int32
        np.testing.assert_array_equal(inits[bq.input[1]].reshape(-1), b_file.quant.scale)
        # the output's QuantizeLinear (after the fused Relu, if any) has the file's scale and zero point
        y = sg.tensors[op.outputs[0]]
        q = _producer(conv.model, conv.int8_names[op.outputs[0]])
        assert q.op_type == "QuantizeLinear"
        assert inits[q.input[1]] == y.quant.scale[0] and int(inits[q.input[2]]) == int(y.quant.zero_point[0])
        checked += 1
    assert checked >= 10


def test_layout_change_only_at_the_boundary(tmp_path):
    """KWS: no Transpose at all (its input has one channel, so NHWC -> NCHW is a Reshape), and
    none in the generated C. ResNet-8: one, at the (3-channel) input."""
    kws = convert(read(MODELS / "kws_dscnn_int8.tflite")).model
    assert [n.op_type for n in kws.graph.node].count("Transpose") == 0
    report = build(BuildRequest(model=str(MODELS / "kws_dscnn_int8.tflite"), target="cortex-m4",
                                output=tmp_path / "kws", options={"io": "int8"}), default_registry())
    source = (tmp_path / "kws" / "model.c").read_text()
    assert "transpose" not in source.lower() and "strided_copy" not in source
    assert not [l for l in report["backend"]["layers"] if "transpose" in l["op"].lower()]
    resnet = convert(read(MODELS / "ic_resnet8_int8.tflite")).model
    transposes = [n for n in resnet.graph.node if n.op_type == "Transpose"]
    assert len(transposes) == 1 and transposes[0].name.startswith("io/")


def _conv_acc(x, w, b, options, zx):
    """int64 accumulators of a TFLite CONV_2D (NHWC, weights [O, KH, KW, I], SAME/VALID)."""
    x = x.astype(np.int64) - zx
    o_c, kh, kw, _ = w.shape
    _, h, wd, _ = x.shape
    sh, sw = options["StrideH"], options["StrideW"]
    if options["Padding"] == "SAME":
        oh, ow = -(-h // sh), -(-wd // sw)
        ph, pw = max((oh - 1) * sh + kh - h, 0), max((ow - 1) * sw + kw - wd, 0)
    else:
        oh, ow, ph, pw = (h - kh) // sh + 1, (wd - kw) // sw + 1, 0, 0
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    acc = np.zeros((x.shape[0], oh, ow, o_c), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky:ky + sh * oh:sh, kx:kx + sw * ow:sw, :]
            acc += np.einsum("bhwi,oi->bhwo", patch, w[:, ky, kx, :].astype(np.int64))
    return acc + b.astype(np.int64)


def double_rounding(acc, multiplier, shift):
    """TFLite's default MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul of
    (acc << left shift) and the Q31 multiplier, then RoundingDivideByPOT (what TFLite Micro and
    CMSIS-NN's arm_nn_requantize compute unless built with single rounding)."""
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    ab = (acc * (np.int64(1) << left)) * multiplier.astype(np.int64)
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C division truncates toward zero
    mask = (np.int64(1) << right) - 1
    return (high >> right) + ((high & mask) > ((mask >> 1) + (high < 0)))


def _first_op_reference(sg, x, rounding):
    """Operator 0 (CONV_2D or FULLY_CONNECTED) of ``sg`` in numpy from the file's parameters."""
    op = sg.operators[0]
    xt, wt, bt = (sg.tensors[i] for i in op.inputs[:3])
    yt = sg.tensors[op.outputs[0]]
    zx, zy = int(xt.quant.zero_point[0]), int(yt.quant.zero_point[0])
    if op.op == "CONV_2D":
        acc = _conv_acc(x, wt.data, bt.data, op.options, zx)
    else:
        acc = (x.reshape(-1, wt.data.shape[1]).astype(np.int64) - zx) @ wt.data.T.astype(np.int64) + bt.data
    m, s = qmath.quantize_multipliers(np.float64(xt.quant.scale[0]) * wt.quant.scale.astype(np.float64)
                                      / np.float64(yt.quant.scale[0]))
    v = rounding(acc, m, s) + zy
    lo = zy if op.options["FusedActivationFunction"] in ("RELU", "RELU6") else -128
    return np.clip(v, lo, 127).reshape(yt.shape).astype(np.int8)


def _board_run(model_path: Path, out: Path, inputs: list[np.ndarray]):
    import edgekit
    from edgekit.plugins.harness.qemu import QemuRunner

    report = build(BuildRequest(model=str(model_path), target="cortex-m4", output=out, options={"io": "int8"}),
                   default_registry())
    (x_spec,) = report["backend"]["inputs"]
    context = edgekit.BuildContext(target=edgekit.Target.from_toml(TARGET), registry=None, options={})
    results = QemuRunner().run(out, [{x_spec["name"]: x} for x in inputs], context)
    outs = []
    for r in results:
        outs.append({o["name"]: qmath.quantize(r.outputs[o["name"]], o["quantization"]["scale"],
                                               o["quantization"]["zero_point"])
                     for o in report["backend"]["outputs"]})
    return report, outs


def _inputs(name: str, sg) -> list[np.ndarray]:
    xs = [x[0] for x in oracle.random_int8_inputs(sg, N_INPUTS, seed=1)]
    if name == "ad_autoencoder_int8":  # and the 40 real frames, quantized with the input's scale
        frames = np.fromfile(MODELS / "ad_sample_input_f32.bin", dtype="<f4").reshape(40, 1, 640)
        q = sg.tensors[sg.inputs[0]].quant
        xs += [qmath.quantize(f, float(q.scale[0]), int(q.zero_point[0])) for f in frames]
    return xs


@pytest.fixture(scope="module")
def board_runs(tmp_path_factory):
    """Per model: the inputs, TFLite Micro's tensors, and the board's outputs of the plain build
    and of the per-layer probe build (every operator's output also a graph output)."""
    cache = {}

    def get(name):
        if name in cache:
            return cache[name]
        root = tmp_path_factory.mktemp(name)
        path = MODELS / f"{name}.tflite"
        sg = read(path)
        conv = convert(sg, name)
        xs = _inputs(name, sg)
        tf = oracle.TflmOracle(path, preserve=True)
        indices = [t for _, _, outs in conv.op_outputs for t in outs]
        theirs, finals = [], []
        for x in xs:
            finals.append(tf.run([x])[0])
            theirs.append(tf.tensors(indices))
        report, plain = _board_run(path, root / "plain", xs)
        probe, probes = oracle.layer_probe_model(conv, sg)
        onnx.save(probe, root / "probe.onnx")
        _, probed = _board_run(root / "probe.onnx", root / "probe", xs)
        out_name = report["backend"]["outputs"][0]["name"]
        ours = []
        for p, final in zip(probed, plain):
            layer = {probes[k]: oracle.to_tflite_layout(conv, probes[k], v, sg.tensors[probes[k]].shape)
                     for k, v in p.items() if k in probes}
            layer[sg.outputs[0]] = final[out_name].reshape(sg.tensors[sg.outputs[0]].shape)
            ours.append(layer)
        cache[name] = dict(sg=sg, conv=conv, xs=xs, theirs=theirs, finals=finals, ours=ours, report=report,
                           plain=[p[out_name].reshape(f.shape) for p, f in zip(plain, finals)])
        return cache[name]

    return get


@pytest.mark.parametrize("name", INT8_MODELS)
def test_int8_model_is_bit_exact_with_tflite_micro(board_runs, name):
    """Every output value, and every operator's output tensor, identical to TFLite Micro's over 100
    seeded uniform int8 inputs (and the autoencoder's 40 real frames); operator 0 also against an
    independent numpy model of TFLite's double rounding from the file's parameters."""
    run = board_runs(name)
    sg, xs = run["sg"], run["xs"]
    assert len(xs) >= N_INPUTS
    assert run["report"]["backend"]["int8_arithmetic"] == "tflite"
    np.testing.assert_array_equal(np.stack(run["plain"]), np.stack(run["finals"]))
    diffs = oracle.first_difference(run["conv"], sg, run["ours"], run["theirs"])
    assert not diffs, [str(d) for d in diffs]
    compared = {t for t in run["ours"][0] if t in run["theirs"][0]}
    assert len(compared) >= len([o for o in sg.operators if o.op not in oracle.VIEW_OPS]) - 1
    t0 = sg.operators[0].outputs[0]
    for x, mine in zip(xs, run["ours"]):
        np.testing.assert_array_equal(_first_op_reference(sg, x, double_rounding), mine[t0])


@pytest.mark.parametrize("name", ["kws_dscnn_int8", "ad_autoencoder_int8"])
def test_onnx_arithmetic_is_within_one_step_of_tflite_micro_per_layer(tmp_path, name):
    """With ``--option int8_arithmetic=onnx`` (single rounding, the QDQ default), every operator
    cut out alone (oracle.layer_model), built and run on the board with TFLite Micro's own input
    tensors: at most 1 LSB from TFLite Micro's output (KWS's average pool and softmax exactly); the
    TFLite arithmetic is exact (test above)."""
    import edgekit
    from edgekit.plugins.harness.qemu import QemuRunner
    from edgekit.plugins.tflite.convert import TO_NCHW

    path = MODELS / f"{name}.tflite"
    sg = read(path)
    conv = convert(sg, name)
    tf = oracle.TflmOracle(path, preserve=True)
    activations = [t for t in range(len(sg.tensors)) if not sg.tensors[t].is_const]
    snaps = []
    for x in oracle.random_int8_inputs(sg, 20, seed=2):
        tf.run(x)
        snaps.append(tf.tensors(activations))
    context = edgekit.BuildContext(target=edgekit.Target.from_toml(TARGET), registry=None, options={})
    for op in sg.operators:
        if op.op in oracle.VIEW_OPS:
            continue
        model, ins, out = oracle.layer_model(conv, sg, op.index)
        onnx.save(model, tmp_path / f"op{op.index}.onnx")
        report = build(BuildRequest(model=str(tmp_path / f"op{op.index}.onnx"), target="cortex-m4",
                                    output=tmp_path / f"op{op.index}",
                                    options={"io": "int8", "int8_arithmetic": "onnx"}), default_registry())
        assert report["backend"]["int8_arithmetic"] == "onnx"
        feeds = [{f"in_t{t}": (s[t].transpose(TO_NCHW) if t in conv.nchw else s[t]).astype(np.int8) for t in ins}
                 for s in snaps]
        q = report["backend"]["outputs"][0]["quantization"]
        results = QemuRunner().run(tmp_path / f"op{op.index}", feeds, context)
        ours = np.stack([oracle.to_tflite_layout(conv, out, qmath.quantize(r.outputs["out"], q["scale"], q["zero_point"]),
                                                 sg.tensors[out].shape) for r in results]).astype(int)
        theirs = np.stack([s[out] for s in snaps]).astype(int)
        assert np.abs(ours - theirs).max() <= 1, (op.index, op.op)
        if op.op in ("AVERAGE_POOL_2D", "SOFTMAX"):
            np.testing.assert_array_equal(ours, theirs, err_msg=f"operator {op.index} ({op.op})")


def test_float_import_matches_the_tflite_interpreter(tmp_path):
    """A float CNN with every layout-sensitive op (written with the schema builders: no TensorFlow
    converter here), through onnxruntime and through the mcu-c build on the emulated board,
    against the TFLite interpreter's reference kernels: within 1e-5."""
    import onnxruntime as ort

    buf = tw.write(tw.float_cnn())
    path = tmp_path / "float_cnn.tflite"
    path.write_bytes(buf)
    interpreter = oracle.litert_reference(path)
    conv = convert(read_bytes(buf))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(conv.model.SerializeToString(), options)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1, 8, 6, 3)).astype(np.float32) for _ in range(4)]
    wants = []
    for x in xs:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        want = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
        wants.append(want)
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
        assert set(got) == set(want)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=1e-5, rtol=0, err_msg=k)
    # the layout: Transposes only at the input, the output cat6, and where the NHWC order is needed
    # (MEAN keeping H and C, RESHAPE flattening a [1,2,2,16] tensor)
    assert [n.op_type for n in conv.model.graph.node].count("Transpose") == 4
    import edgekit
    from edgekit.plugins.harness.qemu import QemuRunner

    build(BuildRequest(model=str(path), target="cortex-m4", output=tmp_path / "out"), default_registry())
    context = edgekit.BuildContext(target=edgekit.Target.from_toml(TARGET), registry=None, options={})
    for want, result in zip(wants, QemuRunner().run(tmp_path / "out", [{"input": x} for x in xs], context)):
        for k in want:
            np.testing.assert_allclose(result.outputs[k].reshape(want[k].shape), want[k], atol=1e-5, rtol=0, err_msg=k)


def test_unsupported_op_is_a_one_line_usage_error(tmp_path, edgekit_cli):
    m = tw.ModelSpec()
    x = m.add("x", (1, 4))
    y = m.add("y", (1, 4))
    z = m.add("z", (1, 4))
    m.op("RELU", [x], [y])
    m.op("EXP", [y], [z])
    m.inputs, m.outputs = [x], [z]
    path = tmp_path / "exp.tflite"
    path.write_bytes(tw.write(m))
    result = edgekit_cli("build", str(path), "--target", "cortex-m4", "-o", str(tmp_path / "out"))
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "operator 1 (EXP) is not supported" in lines[0], result.stderr


def test_corrupt_file_is_a_usage_error(tmp_path, edgekit_cli):
    path = tmp_path / "bad.tflite"
    path.write_bytes(b"\x18\x00\x00\x00TFL3" + b"\xff" * 40)
    result = edgekit_cli("build", str(path), "--target", "cortex-m4", "-o", str(tmp_path / "out"))
    assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def _report(out: Path) -> dict:
    import json

    return json.loads((out / "report.json").read_text())


def test_run_of_a_tflite_model_is_judged_by_tflite_micro(tmp_path, edgekit_cli):
    """`edgekit build kws.tflite --run`: the build rounds as TFLite Micro, so TFLite Micro judges the
    run (bit-exact), and the terminal says so."""
    out = tmp_path / "kws"
    result = edgekit_cli("build", str(MODELS / "kws_dscnn_int8.tflite"), "--target", "cortex-m4", "--run",
                         "--samples", "3", "-o", str(out))
    assert result.code == 0, result.stderr
    run = _report(out)["run"]
    tflm = run["references"]["tflite"]
    assert tflm["agrees"] is True and tflm["judges"] is True and run["judged_against"] == "TFLite Micro"
    assert tflm["identical_values"] == tflm["values"] == 3 * 12 and tflm["inputs"] == 3
    assert "bit-exact" in result.stdout and "TFLite Micro" in result.stdout


def test_a_difference_from_tflite_micro_names_the_first_differing_layer(tmp_path, edgekit_cli):
    """Built with the ONNX arithmetic instead (single rounding), the run is judged by the model's
    exact QDQ arithmetic and passes; the TFLite Micro comparison differs, and the report names the
    first operator whose output differs (found by probing every operator's output on the board)."""
    out = tmp_path / "kws"
    result = edgekit_cli("build", str(MODELS / "kws_dscnn_int8.tflite"), "--target", "cortex-m4", "--run",
                         "--samples", "5", "--option", "int8_arithmetic=onnx", "-o", str(out))
    assert result.code == 0, result.stderr
    run = _report(out)["run"]
    tflm = run["references"]["tflite"]
    assert tflm["agrees"] is False and tflm["judges"] is False and run["judged_against"] == "float64"
    first = tflm["first_difference"]
    assert (first["op_index"], first["op"]) == (0, "CONV_2D") and 0 < first["differing_values"] < first["values"]
    assert first["max_lsb"] == 1
    assert "first differing layer: operator 0 (CONV_2D)" in result.stdout.replace("\n", " ")


def test_run_of_a_float_tflite_model_is_compared_with_tflite_micro(tmp_path, edgekit_cli):
    path = tmp_path / "float_cnn.tflite"
    path.write_bytes(tw.write(tw.float_cnn()))
    out = tmp_path / "out"
    result = edgekit_cli("build", str(path), "--target", "cortex-m4", "--run", "--samples", "3", "-o", str(out))
    assert result.code == 0, result.stderr
    tflm = _report(out)["run"]["references"]["tflite"]
    assert tflm["agrees"] is True and tflm["judges"] is False and tflm["max_abs_error"] <= 1e-5


def test_requantize_tflite_is_tflites_double_rounding():
    """qmath.requantize_tflite (the Python reference of ek_requantize_tflite) against the numpy
    model of gemmlowp's SaturatingRoundingDoublingHighMul + RoundingDivideByPOT above, over
    accumulators up to +-2^24, every multiplier range and left and right shifts; and it does differ
    from the single rounding of qmath.requantize (else the two arithmetics would be one)."""
    rng = np.random.default_rng(5)
    acc = rng.integers(-(1 << 24), 1 << 24, size=200_000, dtype=np.int64)
    acc[:4] = [0, -1, 1, -(1 << 24)]
    multiplier = rng.integers(1 << 30, (1 << 31) - 1, size=acc.size, dtype=np.int64)
    shift = rng.integers(-20, 2, size=acc.size, dtype=np.int64)
    np.testing.assert_array_equal(qmath.requantize_tflite(acc, multiplier, shift),
                                  double_rounding(acc, multiplier, shift))
    assert (qmath.requantize_tflite(acc, multiplier, shift) != qmath.requantize(acc, multiplier, shift)).any()


def test_unknown_int8_arithmetic_is_a_usage_error(tmp_path, edgekit_cli):
    result = edgekit_cli("build", str(MODELS / "ad_autoencoder_int8.tflite"), "--target", "cortex-m4",
                         "--option", "int8_arithmetic=cmsis", "-o", str(tmp_path / "out"))
    assert result.code == 2 and not (tmp_path / "out").exists(), result.stderr
    assert "int8_arithmetic=cmsis" in result.stderr and "int8_arithmetic=tflite" in result.stderr


def test_int8_ops_beyond_mlperf_tiny_are_bit_exact_with_tflite_micro(tmp_path, edgekit_cli):
    """RELU, PAD, MAX_POOL_2D, MUL, RELU6, CONCATENATION, MEAN, LOGISTIC and TANH in int8
    (tflite_writer.int8_ops), 50 uniform int8 inputs over the whole range: every output value
    identical to TFLite Micro's, and the outputs are not degenerate (LOGISTIC and TANH span many
    levels)."""
    path = tmp_path / "int8_ops.tflite"
    path.write_bytes(tw.write(tw.int8_ops()))
    sg = read(path)
    x = sg.tensors[sg.inputs[0]]
    scale, zero_point = float(x.quant.scale[0]), int(x.quant.zero_point[0])
    qs = np.stack([v[0] for v in oracle.random_int8_inputs(sg, 50, seed=3)])
    np.save(tmp_path / "x.npy", ((qs.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32))
    out = tmp_path / "out"
    result = edgekit_cli("build", str(path), "--target", "cortex-m4", "--run", "--inputs", str(tmp_path / "x.npy"),
                         "-o", str(out))
    assert result.code == 0, result.stderr
    tflm = _report(out)["run"]["references"]["tflite"]
    assert tflm["agrees"] is True and tflm["inputs"] == 50, tflm["summary"]
    tf = oracle.TflmOracle(path)
    finals = [tf.run([q]) for q in qs]
    for k in (0, 1):  # LOGISTIC, TANH
        assert len(np.unique(np.stack([f[k] for f in finals]))) > 20
