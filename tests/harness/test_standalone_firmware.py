"""The standalone image (`edgekit run OUT --save-firmware PATH`, `--option save_firmware=PATH`,
`keep_firmware=true`): one ELF that runs the model on the run's inputs under a plain QEMU command,
with no loader and no other file, and prints outputs that agree with onnxruntime."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import TARGETS, context_for, random_inputs
from onnx import TensorProto, helper

import edgekit
from edgekit.model import load_model
from edgekit.plugins.harness.compile import WARNINGS
from edgekit.plugins.harness.firmware import FIRMWARE_DIR
from edgekit.plugins.harness.host import HostRunner
from edgekit.plugins.harness.metadata import LibraryMeta
from edgekit.plugins.harness.standalone import data_source
from edgekit.registry import default_registry
from edgekit.verify import compare, quantized_outputs, run_onnxruntime
from tests.conftest import run_edgekit

# Names a C identifier or a terminal cannot take as they are: they must go through edgekit.naming.
IMAGE, PRIOR, SCORES, EVIDENCE = "image:0", "prior", "scores/softmax", "evidence"


def two_in_two_out(path: Path) -> Path:
    """image → Conv 3x3 + ReLU → MaxPool → Gemm → logits; scores = Softmax(logits + prior),
    evidence = ReLU(logits): two inputs and two outputs, to keep their order honest."""
    rng = np.random.default_rng(7)
    inits = [
        helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], rng.normal(0, 0.3, 108).astype(np.float32)),
        helper.make_tensor("bias", TensorProto.FLOAT, [4], rng.normal(0, 0.1, 4).astype(np.float32)),
        helper.make_tensor("fw", TensorProto.FLOAT, [5, 64], rng.normal(0, 0.2, 320).astype(np.float32)),
        helper.make_tensor("fb", TensorProto.FLOAT, [5], rng.normal(0, 0.1, 5).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", [IMAGE, "w", "bias"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1, name="fc"),
        helper.make_node("Add", ["logits", PRIOR], ["h"], name="add"),
        helper.make_node("Softmax", ["h"], [SCORES], axis=1, name="softmax"),
        helper.make_node("Relu", ["logits"], [EVIDENCE], name="evidence"),
    ]
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info(IMAGE, TensorProto.FLOAT, [1, 3, 8, 8]),
                       helper.make_tensor_value_info(PRIOR, TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, [1, 5]),
         helper.make_tensor_value_info(EVIDENCE, TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def samples(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{IMAGE: rng.normal(size=(1, 3, 8, 8)).astype(np.float32),
             PRIOR: rng.normal(size=(1, 5)).astype(np.float32)} for _ in range(n)]


def save_npz(path: Path, feeds: list[dict[str, np.ndarray]]) -> Path:
    np.savez(path, **{name: np.stack([f[name] for f in feeds]) for name in feeds[0]})
    return path


BUILDS = {  # name: (target, extra build flags)
    "cortex-m4-float": ("cortex-m4", []),
    "cortex-m4-int8": ("cortex-m4", ["--quantize", "int8", "--option", "io=int8"]),
    "cortex-m0plus-float": ("cortex-m0plus", []),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The model built three ways; the float Cortex-M4 build runs with keep_firmware and
    save_firmware, so `edgekit build --run` saves an image too."""
    root = tmp_path_factory.mktemp("standalone")
    model = two_in_two_out(root / "two.onnx")
    build_feeds = samples(2, seed=1)
    inputs = save_npz(root / "build_inputs.npz", build_feeds)
    outs = {}
    for name, (target, flags) in BUILDS.items():
        out = root / name
        extra = (["--run", "--option", "keep_firmware=true", "--option", f"save_firmware={root / 'built.elf'}"]
                 if name == "cortex-m4-float" else [])
        done = run_edgekit("build", str(model), "-t", target, "-o", str(out), "--inputs", str(inputs), "-q",
                           *flags, *extra)
        assert done.code == 0, done.stderr
        outs[name] = out
    # before any `edgekit run` of that output directory keeps another image there
    kept = (outs["cortex-m4-float"] / "firmware" / "standalone.elf").read_bytes()
    return {"root": root, "outs": outs, "build_feeds": build_feeds, "built_elf": root / "built.elf", "kept": kept}


