"""One data system: its frames sorted by atom type, its labels, its neighbour lists.

DeePMD-kit sorts the atoms of a system by type (stable) and the model relies on the
per-type blocks; :attr:`DeepmdSystem.idx_map` maps back to the order on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.data.formats import (
    NPY_FORMATS,
    RawSet,
    RawSystem,
    guess_format,
    is_npy_system,
    read_dpdata,
    read_npy_system,
)
from mtbench.data.neighbor import (
    NeighborData,
    NeighborSpec,
    as_neighbor_spec,
    compute_neighbor_data,
)
from mtbench.data.requirements import LabelRequirement
from mtbench.errors import DataError, SpecError


log = logging.getLogger("mtbench")


def _describe(value: float) -> str:
    """``NaN``, ``inf`` or ``-inf``: how a bad value is named in a message."""
    return "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")


INDEX_TYPE_PREFIX = "type_"
"""Names of types taken by index when a spec has no ``model.type_map`` (DeePMD-kit v2 allows that)."""


def index_type_map(ntypes: int) -> list[str]:
    """``["type_0", "type_1", ...]``: the type map of a model whose types are data type indices."""
    return [f"{INDEX_TYPE_PREFIX}{i}" for i in range(ntypes)]


def is_index_type_map(type_map: Sequence[str]) -> bool:
    """Whether ``type_map`` is :func:`index_type_map`: atom types are read by index, not by name."""
    return list(type_map) == index_type_map(len(type_map))


def expand_systems(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], key: str = "systems") -> list[str]:
    """System paths from what the user wrote, like DeePMD-kit.

    A directory that is not itself a system is searched recursively for directories
    holding ``type.raw``; a file is kept as is (read through dpdata). ``key`` names the
    spec entry in error messages.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise SpecError(key, "no data systems given")
    found: list[str] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise DataError(str(path), f"does not exist (listed in {key})")
        if path.is_file() or is_npy_system(path):
            found.append(str(path))
            continue
        nested = sorted(str(p.parent) for p in path.rglob("type.raw") if p.is_file())
        if not nested:
            raise DataError(str(path), f"not a data system and holds none (no type.raw below it; listed in {key})")
        found.extend(nested)
    return found


def load_systems(
    path: str | os.PathLike[str],
    type_map: Sequence[str],
    requirements: Sequence[LabelRequirement],
    fmt: str | None = None,
    drop_bad_frames: bool = False,
) -> list[DeepmdSystem]:
    """The systems at ``path``: one for a deepmd/npy directory, one per composition for
    a dpdata file that holds several."""
    fmt_used = _resolve_format(path, fmt)
    if fmt_used in NPY_FORMATS:
        return [DeepmdSystem(path, type_map, requirements, drop_bad_frames=drop_bad_frames)]
    raws = read_dpdata(path, fmt_used)
    return [DeepmdSystem.from_raw(raw, type_map, requirements, drop_bad_frames=drop_bad_frames) for raw in raws]


def stored_types(path: str | os.PathLike[str], fmt: str | None = None) -> list[RawSystem]:
    """The systems at ``path`` as stored (types as written, names if any), without a model type map.

    For what must be known before a model exists: how many types the data has and what it calls them.
    """
    fmt_used = _resolve_format(path, fmt)
    if fmt_used in NPY_FORMATS:
        return [read_npy_system(path, {})]
    return read_dpdata(path, fmt_used)


def _resolve_format(path: str | os.PathLike[str], fmt: str | None) -> str:
    if fmt is not None and fmt not in NPY_FORMATS:
        return fmt
    if is_npy_system(path):
        return "deepmd/npy"
    if fmt is None and Path(path).is_file():
        guessed = guess_format(path)
        if guessed is not None:
            return guessed
        raise DataError(str(path), "not a deepmd/npy system; name its format (fmt, e.g. 'vasp/outcar', 'extxyz')")
    if not Path(path).exists():
        raise DataError(str(path), "does not exist")
    raise DataError(str(path), "not a deepmd/npy system: no type.raw in it")


