"""What a compare target names: a sweep folder, a sweep's run id, or an MLflow experiment.

The explicit forms (:func:`load_target` with ``kind=``) read one source only. The bare form tries
them in a fixed order and says which it understood: a path (``./x``, ``a/b``) is a folder and
nothing else; a bare word is a folder only when that folder looks like a sweep (so
``compare mtbench`` in a checkout does not read the ``./mtbench`` package), else a run id of the
store, else an experiment name, else one error naming all it tried.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mtbench.errors import DataError
from mtbench.sweeps.folders import load_sweep_dir, looks_like_sweep_dir
from mtbench.sweeps.mlflow_reader import load_experiment, load_parent_run
from mtbench.sweeps.model import Sweep
from mtbench.tracking.store import Store, StoreError, resolve_tracking_uri

log = logging.getLogger("mtbench.compare")

KINDS = ("folder", "run", "experiment")


def is_path_like(target: str) -> bool:
    """Written as a path (a separator, or starting with ``.`` or ``~``): only a folder is meant."""
    return "/" in target or "\\" in target or target.startswith((".", "~"))


def is_run_id(target: str) -> bool:
    """The shape of an MLflow run id (32 hex digits)."""
    return len(target) == 32 and all(c in "0123456789abcdef" for c in target.lower())


def _from_run(store: Store, run_id: str) -> Sweep:
    """The sweep of ``run_id``: the run itself when it is a parent, else its parent."""
    run = store.get_run(run_id)
    parent = run.data.tags.get("mlflow.parentRunId") or run_id
    log.info("run %s in %s: sweep of parent run %s", run_id, store.uri, parent)
    return load_parent_run(store, parent)


def load_target(target: str, *, tracking_uri: str | None = None,
                output_dir: str | Path = "outputs", kind: str | None = None) -> Sweep:
    """The sweep ``target`` names. ``kind`` (``folder``, ``run``, ``experiment``) reads that
    source only; without it the order of the module docstring applies."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if kind == "folder" or (kind is None and is_path_like(target)):
        if not Path(target).expanduser().is_dir():
            raise DataError(target, "no such directory (nor a run id or experiment name)")
        return load_sweep_dir(Path(target).expanduser())
    if kind is None and looks_like_sweep_dir(target):
        log.info("%s: sweep folder %s", target, Path(target).resolve())
        return load_sweep_dir(target)
    uri = resolve_tracking_uri(tracking_uri, output_dir)
    store = Store(uri, output_dir)
    tried = []
    if kind is None and Path(target).is_dir():
        tried.append(f"./{target} is a folder but not a sweep (no multirun.yaml, "
                     "no job directories <n>/input.json)")
    try:
        store.connect()
        if kind == "run":
            if not store.run_exists(target):
                raise DataError(target, f"no such MLflow run in {uri}")
            return _from_run(store, target)
        if kind == "experiment":
            return load_experiment(store, target)
        if is_run_id(target) and store.run_exists(target):
            return _from_run(store, target)
        if store.experiment_by_name(target) is not None:
            log.info("%s: MLflow experiment in %s", target, uri)
            return load_experiment(store, target)
    except StoreError as exc:
        what = "" if kind else ("not a directory, and " if not tried else f"{tried[0]}, and ")
        raise DataError(target, f"{what}the MLflow store {uri} failed: {exc}") from None
    if not Path(target).exists():
        tried.append("no such directory")
    tried.append(("no run with that id, " if is_run_id(target) else "")
                 + f"no MLflow experiment of that name in {uri}")
    raise DataError(target, "; ".join(tried) + " (name the form: ./DIR, --parent RUN_ID or "
                    "--experiment NAME)")
