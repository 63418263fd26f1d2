"""The bad-input contract, checked for one input (issue 9): ``edgekit build`` through the real CLI
(click's CliRunner on ``edgekit.cli.main``) either succeeds, or exits 2 (bad input) or 1 (failed
build) with ONE line on stderr that is not an internal error, and leaves no output directory and no
staging directory behind. Anything else is a finding: a traceback, an internal error, another exit
code, several lines, a directory left behind, a hang, or a crash of the process.

Each input runs in a forked child of a process that has already imported edgekit and loaded its
plugins, so a crash or a hang (killed after ``timeout`` seconds) is observed, not suffered, and the
per-input cost is the build's alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

#: What a message must not show: a plugin's uncaught Python exception (PluginError's "raised
#: IndexError: ..."), or a native library's error with its source location.
INTERNAL = re.compile(r"raised [A-Z]\w*(Error|Exception|Warning)\b|\[ONNXRuntimeError\]|\w+\.(cc|cpp|h):\d+")
#: Default flags: a cheap target and back end (the mcu-c C generator, nothing compiled or run).
BUILD_FLAGS = ("--target", "x86-64", "--backend", "mcu-c", "-q")


@dataclass
class Outcome:
    """What one ``edgekit build`` did; ``finding`` is None when the contract held."""

    code: int | None          # exit code; None when the process crashed or hung
    stderr: str
    seconds: float
    finding: str | None = None
    ran: bool = False         # also built with --run (check_mutant's sample)

    @property
    def refused(self) -> bool:
        return self.finding is None and self.code in (1, 2)


def preload() -> None:
    """Import edgekit and load its plugins once, in the parent, so every forked child has them."""
    from edgekit.cli import _registry

    _registry()


def _child(args: list[str], result_file: str) -> None:
    """In the forked child: run the CLI, write its result as JSON, and leave without cleanup."""
    code = 70
    try:
        os.setpgid(0, 0)  # its compilers and runners die with it on a timeout
        from click.testing import CliRunner

        from edgekit.cli import main

        native = Path(result_file + ".fd2")
        with native.open("w") as sink:  # what native libraries write to the terminal themselves
            os.dup2(sink.fileno(), 2)
            result = CliRunner().invoke(main, args, catch_exceptions=True)
        escaped = result.exception if not isinstance(result.exception, SystemExit) else None
        trace = "".join(traceback.format_exception(escaped)) if escaped else ""
        stderr = result.stderr + trace + native.read_text(errors="replace")
        native.unlink()
        Path(result_file).write_text(json.dumps({"code": result.exit_code, "stderr": stderr}))
        code = 0
    finally:
        os._exit(code)


def run_cli(args: list[str], timeout: float) -> Outcome:
    """``edgekit ARGS`` in a forked child; code None with the reason in ``stderr`` on a crash or hang."""
    fd, result_file = tempfile.mkstemp(prefix="ek-contract-", suffix=".json")
    os.close(fd)
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(args, result_file)
    status = _wait(pid, timeout)
    seconds = time.perf_counter() - started
    try:
        if status is None:
            return Outcome(None, f"hung: killed after {timeout:g} s", seconds)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return Outcome(None, f"process crashed (wait status {status:#x})", seconds)
        result = json.loads(Path(result_file).read_text())
        return Outcome(result["code"], result["stderr"], seconds)
    finally:
        os.unlink(result_file)


def _wait(pid: int, timeout: float) -> int | None:
    """The child's wait status, or None after killing its process group at ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    return None


def judge(outcome: Outcome, out: Path) -> str | None:
    """The contract's verdict on one build into ``out``: None when it held, else what broke."""
    leftovers = [p.name for p in out.parent.glob(f".{out.name}.*")]
    if outcome.code is None:
        return outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    if "Traceback" in outcome.stderr:
        return f"traceback: {lines[-1] if lines else ''}"
    if leftovers:
        return f"staging directory left behind: {leftovers}"
    if outcome.code == 0:
        return None if out.is_dir() else "exit 0 without an output directory"
    if outcome.code not in (1, 2):
        return f"exit code {outcome.code}: {outcome.stderr.strip()[:300]}"
    if out.exists():
        return f"exit {outcome.code} left the output directory behind"
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return f"exit {outcome.code} with {len(lines)} lines on stderr: {outcome.stderr.strip()[:300]!r}"
    if "internal error" in lines[0] or INTERNAL.search(lines[0]):
        return f"exit {outcome.code}, an internal failure, not a message: {lines[0][:300]}"
    if outcome.code == 1 and lines[0].startswith("error: plugin "):
        return f"exit 1 (a failed build) for a plugin's failure on the input: {lines[0][:300]}"
    return None


def check(model: Path, out: Path, extra: tuple[str, ...] = (), timeout: float = 60.0) -> Outcome:
    """Build ``model`` into ``out`` (which must not exist yet) and judge the contract."""
    outcome = run_cli(["build", str(model), "-o", str(out), *BUILD_FLAGS, *extra], timeout)
    outcome.finding = judge(outcome, out)
    return outcome


def check_mutant(name: str, seed: int, directory: Path, run_sample: bool = False,
                 timeout: float = 60.0) -> tuple[str, Outcome]:
    """Mutate corpus file ``name`` with ``seed`` (:func:`tests.hardening.mutations.mutate`), build it
    in ``directory``, and judge the contract; with ``run_sample``, a mutant that builds is built
    again with ``--run``, which must succeed too (the run matching onnxruntime). Returns the
    mutation's description and the outcome."""
    from tests.hardening.corpus import seed_file
    from tests.hardening.mutations import mutate

    data, description = mutate(seed_file(name), Path(name).suffix, seed)
    path = directory / name
    path.write_bytes(data)
    outcome = check(path, directory / "out", timeout=timeout)
    if run_sample and outcome.code == 0 and outcome.finding is None:
        ran = check(path, directory / "out-run", ("--run",), timeout=timeout)
        if ran.code != 0 and ran.finding is None:
            ran.finding = f"builds, but --run fails: {ran.stderr.strip()[:300]}"
        ran.seconds += outcome.seconds
        ran.ran = True
        outcome = ran
    return description, outcome
