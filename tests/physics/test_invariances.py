"""Physics every descriptor x fitting must obey (float64, mtbench only; cases from tests/model_cases.py).

Rotation (energy invariant, forces ``F R``, virial ``R^T W R``, dipole ``mu(xR) = mu(x) R``, polarizability
``a(xR) = R^T a(x) R``, row-vector coordinates), translation (including one atom moved by a lattice vector),
permutation (a same-type swap; a full reorder with the types permuted along), forces and virials as central finite
differences of the energy (strain ``x -> x (I + eps)``, ``box -> box (I + eps)``, ``virial = -dE/deps``), and
continuity of energy and forces as an atom crosses every ``rcut`` and ``rcut_smth``. Neighbour lists come from
mtbench's data layer and are rebuilt for every geometry. Statistics are random per centre type, as real ones.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pytest

from mtbench.model.multitask import MultiTaskModel
from tests.model_cases import (
    DESCRIPTOR_CASES,
    Frames,
    combinations,
    cutoffs,
    mtbench_model,
    mtbench_nlists,
    predict,
    sub_configs,
    water_frames,
)

TOL = 1e-10  # relative, for exact symmetries (only summation order changes)
# Central differences with h = 1e-5: round-off eps * |E| / h ~ 4e-10 for these ~20 eV frames dominates the
# truncation error (measured worst 7e-10); forces and virials here are 1e-4 .. 1e-1.
FD_ATOL = 3e-9
ENER = [d for d, f in combinations() if f == "ener"]
SMOOTH = [d for d in ENER if DESCRIPTOR_CASES[d].smooth]


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


@functools.cache
def model(desc: str, fit: str) -> MultiTaskModel:
    return mtbench_model(desc, fit, seed=_seed("physics", desc, fit), per_type=True)


@functools.cache
def _frames(kind: str, ntypes: int) -> Frames:
    rng = np.random.default_rng(_seed(kind, str(ntypes)))
    if kind == "periodic":  # a small triclinic cell: atoms see several images of each other
        box = np.array([[6.0, 0.0, 0.0], [1.2, 5.8, 0.0], [-0.8, 0.7, 5.9]])
        return water_frames(rng, 1, 7, box, ntypes)
    return water_frames(rng, 1, 5, None, ntypes, extent=3.0)


def frames(kind: str, desc: str) -> Frames:
    return _frames(kind, len(DESCRIPTOR_CASES[desc].type_map))


def rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def close(got: np.ndarray, want: np.ndarray, tol: float = TOL) -> float:
    """Largest difference relative to the largest value; asserted below ``tol``."""
    got, want = np.asarray(got), np.asarray(want)
    diff = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))
    assert diff <= tol, diff
    return diff


def outputs(mt: MultiTaskModel, fit: str, fr: Frames) -> dict[str, np.ndarray]:
    out = predict(mt, fr)
    nf = fr.nf
    if fit == "ener":
        return {"energy": out["energy"], "atom_energy": out["atom_energy"], "force": out["force"],
                "virial": out["virial"].reshape(nf, 3, 3)}
    if fit == "dipole":
        return {"atomic": out["atomic"], "global": out["global"]}
    n = fr.atype.shape[1]
    return {"atomic": out["atomic"].reshape(nf, n, 3, 3), "global": out["global"].reshape(nf, 3, 3)}


def moved(fr: Frames, coord: np.ndarray, box: np.ndarray | None = None, atype: np.ndarray | None = None) -> Frames:
    return Frames(coord, fr.atype if atype is None else atype, fr.box if box is None else box)


def batch_outputs(mt: MultiTaskModel, fit: str, variants: list[Frames]) -> list[dict[str, np.ndarray]]:
    """Outputs of several one-frame variants of a frame, evaluated as one batch (one model call)."""
    stacked = Frames(np.concatenate([v.coord for v in variants]), np.concatenate([v.atype for v in variants]),
                     None if variants[0].box is None else np.concatenate([v.box for v in variants]))
    out = outputs(mt, fit, stacked)
    return [{k: v[f:f + 1] for k, v in out.items()} for f in range(len(variants))]


# --- symmetries ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["periodic", "cluster"])
@pytest.mark.parametrize(("desc", "fit"), combinations())
def test_rotation(desc: str, fit: str, kind: str) -> None:
    mt, fr = model(desc, fit), frames(kind, desc)
    rot = rotation(_seed("rot", desc, fit, kind))
    base, turned = batch_outputs(mt, fit, [fr, moved(fr, fr.coord @ rot, None if fr.box is None else fr.box @ rot)])
    if fit == "ener":
        close(turned["energy"], base["energy"])
        close(turned["atom_energy"], base["atom_energy"])
        close(turned["force"], base["force"] @ rot)
        close(turned["virial"], rot.T @ base["virial"] @ rot)
    elif fit == "dipole":
        close(turned["atomic"], base["atomic"] @ rot)
        close(turned["global"], base["global"] @ rot)
    else:
        close(turned["atomic"], rot.T @ base["atomic"] @ rot)
        close(turned["global"], rot.T @ base["global"] @ rot)
    assert np.max(np.abs(base[next(iter(base))])) > 0


@pytest.mark.parametrize(("desc", "fit"), combinations())
def test_translation(desc: str, fit: str) -> None:
    mt = model(desc, fit)
    shift = np.array([0.37, -1.3, 2.9])
    fr = frames("cluster", desc)
    base, shifted = batch_outputs(mt, fit, [fr, moved(fr, fr.coord + shift)])
    for key, value in base.items():
        close(shifted[key], value)
    fr = frames("periodic", desc)
    coord = fr.coord.copy()
    coord[0, 4] += fr.box[0, 1] - 2.0 * fr.box[0, 2]  # one atom to another image: the same crystal
    base, *others = batch_outputs(mt, fit, [fr, moved(fr, fr.coord + shift), moved(fr, coord)])
    for other in others:
        for key, value in base.items():
            close(other[key], value)


@pytest.mark.parametrize(("desc", "fit"), combinations())
def test_permutation(desc: str, fit: str) -> None:
    mt, fr = model(desc, fit), frames("periodic", desc)
    atype = fr.atype[0]
    same = np.flatnonzero(atype == atype[1])
    swap = np.arange(len(atype))
    swap[[same[0], same[-1]]] = swap[[same[-1], same[0]]]
    shuffle = np.random.default_rng(_seed("perm", desc)).permutation(len(atype))
    perms = (swap, shuffle)
    base, *got = batch_outputs(mt, fit, [fr] + [moved(fr, fr.coord[:, p], atype=fr.atype[:, p]) for p in perms])
    for perm, out in zip(perms, got):
        for key, value in base.items():
            if key in ("energy", "virial", "global"):
                close(out[key], value)
            else:
                close(out[key], value[:, perm])


# --- derivatives ----------------------------------------------------------------------------------------------------
def energies(mt: MultiTaskModel, fr: Frames, coords: list[np.ndarray], boxes: list[np.ndarray] | None) -> np.ndarray:
    """Energies of many displaced geometries in one batch (each with its own, rebuilt, neighbour list)."""
    batch = Frames(np.stack(coords), np.repeat(fr.atype, len(coords), axis=0),
                   None if boxes is None else np.stack(boxes))
    return predict(mt, batch, do_force=False)["energy"]


@pytest.mark.parametrize("desc", ENER)
def test_force_and_virial_are_energy_derivatives(desc: str) -> None:
    mt, fr = model(desc, "ener"), frames("periodic", desc)
    out = outputs(mt, "ener", fr)
    h = 1e-5
    coord, box = fr.coord[0], fr.box[0]
    picks = [(0, 0), (1, 1), (5, 2), (9, 0), (14, 1)]
    coords = []
    for i, a in picks:
        for sign in (1.0, -1.0):
            c = coord.copy()
            c[i, a] += sign * h
            coords.append(c)
    e = energies(mt, fr, coords, [box] * len(coords)).reshape(-1, 2)
    fd_force = -(e[:, 0] - e[:, 1]) / (2 * h)
    want = np.array([out["force"][0, i, a] for i, a in picks])
    np.testing.assert_allclose(want, fd_force, rtol=0, atol=FD_ATOL)
    coords, boxes = [], []
    for a in range(3):
        for b in range(3):
            for sign in (1.0, -1.0):
                strain = np.eye(3)
                strain[a, b] += sign * h
                coords.append(coord @ strain)
                boxes.append(box @ strain)
    e = energies(mt, fr, coords, boxes).reshape(3, 3, 2)
    fd_virial = -(e[..., 0] - e[..., 1]) / (2 * h)
    np.testing.assert_allclose(out["virial"][0], fd_virial, rtol=0, atol=FD_ATOL)
    assert np.max(np.abs(fd_virial)) > 1e-5 and np.max(np.abs(fd_force)) > 1e-5  # far above FD_ATOL


def _crossing_types(desc: str) -> tuple[int, int]:
    """Types of the fixed centre and the moving atom: a pair no (sub-)descriptor excludes."""
    excluded = set()
    for sub in sub_configs(DESCRIPTOR_CASES[desc].config):
        for a, b in sub.get("exclude_types", []):
            excluded |= {(a, b), (b, a)}
    ntypes = len(DESCRIPTOR_CASES[desc].type_map)
    return next((a, b) for a in range(ntypes) for b in range(ntypes) if (a, b) not in excluded)


@pytest.mark.parametrize("desc", SMOOTH)
def test_smooth_across_cutoffs(desc: str) -> None:
    """Atom 2 moves along x through every cutoff radius of atom 0 (atom 1 sits on the other side):
    energy and forces are continuous, and the energy change matches the force."""
    mt = model(desc, "ener")
    ti, tj = _crossing_types(desc)
    radii = sorted({r for rc, rs in cutoffs(DESCRIPTOR_CASES[desc].config) for r in (rc, rs)})
    delta = 1e-7
    coords = []
    for r in radii:
        for x in (r - delta, r + delta):
            coords.append(np.array([[0.0, 0.0, 0.0], [-1.1, 0.3, 0.0], [x, 0.0, 0.0]]))
    fr = Frames(np.stack(coords), np.tile([ti, (ti + 1) % mt.ntypes, tj], (len(coords), 1)), None)
    out = predict(mt, fr)
    energy, force = out["energy"].reshape(-1, 2), out["force"].reshape(-1, 2, 3, 3)
    for k, r in enumerate(radii):
        f_move = force[k, :, 2, 0].mean()
        step = energy[k, 1] - energy[k, 0]
        assert abs(step + f_move * 2 * delta) <= 1e-11 * max(1.0, abs(energy[k, 0])), (r, step, f_move)
        assert np.max(np.abs(force[k, 1] - force[k, 0])) <= 1e-5 * max(1.0, np.max(np.abs(force[k]))), r
    # the list really changes at the largest cutoff: atom 2 is a neighbour of atom 0 just inside, not just outside
    spec = mt.neighbor_specs()[0]
    idx = mtbench_nlists([spec], Frames(fr.coord[-2:], fr.atype[-2:], None), mt.ntypes)[spec][0]
    assert radii[-1] == spec.rcut and 2 in idx[0, 0] and 2 not in idx[1, 0]
