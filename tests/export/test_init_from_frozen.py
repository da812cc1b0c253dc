"""``training.init_frz_model``: spec autocompletion, the initial model, and trainings that start from frozen models."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mtbench.errors import SpecError
from mtbench.export.init_from_frozen import autocomplete_spec, initial_model
from mtbench.export.load import load_model, save_mtbench_model
from mtbench.model.multitask import MultiTaskModel
from mtbench.train.run import prepare_spec
from mtbench.spec.io import load_spec, write_spec
from mtbench.spec.normalize import normalize_spec
from tests.export._models import randomized
from tests.export.conftest import DESCRIPTOR, DIPOLE, ENER, ENER_LOSS, TENSOR_LOSS, base_spec, data_entry

NEW_ENER = {"type": "ener", "neuron": [16, 16], "precision": "float64", "seed": 5}


@pytest.fixture(scope="module")
def frozen_file(dft_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen mtbench model (heads water_tip3p, water_dipole) with the normalised spec that built it."""
    spec = normalize_spec(base_spec(dft_data))
    model = MultiTaskModel.from_config(["O", "H"], spec["model"]["descriptor"], spec["model"]["fitting_net_dict"],
                                       seed=1)
    return save_mtbench_model(tmp_path_factory.mktemp("frozen") / "model.h5", randomized(model, 1), spec=spec)


