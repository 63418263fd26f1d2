"""Exact instruction counting: the plugin build cache, determinism, and counts that follow a loop."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, context_for, fake_metadata, make_artifact

import edgekit

from edgekit.plugins.harness import counting
from edgekit.plugins.harness.firmware import build_firmware, build_program
from edgekit.plugins.harness.metadata import LibraryMeta
from edgekit.plugins.harness.qemu import QemuRunner
from edgekit.plugins.harness.uart_link import run_on_emulated_uart


def test_plugin_is_built_once_under_concurrent_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(counting.plugin_path())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 1 and paths[0].is_file()
    assert paths[0].parent == tmp_path / "cache" / "qemu-plugins"
    # Only the published plugin remains: every builder's temp file was renamed or removed.
    assert [p.name for p in paths[0].parent.iterdir()] == [paths[0].name]
    assert paths[0].read_bytes()[:4] == b"\x7fELF"


def test_same_elf_counts_the_same_every_run(tmp_path):
    artifact = make_artifact(tmp_path / "out")
    meta = LibraryMeta.from_dict(fake_metadata(), "test")
    target = context_for("cortex-m4").target
    firmware = build_firmware(meta, artifact, target, tmp_path / "fw", profile=True)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.normal(size=(1, 8)).astype(np.float32)} for _ in range(3)]
    marks = ["ek_harness_begin", "ek_harness_end", "ek_profile_mark"]
    runs = [run_on_emulated_uart(firmware, target, meta, feeds, 30.0, marks)[1] for _ in range(2)]
    assert runs[0].exit_code == 0 and runs[0].total > 1000
    # The totals include the firmware polling its UART for the host: only what lies between the
    # markers is the program's own work, and that is the same every run.
    assert [within(run) for run in runs[1:]] == [within(runs[0])]
    spans = runs[0].between("ek_harness_begin", "ek_harness_end")
    assert len(spans) == 3 and all(s > 50 for s in spans)
    # Three profile marks per inference (before layer 0, after layers 0 and 1), in increasing order.
    marks_seen = runs[0].counts("ek_profile_mark")
    assert len(marks_seen) == 9 and marks_seen == sorted(marks_seen)


def within(run: counting.CountedRun) -> list[tuple[str, int]]:
    """Every marker hit, counted from the start of its inference."""
    found, begin = [], 0
    for name, count in run.hits:
        begin = count if name == "ek_harness_begin" else begin
        found.append((name, count - begin))
    return found


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus"])
def test_count_grows_by_exactly_two_per_loop_iteration(tmp_path, target):
    """loop_model.c runs a `subs; bne` loop x[0] times: exactly 2 instructions per iteration."""
    artifact = make_artifact(tmp_path / "out", "loop_model.c")
    feeds = [{"x": np.full((1, 8), n, np.float32)} for n in (7, 1000, 2000)]
    results = QemuRunner().run(artifact, feeds, context_for(target, profile_layers=False))
    counts = [r.measurements["instructions"] for r in results]
    assert counts[2] - counts[1] == 2 * 1000
    assert counts[1] - counts[0] == 2 * 993
    assert 0 < counts[0] < 400  # the fixed part: call, conversion, four stores
    assert [float(r.outputs["y"][0, 0]) for r in results] == [7.0, 1000.0, 2000.0]


def test_user_mode_counts_a_static_aarch64_program(tmp_path):
    program = tmp_path / "loop"
    subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-static", str(FIXTURES / "user_mode" / "loop.c"),
                    "-o", str(program)], check=True)
    spans = [counting.run_counted_user(program, args=[str(n)], marks=["bench_begin", "bench_end"])
             .between("bench_begin", "bench_end")[0] for n in (10, 1010, 2010)]
    assert spans[2] - spans[1] == spans[1] - spans[0] == 2 * 1000
    pie = tmp_path / "loop-pie"
    subprocess.run(["aarch64-linux-gnu-gcc", "-O2", "-fpie", "-pie", str(FIXTURES / "user_mode" / "loop.c"),
                    "-o", str(pie)], check=True)
    with pytest.raises(edgekit.UsageError, match="-no-pie"):
        counting.run_counted_user(pie, marks=["bench_begin"])


def test_benchmark_program_counts_scale_with_its_loop(tmp_path):
    """build_program: a kernel benchmark's own main with the harness start-up and markers."""
    target = context_for("cortex-m4").target
    spans = []
    for n in (100, 200):
        fw = build_program([FIXTURES / "bench" / "bench_main.c"], target, tmp_path / str(n), defines=(f"BENCH_N={n}",))
        run = counting.run_counted(fw.elf, machine="mps2-an386", cpu="cortex-m4",
                                   marks=["ek_harness_begin", "ek_harness_end"])
        assert run.exit_code == 0 and f"sum {n * (n - 1) // 2}" in run.stdout + run.stderr
        spans += run.between("ek_harness_begin", "ek_harness_end")
    # One load and one add per element at least, and linear in the element count.
    assert 2 * 100 <= spans[0] and spans[1] - spans[0] >= 2 * 100
