"""Freeze a trained model: the united SavedModel, one file per head, or one head as a DeePMD-kit ``.dp`` file.

``freeze(source, out, ...)`` is what ``python -m mtbench.freeze`` runs. ``source`` is anything
:func:`mtbench.export.load.load_model` reads (run dir, checkpoint, frozen mtbench model, ``.dp``). What is written:

* ``out`` ending in ``.dp``: one head (``head``; may be left out when the model has one) for DeePMD-kit;
* ``united=True``: one SavedModel (``out`` is a folder) holding the descriptor and every head;
* ``head`` given, ``out`` a folder: that head alone as a SavedModel;
* otherwise one file per head in the folder ``out`` (``<task>/`` SavedModels, or ``<task>.dp`` with
  ``fmt="dp"``) and ``manifest.json`` (heads, type map, output kinds, each head's validation metrics).

When ``source`` belongs to a run with an MLflow run (``summary.json`` has its ``run_id``), the frozen files are
logged to it under ``frozen/``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtbench import __version__
from mtbench.errors import MtbenchError
from mtbench.export.deepmd import write_dp
from mtbench.export.load import TASK_SECTIONS, LoadedModel, load_model
from mtbench.export.savedmodel import head_outputs, save_savedmodel
from mtbench.rundir import FROZEN_MANIFEST, RunDir, locate

log = logging.getLogger("mtbench")

FORMATS = ("savedmodel", "dp")
MANIFEST = FROZEN_MANIFEST
ARTIFACT_DIR = "frozen"


@dataclass
class FreezeResult:
    """What :func:`freeze` wrote and whether it reached the run's MLflow run."""

    outputs: list[Path]
    manifest: Path | None = None
    heads: list[str] = field(default_factory=list)
    tracking: str = ""  # one line: where it was logged, or why not


def freeze(source: str | Path, out: str | Path, *, head: str | None = None, united: bool = False,
           fmt: str | None = None, log_to_mlflow: bool = True) -> FreezeResult:
    """Write the frozen model(s) of ``source`` to ``out`` (see the module docstring); user errors raise
    :class:`MtbenchError` with a one-line message."""
    out = Path(out)
    fmt = _format(out, fmt)
    loaded = load_model(source)
    model = loaded.model
    heads = list(model.heads)
    if head is not None and head not in heads:
        raise MtbenchError(f"--head: the model has no head '{head}' (heads: {', '.join(heads)})")
    run_dir = run_dir_of(loaded)
    if run_dir is not None:  # a run whose process is gone is not left RUNNING in MLflow
        from mtbench.rundir import RunDir
        from mtbench.tracking.stale import mark_stale

        mark_stale(RunDir(run_dir), "freeze")
    meta = {"source": str(Path(loaded.path).resolve()) if loaded.path else str(source),
            "step": loaded.meta.get("step"), "frozen_by": f"mtbench {__version__}"}

    if united:
        if head is not None:
            raise MtbenchError("--united holds every head; leave out --head (or drop --united to freeze one head)")
        if fmt != "savedmodel":
            raise MtbenchError("--united writes a SavedModel folder; a DeePMD-kit .dp file holds one head "
                               "(use --head TASK -o model.dp)")
        _check_folder(out)
        save_savedmodel(out, model, spec=loaded.spec, meta={**meta, "united": True})
        result = FreezeResult([out], heads=heads)
    elif out.suffix == ".dp" or (head is not None and fmt == "dp"):
        task = _one_head(heads, head)
        path = out if out.suffix == ".dp" else out.with_suffix(".dp")
        write_dp(path, model, task, spec=loaded.spec)
        result = FreezeResult([path], heads=[task])
    elif head is not None:
        _check_folder(out)
        save_savedmodel(out, model, [head], spec=head_spec(loaded.spec, head), meta=meta)
        result = FreezeResult([out], heads=[head])
    else:
        result = _per_head(loaded, out, fmt, meta, run_dir)
    if log_to_mlflow:
        result.tracking = log_frozen(run_dir, result.outputs + ([result.manifest] if result.manifest else []))
    return result


def _format(out: Path, fmt: str | None) -> str:
    if fmt is None:
        return "dp" if out.suffix == ".dp" else "savedmodel"
    if fmt not in FORMATS:
        raise MtbenchError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if out.suffix == ".dp" and fmt != "dp":
        raise MtbenchError(f"-o {out}: a .dp file is DeePMD-kit's format, not {fmt}")
    return fmt


def _one_head(heads: Sequence[str], head: str | None) -> str:
    if head is not None:
        return head
    if len(heads) == 1:
        return heads[0]
    raise MtbenchError(f"--head: a .dp file holds one head and the model has {len(heads)} "
                       f"({', '.join(heads)}); choose one with --head")


def _check_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise MtbenchError(f"-o {out}: exists and is not a folder (a SavedModel is a folder)")
    if out.is_dir() and any(out.iterdir()) and not (out / "saved_model.pb").exists():
        raise MtbenchError(f"-o {out}: folder exists and is not empty (and not a SavedModel to replace)")


