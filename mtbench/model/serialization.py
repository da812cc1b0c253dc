"""Model dicts to and from files: DeePMD-kit's backend-independent HDF5 layout (``.dp``).

The file holds one JSON document (attribute ``json``) in which every array is replaced by the name of an HDF5
dataset, the same scheme DeePMD-kit uses for ``.dp`` files; mtbench's own checkpoints and frozen models reuse it.
"""

from __future__ import annotations

import datetime
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mtbench import __version__
from mtbench.errors import DataError


def _walk(obj: Any, fn: Callable[[Any], Any], in_vars: bool = False) -> Any:
    """Copy of ``obj`` with ``fn`` applied to every array (numpy arrays anywhere; any leaf under ``@variables``)."""
    if isinstance(obj, dict):
        return {k: _walk(v, fn, in_vars or k == "@variables") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_walk(v, fn, in_vars) for v in obj]
    if isinstance(obj, np.ndarray) or (in_vars and obj is not None and not isinstance(obj, (str, bool))):
        return fn(obj)
    return obj


def save_model_file(path: str | Path, data: dict[str, Any], *, software: str = "mtbench",
                    what: str = "model file") -> None:
    """Write ``data`` (a dict with numpy arrays) as an HDF5 model file.

    The file is built in memory and written by :func:`mtbench.storage.write_atomic`: HDF5 never touches the disk,
    so a full disk is one :class:`~mtbench.errors.StorageError` naming ``what`` and the path, and the file it
    would have replaced stays as it was.
    """
    from mtbench.storage import write_atomic

    counter = iter(range(1 << 30))
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        def put(x: Any) -> str:
            return f.create_dataset(f"variable_{next(counter):04d}", data=np.asarray(x)).name

        doc = _walk(data, put)
        meta = {"software": software, "version": __version__,
                "time": str(datetime.datetime.now(tz=datetime.timezone.utc))}
        f.attrs["json"] = json.dumps({**meta, **doc}, separators=(",", ":"))
    write_atomic(path, buffer.getvalue(), what)


def load_model_file(path: str | Path) -> dict[str, Any]:
    """Read an HDF5 model file written by :func:`save_model_file` or by DeePMD-kit (``.dp``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "model file not found")
    try:
        with h5py.File(path, "r") as f:
            doc = json.loads(f.attrs["json"])

            def get(obj: Any) -> Any:
                if isinstance(obj, dict):
                    return {k: get(v) for k, v in obj.items()}
                if isinstance(obj, list):
                    return [get(v) for v in obj]
                if isinstance(obj, str) and obj.startswith("/variable_") and obj in f:
                    return f[obj][()].copy()
                return obj

            return get(doc)
    except (OSError, KeyError) as exc:
        raise DataError(str(path), f"not a .dp/HDF5 model file ({exc})") from None


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON document of a model file without its arrays (array entries stay dataset names): cheap enough to
    tell a file's kind by its ``@class`` before loading it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "model file not found")
    try:
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs["json"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(str(path), f"not a .dp/HDF5 model file ({exc})") from None
