"""edgekit's build cache (``$EDGEKIT_CACHE_DIR``, default ``~/.cache/edgekit``): the compiled QEMU
plugin and compiled objects, each named by a content hash and published with an atomic rename, so
concurrent builders never see a partial file. ``EDGEKIT_NO_OBJECT_CACHE=1`` turns object reuse off."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

NO_OBJECT_CACHE_ENV = "EDGEKIT_NO_OBJECT_CACHE"


def cache_dir() -> Path:
    root = os.environ.get("EDGEKIT_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "edgekit"


def object_cache_enabled() -> bool:
    return os.environ.get(NO_OBJECT_CACHE_ENV, "") in ("", "0")


def publish(built: Path, target: Path) -> None:
    """Copy ``built`` to ``target`` atomically (temp file in the same directory, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(built, temp)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
