"""normalize_spec: aliases made canonical, defaults filled, unknown keys rejected."""

from __future__ import annotations

import copy
import json

import pytest

from mtbench.errors import SpecError
from mtbench.spec import registry as reg
from mtbench.spec.normalize import is_multi_task, normalize_spec
from mtbench.spec.validate import validate_spec


def single() -> dict:
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {"type": "se_e2_a", "sel": [20, 40], "rcut": 4.5, "rcut_smth": 0.5,
                           "neuron": [8, 16], "axis_neuron": 4},
            "fitting_net": {"neuron": [16, 16]},
        },
        "training": {
            "training_data": {"systems": ["builtin:water_tip3p/train"]},
            "numb_steps": 10,
        },
    }


def multi() -> dict:
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {"type": "se_e2_a", "sel": [20, 40], "rcut": 4.5, "rcut_smth": 0.5, "neuron": [8, 16]},
            "fitting_net_dict": {"water_ener": {"neuron": [16]},
                                 "water_dipole": {"type": "dipole", "sel_type": [0], "neuron": [16]}},
        },
        "loss_dict": {"water_ener": {}, "water_dipole": {"pref": 1.0, "pref_atomic": 1.0}},
        "training": {
            "data_dict": {
                "water_ener": {"training_data": {"systems": ["builtin:water_tip3p/train"]}},
                "water_dipole": {"training_data": {"systems": ["builtin:water_dipole/train"]}},
            },
            "numb_steps": 10,
        },
    }


def test_returns_new_dict_and_leaves_input_alone():
    spec = single()
    before = copy.deepcopy(spec)
    out = normalize_spec(spec)
    assert spec == before
    out["model"]["descriptor"]["neuron"].append(99)
    assert spec["model"]["descriptor"]["neuron"] == [8, 16]


def test_defaults_filled_single_task():
    out = normalize_spec(single())
    desc, fit = out["model"]["descriptor"], out["model"]["fitting_net"]
    assert desc["activation_function"] == "tanh" and desc["type_one_side"] is False
    assert desc["set_davg_zero"] is False and desc["exclude_types"] == [] and desc["seed"] is None
    assert fit["type"] == "ener" and fit["resnet_dt"] is True and fit["layer_name"] is None
    assert out["loss"]["type"] == "ener"
    assert (out["loss"]["start_pref_e"], out["loss"]["start_pref_f"]) == (0.02, 1000)
    assert out["learning_rate"] == {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-8, "decay_steps": 5000,
                                    "decay_rate": None}
    train = out["training"]
    assert train["task_name"] == "default"
    assert train["validation_data"] is None
    assert train["training_data"]["batch_size"] == "auto" and train["training_data"]["set_prefix"] == "set"
    assert (train["disp_file"], train["disp_freq"], train["save_ckpt"], train["max_ckpt_keep"]) == (
        "lcurve.out", 1000, "model.ckpt", 5)
    assert train["restart"] is None and train["init_frz_model"] is None
    assert train["sampling"] == {"type": "weights", "temperature": 1.0, "epochs": None}
    assert train["diagnostics"] == {"grad_cosine": True}
    assert out["model"]["data_stat_nbatch"] == 10


def test_defaults_filled_multi_task_and_equal_weights_when_absent():
    out = normalize_spec(multi())
    assert is_multi_task(out)
    assert out["training"]["fitting_weight"] == {"water_ener": 1.0, "water_dipole": 1.0}
    assert out["loss_dict"]["water_ener"]["type"] == "ener"
    assert out["loss_dict"]["water_dipole"]["type"] == "tensor"
    assert out["training"]["data_dict"]["water_dipole"]["validation_data"] is None
    assert list(out["model"]["fitting_net_dict"]) == ["water_ener", "water_dipole"]
    assert "learning_rate_dict" not in out


def test_task_absent_from_fitting_weight_becomes_zero():
    spec = multi()
    spec["training"]["fitting_weight"] = {"water_ener": 2}
    assert normalize_spec(spec)["training"]["fitting_weight"] == {"water_ener": 2, "water_dipole": 0.0}


def test_se_atten_defaults_follow_v3():
    spec = single()
    spec["model"]["descriptor"] = {"type": "se_atten", "sel": 60}
    desc = normalize_spec(spec)["model"]["descriptor"]
    assert desc["set_davg_zero"] is True and desc["tebd_input_mode"] == "concat" and desc["tebd_dim"] == 8
    assert (desc["attn"], desc["attn_layer"], desc["attn_dotr"]) == (128, 2, True)
    spec["model"]["descriptor"]["type"] = "se_atten_v2"
    assert normalize_spec(spec)["model"]["descriptor"]["set_davg_zero"] is False


