"""sel: "auto", a missing type_map, DeePMD-kit v2 aliases and refused v2 types (issue 16)."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import pytest

from mtbench.data.system import expand_systems
from mtbench.errors import SpecError
from mtbench.spec.from_data import resolve_from_data
from mtbench.spec.normalize import normalize_spec
from mtbench.spec.validate import validate_spec
from tests.conftest import tiny_spec_dict


def deepmd_v22_sel(paths: list[str], type_map: list[str] | None, rcut: float, ratio: float, mixed: bool) -> list[int]:
    """DeePMD-kit's own neighbour statistics and v2.2's update_sel rule (wrap_up_4(count * ratio))."""
    from deepmd.dpmodel.utils.neighbor_stat import NeighborStat
    from deepmd.utils.data_system import DeepmdDataSystem

    data = DeepmdDataSystem(paths, 1, 1, rcut, type_map=type_map)
    _, counts = NeighborStat(data.get_ntypes(), rcut, mixed).get_stat(data)
    return [4 * ((int(c * ratio) + 3) // 4) for c in counts]


def _systems(spec: dict, task: str) -> list[str]:
    return expand_systems(spec["training"]["data_dict"][task]["training_data"]["systems"])


@pytest.mark.parametrize("sel", ["auto", "auto:1.5"])
def test_auto_sel_is_deepmds_rule_over_every_task(tiny_data: Path, sel: str) -> None:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener", "water_dipole"))
    spec["model"]["descriptor"]["sel"] = sel
    norm = normalize_spec(spec)
    validate_spec(norm)
    out, notes = resolve_from_data(norm, None)
    ratio = 1.1 if sel == "auto" else 1.5
    paths = _systems(spec, "water_ener") + _systems(spec, "water_dipole")
    expected = deepmd_v22_sel(paths, ["O", "H"], 3.5, ratio, False)
    assert out["model"]["descriptor"]["sel"] == expected
    assert norm["model"]["descriptor"]["sel"] == sel  # the input is not changed in place
    assert len(notes) == 1 and "model.descriptor.sel" in notes[0] and str(expected) in notes[0]
    assert "2 tasks" in notes[0] and f"times {ratio:g}" in notes[0]
    validate_spec(out)


def test_auto_sel_mixed_types_is_one_total(tiny_data: Path) -> None:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener",))
    spec["model"]["descriptor"] = {"type": "se_atten", "sel": "auto", "rcut": 3.0, "rcut_smth": 0.5,
                                   "neuron": [4, 8], "axis_neuron": 2, "attn": 8, "attn_layer": 1}
    out, _ = resolve_from_data(normalize_spec(spec), None)
    [expected] = deepmd_v22_sel(_systems(spec, "water_ener"), ["O", "H"], 3.0, 1.1, True)
    assert out["model"]["descriptor"]["sel"] == expected


def test_auto_sel_in_hybrid_each_sub_with_its_rcut(tiny_data: Path) -> None:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener",))
    spec["model"]["descriptor"] = {"type": "hybrid", "list": [
        {"type": "se_e2_a", "sel": "auto", "rcut": 3.5, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2},
        {"type": "se_e2_r", "sel": [3, 5], "rcut": 2.0, "rcut_smth": 0.5, "neuron": [4, 8]},
        {"type": "se_e2_r", "sel": "auto:2", "rcut": 2.0, "rcut_smth": 0.5, "neuron": [4, 8]}]}
    out, notes = resolve_from_data(normalize_spec(spec), None)
    subs = out["model"]["descriptor"]["list"]
    paths = _systems(spec, "water_ener")
    assert subs[0]["sel"] == deepmd_v22_sel(paths, ["O", "H"], 3.5, 1.1, False)
    assert subs[1]["sel"] == [3, 5]
    assert subs[2]["sel"] == deepmd_v22_sel(paths, ["O", "H"], 2.0, 2.0, False)
    assert [n.split(":")[0] for n in notes] == ["model.descriptor.list[0].sel", "model.descriptor.list[2].sel"]


def test_missing_type_map_takes_types_by_index(tiny_data: Path, tmp_path: Path) -> None:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener",))
    del spec["model"]["type_map"]
    norm = normalize_spec(spec)
    assert "type_map" not in norm["model"]
    validate_spec(norm)  # per-type checks wait for the data
    out, notes = resolve_from_data(norm, None)
    assert out["model"]["type_map"] == ["type_0", "type_1"]
    assert list(out["model"])[0] == "type_map"
    assert "type_0, type_1" in notes[0]
    validate_spec(out)
    # type_map.raw files that contradict each other (index 0 'O' here, 'H' there) are refused
    train = Path(_systems(spec, "water_ener")[0])
    other = tmp_path / "swapped"
    shutil.copytree(train, other)
    (other / "type_map.raw").write_text("H\nO\n")
    bad = copy.deepcopy(spec)
    bad["training"]["data_dict"]["water_ener"]["training_data"]["systems"] = [str(train), str(other)]
    with pytest.raises(SpecError, match=r"model.type_map: .*calls type 0 'O' .* calls it 'H'"):
        resolve_from_data(normalize_spec(bad), None)


def test_index_type_map_loads_data_by_index(tiny_data: Path) -> None:
    from mtbench.data.system import load_systems

    path = _systems(tiny_spec_dict(tiny_data, tasks=("water_ener",)), "water_ener")[0]
    by_name = load_systems(path, ["H", "O"], [])[0]  # names remap: O is type 1 here
    by_index = load_systems(path, ["type_0", "type_1"], [])[0]  # indices as stored: O (stored 0) is type 0
    assert by_name.natoms_per_type.tolist() == [16, 8] and by_index.natoms_per_type.tolist() == [8, 16]


def test_v2_aliases_give_one_deprecation_note_each(tiny_data: Path) -> None:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener", "water_dipole"))
    spec["training"]["stop_batch"] = spec["training"].pop("numb_steps")
    spec["model"]["fitting_net_dict"]["water_ener"]["n_neuron"] = spec["model"]["fitting_net_dict"]["water_ener"].pop(
        "neuron")
    spec["model"]["fitting_net_dict"]["water_dipole"]["dipole_type"] = [0]
    del spec["model"]["fitting_net_dict"]["water_dipole"]["sel_type"]
    notes: list[str] = []
    norm = normalize_spec(spec, notes)
    assert norm["training"]["numb_steps"] == 6 and norm["model"]["fitting_net_dict"]["water_dipole"]["sel_type"] == [0]
    assert sorted(n.split(":")[0] for n in notes) == [
        "model.fitting_net_dict.water_dipole.dipole_type", "model.fitting_net_dict.water_ener.n_neuron",
        "training.stop_batch"]
    assert all("\n" not in n and "deprecated" in n for n in notes)
    assert "read as training.numb_steps" in next(n for n in notes if n.startswith("training.stop_batch"))
    again: list[str] = []
    normalize_spec(norm, again)
    assert again == []


def test_prepare_spec_logs_notes_and_resolves(tiny_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mtbench.train.run import prepare_spec

    spec = tiny_spec_dict(tiny_data, tasks=("water_ener",))
    spec["training"]["stop_batch"] = spec["training"].pop("numb_steps")
    spec["model"]["descriptor"]["sel"] = "auto"
    with caplog.at_level(logging.INFO, logger="mtbench"):
        out = prepare_spec(spec, None)
    assert out["model"]["descriptor"]["sel"] == deepmd_v22_sel(_systems(spec, "water_ener"), ["O", "H"], 3.5, 1.1,
                                                               False)
    text = caplog.text
    assert "training.stop_batch: deprecated alias" in text and "model.descriptor.sel: 'auto' ->" in text


@pytest.mark.parametrize(("given", "names"), [("se_a_ebd_v2", "se_atten"), ("se_a_tpe_v2", "attn_layer 0"),
                                              ("se_a_tpe", "se_e2_a")])
def test_tf_only_type_embedded_se_a_is_refused_with_the_equivalent(given: str, names: str) -> None:
    spec = tiny_spec_dict(Path("/nonexistent"), tasks=("water_ener",))
    spec["model"]["descriptor"]["type"] = given
    with pytest.raises(SpecError) as info:
        normalize_spec(spec)
    msg = str(info.value)
    assert "model.descriptor.type" in msg and given in msg and names in msg and "\n" not in msg


@pytest.mark.parametrize(("descriptor", "message"), [
    ({"type": "se_e2_a", "sel": [4, 8]}, "need a mixed-type descriptor (se_atten, se_atten_v2); model.descriptor is "
                                         "'se_e2_a'"),
    ({"type": "hybrid", "list": [{"type": "se_atten", "sel": 12}, {"type": "se_e2_r", "sel": [4, 8]}]},
     "model.descriptor is 'se_e2_r'"),
])
def test_mixed_batch_size(descriptor: dict, message: str) -> None:
    spec = tiny_spec_dict(Path("/nonexistent"), tasks=("water_ener",))
    spec["model"]["descriptor"] = descriptor
    spec["training"]["data_dict"]["water_ener"]["training_data"]["batch_size"] = "mixed:4"
    with pytest.raises(SpecError) as info:
        validate_spec(spec, check_paths=False)
    assert "training.data_dict.water_ener.training_data.batch_size" in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize("descriptor", [
    {"type": "se_atten", "sel": 12},
    {"type": "dpa1", "sel": 12},
    {"type": "se_atten_v2", "sel": 12},
    {"type": "hybrid", "list": [{"type": "se_atten", "sel": 12}, {"type": "se_atten_v2", "sel": 8}]},
])
def test_mixed_batch_size_accepted_for_mixed_type_descriptors(descriptor: dict) -> None:
    spec = tiny_spec_dict(Path("/nonexistent"), tasks=("water_ener",))
    spec["model"]["descriptor"] = descriptor
    spec["training"]["data_dict"]["water_ener"]["training_data"]["batch_size"] = "mixed:4"
    validate_spec(spec, check_paths=False)
    for bad in ("mixed", "mixed:0", "mixed:x"):
        spec["training"]["data_dict"]["water_ener"]["training_data"]["batch_size"] = bad
        with pytest.raises(SpecError, match="training_data.batch_size"):
            validate_spec(spec, check_paths=False)
