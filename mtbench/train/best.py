"""Best checkpoint per task, on the validation metric that stays comparable while the loss prefactors move.

The total ``rmse`` of an energy task mixes terms whose prefactors follow the learning rate, so it is not comparable
across steps; the force RMSE (else the energy RMSE per atom) is. Tensor losses have constant prefactors: ``rmse``.

:func:`ranking_metric` is the one rule for "which metric ranks a task": the trainer's best checkpoint uses it, and
so does the sweep comparison (``mtbench.sweeps``), which may import this module (it loads no TensorFlow).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mtbench.rundir import RunDir, best_name
from mtbench.spec.tasks import TaskSpec

RANKING_ORDER: tuple[str, ...] = ("rmse_f", "rmse_e", "rmse")
"""Preferred ranking metrics, best first: the first one a task reports ranks it."""


def ranking_metric(reported: Iterable[str]) -> str:
    """The metric that ranks a task reporting the validation metrics ``reported`` (lcurve names, ``rmse`` first).

    The first of :data:`RANKING_ORDER` present, else the first reported, else ``rmse``.
    """
    names = list(reported)
    for m in RANKING_ORDER:
        if m in names:
            return m
    return names[0] if names else "rmse"


FINAL_RANKING_ORDER: tuple[str, ...] = ("rmse_f", "rmse_ea", "rmse_e", "rmse", "rmse_atomic")
"""The same preference for the full end-of-run evaluation (:mod:`mtbench.train.final_eval`), in dp-test metric
keys: forces, else energy per atom, else energy; tensors: the global tensor, else the atomic one."""


def final_ranking_metric(metrics: Mapping[str, Any]) -> str | None:
    """The metric that ranks a task's full evaluation ``metrics`` (dp-test keys): the first of
    :data:`FINAL_RANKING_ORDER` with a finite value, else the first finite ``rmse*``; None when none is."""
    def finite(m: str) -> bool:
        v = metrics.get(m)
        return v is not None and math.isfinite(float(v))

    for m in (*FINAL_RANKING_ORDER, *(k for k in metrics if k.startswith("rmse"))):
        if finite(m):
            return m
    return None


def best_metric_name(task: TaskSpec) -> str:
    """The metric that ranks ``task``'s checkpoints: :func:`ranking_metric` of what its loss reports."""
    from mtbench.loss import reported_metrics  # TensorFlow: only the trainer calls this

    return ranking_metric(reported_metrics(task.loss))


DIVERGENCE_FACTOR = 1e3
"""A validation metric above this factor times its lowest value so far has diverged."""


def diverged_metrics(val: Mapping[str, float], floors: Mapping[str, float]) -> list[str]:
    """The metrics of ``val`` that are above :data:`DIVERGENCE_FACTOR` x their ``floors`` (lowest so far)."""
    return [k for k, v in val.items()
            if math.isfinite(v) and k in floors and floors[k] > 0 and v > DIVERGENCE_FACTOR * floors[k]]


class BestTracker:
    """Per task: the best validation result so far, and the lowest value seen of each metric (``floors``).

    A result whose ranking metric is NaN/inf, where any metric is inf, or where any has grown :data:`DIVERGENCE_FACTOR`-fold over its floor is never best,
    whatever its ranking metric says (a model with ``rmse_e`` 5.8e23 is not best on ``rmse_f``).
    """

    def __init__(self, metric_names: Mapping[str, str]) -> None:
        self.metric = dict(metric_names)
        self.best: dict[str, dict[str, Any]] = {}
        self.floors: dict[str, dict[str, float]] = {}

    def observe(self, task: str, val: Mapping[str, float]) -> list[str]:
        """Record one validation result; returns the metrics that diverged (vs. the floors before it)."""
        floors = self.floors.setdefault(task, {})
        diverged = diverged_metrics(val, floors)
        for k, v in val.items():
            if math.isfinite(v):
                floors[k] = min(floors.get(k, math.inf), float(v))
            else:
                floors.setdefault(k, math.inf)  # seen; stays non-finite until a finite value comes
        return diverged

    def improves(self, task: str, val: Mapping[str, float], step: int) -> bool:
        name = self.metric[task]
        v = val.get(name, math.nan)
        if not math.isfinite(v):
            return False
        floors = self.floors.get(task, {})
        # inf anywhere, or a metric grown 1e3-fold: not best. NaN alone is not refused: a validation batch without
        # some label (a global-only dipole system) has NaN in that column; a NaN model is NaN on ``name`` too
        if diverged_metrics(val, floors) or any(math.isinf(x) for x in val.values()):
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
