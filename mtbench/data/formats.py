"""From files to raw arrays: deepmd/npy directories natively, every other format via dpdata.

A :class:`RawSystem` is what a data system holds on disk, untouched: atom types as
written, frames per set, label arrays as stored. :mod:`mtbench.data.system` turns it
into a sorted, validated system.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtbench.errors import DataError

NPY_FORMATS = ("deepmd/npy", "deepmd", "npy")


@dataclass
class RawSet:
    """One ``set.*`` directory (or all frames of a dpdata system): arrays as stored."""

    name: str  # path used in error messages
    coord: np.ndarray  # [nf, 3N]
    box: np.ndarray | None  # [nf, 9]; None when the system is non-periodic
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # key -> stored array
    sources: dict[str, str] = field(default_factory=dict)  # key -> file it came from
    numb_copy: np.ndarray | None = None  # [nf] how often each frame is repeated per epoch

    @property
    def nframes(self) -> int:
        return int(self.coord.shape[0])


@dataclass
class RawSystem:
    """A data system as stored: types as written, its sets in order."""

    path: str
    types: np.ndarray  # [N] type index per atom, original order
    type_names: list[str] | None  # type_map.raw (or the element names of a dpdata system)
    type_source: str  # file the types came from (for error messages)
    names_source: str | None  # file the names came from
    nopbc: bool
    sets: list[RawSet]


def is_npy_system(path: str | os.PathLike[str]) -> bool:
    """A deepmd/npy (or raw) system is a directory holding ``type.raw``."""
    return (Path(path) / "type.raw").is_file()


def label_file_candidates(key: str) -> list[str]:
    """File names tried for a label: DeePMD-kit accepts ``atom_*`` and ``atomic_*``."""
    names = [f"{key}.npy"]
    if key.startswith("atomic_"):
        names.append(f"atom_{key[len('atomic_') :]}.npy")
    elif key.startswith("atom_"):
        names.append(f"atomic_{key[len('atom_') :]}.npy")
    return names


def _load_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic != b"\x93NUMPY":
            raise DataError(str(path), "not a valid .npy array (random bytes?)")
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        if "pickle" in str(exc):
            raise DataError(str(path), "not a valid .npy array (random bytes?)") from None
        raise DataError(str(path), f"cannot read the array ({exc})") from None


def read_npy_system(path: str | os.PathLike[str], label_keys: dict[str, bool]) -> RawSystem:
    """Read a deepmd/npy directory; ``label_keys`` maps each wanted label to ``must``."""
    root = Path(path)
    type_file = root / "type.raw"
    if not type_file.is_file():
        raise DataError(str(root), "not a deepmd/npy system: no type.raw in it")
    try:
        types = np.loadtxt(type_file, dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise DataError(str(type_file), f"expected one integer per atom ({exc})") from None
    if types.ndim != 1 or types.size == 0:
        raise DataError(str(type_file), "expected one integer per atom, found none")
    if types.min() < 0:
        raise DataError(str(type_file), f"negative atom type {int(types.min())}")
    names_file = root / "type_map.raw"
    names: list[str] | None = None
    if names_file.is_file():
        names = names_file.read_text().split()
        if not names:
            raise DataError(str(names_file), "empty type map")
    nopbc = (root / "nopbc").is_file()

    set_dirs = sorted(p for p in root.glob("set.*") if p.is_dir())
    if not set_dirs:
        raise DataError(str(root), "no set.* directory in this system")
    sets = []
    for set_dir in set_dirs:
        coord_file = set_dir / "coord.npy"
        if not coord_file.is_file():
            raise DataError(str(coord_file), "missing (every set needs coord.npy)")
        coord = _load_npy(coord_file).astype(np.float64)
        if coord.size == 0:
            raise DataError(str(coord_file), "0 frames: an empty set (remove it or add frames)")
        if coord.ndim == 1:
            coord = coord.reshape(1, -1)
        coord = coord.reshape(coord.shape[0], -1)
        box = None
        if not nopbc:
            box_file = set_dir / "box.npy"
            if not box_file.is_file():
                raise DataError(
                    str(box_file), "missing (periodic systems need box.npy; add an empty 'nopbc' file otherwise)"
                )
            box = _load_npy(box_file).astype(np.float64)
            if box.size != coord.shape[0] * 9:
                raise DataError(
                    str(box_file), f"expected shape ({coord.shape[0]}, 9) to match coord.npy, got {box.shape}"
                )
            box = box.reshape(coord.shape[0], 9)
        raw = RawSet(name=str(set_dir), coord=coord, box=box, sources={"coord": str(coord_file)})
        for key, must in label_keys.items():
            for fname in label_file_candidates(key):
                if (set_dir / fname).is_file():
                    raw.labels[key] = _load_npy(set_dir / fname).astype(np.float64)
                    raw.sources[key] = str(set_dir / fname)
                    break
            else:
                if must:
                    raise DataError(str(set_dir / f"{key}.npy"), f"missing; system {root} must provide label '{key}'")
        copy_file = set_dir / "numb_copy.npy"
        if copy_file.is_file():
            copies = _load_npy(copy_file).reshape(-1).astype(np.int64)
            if copies.size != coord.shape[0] or copies.min(initial=1) < 0:
                raise DataError(str(copy_file), f"expected {coord.shape[0]} non-negative integers")
            raw.numb_copy = copies
        sets.append(raw)
    return RawSystem(
        path=str(root),
        types=types,
        type_names=names,
        type_source=str(type_file),
        names_source=str(names_file) if names is not None else None,
        nopbc=nopbc,
        sets=sets,
    )


def guess_format(path: str | os.PathLike[str]) -> str | None:
    """dpdata format of a file from its name, or None when the name says nothing."""
    name = Path(path).name.lower()
    if name.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if "outcar" in name:
        return "vasp/outcar"
    if name.endswith(".xml") and "vasprun" in name:
        return "vasp/xml"
    if name.endswith(".traj"):
        return "ase/traj"
    if name.endswith((".hdf5", ".h5")):
        return "deepmd/hdf5"
    return None


def read_dpdata(path: str | os.PathLike[str], fmt: str) -> list[RawSystem]:
    """Read any dpdata format; a file with several compositions gives several systems.

    Labels taken: energies, forces, virials (as ``energy``, ``force``, ``virial``).
    """
    import dpdata
    from dpdata.format import Format

    formats = Format.get_formats()
    if fmt not in formats:
        raise DataError(str(path), f"unknown format {fmt!r}; dpdata knows: {', '.join(sorted(formats))}")
    multi = type(formats[fmt]()).from_multi_systems is not Format.from_multi_systems
    try:
        if multi:
            try:
                systems = list(dpdata.MultiSystems.from_file(str(path), fmt=fmt, labeled=True).systems.values())
            except (KeyError, AssertionError, ValueError):
                systems = list(dpdata.MultiSystems.from_file(str(path), fmt=fmt, labeled=False).systems.values())
        else:
            try:
                systems = [dpdata.LabeledSystem(str(path), fmt=fmt)]
            except (KeyError, AssertionError, ValueError):
                systems = [dpdata.System(str(path), fmt=fmt)]
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - dpdata raises many kinds; the user needs file and reason
        raise DataError(str(path), f"dpdata could not read it as {fmt!r}: {type(exc).__name__}: {exc}") from None
    systems = [s for s in systems if s.get_nframes() > 0]
    if not systems:
        raise DataError(str(path), f"no frames read as {fmt!r}")
    return [_from_dpdata(sys, str(path), fmt, k if len(systems) > 1 else None) for k, sys in enumerate(systems)]


def _from_dpdata(system: object, path: str, fmt: str, part: int | None) -> RawSystem:
    data = system.data  # type: ignore[attr-defined]
    name = path if part is None else f"{path}#{system.formula}"  # type: ignore[attr-defined]
    nf = int(data["coords"].shape[0])
    nopbc = bool(data.get("nopbc", False))
    raw = RawSet(
        name=name,
        coord=np.asarray(data["coords"], dtype=np.float64).reshape(nf, -1),
        box=None if nopbc else np.asarray(data["cells"], dtype=np.float64).reshape(nf, 9),
    )
    for key, dp_key in (("energy", "energies"), ("force", "forces"), ("virial", "virials")):
        if dp_key in data:
            raw.labels[key] = np.asarray(data[dp_key], dtype=np.float64).reshape(nf, -1)
            raw.sources[key] = f"{name} ({fmt}: {dp_key})"
    return RawSystem(
        path=name,
        types=np.asarray(data["atom_types"], dtype=np.int64),
        type_names=[str(n) for n in data["atom_names"]],
        type_source=f"{name} ({fmt}: atom_types)",
        names_source=f"{name} ({fmt}: atom_names)",
        nopbc=nopbc,
        sets=[raw],
    )
