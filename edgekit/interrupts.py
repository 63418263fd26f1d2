"""SIGINT and SIGTERM end a build the same clean way: as an exception in the main thread.

Python runs signal handlers in the main thread only, so an exception is the one way to unwind every
``with`` block (temporary directories, the staging directory, locks) on the way out. The CLI runs its
commands under :func:`raising_signals`: the first signal raises :class:`Interrupted` (a ``KeyboardInterrupt``, so
``subprocess.run`` kills its child and code that lets Ctrl-C through lets SIGTERM through too) and
starts a thread that terminates this process's child processes. That thread is needed because worker
threads (``ThreadPoolExecutor``) cannot receive the exception: a worker waiting for a QEMU or gcc
child would keep the executor's shutdown, and so the main thread's unwinding, waiting until that
child finished on its own. With the child gone the worker returns at once. The CLI then exits with
the shell's code for the signal: 130 for SIGINT, 143 for SIGTERM.

Signals after the first are ignored: they would cut the cleanup short and leave files behind.
:func:`deferred` holds signals back over a few steps that must not be split (the commit of an output
directory) and delivers them afterwards.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: a child gets this long to exit after SIGTERM before it is killed
GRACE_SECONDS = 2.0
POLL_SECONDS = 0.05


class Interrupted(KeyboardInterrupt):
    """The command was stopped by SIGINT or SIGTERM (``signum``)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_raised = threading.Event()
_reaping = threading.Event()  # set while the reaper thread runs: from the signal to the command's end
_reaper_lock = threading.Lock()
_pending: list[int] = []


def raising_signals(func: Callable) -> Callable:
    """Run ``func`` with SIGINT and SIGTERM raising :class:`Interrupted` (the CLI's commands)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        _raised.clear()
        try:
            with _handlers(_raise):
                return func(*args, **kwargs)
        finally:
            _reaping.clear()  # a program that runs commands in-process keeps its later children

    return wrapper


def exit_status(exc: KeyboardInterrupt) -> tuple[str, int]:
    """What the CLI says and its exit code (the shell's 128 + signal) after ``exc``."""
    signum = getattr(exc, "signum", signal.SIGINT)
    said = "interrupted" if signum == signal.SIGINT else f"terminated by {signal.Signals(signum).name}"
    return said, 128 + signum


def _raise(signum, frame) -> None:
    if _raised.is_set():
        return
    _raised.set()
    # Before anything unwinds: a compiler's cc1/as still writing into a temporary directory while a
    # `with` block removes it would leave the directory behind.
    stop_children()
    raise Interrupted(signum)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back over the block, then deliver the first one that came to the
    handler that was in place before (ours raises :class:`Interrupted`; Python's default SIGINT
    handler raises KeyboardInterrupt)."""
    try:
        with _handlers(_hold):
            yield
    finally:
        if _pending:
            signum = _pending.pop()
            signal.raise_signal(signum)


def _hold(signum, frame) -> None:
    if not _pending:
        _pending.append(signum)


@contextmanager
def _handlers(handler: Callable) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM over the block, then the previous ones again. Outside the
    main thread this does nothing: handlers cannot be set there, and signals only reach the main one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def stop_children(timeout: float = GRACE_SECONDS + 1.0) -> None:
    """Terminate every descendant process and wait until they are gone (those that ignore SIGTERM
    are killed after GRACE_SECONDS), so none outlives this process. The signal handler calls this
    before the build unwinds, and the CLI again once it has (a worker may have started one since)."""
    _start_reaper()
    deadline = time.monotonic() + timeout
    while descendants() and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)


def _start_reaper() -> None:
    with _reaper_lock:
        if not _reaping.is_set():
            _reaping.set()
            threading.Thread(target=_reap_children, name="edgekit-reaper", daemon=True).start()


def _reap_children() -> None:
    """Until the command ends: terminate children as they appear (a worker thread may still start
    one before it notices the build is over), and kill those that ignore SIGTERM."""
    first_seen: dict[int, float] = {}
    while _reaping.is_set():
        now = time.monotonic()
        for pid in descendants():
            first_seen.setdefault(pid, now)
            _kill(pid, signal.SIGTERM if now - first_seen[pid] < GRACE_SECONDS else signal.SIGKILL)
        time.sleep(POLL_SECONDS)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def descendants() -> list[int]:
    """Live (not zombie) descendants of this process, from /proc; empty where
    there is no /proc. The whole tree is listed before any is signalled, so a compiler driver and
    its cc1/as die together instead of the latter being orphaned out of reach."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":  # a zombie has exited; its parent (subprocess) reaps it
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [os.getpid()]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found
