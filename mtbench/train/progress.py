"""A rich progress display for training: one bar for all steps (rate, ETA), one row per task showing how many steps
it has had (its bar fills with its share of the sampling) and its latest training / validation loss."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import TracebackType


def _fmt(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.3g}"


class TrainingProgress:
    def __init__(self, total: int, tasks: Sequence[str], *, enabled: bool = True, start: int = 0,
                 counts: dict[str, int] | None = None) -> None:
        self.total, self.tasks, self.enabled, self.start = total, list(tasks), enabled, start
        self.counts = dict(counts or {})
        self.trn = {t: math.nan for t in self.tasks}
        self.val = {t: math.nan for t in self.tasks}
        self._progress = None
        self._main = None
        self._rows: dict[str, int] = {}

    def __enter__(self) -> "TrainingProgress":
        if self.enabled:
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
        if self._progress is None:
            return
        main = self._progress.tasks[self._main]
        rate = ""
        if main.speed:
            left = int((main.total - main.completed - 1) / main.speed)
            rate = f"{main.speed:.1f} steps/s, {left // 60}:{left % 60:02d} left"
        if self._rows:
            self._progress.update(self._main, advance=1, info=rate)
            self._progress.update(self._rows[task], advance=1, info=self._info(task))
        else:
            self._progress.update(self._main, advance=1, info=f"{rate}  {self._info(task)}")

    def set_val(self, task: str, value: float) -> None:
        self.val[task] = value
        if self._progress is not None and task in self._rows:
            self._progress.update(self._rows[task], info=self._info(task))
