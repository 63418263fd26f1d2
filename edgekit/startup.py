"""Ctrl-C while the ``edgekit`` program starts: one line, exit 130, not a traceback.

Until a command runs, the program only imports modules, loads plugins and parses its arguments:
there is nothing to clean up, so the process ends at once. A command's run installs its own
handlers (:mod:`edgekit.interrupts`: an exception that unwinds the build) and puts this one back
when it returns. This module (and that one) imports nothing heavy: ``edgekit/__init__`` installs it
first thing.
"""

from __future__ import annotations

import os
import signal
import threading

# imported now, not in the handler: a signal can arrive in the middle of an import
from edgekit.interrupts import Interrupted, exit_status


def exit_on_interrupt() -> None:
    """From now on, SIGINT ends the process with ``error: interrupted`` and exit code 130."""
    if threading.current_thread() is threading.main_thread():  # handlers can only be set there
        signal.signal(signal.SIGINT, _exit_now)


def _exit_now(signum, frame) -> None:
    said, code = exit_status(Interrupted(signum))
    os.write(2, f"error: {said}\n".encode())
    os._exit(code)  # no unwinding: a KeyboardInterrupt mid-import would end in a traceback
