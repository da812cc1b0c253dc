"""Load a model from anything a user may point at: a run dir, a checkpoint, a frozen mtbench model (file,
SavedModel dir, or the per-head folder ``python -m mtbench.freeze`` writes by default), or a DeePMD-kit ``.dp``
file.

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
from mtbench.rundir import FROZEN_MANIFEST, MODEL_FILE_CLASS, SAVEDMODEL_ASSET, Kind, locate

__all__ = ["MODEL_FILE_CLASS", "SAVEDMODEL_ASSET", "LoadedModel", "deepmd_model_to_multitask", "frozen_heads",
           "load_model", "merge_head_specs", "save_mtbench_model"]


@dataclass
class LoadedModel:
    model: MultiTaskModel
    spec: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # "checkpoint" | "mtbench" | "savedmodel" | "frozen_heads" | "deepmd"
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


def load_model(path: str | Path, *, head: str | None = None, deepmd_head: str | None = None) -> LoadedModel:
    """Load whatever ``path`` is (:func:`mtbench.rundir.locate` says); errors name the path.

    A per-head frozen folder (``manifest.json`` + one SavedModel or ``.dp`` per head) loads as one model of every
    head, or only ``head`` when given. Other forms load whole; ``head`` is then for the caller to pick.
    """
    from mtbench.train.checkpoint import load_checkpoint

    found = locate(path)
    p = found.path
    if found.kind is Kind.FROZEN_HEADS:
        return _load_frozen_heads(p, head)
    if found.kind in (Kind.SAVEDMODEL, Kind.UNITED):
        loaded = _load_mtbench_file(p / "assets" / SAVEDMODEL_ASSET)
        loaded.source, loaded.path = "savedmodel", str(p)
        return loaded
    if found.kind in (Kind.RUN, Kind.CHECKPOINT_DIR, Kind.CHECKPOINT):
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


def frozen_heads(folder: str | Path) -> dict[str, Path]:
    """``{head: its SavedModel folder or .dp file}`` of a per-head frozen folder, from its ``manifest.json``."""
    folder = Path(folder)
    manifest = json.loads((folder / FROZEN_MANIFEST).read_text())
    out = {}
    for task, entry in manifest["heads"].items():
        rel = entry.get("path") if isinstance(entry, Mapping) else None
        if not rel or not (folder / rel).exists():
            raise DataError(str(folder / (rel or task)), f"head {task!r} of {folder / FROZEN_MANIFEST} is missing")
        out[task] = folder / rel
    return out


def _load_frozen_heads(folder: Path, head: str | None) -> LoadedModel:
    """Every head of a per-head frozen folder as one model (they were frozen from one model, so they share the
    descriptor), or the one ``head``."""
    paths = frozen_heads(folder)
    manifest = json.loads((folder / FROZEN_MANIFEST).read_text())
    if head is not None:
        if head not in paths:
            raise DataError(str(folder), f"no head {head!r} here (heads: {', '.join(paths)})")
        paths = {head: paths[head]}
    parts = {task: load_model(p, deepmd_head=task) for task, p in paths.items()}
    first = next(iter(parts.values()))
    descriptor = first.model.descriptor.to_dict()
    for task, part in parts.items():
        if part.model.type_map != first.model.type_map or not _same(part.model.descriptor.to_dict(), descriptor):
            raise DataError(str(folder), f"the heads were frozen from different models (head {task!r} has another "
                                         f"descriptor or type map); load one: --head NAME or {folder}/NAME "
                                         f"(heads: {', '.join(paths)})")
    heads = {}
    for task, part in parts.items():
        (name, data), = part.model.to_dict()["heads"].items()
        heads[task] = data
    model = MultiTaskModel.from_dict({"type_map": first.model.type_map, "descriptor": descriptor, "heads": heads})
    specs = [part.spec for part in parts.values() if part.spec]
    spec = merge_head_specs(specs) if len(specs) == len(parts) else None
    meta = {"step": manifest.get("step"), "source": manifest.get("source"), "heads": list(parts)}
    return LoadedModel(model, spec, meta, "frozen_heads", str(folder))


# per-task sections of a multi-task spec: ``export.freeze.head_spec`` keeps one task of each, this merges them back
TASK_SECTIONS = (("model", "fitting_net_dict"), ("loss_dict",), ("learning_rate_dict",), ("training", "data_dict"),
                 ("training", "fitting_weight"))


def merge_head_specs(specs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One spec from one-task specs of the same model (the inverse of ``export.freeze.head_spec``)."""
    out = json.loads(json.dumps(specs[0]))
    for spec in specs[1:]:
        for keys in TASK_SECTIONS:
            src: Any = spec
            dst: Any = out
            for k in keys[:-1]:
                src, dst = (src or {}).get(k), dst.setdefault(k, {})
            part = (src or {}).get(keys[-1])
            if isinstance(part, Mapping):
                dst.setdefault(keys[-1], {}).update(json.loads(json.dumps(part)))
    return out


def _same(a: Any, b: Any) -> bool:
    """Deep equality of model dicts (NumPy arrays compared by value)."""
    import numpy as np

    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b
