"""Send a run's tracking backlog to an MLflow store (after the store came back).

Replay is idempotent enough to run again after a partial failure: MLflow ignores a metric
point it already has (same key, step, timestamp, value), re-logging a param with the same value
is a no-op, and a run that replay created is recorded in the backlog and reused next time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtbench.errors import DataError
from mtbench.tracking.backlog import REPLAYED_NAME, Backlog, backlog_path, read_backlog
from mtbench.tracking.mlflow_tracker import SPEC_ARTIFACT, clean_params, clean_tags
from mtbench.tracking.store import ENV_TRACKING_URI, STATUSES, Store, ui_hint

log = logging.getLogger("mtbench.tracking")


@dataclass
class ReplayedRun:
    """What one replayed run received."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    created: bool
    metrics: int = 0
    artifacts: int = 0
    status: str | None = None
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        how = "created" if self.created else "updated"
        return (f"MLflow run {self.run_id} {how} ({self.metrics} metric points, {self.artifacts}"
                f" artifacts, status {self.status or 'unchanged'}) in {self.tracking_uri}\n"
                f" {ui_hint(self.tracking_uri, self.experiment_id, self.run_id)}")


def _segments(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Split records into (start record, following records) per run."""
    segments: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for rec in records:
        kind = rec.get("kind")
        if kind == "start":
            segments.append((rec, []))
        elif kind == "replayed":
            continue
        elif segments:
            segments[-1][1].append(rec)
        else:
            log.warning("backlog record %r before any 'start' record: skipped", kind)
    return segments


def replay_backlog(run_dir: Path | str, tracking_uri: str | None = None) -> list[ReplayedRun]:
    """Send ``<run_dir>/tracking_backlog.jsonl``, then rename it (``*.replayed.jsonl``).

    The store is ``tracking_uri`` if given, else ``MLFLOW_TRACKING_URI``, else the store the run
    was meant for. The original run is updated if it exists in that store; otherwise a run is
    created (tagged like the original). Raises :class:`StoreError` if the store still fails
    (the backlog is kept) and :class:`DataError` if there is no backlog.
    """
    run_dir = Path(run_dir)
    path = backlog_path(run_dir)
    records = read_backlog(path)
    segments = _segments(records)
    if not segments:
        raise DataError(str(path), "no 'start' record: nothing to replay")
    # Runs created by an earlier, interrupted replay: (segment index, uri) -> run id.
    previous = {(r["segment"], r["tracking_uri"]): r["run_id"]
                for r in records if r.get("kind") == "replayed"}
    backlog = Backlog(run_dir)
    stores: dict[str, Store] = {}
    results = []
    for index, (head, rest) in enumerate(segments):
        uri = tracking_uri or os.environ.get(ENV_TRACKING_URI) or head["tracking_uri"]
        store = stores.get(uri)
        if store is None:
            store = stores[uri] = Store(uri, head.get("output_dir") or run_dir)
            store.connect()
        results.append(_replay_segment(store, index, head, rest, previous, backlog))
    target = path.with_name(REPLAYED_NAME)
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(REPLAYED_NAME.replace(".jsonl", f".{n}.jsonl"))
    path.rename(target)
    return results


def _replay_segment(store: Store, index: int, head: dict[str, Any], rest: list[dict[str, Any]],
                    previous: dict[tuple[int, str], str], backlog: Backlog) -> ReplayedRun:
    uri = store.uri
    run_id = previous.get((index, uri))
    created = run_id is not None
    if run_id is None and head.get("run_id") and head.get("tracking_uri") == uri \
            and store.run_exists(head["run_id"]):
        run_id = head["run_id"]
    if run_id is None:
        experiment_id = store.experiment_id(head["experiment"])
        run_id = store.create_run(experiment_id, head.get("run_name"), head.get("tags") or {})
        backlog.append("replayed", segment=index, tracking_uri=uri, run_id=run_id)
        created = True
    else:
        experiment_id = store.experiment_of(run_id)
    result = ReplayedRun(run_id, experiment_id, uri, created)
    if created and head.get("tags"):
        store.set_tags(run_id, head["tags"])
    store.log_params(run_id, clean_params(head.get("params") or {}))
    store.log_json_artifact(run_id, head.get("spec", head.get("params")), SPEC_ARTIFACT)
    for rec in rest:
        kind = rec.get("kind")
        if kind == "metrics":
            points = [(k, float(v), int(s), int(t)) for k, v, s, t in rec["metrics"]]
            store.log_metrics(run_id, points)
            result.metrics += len(points)
        elif kind == "params":
            store.log_params(run_id, clean_params(rec["params"]))
        elif kind == "tags":
            store.set_tags(run_id, clean_tags(rec["tags"]))
        elif kind == "artifact":
            file = Path(rec["path"])
            if file.exists():
                store.log_artifact(run_id, file, rec.get("artifact_path"))
                result.artifacts += 1
            else:
                log.warning("artifact %s no longer exists; not sent", file)
                result.skipped.append(str(file))
        elif kind == "finish" and rec.get("status") in STATUSES:
            result.status = rec["status"]
        elif kind != "rejected":
            log.warning("unknown backlog record kind %r: skipped", kind)
    # A run that never said how it ended (killed process) must not stay RUNNING forever;
    # an existing run keeps whatever status it has.
    status = result.status or ("KILLED" if created else None)
    if status is not None:
        store.set_terminated(run_id, status)
        result.status = status
    return result
