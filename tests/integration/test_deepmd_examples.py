"""DeePMD-kit v2.2.11's own example inputs (descriptor, fitting and loss in mtbench's scope) train as written.

``deepmd_examples/`` holds copies of ``examples/`` at tag v2.2.11 of DeePMD-kit, each with only ``numb_steps``
(or ``stop_batch``), ``disp_freq`` and ``save_freq`` changed. Their data paths stay as written: the test builds the
tree they point to (``../data/data_0`` and so on) from mtbench's built-in tiny water generator. Each input trains
for two steps through ``python -m mtbench.train``'s entry point, and the ``sel`` recorded in the run's input.json
is compared with DeePMD-kit 2.2's rule (its own neighbour statistics, then update_sel) on the same data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mtbench.data.system import expand_systems
from mtbench.errors import SpecError
from mtbench.spec.io import load_spec
from mtbench.spec.normalize import is_multi_task, normalize_spec
from mtbench.spec.paths import resolve_system_path, system_list
from tests.spec.test_from_data import deepmd_v22_sel

EXAMPLES = Path(__file__).resolve().parent / "deepmd_examples"
INPUTS = sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.json"))
REFUSED = {  # input -> what the one-line error says (status in the report of issue 16)
    "water/se_e2_a_tebd/input.json": "se_atten without attention layers",
}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def example_tree(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example inputs plus the data folders they name, made from the built-in tiny water data."""
    root = _copy(EXAMPLES, tmp_path_factory.mktemp("deepmd") / "examples")
    water = {s: tiny_data / "water_tip3p" / s / "sys_000" for s in ("train", "val")}
    tip4p = {s: tiny_data / "water_tip4p" / s / "sys_000" for s in ("train", "val")}
    for i, src in enumerate((water["train"], tip4p["train"], water["val"], tip4p["val"])):
        _copy(src, root / "water" / "data" / f"data_{i}")
    _copy(tiny_data / "water_dipole" / "train" / "atomic_system", root / "water" / "dplr" / "train" / "data")
    for kind in ("dipole", "polar"):
        for split, name in (("train", "training_data"), ("val", "validation_data")):
            for system in ("atomic_system", "global_system"):
                _copy(tiny_data / f"water_{kind}" / split / system, root / "water_tensor" / kind / name / system)
    # fparam/aparam examples: one atom type (sel [60]), no type_map (types by index), fparam.npy and aparam.npy
    rng = np.random.default_rng(0)
    for name, src in (("e3000_i2000", water["train"]), ("e8000_i2000", water["val"])):
        dst = _copy(src, root / "fparam" / "data" / name)
        (dst / "type_map.raw").unlink()
        natoms = len((dst / "type.raw").read_text().split())
        (dst / "type.raw").write_text("0\n" * natoms)
        nframes = np.load(dst / "set.000" / "energy.npy").shape[0]
        np.save(dst / "set.000" / "fparam.npy", rng.uniform(0.5, 1.0, (nframes, 1)))
        np.save(dst / "set.000" / "aparam.npy", rng.uniform(0.5, 1.0, (nframes, natoms)))
    # nopbc examples: type_map C, H, O over folders without periodic boundaries; the second system loses two
    # molecules, so that nopbc/mixed's 'mixed:4' batches really merge systems of different sizes
    for i, src in enumerate((water["train"], tip4p["train"])):
        (_copy(src, root / "nopbc" / "data" / f"sys_{i}") / "nopbc").write_text("")
    _drop_last_atoms(root / "nopbc" / "data" / "sys_1", 6)
    return root


def _drop_last_atoms(system: Path, count: int) -> None:
    """Remove the last ``count`` atoms of a deepmd/npy system (types, coordinates, forces)."""
    types = (system / "type.raw").read_text().split()
    (system / "type.raw").write_text("\n".join(types[:-count]) + "\n")
    for set_dir in system.glob("set.*"):
        for name in ("coord.npy", "force.npy"):
            if (set_dir / name).is_file():
                data = np.load(set_dir / name)
                np.save(set_dir / name, data.reshape(data.shape[0], len(types), 3)[:, :-count].reshape(
                    data.shape[0], -1))


def _training_paths(spec: dict, base_dir: Path) -> list[str]:
    train = spec["training"]
    sections = ([d["training_data"] for d in train["data_dict"].values()] if is_multi_task(spec)
                else [train["training_data"]])
    return [p for s in sections for p in expand_systems([resolve_system_path(x, base_dir)
                                                         for x in system_list(s["systems"])])]


