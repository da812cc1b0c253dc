"""The sweep model: a :class:`Sweep` of :class:`Job` s with their :class:`Curve` s, whatever they
were read from (sweep folders: :mod:`mtbench.sweeps.folders`; MLflow:
:mod:`mtbench.sweeps.mlflow_reader`), and the pure rules every report shares (which metric ranks a
task, which job is best, how a job is titled).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtbench.sweeps.plan import REPLICATE_KEY, display_key, setting_label
from mtbench.sweeps.stats import Spread, spread
from mtbench.train.best import final_ranking_metric, ranking_metric

DONE = "FINISHED"


@dataclass
class Curve:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def last(self) -> float:
        return self.values[-1] if self.values else math.nan

    def best(self) -> float:
        """Lowest finite value after step 0 (step 0 is the untrained model)."""
        vals = [v for s, v in zip(self.steps, self.values) if s > 0 and math.isfinite(v)]
        return min(vals) if vals else math.nan

    def mean(self) -> float:
        vals = [v for s, v in zip(self.steps, self.values) if s > 0 and math.isfinite(v)]
        return sum(vals) / len(vals) if vals else math.nan


@dataclass
class Job:
    """One job of a sweep, whatever it was read from."""

    label: str  # job number (sweep subdir) or run name
    status: str  # FINISHED, FAILED, RUNNING, KILLED, INCOMPLETE (files: no summary.json)
    swept: dict[str, str] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    run_id: str | None = None
    run_dir: str | None = None
    final: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metric -> val
    # task -> dp-test metric -> value: the full end-of-run validation (summary final_eval, MLflow final/<task>/<m>)
    full: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, dict[str, Curve]] = field(default_factory=dict)  # task -> metric -> val curve
    # task -> metric -> lowest per-display value after step 0, full precision (summary val_best; lcurve: 3 digits)
    val_best: dict[str, dict[str, float]] = field(default_factory=dict)
    best_hint: dict[str, str] = field(default_factory=dict)  # task -> metric the trainer ranked by
    fractions: dict[str, float] = field(default_factory=dict)
    requested: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)
    steps: int | None = None
    train_s: float | None = None  # the training loop
    run_s: float | None = None  # the whole job: start-up, data, tracing, training
    grad_cos: dict[str, Curve] = field(default_factory=dict)  # "a__b" -> curve
    grad_norm: dict[str, Curve] = field(default_factory=dict)  # task -> curve
    objective: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == DONE

    def final_value(self, task: str, metric: str) -> float:
        v = self.final.get(task, {}).get(metric)
        if v is None or not math.isfinite(v):
            v = self.curves.get(task, {}).get(metric, Curve()).last()
        return float(v) if v is not None else math.nan

    def full_value(self, task: str, metric: str) -> float:
        """The full end-of-run validation's ``metric`` (dp-test key) of ``task``; NaN when the job has none."""
        v = self.full.get(task, {}).get(metric)
        return float(v) if v is not None and math.isfinite(v) else math.nan

    def best_value(self, task: str, metric: str) -> float:
        v = self.val_best.get(task, {}).get(metric)
        if v is not None and math.isfinite(v):
            return float(v)
        return self.curves.get(task, {}).get(metric, Curve()).best()

    @property
    def steps_per_s(self) -> float:
        if self.steps and self.train_s:
            return self.steps / self.train_s
        return math.nan


