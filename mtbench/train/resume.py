"""Resume is a continuation: ``training.restart`` pointing into the run folder being trained continues that run.

What "continue" means here: the same folder (the callers pick it: :func:`continuation_dir`), the same MLflow run
(its id is in the folder's ``tracking_run.json``), lcurve files cut back to the checkpoint's step (the trainer does
that when it opens them) and the points the killed process wrote to lcurve but never sent re-sent from there
(:func:`resend_lcurves`; the tracker drops those the run already holds). ``restart: auto`` resumes the folder's
latest checkpoint when there is one and starts fresh otherwise, so a requeued cluster job needs no edit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtbench.rundir import RunDir, run_dir_of
from mtbench.tracking import names
from mtbench.train.lcurve import read_lcurve

log = logging.getLogger("mtbench")

AUTO = "auto"


def is_auto(restart: Any) -> bool:
    return isinstance(restart, str) and restart.strip().lower() == AUTO


def resolve_auto(spec: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """``training.restart: auto`` -> the run folder (it has a checkpoint) or nothing (a fresh start)."""
    training = dict(spec.get("training") or {})
    if not is_auto(training.get("restart")):
        return dict(spec)
    run = RunDir(run_dir)
    latest = run.latest_checkpoint()
    if latest is not None and latest.is_file():
        training["restart"] = str(run.path.resolve())
        log.info("training.restart=auto: resuming %s", latest)
    else:
        training["restart"] = None
        log.info("training.restart=auto: no checkpoint in %s, starting fresh", run.path)
    return {**spec, "training": training}


def continuation_dir(restart: str | Path | None, base: str | Path | None = None) -> Path | None:
    """The run folder a restart path belongs to (None for ``auto``, nothing, or a checkpoint outside any run)."""
    if not restart or is_auto(restart):
        return None
    p = Path(restart)
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    run = run_dir_of(p)
    return run.path.resolve() if run is not None else None


def continues(spec: Mapping[str, Any], run_dir: str | Path) -> bool:
    """Whether the spec's restart resumes ``run_dir`` itself (a continuation, not a branch into a new folder)."""
    cont = continuation_dir((spec.get("training") or {}).get("restart"))
    return cont is not None and cont == Path(run_dir).resolve()


def resend_lcurves(run: RunDir, tasks: Sequence[str], step: int, tracker: Any, disp_file: str | None = None) -> int:
    """Send the lcurve rows up to ``step`` as metrics the run may lack (a ``kill -9`` loses the unsent buffer);
    the tracker drops the points the run already holds. ``lr`` comes from the first task's file, like the
    trainer's own ``lr`` metric. Returns the number of rows offered."""
    log_missing = getattr(tracker, "log_missing", None)
    if log_missing is None:
        return 0
    offered = 0
    for i, task in enumerate(tasks):
        path = run.lcurve(task, disp_file)
        if not path.is_file():
            continue
        curve = read_lcurve(path)
        for row in curve.rows:
            if int(row[0]) > step:
                continue
            metrics = {}
            for col, value in zip(curve.columns[1:], row[1:]):
                if (col == "lr" and i) or not math.isfinite(value):
                    continue
                try:
                    metrics[names.from_lcurve_column(task, col)] = value
                except ValueError:
                    continue
            if metrics:
                log_missing(metrics, int(row[0]))
                offered += 1
    return offered
