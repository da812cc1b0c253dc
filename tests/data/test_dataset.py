"""TaskDataset: DeePMD-kit's batch sizes, system probabilities, batch drawing and restart state."""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import pytest

from mtbench.data.dataset import TaskDataset
from mtbench.data.neighbor import NeighborSpec
from mtbench.data.requirements import (
    ENERGY,
    FORCE,
    LabelRequirement,
    standard_requirement,
)
from mtbench.errors import DataError, SpecError

try:
    from . import _datagen
except ImportError:
    import _datagen

TYPE_MAP = ["O", "H"]
KEY = "training.data_dict.water.training_data"


@pytest.fixture
def three_systems(tmp_path):
    """Systems of 3, 5 and 2 atoms with sets of (3, 2), (4,) and (6, 1, 2) frames."""
    return [
        str(_datagen.write_system(tmp_path / "a", [0, 1, 1], (3, 2), labels={"energy": 1})),
        str(_datagen.write_system(tmp_path / "b", [1, 0, 1, 1, 0], (4,), labels={"energy": 1})),
        str(_datagen.write_system(tmp_path / "c", [0, 1], (6, 1, 2), labels={"energy": 1}, nopbc=True)),
    ]


def test_batch_size_rules_and_nbatches(three_systems):
    auto = TaskDataset(three_systems, TYPE_MAP, [ENERGY], batch_size="auto:10", key=KEY)
    assert auto.batch_sizes == [4, 2, 5]  # smallest b with b * natoms >= 10
    assert auto.nbatches == [1 + 1, 2, 1 + 1 + 1]  # max(1, nf // b) per set
    assert TaskDataset(three_systems, TYPE_MAP, [], batch_size="auto").batch_sizes == [11, 7, 16]
    assert TaskDataset(three_systems, TYPE_MAP, [], batch_size="max:10").batch_sizes == [3, 2, 5]
    fixed = TaskDataset(three_systems, TYPE_MAP, [], batch_size=2)
    assert fixed.batch_sizes == [2, 2, 2] and fixed.nbatches == [2, 2, 3 + 1 + 1]
    assert TaskDataset(three_systems, TYPE_MAP, [], batch_size=[1, 2, 3]).batch_sizes == [1, 2, 3]
    mixed = TaskDataset(three_systems, TYPE_MAP, [], batch_size="mixed:4")
    assert mixed.mixed and mixed.batch_sizes == [4, 4, 4]  # DeePMD-kit: the rule is every system's batch size
    assert not auto.mixed and not fixed.mixed
    for bad in ("auto:x", "mixed", "mixed:0", "mixed:x", 0, [1, 2], "max"):
        with pytest.raises(SpecError, match=f"{KEY}.batch_size"):
            TaskDataset(three_systems, TYPE_MAP, [], batch_size=bad, key=KEY)
    with pytest.raises(SpecError, match=f"{KEY}.batch_size"):
        TaskDataset(three_systems, TYPE_MAP, [], batch_size="auto:0", key=f"{KEY}.systems")


def test_system_probabilities(three_systems):
    sizes = TaskDataset(three_systems, TYPE_MAP, [], batch_size=2)  # nbatches 2, 2, 5
    np.testing.assert_allclose(sizes.probs, np.array([2, 2, 5]) / 9)
    uniform = TaskDataset(three_systems, TYPE_MAP, [], batch_size=2, auto_prob="prob_uniform")
    np.testing.assert_allclose(uniform.probs, [1 / 3] * 3)
    blocks = TaskDataset(three_systems, TYPE_MAP, [], batch_size=2, auto_prob="prob_sys_size;0:1:0.2;1:3:0.8")
    np.testing.assert_allclose(blocks.probs, [0.2, 0.8 * 2 / 7, 0.8 * 5 / 7])
    negative = TaskDataset(three_systems, TYPE_MAP, [], batch_size=2, sys_probs=[0.3, -1, -1])
    np.testing.assert_allclose(negative.probs, [0.3, 0.7 * 2 / 7, 0.7 * 5 / 7])
    given = TaskDataset(three_systems, TYPE_MAP, [], batch_size=2, sys_probs=[0.5, 0.25, 0.25])
    np.testing.assert_allclose(given.probs, [0.5, 0.25, 0.25])
    with pytest.raises(SpecError, match=f"{KEY}.sys_probs"):
        TaskDataset(three_systems, TYPE_MAP, [], sys_probs=[0.8, 0.5, -1], key=KEY)
    with pytest.raises(SpecError, match="sys_probs"):
        TaskDataset(three_systems, TYPE_MAP, [], sys_probs=[0.5, 0.5])
    for bad in ("prob_size", "prob_sys_size;0:9:1", "prob_sys_size;0:1"):
        with pytest.raises(SpecError, match=f"{KEY}.auto_prob"):
            TaskDataset(three_systems, TYPE_MAP, [], auto_prob=bad, key=KEY)


