"""A rich progress bar for training: steps, steps/s, ETA and the latest loss of every task."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import TracebackType


class TrainingProgress:
    def __init__(self, total: int, tasks: Sequence[str], *, enabled: bool = True, start: int = 0) -> None:
        self.total, self.tasks, self.enabled, self.start = total, list(tasks), enabled, start
        self.trn = {t: math.nan for t in self.tasks}
        self.val = {t: math.nan for t in self.tasks}
        self._progress = None
        self._task_id = None

    def _desc(self) -> str:
        parts = []
        for t in self.tasks:
            parts.append(f"{t} trn {self.trn[t]:.3g} val {self.val[t]:.3g}")
        return " | ".join(parts)

    def __enter__(self) -> "TrainingProgress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                      TextColumn("{task.description}"), transient=False)
            self._progress.__enter__()
            self._task_id = self._progress.add_task(self._desc(), total=self.total, completed=self.start,
                                                    rate="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def advance(self, task: str, loss: float) -> None:
        self.trn[task] = loss
        if self._progress is not None:
            t = self._progress.tasks[0]
            rate = f"{t.speed:.1f} it/s" if t.speed else ""
            self._progress.update(self._task_id, advance=1, description=self._desc(), rate=rate)

    def set_val(self, task: str, value: float) -> None:
        self.val[task] = value
