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
    """One number for sweepers: the weight-averaged final validation ``rmse`` over tasks."""
    num = den = 0.0
    for task, res in summary.get("final", {}).items():
        v = res.get("val", {}).get("rmse", math.nan)
        w = float(weights.get(task, 1.0))
        if math.isfinite(v) and w > 0:
            num += w * v
            den += w
    return num / den if den else math.nan


def run_training(spec: Mapping[str, Any], *, run_dir: str | Path, base_dir: str | Path | None = None,
                 tracking: Mapping[str, Any] | None = None, output_dir: str | Path = "outputs",
                 tags: Mapping[str, str] | None = None, extra_artifacts: list[Path] | None = None,
                 parent_run_id: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train ``spec`` into ``run_dir``; returns the trainer's summary plus ``objective`` and ``run_id``."""
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

        trainer = Trainer(spec, run_dir, base_dir=base, tracker=tracker, progress=progress)
        summary = trainer.train()
        if summary.get("stopped_by"):  # a signal: checkpoint written, the run is KILLED, the caller exits
            status = "KILLED"
            tracker.set_tags({"mtbench.stopped": f"{summary['stopped_by']} at step {summary['steps']}"})
            return summary
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


def print_summary(summary: Mapping[str, Any]) -> None:
    """Final metrics per task as a table, then where the run lives and how to open it."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"mtbench: {summary['steps']} steps in {summary['wall_s']:.1f} s")
    table.add_column("task")
    table.add_column("steps trained", justify="right")
    table.add_column("fraction", justify="right")
    table.add_column("final validation", justify="left")
    for task, res in summary.get("final", {}).items():
        val = ", ".join(f"{k}={v:.3g}" for k, v in res.get("val", {}).items() if math.isfinite(v))
        table.add_row(task, str(summary["counts"].get(task, 0)), f"{summary['fractions'].get(task, 0):.2f}",
                      val or "-")
    console.print(table)
    for task, b in summary.get("best", {}).items():
        console.print(f"best {task}: val {b['metric']} = {b['value']:.4g} at step {b['step']} "
                      f"(checkpoints/{b['checkpoint']})")
    console.print(f"run directory: {summary['run_dir']}")
    if summary.get("tracking"):
        console.print(summary["tracking"])


def exit_if_stopped(summary: Mapping[str, Any], resume_command: str) -> None:
    """After a signal stopped training: one line with the exact command to resume, then exit 143 / 130."""
    if not summary.get("stopped_by"):
        return
    import sys

    print(f"mtbench: stopped by {summary['stopped_by']} at step {summary['steps']} (checkpoint written); "
          f"resume with: {resume_command}", file=sys.stderr, flush=True)
    raise SystemExit(int(summary.get("exit_code") or 143))
