"""Progress of ``edgekit tune``: a MetaSchedule measure callback feeding a rich progress bar.

Technique: :func:`progress_callback` wraps a :class:`TuneProgress` in a ``PyMeasureCallback``
placed after MetaSchedule's ``AddToDatabase``, so every batch it counts is already committed. It
also is where a requested stop takes effect: raising there ends ``tune_relax`` between batches,
with nothing in flight. On a terminal the bar shows trials measured of the total, kernels done and
the best score so far; elsewhere it stays silent and :meth:`TuneProgress.summary` gives one line.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

SCORE_INSTRUCTIONS = "instructions"
SCORE_SECONDS = "seconds"


class StopTuning(KeyboardInterrupt):
    """Raised from the measure callback once the batch a Ctrl-C interrupted is committed."""


@dataclass
class KernelBest:
    name: str
    weight: float
    best: float | None = None  # the minimised score (instructions, or seconds)
    trials: int = 0
    errors: int = 0


@dataclass
class TuneProgress:
    total_trials: int
    score: str = SCORE_SECONDS  # what run_secs holds: a time, or an instruction count / 1e9
    scale: float = 1.0          # run_secs * scale = the score
    show: bool = True
    stop: object = None         # a StopRequest: after a committed batch, stop if requested
    kernels: dict[int, KernelBest] = field(default_factory=dict)
    measured: int = 0
    started: float = field(default_factory=time.perf_counter)
    _bar: object = None
    _task: object = None

    def __enter__(self) -> TuneProgress:
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from rich.console import Console

            # Its own descriptor for stderr: the builder captures fd 2 around each compile.
            console = Console(file=os.fdopen(os.dup(2), "w", buffering=1), stderr=True)
            self._bar = Progress(TextColumn("tuning"), BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn("trials"),
                                 TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=console)
            self._bar.start()
            self._task = self._bar.add_task("tune", total=self.total_trials, status="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def record(self, tasks, task_id: int, runner_results) -> None:
        """One committed batch of task ``task_id`` (``tasks``: the scheduler's TaskRecords)."""
        for i, task in enumerate(tasks):
            self.kernels.setdefault(i, KernelBest(str(task.ctx.task_name), float(task.task_weight)))
        kernel = self.kernels[task_id]
        for result in runner_results:
            kernel.trials += 1
            self.measured += 1
            if result.error_msg is not None or not result.run_secs:
                kernel.errors += 1
                continue
            value = sum(float(s) for s in result.run_secs) / len(result.run_secs) * self.scale
            kernel.best = value if kernel.best is None else min(kernel.best, value)
        done = sum(1 for task in tasks if bool(task.is_terminated))
        if self._bar is not None:
            status = f"kernels {done}/{len(tasks)}  {kernel.name}: best {self.format(kernel.best)}"
            self._bar.update(self._task, completed=min(self.measured, self.total_trials), status=status)
        if self.stop is not None and self.stop.requested:
            raise StopTuning()

    def format(self, value: float | None) -> str:
        if value is None:
            return "-"
        if self.score == SCORE_INSTRUCTIONS:
            return f"{value:,.0f} instructions"
        return f"{value * 1e6:,.1f} us"

    def model_total(self) -> float | None:
        """Sum over kernels of best score x calls per model run (None until every kernel has one)."""
        if not self.kernels or any(k.best is None for k in self.kernels.values()):
            return None
        return sum(k.best * k.weight for k in self.kernels.values())

    def summary(self) -> str:
        seconds = time.perf_counter() - self.started
        tuned = sum(1 for k in self.kernels.values() if k.best is not None)
        line = f"{self.measured} trials measured, {tuned}/{len(self.kernels)} kernels scored, {seconds:.0f} s"
        total = self.model_total()
        if total is not None:
            line += f"; best kernels sum to {self.format(total)} per run"
        return line


def progress_callback(progress: TuneProgress):
    """``progress`` as a MetaSchedule measure callback."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    @derived_object
    class ProgressCallback(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            progress.record(list(task_scheduler.tasks_), int(task_id), list(runner_results))

    return ProgressCallback()
