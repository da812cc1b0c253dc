"""Neighbour lists against DeePMD-kit v3's NumPy reference (deepmd.dpmodel)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mtbench.data.neighbor import (
    NeighborData,
    NeighborSpec,
    build_neighbor_list,
    compute_neighbor_data,
    normalize_coord,
)

try:
    from . import _datagen
except ImportError:
    import _datagen

dp_nlist = pytest.importorskip("deepmd.dpmodel.utils.nlist")


def deepmd_list(coord, box, atype, spec):
    """DeePMD's list for one frame: local neighbour index and r_ij per slot."""
    nloc = len(atype)
    ext, _, mapping, nlist = dp_nlist.extend_input_and_build_neighbor_list(
        coord.reshape(1, -1),
        np.asarray(atype)[None],
        spec.rcut,
        list(spec.sel),
        mixed_types=spec.mixed_types,
        box=None if box is None else box.reshape(1, 9),
    )
    ext, nlist, mapping = ext.reshape(-1, 3), nlist[0], mapping[0]
    safe = np.maximum(nlist, 0)
    local = np.where(nlist >= 0, mapping[safe], -1)
    rij = ext[safe] - ext[:nloc][:, None, :]
    return local, rij


def assert_same_as_deepmd(coord, box, atype, spec, ntypes, *, same_order=True):
    idx, shift, counts = build_neighbor_list(coord, box, atype, spec, ntypes)
    ref_idx, ref_rij = deepmd_list(coord, box, atype, spec)
    assert idx.shape == ref_idx.shape == (len(atype), spec.nnei)
    assert idx.dtype == np.int32 and shift.dtype == np.int8
    cell = np.zeros((3, 3)) if box is None else box
    rij = coord[np.maximum(idx, 0)] + shift @ cell - coord[:, None, :]
    # Every slot block holds the same (neighbour, r_ij) set as DeePMD's.
    bounds = np.cumsum((0, *spec.sel))
    for a in range(len(atype)):
        for lo, hi in itertools.pairwise(bounds):
            mine = sorted((int(idx[a, k]), *np.round(rij[a, k], 8)) for k in range(lo, hi) if idx[a, k] >= 0)
            ref = sorted((int(ref_idx[a, k]), *np.round(ref_rij[a, k], 8)) for k in range(lo, hi) if ref_idx[a, k] >= 0)
            assert mine == ref, (a, lo)
    if same_order:  # no equal distances: slot for slot
        np.testing.assert_array_equal(idx, ref_idx)
        real = idx >= 0
        np.testing.assert_allclose(rij[real], ref_rij[real], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(shift[idx < 0], 0)
    return idx, shift, counts


def test_periodic_water_box_matches_deepmd_and_counts_neighbours():
    rng = np.random.default_rng(0)
    coord, atype = _datagen.water_like(32, 9.85, rng)
    box = np.diag([9.85, 9.85, 9.85])
    coord = coord + rng.integers(-2, 3, size=coord.shape) * 9.85  # unwrapped input
    spec = NeighborSpec(rcut=4.0, sel=(20, 40), mixed_types=False)
    idx, _, counts = assert_same_as_deepmd(coord, box, atype, spec, 2)
    # counts = brute-force count over all images within rcut
    wrapped, _ = normalize_coord(coord, box)
    images = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]) @ box
    d = np.linalg.norm(wrapped[None, :, None, :] + images[None, None] - wrapped[:, None, None, :], axis=-1)
    within = (d <= 4.0) & (d > 0)
    expected = np.stack([within[:, atype == t].sum(axis=(1, 2)) for t in (0, 1)], axis=1)
    np.testing.assert_array_equal(counts, expected)
    assert (idx >= 0).sum() == counts.sum()  # sel is large enough: nothing dropped


def test_mixed_types_list_matches_deepmd():
    rng = np.random.default_rng(1)
    coord, atype = _datagen.water_like(32, 9.85, rng)
    box = np.diag([9.85, 9.85, 9.85])
    assert_same_as_deepmd(coord, box, atype, NeighborSpec(4.0, (60,), True), 2)


def test_small_box_with_several_images_of_one_atom_matches_deepmd():
    rng = np.random.default_rng(2)
    box = np.array([[3.0, 0.0, 0.0], [0.5, 3.5, 0.0], [0.3, 0.2, 2.8]])
    coord = rng.random((5, 3)) @ box
    atype = np.array([0, 0, 1, 1, 1])
    spec = NeighborSpec(6.0, (150, 250), False)  # rcut > the box: images 2 cells away
    # self-images at +n and -n are equally far: only the sets per block are defined
    idx, shift, _ = assert_same_as_deepmd(coord, box, atype, spec, 2, same_order=False)
    assert np.any(np.abs(shift).max(axis=-1) >= 2)
    # atom 0 sees several images of itself and of atom 1
    assert np.sum(idx[0] == 0) > 2 and np.sum(idx[0] == 1) > 2


def test_non_periodic_molecule_matches_deepmd():
    rng = np.random.default_rng(3)
    coord = rng.normal(scale=2.0, size=(12, 3))
    atype = np.array([0] * 4 + [1] * 8)
    idx, shift, _ = assert_same_as_deepmd(coord, None, atype, NeighborSpec(2.5, (3, 6), False), 2)
    assert np.all(shift == 0)
    assert (idx == -1).any() and (idx >= 0).any()


def test_triclinic_cell_matches_deepmd():
    rng = np.random.default_rng(4)
    box = np.array([[10.0, 0.0, 0.0], [3.0, 9.0, 0.0], [-2.0, 1.5, 8.0]])
    coord = rng.random((90, 3)) @ box * 1.4 - 2.0  # some atoms outside the cell
    atype = np.sort(rng.integers(0, 3, 90))
    assert_same_as_deepmd(coord, box, atype, NeighborSpec(5.0, (30, 30, 30), False), 3)


