"""Per-task learning-curve files in DeePMD's lcurve layout (step, val/trn pairs per metric, lr)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


class LcurveWriter:
    def __init__(self, path: str | Path, metric_names: Sequence[str], append: bool = False) -> None:
        self.path = Path(path)
        self.names = list(metric_names)
        exists = self.path.exists() and append
        self._f = open(self.path, "a" if append else "w")
        if not exists:
            cols = "".join(f" {n + '_val':>11s} {n + '_trn':>11s}" for n in self.names)
            self._f.write(f"#{'step':>6s}{cols} {'lr':>8s}\n")
            self._f.flush()

    def write(self, step: int, val: Mapping[str, float], trn: Mapping[str, float], lr: float) -> None:
        cols = "".join(f" {val.get(n, float('nan')):11.2e} {trn.get(n, float('nan')):11.2e}" for n in self.names)
        self._f.write(f"{step:7d}{cols} {lr:8.1e}\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
