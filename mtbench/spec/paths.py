"""Where a spec's data systems are: ``builtin:`` names and paths relative to the input file.

Like ``dp train``, relative paths resolve against the folder of the input file (the
*base dir*), not the current directory. ``builtin:<name>`` names mtbench's built-in
synthetic water data, generated on first use by :mod:`mtbench.data.synthetic`;
checking a name (:func:`check_systems`) never generates anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mtbench.errors import SpecError

BUILTIN_PREFIX = "builtin:"
BUILTIN_SYSTEMS: tuple[str, ...] = tuple(
    f"{name}/{split}"
    for name in ("water_tip3p", "water_tip4p", "water_dipole", "water_polar")
    for split in ("train", "val")
)
"""Names accepted after ``builtin:`` (kept in step with mtbench.data.synthetic)."""

def is_builtin(path: str) -> bool:
    """Whether ``path`` names built-in data (``builtin:<name>``)."""
    return path.startswith(BUILTIN_PREFIX)


def builtin_name(path: str, key: str = "systems") -> str:
    """The name after ``builtin:``, checked against :data:`BUILTIN_SYSTEMS` (no generation)."""
    name = path[len(BUILTIN_PREFIX):].strip("/")
    if name not in BUILTIN_SYSTEMS:
        raise SpecError(key, f"unknown built-in data {path!r}; known: "
                        f"{', '.join(BUILTIN_PREFIX + n for n in BUILTIN_SYSTEMS)}")
    return name


def system_list(systems: str | Sequence[str]) -> list[str]:
    """``systems`` as a list (DeePMD-kit accepts one string or a list of strings)."""
    return [systems] if isinstance(systems, str) else list(systems)


def resolve_system_path(path: str, base_dir: Path | None) -> str:
    """An absolute path for one system entry; ``builtin:`` data is generated if missing.

    Relative paths resolve against ``base_dir`` (the input file's folder), or the current
    directory when ``base_dir`` is None. An HDF5 ``file.h5#/group`` keeps its ``#`` part.
    Folders holding several systems are expanded later, by the data layer.
    """
    if is_builtin(path):
        from mtbench.data.synthetic import builtin_path  # lazy: generation pulls in ASE

        return str(builtin_path(builtin_name(path)))
    file_part, sep, inner = path.partition("#")
    resolved = Path(file_part).expanduser()
    if not resolved.is_absolute():
        resolved = (base_dir if base_dir is not None else Path.cwd()) / resolved
    return str(resolved.resolve()) + sep + inner


def check_systems(systems: object, base_dir: Path | None, key: str) -> None:
    """Raise :class:`SpecError` naming ``key`` if a system is missing; never generates data."""
    if isinstance(systems, str):
        entries = [systems]
    elif isinstance(systems, (list, tuple)) and systems:
        entries = list(systems)
    else:
        raise SpecError(key, f"expected a path or a non-empty list of paths, got {systems!r}")
    for i, entry in enumerate(entries):
        where = key if isinstance(systems, str) else f"{key}[{i}]"
        if not isinstance(entry, str) or not entry:
            raise SpecError(where, f"expected a path string, got {entry!r}")
        if is_builtin(entry):
            builtin_name(entry, where)
            continue
        path = Path(resolve_system_path(entry, base_dir).partition("#")[0])
        if not path.exists():
            raise SpecError(where, f"data system {entry!r} not found (looked for {path})")
        # like mtbench.data.system.expand_systems: a file is read through dpdata, a folder is a
        # system (type.raw) or a root searched for systems
        if path.is_dir() and not (path / "type.raw").is_file() and next(path.rglob("type.raw"), None) is None:
            raise SpecError(where, f"no deepmd/npy system (folder with type.raw) in or below {path}")
