"""ASE ``Atoms`` of one frame of a data system, so a model can be run on the data it was trained on.

    from mtbench.inference.atoms import system_atoms
    atoms = system_atoms("builtin:water_tip3p/val")      # or a deepmd/npy folder; frame=, set_index=

A folder holding several systems (like the built-in ``.../val``, systems ``sys_000``, ...) gives its first one in
sorted order, as training lists them. The frame keeps the file's atom order, element names from ``type_map.raw`` (or ``type_map=``), its cell and
periodicity (``nopbc`` gives a molecule without a cell). ``builtin:`` names are the spec's own
(:mod:`mtbench.spec.paths`) and are generated on first use like in training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mtbench.data.formats import read_npy_system
from mtbench.data.system import expand_systems
from mtbench.errors import DataError
from mtbench.spec.paths import resolve_system_path


def system_atoms(system: str | os.PathLike[str], frame: int = 0, *, set_index: int = 0,
                 type_map: Sequence[str] | None = None) -> Atoms:
    """Frame ``frame`` of set ``set_index`` of a deepmd/npy system (a folder or ``builtin:NAME``) as ``Atoms``."""
    # expand_systems: a folder that is not itself a system is searched for systems (DeePMD-kit's rule)
    path = expand_systems(resolve_system_path(str(system), None), key=str(system))[0]
    raw = read_npy_system(path, {})
    names = list(type_map) if type_map is not None else raw.type_names
    if names is None:
        raise DataError(path, "no type_map.raw: pass type_map= (the element name of each type index)")
    if int(raw.types.max()) >= len(names):
        raise DataError(path, f"atom type {int(raw.types.max())} has no name in the type map {names}")
    if not 0 <= set_index < len(raw.sets):
        raise DataError(path, f"set_index {set_index} out of range: the system has {len(raw.sets)} set(s)")
    data = raw.sets[set_index]
    if not 0 <= frame < data.coord.shape[0]:
        raise DataError(data.name, f"frame {frame} out of range: the set has {data.coord.shape[0]} frame(s)")
    symbols = [names[t] for t in raw.types]
    positions = data.coord[frame].reshape(-1, 3)
    if data.box is None:
        return Atoms(symbols, positions=positions, pbc=False)
    return Atoms(symbols, positions=positions, cell=np.asarray(data.box[frame]).reshape(3, 3), pbc=True)
