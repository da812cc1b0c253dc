"""Strict, retrying access to one MLflow tracking store.

:class:`Store` raises :class:`StoreError` (one-line message) when the store cannot be used;
the tracker turns that into "warn once, keep training, write the backlog". MLflow is imported
only when a store is connected. Each call names the run explicitly (``MlflowClient``): no
global active run, so one process can drive several runs (sweeps, tests).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from mtbench.tracking.params import METRICS_PER_BATCH, PARAMS_PER_BATCH

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
# MLflow 3's UI opens an experiment in the mode this tag names (its JS enum ExperimentKind); without it the UI
# guesses, and an experiment of training runs opens on the GenAI traces overview.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
STATUSES = ("FINISHED", "FAILED", "KILLED")

log = logging.getLogger("mtbench.tracking")
T = TypeVar("T")

# (key, value, step, timestamp_ms): the buffered form of one metric point.
MetricPoint = tuple[str, float, int, int]


class StoreError(Exception):
    """The tracking store could not be used; ``str()`` is one line naming the call and store."""


class StoreRejected(StoreError):
    """The store is up but refused the data as invalid (resending it will not help)."""


# --------------------------------------------------------------------------- URIs


def default_tracking_uri(output_dir: Path | str) -> str:
    """``sqlite:////abs/outputs/mlflow.db``: absolute, so every process and cwd sees one store."""
    return "sqlite:///" + (Path(output_dir).resolve() / "mlflow.db").as_posix()


def resolve_tracking_uri(configured: str | None, output_dir: Path | str) -> str:
    """The user's ``MLFLOW_TRACKING_URI`` wins, then the configured URI, then the default.

    A scheme-less path ending in ``.db``/``.sqlite`` is taken as an SQLite file (made absolute);
    a relative ``sqlite:///rel.db`` is made absolute too, so that sweep jobs agree on one file.
    """
    uri = os.environ.get(ENV_TRACKING_URI) or configured
    if not uri:
        return default_tracking_uri(output_dir)
    uri = str(uri)
    if "://" not in uri and uri.endswith((".db", ".sqlite")):
        return "sqlite:///" + Path(uri).resolve().as_posix()
    path = sqlite_path(uri)
    if path is not None and not path.is_absolute():
        return "sqlite:///" + path.resolve().as_posix()
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of an ``sqlite:///`` URI (None for other stores and in-memory DBs)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///"):].split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest)


def is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def artifact_root(uri: str, output_dir: Path | str) -> Path | None:
    """Where new experiments put artifacts: next to an SQLite file (``<db dir>/mlartifacts``),
    under ``output_dir`` for other databases, and wherever the store decides for servers and
    file stores (None)."""
    db = sqlite_path(uri)
    if db is not None:
        return db.parent / "mlartifacts"
    scheme = urlparse(uri).scheme
    if scheme in ("", "file", "http", "https", "databricks", "databricks-uc", "uc"):
        return None
    return Path(output_dir).resolve() / "mlartifacts"


def _experiment_dir_name(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    safe = safe or "experiment"
    return safe[:100]


def ui_hint(uri: str, experiment_id: str | None, run_id: str | None) -> str:
    """How to open a run in the MLflow UI."""
    route = ""
    if experiment_id is not None:
        route = f"#/experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "")
    if is_http(uri):
        return f"open the UI: {uri.rstrip('/')}/{route}"
    page = f"http://127.0.0.1:5000/{route}"
    return (f"open the UI: mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --workers 1"
            f" (then {page})")


# --------------------------------------------------------------------------- errors


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("database is locked", "database table is locked", "sqlite_busy"))


def _is_rejection(exc: BaseException) -> bool:
    code = getattr(exc, "error_code", None)
    return code == "INVALID_PARAMETER_VALUE" and not _is_locked(exc)


@contextlib.contextmanager
def _init_lock(db: Path) -> Iterator[None]:
    """Serialize first use of an SQLite store across processes.

    MLflow creates and migrates the schema on first connection without a lock; two sweep jobs
    hitting a fresh file at once break each other's migration ("duplicate column name").
    """
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock; sweeps there should pre-create the store
        yield
        return
    # Next to the database: every process that can write the store can create it, and it goes
    # away with the outputs (a lock file must never be deleted while in use, so none is).
    lock_path = db.with_name(db.name + ".lock")
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


# --------------------------------------------------------------------------- store

