"""MLflow implementation of :class:`~mtbench.tracking.base.Tracker`.

Failure policy ("never lose training"): the first time the store cannot be used the tracker
logs ONE warning (what failed, where the unsent data goes), switches to offline mode for the
rest of the run and appends everything it could not send to ``<run_dir>/tracking_backlog.jsonl``;
``python -m mtbench.tracking.replay RUN_DIR`` sends it later. Data the store refuses as invalid
is kept in the backlog as ``rejected`` and the run stays online.

Resuming (``start(resume_run_id=...)``): the run is set RUNNING again and every point it already holds is
read first; a point this process logs at a (metric, step) the run holds is not sent again (MLflow cannot delete a
point; a differing value is one warning), so no step ever has two values. Metrics of that run waiting in the run
folder's backlog (a killed process that was offline) are sent first.

Importing this module does not import MLflow; connecting a store does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mtbench.tracking import names
from mtbench.tracking.backlog import Backlog
from mtbench.tracking.base import Tracker
from mtbench.tracking.params import (
    PARAM_VALUE_LIMIT,
    TAG_VALUE_LIMIT,
    flatten_params,
    sanitize_key,
    to_plain,
    truncate,
)
from mtbench.tracking.store import (
    STATUSES,
    MetricPoint,
    Store,
    StoreError,
    StoreRejected,
    default_tracking_uri,
    one_line,
    resolve_tracking_uri,
    ui_hint,
)

__all__ = ["MlflowTracker", "default_tracking_uri", "finish_run", "start_parent_run"]

log = logging.getLogger("mtbench.tracking")

PARENT_TAG = "mlflow.parentRunId"
RUN_DIR_TAG = "mtbench.run_dir"
SPEC_ARTIFACT = "input.json"


def previous_ends(tags: Mapping[str, str]) -> dict[str, str]:
    """``{mtbench.previous_ends: "stopped: SIGTERM at step 30 | stale: ..."}`` for a run being resumed whose tags
    say how earlier processes ended (``{}`` when none do): the history stays, the end tags go."""
    ends = [f"{k.split('.', 1)[1]}: {tags[k]}" for k in names.END_TAGS if k in tags]
    if not ends:
        return {}
    before = tags.get(names.PREVIOUS_ENDS_TAG)
    return {names.PREVIOUS_ENDS_TAG: " | ".join([*([before] if before else []), *ends])}


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tag keys MLflow accepts, string values within the tag length limit."""
    return {sanitize_key(k): truncate(str(v), TAG_VALUE_LIMIT)[0] for k, v in tags.items()}


def clean_params(flat: Mapping[str, str]) -> dict[str, str]:
    """Param keys MLflow accepts, values cut to its limit (the full spec goes to input.json)."""
    return {sanitize_key(k): truncate(v, PARAM_VALUE_LIMIT)[0] for k, v in flat.items()}