def plain_qemu(elf: Path, target: str) -> str:
    """Run the image as a firmware engineer would: the board, the kernel, nothing else."""
    emulator = edgekit.Target.from_toml(TARGETS / f"{target}.toml").emulator
    done = subprocess.run(["qemu-system-arm", "-M", emulator.machine, "-cpu", emulator.cpu, "-nographic",
                           "-monitor", "none", "-nic", "none", "-no-reboot", "-kernel", str(elf)],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("ascii")


_SAMPLE = re.compile(r"sample (\d+): status (-?\d+), stack (\d+) bytes")
_OUTPUT = re.compile(r"output (\d+) '(.*)': (\w+) \[([\d, ]*)\](?:, scale (\S+), zero point (-?\d+))?")


def parse(text: str) -> list[dict[str, np.ndarray]]:
    """The printed outputs, dequantized with the printed scale and zero point (float32, as ONNX's
    DequantizeLinear)."""
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    assert lines[-1] == "edgekit: done", text[-500:]
    parsed: list[dict] = []
    current = None
    for line in lines:
        if (m := _SAMPLE.fullmatch(line)) is not None:
            assert int(m[1]) == len(parsed) and int(m[2]) == 0 and int(m[3]) > 0, line
            parsed.append({})
        elif (m := _OUTPUT.fullmatch(line)) is not None:
            current = {"shape": [int(d) for d in m[4].split(",")], "dtype": m[3], "scale": m[5], "zp": m[6],
                       "values": []}
            parsed[-1][m[2]] = current
        elif line.startswith("  "):
            current["values"] += line.split()
    results = []
    for outputs in parsed:
        arrays = {}
        for name, out in outputs.items():
            if out["dtype"] == "float32":
                array = np.array([float(v) for v in out["values"]], dtype=np.float32)
            else:
                q = np.array([int(v) for v in out["values"]], dtype=np.int32)
                array = (q - int(out["zp"])).astype(np.float32) * np.float32(float(out["scale"]))
            arrays[name] = array.reshape(out["shape"])
        results.append(arrays)
    return results


def assert_matches_onnxruntime(out: Path, feeds: list[dict[str, np.ndarray]], printed: list[dict]) -> None:
    """Within the tolerance a harness run is held to: the mcu-c back end's, and for quantized
    outputs its allowance in quantization steps."""
    reference = load_model(out / "reference.onnx")
    backend = default_registry().get("backends", "mcu-c")
    expected = run_onnxruntime(reference, feeds)
    assert len(printed) == len(feeds)
    assert all(set(p) == {SCORES, EVIDENCE} for p in printed)
    result = compare(expected, printed, backend.tolerance, quantized_outputs(reference),
                     backend.quantized_tolerance_steps)
    assert result.within(), result


@pytest.mark.parametrize("name", list(BUILDS))
def test_edgekit_run_saves_an_image_that_runs_alone(built, name, tmp_path):
    out, target = built["outs"][name], BUILDS[name][0]
    feeds = samples(3, seed=5)
    elf = tmp_path / "model.elf"
    elf.write_bytes(b"an older file, replaced whole")
    done = run_edgekit("run", str(out), "--input", str(save_npz(tmp_path / "inputs.npz", feeds)),
                       "--save-firmware", str(elf))
    assert done.code == 0, done.stderr
    machine = edgekit.Target.from_toml(TARGETS / f"{target}.toml").emulator.machine
    assert f"standalone_firmware: {elf}" in done.stdout
    printed_command = next(line for line in done.stdout.splitlines() if "standalone_firmware_command:" in line)
    command = shlex.split(printed_command.split(": ", 1)[1])
    assert command[:3] == ["qemu-system-arm", "-M", machine] and command[-2:] == ["-kernel", str(elf)]
    assert "-no-reboot" in command and "-device" not in command and "-semihosting" not in command
    assert elf.read_bytes()[:4] == b"\x7fELF"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    printed = parse(plain_qemu(elf, target))
    assert_matches_onnxruntime(out, feeds, printed)


def test_build_run_saves_and_keeps_the_image(built):
    """`edgekit build --run --option save_firmware=PATH --option keep_firmware=true`: the image of
    the build's verification inputs, at PATH and in OUT/firmware/; the option is not kept in
    report.json (a later `edgekit run` would write PATH again)."""
    import json

    out, elf = built["outs"]["cortex-m4-float"], built["built_elf"]
    assert built["kept"] == elf.read_bytes()
    assert (out / "firmware" / "app.elf").is_file()
    report = json.loads((out / "report.json").read_text())
    assert "save_firmware" not in report["options"] and report["options"]["keep_firmware"] is True
    assert report["run"]["measurements"]["standalone_firmware"] == str(elf)
    printed = parse(plain_qemu(elf, "cortex-m4"))
    assert_matches_onnxruntime(out, built["build_feeds"], printed)


@pytest.mark.parametrize("where", ["a directory", "/proc/model.elf", "missing/model.elf", "a file/model.elf"])
def test_a_bad_path_is_a_usage_error_naming_it(built, tmp_path, where):
    (tmp_path / "a file").write_text("not a directory")
    path = {"a directory": str(tmp_path), "/proc/model.elf": "/proc/model.elf"}.get(where, str(tmp_path / where))
    done = run_edgekit("run", str(built["outs"]["cortex-m0plus-float"]), "--save-firmware", path)
    assert done.code == 2, done.stderr
    assert path in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.elf"))


def test_runners_without_firmware_refuse_the_option(fake_artifact, tmp_path):
    with pytest.raises(edgekit.UsageError, match="'host' runner saves no firmware image"):
        HostRunner().run(fake_artifact, random_inputs(1), context_for("cortex-m4", save_firmware=str(tmp_path / "x")))


def hostile_meta() -> LibraryMeta:
    """Names from a model: a comment end, a quote, a trigraph, a line break, an escape character,
    two that make the same identifier; values C spells differently (NaN, infinities, INT32_MIN)."""
    tensors = [
        {"name": 'a*/ "??/\n', "shape": [3], "dtype": "float32"},
        {"name": 'a*/ "??/\r', "shape": [2], "dtype": "int32"},
        {"name": "int", "shape": [0], "dtype": "int8"},
    ]
    return LibraryMeta.from_dict({
        "name": "model", "header": "model.h", "sources": ["model.c"], "run_function": "model_run_io",
        "inputs": tensors, "outputs": [{"name": "\x1b[2Jout", "shape": [1, 2], "dtype": "int8",
                                        "quantization": {"scale": 0.5, "zero_point": -3}}]}, "test")


def test_generated_data_compiles_cleanly_for_every_profile(tmp_path):
    meta = hostile_meta()
    feeds = [{meta.inputs[0].name: np.array([np.nan, -np.inf, -0.0], dtype=np.float32),
              meta.inputs[1].name: np.array([-2**31, 2**31 - 1], dtype=np.int32),
              meta.inputs[2].name: np.zeros(0, dtype=np.int8)}]
    source = data_source(meta, feeds)
    assert "\x1b" not in source and "\r" not in source
    assert "NAN, -INFINITY, -0.0f" in source and "(-2147483647 - 1), 2147483647" in source
    idents = re.findall(r"static const \w+ (\w+)\[", source)
    assert len(idents) == len(set(idents)) == 3
    path = tmp_path / "ek_standalone_data.c"
    path.write_text(source)
    for target in ("cortex-m0plus", "cortex-m4", "cortex-m7"):
        toolchain = edgekit.Target.from_toml(TARGETS / f"{target}.toml").toolchain
        done = subprocess.run([toolchain.cc, *toolchain.cflags, *WARNINGS, f"-I{FIRMWARE_DIR}", "-c", str(path),
                               "-o", str(tmp_path / f"{target}.o")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


FLOAT_PROBE = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ek_console.h"
#include "ek_uart.h"

void ek_uart_init(void) {}
void ek_uart_putc(uint8_t byte) { putchar(byte); }
uint8_t ek_uart_getc(void) { return 0; }
void ek_uart_flush(void) {}
void ek_system_reset(void) { abort(); }   /* not reached: nothing fails or exits here */

int main(void)
{
    uint32_t state = 2463534242u;      /* xorshift32: every bit pattern class, deterministic */
    static const uint32_t edges[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x007FFFFFu, 0x00800000u,
                                     0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F800000u, 0xFF800000u, 0x7FC00000u,
                                     0x3F800000u, 0x411FFFFFu, 0x3DCCCCCDu};
    for (uint32_t i = 0; i < 200013u; i++) {
        uint32_t bits;
        float value;
        if (i < sizeof edges / sizeof edges[0]) {
            bits = edges[i];
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            bits = state;
        }
        memcpy(&value, &bits, sizeof value);
        printf("%08x ", (unsigned)bits);
        ek_console_put_float(value);
        ek_console_putc('\n');
    }
    return 0;
}
"""


def test_printed_floats_give_the_float_back_exactly(tmp_path):
    """ek_console_put_float (no printf, no heap) over edge cases and 200,000 bit patterns, built on
    the host under the sanitizers: nine digits, parsed back, are the same float32."""
    from edgekit.plugins.harness.host import SANITIZE

    probe = tmp_path / "probe.c"
    probe.write_text(FLOAT_PROBE)
    program = tmp_path / "probe"
    done = subprocess.run(["gcc", *WARNINGS, "-O1", *SANITIZE, f"-I{FIRMWARE_DIR}", str(probe),
                           str(FIRMWARE_DIR / "ek_console.c"), "-o", str(program)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = subprocess.run([str(program)], capture_output=True, check=True, timeout=60).stdout.decode("ascii")
    assert "\n" not in out.replace("\r\n", "")  # every line ends in CR LF
    pairs = [line.split() for line in out.split("\r\n") if line]
    assert len(pairs) == 200013
    bits = np.array([int(b, 16) for b, _ in pairs], dtype=np.uint32)
    printed = np.array([float(text) for _, text in pairs], dtype=np.float32)
    nan = np.isnan(bits.view(np.float32))
    assert np.array_equal(printed.view(np.uint32)[~nan], bits[~nan]) and np.isnan(printed[nan]).all()
    assert all(re.fullmatch(r"-?(\d\.\d{8}e[+-]\d\d|inf|nan)", text) for _, text in pairs)
    assert pairs[0][1] == "0.00000000e+00" and pairs[1][1] == "-0.00000000e+00" and pairs[10][1] == "1.00000000e+00"
