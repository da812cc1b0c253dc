"""Best checkpoint per task, on the validation metric that stays comparable while the loss prefactors move.

The total ``rmse`` of an energy task mixes terms whose prefactors follow the learning rate, so it is not comparable
across steps; the force RMSE (else the energy RMSE per atom) is. Tensor losses have constant prefactors: ``rmse``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbench.rundir import RunDir, best_name
from mtbench.spec.tasks import TaskSpec


def best_metric_name(task: TaskSpec) -> str:
    if task.fitting_net.get("type", "ener") != "ener":
        return "rmse"
    loss = task.loss
    if loss.get("start_pref_f", 1000) or loss.get("limit_pref_f", 1):
        return "rmse_f"
    return "rmse_e"


class BestTracker:
    def __init__(self, metric_names: Mapping[str, str]) -> None:
        self.metric = dict(metric_names)
        self.best: dict[str, dict[str, Any]] = {}

    def improves(self, task: str, val: Mapping[str, float], step: int) -> bool:
        name = self.metric[task]
        v = val.get(name, math.nan)
        if not math.isfinite(v):
            return False
        cur = self.best.get(task)
        if cur is None or v < cur["value"]:
            self.best[task] = {"metric": name, "value": float(v), "step": int(step),
                               "checkpoint": best_name(task)}
            return True
        return False

    def summary(self) -> dict[str, dict[str, Any]]:
        return {t: dict(v) for t, v in self.best.items()}

    def write(self, run_dir: Path | RunDir) -> Path:
        """Write ``checkpoints/best.json`` of the run folder ``run_dir``."""
        run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
        return run.write_best(self.summary())
