"""Turn a resolved training spec into MLflow params and keep keys/values within MLflow's limits.

Nothing here imports MLflow: ``tracking=none`` and the spec code use it too. The limits mirror
``mlflow.utils.validation`` (checked by a unit test) so that we truncate predictably instead of
having MLflow reject or silently cut a batch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

PARAM_VALUE_LIMIT = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
TAG_VALUE_LIMIT = 8000  # MAX_TAG_VAL_LENGTH
KEY_LIMIT = 250  # MAX_ENTITY_KEY_LENGTH
PARAMS_PER_BATCH = 100  # MAX_PARAMS_TAGS_PER_BATCH (params and tags each)
METRICS_PER_BATCH = 1000  # MAX_METRICS_PER_BATCH

TRUNCATION_MARKER = "...[truncated: full value in the input.json artifact]"

# MLflow accepts these characters in param/metric/tag keys on every platform.
_BAD_KEY_CHARS = re.compile(r"[^\w.\-/ ]")


def to_plain(obj: Any) -> Any:
    """Convert mappings/sequences (OmegaConf containers included), numpy scalars and paths
    to plain JSON-able Python objects."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (str, bytes)):
        return obj.decode() if isinstance(obj, bytes) else obj
    if isinstance(obj, Sequence):
        return [to_plain(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return obj.item()  # numpy / TF scalar
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()  # numpy array
    return obj


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # 'nan' / 'inf', as Python prints them
    try:
        return json.dumps(value)  # true / null / 0.001, the spelling input.json uses
    except (TypeError, ValueError):
        return str(value)


def flatten_params(spec: Mapping, prefix: str = "") -> dict[str, str]:
    """Flatten a nested spec to ``{"model.descriptor.rcut": "6.0", ...}``.

    Lists become JSON strings (``"[46, 92]"``), so one list is one param; an empty mapping
    becomes ``"{}"`` so that the key is not lost. Values are full length here; the tracker
    truncates what exceeds MLflow's limit.
    """
    out: dict[str, str] = {}
    for key, value in to_plain(spec).items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            if value:
                out.update(flatten_params(value, name))
            else:
                out[name] = "{}"
        elif isinstance(value, list):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = _scalar_text(value)
    return out


def truncate(value: str, limit: int, marker: str = TRUNCATION_MARKER) -> tuple[str, bool]:
    """``value`` cut to ``limit`` characters (ending in ``marker``), and whether it was cut."""
    if len(value) <= limit:
        return value, False
    return value[: max(0, limit - len(marker))] + marker, True


def sanitize_key(key: str) -> str:
    """Make ``key`` acceptable to MLflow: replace characters it rejects by ``_``, drop empty
    path segments (``a//b``, leading/trailing ``/``, ``.`` segments) and cap the length."""
    key = _BAD_KEY_CHARS.sub("_", str(key))
    parts = [p for p in key.split("/") if p not in ("", ".")]
    parts = ["_" if p == ".." else p for p in parts]
    key = "/".join(parts) or "_"
    return key[:KEY_LIMIT]
