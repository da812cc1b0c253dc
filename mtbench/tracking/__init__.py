"""Experiment tracking (MLflow) for mtbench runs.

Typical use in a trainer::

    tracker = make_tracker(cfg.get("tracking"), output_dir)       # NullTracker for tracking=none
    tracker.start(experiment="mtbench", run_name=None, params=spec, tags={"descriptor": "se_e2_a"},
                  run_dir=run_dir, parent_run_id=None)
    try:
        for step in ...:
            tracker.log_metrics({names.train_metric("water_ener", "rmse_e"): x, names.LR: lr}, step)
        tracker.log_artifact(run_dir / "lcurve.water_ener.out")
        tracker.finish("FINISHED")
    except KeyboardInterrupt:
        tracker.finish("KILLED"); raise
    except BaseException:
        tracker.finish("FAILED"); raise
    print(tracker.describe())

Store failures never raise into the trainer: see :mod:`mtbench.tracking.mlflow_tracker`.
Nothing imported here loads MLflow; it is imported when an :class:`MlflowTracker` connects.
Metric names live in :mod:`mtbench.tracking.names`.
"""

from __future__ import annotations

from mtbench.tracking.backlog import BACKLOG_NAME
from mtbench.tracking.base import NullTracker, Tracker
from mtbench.tracking.factory import make_tracker
from mtbench.tracking.mlflow_tracker import MlflowTracker, finish_run, start_parent_run
from mtbench.tracking.params import flatten_params
from mtbench.tracking.resend import ReplayedRun, replay_backlog
from mtbench.tracking.store import default_tracking_uri, resolve_tracking_uri

__all__ = [
    "BACKLOG_NAME",
    "MlflowTracker",
    "NullTracker",
    "ReplayedRun",
    "Tracker",
    "default_tracking_uri",
    "finish_run",
    "flatten_params",
    "make_tracker",
    "replay_backlog",
    "resolve_tracking_uri",
    "start_parent_run",
]