def test_systems_are_drawn_with_their_probabilities(three_systems):
    data = TaskDataset(three_systems, TYPE_MAP, [], batch_size=1, sys_probs=[0.6, 0.1, 0.3])
    rng = np.random.default_rng(0)
    drawn = np.bincount([data.get_batch(rng)["sys_idx"] for _ in range(3000)], minlength=3) / 3000
    np.testing.assert_allclose(drawn, [0.6, 0.1, 0.3], atol=0.03)


def test_sets_cycle_frames_shuffle_and_tails_are_skipped(three_systems):
    data = TaskDataset(three_systems, TYPE_MAP, [ENERGY], batch_size=2)
    rng = np.random.default_rng(1)
    # system 0: sets of 3 and 2 frames (global frames 0-2 and 3-4)
    got = [data.get_batch(rng, sys_idx=0)["frame_idx"].tolist() for _ in range(6)]
    sets = [set(range(3)), set(range(3, 5))] * 3
    for frames, allowed in zip(got, sets):
        assert len(frames) == 2 and set(frames) <= allowed and len(set(frames)) == 2
    # system 2: sets of 6, 1, 2 frames with batch 5 -> one slice per set, set 1 is a 1-frame batch
    big = TaskDataset(three_systems, TYPE_MAP, [], batch_size=5)
    sizes = [big.get_batch(rng, sys_idx=2)["frame_idx"].size for _ in range(6)]
    assert sizes == [5, 1, 2, 5, 1, 2]
    # a single-set system reshuffles: two passes over 4 frames in batches of 2 cover it twice
    frames = [big_frame for _ in range(4) for big_frame in data.get_batch(rng, sys_idx=1)["frame_idx"]]
    assert sorted(frames) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_numb_copy_repeats_frames_within_a_pass(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 1], (3,))
    np.save(root / "set.000" / "numb_copy.npy", np.array([1, 3, 0]))
    data = TaskDataset([str(root)], TYPE_MAP, [], batch_size=4)
    frames = data.get_batch(np.random.default_rng(0), sys_idx=0)["frame_idx"]
    assert sorted(frames.tolist()) == [0, 1, 1, 1]


def test_restart_state_reproduces_the_same_batches(three_systems):
    data = TaskDataset(three_systems, TYPE_MAP, [ENERGY], batch_size=2)
    rng = np.random.default_rng(42)
    for _ in range(7):
        data.get_batch(rng)
    state = json.loads(json.dumps(data.get_state()))
    rng_state = rng.bit_generator.state
    first = [data.get_batch(rng) for _ in range(9)]

    restarted = TaskDataset(three_systems, TYPE_MAP, [ENERGY], batch_size=2)
    restarted.set_state(state)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = rng_state
    second = [restarted.get_batch(rng2) for _ in range(9)]
    assert [b["sys_idx"] for b in first] == [b["sys_idx"] for b in second]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a["frame_idx"], b["frame_idx"])
        np.testing.assert_array_equal(a["coord"], b["coord"])
    # without the cursor state the batches differ (the check above can fail)
    fresh = TaskDataset(three_systems, TYPE_MAP, [ENERGY], batch_size=2)
    rng3 = np.random.default_rng()
    rng3.bit_generator.state = rng_state
    third = [fresh.get_batch(rng3)["frame_idx"].tolist() for _ in range(9)]
    assert third != [b["frame_idx"].tolist() for b in first]
    with pytest.raises(SpecError):
        TaskDataset(three_systems[:2], TYPE_MAP, [ENERGY]).set_state(state)