@dataclass
class Sweep:
    jobs: list[Job]
    keys: list[str]  # swept override keys
    source: str  # what it was read from (a directory, or "<uri> run <id>")
    sweep_dir: Path | None = None
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    name: str = "sweep"

    @property
    def tasks(self) -> list[str]:
        seen: list[str] = []
        for job in self.jobs:
            for t in job.tasks:
                if t not in seen:
                    seen.append(t)
        return seen

    def metrics_of(self, task: str) -> list[str]:
        """Validation metrics of ``task`` with a finite value in at least one job."""
        names: list[str] = []
        for job in self.jobs:
            for m in list(job.final.get(task, {})) + list(job.curves.get(task, {})):
                if m not in names and (math.isfinite(job.final_value(task, m))
                                       or math.isfinite(job.best_value(task, m))):
                    names.append(m)
        return names

    def primary(self, task: str) -> str:
        """The metric that ranks jobs on ``task``: what the runs said, else the trainer's own rule."""
        for job in self.jobs:
            if task in job.best_hint:
                return job.best_hint[task]
        return ranking_metric(self.metrics_of(task))

    def full_primary(self, task: str) -> str | None:
        """The dp-test metric that ranks jobs on ``task`` by their full end-of-run validation (None: no job has
        one, e.g. runs from before it existed; then jobs are ranked on :meth:`primary`'s last display)."""
        merged: dict[str, float] = {}
        for job in self.jobs:
            for m, v in job.full.get(task, {}).items():
                if math.isfinite(v):
                    merged.setdefault(m, v)
        return final_ranking_metric(merged)

    def ranking(self, task: str) -> tuple[str, str]:
        """``(source, metric)`` jobs are ranked on for ``task``: ``("full", m)`` or ``("val", m)``."""
        full = self.full_primary(task)
        return ("full", full) if full else ("val", self.primary(task))

    def ranked_value(self, job: Job, task: str, ranking: tuple[str, str] | None = None) -> float:
        """``job``'s value of :meth:`ranking` (what "best job per task" compares); pass ``ranking`` when ranking
        many jobs, so it is looked up once rather than once per job."""
        source, metric = ranking or self.ranking(task)
        return job.full_value(task, metric) if source == "full" else job.final_value(task, metric)

    def ranking_label(self, task: str) -> str:
        """``final rmse_f`` (full end-of-run validation) or ``rmse_f`` (last display), for tables and tags."""
        source, metric = self.ranking(task)
        return f"final {metric}" if source == "full" else metric

    def pairs(self) -> list[str]:
        seen: list[str] = []
        for job in self.jobs:
            for p in job.grad_cos:
                if p not in seen:
                    seen.append(p)
        return seen

    # -- replicates: jobs that differ only in training.seed form one setting ----------------------------------

    @property
    def replicated(self) -> bool:
        """Whether the sweep varies the seed (``training.seed=1,2,3`` or ``sweep.replicates=N``)."""
        return REPLICATE_KEY in self.keys

    @property
    def setting_keys(self) -> list[str]:
        """The swept keys that make a setting (every key but the seed)."""
        return [k for k in self.keys if k != REPLICATE_KEY]

    def settings(self) -> list[Setting]:
        """The jobs grouped by their values of :attr:`setting_keys`, in job order (one job each when no seed is
        swept)."""
        groups: dict[tuple[str, ...], Setting] = {}
        keys, replicated = self.setting_keys, self.replicated  # once, not once per job
        for job in self.jobs:
            values = {k: job.swept.get(k, "") for k in keys}
            key = tuple(values.values()) if replicated else (job.label,)
            groups.setdefault(key, Setting(values, [])).jobs.append(job)
        return list(groups.values())

    def setting_spread(self, setting: Setting, task: str) -> Spread:
        """Mean and std over the setting's finished jobs of the value each job is ranked on for ``task``."""
        ranking = self.ranking(task)
        return spread(self.ranked_value(j, task, ranking) for j in setting.jobs if j.ok)

    def best_settings(self, task: str) -> list[tuple[Setting, Spread]]:
        """Settings with a finite mean for ``task``, lowest mean first."""
        ranked = [(s, self.setting_spread(s, task)) for s in self.settings()]
        return sorted([(s, sp) for s, sp in ranked if math.isfinite(sp.mean)], key=lambda x: x[1].mean)

    def best_job(self, task: str) -> Job | None:
        ranking = self.ranking(task)
        ranked = [(self.ranked_value(j, task, ranking), j) for j in self.jobs if j.ok]
        ranked = [(v, j) for v, j in ranked if math.isfinite(v)]
        return min(ranked, key=lambda x: x[0])[1] if ranked else None


@dataclass
class Setting:
    """One setting of a sweep (its swept values but the seed) and its replicate jobs."""

    values: dict[str, str]
    jobs: list[Job]

    @property
    def seeds(self) -> list[str]:
        return [j.swept.get(REPLICATE_KEY, "") for j in self.jobs]

    def title(self) -> str:
        """``fitting_weight.water_ener=4`` (``(all)`` when only the seed is swept)."""
        return setting_label(self.values) or "(all)"


def job_sort_key(label: str) -> tuple[int, Any]:
    return (0, int(label)) if label.isdigit() else (1, label)


def axis_key(key: str) -> str:
    """A swept key on an axis, in a legend or a column head: ``fitting_weight.water_dipole``, not the bare
    ``water_dipole`` (that reads like a task)."""
    return display_key(key)


def short_key(key: str, keys: Sequence[str]) -> str:
    """``training.fitting_weight.water_dipole`` -> ``water_dipole`` unless that is ambiguous: file names only
    (``error_vs_water_dipole.png``); labels use :func:`axis_key`."""
    last = key.rsplit(".", 1)[-1].split("@", 1)[0]
    if sum(1 for k in keys if k.rsplit(".", 1)[-1].split("@", 1)[0] == last) > 1:
        return key
    return last


def point_label(values: Mapping[str, Any], keys: Sequence[str], prefix: str = "") -> str:
    """``#3 water_dipole=2.48``: swept values with short keys and 3 significant digits, for labels that must fit
    beside a point or in a legend (a search's weights have 16 digits)."""
    def fmt(v: Any) -> str:
        try:
            return f"{float(v):.3g}"
        except (TypeError, ValueError):
            return str(v)

    vals = ", ".join(f"{short_key(k, keys)}={fmt(values[k])}" for k in keys if values.get(k) is not None)
    return " ".join(p for p in (prefix, vals) if p)


def job_point_label(job: Job, keys: Sequence[str]) -> str:
    """``#3 water_dipole=2.48``: a job's :func:`point_label` (Pareto and trade-off plots)."""
    return point_label(job.swept, keys, f"#{job.label}")


def job_title(job: Job, keys: Sequence[str]) -> str:
    """``#3 fitting_weight.water_ener=4, seed=2``."""
    values = setting_label({k: v for k in keys if (v := job.swept.get(k)) is not None})
    return f"#{job.label} {values}".strip()


def num(x: Any) -> float:
    """``float(x)``, NaN for what is not a number (None, "", text)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def requested_from_spec(spec: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, float]:
    """Sampling probabilities ``fitting_weight / sum`` (plain weights only; other schedules
    depend on the data and are read from the run's summary)."""
    training = spec.get("training") or {}
    if str((training.get("sampling") or {}).get("type", "weights")) != "weights":
        return {}
    weights = training.get("fitting_weight")
    if weights is None:
        w = {t: 1.0 for t in tasks}
    else:
        w = {t: max(num(weights.get(t, 0.0)), 0.0) for t in tasks}
    total = sum(v for v in w.values() if math.isfinite(v))
    return {t: v / total for t, v in w.items()} if total > 0 else {}