def context_tags() -> dict[str, str]:
    """MLflow's usual run-context tags (user, source name/type, git commit where known)."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return {k: str(v) for k, v in resolve_tags({}).items()}
    except Exception:  # noqa: BLE001 - cosmetic tags must never block a run
        return {}


class MlflowTracker(Tracker):
    """Tracks one run in an MLflow store, buffering metrics and surviving store failures.

    ``tracking_uri`` is the configured URI; the ``MLFLOW_TRACKING_URI`` environment variable
    wins over it, and the default is ``sqlite:///<output_dir abs>/mlflow.db``. Metrics are sent
    with ``log_batch`` when ``flush_every`` points are queued, ``flush_interval_s`` seconds have
    passed since the last send, or on ``flush()``/``finish()``.
    """

    def __init__(self, tracking_uri: str | None = None, output_dir: Path | str = "outputs", *,
                 flush_every: int = 1000, flush_interval_s: float = 30.0, retries: int = 6,
                 backoff_s: float = 0.1, probe_timeout_s: float = 5.0) -> None:
        self.output_dir = Path(output_dir)
        self.tracking_uri = resolve_tracking_uri(tracking_uri, self.output_dir)
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.experiment: str | None = None
        self._store = Store(self.tracking_uri, self.output_dir, retries=retries,
                            backoff_s=backoff_s, probe_timeout_s=probe_timeout_s)
        self._run_dir: Path | None = None
        self._backlog: Backlog | None = None
        self._start_info: dict[str, Any] = {}
        self._header_written = False
        self._failure: str | None = None
        self._warned: set[str] = set()
        self._keys: dict[str, str] = {}
        self._buffer: list[MetricPoint] = []
        self._last_flush = time.monotonic()
        self._started = False
        self._finished = False
        self._held: dict[str, dict[int, float]] | None = None  # resuming: (key -> step -> value) in the run
        self.resumed = False  # start() continued an existing run
        self.resumed_status: str | None = None  # that run's status before it was reopened

    # -- state ------------------------------------------------------------------

    @property
    def offline(self) -> bool:
        """True once the store failed: everything since then is in the backlog."""
        return self._failure is not None

    @property
    def backlog_path(self) -> Path | None:
        return self._backlog.path if self._backlog is not None else None

    def _active(self, what: str, strict: bool = True) -> bool:
        """True while the run takes data; calling data methods before start() is a bug.
        flush()/finish() before start() are no-ops so a trainer's ``finally`` stays simple."""
        if not self._started:
            if strict:
                raise RuntimeError(f"MlflowTracker.{what}() called before start()")
            return False
        return not self._finished

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _ensure_header(self) -> None:
        """The backlog's first record says which run the following records belong to."""
        if not self._header_written and self._backlog is not None:
            self._header_written = self._backlog.append("start", **self._start_info,
                                                        run_id=self.run_id)

    def _record(self, kind: str, **fields: Any) -> None:
        if self._backlog is not None:
            self._ensure_header()
            self._backlog.append(kind, **fields)

    def _go_offline(self, exc: StoreError) -> None:
        if self._failure is not None:
            return
        self._failure = str(exc)
        self._ensure_header()
        where = self.backlog_path
        log.warning(
            "MLflow tracking failed (%s); training goes on, unsent tracking data is appended to "
            "%s (send it later: python -m mtbench.tracking.replay %s)",
            self._failure, where, self._run_dir)

    def _send(self, fn: Callable[[], None], kind: str | None, **fields: Any) -> None:
        """Run ``fn`` against the store; on failure keep ``fields`` in the backlog as ``kind``."""
        if not self.offline and self.run_id is not None:
            try:
                fn()
                return
            except StoreRejected as exc:
                self._warn_once(f"rejected:{kind}", "MLflow refused %s (%s); kept in %s",
                                kind or "data", exc, self.backlog_path)
                self._record("rejected", what=kind, error=str(exc), **fields)
                return
            except StoreError as exc:
                self._go_offline(exc)
            except Exception as exc:  # noqa: BLE001 - nor may a bug or a local I/O error
                self._go_offline(StoreError(f"{kind or 'call'} failed: {one_line(exc)}"))
        if kind is not None:
            self._record(kind, **fields)

    # -- Tracker ------------------------------------------------------------------

    def start(self, *, experiment: str, run_name: str | None, params: Mapping[str, Any],
              tags: Mapping[str, str], run_dir: Path, parent_run_id: str | None = None,
              resume_run_id: str | None = None) -> None:
        if self._started:
            raise RuntimeError("MlflowTracker.start() called twice; use one tracker per run")
        self._started = True
        self.experiment = experiment
        self._run_dir = Path(run_dir).absolute()
        self._backlog = Backlog(self._run_dir)
        flat = flatten_params(params)
        all_tags = dict(tags)
        all_tags[RUN_DIR_TAG] = str(self._run_dir)
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        self._start_info = {
            "tracking_uri": self.tracking_uri, "output_dir": str(self.output_dir.absolute()),
            "experiment": experiment, "run_name": run_name, "parent_run_id": parent_run_id,
            "tags": clean_tags(all_tags), "params": flat, "spec": to_plain(params),
        }
        self._last_flush = time.monotonic()
        try:
            self._store.connect()
            self.experiment_id = self._store.experiment_id(experiment)
            run_tags = {**context_tags(), **self._start_info["tags"]}
            self._start_info["tags"] = run_tags
            if resume_run_id and self._store.run_exists(resume_run_id):
                self._resume(resume_run_id, run_tags, flat)
                return
            if resume_run_id:
                log.warning("MLflow run %s (of %s) is not in %s: the resumed training is tracked as a new run",
                            resume_run_id, self._run_dir, self.tracking_uri)
            self.run_id = self._store.create_run(self.experiment_id, run_name, run_tags)
        except StoreError as exc:
            self.run_id = self.run_id or resume_run_id  # the backlog names the run a replay is to continue
            self._go_offline(exc)
            return
        except Exception as exc:  # noqa: BLE001 - never let tracking stop a training
            self.run_id = self.run_id or resume_run_id
            self._go_offline(StoreError(f"start run failed: {one_line(exc)}"))
            return
        # The backlog header carries params and spec, so failures here need no extra record.
        self._send(lambda: self._store.log_params(self.run_id, clean_params(flat)), None)
        self._send(lambda: self._store.log_json_artifact(self.run_id, self._start_info["spec"],
                                                         SPEC_ARTIFACT), None)

    def _resume(self, run_id: str, tags: Mapping[str, str], flat: Mapping[str, str]) -> None:
        """Continue ``run_id``: reopen it, read what it holds, send its metrics left in the backlog."""
        run = self._store.get_run(run_id)
        self.run_id, self.resumed, self.resumed_status = run_id, True, run.info.status
        self.experiment_id = run.info.experiment_id
        self._start_info["run_id"] = run_id
        self._held = {}
        for key in run.data.metrics:
            self._held[key] = {int(m.step): float(m.value) for m in self._store.metric_history(run_id, key)}
        self._store.reopen(run_id)
        old = run.data.params
        clean = clean_params(flat)
        changed = sorted(k for k, v in clean.items() if k in old and old[k] != v)
        if changed:  # MLflow params cannot change; the run folder's input.json has the new values
            log.info("resumed run %s keeps its first values of %d changed param(s) (%s); input.json has the new",
                     run_id, len(changed), ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else ""))
        self._send(lambda: self._store.set_tags(run_id, clean_tags({**tags, **previous_ends(run.data.tags)})), None)
        ended = [k for k in names.END_TAGS if k in run.data.tags]
        if ended:  # "stopped by SIGTERM" no longer describes a run that goes on; previous_ends keeps it
            self._send(lambda: self._store.delete_tags(run_id, ended), None)
        new = {k: v for k, v in clean.items() if k not in old}
        if new:
            self._send(lambda: self._store.log_params(run_id, new), None)
        self._resend_backlog(run_id)
        self.flush()

    def _resend_backlog(self, run_id: str) -> None:
        """Metric points of ``run_id`` that a killed, offline process left in the backlog (original timestamps,
        so a later replay of the same file adds nothing)."""
        from mtbench.tracking.backlog import read_backlog

        if self._backlog is None or not self._backlog.path.is_file():
            return
        mine = False
        for rec in read_backlog(self._backlog.path):
            if rec.get("kind") == "start":
                mine = rec.get("run_id") == run_id
            elif mine and rec.get("kind") == "metrics":
                for k, v, step, ts in rec.get("metrics") or []:
                    self._queue(str(k), float(v), int(step), int(ts), compare=False)

    def _queue(self, key: str, value: float, step: int, ts: int, compare: bool = True) -> None:
        """Buffer one point, unless a resumed run already holds (key, step): then warn if it differs."""
        if self._held is not None:
            held = self._held.setdefault(key, {})
            if step in held:
                old = held[step]
                same = old == value or (math.isnan(old) and math.isnan(value)) or math.isclose(old, value, rel_tol=1e-9)
                if compare and not same and key not in names.WALL_CLOCK:
                    self._warn_once(f"differs:{key}", "metric %s at step %d: the run holds %r, the resumed "
                                    "training computed %r; the held value stays (further differences not shown)",
                                    key, step, old, value)
                return
            held[step] = value
        self._buffer.append((key, value, step, ts))

    def log_missing(self, metrics: Mapping[str, float], step: int) -> None:
        self._log(metrics, step, compare=False)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._log(metrics, step, compare=True)

    def _log(self, metrics: Mapping[str, float], step: int, compare: bool) -> None:
        if not self._active("log_metrics"):
            return
        ts = int(time.time() * 1000)
        step = int(step)
        for raw_key, raw_value in metrics.items():
            key = self._metric_key(raw_key)
            try:
                value = float(raw_value)
            except (TypeError, ValueError):
                self._warn_once(f"value:{key}", "metric %s: value %r is not a number; skipped",
                                key, raw_value)
                continue
            self._queue(key, value, step, ts, compare)
        if (len(self._buffer) >= self.flush_every
                or time.monotonic() - self._last_flush >= self.flush_interval_s):
            self.flush()

    def _metric_key(self, raw: str) -> str:
        key = self._keys.get(raw)
        if key is None:
            key = sanitize_key(raw)
            if key != raw:
                log.warning("metric name %r is not valid in MLflow; logged as %r", raw, key)
            self._keys[raw] = key
        return key

    def flush(self) -> None:
        if not self._active("flush", strict=False):
            return
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        points, self._buffer = self._buffer, []
        self._send(lambda: self._store.log_metrics(self.run_id, points), "metrics",
                   metrics=[list(p) for p in points])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if not self._active("log_artifact"):
            return
        path = Path(path).absolute()
        if not path.exists():
            log.warning("artifact %s does not exist; not logged", path)
            return
        self._send(lambda: self._store.log_artifact(self.run_id, path, artifact_path), "artifact",
                   path=str(path), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if not self._active("set_tags") or not tags:
            return
        clean = clean_tags(tags)
        self._send(lambda: self._store.set_tags(self.run_id, clean), "tags", tags=clean)

    def finish(self, status: str = "FINISHED") -> None:
        if status not in STATUSES:
            raise ValueError(f"run status {status!r} is not one of {', '.join(STATUSES)}")
        if not self._active("finish", strict=False):
            return
        self.flush()
        self._send(lambda: self._store.set_terminated(self.run_id, status), "finish", status=status)
        self._finished = True

    def describe(self) -> str:
        uri = self.tracking_uri
        if self.offline:
            run = f"run {self.run_id}" if self.run_id else "no run created"
            return (f"MLflow tracking to {uri} failed ({run}): {self._failure}\n"
                    f" unsent data: {self.backlog_path}\n"
                    f" send it later: python -m mtbench.tracking.replay {self._run_dir}")
        if self.run_id is None:
            return f"MLflow tracking to {uri} (no run started)"
        return (f"MLflow run {self.run_id} in experiment '{self.experiment}' ({uri})\n"
                f" {ui_hint(uri, self.experiment_id, self.run_id)}")


# ------------------------------------------------------------------- sweep helpers


def start_parent_run(experiment: str, run_name: str | None = None,
                     tags: Mapping[str, str] | None = None, *, tracking_uri: str | None = None,
                     output_dir: Path | str = "outputs") -> str | None:
    """Create the parent run of a sweep and return its id (None, with a warning, if the store
    cannot be used: the jobs then run as top-level runs). Pass the id to each job's
    ``Tracker.start(parent_run_id=...)`` and close it with :func:`finish_run`."""
    uri = resolve_tracking_uri(tracking_uri, output_dir)
    store = Store(uri, output_dir)
    try:
        store.connect()
        eid = store.experiment_id(experiment)
        return store.create_run(eid, run_name, {**context_tags(), **clean_tags(tags or {})})
    except StoreError as exc:
        log.warning("MLflow parent run not created (%s); sweep jobs are tracked as separate runs",
                    exc)
        return None


def finish_run(run_id: str | None, status: str = "FINISHED", *, tracking_uri: str | None = None,
               output_dir: Path | str = "outputs") -> bool:
    """Close a run by id (e.g. a sweep's parent); False, with a warning, if that failed."""
    if status not in STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(STATUSES)}")
    if run_id is None:
        return False
    store = Store(resolve_tracking_uri(tracking_uri, output_dir), output_dir)
    try:
        store.set_terminated(run_id, status)
    except StoreError as exc:
        log.warning("MLflow run %s not closed (%s)", run_id, exc)
        return False
    return True