def test_periodic_and_nopbc_systems_in_one_dataset_with_neighbor_lists(three_systems):
    data = TaskDataset(three_systems, TYPE_MAP, [ENERGY], batch_size=2)
    spec = NeighborSpec(3.0, (4, 4), False)
    rng = np.random.default_rng(3)
    periodic = data.get_batch(rng, sys_idx=0, nspecs=[spec])
    molecule = data.get_batch(rng, sys_idx=2, nspecs=[spec])
    assert periodic["nopbc"] is False and molecule["nopbc"] is True
    np.testing.assert_array_equal(molecule["box"], 0.0)
    idx, shift = periodic["nlist"][spec]
    assert idx.shape == (2, 3, 8) and shift.shape == (2, 3, 8, 3) and shift.dtype == np.int8
    full = data.systems[0].neighbor_data(spec)
    np.testing.assert_array_equal(idx, full.idx[periodic["frame_idx"]])
    report = data.neighbor_report(spec)
    assert [r.path for r in report] == three_systems
    _, max_counts, sel, overflow, suggestion = report[0]
    assert sel == (4, 4) and len(max_counts) == 2 and overflow == any(c > 4 for c in max_counts)
    # dp neighbor-stat's rule: int(most neighbours of each type * 1.1), rounded up to a multiple of 4
    assert len(suggestion) == 2 and all(s % 4 == 0 and int(1.1 * c) <= s < int(1.1 * c) + 4
                                        for s, c in zip(suggestion, max_counts))


def test_any_spec_with_rcut_sel_mixed_types_keys_the_batch(three_systems):
    class OtherSpec(NamedTuple):  # e.g. a descriptor's own spec type
        rcut: float
        sel: tuple[int, ...]
        mixed_types: bool

    data = TaskDataset(three_systems, TYPE_MAP, [], batch_size=2)
    other, ours = OtherSpec(3.0, (4, 4), False), NeighborSpec(3.0, (4, 4), False)
    batch = data.get_batch(np.random.default_rng(0), sys_idx=0, nspecs=[other])
    assert list(batch["nlist"]) == [other]
    assert data.systems[0].neighbor_data(other) is data.systems[0].neighbor_data(ours)
    assert data.neighbor_report(other) == data.neighbor_report(ours)


def test_atomic_only_and_global_only_tensor_systems_in_one_dataset(tmp_path):
    atomic = _datagen.write_system(
        tmp_path / "atomic", [1, 0, 1], (2,), labels={"atomic_dipole": lambda nf, k: np.ones((nf, 3))}
    )
    glob = _datagen.write_system(tmp_path / "global", [1, 0, 1], (2,), labels={"dipole": 3})
    reqs = [
        LabelRequirement("atomic_dipole", 3, atomic=True, type_sel=(0,)),
        standard_requirement("dipole"),
    ]
    data = TaskDataset([str(atomic), str(glob)], TYPE_MAP, reqs, batch_size=1)
    rng = np.random.default_rng(0)
    a, g = data.get_batch(rng, sys_idx=0), data.get_batch(rng, sys_idx=1)
    assert (a["find_atomic_dipole"], a["find_dipole"]) == (1.0, 0.0)
    assert (g["find_atomic_dipole"], g["find_dipole"]) == (0.0, 1.0)
    assert a["atomic_dipole"].shape == g["atomic_dipole"].shape == (1, 3, 3)
    np.testing.assert_array_equal(a["atomic_dipole"][0, 0], 1.0)  # the O atom
    np.testing.assert_array_equal(a["atomic_dipole"][0, 1:], 0.0)
    assert a["dipole"].shape == (1, 3) and not data.has_label("dipole")


def test_type_map_raw_remapping_inside_a_dataset(tmp_path):
    named = _datagen.write_system(tmp_path / "named", [0, 1, 1], (2,), type_names=["H", "O"])
    plain = _datagen.write_system(tmp_path / "plain", [0, 1, 1], (2,))
    data = TaskDataset([str(named), str(plain)], TYPE_MAP, [])
    np.testing.assert_array_equal(data.systems[0].atype, [0, 0, 1])
    np.testing.assert_array_equal(data.systems[1].atype, [0, 1, 1])
    assert data.natoms == [3, 3] and data.natoms_total == 12


def test_missing_or_invalid_system_and_missing_must_label(tmp_path):
    with pytest.raises(DataError) as err:
        TaskDataset([str(tmp_path / "nothing")], TYPE_MAP, [], key=KEY)
    assert str(tmp_path / "nothing") in str(err.value) and f"{KEY}.systems" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"{KEY}.systems"):
        TaskDataset(str(tmp_path / "empty"), TYPE_MAP, [], key=KEY)
    root = _datagen.write_system(tmp_path / "s", [0, 1], (2,), labels={"energy": 1})
    must_force = LabelRequirement("force", 3, atomic=True, must=True)
    with pytest.raises(DataError, match="force") as err:
        TaskDataset([str(root)], TYPE_MAP, [ENERGY, must_force])
    assert str(root) in str(err.value) and "force.npy" in str(err.value)
    # an optional force is fine
    assert not TaskDataset([str(root)], TYPE_MAP, [ENERGY, FORCE]).has_label("force")


