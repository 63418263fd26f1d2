"""Seed a MetaSchedule tuning database with what untuned builds compile (edgekit's default
schedules, or Relax's schedule where no default rule applies), measured like any candidate.

Why: a build applies the database's best record per kernel in place of the default schedule
(:mod:`edgekit.compiler.default_schedule`). A short tuning run can find only candidates slower
than that default; without a record of the default itself the database would still "win" and
the build would get slower for having been tuned. With the default measured by the same builder
and runner and committed as a record (its trace replays the schedule on the workload), the best
record is never worse than the default, and MetaSchedule's evolutionary search starts its
population from it.
"""

from __future__ import annotations

from typing import Any


def seed_default_schedules(fused_mod, target, spec: dict[str, Any], database, builder, runner
                           ) -> tuple[dict[str, float], dict[str, str]]:
    """Measure the untuned schedule of every kernel of ``fused_mod`` and commit it to ``database``. Returns ({kernel: the score MetaSchedule minimises (run_secs)}, {kernel: why it
    could not be measured})."""
    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms

    from edgekit.compiler.default_schedule import schedule_kernel, tiles_for

    tiles = tiles_for(spec)
    seeds = []
    for task in ms.relax_integration.extract_tasks(fused_mod, target):
        workload_mod = task.dispatched[0]
        if database.has_workload(workload_mod):
            continue  # measured before (a resumed run): its records already compete
        # A kernel no rule tiles competes as Relax schedules it (an empty trace): what untuned
        # builds compile, so no record slower than that can win.
        schedule = schedule_kernel(workload_mod["main"], tiles) or s_tir.Schedule(workload_mod)
        seeds.append((task.task_name, workload_mod, schedule))
    if not seeds:
        return {}, {}
    built = builder.build([ms.builder.BuilderInput(s.mod, target) for _, _, s in seeds])
    errors = {seed[0]: b.error_msg.splitlines()[0] for seed, b in zip(seeds, built) if b.error_msg}
    runnable = [(seed, b) for seed, b in zip(seeds, built) if b.error_msg is None]
    device = _device_name(target)
    futures = runner.run([ms.runner.RunnerInput(b.artifact_path, device,
                                                ms.arg_info.ArgInfo.from_prim_func(seed[1]["main"]))
                          for seed, b in runnable])
    scores = {}
    for ((name, workload_mod, schedule), _), future in zip(runnable, futures):
        result = future.result()
        if result.error_msg is not None or not result.run_secs:
            errors[name] = (result.error_msg or "no measurement").strip().splitlines()[-1]
            continue
        run_secs = [float(getattr(s, "value", s)) for s in result.run_secs]
        workload = database.commit_workload(workload_mod)
        database.commit_tuning_record(ms.database.TuningRecord(
            schedule.trace, workload, run_secs, target, ms.arg_info.ArgInfo.from_prim_func(workload_mod["main"])))
        scores[name] = sum(run_secs) / len(run_secs)
    return scores, errors


def _device_name(target) -> str:
    """The device name a runner takes for ``target`` ("cpu" for llvm), as MetaSchedule's own loop gives it."""
    from tvm.runtime import Device

    return Device._DEVICE_TYPE_TO_NAME[target.get_target_device_type()]
