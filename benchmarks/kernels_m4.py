"""Executed instructions per MAC of edgekit's float32 conv/gemm kernels on an emulated Cortex-M4.

For each layer shape of ResNet-8 (conv), the autoencoder (fully-connected Gemm) and, for
information, DS-CNN KWS's depthwise and pointwise convs, with random
weights, this builds one bare-metal ELF per optimisation level (arm-none-eabi-gcc 12,
-mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard; the harness's start-up code, markers and
linker script), runs it on ``qemu-system-arm -M mps2-an386 -cpu cortex-m4`` under the harness's
counting plugin and reports the exact instructions executed between ``ek_harness_begin`` and
``ek_harness_end`` around the one kernel call: instructions, not cycles. Each firmware also
checks its output against a float64 numpy reference (|err| <= 1e-5 * sum of |terms|) and exits
non-zero on a mismatch, so a figure is only printed for a kernel that computed the right thing.

    .venv/bin/python benchmarks/kernels_m4.py                 # all layers, -O2 and -Os
    .venv/bin/python benchmarks/kernels_m4.py --opt -O2 --only conv --json out.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.plugins.harness import counting
from edgekit.plugins.harness.compile import WARNINGS, compile_objects, run_tool
from edgekit.plugins.harness.firmware import (FIRMWARE_DIR, LINK_SPECS, MemoryMap, harness_program_sources,
                                              linker_script)
from edgekit.plugins.mcu.weight_layout import (conv2d_scratch_floats, pack_conv2d_weights,
                                               pack_conv_transpose2d_weights, pack_gemm_weights)

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "plugins" / "mcu" / "kernels"
CC = "arm-none-eabi-gcc"
# Compiler flags and emulated board per target (the M4 is the default and the point of this
# script; the others check that the same kernels run correctly elsewhere).
TARGETS = {
    "cortex-m4": (["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
                  dict(machine="mps2-an386", cpu="cortex-m4")),
    "cortex-m7": (["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
                  dict(machine="mps2-an500", cpu="cortex-m7")),
    "cortex-m0plus": (["-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"],
                      dict(machine="mps2-an385", cpu="cortex-m3")),
}
M4_FLAGS = TARGETS["cortex-m4"][0]
MEMORY = MemoryMap(flash_base=0x0, flash_bytes=4 << 20, ram_base=0x20000000, ram_bytes=4 << 20)
RTOL = 1e-5


@dataclass(frozen=True)
class Conv:
    """An NCHW conv layer (batch 1, k x k kernel, input size x size unless width is given,
    Relu fused unless relu=False, groups: grouped / depthwise)."""
    name: str
    in_c: int
    size: int
    out_c: int
    k: int
    stride: int
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    relu: bool = True
    groups: int = 1
    width: int = 0  # 0: same as size

    @property
    def in_hw(self) -> tuple[int, int]:
        return self.size, self.width or self.size

    @property
    def out_hw(self) -> tuple[int, int]:
        top, left, bottom, right = self.pads
        h, w = self.in_hw
        return ((h + top + bottom - self.k) // self.stride + 1,
                (w + left + right - self.k) // self.stride + 1)

    @property
    def macs(self) -> int:
        oh, ow = self.out_hw
        return self.out_c * oh * ow * (self.in_c // self.groups) * self.k * self.k


@dataclass(frozen=True)
class Deconv:
    """A ConvTranspose layer (batch 1, square, k x k, stride, symmetric pad, groups 1)."""
    name: str
    in_c: int
    size: int
    out_c: int
    k: int
    stride: int
    pad: int
    out_pad: int = 0
    relu: bool = True

    @property
    def out_size(self) -> int:
        return self.stride * (self.size - 1) + self.out_pad + self.k - 2 * self.pad

    @property
    def macs(self) -> int:  # every input pixel meets every kernel tap (edges cropped included)
        return self.in_c * self.size ** 2 * self.out_c * self.k * self.k


@dataclass(frozen=True)
class Dense:
    """A batch-1 fully-connected ONNX Gemm (transB = 1, bias [n], Relu fused unless relu=False)."""
    name: str
    k: int
    n: int
    relu: bool = True

    @property
    def macs(self) -> int:
        return self.k * self.n


SAME1, UPPER = (1, 1, 1, 1), (0, 0, 1, 1)
LAYERS = [
    Conv("resnet8 conv 3->16 32x32 k3 s1", 3, 32, 16, 3, 1, SAME1),
    Conv("resnet8 conv 16->16 32x32 k3 s1", 16, 32, 16, 3, 1, SAME1),
    Conv("resnet8 conv 16->32 32x32 k3 s2", 16, 32, 32, 3, 2, UPPER),
    Conv("resnet8 conv 32->32 16x16 k3 s1", 32, 16, 32, 3, 1, SAME1),
    Conv("resnet8 conv 16->32 32x32 k1 s2", 16, 32, 32, 1, 2, (0, 0, 0, 0)),
    Conv("resnet8 conv 32->64 16x16 k3 s2", 32, 16, 64, 3, 2, UPPER),
    Conv("resnet8 conv 64->64 8x8 k3 s1", 64, 8, 64, 3, 1, SAME1),
    Conv("resnet8 conv 32->64 16x16 k1 s2", 32, 16, 64, 1, 2, (0, 0, 0, 0)),
    Conv("kws dwconv 64 25x5 k3 s1", 64, 25, 64, 3, 1, SAME1, groups=64, width=5),
    Conv("kws conv 64->64 25x5 k1 s1", 64, 25, 64, 1, 1, (0, 0, 0, 0), width=5),
    Deconv("decoder convtranspose 16->8 16x16 k4 s2 p1", 16, 16, 8, 4, 2, 1),
    Dense("autoencoder fc 640->128", 640, 128),
    Dense("autoencoder fc 128->128", 128, 128),
    Dense("autoencoder fc 128->8", 128, 8),
    Dense("autoencoder fc 8->128", 8, 128),
    Dense("autoencoder fc 128->640", 128, 640),
]
# How often each shape runs in one inference (for the model-level weighted figure).
USES = {"resnet8 conv 16->16 32x32 k3 s1": 2, "autoencoder fc 128->128": 6,
        "kws dwconv 64 25x5 k3 s1": 4, "kws conv 64->64 25x5 k1 s1": 4}


def _c_floats(values: np.ndarray) -> str:
    return ",".join(f"{v:.8e}f" if np.isfinite(v) else ("INFINITY" if v > 0 else "-INFINITY")
                    for v in np.asarray(values, np.float32).ravel())


def _conv_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, layer: Conv):
    """float64 direct conv and the sum of |terms| per output (the rounding scale)."""
    top, left, bottom, right = layer.pads
    s, (oh, ow) = layer.stride, layer.out_hw
    xp = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right)))
    out = np.zeros((layer.out_c, oh, ow)) + b[:, None, None]
    mag = np.zeros_like(out) + np.abs(b)[:, None, None]
    icg, ocg = layer.in_c // layer.groups, layer.out_c // layer.groups
    for g in range(layer.groups):
        o_sl, i_sl = slice(g * ocg, (g + 1) * ocg), slice(g * icg, (g + 1) * icg)
        for i in range(layer.k):
            for j in range(layer.k):
                patch = xp[i_sl, i:i + s * oh:s, j:j + s * ow:s]
                out[o_sl] += np.einsum("oc,chw->ohw", w[o_sl, :, i, j], patch)
                mag[o_sl] += np.einsum("oc,chw->ohw", np.abs(w[o_sl, :, i, j]), np.abs(patch))
    return out, mag


def _deconv_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray, layer: Deconv):
    """float64 ConvTranspose by scattering each kernel tap, then cropping the pads."""
    s, k, size = layer.stride, layer.k, layer.size
    full = s * (size - 1) + k + layer.out_pad
    out = np.zeros((layer.out_c, full, full))
    mag = np.zeros_like(out)
    for i in range(k):
        for j in range(k):
            out[:, i:i + s * size:s, j:j + s * size:s] += np.einsum("co,chw->ohw", w[:, :, i, j], x)
            mag[:, i:i + s * size:s, j:j + s * size:s] += np.einsum(
                "co,chw->ohw", np.abs(w[:, :, i, j]), np.abs(x))
    crop = slice(layer.pad, layer.pad + layer.out_size)
    return (out[:, crop, crop] + b[:, None, None],
            mag[:, crop, crop] + np.abs(b)[:, None, None])


def layer_main(layer, rng: np.random.Generator) -> str:
    """C source of the firmware's main: const data, one marked kernel call, the output check."""
    if isinstance(layer, Conv):
        x = rng.uniform(-1, 1, (layer.in_c, *layer.in_hw)).astype(np.float32)
        w = rng.uniform(-1, 1, (layer.out_c, layer.in_c // layer.groups, layer.k, layer.k))
        w = w.astype(np.float32)
        b = rng.uniform(-1, 1, layer.out_c).astype(np.float32)
        ref, mag = _conv_reference(x, w.astype(np.float64), b.astype(np.float64), layer)
        top, left, bottom, right = layer.pads
        params = dict(n=1, in_c=layer.in_c, in_h=layer.in_hw[0], in_w=layer.in_hw[1], out_c=layer.out_c,
                      out_h=layer.out_hw[0], out_w=layer.out_hw[1], k_h=layer.k, k_w=layer.k,
                      stride_h=layer.stride, stride_w=layer.stride, dil_h=1, dil_w=1,
                      pad_top=top, pad_left=left, pad_bottom=bottom, pad_right=right,
                      groups=layer.groups)
        packed = pack_conv2d_weights(w, params)
        scratch = conv2d_scratch_floats(params)
        header, ptype, call = ("ek_conv.h", "ek_conv2d_params",
                               "ek_conv2d_f32(&params, input, weights, bias, output, scratch)")
    elif isinstance(layer, Deconv):
        x = rng.uniform(-1, 1, (layer.in_c, layer.size, layer.size)).astype(np.float32)
        w = rng.uniform(-1, 1, (layer.in_c, layer.out_c, layer.k, layer.k)).astype(np.float32)
        b = rng.uniform(-1, 1, layer.out_c).astype(np.float32)
        ref, mag = _deconv_reference(x.astype(np.float64), w.astype(np.float64),
                                     b.astype(np.float64), layer)
        o = layer.out_size
        params = dict(n=1, in_c=layer.in_c, in_h=layer.size, in_w=layer.size, out_c=layer.out_c,
                      out_h=o, out_w=o, k_h=layer.k, k_w=layer.k, stride_h=layer.stride,
                      stride_w=layer.stride, dil_h=1, dil_w=1, pad_top=layer.pad,
                      pad_left=layer.pad, pad_bottom=layer.pad, pad_right=layer.pad, groups=1)
        packed = pack_conv_transpose2d_weights(w, params)
        scratch = 0
        header, ptype, call = ("ek_conv.h", "ek_conv_transpose2d_params",
                               "ek_conv_transpose2d_f32(&params, input, weights, bias, output)")
    else:
        x = rng.uniform(-1, 1, layer.k).astype(np.float32)
        w = rng.uniform(-1, 1, (layer.n, layer.k)).astype(np.float32)  # ONNX B with transB = 1
        b = rng.uniform(-1, 1, layer.n).astype(np.float32)
        ref = w.astype(np.float64) @ x + b
        mag = np.abs(w.astype(np.float64)) @ np.abs(x) + np.abs(b)
        params = dict(m=1, n=layer.n, k=layer.k, trans_a=0, trans_b=1, b_packed=1, alpha=1.0,
                      beta=1.0, c_stride_m=0, c_stride_n=1)
        packed = pack_gemm_weights(w, params)
        scratch = 0
        header, ptype, call = ("ek_gemm.h", "ek_gemm_params",
                               "ek_gemm_f32(&params, input, weights, bias, output)")
    expected = np.maximum(ref, 0.0) if layer.relu else ref
    act_min = "0.0f" if layer.relu else "-INFINITY"
    bound = RTOL * mag + 1e-12
    fields = ", ".join(f".{k} = {v}" for k, v in params.items())
    n_out = expected.size
    return f"""/* generated by benchmarks/kernels_m4.py: {layer.name} */
#include <math.h>
#include "{header}"
#include "ek_harness.h"

static const {ptype} params = {{ {fields}, .act_min = {act_min}, .act_max = INFINITY }};
static const float weights[] = {{ {_c_floats(packed)} }};
static const float bias[] = {{ {_c_floats(b)} }};
static const float input_init[] = {{ {_c_floats(x)} }};
static const float expected[] = {{ {_c_floats(expected)} }};
static const float bound[] = {{ {_c_floats(bound)} }};
static float input[sizeof input_init / sizeof input_init[0]];
static float output[{n_out}];
{f"static float scratch[{scratch}];" if scratch else ""}

int main(void)
{{
    unsigned i, bad = 0;
    for (i = 0; i < sizeof input / sizeof input[0]; i++) {{
        input[i] = input_init[i]; /* activations live in RAM, as in a generated model */
    }}
    ek_harness_begin();
    {call};
    ek_harness_end();
    for (i = 0; i < {n_out}u; i++) {{
        if (!(fabsf(output[i] - expected[i]) <= bound[i])) {{
            bad++;
        }}
    }}
    return bad ? 10 : 0;
}}
"""


def build_elf(layer, opt: str, work: Path, seed: int, target: str = "cortex-m4") -> Path:
    work.mkdir(parents=True, exist_ok=True)
    main = work / "bench_main.c"
    main.write_text(layer_main(layer, np.random.default_rng(seed)), encoding="utf-8")
    cpu_flags = TARGETS[target][0]
    flags = [*cpu_flags, opt, "-ffunction-sections", "-fdata-sections", *WARNINGS,
             f"-I{KERNELS}", f"-I{FIRMWARE_DIR}"]
    kernel = "ek_gemm.c" if isinstance(layer, Dense) else "ek_conv.c"
    # The harness start-up, markers and UART frames (exit status): no semihosting.
    units = [(KERNELS / kernel, flags), (main, flags)] + [
        (src, flags) for src in harness_program_sources(TARGETS[target][1]["machine"])]
    objects = compile_objects(CC, units, work / "obj", f"benchmark {layer.name}")
    script = work / "app.ld"
    script.write_text(linker_script(MEMORY, 16 * 1024, 4 * 1024), encoding="utf-8")
    elf = work / "app.elf"
    run_tool([CC, *cpu_flags, opt, "-nostartfiles", *LINK_SPECS,
              "-Wl,--gc-sections", "-T", str(script), *map(str, objects), "-lm", "-o", str(elf)],
             f"linking benchmark {layer.name}")
    return elf


def measure(layer, opt: str, root: Path, seed: int, target: str = "cortex-m4") -> dict:
    slug = re.sub(r"[^a-z0-9]+", "_", f"{layer.name}_{opt}_{target}".lower())
    elf = build_elf(layer, opt, root / slug, seed, target)
    run = counting.run_counted(elf, marks=["ek_harness_begin", "ek_harness_end"], **TARGETS[target][1])
    spans = run.between("ek_harness_begin", "ek_harness_end")
    if run.exit_code != 0 or len(spans) != 1:
        raise RuntimeError(f"{layer.name} {opt}: firmware exit {run.exit_code} (10 = wrong output), "
                           f"spans {spans}; stderr: {run.stderr.strip()[:300]}")
    return dict(layer=layer.name, opt=opt, target=target, macs=layer.macs, instructions=spans[0],
                per_mac=spans[0] / layer.macs)


def kernel_code_sizes() -> dict[str, dict[str, int]]:
    """.text bytes of each kernel object for the M4 at -O2 and -Os (arm-none-eabi-size)."""
    sizes: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for opt in ("-O2", "-Os"):
            for src in ("ek_conv.c", "ek_gemm.c"):
                obj = Path(tmp) / f"{src}{opt}.o"
                subprocess.run([CC, *M4_FLAGS, opt, *WARNINGS, f"-I{KERNELS}", "-c",
                                str(KERNELS / src), "-o", str(obj)], check=True)
                text = subprocess.run(["arm-none-eabi-size", str(obj)], check=True,
                                      capture_output=True, text=True).stdout.splitlines()[1]
                sizes.setdefault(src, {})[opt] = int(text.split()[0])
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opt", action="append", choices=["-O2", "-Os"],
                    help="optimisation level(s) (default: both)")
    ap.add_argument("--only", default="", help="substring of the layer names to run")
    ap.add_argument("--target", choices=sorted(TARGETS), default="cortex-m4",
                    help="other targets: correctness and their own counts (default cortex-m4)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep the ELFs and sources in this directory")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    opts = args.opt or ["-O2", "-Os"]
    layers = [layer for layer in LAYERS if args.only in layer.name]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ek-kbench-") as tmp:
        root = args.keep or Path(tmp)
        jobs = [(layer, opt) for layer in layers for opt in opts]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(lambda j: measure(j[0], j[1], root, args.seed, args.target), jobs))
    by = {(r["layer"], r["opt"]): r for r in results}
    print(f"target {args.target} (instructions between the markers around one kernel call)")
    print(f"{'layer':38s} {'MACs':>10s}" + "".join(f" {o + ' instr':>13s} {'/MAC':>6s}" for o in opts))
    for layer in layers:
        row = f"{layer.name:38s} {layer.macs:10,d}"
        for opt in opts:
            r = by[(layer.name, opt)]
            row += f" {r['instructions']:13,d} {r['per_mac']:6.2f}"
        print(row)
    for family in ("resnet8", "kws", "decoder", "autoencoder"):
        chosen = [layer for layer in layers if layer.name.startswith(family)]
        if not chosen:
            continue
        row = f"{family + ' (weighted by use)':38s}"
        macs = sum(layer.macs * USES.get(layer.name, 1) for layer in chosen)
        row += f" {macs:10,d}"
        for opt in opts:
            ins = sum(by[(layer.name, opt)]["instructions"] * USES.get(layer.name, 1) for layer in chosen)
            row += f" {ins:13,d} {ins / macs:6.2f}"
        print(row)
    sizes = kernel_code_sizes()
    print("kernel .text bytes (M4): " + ", ".join(
        f"{src} {s['-O2']} (-O2) / {s['-Os']} (-Os)" for src, s in sizes.items()))
    print(f"({len(results)} runs in {time.time() - started:.0f} s; instructions, not cycles)")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "text_bytes": sizes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
