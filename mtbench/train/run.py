"""One tracked training run from a spec: validate, write ``input.json``, track, train, report.

Both entry points (``python -m mtbench`` through Hydra and ``python -m mtbench.train input.json``) end here, so a
Hydra-composed run and a plain DeePMD-style input.json run are tracked and reported the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def objective(summary: Mapping[str, Any], weights: Mapping[str, float]) -> float:
    """One number for sweepers: the weight-averaged final validation error over tasks.

    From the full end-of-run evaluation (``summary["final_eval"]["final"]``, each task's ranking metric of
    :func:`mtbench.train.final_eval.final_ranking_metric`) when the run has one, so every job is ranked on the same
    frames; else (older summaries) the last display's validation ``rmse``.
    """
    from mtbench.train.best import final_ranking_metric

    full = (summary.get("final_eval") or {}).get("final") or {}
    values: dict[str, float] = {}
    for task, res in full.items():
        m = final_ranking_metric(res.get("metrics", {}))
        values[task] = float(res["metrics"][m]) if m else math.nan
    if not full:
        values = {t: (r.get("val") or {}).get("rmse", math.nan) for t, r in summary.get("final", {}).items()}
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

    Data-parallel (``training.distributed``): every rank runs this; only the chief writes ``run_dir`` and tracks,
    the other ranks train into a private scratch folder that is removed at the end.
    """
    from mtbench.train import distributed

    dist = distributed.setup(spec.get("training") or {})  # first: a multi-worker strategy precedes any TF op
    with distributed.scratch_dir(dist) as scratch:
        if scratch is not None:
            run_dir, tracking, extra_artifacts = scratch, {"backend": "none"}, None
        return _run_training(spec, run_dir=run_dir, base_dir=base_dir, tracking=tracking, output_dir=output_dir,
                             tags=tags, extra_artifacts=extra_artifacts, parent_run_id=parent_run_id,
                             progress=progress and dist.is_chief, dist=dist)


def _run_training(spec: Mapping[str, Any], *, run_dir: str | Path, base_dir: str | Path | None,
                  tracking: Mapping[str, Any] | None, output_dir: str | Path, tags: Mapping[str, str] | None,
                  extra_artifacts: list[Path] | None, parent_run_id: str | None, progress: bool,
                  dist: Any) -> dict[str, Any]:
    from mtbench.rundir import RunDir, Summary
    from mtbench.spec.io import write_spec
    from mtbench.spec.tasks import describe_sharing, task_view
    from mtbench.tracking import flatten_params, make_tracker

    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(run_dir)
    base = Path(base_dir).resolve() if base_dir is not None else None
    spec = prepare_spec(spec, base)
    input_json = write_spec(spec, run.input_json)
    tracker = make_tracker(dict(tracking or {"backend": "none"}), Path(output_dir).resolve())
    tasks = task_view(spec)
    all_tags = {"mtbench.tasks": ",".join(tasks), **describe_sharing(spec), **dict(tags or {})}
    tracker.start(experiment=(tracking or {}).get("experiment") or "mtbench",
                  run_name=(tracking or {}).get("run_name"), params=flatten_params(spec), tags=all_tags,
                  run_dir=run_dir, parent_run_id=parent_run_id)
    tracker.log_artifact(input_json)
    status = "FAILED"
    summary: dict[str, Any] = {}
    try:
        from mtbench.train.trainer import Trainer

        trainer = Trainer(spec, run_dir, base_dir=base, tracker=tracker, progress=progress, distribution=dist)
        summary = trainer.train()
        if dist.kind != "none":
            summary["distributed"] = dist.describe()
        if not dist.is_chief:  # the chief evaluates and reports; this rank's scratch folder goes away
            summary["objective"] = math.nan
            status = "FINISHED"
            return summary
        if summary.get("stopped_by"):  # a signal: checkpoint written, the run is KILLED, the caller exits
            status = "KILLED"
            tracker.set_tags({"mtbench.stopped": f"{summary['stopped_by']} at step {summary['steps']}"})
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
        tracker.set_tags({"mtbench.error": f"{type(exc).__name__}: {exc}"[:5000]})
        raise
    finally:
        for path in [*run.artifacts(), *list(extra_artifacts or [])]:
            if Path(path).exists():
                tracker.log_artifact(path)
        tracker.finish(status)
    summary["tracking"] = tracker.describe()
    return summary