def test_overflowing_type_is_truncated_like_deepmd():
    rng = np.random.default_rng(5)
    coord, atype = _datagen.water_like(32, 9.85, rng)
    box = np.diag([9.85, 9.85, 9.85])
    spec = NeighborSpec(4.0, (4, 6), False)
    idx, _, counts = assert_same_as_deepmd(coord, box, atype, spec, 2)
    assert (counts[:, 1] > 6).any()
    assert np.all((idx[:, 4:] >= 0).sum(axis=1) <= 6)
    # the total cap sum(sel) is applied before the type split (dpmodel's rule)
    mixed = NeighborSpec(4.0, (5,), True)
    assert_same_as_deepmd(coord, box, atype, mixed, 2)


def test_shift_reproduces_distances_for_unwrapped_coordinates():
    rng = np.random.default_rng(6)
    box = np.array([[7.0, 0.0, 0.0], [1.0, 6.5, 0.0], [0.5, -0.7, 7.2]])
    coord = rng.random((20, 3)) @ box
    atype = np.sort(rng.integers(0, 2, 20))
    spec = NeighborSpec(3.5, (30, 30), False)
    idx0, shift0, _ = build_neighbor_list(coord, box, atype, spec, 2)
    moved = coord + rng.integers(-40, 40, size=(20, 3)) @ box
    idx1, shift1, _ = build_neighbor_list(moved, box, atype, spec, 2)
    np.testing.assert_array_equal(idx0, idx1)
    r0 = coord[np.maximum(idx0, 0)] + shift0 @ box - coord[:, None]
    r1 = moved[np.maximum(idx1, 0)] + shift1 @ box - moved[:, None]
    real = idx0 >= 0
    assert real.sum() > 50
    np.testing.assert_allclose(r1[real], r0[real], atol=1e-9)


def test_spec_validation_and_sel_length_checked():
    with pytest.raises(ValueError):
        NeighborSpec(4.0, (10, 10), True)
    with pytest.raises(ValueError):
        NeighborSpec(0.0, (10,), True)
    spec = NeighborSpec(4, [10, 20], False)
    assert spec.sel == (10, 20) and spec.rcut == 4.0 and spec.nnei == 30
    assert hash(spec) == hash(NeighborSpec(4.0, (10, 20), False))
    with pytest.raises(ValueError, match="one entry per type"):
        build_neighbor_list(np.zeros((2, 3)), None, np.array([0, 1]), NeighborSpec(4.0, (3,), False), 2)


def test_neighbor_data_statistics_overflow_and_auto_sel():
    rng = np.random.default_rng(7)
    frames = [_datagen.water_like(16, 7.8, rng) for _ in range(3)]
    coords = np.stack([c for c, _ in frames])
    atype = frames[0][1]
    boxes = np.tile(np.diag([7.8, 7.8, 7.8]), (3, 1, 1))
    spec = NeighborSpec(4.0, (8, 100), False)
    data = compute_neighbor_data(coords, boxes, atype, spec, 2)
    per_frame = [build_neighbor_list(coords[f], boxes[f], atype, spec, 2) for f in range(3)]
    for f, (idx, shift, _) in enumerate(per_frame):
        np.testing.assert_array_equal(data.idx[f], idx)
        np.testing.assert_array_equal(data.shift[f], shift)
    counts = np.stack([c for _, _, c in per_frame])
    np.testing.assert_array_equal(data.max_counts, counts.max(axis=(0, 1)))
    assert data.max_total == counts.sum(axis=2).max()
    assert data.overflow == bool(data.max_counts[0] > 8)
    assert data.overflow  # 16 O in a small box: more than 8 O neighbours
    assert data.sel_suggestion == tuple(4 * -(-int(m * 1.1) // 4) for m in data.max_counts)
    assert data.shift.dtype == np.int8 and data.idx.dtype == np.int32

    mixed = NeighborData(NeighborSpec(4.0, (200,), True), data.idx, data.shift, data.max_counts, 37)
    assert not mixed.overflow and mixed.sel_suggestion == (40,)  # int(40.7) -> 40


def test_progress_bar_path_gives_the_same_lists():
    rng = np.random.default_rng(8)
    coords = np.stack([_datagen.water_like(4, 6.0, rng)[0] for _ in range(4)])
    atype = np.array([0] * 4 + [1] * 8)
    spec = NeighborSpec(3.0, (10, 20), False)
    ticks = iter(range(100))
    slow = compute_neighbor_data(coords, None, atype, spec, 2, clock=lambda: float(next(ticks)))
    fast = compute_neighbor_data(coords, None, atype, spec, 2)
    np.testing.assert_array_equal(slow.idx, fast.idx)


def test_packed_lists_round_trip() -> None:
    from mtbench.data.neighbor import pack_lists, unpack_lists

    rng = np.random.default_rng(0)
    idx = rng.integers(-1, 500, size=(3, 7, 11)).astype(np.int32)
    small = rng.integers(-2, 3, size=(3, 7, 11, 3)).astype(np.int8)
    pi, ps = pack_lists(idx, small)
    assert pi.dtype == np.int16 and ps.shape == idx.shape and ps.dtype == np.int8
    ui, us = unpack_lists(pi, ps)
    np.testing.assert_array_equal(ui, idx)
    np.testing.assert_array_equal(us, small)
    far = small.copy()
    far[0, 0, 0] = (5, -7, 3)  # an unwrapped trajectory: shifts beyond two cells stay unpacked
    pi, ps = pack_lists(idx, far)
    assert ps.shape == far.shape
    np.testing.assert_array_equal(unpack_lists(pi, ps)[1], far)
