"""Neighbour statistics of data, like DeePMD-kit's ``dp neighbor-stat`` (the command: :mod:`mtbench.cli.neighbor_stat`).

    python -m mtbench.neighbor_stat -s data/ -r 6.0 -t O H
    python -m mtbench.neighbor_stat -s builtin:water_tip3p/train -r 4.5 --mixed     # se_atten: one total

For every atom of every frame it counts the neighbours of each type within ``rcut`` (periodic images included) and
reports the largest counts, the smallest distance between two atoms (the nearest neighbour within ``rcut``), and
the ``sel`` DeePMD's ``sel: "auto"`` would choose: each count times 1.1 (``--ratio``), rounded up to a multiple of 4.
Counts come from the same neighbour lists training uses (:func:`mtbench.data.neighbor.compute_neighbor_data`), so a
``sel`` below the reported maximum means that some neighbours are dropped during training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtbench.data.neighbor import AUTO_SEL_RATIO, wrap_up_4  # noqa: F401 (re-exported)
from mtbench.errors import DataError


@dataclass
class SystemStat:
    path: str
    nframes: int
    natoms: int
    max_counts: list[int]  # per type (one entry, the total, with mixed types)
    min_distance: float  # inf when no atom has a neighbour within rcut
    isolated_atoms: int  # atoms (over all frames) without any neighbour within rcut


@dataclass
class NeighborStat:
    rcut: float
    type_map: list[str]
    mixed_types: bool
    ratio: float
    max_counts: list[int]
    min_distance: float
    sel: list[int]
    systems: list[SystemStat]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["min_distance"] = None if not math.isfinite(self.min_distance) else self.min_distance
        for s in d["systems"]:
            s["min_distance"] = None if not math.isfinite(s["min_distance"]) else s["min_distance"]
        return d


def data_type_map(paths: Sequence[str]) -> list[str]:
    """Type names from the systems' ``type_map.raw`` (in order of first appearance), else "0", "1", ..."""
    names: list[str] = []
    ntypes = 0
    for p in paths:
        tm = Path(p) / "type_map.raw"
        if tm.is_file():
            for n in tm.read_text().split():
                if n not in names:
                    names.append(n)
        elif (Path(p) / "type.raw").is_file():
            ntypes = max(ntypes, int(np.loadtxt(Path(p) / "type.raw", dtype=np.int64, ndmin=1).max()) + 1)
    if names and ntypes > len(names):
        raise DataError(paths[0], "some systems have type_map.raw and some do not: give the type map with -t")
    return names or [str(t) for t in range(ntypes)]


def neighbor_stat(systems: str | Sequence[str], rcut: float, type_map: Sequence[str] | None = None, *,
                  mixed_types: bool = False, ratio: float = AUTO_SEL_RATIO) -> NeighborStat:
    """Largest neighbour counts within ``rcut``, smallest atom distance and DeePMD's automatic ``sel``."""
    from mtbench.data.neighbor import NeighborSpec, compute_neighbor_data
    from mtbench.data.system import load_systems
    from mtbench.evaluation.metrics import system_paths

    if not rcut > 0:
        raise DataError("--rcut", f"must be > 0, got {rcut}")
    paths = system_paths(systems, key="--system")
    tmap = list(type_map) if type_map else data_type_map(paths)
    ntypes = len(tmap)
    spec = NeighborSpec(rcut, (1,), True)  # slot 0 = nearest neighbour; counts are taken before truncation
    stats: list[SystemStat] = []
    for path in paths:
        for system in load_systems(path, tmap, []):
            data = compute_neighbor_data(system.coord, None if system.nopbc else system.box, system.atype, spec,
                                         ntypes, description=f"neighbours in {system.path}")
            idx, shift = data.idx[..., 0], data.shift[..., 0, :].astype(np.float64)
            has = idx >= 0
            j = np.where(has, idx, 0)
            xj = np.take_along_axis(system.coord, j[..., None], axis=1) + np.einsum("fis,fsd->fid", shift,
                                                                                     system.box)
            dist = np.linalg.norm(xj - system.coord, axis=-1)
            dmin = float(dist[has].min()) if has.any() else math.inf
            counts = [int(data.max_total)] if mixed_types else [int(c) for c in data.max_counts]
            stats.append(SystemStat(system.path, system.nframes, system.natoms, counts, dmin, int((~has).sum())))
    if not stats:
        raise DataError(", ".join(paths), "no systems found")
    width = 1 if mixed_types else ntypes
    max_counts = [max(s.max_counts[t] for s in stats) for t in range(width)]
    dmin = min(s.min_distance for s in stats)
    if dmin < 1e-6:
        bad = next(s.path for s in stats if s.min_distance < 1e-6)
        raise DataError(bad, "some atoms overlap (zero distance); remove the duplicated atoms")
    return NeighborStat(float(rcut), tmap, mixed_types, ratio, max_counts, dmin,
                        [wrap_up_4(c * ratio) for c in max_counts], stats)