def _per_head(loaded: LoadedModel, out: Path, fmt: str, meta: Mapping[str, Any], run_dir: Path | None
              ) -> FreezeResult:
    model = loaded.model
    if out.exists() and not out.is_dir():
        raise MtbenchError(f"-o {out}: exists and is not a folder (one file per head goes into a folder)")
    out.mkdir(parents=True, exist_ok=True)
    outputs = []
    entries = {}
    for task, h in model.heads.items():
        if fmt == "dp":
            path = write_dp(out / f"{task}.dp", model, task, spec=loaded.spec)
        else:
            path = out / task
            _check_folder(path)
            save_savedmodel(path, model, [task], spec=head_spec(loaded.spec, task), meta=meta)
        outputs.append(path)
        metrics, step = validation_metrics(run_dir, task, meta.get("step"))
        entries[task] = {"path": path.name, "kind": h.kind, "outputs": list(head_outputs(h.kind)),
                         "sel_type": list(h.fitting.sel_type), "validation": metrics, "validation_step": step}
    manifest = {"format": fmt, "mtbench_version": __version__, "source": meta.get("source"),
                "step": meta.get("step"), "type_map": list(model.type_map), "heads": entries}
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return FreezeResult(outputs, manifest=path, heads=list(model.heads))


def head_spec(spec: Mapping[str, Any] | None, task: str) -> dict[str, Any] | None:
    """``spec`` reduced to one task (the per-task dicts keep only ``task``), for a one-head frozen model."""
    if not spec:
        return None
    out = json.loads(json.dumps(spec))
    if "fitting_net_dict" in (out.get("model") or {}):
        for keys in TASK_SECTIONS:
            parent = out
            for k in keys[:-1]:
                parent = parent.get(k) if isinstance(parent.get(k), dict) else {}
            if isinstance(parent.get(keys[-1]), dict):
                parent[keys[-1]] = {t: v for t, v in parent[keys[-1]].items() if t == task}
    return out


# ---------------------------------------------------------------------------------------- run facts


def run_dir_of(loaded: LoadedModel) -> Path | None:
    """The run folder a loaded checkpoint belongs to (:func:`mtbench.rundir.locate`'s rule); None for frozen
    models and ``.dp`` files."""
    if loaded.source != "checkpoint" or not loaded.path:
        return None
    run = locate(Path(loaded.path).resolve()).run
    return run.path if run is not None else None


def validation_metrics(run_dir: Path | None, task: str, step: int | None) -> tuple[dict[str, float | None] | None,
                                                                                   int | None]:
    """The head's validation metrics at ``step`` from ``summary.json`` (full precision) when that is the run's last
    step, else from the task's lcurve file (the row of ``step``, or the last); (None, None) when there are none."""
    if run_dir is None:
        return None, None
    run = RunDir(run_dir)
    try:
        summary = run.read_summary()
    except MtbenchError:
        summary = None
    if summary is not None:
        val = summary.val(task)
        if val is not None and (step is None or summary.steps == step):
            return {k: _number(v) for k, v in val.items()}, summary.steps
    curve = run.read_lcurve(task)
    found = curve.validation(step) if curve is not None else None
    if found is not None:
        values, at = found
        return {k: _number(v) for k, v in values.items()}, at
    return None, None


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# ------------------------------------------------------------------------------------------- MLflow


def run_tracking(run_dir: Path) -> tuple[str | None, str | None, str]:
    """(run_id, tracking URI, why not) of the MLflow run a run folder was tracked in.

    The URI is the one the run used: ``MLFLOW_TRACKING_URI`` if set, else the one ``summary.json`` records, else
    the Hydra run's ``tracking``/``paths`` config, else the backlog's record, else the default store of the output
    folder the run folder sits in (``<output_dir>/runs/<date>/<time>`` or ``<output_dir>/multirun/<date>/<time>/<job>``).
    """
    run = RunDir(run_dir)
    try:
        summary = run.read_summary()
    except MtbenchError:
        summary = None
    run_id, recorded = (summary.run_id, summary.tracking_uri) if summary is not None else (None, None)
    if not run_id:
        return None, None, "the run has no MLflow run (no run_id in summary.json)"
    from mtbench.tracking.store import default_tracking_uri, resolve_tracking_uri

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return run_id, os.environ["MLFLOW_TRACKING_URI"], ""
    if recorded:
        return run_id, str(recorded), ""
    if run.hydra_config.is_file():
        cfg = run.hydra_yaml("config") or {}
        out_dir = (cfg.get("paths") or {}).get("output_dir") or "outputs"
        uri = (cfg.get("tracking") or {}).get("tracking_uri")
        return run_id, resolve_tracking_uri(uri, out_dir), ""
    if run.backlog.is_file():
        for line in run.backlog.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("kind") == "start" and rec.get("tracking_uri"):
                return run_id, str(rec["tracking_uri"]), ""
    parents = run_dir.resolve().parents
    for depth, marker in ((2, "runs"), (3, "multirun")):
        if len(parents) > depth and parents[depth - 1].name == marker:
            return run_id, default_tracking_uri(parents[depth]), ""
    return run_id, None, f"cannot tell which MLflow store run {run_id} is in"


def log_frozen(run_dir: Path | None, paths: Sequence[Path]) -> str:
    """Log ``paths`` to the run's MLflow run under ``frozen/``; returns one line saying what happened."""
    if run_dir is None:
        return "not logged to MLflow: the source is not a run folder or one of its checkpoints"
    run_id, uri, why = run_tracking(run_dir)
    if run_id is None or uri is None:
        return f"not logged to MLflow: {why}"
    from mtbench.tracking.store import Store, sqlite_path

    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        return f"not logged to MLflow: the run's store {uri} does not exist"
    try:
        store = Store(uri, run_dir)
        if not store.run_exists(run_id):
            return f"not logged to MLflow: run {run_id} is not in {uri}"
        for path in paths:
            store.log_artifact(run_id, Path(path), ARTIFACT_DIR)
    except Exception as exc:  # noqa: BLE001 - the frozen files are written; tracking is a courtesy
        return f"not logged to MLflow ({uri} unreachable): {str(exc).splitlines()[0] if str(exc) else exc!r}"
    return f"logged to MLflow run {run_id} ({uri}) under {ARTIFACT_DIR}/"