def _deepmd_sel(given: dict, used: dict, paths: list[str], type_map: list[str] | None) -> object:
    """What DeePMD-kit 2.2 trains with: update_sel's automatic sel, or the sel as given."""
    if given["type"] == "hybrid":
        return [_deepmd_sel(g, u, paths, type_map) for g, u in zip(given["list"], used["list"], strict=True)]
    if not (isinstance(given.get("sel"), str) and given["sel"].startswith("auto")):
        return given["sel"]
    ratio = float(given["sel"].partition(":")[2] or 1.1)
    mixed = given["type"] in ("se_atten", "se_atten_v2")
    sel = deepmd_v22_sel(paths, type_map, float(given["rcut"]), ratio, mixed)
    return sel[0] if mixed else sel


def _sels(desc: dict) -> object:
    return [_sels(d) for d in desc["list"]] if desc["type"] == "hybrid" else desc["sel"]


def test_the_copies_are_the_examples_in_scope() -> None:
    assert len(INPUTS) == 17
    assert set(REFUSED) <= set(INPUTS)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_example_says_why_in_one_line(example_tree: Path, name: str) -> None:
    from mtbench.train.run import prepare_spec

    spec, base_dir = load_spec(example_tree / name)
    with pytest.raises(SpecError) as info:
        prepare_spec(spec, base_dir)
    assert REFUSED[name] in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
@pytest.mark.oracle
@pytest.mark.parametrize("name", [n for n in INPUTS if n not in REFUSED])
def test_example_trains_as_written(example_tree: Path, tmp_path: Path, name: str) -> None:
    from mtbench.cli.train import main

    path = example_tree / name
    given, base_dir = load_spec(path)
    run_dir = tmp_path / "run"
    summary = main([str(path), "-o", str(run_dir), "--tracking", "none", "--no-progress",
                    "--output-dir", str(tmp_path / "outputs")])
    assert summary["steps"] == 2
    used = json.loads((run_dir / "input.json").read_text())
    paths = _training_paths(used, base_dir)
    type_map = given["model"].get("type_map")
    expected = _deepmd_sel(normalize_spec(given)["model"]["descriptor"], used["model"]["descriptor"], paths,
                           type_map)
    assert _sels(used["model"]["descriptor"]) == expected
    if type_map is None:
        assert used["model"]["type_map"] == ["type_0"]
    else:
        assert used["model"]["type_map"] == type_map


def _all_auto(desc: dict) -> None:
    if desc["type"] == "hybrid":
        for sub in desc["list"]:
            _all_auto(sub)
    else:
        desc["sel"] = "auto"


@pytest.mark.oracle
@pytest.mark.parametrize("name", [n for n in INPUTS if "se_e2_a_tebd" not in n])
def test_auto_sel_of_every_example_is_deepmds(example_tree: Path, name: str) -> None:
    """Had the example said ``sel: "auto"`` everywhere, mtbench would pick what DeePMD-kit 2.2 picks."""
    from mtbench.spec.from_data import resolve_from_data

    given, base_dir = load_spec(example_tree / name)
    norm = normalize_spec(given)
    _all_auto(norm["model"]["descriptor"])
    resolved, notes = resolve_from_data(norm, base_dir)
    paths = _training_paths(resolved, base_dir)
    expected = _deepmd_sel(norm["model"]["descriptor"], resolved["model"]["descriptor"], paths,
                           given["model"].get("type_map"))
    assert _sels(resolved["model"]["descriptor"]) == expected
    assert len([n for n in notes if ".sel:" in n]) == (len(norm["model"]["descriptor"].get("list", [])) or 1)


def test_mixed_example_merges_systems_of_different_sizes(example_tree: Path) -> None:
    """nopbc/mixed's data really pads: its 'mixed:4' batches hold frames of 24 and 18 atoms."""
    from mtbench.data.dataset import TaskDataset

    given, base_dir = load_spec(example_tree / "nopbc" / "mixed" / "input.json")
    assert given["training"]["training_data"]["batch_size"] == "mixed:4"
    data = TaskDataset(_training_paths(given, base_dir), given["model"]["type_map"], [],
                       batch_size="mixed:4")
    assert sorted(data.natoms) == [18, 24]
    rng = np.random.default_rng(0)
    sizes = [set(data.get_batch(rng)["real_natoms"].tolist()) for _ in range(20)]
    assert any(len(s) == 2 for s in sizes)
