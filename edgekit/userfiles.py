"""Files the user names: the model, ``--config``, ``--inputs`` and ``--calibration``/``--validation``
data, and the ``.npz`` that ``edgekit run --save`` writes (:func:`check_save_path`, :func:`write_npz`). Each must be a regular file: a FIFO or a device would block the build forever (or stream
without end), a directory fails deep inside a reader. Arrays (``.npy``/``.npz``) are read without
trusting their headers: the shape and dtype a header declares are checked against the bytes the file
holds before anything is allocated, and only numeric arrays are read (edgekit never unpickles).
Every failure is a :class:`UsageError` naming the flag and the file.
"""

from __future__ import annotations

import math
import os
import secrets
import stat
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from edgekit.errors import UsageError, one_line

#: dtype kinds a model input is fed from: bool, signed and unsigned integers, floats
NUMERIC_KINDS = "biuf"
NPY_MAGIC = b"\x93NUMPY"
#: deflate's best ratio is 1032:1, so a zip member that declares more bytes than that lies
DEFLATE_MAX_RATIO = 1032
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def regular_file(path: Path, label: str | None = None, expected: str = "a file") -> Path:
    """``path`` when it is a regular file (symlinks followed); else a UsageError that starts with
    ``label`` (default: the path) and says what the path is instead."""
    label = label or str(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{label}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{label}: cannot read ({exc.strerror})") from None
    if stat.S_ISREG(mode):
        return path
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise UsageError(f"{label}: is {kind}, not a regular file; give {expected}")


def load_arrays(path: Path, label: str) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a ``.npy`` file, or the arrays of a ``.npz`` file by name (the kind is told by
    the file's content). ``label`` (e.g. ``--inputs x.npz``) starts every error message."""
    regular_file(path, label, "a .npy or .npz file")
    try:
        with path.open("rb") as file:
            if file.read(len(NPY_MAGIC)) == NPY_MAGIC:
                file.seek(0)
                return _read_npy(file, path.stat().st_size, label)
        if zipfile.is_zipfile(path):
            return _read_npz(path, label)
        raise UsageError(f"{label}: not a .npy or .npz file (neither numpy's header nor a zip archive); "
                         f"write it with numpy.save or numpy.savez")
    except UsageError:
        raise
    except Exception as exc:  # the bytes are the user's: any parse failure is bad input, named
        raise UsageError(f"{label}: not a readable .npy/.npz file ({one_line(exc)}); write it with "
                         f"numpy.save or numpy.savez") from None


def _read_npy(file: IO[bytes], size: int, where: str) -> np.ndarray:
    """One .npy array from ``file`` (``size`` bytes from where it stands), its header checked first."""
    from numpy.lib import format as npy

    start = file.tell()
    version = npy.read_magic(file)
    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    if version not in readers:
        raise UsageError(f"{where}: .npy format version {version[0]}.{version[1]} is not read (it is only "
                         f"written for structured dtypes); save numeric arrays with numpy.save")
    shape, _, dtype = readers[version](file)
    _check_dtype(dtype, where)
    needed = math.prod(shape) * dtype.itemsize
    held = size - (file.tell() - start)
    if needed > held:
        raise UsageError(f"{where}: its header declares shape {list(shape)} of {dtype} ({needed:,} bytes), "
                         f"but only {held:,} bytes follow; the file is truncated or corrupt")
    file.seek(start)
    return npy.read_array(file, allow_pickle=False)


def _read_npz(path: Path, label: str) -> dict[str, np.ndarray]:
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy") or info.is_dir():
                raise UsageError(f"{label}: member '{info.filename}' is not a .npy array; write the "
                                 f"file with numpy.savez")
            name = info.filename[: -len(".npy")]
            where = f"{label}: array '{name}'"
            bound = info.compress_size * (DEFLATE_MAX_RATIO if info.compress_type == zipfile.ZIP_DEFLATED else 1)
            if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) and info.file_size > bound:
                raise UsageError(f"{where}: declares {info.file_size:,} bytes from {info.compress_size:,} "
                                 f"compressed; the file is corrupt")
            with archive.open(info) as member:
                arrays[name] = _read_npy(member, info.file_size, where)
    return arrays


def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.hasobject:
        raise UsageError(f"{where}: holds Python objects (dtype object), which edgekit does not unpickle; "
                         f"save numeric arrays (e.g. array.astype(numpy.float32))")
    if dtype.kind not in NUMERIC_KINDS:
        raise UsageError(f"{where}: has dtype {dtype}, not numbers; save numeric arrays "
                         f"(e.g. array.astype(numpy.float32))")


def check_save_path(path: Path, label: str) -> Path:
    """``path`` when an ``.npz`` can be written there: it ends in ``.npz``, is not a directory or
    other non-regular file, and its directory exists and is writable. Checked before a run, so a bad
    path costs no run; else a UsageError that starts with ``label``."""
    if path.suffix.lower() != ".npz":
        raise UsageError(f"{label}: expected a file name ending in .npz (numpy.savez's format)")
    if path.exists() and not path.is_file():
        kind = next((name for test, name in _KINDS if test(path.stat().st_mode)), "not a regular file")
        raise UsageError(f"{label}: is {kind}; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{label}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{label}: directory {parent} is not writable")
    return path


def write_npz(path: Path, arrays: dict[str, np.ndarray], label: str) -> None:
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically: into a new file beside
    it, then renamed over it, so a reader never sees half a file and a failure leaves ``path`` as
    it was. Its mode is an ordinary new file's (0666 less the umask), not a temporary file's 0600.
    ``numpy.load`` reads it back by the same names."""
    check_save_path(path, label)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"{label}: cannot write ({exc.strerror})") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


#: the zip timestamp of every member: the same arrays give the same bytes
NPZ_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def _write_npz(file: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    """What ``numpy.savez`` writes (a member ``NAME.npy`` per array), without its keyword arguments,
    which an array named ``file`` or ``allow_pickle`` would collide with, and without timestamps."""
    from numpy.lib import format as npy

    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=NPZ_DATE_TIME)
            with archive.open(info, "w", force_zip64=True) as member:
                npy.write_array(member, np.asanyarray(array), allow_pickle=False)