class DeepmdSystem:
    """A data system in memory: coordinates, boxes and labels of all frames, atoms sorted by type.

    ``DeepmdSystem(path, type_map, requirements, fmt=None)`` reads a deepmd/npy
    directory, or any dpdata format with ``fmt`` (a file holding one composition).
    """

    path: str
    type_map: list[str]
    natoms: int
    atype: np.ndarray
    idx_map: np.ndarray
    nopbc: bool
    nframes: int
    set_names: list[str]
    set_bounds: np.ndarray
    natoms_per_type: np.ndarray

    def __init__(
        self,
        path: str | os.PathLike[str],
        type_map: Sequence[str],
        requirements: Sequence[LabelRequirement],
        fmt: str | None = None,
        drop_bad_frames: bool = False,
    ) -> None:
        fmt_used = _resolve_format(path, fmt)
        if fmt_used in NPY_FORMATS:
            raw = read_npy_system(path, {r.key: r.must for r in requirements})
        else:
            raws = read_dpdata(path, fmt_used)
            if len(raws) != 1:
                raise DataError(
                    str(path), f"holds {len(raws)} compositions; read it with load_systems() to get one system each"
                )
            raw = raws[0]
        self._setup(raw, type_map, requirements, drop_bad_frames)

    @classmethod
    def from_raw(
        cls, raw: RawSystem, type_map: Sequence[str], requirements: Sequence[LabelRequirement],
        drop_bad_frames: bool = False,
    ) -> DeepmdSystem:
        """A system from arrays already read (dpdata, synthetic data)."""
        self = cls.__new__(cls)
        self._setup(raw, type_map, requirements, drop_bad_frames)
        return self

    # ------------------------------------------------------------------ reading
    def _setup(self, raw: RawSystem, type_map: Sequence[str], requirements: Sequence[LabelRequirement],
               drop_bad_frames: bool = False) -> None:
        self.path = raw.path
        self.type_map = list(type_map)
        self.requirements = list(requirements)
        keys = [r.key for r in self.requirements]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate label requirements: {keys}")
        types = self._model_types(raw)
        self.natoms = int(types.shape[0])
        self.idx_map = np.lexsort((np.arange(self.natoms), types))
        self.atype = types[self.idx_map].astype(np.int32)
        self.natoms_per_type = np.bincount(self.atype, minlength=len(self.type_map)).astype(np.int64)
        self.nopbc = raw.nopbc
        self._original_types = types

        coords, boxes, copies = [], [], []
        labels: dict[str, list[np.ndarray]] = {r.key: [] for r in self.requirements}
        found: dict[str, list[float]] = {r.key: [] for r in self.requirements}
        kept_sets: list[RawSet] = []
        set_sizes: list[int] = []
        self.dropped_frames = 0
        for raw_set in raw.sets:
            nf = raw_set.nframes
            if raw_set.coord.shape[1] != 3 * self.natoms:
                raise DataError(
                    raw_set.sources.get("coord", raw_set.name),
                    f"expected shape ({nf}, {3 * self.natoms}) for {self.natoms} atoms, got {raw_set.coord.shape}",
                )
            coord = raw_set.coord.reshape(nf, self.natoms, 3)[:, self.idx_map]
            if self.nopbc or raw_set.box is None:
                box = np.zeros((nf, 3, 3))
            else:
                box = raw_set.box.reshape(nf, 3, 3)
            copy = raw_set.numb_copy if raw_set.numb_copy is not None else np.ones(nf, dtype=np.int64)
            set_labels: dict[str, tuple[np.ndarray, bool]] = {
                req.key: self._label(raw_set, req) for req in self.requirements
            }
            bad = self._bad_frames(raw_set, coord, box, set_labels, drop_bad_frames)
            if bad.any():
                self.dropped_frames += int(bad.sum())
                keep = ~bad
                if not keep.any():
                    continue  # the whole set is bad: dropped (a system left with no frame is refused below)
                coord, box, copy = coord[keep], box[keep], copy[keep]
                set_labels = {k: (v[keep], present) for k, (v, present) in set_labels.items()}
            coords.append(coord)
            boxes.append(box)
            copies.append(copy)
            for key, (value, present) in set_labels.items():
                labels[key].append(value)
                found[key].append(1.0 if present else 0.0)
            kept_sets.append(raw_set)
            set_sizes.append(int(coord.shape[0]))
        if not kept_sets:
            raise DataError(self.path, f"0 frames left after dropping {self.dropped_frames} bad frames")

        self.set_names = [s.name for s in kept_sets]
        self.set_bounds = np.cumsum([0] + set_sizes).astype(np.int64)
        self.nframes = int(self.set_bounds[-1])
        self.coord = np.concatenate(coords).astype(np.float64)
        self.box = np.concatenate(boxes).astype(np.float64)
        self.numb_copy = np.concatenate(copies).astype(np.int64)
        self.labels = {k: np.concatenate(v).astype(np.float64) for k, v in labels.items()}
        self.find = {k: np.asarray(v, dtype=np.float64) for k, v in found.items()}
        self._neighbors: dict[NeighborSpec, NeighborData] = {}

    def _bad_frames(self, raw_set: RawSet, coord: np.ndarray, box: np.ndarray,
                    set_labels: dict[str, tuple[np.ndarray, bool]], drop: bool) -> np.ndarray:
        """Frames of one set with a non-finite coordinate, box or label, or a box of zero volume.

        Raises on the first one naming file, frame and value, unless ``drop``: then they are returned (and logged).
        """
        nf = coord.shape[0]
        checks: list[tuple[str, np.ndarray]] = [(raw_set.sources.get("coord", raw_set.name), coord)]
        if not (self.nopbc or raw_set.box is None):
            checks.append((str(Path(raw_set.name) / "box.npy"), box))
        for key, (value, present) in set_labels.items():
            if present:
                checks.append((raw_set.sources.get(key, raw_set.name), value))
        bad = np.zeros(nf, dtype=bool)
        for source, array in checks:
            flat = array.reshape(nf, -1)
            rows = ~np.isfinite(flat).all(axis=1)
            if rows.any() and not drop:
                frame = int(np.flatnonzero(rows)[0])
                value = flat[frame][~np.isfinite(flat[frame])][0]
                raise DataError(source, f"frame {frame} is {_describe(value)} "
                                        "(fix it, or set training_data.drop_bad_frames: true to drop such frames)")
            bad |= rows
        if not (self.nopbc or raw_set.box is None):
            with np.errstate(invalid="ignore"):
                volume = np.abs(np.linalg.det(np.where(np.isfinite(box), box, 0.0)))
            flat = ~bad & (volume < 1e-8)
            if flat.any() and not drop:
                frame = int(np.flatnonzero(flat)[0])
                raise DataError(str(Path(raw_set.name) / "box.npy"),
                                f"frame {frame}: the box has zero volume ({box[frame].reshape(-1).tolist()}); "
                                "a non-periodic system needs an empty 'nopbc' file instead")
            bad |= flat
        if bad.any():
            log.warning("%s: dropped %d of %d frames (non-finite values or a zero-volume box)",
                        raw_set.name, int(bad.sum()), nf)
        return bad

    def _model_types(self, raw: RawSystem) -> np.ndarray:
        """Atom types as indices into the model's type_map (original atom order)."""
        types = raw.types.astype(np.int64)
        if raw.type_names is None or is_index_type_map(self.type_map):
            if types.max() >= len(self.type_map):
                raise DataError(
                    raw.type_source,
                    f"atom type {int(types.max())} is not in the model's type_map {self.type_map} "
                    "(add a type_map.raw to map types by name)",
                )
            return types
        names = raw.type_names
        if types.max() >= len(names):
            raise DataError(
                raw.type_source,
                f"atom type {int(types.max())} has no name in {raw.names_source} ({len(names)} names)",
            )
        remap = np.full(len(names), -1, dtype=np.int64)
        for k, name in enumerate(names):
            if name in self.type_map:
                remap[k] = self.type_map.index(name)
        used = np.unique(types)
        missing = [names[t] for t in used if remap[t] < 0]
        if missing:
            raise DataError(
                raw.names_source or raw.type_source,
                f"type {missing[0]!r} is not in the model's type_map {self.type_map}",
            )
        return remap[types]

    def _label(self, raw_set: RawSet, req: LabelRequirement) -> tuple[np.ndarray, bool]:
        nf, natoms = raw_set.nframes, self.natoms
        shape = (nf, natoms, req.ndof) if req.atomic else (nf, req.ndof)
        data = raw_set.labels.get(req.key)
        if data is None:
            if req.must:
                raise DataError(
                    f"{raw_set.name}/{req.key}.npy", f"missing; system {self.path} must provide label '{req.key}'"
                )
            return np.full(shape, req.default, dtype=np.float64), False
        source = raw_set.sources.get(req.key, raw_set.name)
        if not req.atomic:
            if data.size != nf * req.ndof:
                raise DataError(source, f"expected shape ({nf}, {req.ndof}), got {data.shape}")
            return data.reshape(shape), True
        if data.size == nf * natoms * req.ndof:
            per_atom = data.reshape(nf, natoms, req.ndof)
        elif req.type_sel is not None and data.size == nf * self._nsel(req) * req.ndof:
            selected = np.isin(self._original_types, req.type_sel)
            per_atom = np.zeros(shape, dtype=np.float64)
            per_atom[:, selected] = data.reshape(nf, -1, req.ndof)
        else:
            expected = f"({nf}, {natoms * req.ndof})"
            if req.type_sel is not None:
                expected += f" or ({nf}, {self._nsel(req) * req.ndof}) for the {self._nsel(req)} atoms of types {list(req.type_sel)}"
            raise DataError(source, f"expected shape {expected}, got {data.shape}")
        if req.type_sel is not None:
            per_atom[:, ~np.isin(self._original_types, req.type_sel)] = 0.0
        return per_atom[:, self.idx_map], True

    def _nsel(self, req: LabelRequirement) -> int:
        return int(np.isin(self._original_types, req.type_sel).sum())

    # ------------------------------------------------------------------ access
    @property
    def nsets(self) -> int:
        return len(self.set_names)

    @property
    def set_nframes(self) -> list[int]:
        return np.diff(self.set_bounds).tolist()

    def set_frames(self, set_idx: int) -> np.ndarray:
        """Global indices of the frames of one set."""
        return np.arange(self.set_bounds[set_idx], self.set_bounds[set_idx + 1])

    def has_label(self, key: str) -> bool:
        """Whether every set provides the label."""
        return bool(np.all(self.find[key] == 1.0))

    def frames(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """A batch of frames (global indices): arrays with a leading frame axis."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.nframes):
            raise IndexError(f"frame index out of range [0, {self.nframes}) in {self.path}")
        sets = np.unique(np.searchsorted(self.set_bounds, idx, side="right") - 1)
        batch: dict[str, Any] = {
            "coord": self.coord[idx],
            "box": self.box[idx],
            "atype": np.broadcast_to(self.atype, (idx.size, self.natoms)).copy(),
            "natoms": self.natoms,
            "nopbc": self.nopbc,
            "frame_idx": idx,
        }
        for key, value in self.labels.items():
            batch[key] = value[idx]
            batch[f"find_{key}"] = float(self.find[key][sets].min()) if sets.size else 0.0
        return batch

    def neighbor_data(self, spec: NeighborSpec) -> NeighborData:
        """Neighbour lists of all frames for ``spec``, computed once and cached."""
        spec = as_neighbor_spec(spec)
        data = self._neighbors.get(spec)
        if data is None:
            data = compute_neighbor_data(
                self.coord,
                None if self.nopbc else self.box,
                self.atype,
                spec,
                len(self.type_map),
                description=f"neighbour lists of {self.path}",
            )
            self._neighbors[spec] = data
        return data

    def __repr__(self) -> str:
        return f"DeepmdSystem({self.path!r}, natoms={self.natoms}, nframes={self.nframes}, nsets={self.nsets})"
