"""A rich progress display for training: one bar for all steps (rate, ETA), one row per task showing how many steps
it has had (its bar fills with its share of the sampling) and its latest training / validation loss.

The rate is *training* steps per second: the time from the end of the previous step, or of the latest validation,
to the end of each step, so validation pauses do not count (graph building in the first step and checkpoint writes
do). The end-of-run summary (:func:`mtbench.train.run.print_summary`) splits the wall time the same way.

When stdout is not a terminal (``sbatch``, ``nohup``, ``> log``) a live display would show nothing until the run
ends, so it prints one plain line per display instead (:meth:`TrainingProgress.report`), flushed at once::

    mtbench: step 3/6  water_ener trn 20.1  val 16.1  water_dipole trn 0.58  val 0.504  0.1 training steps/s, 0:33 left
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO

from mtbench.terminal import is_terminal


def _fmt(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.3g}"


class TrainingProgress:
    def __init__(self, total: int, tasks: Sequence[str], *, enabled: bool = True, start: int = 0,
                 counts: dict[str, int] | None = None, clock: Callable[[], float] = time.perf_counter,
                 live: bool | None = None, stream: IO[str] | None = None) -> None:
        """``live``: rich's live display (default: when ``stream``, default stdout, is a terminal); else plain lines."""
        self.total, self.tasks, self.enabled, self.start = total, list(tasks), enabled, start
        self._stream = stream
        self.live = is_terminal(self._out()) if live is None else live
        self.counts = dict(counts or {})
        self.trn = {t: math.nan for t in self.tasks}
        self.val = {t: math.nan for t in self.tasks}
        self._progress = None
        self._main = None
        self._rows: dict[str, int] = {}
        self._clock = clock
        self._mark = clock()  # end of the latest step or validation
        self.train_steps, self.train_s = 0, 0.0

    @property
    def rate(self) -> float:
        """Training steps per second so far (validation excluded); NaN before the first step."""
        return self.train_steps / self.train_s if self.train_s > 0 else math.nan

    def rate_text(self) -> str:
        """``"23.3 training steps/s, 0:02 left"`` (empty before the first step)."""
        if not math.isfinite(self.rate):
            return ""
        left = int((self.total - self.start - self.train_steps) / self.rate)
        return f"{self.rate:.1f} training steps/s, {left // 60}:{left % 60:02d} left"

    def _out(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    def __enter__(self) -> "TrainingProgress":
        if self.enabled and self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            width = max(len(t) for t in self.tasks) if self.tasks else 5
            self._progress = Progress(TextColumn(f"{{task.description:<{width + 2}}}"), BarColumn(bar_width=30),
                                      MofNCompleteColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self._progress.__enter__()
            self._main = self._progress.add_task("train", total=self.total, completed=self.start, info="")
            if len(self.tasks) > 1:
                for t in self.tasks:
                    self._rows[t] = self._progress.add_task(f"  {t}", total=self.total,
                                                           completed=self.counts.get(t, 0), info="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def _info(self, task: str) -> str:
        return f"trn {_fmt(self.trn[task])}  val {_fmt(self.val[task])}"

    def advance(self, task: str, loss: float) -> None:
        self.trn[task] = loss
        now = self._clock()
        self.train_s += now - self._mark
        self.train_steps += 1
        self._mark = now
        if self._progress is None:
            return
        rate = self.rate_text()
        if self._rows:
            self._progress.update(self._main, advance=1, info=rate)
            self._progress.update(self._rows[task], advance=1, info=self._info(task))
        else:
            self._progress.update(self._main, advance=1, info=f"{rate}  {self._info(task)}")

    def line(self, step: int) -> str:
        """The plain progress line of ``step``: per-task training / validation loss, rate and time left."""
        tasks = "  ".join(f"{t} {self._info(t)}" for t in self.tasks)
        rate = self.rate_text()
        return f"mtbench: step {step}/{self.total}  {tasks}" + (f"  {rate}" if rate else "")

    def report(self, step: int) -> None:
        """After a display: one flushed line on a pipe or file (a terminal's live display shows it already)."""
        if self.enabled and not self.live:
            out = self._out()
            try:
                out.write(self.line(step) + "\n")
                out.flush()
            except (OSError, ValueError):  # a full disk or a closed log: progress lines never stop a training
                pass

    def set_val(self, task: str, value: float) -> None:
        self.val[task] = value
        self._mark = self._clock()  # validation time is not training time
        if self._progress is not None and task in self._rows:
            self._progress.update(self._rows[task], info=self._info(task))
