"""The tracking interface the trainer talks to, and the do-nothing tracker (``tracking=none``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Tracker(Protocol):
    """Experiment tracking for one training run.

    Training-side calls (``log_*``, ``set_tags``, ``flush``, ``finish``) never raise because the
    store failed: tracking must not stop a training. ``run_id`` is None until a run exists.
    """

    run_id: str | None

    def start(self, *, experiment: str, run_name: str | None, params: Mapping[str, Any],
              tags: Mapping[str, str], run_dir: Path, parent_run_id: str | None = None,
              resume_run_id: str | None = None) -> None:
        """Create the run (or continue ``resume_run_id``: a resumed training); ``params`` is the resolved spec
        (nested or already flat)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue metric values at ``step``; sent in batches."""

    def log_missing(self, metrics: Mapping[str, float], step: int) -> None:
        """Like :meth:`log_metrics`, for points recovered from files (lcurve): those the run already holds are
        dropped without comparing (the files hold rounded values)."""

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or a directory (kept under its own name inside ``artifact_path``)."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) run tags."""

    def flush(self) -> None:
        """Send queued metrics now."""

    def finish(self, status: str = "FINISHED") -> None:
        """Flush, then close the run with FINISHED, FAILED or KILLED."""

    def describe(self) -> str:
        """Lines for the end of a run: where the run lives and how to look at it."""


class NullTracker(Tracker):
    """Tracking disabled: accepts every call, keeps nothing, imports nothing."""

    def __init__(self) -> None:
        self.run_id: str | None = None

    def start(self, *, experiment: str, run_name: str | None, params: Mapping[str, Any],
              tags: Mapping[str, str], run_dir: Path, parent_run_id: str | None = None,
              resume_run_id: str | None = None) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_missing(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass

    def describe(self) -> str:
        return "tracking disabled (tracking=none)"
