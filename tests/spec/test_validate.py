"""validate_spec: every error names its key path in one line; warnings for untrained tasks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from mtbench.errors import SpecError
from mtbench.spec.tasks import task_probabilities
from mtbench.spec.validate import validate_spec


def base_multi() -> dict:
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {"type": "se_e2_a", "sel": [20, 40], "rcut": 4.5, "rcut_smth": 0.5,
                           "neuron": [8, 16, 32], "axis_neuron": 8},
            "fitting_net_dict": {
                "water_ener": {"neuron": [32, 32, 32]},
                "water_dipole": {"type": "dipole", "sel_type": [0], "neuron": [16, 16]},
            },
        },
        "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 100},
        "loss_dict": {
            "water_ener": {"type": "ener"},
            "water_dipole": {"type": "tensor", "pref": 1.0, "pref_atomic": 1.0},
        },
        "training": {
            "data_dict": {
                "water_ener": {"training_data": {"systems": ["builtin:water_tip3p/train"]},
                               "validation_data": {"systems": ["builtin:water_tip3p/val"], "numb_btch": 1}},
                "water_dipole": {"training_data": {"systems": ["builtin:water_dipole/train"]}},
            },
            "fitting_weight": {"water_ener": 2, "water_dipole": 1},
            "numb_steps": 100,
        },
    }


def base_single() -> dict:
    spec = base_multi()
    model = spec["model"]
    model["fitting_net"] = model.pop("fitting_net_dict")["water_ener"]
    spec["loss"] = spec.pop("loss_dict")["water_ener"]
    train = spec["training"]
    data = train.pop("data_dict")["water_ener"]
    train.pop("fitting_weight")
    train.update(data)
    return spec


def test_bases_are_valid():
    assert validate_spec(base_multi()) == []
    assert validate_spec(base_single()) == []


def _set(path: str, value) -> Callable[[dict], None]:
    def edit(spec: dict) -> None:
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node[p]
        node[last] = value
    return edit


def _del(path: str) -> Callable[[dict], None]:
    def edit(spec: dict) -> None:
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node[p]
        del node[last]
    return edit


MULTI_ERRORS = [
    # mixing single- and multi-task keys
    ("mix fitting_net", _set("model.fitting_net", {}), "model.fitting_net", "single-task key mixed with multi-task"),
    ("mix loss", _set("loss", {}), "loss", "single-task key mixed"),
    ("mix training_data", _set("training.training_data", {"systems": "x"}), "training.training_data",
     "single-task key mixed"),
    ("mix task_name", _set("training.task_name", "a"), "training.task_name", "single-task key mixed"),
    # task keys that differ between the dicts
    ("loss_dict lacks", _del("loss_dict.water_dipole"), "loss_dict", "loss_dict lacks task(s) 'water_dipole'"),
    ("loss_dict extra", _set("loss_dict.water_polar", {}), "loss_dict.water_polar",
     "loss_dict has task 'water_polar' that model.fitting_net_dict lacks"),
    ("data_dict lacks", _del("training.data_dict.water_ener"), "training.data_dict",
     "training.data_dict lacks task(s) 'water_ener'"),
    ("data_dict extra", _set("training.data_dict.water_polar", {"training_data": {"systems": "x"}}),
     "training.data_dict.water_polar", "training.data_dict has task 'water_polar'"),
    ("no data_dict", _del("training.data_dict"), "training.data_dict", "required key is missing in multi-task"),
    ("weight unknown task", _set("training.fitting_weight.water_polar", 1), "training.fitting_weight.water_polar",
     "no task 'water_polar'"),
    # fitting weights
    ("negative weight", _set("training.fitting_weight.water_dipole", -1), "training.fitting_weight.water_dipole",
     "must be >= 0"),
    ("string weight", _set("training.fitting_weight.water_dipole", "ten"), "training.fitting_weight.water_dipole",
     "must be a number"),
    ("bool weight", _set("training.fitting_weight.water_dipole", True), "training.fitting_weight.water_dipole",
     "must be a number"),
    ("all zero", _set("training.fitting_weight", {"water_ener": 0, "water_dipole": 0.0}), "training.fitting_weight",
     "every task has weight 0"),
    ("weights not a dict", _set("training.fitting_weight", [1, 2]), "training.fitting_weight", "must be a mapping"),
    # types
    ("unknown descriptor", _set("model.descriptor.type", "se_e2_aa"), "model.descriptor.type",
     "unknown descriptor type 'se_e2_aa'; did you mean 'se_e2_a'? known: se_e2_a (se_a), se_e2_r (se_r)"),
    ("unknown fitting", _set("model.fitting_net_dict.water_dipole.type", "dos"),
     "model.fitting_net_dict.water_dipole.type", "unknown fitting net type 'dos'; known: ener, dipole, polar"),
    ("unknown loss", _set("loss_dict.water_ener.type", "ener_spin"), "loss_dict.water_ener.type",
     "unknown loss type 'ener_spin'"),
    ("loss vs fitting", _set("loss_dict.water_dipole", {"type": "ener"}), "loss_dict.water_dipole.type",
     "a 'ener' loss does not fit the 'dipole' fitting of model.fitting_net_dict.water_dipole; use 'tensor'"),
    ("tensor loss on ener", _set("loss_dict.water_ener", {"type": "tensor", "pref": 1, "pref_atomic": 1}),
     "loss_dict.water_ener.type", "does not fit the 'ener' fitting"),
    ("tensor prefs zero", _set("loss_dict.water_dipole", {"type": "tensor", "pref": 0, "pref_atomic": 0.0}),
     "loss_dict.water_dipole", "pref and pref_atomic are both 0"),
    ("negative pref", _set("loss_dict.water_dipole.pref", -1), "loss_dict.water_dipole.pref", "must be >= 0"),
    ("ener prefs zero", _set("loss_dict.water_ener", {"start_pref_e": 0, "limit_pref_e": 0, "start_pref_f": 0,
                                                      "limit_pref_f": 0}),
     "loss_dict.water_ener", "every start_pref_*/limit_pref_* is 0"),
    # rotation matrix
    ("hybrid dipole", _set("model.descriptor", {"type": "hybrid", "list": [
        {"type": "se_e2_a", "sel": [20, 40], "rcut": 4.5, "neuron": [8, 16], "axis_neuron": 4},
        {"type": "se_e2_r", "sel": [20, 40], "rcut": 4.5, "neuron": [8, 16]}]}),
     "model.fitting_net_dict.water_dipole.type", "a hybrid with 'se_e2_r', which has none"),
    ("se_e2_r dipole", _set("model.descriptor", {"type": "se_e2_r", "sel": [20, 40], "rcut": 4.5, "neuron": [8]}),
     "model.fitting_net_dict.water_dipole.type", "model.descriptor.type 'se_e2_r' has none"),
    ("nested hybrid", _set("model.descriptor", {"type": "hybrid", "list": [{"type": "hybrid", "list": []}]}),
     "model.descriptor.list[0].type", "cannot be nested"),
    # numbers
    ("rcut <= rcut_smth", _set("model.descriptor.rcut_smth", 4.5), "model.descriptor.rcut",
     "rcut (4.5) must be larger than rcut_smth (4.5)"),
    ("negative rcut", _set("model.descriptor.rcut", -1.0), "model.descriptor.rcut", "must be > 0"),
    ("negative sel", _set("model.descriptor.sel", [20, -4]), "model.descriptor.sel[1]", "must be >= 0, got -4"),
    ("sel length", _set("model.descriptor.sel", [20]), "model.descriptor.sel", "needs one entry per type"),
    ("sel all zero", _set("model.descriptor.sel", [0, 0]), "model.descriptor.sel", "all neighbour slots are 0"),
    ("sel bad string", _set("model.descriptor.sel", "many"), "model.descriptor.sel", "'auto'"),
    ("sel int for se_e2_a", _set("model.descriptor.sel", 60), "model.descriptor.sel", "one int per type"),
    ("axis_neuron too big", _set("model.descriptor.axis_neuron", 64), "model.descriptor.axis_neuron",
     "must be between 1 and neuron[-1] (32)"),
    ("zero width", _set("model.descriptor.neuron", [8, 0]), "model.descriptor.neuron[1]", "layer widths"),
    ("empty neuron", _set("model.descriptor.neuron", []), "model.descriptor.neuron", "at least one layer"),
    ("activation", _set("model.descriptor.activation_function", "swish"), "model.descriptor.activation_function",
     "unknown activation 'swish'"),
    ("precision", _set("model.fitting_net_dict.water_ener.precision", "float16"),
     "model.fitting_net_dict.water_ener.precision", "unsupported precision"),
    ("exclude_types", _set("model.descriptor.exclude_types", [[0, 2]]), "model.descriptor.exclude_types[0]",
     "pair of type indices"),
    ("numb_steps 0", _set("training.numb_steps", 0), "training.numb_steps", "must be >= 1, got 0"),
    ("numb_steps float", _set("training.numb_steps", 10.5), "training.numb_steps", "expected int"),
    ("disp_freq 0", _set("training.disp_freq", 0), "training.disp_freq", "must be >= 1"),
    ("save_freq -1", _set("training.save_freq", -1), "training.save_freq", "must be >= 1"),
    ("start_lr 0", _set("learning_rate.start_lr", 0.0), "learning_rate.start_lr", "must be > 0"),
    ("stop_lr -1", _set("learning_rate.stop_lr", -1e-5), "learning_rate.stop_lr", "must be > 0"),
    ("decay_steps 0", _set("learning_rate.decay_steps", 0), "learning_rate.decay_steps", "must be >= 1"),
    ("decay_rate 2", _set("learning_rate.decay_rate", 2.0), "learning_rate.decay_rate", "must be in (0, 1]"),
    ("lr type", _set("learning_rate.type", "cosine"), "learning_rate.type", "unknown learning rate type 'cosine'"),
    ("lr_dict start_lr", _set("learning_rate_dict", {"water_dipole": {"start_lr": -1.0}}),
     "learning_rate_dict.water_dipole.start_lr", "must be > 0"),
    ("sel_type range", _set("model.fitting_net_dict.water_dipole.sel_type", [2]),
     "model.fitting_net_dict.water_dipole.sel_type[0]", "out of range of model.type_map (0..1)"),
    ("sel_type negative", _set("model.fitting_net_dict.water_dipole.sel_type", [-1]),
     "model.fitting_net_dict.water_dipole.sel_type[0]", "out of range"),
    ("sel_type repeat", _set("model.fitting_net_dict.water_dipole.sel_type", [0, 0]),
     "model.fitting_net_dict.water_dipole.sel_type", "repeats a type"),
    ("type_map duplicate", _set("model.type_map", ["O", "O"]), "model.type_map[1]", "duplicate type 'O'"),
    ("type_map empty", _set("model.type_map", []), "model.type_map", "needs at least one element name"),
    ("batch_size 0", _set("training.data_dict.water_ener.training_data.batch_size", 0),
     "training.data_dict.water_ener.training_data.batch_size", "ints >= 1"),
    ("batch_size str", _set("training.data_dict.water_ener.training_data.batch_size", "auto:x"),
     "training.data_dict.water_ener.training_data.batch_size", "'auto:N'"),
    ("numb_btch 0", _set("training.data_dict.water_ener.validation_data.numb_btch", 0),
     "training.data_dict.water_ener.validation_data.numb_btch", "must be >= 1"),
    ("sys_probs length", _set("training.data_dict.water_ener.training_data.sys_probs", [0.5, 0.5]),
     "training.data_dict.water_ener.training_data.sys_probs", "one entry per system (1)"),
    ("auto_prob", _set("training.data_dict.water_ener.training_data.auto_prob", "uniform"),
     "training.data_dict.water_ener.training_data.auto_prob", "prob_uniform"),
    ("unknown builtin", _set("training.data_dict.water_ener.training_data.systems", ["builtin:water_tip5p/train"]),
     "training.data_dict.water_ener.training_data.systems[0]", "unknown built-in data 'builtin:water_tip5p/train'"),
    ("missing system", _set("training.data_dict.water_dipole.training_data.systems", ["/no/such/dir"]),
     "training.data_dict.water_dipole.training_data.systems[0]", "data system '/no/such/dir' not found"),
    ("empty systems", _set("training.data_dict.water_dipole.training_data.systems", []),
     "training.data_dict.water_dipole.training_data.systems", "non-empty list"),
    # layer sharing
    ("layer_name length", _set("model.fitting_net_dict.water_ener.layer_name", ["a", None]),
     "model.fitting_net_dict.water_ener.layer_name", "needs len(neuron)+1 = 4 entries"),
    ("layer_name on dipole", _set("model.fitting_net_dict.water_dipole.layer_name", ["a", None, None]),
     "model.fitting_net_dict.water_dipole.layer_name", "unknown key"),
    # training keys
    ("restart and frozen", lambda s: s["training"].update(restart="a.ckpt", init_frz_model="b.pb"),
     "training.init_frz_model", "exclude each other"),
    ("frozen missing", _set("training.init_frz_model", "/no/such/model.pb"), "training.init_frz_model",
     "frozen model '/no/such/model.pb' not found"),
    ("restart missing", _set("training.restart", "/no/such/model.ckpt"), "training.restart", "checkpoint"),
    ("sampling type", _set("training.sampling", {"type": "annealing"}), "training.sampling.type",
     "unknown sampling 'annealing'; known: weights, temperature, epochs"),
    ("sampling temperature", _set("training.sampling", {"type": "temperature", "temperature": 0}),
     "training.sampling.temperature", "must be > 0"),
    ("sampling epochs", _set("training.sampling", {"type": "epochs"}), "training.sampling.epochs",
     "needs {task: number of epochs}"),
    ("sampling key", _set("training.sampling", {"tau": 1}), "training.sampling.tau", "unknown key"),
    ("bad task name", lambda s: [d.__setitem__("water ener", d.pop("water_ener")) for d in (
        s["model"]["fitting_net_dict"], s["loss_dict"], s["training"]["data_dict"], s["training"]["fitting_weight"])],
     "model.fitting_net_dict.water ener", "task names may hold"),
    ("spec not a dict", None, "spec", "must be a mapping"),
    ("no training", _del("training"), "training", "required key is missing"),
]


@pytest.mark.parametrize(("name", "edit", "key", "message"), MULTI_ERRORS, ids=[c[0] for c in MULTI_ERRORS])
def test_multi_task_errors(name, edit, key, message):
    spec = base_multi()
    if edit is None:
        spec = [spec]
    else:
        edit(spec)
    with pytest.raises(SpecError) as info:
        validate_spec(spec)
    err = info.value
    assert err.key == key, str(err)
    assert message in str(err), str(err)
    assert str(err).startswith(f"{key}: ")
    assert "\n" not in str(err)


SINGLE_ERRORS = [
    ("mix fitting_net_dict", _set("model.fitting_net_dict", {}), "model.fitting_net",
     "mixed with multi-task key(s) model.fitting_net_dict"),
    ("mix loss_dict", _set("loss_dict", {}), "model.fitting_net", "loss_dict"),
    ("mix data_dict", _set("training.data_dict", {}), "model.fitting_net", "training.data_dict"),
    ("mix fitting_weight", _set("training.fitting_weight", {"a": 1}), "model.fitting_net",
     "training.fitting_weight"),
    ("mix learning_rate_dict", _set("learning_rate_dict", {}), "model.fitting_net", "learning_rate_dict"),
    ("no fitting", _del("model.fitting_net"), "model.fitting_net", "required key is missing"),
    ("no training_data", _del("training.training_data"), "training.training_data", "required key is missing"),
    ("polar with hybrid", lambda s: s.update(
        model={"type_map": ["O", "H"],
               "descriptor": {"type": "hybrid", "list": [{"type": "se_e2_a", "sel": [4, 8], "rcut": 3.0},
                                                          {"type": "se_e3", "sel": [4, 8], "rcut": 3.0}]},
               "fitting_net": {"type": "polar"}},
        loss={"type": "tensor", "pref": 1, "pref_atomic": 1}),
     "model.fitting_net.type", "a hybrid with 'se_e3', which has none"),
    ("bad task_name", _set("training.task_name", "a/b"), "training.task_name", "not a valid task name"),
    ("val numb_btch", _set("training.validation_data.numb_btch", 0), "training.validation_data.numb_btch",
     "must be >= 1"),
    ("layer shape in one net", _set("model.fitting_net", {"neuron": [16, 32], "layer_name": ["a", "a", None]}),
     "model.fitting_net.layer_name[1]", "shared layers need equal shapes"),
]


@pytest.mark.parametrize(("name", "edit", "key", "message"), SINGLE_ERRORS, ids=[c[0] for c in SINGLE_ERRORS])
def test_single_task_errors(name, edit, key, message):
    spec = base_single()
    edit(spec)
    with pytest.raises(SpecError) as info:
        validate_spec(spec)
    assert info.value.key == key, str(info.value)
    assert message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_zero_weight_warns_never_trained():
    spec = base_multi()
    spec["training"]["fitting_weight"]["water_dipole"] = 0
    warnings = validate_spec(spec)
    assert len(warnings) == 1
    assert warnings[0].startswith("training.fitting_weight.water_dipole: weight 0")
    assert "'water_dipole' will never be trained" in warnings[0]
    assert task_probabilities(spec) == {"water_ener": 1.0, "water_dipole": 0.0}


def test_task_absent_from_fitting_weight_warns_never_trained():
    spec = base_multi()
    del spec["training"]["fitting_weight"]["water_dipole"]
    warnings = validate_spec(spec)
    assert len(warnings) == 1
    assert "task 'water_dipole' is absent, so it will never be trained" in warnings[0]
    assert "DeePMD-kit drops it silently" in warnings[0]
    assert task_probabilities(spec)["water_dipole"] == 0.0


def test_no_fitting_weight_means_equal_weights():
    spec = base_multi()
    del spec["training"]["fitting_weight"]
    assert validate_spec(spec) == []
    assert task_probabilities(spec) == {"water_ener": 0.5, "water_dipole": 0.5}


def test_stop_lr_above_start_lr_warns():
    spec = base_multi()
    spec["learning_rate"]["stop_lr"] = 1e-2
    assert any("learning_rate.stop_lr" in w and "grows" in w for w in validate_spec(spec))


def test_layer_sharing_shapes_across_heads():
    spec = base_multi()
    fits = spec["model"]["fitting_net_dict"]
    fits["water_ccsdt"] = {"neuron": [32, 32, 32], "layer_name": ["l0", None, "l2", None]}
    fits["water_ener"]["layer_name"] = ["l0", None, "l2", None]
    spec["loss_dict"]["water_ccsdt"] = {}
    spec["training"]["data_dict"]["water_ccsdt"] = {"training_data": {"systems": "builtin:water_tip4p/train"}}
    spec["training"]["fitting_weight"]["water_ccsdt"] = 1
    assert validate_spec(spec) == []
    fits["water_ccsdt"]["neuron"] = [32, 64, 32]
    with pytest.raises(SpecError) as info:
        validate_spec(spec)
    assert info.value.key == "model.fitting_net_dict.water_ccsdt.layer_name[2]"
    assert "layer 'l2' has shape (64 -> 32, float64) here but (32 -> 32, float64)" in str(info.value)
    fits["water_ccsdt"]["neuron"] = [32, 32, 32]
    fits["water_ccsdt"]["numb_fparam"] = 2
    with pytest.raises(SpecError, match=r"layer_name\[0\]: layer 'l0' .*fparam"):
        validate_spec(spec)


def test_relative_paths_resolve_against_base_dir(tmp_path: Path):
    system = tmp_path / "data" / "sys0"
    system.mkdir(parents=True)
    (system / "type.raw").write_text("0 1 1\n")
    spec = base_single()
    spec["training"]["training_data"]["systems"] = ["data/sys0"]
    spec["training"]["validation_data"] = {"systems": "data"}  # a root: searched for type.raw
    assert validate_spec(spec, base_dir=tmp_path) == []
    with pytest.raises(SpecError, match=r"training\.training_data\.systems\[0\]: data system 'data/sys0' not found"):
        validate_spec(spec, base_dir=tmp_path / "elsewhere")
    assert validate_spec(spec, base_dir=tmp_path / "elsewhere", check_paths=False) == []


def test_folder_without_any_system_is_an_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    spec = base_single()
    spec["training"]["training_data"]["systems"] = [str(tmp_path / "empty")]
    with pytest.raises(SpecError, match=r"training\.training_data\.systems\[0\]: no deepmd/npy system"):
        validate_spec(spec)
    spec["training"]["training_data"]["systems"] = str(tmp_path / "empty")
    with pytest.raises(SpecError, match=r"training\.training_data\.systems: no deepmd/npy system"):
        validate_spec(spec)


def test_restart_prefix_and_frozen_model_found(tmp_path: Path):
    (tmp_path / "model.ckpt.index").write_text("")
    (tmp_path / "frozen.pb").write_text("")
    spec = base_single()
    spec["training"]["restart"] = "model.ckpt"
    assert validate_spec(spec, base_dir=tmp_path) == []
    spec["training"]["restart"] = None
    spec["training"]["init_frz_model"] = "frozen.pb"
    assert validate_spec(spec, base_dir=tmp_path) == []


def test_validate_does_not_modify_its_input():
    spec = base_multi()
    before = copy.deepcopy(spec)
    validate_spec(spec)
    assert spec == before


# ------------------------------------------------------------------ DeePMD-kit's own examples


def _systems(root: Path, *names: str) -> None:
    for name in names:
        folder = root / name
        (folder / "set.000").mkdir(parents=True, exist_ok=True)
        (folder / "type.raw").write_text("0\n1\n1\n")
        (folder / "type_map.raw").write_text("O\nH\n")


def deepmd_multi_task_example() -> dict:
    """DeePMD-kit v2.2.11 examples/water_multi_task/ener_dipole/input.json, as written there."""
    return {
        "_comment": "that's all",
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {"type": "se_e2_a", "sel": [46, 92], "rcut_smth": 0.5, "rcut": 6.0,
                           "neuron": [25, 50, 100], "resnet_dt": False, "axis_neuron": 16,
                           "type_one_side": True, "precision": "float64", "seed": 1,
                           "_comment": " that's all"},
            "fitting_net_dict": {
                "water_dipole": {"type": "dipole", "sel_type": [0], "neuron": [100, 100, 100],
                                 "resnet_dt": True, "precision": "float64", "seed": 1,
                                 "_comment": " that's all"},
                "water_ener": {"neuron": [240, 240, 240], "resnet_dt": True, "precision": "float64", "seed": 1,
                               "_comment": " that's all"},
            },
            "_comment": " that's all",
        },
        "learning_rate": {"type": "exp", "decay_steps": 5000, "start_lr": 0.001, "stop_lr": 3.51e-08,
                          "_comment": "that's all"},
        "loss_dict": {
            "water_dipole": {"type": "tensor", "pref": 1.0, "pref_atomic": 1.0, "_comment": " that's all"},
            "water_ener": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000,
                           "limit_pref_f": 1, "start_pref_v": 0, "limit_pref_v": 0, "_comment": " that's all"},
        },
        "training": {
            "data_dict": {
                "water_dipole": {
                    "training_data": {"systems": ["../../water_tensor/dipole/training_data/atomic_system",
                                                  "../../water_tensor/dipole/training_data/global_system"],
                                      "batch_size": "auto", "_comment": "that's all"},
                    "validation_data": {"systems": ["../../water_tensor/dipole/validation_data/atomic_system",
                                                    "../../water_tensor/dipole/validation_data/global_system"],
                                        "batch_size": 1, "numb_btch": 3, "_comment": "that's all"},
                },
                "water_ener": {
                    "training_data": {"systems": ["../../water/data/data_0/", "../../water/data/data_1/",
                                                  "../../water/data/data_2/"],
                                      "batch_size": "auto", "_comment": "that's all"},
                    "validation_data": {"systems": ["../../water/data/data_3/"], "batch_size": 1, "numb_btch": 3,
                                        "_comment": "that's all"},
                },
            },
            "fitting_weight": {"water_dipole": 10, "water_ener": 20},
            "numb_steps": 1000000,
            "seed": 10,
            "disp_file": "lcurve.out",
            "disp_freq": 100,
            "save_freq": 1000,
            "_comment": "that's all",
        },
    }


def deepmd_se_e2_a_example() -> dict:
    """DeePMD-kit v2.2.11 examples/water/se_e2_a/input.json, as written there."""
    return {
        "_comment": " model parameters",
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {"type": "se_e2_a", "sel": [46, 92], "rcut_smth": 0.50, "rcut": 6.00,
                           "neuron": [25, 50, 100], "resnet_dt": False, "axis_neuron": 16, "type_one_side": True,
                           "precision": "float64", "seed": 1, "_comment": " that's all"},
            "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "precision": "float64", "seed": 1,
                            "_comment": " that's all"},
            "_comment": " that's all",
        },
        "learning_rate": {"type": "exp", "decay_steps": 5000, "start_lr": 0.001, "stop_lr": 3.51e-8,
                          "_comment": "that's all"},
        "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1,
                 "start_pref_v": 0, "limit_pref_v": 0, "_comment": " that's all"},
        "training": {
            "training_data": {"systems": ["../data/data_0/", "../data/data_1/", "../data/data_2/"],
                              "batch_size": "auto", "_comment": "that's all"},
            "validation_data": {"systems": ["../data/data_3"], "batch_size": 1, "numb_btch": 3,
                                "_comment": "that's all"},
            "numb_steps": 1000000,
            "seed": 10,
            "disp_file": "lcurve.out",
            "disp_freq": 100,
            "save_freq": 1000,
            "_comment": "that's all",
        },
    }


def test_deepmd_multi_task_example_validates(tmp_path: Path):
    base = tmp_path / "examples" / "water_multi_task" / "ener_dipole"
    base.mkdir(parents=True)
    _systems(tmp_path / "examples" / "water_tensor" / "dipole",
             "training_data/atomic_system", "training_data/global_system",
             "validation_data/atomic_system", "validation_data/global_system")
    _systems(tmp_path / "examples" / "water" / "data", "data_0", "data_1", "data_2", "data_3")
    spec = deepmd_multi_task_example()
    assert validate_spec(spec, base_dir=base) == []
    assert task_probabilities(spec) == pytest.approx({"water_dipole": 1 / 3, "water_ener": 2 / 3})
    with pytest.raises(SpecError, match="not found"):
        validate_spec(spec, base_dir=tmp_path)  # relative to the wrong folder


def test_deepmd_single_task_example_validates(tmp_path: Path):
    base = tmp_path / "water" / "se_e2_a"
    base.mkdir(parents=True)
    _systems(tmp_path / "water" / "data", "data_0", "data_1", "data_2", "data_3")
    spec = deepmd_se_e2_a_example()
    assert validate_spec(spec, base_dir=base) == []
    assert task_probabilities(spec) == {"default": 1.0}
