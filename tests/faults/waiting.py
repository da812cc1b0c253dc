"""Waiting for a training subprocess to reach the point where a fault test strikes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest


def wait_until(proc: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float,
               poll: float = 0.1) -> None:
    """Return once ``ready()``; fail the test (with the process's stderr) if it ends first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended before {what}: rc {proc.returncode}\n{proc.communicate()[1][-3000:]}")
        time.sleep(poll)
    proc.kill()
    pytest.fail(f"training never reached {what}")
