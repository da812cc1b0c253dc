"""Tiny deepmd/npy systems written with numpy, for the data-layer tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_system(
    root: Path,
    types: Sequence[int],
    set_frames: Sequence[int] = (3, 2),
    *,
    type_names: Sequence[str] | None = None,
    nopbc: bool = False,
    box_len: float = 6.0,
    labels: dict[str, object] | None = None,
    seed: int = 0,
) -> Path:
    """A system with ``len(set_frames)`` sets.

    ``labels`` maps a label key to ``ndof`` (a random ``[nf, ndof * N]`` atomic label
    when the key is atomic-looking, else ``[nf, ndof]``), to an array-making callable
    ``f(nf, set_index) -> array``, or to ``None`` (skip). Values are deterministic:
    coordinate of frame f, atom a, component c = f*100 + a + c/10 (within a set, plus
    1000 * set index), so tests can recognise frames and atoms.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    natoms = len(types)
    (root / "type.raw").write_text("\n".join(str(t) for t in types) + "\n")
    if type_names is not None:
        (root / "type_map.raw").write_text("\n".join(type_names) + "\n")
    if nopbc:
        (root / "nopbc").write_text("")
    for k, nf in enumerate(set_frames):
        set_dir = root / f"set.{k:03d}"
        set_dir.mkdir(exist_ok=True)
        np.save(set_dir / "coord.npy", frame_coords(nf, natoms, k).reshape(nf, -1))
        if not nopbc:
            np.save(set_dir / "box.npy", np.tile(np.eye(3).reshape(1, 9) * box_len, (nf, 1)))
        for key, spec in (labels or {}).items():
            if spec is None:
                continue
            if callable(spec):
                value = spec(nf, k)
            else:
                ndof = int(spec)  # type: ignore[arg-type]
                width = ndof * natoms if key in ATOMIC_KEYS else ndof
                value = rng.normal(size=(nf, width))
            np.save(set_dir / f"{key}.npy", value)
    return root


ATOMIC_KEYS = {"force", "atom_ener", "atom_pref", "atomic_dipole", "atomic_polarizability", "aparam"}


def frame_coords(nf: int, natoms: int, set_index: int = 0) -> np.ndarray:
    """Recognisable coordinates ``[nf, natoms, 3]`` (see :func:`write_system`)."""
    f = np.arange(nf)[:, None, None]
    a = np.arange(natoms)[None, :, None]
    c = np.arange(3)[None, None, :]
    return (1000.0 * set_index + 100.0 * f + a + c / 10.0).astype(np.float64)


def water_like(natoms_o: int, box_len: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random O/H frame (types sorted): O spread in the box, two H near each O."""
    o = rng.uniform(0.0, box_len, size=(natoms_o, 3))
    h = np.repeat(o, 2, axis=0) + rng.normal(scale=0.6, size=(2 * natoms_o, 3))
    coord = np.concatenate([o, h])
    atype = np.array([0] * natoms_o + [1] * (2 * natoms_o))
    return coord, atype
