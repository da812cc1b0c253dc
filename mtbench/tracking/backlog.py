"""On-disk backlog of tracking data that could not be sent (``<run_dir>/tracking_backlog.jsonl``).

One JSON object per line, appended as data arrives, so a crash loses at most the line being
written. Record kinds:

- ``start``: where the run should live and how to create it (``tracking_uri``, ``output_dir``,
  ``experiment``, ``run_name``, ``tags``, ``params`` (full values), ``parent_run_id``,
  ``run_id`` (``null`` if the run was never created)). Every later record up to the next
  ``start`` belongs to this run.
- ``params`` / ``tags``: ``{"params": {...}}``, ``{"tags": {...}}``.
- ``metrics``: ``{"metrics": [[key, value, step, timestamp_ms], ...]}`` (NaN written as ``NaN``).
- ``artifact``: ``{"path": <absolute local path>, "artifact_path": <str|null>}``.
- ``finish``: ``{"status": "FINISHED"|"FAILED"|"KILLED"}``.
- ``rejected``: data the store refused as invalid (kept for the record; replay skips it).
- ``replayed``: written by replay after it created a run, so that a second replay reuses it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from mtbench.errors import DataError
from mtbench.rundir import BACKLOG as BACKLOG_NAME
from mtbench.rundir import BACKLOG_REPLAYED as REPLAYED_NAME
from mtbench.rundir import RunDir

__all__ = ["BACKLOG_NAME", "REPLAYED_NAME", "Backlog", "backlog_path", "read_backlog"]

log = logging.getLogger("mtbench.tracking")


def backlog_path(run_dir: Path | str) -> Path:
    return RunDir(run_dir).backlog


class Backlog:
    """Appends records to one run's backlog file; never raises (it is the last resort)."""

    def __init__(self, run_dir: Path | str) -> None:
        self.path = backlog_path(Path(run_dir).absolute())
        self._write_failed = False
        self.records_written = 0

    def append(self, kind: str, **fields: Any) -> bool:
        record = {"kind": kind, "time": time.time(), **fields}
        try:
            line = json.dumps(record, default=str)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except (OSError, TypeError, ValueError) as exc:
            if not self._write_failed:
                self._write_failed = True
                log.error("cannot write the tracking backlog %s (%s): unsent tracking data is lost",
                          self.path, exc)
            return False
        self.records_written += 1
        return True


def read_backlog(path: Path | str) -> list[dict[str, Any]]:
    """Read all records; a torn last line (crash while writing) is skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "no tracking backlog here (nothing to replay)")
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                log.warning("%s: skipping a torn last line", path)
                continue
            raise DataError(str(path), f"line {i + 1} is not JSON") from None
    return records
