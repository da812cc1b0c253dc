"""``python -m mtbench.compare TARGET [-o DIR]``: compare the jobs of a sweep side by side.

TARGET is a sweep directory (``outputs/multirun/<date>/<time>``), a sweep's parent MLflow run id,
or an MLflow experiment name (its latest sweep). The report goes to DIR (default
``<sweep dir>/compare/``): ``summary.csv`` (every number), ``summary.md`` (the table a person
reads) and PNG plots; when the sweep has a parent run it is logged there (``compare/``), with the
parent's summary tags and metrics.

A sweep directory is read from its files alone (``input.json``, ``lcurve.<task>.out``,
``summary.json``, ``.hydra/``); when the jobs were tracked and the store answers, the curves only
MLflow holds (gradient diagnostics) are added. A run id or experiment is read from MLflow alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtbench.errors import DataError, MtbenchError

log = logging.getLogger("mtbench.compare")

#: Per-task metric that ranks jobs when the run does not say (energy: forces, else energy per
#: atom; tensors: rmse). An energy task's total ``rmse`` mixes terms whose prefactors move with
#: the learning rate, so it is not comparable across runs with different schedules.
PRIMARY_ORDER = ("rmse_f", "rmse_e", "rmse")
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
    curves: dict[str, dict[str, Curve]] = field(default_factory=dict)  # task -> metric -> val curve
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

    def best_value(self, task: str, metric: str) -> float:
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
        """The metric that ranks jobs on ``task``."""
        for job in self.jobs:
            if task in job.best_hint:
                return job.best_hint[task]
        have = self.metrics_of(task)
        for m in PRIMARY_ORDER:
            if m in have:
                return m
        return have[0] if have else "rmse"

    def pairs(self) -> list[str]:
        seen: list[str] = []
        for job in self.jobs:
            for p in job.grad_cos:
                if p not in seen:
                    seen.append(p)
        return seen

    def best_job(self, task: str) -> Job | None:
        metric = self.primary(task)
        ranked = [(j.final_value(task, metric), j) for j in self.jobs if j.ok]
        ranked = [(v, j) for v, j in ranked if math.isfinite(v)]
        return min(ranked, key=lambda x: x[0])[1] if ranked else None


def job_sort_key(label: str) -> tuple[int, Any]:
    return (0, int(label)) if label.isdigit() else (1, label)


def short_key(key: str, keys: Sequence[str]) -> str:
    """``training.fitting_weight.water_dipole`` -> ``water_dipole`` unless that is ambiguous."""
    last = key.rsplit(".", 1)[-1].split("@", 1)[0]
    if sum(1 for k in keys if k.rsplit(".", 1)[-1].split("@", 1)[0] == last) > 1:
        return key
    return last


def job_title(job: Job, keys: Sequence[str]) -> str:
    values = " ".join(f"{short_key(k, keys)}={job.swept[k]}" for k in keys if k in job.swept)
    return f"#{job.label} {values}".strip()


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


# ------------------------------------------------------------------------------- from files


def read_lcurve(path: Path) -> dict[str, Curve]:
    """Validation curves of one ``lcurve.<task>.out`` (``{metric: Curve}``)."""
    from mtbench.train.lcurve import read_lcurve as read_lcurve_file

    lc = read_lcurve_file(path)
    return {m: Curve(lc.steps, [_num(v) for v in lc.val(m)]) for m in lc.metrics}


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
        w = {t: max(_num(weights.get(t, 0.0)), 0.0) for t in tasks}
    total = sum(v for v in w.values() if math.isfinite(v))
    return {t: v / total for t, v in w.items()} if total > 0 else {}


def _job_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name != "compare"
            and ((p / ".hydra" / "overrides.yaml").is_file() or (p / "input.json").is_file())]
    return sorted(dirs, key=lambda p: job_sort_key(p.name))


def _load_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.load(path) if path.is_file() else None


def load_job_dir(job_dir: Path, keys: Sequence[str]) -> tuple[Job, list[str]]:
    """One job from its run dir; also returns its task overrides."""
    from mtbench.rundir import RunDir
    from mtbench.sweeps.callback import swept_values

    run = RunDir(job_dir)
    overrides_cfg = _load_yaml(run.hydra_overrides)
    overrides = [str(x) for x in overrides_cfg] if overrides_cfg is not None else []
    job = Job(label=job_dir.name, status="INCOMPLETE", run_dir=str(job_dir.resolve()))
    spec: dict[str, Any] = run.read_input() or {}
    fitting = (spec.get("model") or {}).get("fitting_net_dict") or {}
    job.tasks = list(fitting)
    for task, path in run.lcurves().items():
        job.curves[task] = read_lcurve(path)
        if task not in job.tasks:
            job.tasks.append(task)
    s = run.read_summary()
    if s is not None:
        job.status = DONE
        job.final = {t: {m: _num(v) for m, v in (res.get("val") or {}).items()} for t, res in s.final.items()}
        job.counts = {t: _num(v) for t, v in s.counts.items()}
        job.fractions = {t: _num(v) for t, v in s.fractions.items()}
        job.requested = {t: _num(v) for t, v in s.requested.items()}
        job.best_hint = {t: str(b["metric"]) for t, b in s.best.items() if isinstance(b, Mapping) and "metric" in b}
        job.steps = int(s.steps) if s.steps is not None else None
        job.train_s = _num(s.wall_s)
        job.run_id = s.run_id
        job.objective = _num(s.objective)
        for t in job.final:
            if t not in job.tasks:
                job.tasks.append(t)
        if run.input_json.is_file():
            job.run_s = run.summary_json.stat().st_mtime - run.input_json.stat().st_mtime
    elif job.curves:
        job.steps = max((c.steps[-1] for cs in job.curves.values() for c in cs.values() if c.steps),
                        default=None)
    if not job.requested:
        job.requested = requested_from_spec(spec, job.tasks)
    job.swept = swept_values(overrides, keys)
    return job, overrides


def varying_keys(overrides_by_job: Sequence[Sequence[str]]) -> list[str]:
    """Override keys whose value differs between jobs (when the sweep's own record is gone)."""
    from mtbench.sweeps.callback import override_key

    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    values: dict[str, set[str]] = {}
    order: list[str] = []
    for job in overrides_by_job:
        seen = set()
        for o in parser.parse_overrides(list(job)):
            k = override_key(o)
            seen.add(k)
            if k not in values:
                values[k] = set()
                order.append(k)
            values[k].add(o.get_value_element_as_str())
        for k in order:
            if k not in seen:
                values[k].add("(default)")
    return [k for k in order if len(values[k]) > 1]


def load_sweep_dir(sweep_dir: str | Path, *, with_mlflow: bool = True) -> Sweep:
    """A sweep from its directory (``<sweep dir>/<job>/...``); a single run dir works too."""
    from mtbench.sweeps.callback import ENV_PARENT, ENV_TRACKING_URI, plan_sweep

    root = Path(sweep_dir).resolve()
    if not root.is_dir():
        raise DataError(str(sweep_dir), "not a directory")
    job_dirs = _job_dirs(root)
    if not job_dirs and (root / "input.json").is_file():
        job_dirs = [root]
    if not job_dirs:
        raise DataError(str(sweep_dir), "no job directories (<n>/input.json) in this sweep directory")
    master = _load_yaml(root / "multirun.yaml")
    keys: list[str] = []
    name = root.name
    if master is not None:
        try:
            keys = plan_sweep(master).keys
        except Exception as exc:  # noqa: BLE001 - fall back to what varies
            log.debug("multirun.yaml not understood: %s", exc)
        sweep_cfg = master.get("sweep") if "sweep" in master else None
        if sweep_cfg is not None and sweep_cfg.get("name"):
            name = str(sweep_cfg.get("name"))
    loaded = [load_job_dir(d, keys) for d in job_dirs]
    if not keys:
        keys = varying_keys([ov for _, ov in loaded])
        loaded = [load_job_dir(d, keys) for d in job_dirs]
    if name == root.name and keys:  # named like the sweep's parent run: by what it sweeps
        name = "+".join(k.rsplit(".", 1)[-1] for k in keys)
    sweep = Sweep(jobs=[j for j, _ in loaded], keys=keys, source=str(root), sweep_dir=root, name=name)
    for d in job_dirs:
        hydra_cfg = _load_yaml(d / ".hydra" / "hydra.yaml")
        env = dict(hydra_cfg.hydra.job.get("env_set") or {}) if hydra_cfg is not None else {}
        if env.get(ENV_PARENT):
            sweep.parent_run_id = str(env[ENV_PARENT])
            sweep.tracking_uri = str(env.get(ENV_TRACKING_URI) or "") or None
            break
    if with_mlflow:
        _add_mlflow_diagnostics(sweep)
    return sweep


def _add_mlflow_diagnostics(sweep: Sweep) -> None:
    """Gradient curves live only in MLflow: fetch them for tracked jobs if the store answers."""
    from mtbench.tracking.store import Store

    uri = sweep.tracking_uri
    tracked = [j for j in sweep.jobs if j.run_id]
    if not uri or not tracked:
        return
    store = Store(uri, sweep.sweep_dir or Path("."))
    try:
        store.connect()
        for job in tracked:
            run = store._retry(lambda j=job: store.client.get_run(j.run_id), "get run")
            _read_grad_history(store, job, run.data.metrics)
    except Exception as exc:  # noqa: BLE001 - the files alone still make a report
        log.warning("MLflow store %s not read (%s); report from files only", uri, exc)


# ------------------------------------------------------------------------------- from MLflow


def _history(store: Any, run_id: str, key: str) -> Curve:
    points = store._retry(lambda: store.client.get_metric_history(run_id, key), f"history {key}")
    points = sorted(points, key=lambda p: (p.step, p.timestamp))
    by_step: dict[int, float] = {}
    for p in points:
        by_step[int(p.step)] = float(p.value)  # a resumed run may log a step twice: keep the last
    return Curve(list(by_step), list(by_step.values()))


def _read_grad_history(store: Any, job: Job, metric_keys: Iterable[str]) -> None:
    from mtbench.tracking.names import parse_metric_name

    for key in metric_keys:
        if key.startswith("grad/cos/"):
            job.grad_cos[key[len("grad/cos/"):]] = _history(store, job.run_id, key)
        else:
            parsed = parse_metric_name(key)
            if parsed is not None and parsed.group == "grad" and parsed.metric == "norm":
                job.grad_norm[parsed.task] = _history(store, job.run_id, key)


def job_from_run(store: Any, run: Any, keys: Sequence[str], *, histories: bool = True) -> Job:
    """One job from its MLflow run (final values, and curves when ``histories``)."""
    from mtbench.sweeps.callback import ERROR_TAG, JOB_TAG
    from mtbench.tracking.mlflow_tracker import RUN_DIR_TAG
    from mtbench.tracking.names import parse_metric_name

    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    run_dir = tags.get(RUN_DIR_TAG)
    label = tags.get(JOB_TAG) or (Path(run_dir).name if run_dir else run.info.run_name)
    job = Job(label=str(label), status=run.info.status, run_id=run.info.run_id, run_dir=run_dir,
              error=tags.get(ERROR_TAG))
    job.tasks = [t for t in tags.get("mtbench.tasks", "").split(",") if t]
    job.swept = {k: tags[f"sweep.{k}"] for k in keys if f"sweep.{k}" in tags}
    steps = 0
    for key, value in metrics.items():
        if key.startswith("best/") and key.count("/") == 2:  # best/<task>/<metric>: the trainer's pick
            _, task, metric = key.split("/")
            job.best_hint[task] = metric
            continue
        parsed = parse_metric_name(key)
        if parsed is None:
            continue
        task = parsed.task
        if parsed.group == "val":
            job.final.setdefault(task, {})[parsed.metric] = float(value)
            if histories:
                curve = _history(store, job.run_id, key)
                job.curves.setdefault(task, {})[parsed.metric] = curve
                steps = max([steps, *curve.steps])
        elif parsed.group == "sampling":
            target = {"fraction": job.fractions, "count": job.counts,
                      "probability": job.requested}.get(parsed.metric)
            if target is not None:
                target[task] = float(value)
        if task not in job.tasks and parsed.group in ("val", "train", "sampling"):
            job.tasks.append(task)
    if not job.requested:
        weights = {t: params.get(f"training.fitting_weight.{t}") for t in job.tasks}
        sampling = params.get("training.sampling.type", "weights")
        if sampling == "weights" and all(v is not None for v in weights.values()) and weights:
            spec = {"training": {"fitting_weight": {t: _num(v) for t, v in weights.items()}}}
            job.requested = requested_from_spec(spec, job.tasks)
    if job.counts:
        job.steps = int(sum(job.counts.values()))
    elif steps:
        job.steps = steps
    if histories:
        if "time/step_s" in metrics:
            c = _history(store, job.run_id, "time/step_s")
            prev, total = 0, 0.0
            for s, v in zip(c.steps, c.values):
                total += v * (s - prev)
                prev = s
            job.train_s = total or None
        _read_grad_history(store, job, metrics)
    if run.info.end_time and run.info.start_time:
        job.run_s = (run.info.end_time - run.info.start_time) / 1000.0
    return job


def _children(store: Any, parent: str) -> list[Any]:
    exp = store.experiment_of(parent)
    return store._retry(lambda: store.client.search_runs(
        [exp], filter_string=f"tags.mlflow.parentRunId = '{parent}'", max_results=5000),
        "search sweep children")


def load_parent_run(store: Any, parent_run_id: str, *, histories: bool = True) -> Sweep:
    """A sweep from its parent run and the parent's children."""
    from mtbench.sweeps.callback import JOB_TAG, KEYS_TAG, SWEEP_DIR_TAG

    parent = store._retry(lambda: store.client.get_run(parent_run_id), f"get run {parent_run_id}")
    children = _children(store, parent_run_id)
    keys = [k for k in parent.data.tags.get(KEYS_TAG, "").split(",") if k]
    if not keys:
        keys = sorted({t[len("sweep."):] for r in children for t in r.data.tags
                       if t.startswith("sweep.") and t != JOB_TAG and not t.startswith("sweep.best")})
    jobs = [job_from_run(store, r, keys, histories=histories) for r in children]
    jobs.sort(key=lambda j: job_sort_key(j.label))
    sweep_dir = parent.data.tags.get(SWEEP_DIR_TAG)
    return Sweep(jobs=jobs, keys=keys, source=store.uri,
                 sweep_dir=Path(sweep_dir) if sweep_dir else None, parent_run_id=parent_run_id,
                 tracking_uri=store.uri,
                 name=parent.data.tags.get("sweep.name") or parent.info.run_name or "sweep")


def load_experiment(store: Any, name: str) -> Sweep:
    """The latest sweep of an experiment; without sweeps, every top-level run of it."""
    from mtbench.sweeps.callback import RUN_TYPE_TAG

    exp = store._retry(lambda: store.client.get_experiment_by_name(name), "get experiment")
    if exp is None:
        raise DataError(name, f"no such MLflow experiment in {store.uri}")
    parents = store._retry(lambda: store.client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{RUN_TYPE_TAG}` = 'sweep'",
        order_by=["attributes.start_time DESC"], max_results=1), "search sweeps")
    if parents:
        log.info("experiment '%s': latest sweep, parent run %s", name, parents[0].info.run_id)
        return load_parent_run(store, parents[0].info.run_id)
    runs = store._retry(lambda: store.client.search_runs([exp.experiment_id], max_results=5000),
                        "search runs")
    runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    if not runs:
        raise DataError(name, "the experiment has no runs")
    jobs = [job_from_run(store, r, []) for r in runs]
    jobs.sort(key=lambda j: j.label)
    return Sweep(jobs=jobs, keys=[], source=f"{store.uri} experiment {name}",
                 tracking_uri=store.uri, name=name)


def load_target(target: str, *, tracking_uri: str | None = None,
                output_dir: str | Path = "outputs") -> Sweep:
    """A sweep dir, else a run id, else an experiment name in the store."""
    from mtbench.tracking.store import Store, StoreError, resolve_tracking_uri

    if Path(target).is_dir():
        return load_sweep_dir(target)
    if "/" in target or target.startswith("."):
        raise DataError(target, "no such directory (nor a run id or experiment name)")
    uri = resolve_tracking_uri(tracking_uri, output_dir)
    store = Store(uri, output_dir)
    try:
        store.connect()
        if len(target) == 32 and all(c in "0123456789abcdef" for c in target.lower()) \
                and store.run_exists(target):
            run = store.client.get_run(target)
            parent = run.data.tags.get("mlflow.parentRunId") or target
            return load_parent_run(store, parent)
        return load_experiment(store, target)
    except StoreError as exc:
        raise DataError(target, f"not a directory, and the MLflow store {uri} failed: {exc}") from None


# ------------------------------------------------------------------------------------ table


def table(sweep: Sweep) -> tuple[list[str], list[dict[str, Any]]]:
    """Every number of the report: one row per job (CSV columns, rows)."""
    cols = ["job", "status", *sweep.keys]
    metric_cols: list[tuple[str, str]] = [(t, m) for t in sweep.tasks for m in sweep.metrics_of(t)]
    for t, m in metric_cols:
        cols.append(f"{t}/val_{m}/final")
    for t, m in metric_cols:
        cols.append(f"{t}/val_{m}/best")
    for t in sweep.tasks:
        cols += [f"{t}/sampled_fraction", f"{t}/requested_fraction", f"{t}/steps_trained"]
    pairs = sweep.pairs()
    norms = sorted({t for j in sweep.jobs for t in j.grad_norm})
    for p in pairs:
        cols += [f"grad_cos/{p}/mean", f"grad_cos/{p}/last"]
    for t in norms:
        cols.append(f"grad_norm/{t}/mean")
    cols += ["steps", "train_s", "steps_per_s", "run_s", "objective", "run_id", "run_dir", "error"]
    rows = []
    for job in sweep.jobs:
        row: dict[str, Any] = {"job": job.label, "status": job.status}
        for k in sweep.keys:
            row[k] = job.swept.get(k, "")
        for t, m in metric_cols:
            row[f"{t}/val_{m}/final"] = job.final_value(t, m)
            row[f"{t}/val_{m}/best"] = job.best_value(t, m)
        for t in sweep.tasks:
            row[f"{t}/sampled_fraction"] = job.fractions.get(t, math.nan)
            row[f"{t}/requested_fraction"] = job.requested.get(t, math.nan)
            row[f"{t}/steps_trained"] = job.counts.get(t, math.nan)
        for p in pairs:
            c = job.grad_cos.get(p, Curve())
            row[f"grad_cos/{p}/mean"] = c.mean()
            row[f"grad_cos/{p}/last"] = c.last()
        for t in norms:
            row[f"grad_norm/{t}/mean"] = job.grad_norm.get(t, Curve()).mean()
        row.update(steps=job.steps if job.steps is not None else "", train_s=_or_nan(job.train_s),
                   steps_per_s=job.steps_per_s, run_s=_or_nan(job.run_s),
                   objective=_or_nan(job.objective), run_id=job.run_id or "",
                   run_dir=job.run_dir or "", error=job.error or "")
        rows.append(row)
    return cols, rows


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.{digits}g}"
    return str(v)


def write_csv(path: Path, cols: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(cols))
        w.writeheader()
        for row in rows:
            w.writerow({c: ("" if isinstance(row.get(c), float) and not math.isfinite(row[c])
                            else row.get(c, "")) for c in cols})
    return path


def markdown(sweep: Sweep, plots: Sequence[Path] = ()) -> str:
    """The table a person reads: per task the ranking metric (final, best), sampling, speed."""
    tasks = sweep.tasks
    best = {t: sweep.best_job(t) for t in tasks}
    head = ["job", "status", *[short_key(k, sweep.keys) for k in sweep.keys]]
    for t in tasks:
        m = sweep.primary(t)
        head += [f"{t} {m} final", f"{t} {m} best"]
    head += [f"{t} sampled (requested)" for t in tasks]
    pairs = sweep.pairs()
    head += [f"cos {p.replace('__', ' vs ')} (mean)" for p in pairs]
    head += ["steps/s", "train s"]
    lines = [f"# Sweep comparison: {sweep.name}", "",
             f"Source: `{sweep.source}`" + (f" · parent run `{sweep.parent_run_id}`"
                                            if sweep.parent_run_id else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for job in sweep.jobs:
        cells = [job.label, job.status, *[job.swept.get(k, "") for k in sweep.keys]]
        for t in tasks:
            m = sweep.primary(t)
            final = _fmt(job.final_value(t, m))
            cells += [f"**{final}**" if best[t] is job else final, _fmt(job.best_value(t, m))]
        for t in tasks:
            cells.append(f"{_fmt(job.fractions.get(t, math.nan), 2)} "
                         f"({_fmt(job.requested.get(t, math.nan), 2)})")
        cells += [_fmt(job.grad_cos.get(p, Curve()).mean(), 2) for p in pairs]
        cells += [_fmt(job.steps_per_s), _fmt(_or_nan(job.train_s))]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    n_ok = sum(j.ok for j in sweep.jobs)
    lines.append(f"{len(sweep.jobs)} jobs, {n_ok} finished, {len(sweep.jobs) - n_ok} not. "
                 "Bold: best final value per task (lowest). Validation RMSEs; "
                 "best = lowest after step 0.")
    for t in tasks:
        j = best[t]
        if j is not None:
            lines.append(f"- best for `{t}` ({sweep.primary(t)}): job {job_title(j, sweep.keys)}")
    failed = [j for j in sweep.jobs if not j.ok]
    for j in failed:
        lines.append(f"- job {j.label} {j.status}" + (f": {j.error}" if j.error else ""))
    if plots:
        lines.append("")
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ parent run summary


def summarize(sweep: Sweep, planned_jobs: int | None = None
              ) -> tuple[dict[str, str], dict[str, list[tuple[float, int]]]]:
    """Parent-run tags and metrics (``{key: [(value, step)]}``) that make the MLflow compare
    view useful without opening the children."""
    jobs = sweep.jobs
    n = max(len(jobs), planned_jobs or 0)
    ok = sum(j.ok for j in jobs)
    running = sum(j.status == "RUNNING" for j in jobs)
    tags = {"sweep.jobs": str(n), "sweep.succeeded": str(ok), "sweep.failed": str(n - ok - running)}
    if running:
        tags["sweep.running"] = str(running)
    metrics: dict[str, list[tuple[float, int]]] = {
        "sweep/jobs": [(n, 0)], "sweep/succeeded": [(ok, 0)], "sweep/failed": [(n - ok - running, 0)]}
    for t in sweep.tasks:
        m = sweep.primary(t)
        best = sweep.best_job(t)
        if best is not None:
            v = best.final_value(t, m)
            tags[f"sweep.best.{t}"] = f"job {job_title(best, sweep.keys)}: {m}={v:.4g}"
            if best.run_id:
                tags[f"sweep.best.{t}.run_id"] = best.run_id
            metrics[f"sweep/best/{t}/{m}"] = [(v, 0)]
        for i, j in enumerate(jobs):
            v = j.final_value(t, m)
            if j.ok and math.isfinite(v):
                step = int(j.label) if j.label.isdigit() else i
                metrics.setdefault(f"sweep/by_job/{t}/{m}", []).append((v, step))
    return tags, metrics


def parent_note(sweep: Sweep, files: Sequence[Path]) -> str:
    """The parent run's description in the MLflow UI: the table, and where the plots are."""
    pngs = [f.name for f in files if f.suffix == ".png"]
    note = markdown(sweep)
    if pngs:
        note += "\nPlots (artifacts, `compare/`): " + ", ".join(f"`{p}`" for p in pngs) + "\n"
    return note


def log_summary(store: Any, run_id: str, tags: Mapping[str, str],
                metrics: Mapping[str, Sequence[tuple[float, int]]], note: str | None = None) -> None:
    """Tags and metrics on the parent; metric points already there are not sent again, so a
    report re-run does not duplicate them."""
    import time

    from mtbench.tracking.mlflow_tracker import clean_tags

    all_tags = dict(tags)
    if note:
        all_tags["mlflow.note.content"] = note
    store.set_tags(run_id, clean_tags(all_tags))
    known = set(store._retry(lambda: store.client.get_run(run_id), "get run").data.metrics)
    ts = int(time.time() * 1000)
    points = []
    for key, pts in metrics.items():
        have = set()
        if key in known:
            have = {(p.step, p.value) for p in store._retry(
                lambda k=key: store.client.get_metric_history(run_id, k), "metric history")}
        points += [(key, float(v), int(s), ts) for v, s in pts if (int(s), float(v)) not in have]
    if points:
        store.log_metrics(run_id, points)


# ----------------------------------------------------------------------------------- report


def write_report(sweep: Sweep, out_dir: str | Path) -> list[Path]:
    """``summary.csv``, ``summary.md`` and the plots into ``out_dir``; returns the files."""
    from mtbench.sweeps.plots import make_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols, rows = table(sweep)
    files = [write_csv(out / "summary.csv", cols, rows)]
    plots = make_plots(sweep, out)
    md = out / "summary.md"
    md.write_text(markdown(sweep, plots))
    return [*files, md, *plots]


def log_report(sweep: Sweep, files: Sequence[Path], planned_jobs: int | None = None) -> bool:
    """Log the report files (artifacts ``compare/``) and the summary to the sweep's parent run
    (False if there is none or the store failed)."""
    from mtbench.tracking.store import Store, StoreError

    if not sweep.parent_run_id or not sweep.tracking_uri:
        return False
    store = Store(sweep.tracking_uri, sweep.sweep_dir or Path("."))
    try:
        store.connect()
        tags, metrics = summarize(sweep, planned_jobs)
        log_summary(store, sweep.parent_run_id, tags, metrics, parent_note(sweep, files))
        for f in files:
            store.log_artifact(sweep.parent_run_id, Path(f).resolve(), "compare")
    except StoreError as exc:
        log.warning("report not logged to parent run %s: %s", sweep.parent_run_id, exc)
        return False
    return True


def default_out_dir(sweep: Sweep) -> Path:
    if sweep.sweep_dir is not None and sweep.sweep_dir.is_dir():
        return sweep.sweep_dir / "compare"
    tag = (sweep.parent_run_id or sweep.name)[:12]
    return Path(f"compare-{tag}")


def finalize_sweep(parent_run_id: str, *, tracking_uri: str, output_dir: str | Path,
                   sweep_dir: Path | None, planned_jobs: int | None, aborted: bool,
                   report: bool = True) -> str:
    """End of a sweep (called by the Hydra callback): write the report (``report``), put the
    summary and the report on the parent run, close it. Returns the parent's final status."""
    from mtbench.tracking.store import Store

    store = Store(tracking_uri, output_dir)
    store.connect()
    sweep = load_parent_run(store, parent_run_id, histories=report)
    if sweep.sweep_dir is None:
        sweep.sweep_dir = sweep_dir
    tags, metrics = summarize(sweep, planned_jobs)
    failed = int(tags["sweep.failed"])
    if aborted and any(j.status in ("RUNNING", "KILLED") for j in sweep.jobs):
        status = "KILLED"
    elif aborted or failed or not any(j.ok for j in sweep.jobs):
        status = "FAILED"
    else:
        status = "FINISHED"
    files: list[Path] = []
    if report and sweep.sweep_dir is not None:
        try:
            files = write_report(sweep, sweep.sweep_dir / "compare")
        except Exception as exc:  # noqa: BLE001 - the summary and the status matter more
            log.warning("sweep report not written (%s: %s)", type(exc).__name__, exc)
    md = [f for f in files if f.name == "summary.md"]
    log_summary(store, parent_run_id, tags, metrics, parent_note(sweep, files) if files else None)
    for f in files:
        store.log_artifact(parent_run_id, f.resolve(), "compare")
    store.set_terminated(parent_run_id, status)
    log.info("sweep parent run %s %s: %s of %s jobs succeeded", parent_run_id, status,
             tags["sweep.succeeded"], tags["sweep.jobs"])
    if md:
        print(f"mtbench: sweep report: {md[0]}")
    return status


# -------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mtbench.compare",
        description="Compare the jobs of a sweep: summary.csv, summary.md and plots.")
    p.add_argument("target", help="a sweep directory, a sweep's parent MLflow run id, or an MLflow "
                                  "experiment name (its latest sweep)")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="output directory (default: <sweep dir>/compare/)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow store for run ids and experiments (default: MLFLOW_TRACKING_URI, "
                        "else sqlite:///<output dir>/mlflow.db)")
    p.add_argument("--output-dir", default=None,
                   help="mtbench output dir holding the default store (default: "
                        "$MTBENCH_OUTPUT_DIR or ./outputs)")
    p.add_argument("--no-log", action="store_true", help="do not log the report to the parent run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import os

    from mtbench.runtime import configure_logging

    configure_logging()
    logging.getLogger("mtbench.compare").setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    output_dir = args.output_dir or os.environ.get("MTBENCH_OUTPUT_DIR") or "outputs"
    try:
        sweep = load_target(args.target, tracking_uri=args.tracking_uri, output_dir=output_dir)
        out = args.out or default_out_dir(sweep)
        files = write_report(sweep, out)
    except MtbenchError as exc:
        print(f"mtbench.compare: error: {exc}", file=sys.stderr)
        return 2
    print(markdown(sweep).split("\n\n", 2)[-1].rstrip())
    print(f"\nwrote {len(files)} files to {Path(out).resolve()}:")
    for f in files:
        print(f"  {f.name}")
    if not args.no_log and log_report(sweep, files):
        print(f"logged to parent run {sweep.parent_run_id} (artifacts: compare/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
