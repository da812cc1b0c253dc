"""Checkpoints: model weights and statistics, per-task Adam state, and everything a bit-identical restart needs
(step, task sampler and data RNG states, data cursors), in one HDF5 file.

Where checkpoints go, the pointer file and rotation are :class:`mtbench.rundir.RunDir`'s; this module owns the
file's contents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbench.errors import DataError
from mtbench.model.serialization import load_model_file, save_model_file
from mtbench.rundir import CHECKPOINT_CLASS, POINTER, locate, write_pointer

__all__ = ["POINTER", "load_checkpoint", "resolve_checkpoint", "save_checkpoint"]


def save_checkpoint(path: str | Path, *, model: Mapping[str, Any], optimizers: Mapping[str, Mapping[str, Any]],
                    state: Mapping[str, Any], spec: Mapping[str, Any], pointer: bool = True) -> Path:
    """Write a checkpoint; ``pointer`` makes it the folder's latest (what a restart from the folder picks)."""
    path = Path(path)
    save_model_file(path, {"@class": CHECKPOINT_CLASS, "@version": 1, "model": dict(model),
                           "optimizers": {t: dict(o) for t, o in optimizers.items()},
                           "state": json.dumps(state), "spec": json.dumps(spec)}, what="checkpoint")
    if pointer:
        write_pointer(path.parent, path)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, a checkpoint folder (its latest checkpoint) or a run dir (its ``checkpoints/``)."""
    p = Path(path)
    if not p.exists():
        raise DataError(str(p), "checkpoint not found")
    return locate(p).require_checkpoint()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    p = resolve_checkpoint(path)
    data = load_model_file(p)
    if data.get("@class") != CHECKPOINT_CLASS:
        raise DataError(str(p), "not an mtbench checkpoint")
    data["state"] = json.loads(data["state"])
    data["spec"] = json.loads(data["spec"])
    data["path"] = str(p)
    return data
