"""Load a model from anything a user may point at: a run dir, a checkpoint, a frozen mtbench model (file or
SavedModel dir), or a DeePMD-kit ``.dp`` file.

mtbench's own model file is an HDF5 file in DeePMD's ``.dp`` layout holding the multi-task model dict (descriptor,
every head, statistics) and the spec that built it. A frozen SavedModel carries the same file as
``assets/mtbench_model.h5`` so mtbench can reload exact weights while plain TensorFlow uses the signatures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtbench.errors import DataError
from mtbench.export.deepmd import HEAD_KEY
from mtbench.model.multitask import MultiTaskModel
from mtbench.model.serialization import load_model_file, save_model_file
from mtbench.rundir import MODEL_FILE_CLASS, SAVEDMODEL_ASSET, Kind, locate

__all__ = ["MODEL_FILE_CLASS", "SAVEDMODEL_ASSET", "LoadedModel", "deepmd_model_to_multitask", "load_model",
           "save_mtbench_model"]


@dataclass
class LoadedModel:
    model: MultiTaskModel
    spec: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # "checkpoint" | "mtbench" | "savedmodel" | "deepmd"
    path: str = ""


def save_mtbench_model(path: str | Path, model: MultiTaskModel, *, spec: Mapping[str, Any] | None = None,
                       meta: Mapping[str, Any] | None = None) -> Path:
    """Write mtbench's own model file (all heads, statistics, and the spec that built them)."""
    path = Path(path)
    save_model_file(path, {"@class": MODEL_FILE_CLASS, "@version": 1, "model": model.to_dict(),
                           "spec": json.dumps(spec or {}), "meta": json.dumps(meta or {})})
    return path


def deepmd_model_to_multitask(data: Mapping[str, Any], head: str = "default") -> MultiTaskModel:
    """A DeePMD-kit standard model dict (descriptor + fitting + statistics) as a one-head mtbench model."""
    if data.get("type", "standard") != "standard":
        raise DataError("model", f"only DeePMD-kit 'standard' models can be loaded, not {data.get('type')!r}")
    if data.get("pair_exclude_types"):
        raise DataError("model", "models with pair_exclude_types are not supported")
    atomic = {k: data.get(k) for k in ("atom_exclude_types", "pair_exclude_types", "rcond", "preset_out_bias")}
    return MultiTaskModel.from_dict({"type_map": data["type_map"], "descriptor": data["descriptor"],
                                     "heads": {head: {"fitting": data["fitting"], **atomic,
                                                      "@variables": data.get("@variables", {})}}})


def load_model(path: str | Path, *, deepmd_head: str | None = None) -> LoadedModel:
    """Load whatever ``path`` is (:func:`mtbench.rundir.locate` says); errors name the path."""
    from mtbench.train.checkpoint import load_checkpoint

    found = locate(path)
    p = found.path
    if found.kind in (Kind.SAVEDMODEL, Kind.UNITED):
        loaded = _load_mtbench_file(p / "assets" / SAVEDMODEL_ASSET)
        loaded.source, loaded.path = "savedmodel", str(p)
        return loaded
    if found.kind in (Kind.RUN, Kind.CHECKPOINT_DIR, Kind.CHECKPOINT, Kind.FROZEN_HEADS):
        ckpt = load_checkpoint(found.require_checkpoint())
        return LoadedModel(MultiTaskModel.from_dict(ckpt["model"]), ckpt["spec"], {"step": ckpt["state"]["step"]},
                           "checkpoint", ckpt["path"])
    data = load_model_file(p)
    if found.kind is Kind.MODEL_FILE:
        return _load_mtbench_file(p, data)
    # a .dp's one head: as named by the caller, else as the file records it, else the file stem
    model = deepmd_model_to_multitask(data["model"], deepmd_head or str(data.get(HEAD_KEY) or p.stem))
    return LoadedModel(model, None, {"model_def_script": data.get("model_def_script"),
                                     "software": data.get("software")}, "deepmd", str(p))


def _load_mtbench_file(p: Path, data: Mapping[str, Any] | None = None) -> LoadedModel:
    data = data if data is not None else load_model_file(p)
    if data.get("@class") != MODEL_FILE_CLASS:
        raise DataError(str(p), "not an mtbench model file")
    return LoadedModel(MultiTaskModel.from_dict(data["model"]), json.loads(data.get("spec") or "{}") or None,
                       json.loads(data.get("meta") or "{}"), "mtbench", str(p))
