"""Atomic, deterministic, guarded output directories.

A build writes into a fresh temporary directory beside OUT and moves it into place only when the
build succeeded; a failed or interrupted build leaves OUT exactly as it was. JSON is written with
sorted keys and no timestamps, so building the same model twice gives byte-identical directories.

Replacing OUT deletes what was there, so OUT is checked before the build starts: it must not be, or
contain, the current directory, the home directory or an input of the build, must not be the root
or a mount point, and an existing non-empty directory is replaced only if an earlier build wrote it
(it holds the MARKER file) or the user said ``--force``. OUT is resolved first: for a symlink, the
directory it points to is replaced (the link stays), and the staging directory is made beside that
real directory, on its filesystem, so the final rename never crosses filesystems.

The commit (move the old OUT aside, move the new one in, delete the old) holds a lock beside OUT,
so concurrent builds to one OUT commit one after the other, and runs with SIGINT/SIGTERM held back
(:func:`edgekit.interrupts.deferred`), so a signal never splits it. Leftovers of a build that was
killed outright (``.OUT.*.tmp``, ``.OUT.*.old``) are removed by the next build to OUT: each live
staging directory is flock-ed by its build, so only dead builds' ones are taken.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekit.errors import BuildError, UsageError
from edgekit.interrupts import deferred

#: written into every output directory; its presence lets the next build replace the directory
MARKER = ".edgekit-output"
MARKER_TEXT = "Written by `edgekit build`. The next build with this output directory replaces it.\n"
LEFTOVER_SUFFIXES = (".tmp", ".old")


def check_output_dir(out: Path, inputs: Iterable[tuple[str, Path]] = (), force: bool = False) -> Path:
    """Refuse an OUT a build must not replace (see the module doc); return OUT's real path.
    ``inputs`` are (what, path) of the build's input files, e.g. ("the model", Path("m.onnx"))."""
    try:
        real = out.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UsageError(f"{out}: cannot resolve the path ({exc}); choose another -o") from None
    if real.exists() and not real.is_dir():
        raise UsageError(f"{out}: exists and is not a directory; choose another -o")
    why = _why_protected(real, inputs)
    if why:
        raise UsageError(f"{out}: refusing to replace {why} (even with --force); choose another -o")
    _refuse_foreign(out, real, force)
    ancestor = real.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{out}: {ancestor} is not a directory; choose another -o")
    if not os.access(ancestor, os.W_OK):
        raise UsageError(f"{out}: directory {ancestor} is not writable")
    return real


def _why_protected(real: Path, inputs: Iterable[tuple[str, Path]]) -> str | None:
    if real == Path(real.anchor):
        return "the filesystem root"
    if os.path.ismount(real):
        return "a mount point"
    inner = _mount_points_under(real)
    if inner:  # deleting the old OUT would delete that filesystem's files too
        return f"a directory that contains the mount point {inner[0]}"
    try:
        home = [("your home directory", Path.home())]
    except RuntimeError:  # no HOME and no passwd entry
        home = []
    for what, path in [("the current directory", Path.cwd()), *home, *inputs]:
        path = Path(path).resolve()
        if real == path:
            return what
        if real in path.parents:
            return f"a directory that contains {what} {path}"
    return None


def _mount_points_under(real: Path) -> list[str]:
    """Mount points strictly inside ``real`` (Linux's mount table; none where it cannot be read)."""
    try:
        table = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    # fields are space-separated with spaces in paths written as \040 (and tabs, newlines octal too)
    points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[1])
              for line in table.splitlines() if len(line.split()) > 1]
    inside = f"{real}{os.sep}"
    return sorted(p for p in points if p.startswith(inside))


def _refuse_foreign(out: Path, real: Path, force: bool) -> None:
    """Unless forced, refuse a non-empty directory that no edgekit build wrote."""
    if force or not real.is_dir() or (real / MARKER).is_file():
        return
    try:
        empty = not any(real.iterdir())
    except OSError as exc:
        raise UsageError(f"{out}: cannot read the directory ({exc.strerror}); choose another -o") from None
    if not empty:
        raise UsageError(f"{out}: exists, is not empty and was not written by edgekit (no {MARKER}); "
                         "use --force to replace it, or choose another -o")


@contextmanager
def atomic_directory(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``out``, on any exception it is removed."""
    real = check_output_dir(out, force=force)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{out}: cannot create parent directory {real.parent} ({exc.strerror})") from None
    staging = alive = None
    try:
        # Under the lock, no other build sweeps leftovers between our mkdtemp and our flock.
        with _locked(real), deferred():
            _remove_leftovers(real)
            staging = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent))
            alive = _flock(staging, fcntl.LOCK_EX)  # tells other builds this staging directory is live
        yield staging
        (staging / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private; an output directory is an ordinary one
        with _locked(real), deferred():
            _commit(staging, real, out, force)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if alive is not None:
            os.close(alive)


def _commit(staging: Path, real: Path, out: Path, force: bool) -> None:
    """Old OUT aside, new OUT in, old OUT deleted (the caller holds the lock and the signals)."""
    _refuse_foreign(out, real, force)  # it may have appeared while the model was being built
    old = None
    try:
        if real.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{real.name}.", suffix=".old", dir=real.parent))
            os.replace(real, old)  # a directory may replace an empty one
        os.replace(staging, real)
    except OSError as exc:
        if old is not None and not real.exists():
            os.replace(old, real)  # put the old OUT back
        raise BuildError(f"{out}: cannot move the build into place ({exc.strerror}); choose another -o") from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(real: Path) -> None:
    """Delete staging and old directories of builds to OUT that were killed outright."""
    for path in real.parent.iterdir():  # not glob: OUT's name may hold [ or *
        if (not path.name.startswith(f".{real.name}.") or path.suffix not in LEFTOVER_SUFFIXES
                or not path.is_dir() or path.is_symlink()):
            continue
        fd = _flock(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if fd is not None:  # no live build holds it
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)


def _flock(path: Path, how: int) -> int | None:
    """An open descriptor of ``path`` flock-ed with ``how``; None if the lock is held elsewhere or
    the filesystem does not lock (then leftovers are kept rather than risk a live build's)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, how)
    except OSError:
        os.close(fd)
        return None
    return fd


@contextmanager
def _locked(real: Path) -> Iterator[None]:
    """Hold ``.OUT.lock`` beside OUT. The file is deleted on release so nothing is left beside OUT;
    a waiter that then locks the deleted file sees another inode at the path and tries again."""
    path = real.parent / f".{real.name}.lock"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BuildError(f"{real}: cannot create the lock file {path} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits for a concurrent commit; a signal interrupts it
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
