"""Hydra callback that gives a sweep one MLflow parent run and makes every job a nested child.

Registered in ``conf/config.yaml`` under ``hydra.callbacks``; it acts in multirun mode only and
does nothing under ``tracking=none``.

Where each part runs (the same for the basic, joblib and submitit launchers):

- ``on_multirun_start`` (launching process): create the parent run, tag it with the sweep
  (dir, swept keys, the override grid) and hand the jobs the parent's id and the store's URI by
  appending ``++hydra.job.env_set.<VAR>=...`` to the sweep's Hydra overrides. Every launcher
  re-composes each job's config from those overrides (in the job's own process for submitit),
  and Hydra sets ``env_set`` around the task function, so ``mtbench.cli`` finds
  ``MTBENCH_PARENT_RUN_ID`` wherever the job runs, and nothing leaks into later sweeps.
- ``on_job_end`` (job process): tag the job's child run with its swept values
  (``sweep.<override key>``) and its job number; a job that failed before its run existed
  (e.g. a spec error) gets a FAILED child, so every job is visible in the store.
- ``on_multirun_end`` (launching process), or at exit when Hydra's sweeper re-raised a failed
  job (it does so only after all jobs of the batch ran): write the parent's summary (jobs,
  succeeded, failed, best job per task), close it, and optionally write the comparison report.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from mtbench.sweeps.mlflow_reader import find_child_run
from mtbench.sweeps.plan import (
    ENV_PARENT,
    ENV_SWEEP_KEYS,
    ENV_TRACKING_URI,
    ERROR_TAG,
    JOB_TAG,
    KEYS_TAG,
    RUN_TYPE_TAG,
    SWEEP_DIR_TAG,
    SweepPlan,
    add_replicates,
    display_key,
    inject_job_env,
    job_run_name,
    plan_sweep,
    sweep_label,
    swept_values,
)
from mtbench.sweeps.report import finalize_sweep
from mtbench.tracking.mlflow_tracker import (
    PARENT_TAG,
    RUN_DIR_TAG,
    clean_params,
    clean_tags,
    start_parent_run,
)
from mtbench.tracking.store import Store, one_line, resolve_tracking_uri

log = logging.getLogger("mtbench.tracking")


def _tracking_cfg(config: Any) -> dict[str, Any] | None:
    """The ``tracking`` config as a dict, None when tracking is off (``tracking=none``)."""
    from omegaconf import OmegaConf

    if "tracking" not in config:
        return None
    tracking = OmegaConf.to_container(config.tracking, resolve=True)
    if not isinstance(tracking, dict) or str(tracking.get("backend", "mlflow")).lower() == "none":
        return None
    return tracking


def _output_dir(config: Any) -> Path:
    return Path(str(config.paths.output_dir)) if "paths" in config else Path("outputs")


class SweepTracking(Callback):
    """One MLflow parent run per Hydra multirun, the jobs as nested child runs.

    ``report``: write the comparison report (``<sweep dir>/compare/``, see
    :mod:`mtbench.sweeps.report`) when the sweep ends and log it to the parent run.
    """

    def __init__(self, report: bool = True) -> None:
        self.report = bool(report)
        self.parent_run_id: str | None = None
        self._uri: str | None = None
        self._output_dir: Path | None = None
        self._sweep_dir: Path | None = None
        self._planned: int | None = None
        self._pid: int | None = None
        self._closed = False

    # -- launching process -----------------------------------------------------------------------

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._pid = os.getpid()  # the launching process (jobs may run in other processes)
        seeds = add_replicates(config)  # before the sweeper reads the overrides, with or without tracking
        if seeds:
            log.info("sweep.replicates=%d: every setting runs with training.seed=%s", len(seeds),
                     ",".join(map(str, seeds)))
        tracking = _tracking_cfg(config)
        if tracking is None:
            return
        try:
            self._start_parent(config, tracking)
        except Exception as exc:  # noqa: BLE001 - tracking must not stop a sweep
            log.warning("sweep parent run not created (%s: %s); jobs are tracked as separate runs",
                        type(exc).__name__, exc)
            self.parent_run_id = None

    def _start_parent(self, config: Any, tracking: Mapping[str, Any]) -> None:
        self._output_dir = _output_dir(config).resolve()
        self._uri = resolve_tracking_uri(tracking.get("tracking_uri"), self._output_dir)
        self._sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        plan = plan_sweep(config)
        self._planned = len(plan.jobs) if plan.jobs is not None else None
        name = str((config.get("sweep") or {}).get("name") or "") if "sweep" in config else ""
        label = sweep_label(name, plan.keys)
        tags = {
            RUN_TYPE_TAG: "sweep",
            SWEEP_DIR_TAG: str(self._sweep_dir),
            KEYS_TAG: ",".join(plan.keys),
            "sweep.name": name or label,
            "sweep.params": "\n".join(f"{k}={v}" for k, v in plan.params.items()) or "(none)",
            "sweep.fixed_overrides": " ".join(plan.fixed) or "(none)",
            "sweep.grid": plan.grid_text(),
            "sweep.planned_jobs": str(self._planned) if self._planned is not None else "?",
            "sweep.launcher": str(config.hydra.launcher.get("_target_", "?")).rsplit(".", 1)[-1],
            "sweep.sweeper": str(config.hydra.sweeper.get("_target_", "?")).rsplit(".", 1)[-1],
        }
        tags["mlflow.note.content"] = sweep_note(label, plan)
        run_name = parent_run_name(label)
        experiment = str(tracking.get("experiment") or "mtbench")
        if plan.jobs is None and config.hydra.sweeper.get("n_trials") is not None:
            self._planned = int(config.hydra.sweeper.n_trials)  # a search's trial budget
        # a sweeper that resumes (hydra/sweeper=optuna: same command, same folder) continues its parent run
        parent = (resumed_parent(Store(self._uri, self._output_dir), experiment, self._sweep_dir)
                  if config.hydra.sweeper.get("resumes") else None)
        if parent is None:
            parent = start_parent_run(experiment, run_name, tags, tracking_uri=self._uri,
                                      output_dir=self._output_dir)
        if parent is None:
            return
        self.parent_run_id = parent
        try:  # the sweep's definition as params: columns of the UI's run table and compare view

            Store(self._uri, self._output_dir).log_params(parent, clean_params(
                {**plan.params, "fixed_overrides": " ".join(plan.fixed) or "(none)"}))
        except Exception as exc:  # noqa: BLE001 - cosmetic
            log.warning("sweep params not logged on the parent run (%s)", exc)
        inject_job_env(config, {ENV_PARENT: parent, ENV_TRACKING_URI: self._uri,
                                ENV_SWEEP_KEYS: ",".join(plan.keys)})
        atexit.register(self._close_at_exit)
        log.info("sweep parent run %s (%s)", parent, self._uri)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._close(aborted=False)

    def _close_at_exit(self) -> None:
        # Hydra's sweeper re-raises the first failed job after the batch ran: on_multirun_end is
        # skipped, the process exits through here.
        self._close(aborted=True)

    def _close(self, aborted: bool) -> None:
        if self.parent_run_id is None or self._closed or os.getpid() != self._pid:
            return
        self._closed = True
        try:
            atexit.unregister(self._close_at_exit)
        except Exception:  # noqa: BLE001
            pass
        try:
            finalize_sweep(self.parent_run_id, tracking_uri=self._uri or "",
                           output_dir=self._output_dir or Path("outputs"), sweep_dir=self._sweep_dir,
                           planned_jobs=self._planned, aborted=aborted, report=self.report)
        except Exception as exc:  # noqa: BLE001 - the sweep's results are safe; say what failed
            log.warning("sweep parent run %s not summarized (%s: %s); "
                        "`python -m mtbench.compare %s` writes the report", self.parent_run_id,
                        type(exc).__name__, exc, self._sweep_dir or self.parent_run_id)

    # -- job process -------------------------------------------------------------------------------

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        if self._pid is not None and os.getpid() != self._pid:
            keep_failure_picklable(job_return)
        env = dict(config.hydra.job.get("env_set") or {})
        parent = env.get(ENV_PARENT)
        if not parent or _tracking_cfg(config) is None:
            return
        try:
            self._tag_job(config, job_return, parent, env)
        except Exception as exc:  # noqa: BLE001 - never fail a finished job because of tags
            log.warning("sweep job tags not written (%s: %s)", type(exc).__name__, exc)

    def _tag_job(self, config: Any, job_return: Any, parent: str, env: Mapping[str, str]) -> None:
        from hydra.core.utils import JobStatus


        keys = [k for k in str(env.get(ENV_SWEEP_KEYS, "")).split(",") if k]
        overrides = list(job_return.overrides or [])
        run_dir = str(Path(str(config.hydra.runtime.output_dir)).resolve())
        num = config.hydra.job.get("num")
        tags = {f"sweep.{k}": v for k, v in swept_values(overrides, keys).items()}
        tags[JOB_TAG] = str(num)
        error = None
        if job_return.status == JobStatus.FAILED:
            try:
                job_return.return_value  # noqa: B018 - raises the job's exception
            except Exception as exc:  # noqa: BLE001
                error = one_line(exc)
            tags[ERROR_TAG] = error or "failed"
        output_dir = _output_dir(config).resolve()
        store = Store(str(env.get(ENV_TRACKING_URI) or ""), output_dir)
        child = find_child_run(store, parent, run_dir)
        if child is not None:
            store.set_tags(child, clean_tags(tags))
            return
        if error is None:
            return  # a job without tracking (e.g. tracking swept to none): nothing to show
        exp = store.experiment_of(parent)
        run_tags = {**tags, PARENT_TAG: parent, RUN_DIR_TAG: run_dir,
                    "overrides": " ".join(overrides) or "(none)"}
        run_id = store.create_run(exp, f"{job_run_name(num, overrides, keys)} (failed)", clean_tags(run_tags))
        hydra_dir = Path(run_dir) / ".hydra"
        if hydra_dir.is_dir():
            store.log_artifact(run_id, hydra_dir, None)
        store.set_terminated(run_id, "FAILED")


def resumed_parent(store: Store, experiment: str, sweep_dir: Path) -> str | None:
    """The latest parent run of the sweep folder ``sweep_dir``, set RUNNING again (None when there is none)."""
    exp = store.experiment_by_name(experiment)
    if exp is None:
        return None
    folder = str(sweep_dir).replace("'", "\\'")
    runs = [r for r in store.search_runs([exp.experiment_id], f"tags.`{SWEEP_DIR_TAG}` = '{folder}'",
                                         order_by=["attributes.start_time DESC"])
            if r.data.tags.get(RUN_TYPE_TAG) == "sweep"]
    if not runs:
        return None
    run_id = runs[0].info.run_id
    store.client.update_run(run_id, status="RUNNING")
    log.info("sweep parent run %s resumed (%s)", run_id, sweep_dir)
    return run_id


def parent_run_name(label: str, when: float | None = None) -> str:
    """``12-02 00:51:07 sweep fitting_weight.water_dipole, seed``: the time stamp first, so the UI's truncated
    names of two sweeps over the same keys still differ."""
    import time

    return f"{time.strftime('%m-%d %H:%M:%S', time.localtime(when))} sweep {label}"


def sweep_note(label: str, plan: SweepPlan) -> str:
    """The parent's description until the sweep ends (then the report replaces it)."""
    lines = [f"**Sweep {label}** (running)", ""]
    lines += [f"- `{display_key(k)}` = {v}" for k, v in plan.params.items()]
    if plan.fixed:
        lines.append(f"- fixed: `{' '.join(plan.fixed)}`")
    return "\n".join(lines) + "\n"


def keep_failure_picklable(job_return: Any) -> None:
    """joblib and submitit send each JobReturn back to the launching process by pickle; an
    exception whose ``__init__`` takes other arguments than its ``args`` cannot be rebuilt there
    and would crash the whole sweep with an unrelated TypeError. Such an exception is replaced
    by a RuntimeError carrying its one-line message."""
    import pickle

    from hydra.core.utils import JobStatus


    if job_return.status != JobStatus.FAILED:
        return
    try:
        job_return.return_value  # noqa: B018 - raises the job's exception
    except Exception as exc:  # noqa: BLE001
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # noqa: BLE001
            job_return.return_value = RuntimeError(one_line(exc))