@pytest.mark.parametrize(("alias", "canonical"), [
    ("se_a", "se_e2_a"), ("se_r", "se_e2_r"), ("se_at", "se_e3"), ("se_a_3be", "se_e3"), ("se_t", "se_e3"),
])
def test_descriptor_type_aliases(alias, canonical):
    spec = single()
    spec["model"]["descriptor"]["type"] = alias
    if canonical != "se_e2_a":
        del spec["model"]["descriptor"]["axis_neuron"]
    assert normalize_spec(spec)["model"]["descriptor"]["type"] == canonical


def test_key_aliases_canonicalised():
    spec = multi()
    spec["model"]["descriptor"]["n_axis_neuron"] = 4
    spec["model"]["fitting_net_dict"]["water_dipole"] = {"type": "dipole", "dipole_type": [0], "n_neuron": [16]}
    spec["model"]["fitting_net_dict"]["water_polar"] = {"type": "polar", "pol_type": 0}
    spec["loss_dict"]["water_polar"] = {"type": "tensor", "pref": 1, "pref_atomic": 0}
    spec["training"]["data_dict"]["water_polar"] = {
        "training_data": {"systems": "builtin:water_polar/train", "sys_weights": [1.0],
                          "auto_prob_style": "prob_uniform"},
        "validation_data": {"systems": "builtin:water_polar/val", "numb_batch": 2},
    }
    spec["training"]["stop_batch"] = spec["training"].pop("numb_steps")
    out = normalize_spec(spec)
    assert out["model"]["descriptor"]["axis_neuron"] == 4 and "n_axis_neuron" not in out["model"]["descriptor"]
    dip = out["model"]["fitting_net_dict"]["water_dipole"]
    assert dip["sel_type"] == [0] and dip["neuron"] == [16] and "dipole_type" not in dip
    assert out["model"]["fitting_net_dict"]["water_polar"]["sel_type"] == [0]  # int -> list
    data = out["training"]["data_dict"]["water_polar"]
    assert data["training_data"]["sys_probs"] == [1.0] and data["training_data"]["auto_prob"] == "prob_uniform"
    assert "sys_weights" not in data["training_data"] and "auto_prob_style" not in data["training_data"]
    assert data["validation_data"]["numb_btch"] == 2 and "numb_batch" not in data["validation_data"]
    assert out["training"]["numb_steps"] == 10 and "stop_batch" not in out["training"]


def test_v2_stripped_type_embedding_becomes_tebd_input_mode():
    spec = single()
    spec["model"]["descriptor"] = {"type": "se_atten", "sel": 60, "stripped_type_embedding": True}
    desc = normalize_spec(spec)["model"]["descriptor"]
    assert desc["tebd_input_mode"] == "strip" and "stripped_type_embedding" not in desc
    spec["model"]["descriptor"]["tebd_input_mode"] = "concat"
    with pytest.raises(SpecError, match=r"model\.descriptor\.stripped_type_embedding: contradicts"):
        normalize_spec(spec)


def test_comment_keys_dropped_silently_everywhere():
    spec = single()
    spec["_comment"] = "top"
    spec["model"]["_comment"] = "model"
    spec["model"]["descriptor"]["_note"] = 1
    spec["training"]["training_data"]["_x"] = None
    out = normalize_spec(spec)
    text = json.dumps(out)
    assert "_comment" not in text and "_note" not in text and '"_x"' not in text
    assert validate_spec(spec) == []


@pytest.mark.parametrize(("path", "key", "expected"), [
    (("model", "descriptor"), "rcutt", r"model\.descriptor\.rcutt: unknown key 'rcutt'; did you mean 'rcut'\?"),
    (("training",), "numb_step_", r"training\.numb_step_: unknown key .*did you mean 'numb_steps'\?"),
    (("training",), "disp_frq", r"training\.disp_frq: unknown key .*did you mean 'disp_freq'\?"),
    (("model", "fitting_net"), "neurons", r"model\.fitting_net\.neurons: unknown key .*did you mean 'neuron'\?"),
    ((), "lossdict", r"lossdict: unknown key .*did you mean 'loss_dict'\?"),
    (("training", "training_data"), "sytems", r"training\.training_data\.sytems: .*did you mean 'systems'\?"),
    # no close match: the known keys instead
    (("model", "fitting_net"), "zzzz", r"model\.fitting_net\.zzzz: unknown key 'zzzz'; known keys here: .*neuron"),
    # an alias next to its canonical key
    (("model", "descriptor"), "n_axis_neuron", r"model\.descriptor\.(n_)?axis_neuron: given twice"),
])
def test_bad_key_is_named(path, key, expected):
    spec = single()
    node = spec
    for part in path:
        node = node[part]
    node[key] = 1
    with pytest.raises(SpecError, match=expected):
        normalize_spec(spec)


