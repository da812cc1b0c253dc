"""Reading deepmd/npy systems (and dpdata formats) into DeepmdSystem."""

from __future__ import annotations

import numpy as np
import pytest

from mtbench.data.neighbor import NeighborSpec, build_neighbor_list
from mtbench.data.requirements import (
    ATOM_PREF,
    ENERGY,
    FORCE,
    LabelRequirement,
    merge_requirements,
    standard_requirement,
)
from mtbench.data.system import DeepmdSystem, expand_systems, load_systems
from mtbench.errors import DataError, SpecError

try:
    from . import _datagen
except ImportError:
    import _datagen

TYPE_MAP = ["O", "H", "C"]


def test_atoms_are_sorted_by_type_stably_and_labels_follow(tmp_path):
    types = [1, 0, 1, 0, 2]
    root = _datagen.write_system(tmp_path / "sys", types, (3, 2), labels={"energy": 1, "force": 3})
    system = DeepmdSystem(root, TYPE_MAP, [ENERGY, FORCE])
    np.testing.assert_array_equal(system.idx_map, [1, 3, 0, 2, 4])
    np.testing.assert_array_equal(system.atype, [0, 0, 1, 1, 2])
    assert system.atype.dtype == np.int32
    np.testing.assert_array_equal(system.natoms_per_type, [2, 2, 1])
    assert (system.natoms, system.nframes, system.nsets, system.nopbc) == (5, 5, 2, False)
    assert system.set_nframes == [3, 2]

    batch = system.frames([4, 0])
    original = np.concatenate([_datagen.frame_coords(3, 5, 0), _datagen.frame_coords(2, 5, 1)])
    np.testing.assert_array_equal(batch["coord"], original[[4, 0]][:, system.idx_map])
    force = np.concatenate([np.load(root / f"set.00{k}/force.npy") for k in (0, 1)]).reshape(5, 5, 3)
    np.testing.assert_array_equal(batch["force"], force[[4, 0]][:, system.idx_map])
    energy = np.concatenate([np.load(root / f"set.00{k}/energy.npy") for k in (0, 1)])
    np.testing.assert_array_equal(batch["energy"], energy[[4, 0]])
    assert batch["coord"].dtype == np.float64 and batch["coord"].shape == (2, 5, 3)
    assert batch["box"].shape == (2, 3, 3) and np.allclose(batch["box"][0], 6.0 * np.eye(3))
    assert batch["atype"].shape == (2, 5) and batch["atype"].dtype == np.int32
    assert batch["energy"].shape == (2, 1) and batch["force"].shape == (2, 5, 3)
    assert batch["natoms"] == 5 and batch["nopbc"] is False
    assert batch["find_energy"] == 1.0 and batch["find_force"] == 1.0


def test_type_map_raw_remaps_types_by_name(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 1, 1, 0], (2,), type_names=["H", "O"])
    system = DeepmdSystem(root, ["O", "H"], [])
    # on disk: H O O H -> model types 1 0 0 1 -> sorted O O H H
    np.testing.assert_array_equal(system.atype, [0, 0, 1, 1])
    np.testing.assert_array_equal(system.idx_map, [1, 2, 0, 3])
    assert system.type_map == ["O", "H"]


def test_type_name_missing_from_the_model_type_map_is_a_data_error(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 1], (2,), type_names=["O", "Na"])
    with pytest.raises(DataError, match="'Na'") as err:
        DeepmdSystem(root, ["O", "H"], [])
    assert err.value.path.endswith("type_map.raw")
    # an unused name that the model lacks is fine
    root2 = _datagen.write_system(tmp_path / "s2", [0, 0], (2,), type_names=["O", "Na"])
    assert DeepmdSystem(root2, ["O", "H"], []).natoms == 2


def test_type_index_beyond_model_type_map_without_names(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 3], (2,))
    with pytest.raises(DataError, match="atom type 3") as err:
        DeepmdSystem(root, ["O", "H"], [])
    assert err.value.path.endswith("type.raw")


