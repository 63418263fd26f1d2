"""Output directories (issue 21): what -o may replace, commits across filesystems and from concurrent
builds, and SIGINT/SIGTERM at any moment leaving OUT old or new with no temporary file or process."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from edgekit.config import load_config
from edgekit.errors import BuildError, UsageError
from edgekit.output import MARKER, atomic_directory, check_output_dir
from tests.conftest import EDGEKIT, run_edgekit
from tests.core.onnx_factory import conv_relu_model, save
from tests.core.test_bad_input import _assert_usage_error

REPRODUCIBLE = {"EDGEKIT_REPRODUCIBLE": "1"}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _old_output(out: Path) -> dict[str, bytes]:
    """A previous build's OUT (it has the marker), to see whether it survives."""
    out.mkdir(parents=True)
    (out / MARKER).write_text("previous build\n")
    (out / "old.txt").write_text("old\n")
    return _files(out)


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _is_whole_build(out: Path) -> bool:
    return {MARKER, "report.json", "reference.onnx"} <= set(_files(out)) and not (out / "old.txt").exists()


# --- what -o may replace ------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["dot", "cwd", "parent of cwd", "root", "home", "model's directory",
                                  "config's parent", "calibration directory"])
def test_refused_even_with_force(tmp_path, monkeypatch, case):
    work, data, home = tmp_path / "work", tmp_path / "data", tmp_path / "home"
    for directory in (work, data / "calibration", home):
        directory.mkdir(parents=True)
    model = data / "m.onnx"
    model.write_bytes(b"model")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    inputs = [("the model", model), ("the config file", data / "cfg" / "edgekit.toml"),
              ("the calibration data", data / "calibration")]
    out, said = {"dot": (".", "the current directory"), "cwd": (str(work), "the current directory"),
                 "parent of cwd": ("..", "contains the current directory"), "root": ("/", "filesystem root"),
                 "home": (str(home), "your home directory"), "model's directory": (str(data), "the model"),
                 "config's parent": (str(data / "cfg"), "contains the config file"),
                 "calibration directory": (str(data / "calibration"), "the calibration data")}[case]
    with pytest.raises(UsageError, match="refusing to replace") as error:
        check_output_dir(Path(out), inputs, force=True)
    assert said in str(error.value) and "choose another -o" in str(error.value)


def test_empty_directory_and_force_setting(tmp_path):
    (tmp_path / "empty").mkdir()
    assert check_output_dir(tmp_path / "empty") == (tmp_path / "empty").resolve()
    (tmp_path / "edgekit.toml").write_text("force = true\n")
    assert load_config(tmp_path / "edgekit.toml") == {"force": True}


def test_cli_refuses_the_current_directory_before_building(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    result = run_edgekit("build", model, "-t", "x86-64", "-o", ".", "--force", "-q", cwd=tmp_path)
    _assert_usage_error(result, "refusing to replace the current directory", "choose another -o")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_foreign_directory_needs_force_then_rebuilds_reproducibly(tmp_path):
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    # checked before anything else: the unknown target is not even looked up
    result = run_edgekit("build", model, "-t", "no-such-target", "-o", str(out), "-q")
    _assert_usage_error(result, str(out), "not written by edgekit", "--force", "another -o")
    assert (out / "notes.txt").exists()

    assert run_edgekit("build", model, "-t", "x86-64", "-o", str(out), "-q", "--force", env=REPRODUCIBLE).code == 0
    first = _files(out)
    assert MARKER in first and "notes.txt" not in first
    again = run_edgekit("build", model, "-t", "x86-64", "-o", str(out), "-q", env=REPRODUCIBLE)
    assert again.code == 0, again.stderr  # edgekit's own output needs no --force
    assert _files(out) == first  # byte-reproducible, the marker included
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "out"]  # no lock, staging or old dir


# --- commits ------------------------------------------------------------------------------------

def test_leftovers_of_killed_builds_are_removed_but_not_live_ones(tmp_path):
    out = tmp_path / "out"
    old = _old_output(out)
    for name in (".out.abc.old/previous", ".out.def.tmp", ".out.live.tmp"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "f").write_text("x")
    live = os.open(tmp_path / ".out.live.tmp", os.O_RDONLY)
    fcntl.flock(live, fcntl.LOCK_EX)  # as a build still writing into it holds it
    try:
        with atomic_directory(out) as staging:
            (staging / "new.txt").write_text("new\n")
    finally:
        os.close(live)
    assert set(_files(out)) == {MARKER, "new.txt"} and _files(out) != old
    assert _leftovers(out) == [".out.live.tmp"]


@pytest.mark.parametrize("during", ["replace", "rmtree"])
def test_a_signal_during_the_commit_comes_after_it(tmp_path, monkeypatch, request, during):
    """SIGINT while the old OUT is moved aside or deleted: the commit finishes, then it raises."""
    import shutil

    # Python's own SIGINT handler, whatever an earlier in-process test left (once seen in a full run)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    out = tmp_path / "out"
    _old_output(out)
    module, name = (os, "replace") if during == "replace" else (shutil, "rmtree")
    real, fired = getattr(module, name), []

    def interrupted(*args, **kwargs):
        if not fired:
            fired.append(os.kill(os.getpid(), signal.SIGINT))
        return real(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out) as staging:
            (staging / "new.txt").write_text("new\n")
            monkeypatch.setattr(module, name, interrupted)
    monkeypatch.undo()
    assert set(_files(out)) == {MARKER, "new.txt"}
    assert _leftovers(out) == []


