"""Atomic, deterministic output directories.

A build writes into a fresh temporary directory beside OUT and moves it into place only when the
build succeeded; a failed build leaves OUT exactly as it was. JSON is written with sorted keys and
no timestamps, so building the same model twice gives byte-identical directories.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekit.errors import UsageError


def check_output_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory; choose another -o")
    parent = out.resolve().parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{out}: {parent} is not a directory; choose another -o")
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as exc:
            raise UsageError(f"{out}: cannot create parent directory {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{out}: directory {parent} is not writable")


@contextmanager
def atomic_directory(out: Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``out``, on any exception it is removed."""
    check_output_dir(out)
    parent = out.resolve().parent
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.chmod(0o755)  # mkdtemp makes it private; an output directory is an ordinary one
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
        os.replace(out, old / "previous")
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


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
