"""Run one training command and watch it: peak RSS, when each learning-curve line appears, an optional deadline.

Why poll the learning curve: it is the one output every tool writes at the same point of its loop (right after the
validation of a ``disp_freq`` block), so the time between two new lines is the wall time of one block, measured the
same way for every tool, whatever the tool itself reports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process, all its threads (Linux /proc); None once it is gone.

    Why: on a shared machine CPU time per step is far less disturbed by other work than wall time.
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime: fields 14 and 15 of stat
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


@dataclass
class LineStamp:
    """A learning-curve data line and the monotonic time (s since launch) it was first seen."""

    t: float
    text: str
    cpu_s: float | None = None  # user + system CPU time of the training process when the line was seen


@dataclass
class ProcessRecord:
    returncode: int | None
    wall_s: float
    peak_rss_mb: float  # the kernel's peak RSS of the process (ru_maxrss; the polled tree peak if unavailable)
    maxrss_mb: float  # ru_maxrss: exact, max over the process and its waited-for children
    tree_rss_mb: float  # max over 0.25 s samples of the summed RSS of the process tree (a fork counts twice)
    stamps: list[LineStamp] = field(default_factory=list)
    killed_at_deadline: bool = False
    log_path: str = ""


def _tree_pids(root: int) -> list[int]:
    """The process and all its descendants (Linux /proc); vanished processes are skipped."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pids


def tree_rss_mb(root: int) -> float:
    total_pages = 0
    for pid in _tree_pids(root):
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total_pages += int(fh.read().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total_pages * _PAGE_KB / 1024.0


class _LineWatcher:
    """Reads new complete, non-comment lines of a file as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = 0
        self._partial = ""

    def poll(self) -> list[str]:
        try:
            with open(self.path) as fh:
                fh.seek(self._pos)
                chunk = fh.read()
                self._pos = fh.tell()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        return [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def run_monitored(cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path,
                  watch: Callable[[], Path | None], deadline_s: float | None = None,
                  timeout_s: float | None = None, poll_s: float = 0.05, rss_every_s: float = 0.25,
                  on_line: Callable[[LineStamp], None] | None = None) -> ProcessRecord:
    """Start ``cmd`` in its own session, poll until it exits; SIGTERM its group at ``deadline_s`` (time budget).

    ``watch`` returns the learning-curve file once it is known (for mtbench the name depends on the task). A run
    past ``timeout_s`` is killed and reported with returncode None.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        stamps: list[LineStamp] = []
        watcher: _LineWatcher | None = None
        peak = 0.0
        next_rss = 0.0
        killed = False
        kill_hard_at = float("inf")
        timed_out = False
        status, usage = 0, None
        try:
            while True:
                now = time.monotonic() - t0
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if watcher is None:
                    path = watch()
                    if path is not None:
                        watcher = _LineWatcher(path)
                if watcher is not None:
                    lines = watcher.poll()
                    cpu = process_cpu_s(proc.pid) if lines else None
                    for text in lines:
                        stamp = LineStamp(now, text, cpu)
                        stamps.append(stamp)
                        if on_line is not None:
                            on_line(stamp)
                if pid != 0:
                    break
                if now >= next_rss:
                    peak = max(peak, tree_rss_mb(proc.pid))
                    next_rss = now + rss_every_s
                if deadline_s is not None and not killed and now >= deadline_s:
                    _signal_group(proc.pid, signal.SIGTERM)
                    killed = True
                    kill_hard_at = now + 15.0
                if killed and now >= kill_hard_at:
                    _signal_group(proc.pid, signal.SIGKILL)
                if timeout_s is not None and not timed_out and now >= timeout_s:
                    _signal_group(proc.pid, signal.SIGKILL)
                    timed_out = True
                time.sleep(poll_s)
        except BaseException:
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            raise
        wall = time.monotonic() - t0
        if watcher is not None:  # lines written just before exit
            for text in watcher.poll():
                stamps.append(LineStamp(wall, text))
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss = (usage.ru_maxrss / 1024.0) if usage is not None else 0.0
    rc = None if timed_out else proc.returncode
    return ProcessRecord(returncode=rc, wall_s=wall, peak_rss_mb=maxrss or peak, maxrss_mb=maxrss,
                         tree_rss_mb=peak, stamps=stamps, killed_at_deadline=killed, log_path=str(log_path))


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group that we created for this run (start_new_session: pgid == pid)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
