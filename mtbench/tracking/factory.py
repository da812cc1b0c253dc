"""Build the tracker chosen by the ``tracking`` config group."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbench.errors import SpecError
from mtbench.tracking.base import NullTracker, Tracker

BACKENDS = ("mlflow", "none")
# experiment / run_name / tags are read by the trainer and passed to Tracker.start().
KNOWN_KEYS = frozenset(
    {"backend", "tracking_uri", "experiment", "run_name", "tags", "flush_every",
     "flush_interval_s"})


def make_tracker(cfg: Mapping[str, Any] | None, output_dir: Path | str) -> Tracker:
    """``cfg`` is the ``tracking`` config (None or ``backend: none`` disables tracking)."""
    if cfg is None:
        return NullTracker()
    unknown = sorted(str(k) for k in cfg if k not in KNOWN_KEYS)
    if unknown:
        raise SpecError(f"tracking.{unknown[0]}",
                        f"unknown tracking option (known: {', '.join(sorted(KNOWN_KEYS))})")
    backend = str(cfg.get("backend", "mlflow")).lower()
    if backend == "none":
        return NullTracker()
    if backend != "mlflow":
        raise SpecError("tracking.backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")
    from mtbench.tracking.mlflow_tracker import MlflowTracker  # light: MLflow loads on connect

    options: dict[str, Any] = {}
    for key, kind in (("flush_every", int), ("flush_interval_s", float)):
        if cfg.get(key) is not None:
            try:
                options[key] = kind(cfg[key])
            except (TypeError, ValueError):
                raise SpecError(f"tracking.{key}", f"{cfg[key]!r} is not a number") from None
    return MlflowTracker(tracking_uri=cfg.get("tracking_uri"), output_dir=output_dir, **options)
