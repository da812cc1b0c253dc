"""One tracked training run from a spec: validate, write ``input.json``, track, train, report.

Both entry points (``python -m mtbench`` through Hydra and ``python -m mtbench.train input.json``) end here, so a
Hydra-composed run and a plain DeePMD-style input.json run are tracked and reported the same way.
"""

from __future__ import annotations

import gc
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtbench.tracking import names

if TYPE_CHECKING:
    from mtbench.rundir import RunDir, RunLock

log = logging.getLogger("mtbench")


def prepare_spec(spec: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Normalize (aliases, defaults), take ``sel: auto`` / a missing type_map from the data, validate.

    Deprecation notes, the values taken from the data and warnings are logged; errors raise ``SpecError``.
    """
    from mtbench.spec.from_data import needs_data, resolve_from_data
    from mtbench.spec.normalize import normalize_spec
    from mtbench.spec.validate import validate_spec

    init = (spec.get("training") or {}).get("init_frz_model")
    if init:  # descriptor {} and inherited heads {} are completed from the frozen model before anything else
        from mtbench.export.init_from_frozen import autocomplete_spec

        spec = autocomplete_spec(dict(spec), init, base_dir)
    notes: list[str] = []
    spec = normalize_spec(dict(spec), notes)
    for note in notes:
        log.warning(note)
    if needs_data(spec):
        validate_spec(spec, base_dir=base_dir)  # the data paths and the rest are sound before the data is read
        spec, chosen = resolve_from_data(spec, base_dir)
        for note in chosen:
            log.info(note)
    for warning in validate_spec(spec, base_dir=base_dir):
        log.warning(warning)
    return spec


def task_errors(summary: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """``({task: final validation error}, {task: its metric})``: what sweepers rank a run's tasks by.

    From the full end-of-run evaluation (``summary["final_eval"]["final"]``, each task's ranking metric of
    :func:`mtbench.train.final_eval.final_ranking_metric`) when the run has one, so every job is ranked on the same
    frames; else (older summaries) the last display's validation ``rmse``.
    """
    from mtbench.train.best import final_ranking_metric

    full = (summary.get("final_eval") or {}).get("final") or {}
    values: dict[str, float] = {}
    metrics: dict[str, str] = {}
    for task, res in full.items():
        m = final_ranking_metric(res.get("metrics", {}))
        values[task] = float(res["metrics"][m]) if m else math.nan
        metrics[task] = f"final {m}" if m else "final"
    if not full:
        values = {t: (r.get("val") or {}).get("rmse", math.nan) for t, r in summary.get("final", {}).items()}
        metrics = {t: "rmse" for t in values}
    return values, metrics


class RunResult(float):
    """A run's :func:`objective` (a float, for any sweeper) that also carries each task's final validation error
    (``per_task``, ``metrics``: :func:`task_errors`) for multi-objective sweepers (``hydra/sweeper=optuna``)."""

    per_task: dict[str, float]
    metrics: dict[str, str]

    def __new__(cls, value: float, per_task: Mapping[str, float] | None = None,
                metrics: Mapping[str, str] | None = None) -> "RunResult":
        obj = super().__new__(cls, value)
        obj.per_task = {k: float(v) if v is not None else math.nan for k, v in (per_task or {}).items()}
        obj.metrics = dict(metrics or {})
        return obj

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> "RunResult":
        values, metrics = task_errors(summary)
        return cls(float(summary["objective"]), values, metrics)


def objective(summary: Mapping[str, Any], weights: Mapping[str, float]) -> float:
    """One number for sweepers: the weight-averaged final validation error over tasks (:func:`task_errors`)."""
    values, _ = task_errors(summary)
    num = den = 0.0
    for task, v in values.items():
        v = math.nan if v is None else v
        w = float(weights.get(task, 1.0))
        if math.isfinite(v) and w > 0:
            num += w * v
            den += w
    return num / den if den else math.nan


def end_of_run_evaluation(run_dir: Path, spec: Mapping[str, Any], base: Path | None, tracker: Any,
                          summary: Mapping[str, Any]) -> dict[str, Any]:
    """Every task on its whole validation data (:mod:`mtbench.train.final_eval`), logged at the last step."""
    from mtbench.train.final_eval import final_evaluation, metrics_to_log

    bases = [b for b in (base, run_dir, Path.cwd()) if b is not None]
    evaluation = final_evaluation(run_dir, spec, bases)
    metrics = metrics_to_log(evaluation)
    if metrics:
        tracker.log_metrics(metrics, int(summary.get("steps") or 0))
    return evaluation


def run_training(spec: Mapping[str, Any], *, run_dir: str | Path, base_dir: str | Path | None = None,
                 tracking: Mapping[str, Any] | None = None, output_dir: str | Path = "outputs",
                 tags: Mapping[str, str] | None = None, extra_artifacts: list[Path] | None = None,
                 parent_run_id: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train ``spec`` into ``run_dir``; returns the trainer's summary plus ``objective`` and ``run_id``.

    The folder is locked for the whole run (:class:`mtbench.rundir.RunLock`: a second process is refused with one
    line). A restart that resumes ``run_dir`` itself (``training.restart`` = this folder, or ``auto`` and the folder
    has a checkpoint) continues the same MLflow run (:mod:`mtbench.train.resume`).

    Data-parallel (``training.distributed``): every rank runs this; only the chief writes ``run_dir`` and tracks,
    the other ranks train into a private scratch folder that is removed at the end.
    """
    from mtbench.train import distributed
    from mtbench.train.resume import resolve_auto

    dist = distributed.setup(spec.get("training") or {})  # first: a multi-worker strategy precedes any TF op
    spec = resolve_auto(spec, Path(run_dir))  # on every rank against the real folder, so all resume alike
    with distributed.scratch_dir(dist) as scratch:
        if scratch is not None:
            run_dir, tracking, extra_artifacts = scratch, {"backend": "none"}, None
        return _run_in_folder(spec, run_dir=run_dir, base_dir=base_dir, tracking=tracking, output_dir=output_dir,
                              tags=tags, extra_artifacts=extra_artifacts, parent_run_id=parent_run_id,
                              progress=progress and dist.is_chief, dist=dist)


def _run_in_folder(spec: Mapping[str, Any], *, run_dir: str | Path, dist: Any, **kw: Any) -> dict[str, Any]:
    """:func:`_run_locked` holding the folder's lock."""
    from mtbench.rundir import RunDir, RunLock
    from mtbench.storage import refused_writes

    run_dir = Path(run_dir).resolve()
    with refused_writes("the run folder", run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir) as lock:
        return _run_locked(spec, RunDir(run_dir), lock, dist=dist, **kw)


def _run_locked(spec: Mapping[str, Any], run: RunDir, lock: RunLock, *, base_dir: str | Path | None,
                tracking: Mapping[str, Any] | None, output_dir: str | Path, tags: Mapping[str, str] | None,
                extra_artifacts: list[Path] | None, parent_run_id: str | None, progress: bool,
                dist: Any) -> dict[str, Any]:
    from mtbench.rundir import Summary, run_dir_of
    from mtbench.storage import refused_writes, remove_stale_tmp, storage_error
    from mtbench.spec.io import write_spec
    from mtbench.spec.tasks import describe_sharing, task_view
    from mtbench.tracking import flatten_params, make_tracker
    from mtbench.tracking.stale import mark_stale
    from mtbench.train.resume import continues, resend_lcurves

    run_dir = run.path
    for tmp in remove_stale_tmp(run_dir, run.checkpoints):  # half-written files of a killed process
        log.info("removed %s, left by an interrupted write", tmp)
    continuing = continues(spec, run_dir)
    restart = (spec.get("training") or {}).get("restart")
    stored = run.read_tracking_run() if continuing else None
    if continuing:
        mark_stale(run, "a resume", holder=lock.taken_over, check_lock=False)
    elif restart and dist.is_chief:
        mark_stale(run_dir_of(restart), "a restart into another folder")
    base = Path(base_dir).resolve() if base_dir is not None else None
    spec = prepare_spec(spec, base)
    if restart:  # a restart that changes the model is refused before it overwrites anything of the run
        from mtbench.train.checkpoint import load_checkpoint
        from mtbench.train.restart import check_restart

        ckpt = load_checkpoint(spec["training"]["restart"])
        check_restart(ckpt["spec"], spec, ckpt["path"])
    with refused_writes("the spec", run.input_json):
        input_json = write_spec(spec, run.input_json)
    tracker = make_tracker(dict(tracking or {"backend": "none"}), Path(output_dir).resolve())
    tasks = task_view(spec)
    all_tags = {names.TASKS_TAG: ",".join(tasks), **describe_sharing(spec), **dict(tags or {})}
    resume_id = None
    uri = getattr(tracker, "tracking_uri", None)  # None: tracking=none
    if stored and stored.get("tracking_uri") == uri:
        resume_id = stored["run_id"]
    elif stored and uri is not None:
        log.warning("%s was tracked in %s, this run goes to %s: a new MLflow run", run_dir, stored.get("tracking_uri"),
                    getattr(tracker, "tracking_uri", None))
    tracker.start(experiment=(tracking or {}).get("experiment") or "mtbench",
                  run_name=(tracking or {}).get("run_name"), params=flatten_params(spec), tags=all_tags,
                  run_dir=run_dir, parent_run_id=parent_run_id, resume_run_id=resume_id)
    if getattr(tracker, "run_id", None):
        run.write_tracking_run(tracker.run_id, tracker.tracking_uri, getattr(tracker, "experiment_id", None))
    tracker.log_artifact(input_json)
    status = "FAILED"
    summary: dict[str, Any] = {}
    try:
        from mtbench.train.trainer import Trainer

        trainer = Trainer(spec, run_dir, base_dir=base, tracker=tracker, progress=progress, distribution=dist)
        if continuing:
            tracker.set_tags({names.RESUMED_TAG: f"at step {trainer.step} (pid {os.getpid()})"})
            resend_lcurves(run, list(tasks), trainer.step, tracker, trainer.disp_file)
        summary = trainer.train()
        del trainer  # the end-of-run evaluation below reuses its memory (the peak stays the training step's)
        gc.collect()
        if dist.kind != "none":
            summary["distributed"] = dist.describe()
        if not dist.is_chief:  # the chief evaluates and reports; this rank's scratch folder goes away
            summary["objective"] = math.nan
            status = "FINISHED"
            return summary
        if summary.get("stopped_by"):  # a signal: checkpoint written, the run is KILLED, the caller exits
            status = "KILLED"
            tracker.set_tags({names.STOPPED_TAG: f"{summary['stopped_by']} at step {summary['steps']}"})
            return summary
        summary["final_eval"] = end_of_run_evaluation(run_dir, spec, base, tracker, summary)
        summary["objective"] = objective(summary, {t: ts.weight for t, ts in tasks.items()})
        summary["run_id"] = getattr(tracker, "run_id", None)
        summary["tracking_uri"] = getattr(tracker, "tracking_uri", None)
        run.write_summary(Summary.from_dict(summary))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException as exc:
        disk = storage_error(exc, "to the run folder", run_dir)  # a full or read-only disk: one line, exit 1
        tracker.set_tags({names.ERROR_TAG: (f"{type(disk).__name__}: {disk}" if disk is not None else
                                            f"{type(exc).__name__}: {exc}")[:5000]})
        if disk is not None and disk is not exc:
            raise disk from None
        raise
    finally:
        for path in [*run.artifacts(), *list(extra_artifacts or [])]:
            if Path(path).exists():
                tracker.log_artifact(path)
        tracker.finish(status)
    summary["tracking"] = tracker.describe()
    return summary