def test_nopbc_system_has_zero_box_and_needs_no_box_file(tmp_path):
    root = _datagen.write_system(tmp_path / "mol", [0, 1, 1], (2,), nopbc=True)
    system = DeepmdSystem(root, TYPE_MAP, [])
    batch = system.frames([0, 1])
    assert system.nopbc and batch["nopbc"] is True
    np.testing.assert_array_equal(batch["box"], np.zeros((2, 3, 3)))


def test_periodic_system_without_box_names_the_file(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 1], (2,))
    (root / "set.000" / "box.npy").unlink()
    with pytest.raises(DataError, match="box.npy"):
        DeepmdSystem(root, TYPE_MAP, [])


def test_missing_optional_label_uses_default_and_find_flag(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 1, 1], (2, 2), labels={"energy": 1})
    (root / "set.001" / "energy.npy").unlink()
    system = DeepmdSystem(root, TYPE_MAP, [ENERGY, ATOM_PREF, standard_requirement("virial")])
    assert not system.has_label("energy") and not system.has_label("virial")
    first, second, both = system.frames([0, 1]), system.frames([2, 3]), system.frames([1, 2])
    assert first["find_energy"] == 1.0 and second["find_energy"] == 0.0 and both["find_energy"] == 0.0
    np.testing.assert_array_equal(second["energy"], np.zeros((2, 1)))
    np.testing.assert_array_equal(first["atom_pref"], np.ones((2, 3, 1)))  # atom_pref defaults to 1
    assert first["find_atom_pref"] == 0.0 and first["virial"].shape == (2, 9)


def test_must_label_missing_names_system_and_file(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 1], (2,))
    fparam = standard_requirement("fparam", ndof=2)
    assert fparam.must
    with pytest.raises(DataError, match="fparam") as err:
        DeepmdSystem(root, TYPE_MAP, [fparam])
    assert "set.000/fparam.npy" in err.value.path and str(root) in str(err.value)


def test_wrong_label_shape_names_file_and_expected_shape(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 1, 1], (2,), labels={"force": lambda nf, k: np.zeros((nf, 8))})
    with pytest.raises(DataError, match=r"expected shape \(2, 9\)") as err:
        DeepmdSystem(root, TYPE_MAP, [FORCE])
    assert err.value.path.endswith("set.000/force.npy")
    root2 = _datagen.write_system(tmp_path / "c", [0, 1, 1], (2,))
    np.save(root2 / "set.000" / "coord.npy", np.zeros((2, 8)))
    with pytest.raises(DataError, match="coord.npy"):
        DeepmdSystem(root2, TYPE_MAP, [])


def test_atomic_tensor_with_type_sel_stored_for_selected_atoms_or_all(tmp_path):
    types = [1, 0, 1, 0, 1]  # O atoms are original atoms 1 and 3
    sel_values = np.arange(2 * 2 * 3, dtype=float).reshape(2, 6) + 1.0  # [nf, Nsel*3], original order
    all_values = np.arange(2 * 5 * 3, dtype=float).reshape(2, 15) + 1.0
    req = LabelRequirement("atomic_dipole", 3, atomic=True, type_sel=(0,))
    only_sel = _datagen.write_system(tmp_path / "a", types, (2,), labels={"atomic_dipole": lambda nf, k: sel_values})
    every = _datagen.write_system(tmp_path / "b", types, (2,), labels={"atomic_dipole": lambda nf, k: all_values})
    sys_a, sys_b = DeepmdSystem(only_sel, TYPE_MAP, [req]), DeepmdSystem(every, TYPE_MAP, [req])
    a, b = sys_a.frames([0, 1])["atomic_dipole"], sys_b.frames([0, 1])["atomic_dipole"]
    assert a.shape == b.shape == (2, 5, 3)
    # sorted order: O(orig 1), O(orig 3), H, H, H
    np.testing.assert_array_equal(a[:, :2], sel_values.reshape(2, 2, 3))
    np.testing.assert_array_equal(a[:, 2:], 0.0)
    np.testing.assert_array_equal(b[:, :2], all_values.reshape(2, 5, 3)[:, [1, 3]])
    np.testing.assert_array_equal(b[:, 2:], 0.0)
    bad = _datagen.write_system(tmp_path / "c", types, (2,), labels={"atomic_dipole": lambda nf, k: np.zeros((nf, 7))})
    with pytest.raises(DataError, match=r"\(2, 15\) or \(2, 6\)"):
        DeepmdSystem(bad, TYPE_MAP, [req])


