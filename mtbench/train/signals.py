"""Stop training at a step boundary on SIGTERM / SIGINT / SIGUSR1 (SLURM time limit, preemption, Ctrl-C).

The handler only sets a flag; the training loop checks it after each step, writes a checkpoint of that step and
returns, so nothing is cut mid-write. A second signal during that shutdown exits at once: checkpoints are written
to ``.tmp`` and renamed, so an abrupt exit leaves the previous checkpoint valid.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

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
        self._previous.clear()
