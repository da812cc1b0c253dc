"""Learning-curve files in DeePMD's lcurve layout: the writer and the one reader.

A file is a ``# step <metric>_val <metric>_trn ... lr`` header and one row per display step. The reader also takes
DeePMD-kit's own files, so the benchmarks and the sweep report read every trainer's curves the same way:
DeePMD-kit 2.2's multi-task ``lcurve.out`` prefixes every column with its task (``water_ener_rmse_f_val``) and
writes the header and each row as one physical line per task (only the first line of a row starts with the
integer step). A torn last row (a file still being written) is dropped.

Which file a task's curve goes to is :class:`mtbench.rundir.RunDir`'s business, not this module's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

VAL, TRN = "_val", "_trn"
_ROW_START = re.compile(r"^\s*(\d+)(\s|$)")


class LcurveWriter:
    """Appends one row per display step; every row is flushed (a crash keeps the curve so far)."""

    def __init__(self, path: str | Path, metric_names: Sequence[str], append: bool = False) -> None:
        self.path = Path(path)
        self.names = list(metric_names)
        exists = self.path.exists() and append
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a" if append else "w")
        if not exists:
            cols = "".join(f" {n + VAL:>11s} {n + TRN:>11s}" for n in self.names)
            self._f.write(f"#{'step':>6s}{cols} {'lr':>8s}\n")
            self._f.flush()

    def write(self, step: int, val: Mapping[str, float], trn: Mapping[str, float], lr: float) -> None:
        cols = "".join(f" {_f(val.get(n)):11.2e} {_f(trn.get(n)):11.2e}" for n in self.names)
        self._f.write(f"{step:7d}{cols} {lr:8.1e}\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> LcurveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _f(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def row_step(line: str) -> int | None:
    """The step of a line that starts a row; None for comments and continuation lines."""
    m = _ROW_START.match(line)
    return int(m.group(1)) if m else None


@dataclass
class Lcurve:
    """The columns of one lcurve file (``step`` first) and its complete rows."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)

    @property
    def steps(self) -> list[int]:
        return [int(r[0]) for r in self.rows]

    @property
    def metrics(self) -> list[str]:
        """Metric names that have a validation column, in column order (``rmse``, ``rmse_e``, ...)."""
        return [c[: -len(VAL)] for c in self.columns if c.endswith(VAL)]

    def column(self, name: str) -> list[float]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def val(self, metric: str) -> list[float]:
        return self.column(metric + VAL)

    def trn(self, metric: str) -> list[float]:
        return self.column(metric + TRN)

    def row(self, step: int | None = None) -> dict[str, float] | None:
        """``{column: value}`` of the last row at ``step`` (the last row when ``step`` is None or absent)."""
        if not self.rows:
            return None
        chosen = next((r for r in reversed(self.rows) if step is not None and int(r[0]) == int(step)), self.rows[-1])
        return dict(zip(self.columns, chosen))

    def validation(self, step: int | None = None) -> tuple[dict[str, float], int] | None:
        """(``{metric: validation value}``, its step) of :meth:`row`."""
        row = self.row(step)
        if row is None:
            return None
        return {c[: -len(VAL)]: v for c, v in row.items() if c.endswith(VAL)}, int(row["step"])

    def by_task(self, tasks: Sequence[str] = ()) -> dict[str, Lcurve]:
        """Split DeePMD-kit's task-prefixed columns (``water_ener_rmse_val``) into one curve per task; columns
        with no known task prefix go to task ``"default"``."""
        if not self.columns:
            return {}
        ordered = sorted(tasks, key=len, reverse=True)
        groups: dict[str, list[tuple[int, str]]] = {}
        for i, name in enumerate(self.columns[1:], start=1):
            task, metric = "default", name
            for t in ordered:
                if name.startswith(t + "_"):
                    task, metric = t, name[len(t) + 1:]
                    break
            groups.setdefault(task, []).append((i, metric))
        return {task: Lcurve(["step", *(m for _, m in cols)], [[r[0], *(r[i] for i, _ in cols)] for r in self.rows])
                for task, cols in groups.items()}


def read_lcurve(path: str | Path) -> Lcurve:
    """Parse an lcurve file (see the module docstring); no header gives an empty :class:`Lcurve`."""
    header: list[str] | None = None
    in_header = False
    rows: list[list[float]] = []
    current: list[float] | None = None
    for line in Path(path).read_text().splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            tokens = s.lstrip("#").split()
            in_header = header is None and bool(tokens) and tokens[0] == "step"
            if in_header:
                header = tokens
            continue
        step = row_step(line)
        if step is None and in_header and header is not None and not _is_number(s.split()[0]):
            header.extend(s.split())  # continuation of a multi-line header
            continue
        in_header = False
        try:
            values = [float(x) for x in s.split()]
        except ValueError:
            continue
        if step is not None:
            current = values
            rows.append(current)
        elif current is not None:
            current.extend(values)
    if header is None:
        return Lcurve()
    return Lcurve(header, [r for r in rows if len(r) == len(header)])


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def finite_or_none(v: float) -> float | None:
    """JSON has no NaN: a missing or non-finite value is ``None``."""
    return v if v is not None and math.isfinite(v) else None


def truncate_lcurve(path: str | Path, step: int) -> int:
    """Drop every row past ``step`` (a resume from the checkpoint of ``step`` writes them again), so each step
    appears once; the header and a multi-line row's continuation lines stay with their row. Rewritten through a
    temporary file; returns the number of rows dropped (0 when the file is absent)."""
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text().splitlines(keepends=True)
    kept: list[str] = []
    dropped = 0
    keep = True
    for line in lines:
        if not line.endswith("\n"):  # a torn last line: the killed writer's half row
            break
        row = row_step(line)
        if row is not None:
            keep = row <= step
            dropped += not keep
        if keep:
            kept.append(line)
    if len(kept) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        tmp.replace(path)
    return dropped