def test_ignored_deepmd_keys_kept_and_warned_once():
    spec = single()
    spec["training"].update({"tensorboard": True, "profiling": False, "disp_training": True,
                             "time_training": True, "numb_test": 1})
    out = normalize_spec(spec)
    assert out["training"]["tensorboard"] is True
    warnings = validate_spec(spec)
    ignored = [w for w in warnings if w.startswith("ignored by mtbench")]
    assert len(ignored) == 1
    for key in ("training.tensorboard", "training.profiling", "training.disp_training", "training.time_training",
                "training.numb_test"):
        assert key in ignored[0]


def test_fixed_v3_option_only_at_its_default():
    spec = single()
    spec["model"]["descriptor"] = {"type": "se_atten", "sel": 60, "use_econf_tebd": False}
    assert normalize_spec(spec)["model"]["descriptor"]["use_econf_tebd"] is False
    spec["model"]["descriptor"]["use_econf_tebd"] = True
    with pytest.raises(SpecError, match=r"model\.descriptor\.use_econf_tebd: not supported by mtbench"):
        normalize_spec(spec)


def test_wrong_value_kind_names_key():
    spec = single()
    spec["model"]["descriptor"]["rcut"] = "six"
    with pytest.raises(SpecError, match=r"model\.descriptor\.rcut: expected int or float, got str 'six'"):
        normalize_spec(spec)


def test_required_keys():
    spec = single()
    del spec["training"]["numb_steps"]
    with pytest.raises(SpecError, match=r"training\.numb_steps: required key is missing"):
        normalize_spec(spec)
    spec = multi()
    del spec["loss_dict"]["water_dipole"]["pref"]
    spec["loss_dict"]["water_ener"] = {}
    with pytest.raises(SpecError, match=r"loss_dict\.water_dipole\.pref: required key is missing"):
        normalize_spec(spec)


def test_v3_model_dict_is_pointed_to_the_v2_form():
    spec = single()
    spec["model"]["model_dict"] = {}
    with pytest.raises(SpecError, match=r"model\.model_dict: DeePMD-kit v3's multi-task format .*fitting_net_dict"):
        normalize_spec(spec)


def test_missing_loss_dict_gets_default_losses():
    spec = multi()
    del spec["loss_dict"]
    spec["model"]["fitting_net_dict"].pop("water_dipole")
    spec["training"]["data_dict"].pop("water_dipole")
    assert normalize_spec(spec)["loss_dict"]["water_ener"]["type"] == "ener"


def test_learning_rate_dict_per_task():
    spec = multi()
    spec["learning_rate_dict"] = {"water_dipole": {"start_lr": 0.01}}
    out = normalize_spec(spec)
    assert out["learning_rate_dict"]["water_dipole"]["start_lr"] == 0.01
    assert out["learning_rate_dict"]["water_dipole"]["type"] == "exp"
    spec["learning_rate_dict"]["nope"] = {}
    with pytest.raises(SpecError, match=r"learning_rate_dict\.nope: .*task 'nope'"):
        normalize_spec(spec)


@pytest.mark.parametrize("make", [single, multi])
def test_idempotent_and_json_round_trip(make):
    out = normalize_spec(make())
    assert normalize_spec(out) == out
    assert json.loads(json.dumps(out)) == out


def test_every_registry_default_is_a_fresh_copy():
    a = normalize_spec(single())
    a["model"]["descriptor"]["exclude_types"].append([0, 1])
    b = normalize_spec(single())
    assert b["model"]["descriptor"]["exclude_types"] == []
    assert reg.SE_E2_A["exclude_types"].default == []


def test_hybrid_sub_descriptors_normalised_in_order():
    spec = single()
    spec["model"]["descriptor"] = {"type": "hybrid", "list": [
        {"type": "se_a", "sel": [4, 8], "rcut": 3.0, "_comment": "short range"},
        {"type": "se_r", "sel": [8, 16], "rcut": 5.0},
    ]}
    desc = normalize_spec(spec)["model"]["descriptor"]
    assert [d["type"] for d in desc["list"]] == ["se_e2_a", "se_e2_r"]
    assert desc["list"][0]["axis_neuron"] == 4 and "axis_neuron" not in desc["list"][1]
    assert "_comment" not in desc["list"][0]
    assert validate_spec(spec) == []
    spec["model"]["descriptor"]["list"][1]["rcut_smth"] = 6.0
    with pytest.raises(SpecError, match=r"^model\.descriptor\.list\[1\]\.rcut: rcut \(5\.0\) must be larger"):
        validate_spec(spec)