def test_a_failed_rename_puts_the_old_output_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    old = _old_output(out)
    real, calls = os.replace, []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new OUT into place
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real(src, dst)

    with pytest.raises(BuildError, match="cannot move the build into place"):
        with atomic_directory(out) as staging:
            (staging / "new.txt").write_text("new\n")
            monkeypatch.setattr(os, "replace", failing)
    monkeypatch.undo()
    assert _files(out) == old and _leftovers(out) == []


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {(done.stderr or done.stdout).strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_output_on_another_filesystem_through_a_symlink(tmp_path, tmpfs):
    with pytest.raises(UsageError, match="refusing to replace a mount point"):
        check_output_dir(tmpfs, force=True)
    # replacing its parent would delete the old one with the mounted filesystem's files in it
    with pytest.raises(UsageError, match="contains the mount point"):
        check_output_dir(tmpfs.parent, force=True)
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    target = tmpfs / "out"
    _old_output(target)
    link = tmp_path / "link"
    link.symlink_to(target)
    result = run_edgekit("build", model, "-t", "x86-64", "-o", str(link), "-q")
    assert result.code == 0, result.stderr
    assert link.is_symlink() and _is_whole_build(target)
    assert _leftovers(target) == [] and _leftovers(link) == []


def test_concurrent_builds_to_one_output_both_succeed(tmp_path):
    """Each build commits under a lock beside OUT; OUT ends as one whole build (the models differ in
    their batch size, so a mix would show)."""
    single = save(conv_relu_model(), tmp_path / "one.onnx")
    batched = save(conv_relu_model(dynamic_batch=True), tmp_path / "two.onnx")
    out = tmp_path / "out"
    jobs = [subprocess.Popen([str(EDGEKIT), "build", *args, "-t", "x86-64", "-o", str(out), "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for args in ([single], [batched, "--input-shape", "3,2,6,6"])]
    for job in jobs:
        _, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    import onnx

    report = json.loads((out / "report.json").read_text())
    batch = report["model"]["inputs"][0]["shape"][0]
    built = onnx.load(str(out / "reference.onnx"))
    assert built.graph.input[0].type.tensor_type.shape.dim[0].dim_value == batch
    assert report["model"]["source"] == (single if batch == 1 else batched)
    assert _leftovers(out) == []


# --- signals ------------------------------------------------------------------------------------

def _handles_sigterm(pid: int) -> bool:
    """edgekit's handler is in place: SIGTERM is in the process's caught-signals mask."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _processes_with(tmpdir: Path, name: str | None = None) -> list[int]:
    """Processes started with TMPDIR=tmpdir (the build and its children), optionally only ``name``."""
    wanted = f"TMPDIR={tmpdir}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and wanted in (entry / "environ").read_bytes()
                    and (name is None or (entry / "comm").read_text().strip() == name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


#: when to send the signal: edgekit just started its command, the back end is writing the staging
#: directory, QEMU is running the firmware
MOMENTS = {
    "early": lambda proc, out, tmpdir: _handles_sigterm(proc.pid),
    "build": lambda proc, out, tmpdir: bool(_leftovers(out)),
    "run": lambda proc, out, tmpdir: bool(_processes_with(tmpdir, "qemu-system-arm")),
}


def _wait_for(moment: str, proc: subprocess.Popen, out: Path, tmpdir: Path, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while not MOMENTS[moment](proc, out, tmpdir):
        if proc.poll() is not None:
            pytest.fail(f"edgekit exited ({proc.returncode}) before '{moment}': {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"edgekit did not reach '{moment}' within {timeout} s")
        time.sleep(0.01)


@pytest.mark.parametrize("signum,moment", [
    (signal.SIGTERM, "early"), (signal.SIGTERM, "build"), (signal.SIGTERM, "run"),
    (signal.SIGINT, "build"), (signal.SIGINT, "run"),
])
def test_a_signal_leaves_output_old_and_nothing_behind(tmp_path, signum, moment):
    """`kill -TERM` / `kill -INT` to edgekit alone (not its process group): the children get no
    signal from the terminal, edgekit must stop them itself."""
    model = save(conv_relu_model(), tmp_path / "m.onnx")
    out, tmpdir = tmp_path / "out", tmp_path / "tmp"
    tmpdir.mkdir()
    old = _old_output(out)
    proc = subprocess.Popen([str(EDGEKIT), "build", model, "-t", "cortex-m4", "-o", str(out), "-q", "--run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmpdir)}, start_new_session=True)
    try:
        _wait_for(moment, proc, out, tmpdir)
        os.kill(proc.pid, signum)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signum, err
    assert err.strip() == ("error: interrupted" if signum == signal.SIGINT else "error: terminated by SIGTERM")
    # the signal may come just after QEMU's last output, during the (uninterruptible) commit
    assert _files(out) == old or (moment == "run" and _is_whole_build(out))
    assert _leftovers(out) == []
    assert [p.name for p in tmpdir.iterdir() if p.is_dir()] == []
    assert _processes_with(tmpdir) == []