def test_atom_and_atomic_file_names_are_both_accepted(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [0, 1], (1,), labels={"atom_dipole": lambda nf, k: np.ones((nf, 6))})
    system = DeepmdSystem(root, TYPE_MAP, [standard_requirement("atomic_dipole")])
    assert system.has_label("atomic_dipole")


def test_expand_systems_searches_directories_recursively(tmp_path):
    b = _datagen.write_system(tmp_path / "data" / "b" / "sys", [0], (1,))
    a = _datagen.write_system(tmp_path / "data" / "a", [0], (1,))
    assert expand_systems(str(tmp_path / "data")) == [str(a), str(b)]
    assert expand_systems([str(b), str(a)]) == [str(b), str(a)]
    with pytest.raises(DataError, match="does not exist") as err:
        expand_systems([str(tmp_path / "nope")], key="training.data_dict.x.training_data.systems")
    assert "training.data_dict.x.training_data.systems" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no type.raw"):
        expand_systems(str(tmp_path / "empty"))
    with pytest.raises(SpecError, match="my.systems"):
        expand_systems([], key="my.systems")


def test_dpdata_format_gives_the_same_kind_of_system(tmp_path):
    ase = pytest.importorskip("ase")
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        atoms = ase.Atoms("HOH", positions=rng.random((3, 3)) * 3.0, cell=np.eye(3) * 5.0, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal()), forces=rng.normal(size=(3, 3)))
        frames.append(atoms)
    path = tmp_path / "frames.extxyz"
    write(path, frames)
    (system,) = load_systems(path, ["O", "H"], [ENERGY, FORCE])  # format guessed from the name
    assert system.nframes == 3 and system.natoms == 3
    np.testing.assert_array_equal(system.atype, [0, 1, 1])
    np.testing.assert_array_equal(system.idx_map, [1, 0, 2])
    batch = system.frames([0, 1, 2])
    for f, atoms in enumerate(frames):
        # extxyz stores 8 decimals
        np.testing.assert_allclose(batch["coord"][f], atoms.positions[[1, 0, 2]], atol=1e-7)
        np.testing.assert_allclose(batch["force"][f], atoms.get_forces()[[1, 0, 2]], atol=1e-7)
        assert batch["energy"][f, 0] == pytest.approx(atoms.get_potential_energy(), abs=1e-7)
    assert batch["find_energy"] == 1.0 and system.has_label("force")
    same = DeepmdSystem(path, ["O", "H"], [ENERGY], fmt="extxyz")
    np.testing.assert_array_equal(same.coord, system.coord)


def test_neighbor_data_is_cached_and_matches_per_frame_lists(tmp_path):
    root = _datagen.write_system(tmp_path / "s", [1, 0, 1], (2, 1), box_len=4.0)
    system = DeepmdSystem(root, ["O", "H"], [])
    spec = NeighborSpec(3.0, (4, 8), False)
    data = system.neighbor_data(spec)
    assert system.neighbor_data(spec) is data
    assert data.idx.shape == (3, 3, 12) and data.shift.shape == (3, 3, 12, 3)
    for f in range(3):
        idx, shift, _ = build_neighbor_list(system.coord[f], system.box[f], system.atype, spec, 2)
        np.testing.assert_array_equal(data.idx[f], idx)
        np.testing.assert_array_equal(data.shift[f], shift)


def test_requirement_helpers():
    assert standard_requirement("atom_pref").default == 1.0
    assert standard_requirement("force") == FORCE
    assert standard_requirement("atomic_polarizability", type_sel=[0]).type_sel == (0,)
    with pytest.raises(ValueError):
        standard_requirement("nonsense")
    with pytest.raises(ValueError):
        LabelRequirement("energy", 1, atomic=False, type_sel=(0,))
    merged = merge_requirements([ENERGY, FORCE, LabelRequirement("energy", 1, False, must=True)])
    assert [r.key for r in merged] == ["energy", "force"] and merged[0].must
    with pytest.raises(ValueError, match="conflicting"):
        merge_requirements([ENERGY, LabelRequirement("energy", 2, False)])