#: loggers that print a full SQLAlchemy traceback for every failed statement (a full disk: ~60 lines per call);
#: every such failure also raises into :class:`Store`, whose caller reports it once, so they only repeat it
_NOISY_LOGGERS = ("mlflow.store.db.utils", "sqlalchemy.pool", "sqlalchemy.engine")


def quiet_store_loggers() -> None:
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)



class Store:
    """One tracking store (URI) used through ``mlflow.MlflowClient``; every method raises
    :class:`StoreError` on failure after retrying SQLite lock errors with backoff."""

    def __init__(self, uri: str, output_dir: Path | str = "outputs", *, retries: int = 6,
                 backoff_s: float = 0.1, probe_timeout_s: float = 5.0) -> None:
        self.uri = uri
        self.output_dir = Path(output_dir)
        self.retries = retries
        self.backoff_s = backoff_s
        self.probe_timeout_s = probe_timeout_s
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        self._rng = random.Random(os.getpid())  # jitter only: desynchronizes competing writers

    # -- connection ---------------------------------------------------------

    def _probe(self) -> None:
        """Fail fast where MLflow would retry for minutes (HTTP: ~4 min; SQLite open: ~100 s)."""
        db = sqlite_path(self.uri)
        if db is not None:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
                con = sqlite3.connect(str(db), timeout=self.probe_timeout_s)
                try:
                    con.execute("PRAGMA schema_version").fetchone()
                finally:
                    con.close()
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open SQLite store {db}: {one_line(exc)}") from exc
        elif is_http(self.uri):
            url = self.uri.rstrip("/") + "/health"
            try:
                with urllib.request.urlopen(url, timeout=self.probe_timeout_s):
                    pass
            except urllib.error.HTTPError:
                pass  # the server answered (a proxy may not route /health): reachable
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, ssl.SSLError):  # TLS setup is MLflow's business
                    raise StoreError(
                        f"tracking server {self.uri} unreachable: {one_line(exc)}") from exc
            except (OSError, ValueError) as exc:
                raise StoreError(
                    f"tracking server {self.uri} unreachable: {one_line(exc)}") from exc

    @property
    def client(self) -> Any:
        if self._client is None:
            self.connect()
        return self._client

    def connect(self) -> None:
        """Check the store answers, then create the client (and, for SQLite, the schema)."""
        if self._client is not None:
            return
        self._probe()
        quiet_store_loggers()
        from mlflow import MlflowClient

        def make() -> Any:
            client = MlflowClient(tracking_uri=self.uri)
            client.search_experiments(max_results=1)  # builds the store: schema creation/check
            return client

        db = sqlite_path(self.uri)
        if db is not None:
            with _init_lock(db):
                self._client = self._retry(make, "connect")
        else:
            self._client = self._retry(make, "connect")

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        if self._client is not None and is_http(self.uri):
            # A server that died mid-run would make MLflow retry for ~4 minutes per call;
            # a /health probe (cheap next to log_batch) finds out in milliseconds.
            self._probe()
        attempt = 0
        while True:
            try:
                return fn()
            except StoreError:
                raise
            except Exception as exc:
                if _is_locked(exc) and attempt < self.retries:
                    delay = self.backoff_s * (2 ** attempt) * (1.0 + self._rng.random())
                    log.debug("%s on %s: database locked, retry %d in %.2f s", what, self.uri,
                              attempt + 1, delay)
                    time.sleep(delay)
                    attempt += 1
                    continue
                cls = StoreRejected if _is_rejection(exc) else StoreError
                raise cls(f"{what} on {self.uri} failed: {one_line(exc)}") from exc

    # -- experiments and runs ------------------------------------------------

    def experiment_id(self, name: str) -> str:
        """Get or create the experiment ``name`` (restoring it if it was deleted)."""
        if name in self._experiments:
            return self._experiments[name]
        root = artifact_root(self.uri, self.output_dir)
        location = (root / _experiment_dir_name(name)).as_uri() if root is not None else None

        def get_or_create() -> str:
            client = self.client
            exp = client.get_experiment_by_name(name)
            if exp is None:
                try:
                    return client.create_experiment(name, artifact_location=location,
                                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
                except Exception:
                    exp = client.get_experiment_by_name(name)
                    if exp is None:
                        raise
            if exp.lifecycle_stage == "deleted":
                log.warning("MLflow experiment '%s' was deleted; restoring it", name)
                client.restore_experiment(exp.experiment_id)
            if EXPERIMENT_KIND_TAG not in (exp.tags or {}):  # an experiment from before: the user's kind wins
                client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return exp.experiment_id

        db = sqlite_path(self.uri)
        if db is not None:
            with _init_lock(db):
                eid = self._retry(get_or_create, f"get/create experiment '{name}'")
        else:
            eid = self._retry(get_or_create, f"get/create experiment '{name}'")
        self._experiments[name] = eid
        return eid

    def create_run(self, experiment_id: str, run_name: str | None, tags: Mapping[str, str]) -> str:
        run = self._retry(
            lambda: self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)),
            "create run")
        return run.info.run_id

    def run_exists(self, run_id: str) -> bool:
        def get() -> bool:
            try:
                self.client.get_run(run_id)
            except Exception as exc:
                if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
                    return False
                raise
            return True

        return self._retry(get, f"get run {run_id}")

    def experiment_of(self, run_id: str) -> str:
        return self._retry(lambda: self.client.get_run(run_id).info.experiment_id,
                           f"get run {run_id}")

    # -- reading -----------------------------------------------------------------

    def get_run(self, run_id: str) -> Any:
        """The MLflow ``Run`` (info, tags, params, latest metrics)."""
        return self._retry(lambda: self.client.get_run(run_id), f"get run {run_id}")

    def experiment_by_name(self, name: str) -> Any | None:
        """The MLflow ``Experiment`` called ``name``, None if there is none (nothing is created)."""
        return self._retry(lambda: self.client.get_experiment_by_name(name),
                           f"get experiment '{name}'")

    def search_runs(self, experiment_ids: Sequence[str], filter_string: str = "", *,
                    order_by: Sequence[str] | None = None, max_results: int = 5000) -> list[Any]:
        """Runs of the experiments matching an MLflow filter (one page of ``max_results``)."""
        return list(self._retry(lambda: self.client.search_runs(
            list(experiment_ids), filter_string=filter_string,
            order_by=list(order_by) if order_by else None, max_results=max_results),
            "search runs"))

    def children(self, parent_run_id: str) -> list[Any]:
        """The nested runs of ``parent_run_id`` (the jobs of a sweep)."""
        exp = self.experiment_of(parent_run_id)
        return self.search_runs([exp], f"tags.mlflow.parentRunId = '{parent_run_id}'")

    def metric_history(self, run_id: str, key: str) -> list[Any]:
        """Every logged point (``Metric``: step, value, timestamp) of one metric of a run."""
        return list(self._retry(lambda: self.client.get_metric_history(run_id, key),
                                f"metric history {key}"))

    # -- data --------------------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for chunk in _chunks(items, PARAMS_PER_BATCH):
            self._retry(lambda c=chunk: self.client.log_batch(run_id, params=list(c)), "log params")

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tags.items()]
        for chunk in _chunks(items, PARAMS_PER_BATCH):
            self._retry(lambda c=chunk: self.client.log_batch(run_id, tags=list(c)), "set tags")

    def delete_tags(self, run_id: str, keys: Sequence[str]) -> None:
        for key in keys:
            self._retry(lambda k=key: self.client.delete_tag(run_id, k), f"delete tag {key}")

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        from mlflow.entities import Metric

        items = [Metric(key, float(value), int(ts), int(step)) for key, value, step, ts in points]
        for chunk in _chunks(items, METRICS_PER_BATCH):
            self._retry(lambda c=chunk: self.client.log_batch(run_id, metrics=list(c)),
                        "log metrics")

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None) -> None:
        """A file lands at ``<artifact_path>/<name>``, a directory at
        ``<artifact_path>/<dirname>/``."""
        if path.is_dir():
            dest = "/".join(p for p in (artifact_path, path.name) if p)
            self._retry(lambda: self.client.log_artifacts(run_id, str(path), dest),
                        f"log artifact {path}")
        else:
            self._retry(lambda: self.client.log_artifact(run_id, str(path), artifact_path),
                        f"log artifact {path}")

    def log_json_artifact(self, run_id: str, obj: Any, name: str) -> None:
        with tempfile.TemporaryDirectory(prefix="mtbench-") as tmp:
            file = Path(tmp) / name
            file.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
            self.log_artifact(run_id, file, None)

    def set_terminated(self, run_id: str, status: str) -> None:
        self._retry(lambda: self.client.set_terminated(run_id, status), f"end run ({status})")

    def reopen(self, run_id: str) -> None:
        """Set an ended run RUNNING again (a resumed training continues it)."""
        self._retry(lambda: self.client.update_run(run_id, status="RUNNING"), f"reopen run {run_id}")
