"""Sweeps read from MLflow alone: a sweep's parent run and its children, an experiment's latest
sweep (or its top-level runs), and the curves only MLflow holds (gradient diagnostics) for jobs
read from their folders. Every call goes through :class:`mtbench.tracking.store.Store`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mtbench.errors import DataError
from mtbench.sweeps.model import Curve, Job, Sweep, job_sort_key, num, requested_from_spec
from mtbench.sweeps.plan import ERROR_TAG, JOB_TAG, KEYS_TAG, RUN_TYPE_TAG, SWEEP_DIR_TAG
from mtbench.tracking.mlflow_tracker import RUN_DIR_TAG
from mtbench.tracking.names import TASKS_TAG, parse_metric_name
from mtbench.tracking.store import Store

log = logging.getLogger("mtbench.compare")


def add_mlflow_diagnostics(sweep: Sweep) -> None:
    """Gradient curves live only in MLflow: fetch them for tracked jobs if the store answers."""
    uri = sweep.tracking_uri
    tracked = [j for j in sweep.jobs if j.run_id]
    if not uri or not tracked:
        return
    store = Store(uri, sweep.sweep_dir or Path("."))
    try:
        store.connect()
        for job in tracked:
            run = store.get_run(job.run_id)
            _read_grad_history(store, job, run.data.metrics)
    except Exception as exc:  # noqa: BLE001 - the files alone still make a report
        log.warning("MLflow store %s not read (%s); report from files only", uri, exc)


def _history(store: Store, run_id: str, key: str) -> Curve:
    points = sorted(store.metric_history(run_id, key), key=lambda p: (p.step, p.timestamp))
    by_step: dict[int, float] = {}
    for p in points:
        by_step[int(p.step)] = float(p.value)  # a resumed run may log a step twice: keep the last
    return Curve(list(by_step), list(by_step.values()))


def _read_grad_history(store: Store, job: Job, metric_keys: Iterable[str]) -> None:
    for key in metric_keys:
        if key.startswith("grad/cos/"):
            job.grad_cos[key[len("grad/cos/"):]] = _history(store, job.run_id, key)
        else:
            parsed = parse_metric_name(key)
            if parsed is not None and parsed.group == "grad" and parsed.metric == "norm":
                job.grad_norm[parsed.task] = _history(store, job.run_id, key)


def job_from_run(store: Store, run: Any, keys: Sequence[str], *, histories: bool = True) -> Job:
    """One job from its MLflow run (final values, and curves when ``histories``)."""
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    run_dir = tags.get(RUN_DIR_TAG)
    label = tags.get(JOB_TAG) or (Path(run_dir).name if run_dir else run.info.run_name)
    job = Job(label=str(label), status=run.info.status, run_id=run.info.run_id, run_dir=run_dir,
              error=tags.get(ERROR_TAG))
    job.tasks = [t for t in tags.get(TASKS_TAG, "").split(",") if t]
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
        elif parsed.group == "final":  # final/<task>/<m>: the full end-of-run validation
            job.full.setdefault(task, {})[parsed.metric] = float(value)
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
            spec = {"training": {"fitting_weight": {t: num(v) for t, v in weights.items()}}}
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


def load_parent_run(store: Store, parent_run_id: str, *, histories: bool = True) -> Sweep:
    """A sweep from its parent run and the parent's children."""
    parent = store.get_run(parent_run_id)
    children = store.children(parent_run_id)
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


def load_experiment(store: Store, name: str) -> Sweep:
    """The latest sweep of an experiment; without sweeps, every top-level run of it."""
    exp = store.experiment_by_name(name)
    if exp is None:
        raise DataError(name, f"no such MLflow experiment in {store.uri}")
    parents = store.search_runs([exp.experiment_id], f"tags.`{RUN_TYPE_TAG}` = 'sweep'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    if parents:
        log.info("experiment '%s': latest sweep, parent run %s", name, parents[0].info.run_id)
        return load_parent_run(store, parents[0].info.run_id)
    runs = store.search_runs([exp.experiment_id])
    runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    if not runs:
        raise DataError(name, "the experiment has no runs")
    jobs = [job_from_run(store, r, []) for r in runs]
    jobs.sort(key=lambda j: j.label)
    return Sweep(jobs=jobs, keys=[], source=f"{store.uri} experiment {name}",
                 tracking_uri=store.uri, name=name)


def find_child_run(store: Store, parent: str, run_dir: str) -> str | None:
    """The child of ``parent`` whose run dir is ``run_dir`` (None if the job made no run)."""
    for run in store.children(parent):
        if run.data.tags.get(RUN_DIR_TAG) == run_dir:
            return run.info.run_id
    return None
