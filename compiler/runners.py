"""Runners for the TVM back end's CPU artifacts.

``qemu-user``: the aarch64 loader program (``run_model``, linked against the shipped library) under
``qemu-aarch64 -L /usr/aarch64-linux-gnu``, with the harness's TCG counting plugin reporting the
exact instructions between the two marker functions around the inference (instructions, not time).
``tvm-host``: the x86-64 library through the generated Python loader, natively, timed.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from pathlib import Path



import edgekit

TIMING_REPEATS_OPTION = "timing_repeats"
DEFAULT_TIMING_REPEATS = 50


def _artifact(context: edgekit.BuildContext) -> dict:
    meta = context.report.get("backend", {})
    if "library" not in meta:
        raise edgekit.UsageError("this output directory has no TVM CPU library (report.json backend.library); "
                                 "rebuild it with --backend tvm")
    return meta


def _io_names(context: edgekit.BuildContext) -> tuple[list[str], list[str]]:
    """ONNX input and output names in graph order (the library's argument order)."""
    model = context.report["model"]
    return [v["name"] for v in model["inputs"]], [v["name"] for v in model["outputs"]]


class QemuUserRunner(edgekit.Runner):
    name = "qemu-user"
    description = "aarch64 Linux program under qemu-aarch64 with exact instruction counts"

    def run(self, artifact_dir: Path, inputs, context):
        from edgekit.compiler.driver_c import MARK_BEGIN, MARK_END
        from edgekit.plugins.harness import counting
        from edgekit.plugins.harness.compile import sibling_tool

        import numpy as np

        meta = _artifact(context)
        target = context.target
        in_names, out_names = _io_names(context)
        program = Path(artifact_dir) / meta["program"]
        results = []
        with tempfile.TemporaryDirectory(prefix="ek-qemu-user-") as scratch:
            for n, sample in enumerate(inputs):
                in_files = []
                for i, (spec, name) in enumerate(zip(meta["inputs"], in_names)):
                    path = Path(scratch) / f"in{n}_{i}.bin"
                    np.ascontiguousarray(sample[name], dtype=spec["dtype"]).tofile(path)
                    in_files.append(str(path))
                out_files = [str(Path(scratch) / f"out{n}_{i}.bin") for i in range(len(out_names))]
                run = counting.run_counted_user(
                    program, args=[*in_files, *out_files], marks=[MARK_BEGIN, MARK_END],
                    program=target.emulator.program or "qemu-aarch64", cpu=target.emulator.cpu,
                    nm=sibling_tool(target.toolchain.cc, "nm"), cwd=Path(artifact_dir))
                if run.exit_code != 0:
                    detail = (run.stderr or run.stdout).strip().splitlines()
                    raise edgekit.BuildError(f"{program.name} under {target.emulator.program} exited with "
                                             f"{run.exit_code}: {detail[-1] if detail else '(no output)'}")
                spans = run.between(MARK_BEGIN, MARK_END)
                outputs = {name: np.fromfile(f, dtype=spec["dtype"]).reshape(spec["shape"])
                           for f, name, spec in zip(out_files, out_names, meta["outputs"])}
                results.append(edgekit.RunResult(outputs=outputs, measurements={
                    "instructions": spans[0] if spans else None,
                    "instructions_process_total": run.total,
                    "library_bytes": meta.get("library_bytes"),
                    "emulator": f"{target.emulator.program} -cpu {target.emulator.cpu}",
                }))
        return results


def load_python_loader(artifact_dir: Path, meta: dict):
    """Import the artifact's generated ``model.py`` and return its ``Model`` instance."""
    path = Path(artifact_dir) / meta["python_loader"]
    spec = importlib.util.spec_from_file_location(f"edgekit_tvm_loader_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model(Path(artifact_dir) / meta["library"])


def time_model(model, arrays: list, output_specs: list[dict], repeats: int) -> dict[str, float]:
    """Median and minimum wall time of ``run_into`` (no argument copies), after one warm-up call."""
    import numpy as np

    outputs = [model.aligned(np.empty(s["shape"], dtype=s["dtype"])) for s in output_specs]
    arrays = [model.aligned(a) for a in arrays]
    model.run_into(arrays, outputs)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run_into(arrays, outputs)
        samples.append(time.perf_counter() - start)
    return {"latency_us_median": round(statistics.median(samples) * 1e6, 2),
            "latency_us_min": round(min(samples) * 1e6, 2), "timing_repeats": repeats}


class TvmHostRunner(edgekit.Runner):
    name = "tvm-host"
    description = "x86-64 TVM library on this host through its Python loader, timed"

    def run(self, artifact_dir: Path, inputs, context):
        import numpy as np

        from edgekit.compiler.requires import require_tvm

        require_tvm("the tvm-host runner")
        meta = _artifact(context)
        in_names, out_names = _io_names(context)
        model = load_python_loader(Path(artifact_dir), meta)
        repeats = int(context.option(TIMING_REPEATS_OPTION, DEFAULT_TIMING_REPEATS))
        results = []
        for sample in inputs:
            arrays = [np.ascontiguousarray(sample[n], dtype=s["dtype"]).reshape(s["shape"])
                      for n, s in zip(in_names, meta["inputs"])]
            outputs = model.run(arrays)
            results.append(edgekit.RunResult(outputs=dict(zip(out_names, outputs)),
                                             measurements=time_model(model, arrays, meta["outputs"], repeats)))
        return results
