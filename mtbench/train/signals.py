"""Stop training at a step boundary on SIGTERM / SIGINT / SIGUSR1 (SLURM time limit, preemption, Ctrl-C).

The handler only sets a flag; the training loop checks it after each step, writes a checkpoint of that step and
returns, so nothing is cut mid-write. A second signal during that shutdown exits at once: checkpoints are written
to ``.tmp`` and renamed, so an abrupt exit leaves the previous checkpoint valid.

When a command runs the training (:class:`CommandSignals` around it), "that shutdown" goes on after the loop, to
the tracker's last calls and the resume line, and the process then ends with the stop's status whatever arrives.
A library call (``mtbench.api.train`` in a notebook) has no such scope and gets its own handlers back, so a later
Ctrl-C is a ``KeyboardInterrupt`` again.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

#: exit status per signal, shell convention 128 + signum (SIGUSR1 is SLURM's pre-warning: same as SIGTERM)
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGUSR1: 143}


class StopRequest:
    """Context manager: installs the handlers (main thread only) and restores the previous ones on exit."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(signal.Signals(self.signum), 143) if self.signum is not None else 0

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # second signal: leave now; the .tmp+rename writes keep files valid
            os._exit(EXIT_CODES.get(signal.Signals(signum), 143))
        self.signum = signum

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_CODES:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
            if self.signum is not None and isinstance(prev, CommandSignals):
                prev.stopped = True  # the command is shutting down: its scope takes over the second signal
        self._previous.clear()


class CommandSignals:
    """A command's scope for signals (``python -m mtbench``, ``python -m mtbench.train``).

    Before a training run in it stopped on a signal, a signal does what it did without the scope (the previous
    handler: ``KeyboardInterrupt``, or the default action). After such a stop the process is on its way out: inside
    the scope (the tracker's last calls, the resume line) a further signal exits at once with 128 + signum; once the
    scope is left, further signals are ignored, because Python hands its handlers back to the default action while
    it tears down, and a signal then would end the process *by* the signal (status -2) instead of with the stop's
    130/143, which launchers and job scripts read as "resumable".
    """

    def __init__(self) -> None:
        self.stopped = False
        self._previous: dict[int, Any] = {}

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.stopped:
            os._exit(EXIT_CODES.get(signal.Signals(signum), 143))
        prev = self._previous.get(signum, signal.SIG_DFL)
        if callable(prev):
            prev(signum, frame)
        elif prev == signal.SIG_DFL:  # the default action (terminate): deliver the signal again without the scope
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def __enter__(self) -> "CommandSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_CODES:
                self._previous[sig] = signal.signal(sig, self)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if self.stopped else prev)
        self._previous.clear()
