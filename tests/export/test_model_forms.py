"""Every form ``freeze`` writes is accepted by every command that takes a model (issue 13, item 1): the test
command, freeze itself, the ASE calculator and ``training.init_frz_model``, with the same numbers from each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mtbench.errors import DataError
from mtbench.export.freeze import freeze
from mtbench.export.load import load_model
from mtbench.rundir import Kind, locate
from tests.export.conftest import base_spec

HEAD = "water_tip3p"
# form -> (kind locate() must report, heads the form holds)
FORMS = {"run": (Kind.RUN, 2), "checkpoint": (Kind.CHECKPOINT, 2), "united": (Kind.UNITED, 2),
         "frozen_heads": (Kind.FROZEN_HEADS, 2), "frozen_dp_heads": (Kind.FROZEN_HEADS, 2),
         "one_head_savedmodel": (Kind.SAVEDMODEL, 1), "dp": (Kind.DP, 1)}


@pytest.fixture(scope="module")
def forms(two_head_run: Path, united: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forms")
    freeze(two_head_run, root / "frozen", log_to_mlflow=False)  # the default: one SavedModel per head + manifest
    freeze(two_head_run, root / "frozen_dp", fmt="dp", log_to_mlflow=False)
    freeze(two_head_run, root / f"{HEAD}.dp", head=HEAD, log_to_mlflow=False)
    ckpt = locate(two_head_run).checkpoint
    return {"run": two_head_run, "checkpoint": ckpt, "united": united, "frozen_heads": root / "frozen",
            "frozen_dp_heads": root / "frozen_dp", "one_head_savedmodel": root / "frozen" / HEAD,
            "dp": root / f"{HEAD}.dp"}


def atoms_of(root: Path) -> Atoms:
    path = root / HEAD / "val" / "sys_000" / "set.000"
    coord = np.load(path / "coord.npy")[0].reshape(-1, 3)
    return Atoms("OH2" * (len(coord) // 3), positions=coord, cell=np.load(path / "box.npy")[0].reshape(3, 3),
                 pbc=True)


@pytest.fixture(scope="module")
def reference(forms: dict[str, Path], dft_data: Path) -> float:
    from mtbench.inference.calculator import MTBenchCalculator

    atoms = atoms_of(dft_data)
    atoms.calc = MTBenchCalculator(forms["run"], head=HEAD)
    return atoms.get_potential_energy()


@pytest.mark.parametrize("form", list(FORMS))
def test_locate_and_load(forms: dict[str, Path], form: str) -> None:
    kind, nheads = FORMS[form]
    assert locate(forms[form]).kind is kind
    loaded = load_model(forms[form], deepmd_head=HEAD)
    assert len(loaded.model.heads) == nheads and HEAD in loaded.model.heads


@pytest.mark.parametrize("form", list(FORMS))
def test_calculator(forms: dict[str, Path], dft_data: Path, reference: float, form: str) -> None:
    from mtbench.inference.calculator import MTBenchCalculator

    atoms = atoms_of(dft_data)
    atoms.calc = MTBenchCalculator(forms[form], head=HEAD) if form != "dp" else MTBenchCalculator(forms[form])
    assert atoms.get_potential_energy() == pytest.approx(reference, rel=1e-12)


@pytest.mark.parametrize("form", list(FORMS))
def test_test_command(forms: dict[str, Path], dft_data: Path, form: str, tmp_path: Path) -> None:
    from mtbench.cli.test import main

    system = str(dft_data / HEAD / "val" / "sys_000")
    head = [] if FORMS[form][1] == 1 else ["--head", HEAD]
    report = main(["-m", str(forms[form]), "-s", system, *head, "--no-plots", "--json", str(tmp_path / "t.json")])
    (name, res), = report["heads"].items()
    ref = main(["-m", str(forms["run"]), "-s", system, "--head", HEAD, "--no-plots"])["heads"][HEAD]
    assert name in (HEAD, "default")
    assert res["metrics"]["rmse_ea"] == pytest.approx(ref["metrics"]["rmse_ea"], rel=1e-10)
    assert res["metrics"]["rmse_f"] == pytest.approx(ref["metrics"]["rmse_f"], rel=1e-10)


@pytest.mark.parametrize("form", list(FORMS))
def test_freeze_again(forms: dict[str, Path], form: str, tmp_path: Path) -> None:
    head = None if FORMS[form][1] == 1 else HEAD
    out = freeze(forms[form], tmp_path / "again.dp", head=head, log_to_mlflow=False)
    assert out.outputs == [tmp_path / "again.dp"] and locate(out.outputs[0]).kind is Kind.DP


@pytest.mark.parametrize("form", list(FORMS))
def test_init_frz_model(forms: dict[str, Path], dft_data: Path, form: str) -> None:
    """The spec completes from every form: inherited heads keep their fitting nets and the descriptor."""
    from mtbench.export.init_from_frozen import autocomplete_spec

    spec = base_spec(dft_data)
    if FORMS[form][1] == 1:  # a one-head model starts the one head
        for section in (spec["model"]["fitting_net_dict"], spec["loss_dict"], spec["training"]["data_dict"],
                        spec["training"]["fitting_weight"]):
            section.pop("water_dipole")
    spec["model"]["descriptor"] = {}
    spec["model"]["fitting_net_dict"] = {t: {} for t in spec["model"]["fitting_net_dict"]}
    spec["training"]["init_frz_model"] = str(forms[form])
    done = autocomplete_spec(spec, str(forms[form]), None)
    assert done["model"]["descriptor"]["type"] == "se_e2_a"
    assert done["model"]["fitting_net_dict"][HEAD]["neuron"] == [16, 16]


def test_frozen_heads_head_choice(forms: dict[str, Path]) -> None:
    one = load_model(forms["frozen_heads"], head=HEAD)
    assert list(one.model.heads) == [HEAD]
    with pytest.raises(DataError, match=r"no head 'nope' here \(heads: water_tip3p, water_dipole\)"):
        load_model(forms["frozen_heads"], head="nope")
    merged = load_model(forms["frozen_heads"])
    assert set(merged.spec["model"]["fitting_net_dict"]) == {HEAD, "water_dipole"}
    assert merged.meta["step"] == json.loads((forms["frozen_heads"] / "manifest.json").read_text())["step"]


def test_frozen_heads_of_different_models_need_a_head(forms: dict[str, Path], dft_data: Path,
                                                      tmp_path: Path) -> None:
    """A folder whose heads do not share a descriptor cannot be one model: the error lists the heads."""
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(forms["frozen_heads"], folder)
    other = load_model(forms["run"]).model
    desc = other.descriptor.variables[0]
    desc.assign(desc + 1.0)
    from mtbench.export.savedmodel import save_savedmodel

    save_savedmodel(folder / "water_dipole", other, ["water_dipole"])
    with pytest.raises(DataError, match=r"frozen from different models.*heads: water_tip3p, water_dipole"):
        load_model(folder)
    assert list(load_model(folder, head=HEAD).model.heads) == [HEAD]


def test_train_from_default_freeze_output(forms: dict[str, Path], tmp_path: Path) -> None:
    """The README line: ``mtbench.train input.json --init-frz-model frozen/`` trains."""
    from mtbench.cli.train import main
    from mtbench.spec.io import write_spec

    spec = base_spec(_data_root(forms))
    spec["model"]["descriptor"] = {}
    spec["model"]["fitting_net_dict"] = {t: {} for t in spec["model"]["fitting_net_dict"]}
    inp = write_spec(spec, tmp_path / "input.json")
    summary = main([str(inp), "--init-frz-model", str(forms["frozen_heads"]), "-o", str(tmp_path / "run"),
                    "--tracking", "none", "--no-progress"])
    assert summary["steps"] == 2 and set(summary["final"]) == {HEAD, "water_dipole"}


def _data_root(forms: dict[str, Path]) -> Path:
    spec = json.loads((Path(forms["run"]) / "input.json").read_text())
    system = spec["training"]["data_dict"][HEAD]["training_data"]["systems"][0]
    return Path(system).parents[2]
