"""Reading and writing spec files (DeePMD-style ``input.json``, or YAML)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtbench.errors import DataError

YAML_SUFFIXES = (".yaml", ".yml")


def load_spec(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The spec in ``path`` and the folder its relative data paths resolve against.

    JSON unless the suffix is ``.yaml``/``.yml``. A missing or unparsable file raises
    :class:`DataError` with the line and column of the syntax error.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(str(path), "spec file not found" if not path.exists() else "not a file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in YAML_SUFFIXES:
        spec = _parse_yaml(text, path)
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(str(path), f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(spec, Mapping):
        raise DataError(str(path), f"expected a mapping of DeePMD-kit input keys at the top, got "
                        f"{type(spec).__name__}")
    return dict(spec), path.resolve().parent


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DataError(str(path), f"invalid YAML{where}: {problem}") from None


def write_spec(spec: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``spec`` to ``path`` (JSON, or YAML for .yaml/.yml), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        text = yaml.safe_dump(_plain(spec), sort_keys=False)
    else:
        text = _json(_plain(spec), 0) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def _json(value: Any, depth: int) -> str:
    """Indented JSON like ``json.dumps(indent=4)``, but lists of scalars stay on one line."""
    pad, inner = "    " * depth, "    " * (depth + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_json(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(f"{inner}{_json(v, depth + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value)


def _plain(value: Any) -> Any:
    """Plain JSON types (tuples -> lists, numpy scalars -> Python numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        return value.item()
    return value
