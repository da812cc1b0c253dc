"""Checkpoints: model weights and statistics, per-task Adam state, and everything a bit-identical restart needs
(step, task sampler and data RNG states, data cursors), in one HDF5 file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbench.errors import DataError
from mtbench.model.serialization import load_model_file, save_model_file

POINTER = "checkpoint"  # text file in the checkpoint folder naming the latest checkpoint


def save_checkpoint(path: str | Path, *, model: Mapping[str, Any], optimizers: Mapping[str, Mapping[str, Any]],
                    state: Mapping[str, Any], spec: Mapping[str, Any], pointer: bool = True) -> Path:
    """Write a checkpoint; ``pointer`` makes it the folder's latest (what a restart from the folder picks)."""
    path = Path(path)
    save_model_file(path, {"@class": "MTBenchCheckpoint", "@version": 1, "model": dict(model),
                           "optimizers": {t: dict(o) for t, o in optimizers.items()},
                           "state": json.dumps(state), "spec": json.dumps(spec)})
    if pointer:
        (path.parent / POINTER).write_text(path.name + "\n")
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, a checkpoint folder (its latest checkpoint) or a run dir (its ``checkpoints/``)."""
    p = Path(path)
    if p.is_dir():
        for folder in (p, p / "checkpoints"):
            if (folder / POINTER).is_file():
                return folder / (folder / POINTER).read_text().strip()
        raise DataError(str(p), "no checkpoint found here (expected a 'checkpoint' pointer file or checkpoints/)")
    if not p.is_file():
        raise DataError(str(p), "checkpoint not found")
    return p


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    p = resolve_checkpoint(path)
    data = load_model_file(p)
    if data.get("@class") != "MTBenchCheckpoint":
        raise DataError(str(p), "not an mtbench checkpoint")
    data["state"] = json.loads(data["state"])
    data["spec"] = json.loads(data["spec"])
    data["path"] = str(p)
    return data