@pytest.fixture(scope="module")
def deepmd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model built and written by DeePMD-kit itself (its NumPy reference), one energy head."""
    pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (the oracle) is a test extra")
    from deepmd.dpmodel.model.model import get_model
    from deepmd.dpmodel.utils.serialization import save_dp_model

    cfg = {"type_map": ["O", "H"], "descriptor": {k: v for k, v in DESCRIPTOR.items()},
           "fitting_net": {"neuron": [16, 16], "seed": 3}}
    data = get_model(copy.deepcopy(cfg)).serialize()
    data["@variables"]["out_bias"] = np.array([[[-1.5], [-0.4]]])
    path = tmp_path_factory.mktemp("deepmd") / "water.dp"
    save_dp_model(str(path), {"model": data, "model_def_script": cfg, "backend": "DP"})
    return path


def init_spec(root: Path, frozen: Path, **fittings: Any) -> dict[str, Any]:
    """descriptor {}, the given heads ({} = inherit), data and loss for the heads named water_dft*."""
    fittings = fittings or {"water_tip3p": {}, "water_dipole": {}, "water_dft": dict(NEW_ENER)}
    new = [t for t in fittings if t.startswith("water_dft")]
    return {"model": {"descriptor": {}, "fitting_net_dict": fittings},
            "loss_dict": {t: dict(ENER_LOSS) for t in new},
            "training": {"numb_steps": 2, "disp_freq": 1, "save_freq": 2, "seed": 7, "init_frz_model": str(frozen),
                         "data_dict": {t: data_entry(root, "water_dft") for t in new}}}


# ------------------------------------------------------------------------------------------ autocomplete


def test_autocomplete_inherits_descriptor_heads_and_their_entries(dft_data: Path, frozen_file: Path) -> None:
    spec = init_spec(dft_data, frozen_file)
    spec["training"]["init_frz_model"] = frozen_file.name  # relative to base_dir
    out = autocomplete_spec(spec, frozen_file.name, frozen_file.parent)
    frozen_spec = load_model(frozen_file).spec
    assert out["training"]["init_frz_model"] == str(frozen_file.resolve())
    assert out["model"]["type_map"] == ["O", "H"]
    desc = out["model"]["descriptor"]
    assert {k: desc[k] for k in ("type", "sel", "rcut", "neuron", "axis_neuron", "seed")} == \
        {k: DESCRIPTOR[k] for k in ("type", "sel", "rcut", "neuron", "axis_neuron", "seed")}
    fits = out["model"]["fitting_net_dict"]
    assert list(fits) == ["water_tip3p", "water_dipole", "water_dft"]
    assert fits["water_tip3p"]["neuron"] == ENER["neuron"] and fits["water_dipole"]["sel_type"] == [0]
    assert fits["water_dft"] == NEW_ENER
    for task in ("water_tip3p", "water_dipole"):  # inherited entries are the frozen spec's
        assert out["loss_dict"][task] == frozen_spec["loss_dict"][task]
        assert out["training"]["data_dict"][task] == frozen_spec["training"]["data_dict"][task]
    assert out["training"]["fitting_weight"] == {"water_tip3p": 2.0, "water_dipole": 1.0, "water_dft": 1.0}
    assert spec["model"]["descriptor"] == {}  # the caller's spec is left alone


def test_autocompleted_spec_round_trips(dft_data: Path, frozen_file: Path, tmp_path: Path) -> None:
    first = prepare_spec(init_spec(dft_data, frozen_file), None)
    path = write_spec(first, tmp_path / "input.json")
    again, base = load_spec(path)
    assert again == json.loads(json.dumps(first))
    assert prepare_spec(again, base) == first  # completing an explicit spec changes nothing


def test_free_settings_may_differ(dft_data: Path, frozen_file: Path) -> None:
    spec = init_spec(dft_data, frozen_file)
    spec["model"]["descriptor"] = {"rcut": 3.5, "trainable": False, "seed": 99}
    spec["model"]["fitting_net_dict"]["water_tip3p"] = {"neuron": [16, 16], "trainable": False}
    out = autocomplete_spec(spec, str(frozen_file), None)
    assert out["model"]["descriptor"]["trainable"] is False and out["model"]["descriptor"]["seed"] == 99
    model, new = initial_model(prepare_spec(out, None), str(frozen_file))
    assert new == {"water_dft"}
    assert model.descriptor.trainable_variables == ()
    assert model.heads["water_tip3p"].trainable_variables == ()
    assert model.heads["water_dft"].trainable_variables


def _set(path: str, value: Any):
    def edit(spec: dict) -> None:
        node = spec
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        if value is _DELETE:
            node.pop(last)
        else:
            node[last] = value
    return edit


_DELETE = object()

ERRORS = [
    ("descriptor rcut", _set("model.descriptor", {"rcut": 4.0}), "model.descriptor.rcut",
     ["4.0", "3.5"]),
    ("descriptor type", _set("model.descriptor", {"type": "se_e2_r"}), "model.descriptor.type",
     ["se_e2_r", "se_e2_a"]),
    ("type map", _set("model.type_map", ["H", "O"]), "model.type_map", ["['H', 'O']", "['O', 'H']"]),
    ("new head without data", _set("training.data_dict", {}), "training.data_dict.water_dft", ["new head"]),
    ("new head without loss", _set("loss_dict", {}), "loss_dict.water_dft", ["new head"]),
    ("{} of an unknown head", _set("model.fitting_net_dict.water_ccsdt", {}), "model.fitting_net_dict.water_ccsdt",
     ["no head 'water_ccsdt'", "water_tip3p, water_dipole"]),
    ("inherited head conflicts", _set("model.fitting_net_dict.water_tip3p", {"neuron": [32, 32]}),
     "model.fitting_net_dict.water_tip3p.neuron", ["[32, 32]", "[16, 16]"]),
    ("missing frozen model", _set("training.init_frz_model", "/no/such/model.h5"), "training.init_frz_model",
     ["not found"]),
]


@pytest.mark.parametrize(("name", "edit", "key", "words"), ERRORS, ids=[e[0] for e in ERRORS])
def test_autocomplete_errors(dft_data: Path, frozen_file: Path, name: str, edit, key: str,
                             words: list[str]) -> None:
    spec = init_spec(dft_data, frozen_file)
    edit(spec)
    with pytest.raises(SpecError) as err:
        autocomplete_spec(spec, spec["training"]["init_frz_model"], None)
    assert err.value.key == key
    assert all(w in str(err.value) for w in words), str(err.value)
    assert "\n" not in str(err.value)


def test_explicit_spec_that_conflicts_fails_in_initial_model_too(dft_data: Path, frozen_file: Path) -> None:
    spec = prepare_spec(init_spec(dft_data, frozen_file), None)
    spec["model"]["descriptor"]["rcut"] = 4.0
    with pytest.raises(SpecError, match="model.descriptor.rcut: 4.0 conflicts with 3.5"):
        initial_model(spec, str(frozen_file))


# ------------------------------------------------------------------------------------- initial model


def _values(module) -> list[np.ndarray]:
    return [v.numpy() for v in module.variables]


def test_initial_model_inherits_exact_weights_and_statistics(dft_data: Path, frozen_file: Path) -> None:
    frozen = load_model(frozen_file).model
    model, new = initial_model(prepare_spec(init_spec(dft_data, frozen_file), None), str(frozen_file))
    assert new == {"water_dft"} and list(model.heads) == ["water_tip3p", "water_dipole", "water_dft"]
    for a, b in zip(_values(model.descriptor), _values(frozen.descriptor), strict=True):
        np.testing.assert_array_equal(a, b)  # weights and davg/dstd
    for task in ("water_tip3p", "water_dipole"):
        for a, b in zip(_values(model.heads[task]), _values(frozen.heads[task]), strict=True):
            np.testing.assert_array_equal(a, b)  # weights, bias_atom_e, out_bias, out_std
    assert not np.any(model.heads["water_dft"].out_bias.numpy())  # fitted by the trainer, from its own data


def test_new_head_shares_layers_with_an_inherited_head(dft_data: Path, tmp_path: Path) -> None:
    shared = {"type": "ener", "neuron": [8, 8, 8], "layer_name": ["l0", None, "l2", None], "precision": "float64"}
    spec = base_spec(dft_data)
    spec["model"]["fitting_net_dict"] = {"water_tip3p": dict(shared, seed=1)}
    spec["loss_dict"] = {"water_tip3p": dict(ENER_LOSS)}
    spec["training"]["data_dict"] = {"water_tip3p": data_entry(dft_data, "water_tip3p")}
    spec["training"].pop("fitting_weight")
    spec = normalize_spec(spec)
    model = MultiTaskModel.from_config(["O", "H"], spec["model"]["descriptor"], spec["model"]["fitting_net_dict"],
                                       seed=1)
    frozen_path = save_mtbench_model(tmp_path / "shared.h5", randomized(model, 2), spec=spec)
    init = init_spec(dft_data, frozen_path, water_tip3p={}, water_dft=dict(shared, seed=9))
    start, new = initial_model(prepare_spec(init, None), str(frozen_path))
    assert new == {"water_dft"}
    old, fresh = start.heads["water_tip3p"].fitting, start.heads["water_dft"].fitting
    frozen_fit = load_model(frozen_path).model.heads["water_tip3p"].fitting
    for t in range(2):
        lo, lf = old.nets.get(t).layers, fresh.nets.get(t).layers
        assert lo[0].w is lf[0].w and lo[2].w is lf[2].w  # one variable per shared layer
        assert lo[1].w is not lf[1].w
        np.testing.assert_array_equal(lf[0].w.numpy(), frozen_fit.nets.get(t).layers[0].w.numpy())


# --------------------------------------------------------------------------------------------- DeePMD


def test_deepmd_head_goes_to_the_empty_entry(dft_data: Path, deepmd_file: Path) -> None:
    spec = init_spec(dft_data, deepmd_file, water_dft={}, water_dipole=dict(DIPOLE))
    spec["loss_dict"]["water_dipole"] = dict(TENSOR_LOSS)
    spec["training"]["data_dict"]["water_dipole"] = data_entry(dft_data, "water_dipole")
    out = prepare_spec(spec, None)
    assert out["model"]["descriptor"]["sel"] == DESCRIPTOR["sel"]
    assert out["model"]["fitting_net_dict"]["water_dft"]["neuron"] == [16, 16]
    model, new = initial_model(out, str(deepmd_file))
    assert new == {"water_dipole"}
    ref = load_model(deepmd_file).model
    assert list(ref.heads) == [deepmd_file.stem]  # DeePMD-kit records no head name: the file stem
    for a, b in zip(_values(model.heads["water_dft"]), _values(ref.heads[deepmd_file.stem]), strict=True):
        np.testing.assert_array_equal(a, b)


DEEPMD_ERRORS = [
    ("two {}", {"water_dft": {}, "water_dft2": {}}, None, "model.fitting_net_dict",
     ["one head", "water_dft, water_dft2"]),
    ("no data for the .dp head", {"water_dft": {}}, "data", "training.data_dict.water_dft", ["carries no"]),
    ("no loss for the .dp head", {"water_dft": {}}, "loss", "loss_dict.water_dft", ["carries no"]),
    ("same architecture first", {"water_dft2": dict(NEW_ENER, neuron=[16, 16]), "water_dft": {}}, None,
     "model.fitting_net_dict.water_dft2", ["list 'water_dft' first"]),
]


@pytest.mark.parametrize(("name", "fittings", "drop", "key", "words"), DEEPMD_ERRORS,
                         ids=[e[0] for e in DEEPMD_ERRORS])
def test_deepmd_errors(dft_data: Path, deepmd_file: Path, name: str, fittings: dict, drop: str | None, key: str,
                       words: list[str]) -> None:
    spec = init_spec(dft_data, deepmd_file, **copy.deepcopy(fittings))
    if drop == "data":
        spec["training"]["data_dict"] = {}
    if drop == "loss":
        spec["loss_dict"] = {}
    with pytest.raises(SpecError) as err:
        autocomplete_spec(spec, str(deepmd_file), None)
    assert err.value.key == key
    assert all(w in str(err.value) for w in words), str(err.value)


# ---------------------------------------------------------------------------------------------- routes


def test_hydra_route(tmp_path: Path) -> None:
    """``~descriptor training.init_frz_model=...``: the composed heads inherit, a new head is added."""
    from mtbench.spec.compose import cfg_to_spec, compose_config

    spec = normalize_spec(cfg_to_spec(compose_config(["debug=default"])))
    desc = dict(spec["model"]["descriptor"], rcut=4.0, sel=[16, 32])  # not the conf's
    model = MultiTaskModel.from_config(["O", "H"], desc, spec["model"]["fitting_net_dict"], seed=1)
    frozen = save_mtbench_model(tmp_path / "frozen.h5", randomized(model), spec=spec)
    new_head = ["+fitting_net@model.fitting_net_dict.water_tip4p=ener", "+loss@loss_dict.water_tip4p=ener",
                "+data@training.data_dict.water_tip4p=water_tip4p", "+training.fitting_weight.water_tip4p=10"]
    out = prepare_spec(cfg_to_spec(compose_config(["debug=default", "~descriptor", *new_head,
                                                   f"training.init_frz_model={frozen}"])), tmp_path)
    assert out["model"]["descriptor"]["rcut"] == 4.0 and out["model"]["descriptor"]["sel"] == [16, 32]
    start, new = initial_model(out, out["training"]["init_frz_model"])
    assert new == {"water_tip4p"} and set(start.heads) == {"water_ener", "water_dipole", "water_tip4p"}
    with pytest.raises(SpecError, match=r"model.descriptor.sel: \[20, 40\] conflicts with \[16, 32\] .*"
                                        r"rcut also differs \(4.5 vs 4.0\)"):
        prepare_spec(cfg_to_spec(compose_config(["debug=default", f"training.init_frz_model={frozen}"])), tmp_path)


@pytest.mark.slow
def test_train_from_a_deepmd_model_with_a_new_dipole_head(dft_data: Path, deepmd_file: Path, tmp_path: Path) -> None:
    """The input.json route (``python -m mtbench.train input.json --init-frz-model water.dp``), 2 steps."""
    from mtbench.cli.train import main

    spec = init_spec(dft_data, deepmd_file, water_dft={}, water_dipole=dict(DIPOLE))
    spec["loss_dict"]["water_dipole"] = dict(TENSOR_LOSS)
    spec["training"]["data_dict"]["water_dipole"] = data_entry(dft_data, "water_dipole")
    del spec["training"]["init_frz_model"]
    write_spec(spec, tmp_path / "input.json")
    run_dir = tmp_path / "run"
    summary = main([str(tmp_path / "input.json"), "--init-frz-model", str(deepmd_file), "-o", str(run_dir),
                    "--tracking", "none", "--no-progress"])
    assert summary["steps"] == 2
    written = json.loads((run_dir / "input.json").read_text())
    assert written["training"]["init_frz_model"] == str(deepmd_file.resolve())
    assert written["model"]["descriptor"]["sel"] == DESCRIPTOR["sel"]
    for task in ("water_dft", "water_dipole"):
        assert np.isfinite(summary["final"][task]["val"]["rmse"])
    # step 0 is the DeePMD-kit model itself: its validation error is the one DeePMD-kit's own evaluation gives
    from deepmd.infer.deep_pot import DeepPot

    header, step0 = (run_dir / "lcurve.water_dft.out").read_text().splitlines()[:2]
    logged = dict(zip(header.lstrip("#").split(), step0.split()))
    val = dft_data / "water_dft" / "val" / "sys_000"
    coord, box = np.load(val / "set.000" / "coord.npy"), np.load(val / "set.000" / "box.npy")
    atype = np.loadtxt(val / "type.raw", dtype=int)
    energy, *_ = DeepPot(str(deepmd_file)).eval(coord, box, atype)
    want = np.sqrt(np.mean((energy.ravel() - np.load(val / "set.000" / "energy.npy")) ** 2)) / len(atype)
    assert logged["step"] == "0"
    assert float(logged["rmse_e_val"]) == pytest.approx(want, rel=6e-3)  # lcurve keeps 3 digits


def _step0_rmse_e(spec: dict, base: Path, task: str, zero_bias: bool = False) -> float:
    from mtbench.train.trainer import Trainer

    trainer = Trainer(spec, base / "run", progress=False)
    if zero_bias:
        trainer.model.heads[task].out_bias.assign(np.zeros_like(trainer.model.heads[task].out_bias.numpy()))
    return trainer.validate(trainer.runtime[task])["rmse_e"]


@pytest.mark.slow
def test_new_head_gets_a_fitted_energy_bias(dft_data: Path, united: Path, tmp_path: Path) -> None:
    """The new head's first validation energy error: like a fresh model's, far below the unfitted one."""
    init = prepare_spec(init_spec(dft_data, united), None)
    frozen = load_model(united).model
    start, _ = initial_model(init, str(united))
    for a, b in zip(_values(start.heads["water_tip3p"]), _values(frozen.heads["water_tip3p"]), strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = copy.deepcopy(init)
    fresh["training"]["init_frz_model"] = None
    with_bias = _step0_rmse_e(init, tmp_path / "a", "water_dft")
    without = _step0_rmse_e(init, tmp_path / "b", "water_dft", zero_bias=True)
    from_scratch = _step0_rmse_e(fresh, tmp_path / "c", "water_dft")
    figures = f"fitted bias {with_bias:.4g}, no bias {without:.4g}, fresh model {from_scratch:.4g} eV/atom"
    assert with_bias <= 2 * from_scratch, figures
    assert with_bias < 0.01 * without, figures