def test_mixed_batches_pad_frames_of_several_systems(three_systems):
    """``mixed:N``: each frame draws its system, takes that system's next frame; padding atoms have type -1."""
    data = TaskDataset(three_systems, TYPE_MAP, [ENERGY, FORCE], batch_size="mixed:4")
    spec = NeighborSpec(3.0, (8,), True)
    rng = np.random.default_rng(5)
    seen_sizes: set[int] = set()
    served: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for _ in range(30):
        batch = data.get_batch(rng, nspecs=[spec])
        width = batch["natoms"]
        real = batch["real_natoms"]
        assert batch["coord"].shape == (4, width, 3) and batch["atype"].shape == (4, width)
        assert batch["force"].shape == (4, width, 3) and batch["energy"].shape == (4, 1)
        assert width == real.max() and batch["box"].shape == (4, 3, 3)
        idx, shift = batch["nlist"][spec]
        assert idx.shape == (4, width, 8) and shift.shape == (4, width, 8, 3) and shift.dtype == np.int8
        seen_sizes.add(len(set(real.tolist())))
        for k, (sys_idx, frame) in enumerate(zip(batch["sys_idx"], batch["frame_idx"], strict=True)):
            system, n = data.systems[sys_idx], real[k]
            assert n == system.natoms
            served[int(sys_idx)].append(int(frame))
            np.testing.assert_array_equal(batch["coord"][k, :n], system.coord[frame])
            np.testing.assert_array_equal(batch["atype"][k, :n], system.atype)
            np.testing.assert_array_equal(batch["force"][k, :n], system.labels["force"][frame])
            np.testing.assert_array_equal(batch["energy"][k], system.labels["energy"][frame])
            np.testing.assert_array_equal(idx[k, :n], system.neighbor_data(spec).idx[frame])
            # padding: type -1, no coordinates, no labels, no neighbours, and nobody's neighbour
            assert (batch["atype"][k, n:] == -1).all() and (batch["coord"][k, n:] == 0).all()
            assert (batch["force"][k, n:] == 0).all() and (idx[k, n:] == -1).all() and (shift[k, n:] == 0).all()
            assert idx[k].max() < n
    assert max(seen_sizes) > 1  # some batches really mix systems
    # each system serves its frames as with batch size 1: one pass over a set before the next
    assert sorted(served[1][:4]) == [0, 1, 2, 3]  # system b: one set of 4 frames
    assert set(served[0][:3]) == {0, 1, 2} and set(served[0][3:5]) == {3, 4}  # system a: sets of 3 and 2


def test_mixed_batches_draw_systems_with_their_probabilities(three_systems):
    """DeePMD-kit: the rule N is every system's batch size, for the batch counts behind ``prob_sys_size``."""
    data = TaskDataset(three_systems, TYPE_MAP, [], batch_size="mixed:4")
    assert data.nbatches == [1 + 1, 1, 1 + 1 + 1]
    np.testing.assert_allclose(data.probs, np.array([2, 1, 3]) / 6)
    rng = np.random.default_rng(0)
    drawn = np.concatenate([data.get_batch(rng)["sys_idx"] for _ in range(1000)])
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / drawn.size, [2 / 6, 1 / 6, 3 / 6], atol=0.03)
    # statistics ask for one system: N frames of it, unpadded
    one = data.get_batch(rng, sys_idx=1)
    assert one["coord"].shape == (4, 5, 3) and (one["real_natoms"] == 5).all() and (one["atype"] >= 0).all()


def test_mixed_batches_restart_from_the_saved_state(three_systems):
    data = TaskDataset(three_systems, TYPE_MAP, [ENERGY], batch_size="mixed:3")
    rng = np.random.default_rng(4)
    for _ in range(5):
        data.get_batch(rng)
    state, rng_state = json.loads(json.dumps(data.get_state())), rng.bit_generator.state
    first = [data.get_batch(rng) for _ in range(6)]
    restarted = TaskDataset(three_systems, TYPE_MAP, [ENERGY], batch_size="mixed:3")
    restarted.set_state(state)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = rng_state
    for a, b in zip(first, [restarted.get_batch(rng2) for _ in range(6)], strict=True):
        np.testing.assert_array_equal(a["sys_idx"], b["sys_idx"])
        np.testing.assert_array_equal(a["frame_idx"], b["frame_idx"])
        np.testing.assert_array_equal(a["coord"], b["coord"])
