"""task_view / task_probabilities / describe_sharing in single- and multi-task mode."""

from __future__ import annotations

import pytest

from mtbench.spec.tasks import TaskSpec, describe_sharing, task_probabilities, task_view


def multi(weights: dict | None = None) -> dict:
    fit = {"neuron": [16, 16, 16]}
    spec = {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {"type": "se_e2_a", "sel": [20, 40], "rcut": 4.5, "neuron": [8, 16]},
            "fitting_net_dict": {
                "water_dft": {**fit, "layer_name": ["l0", None, "l2", None]},
                "water_ccsdt": {**fit, "layer_name": ["l0", None, "l2", "own"]},
                "water_dipole": {"type": "dipole", "sel_type": [0], "neuron": [8]},
            },
        },
        "learning_rate": {"start_lr": 1e-3},
        "learning_rate_dict": {"water_dipole": {"start_lr": 1e-2}},
        "loss_dict": {"water_dft": {}, "water_ccsdt": {}, "water_dipole": {"pref": 1, "pref_atomic": 0}},
        "training": {
            "data_dict": {
                "water_dipole": {"training_data": {"systems": "builtin:water_dipole/train"}},
                "water_dft": {"training_data": {"systems": "builtin:water_tip3p/train"},
                              "validation_data": {"systems": "builtin:water_tip3p/val"}},
                "water_ccsdt": {"training_data": {"systems": "builtin:water_tip4p/train"}},
            },
            "numb_steps": 5,
        },
    }
    if weights is not None:
        spec["training"]["fitting_weight"] = weights
    return spec


def test_task_view_multi_keeps_fitting_net_dict_order():
    view = task_view(multi({"water_dft": 3, "water_ccsdt": 1, "water_dipole": 0}))
    assert list(view) == ["water_dft", "water_ccsdt", "water_dipole"]
    dft, dipole = view["water_dft"], view["water_dipole"]
    assert isinstance(dft, TaskSpec) and dft.name == "water_dft"
    assert dft.weight == 3.0 and isinstance(dft.weight, float)
    assert dft.fitting_net["type"] == "ener" and dft.loss["type"] == "ener"
    assert dft.training_data["systems"] == "builtin:water_tip3p/train"
    assert dft.validation_data["numb_btch"] == 1
    assert dft.learning_rate["start_lr"] == 1e-3
    assert dipole.learning_rate["start_lr"] == 1e-2 and dipole.loss["type"] == "tensor"
    assert dipole.validation_data is None and dipole.weight == 0.0


def test_task_view_single_task_uses_task_name():
    spec = {
        "model": {"type_map": ["O", "H"], "descriptor": {"type": "se_a", "sel": [4, 8], "rcut": 3.0},
                  "fitting_net": {"neuron": [8]}},
        "training": {"training_data": {"systems": "builtin:water_tip3p/train"}, "numb_steps": 1,
                     "task_name": "water_ener"},
    }
    view = task_view(spec)
    assert list(view) == ["water_ener"]
    assert view["water_ener"].weight == 1.0 and view["water_ener"].loss["type"] == "ener"
    assert task_probabilities(spec) == {"water_ener": 1.0}
    assert describe_sharing(spec) == {"shared_layers": "none"}


def test_probabilities_are_normalised_weights():
    assert task_probabilities(multi({"water_dft": 2, "water_ccsdt": 1, "water_dipole": 1})) == pytest.approx(
        {"water_dft": 0.5, "water_ccsdt": 0.25, "water_dipole": 0.25})
    assert task_probabilities(multi()) == pytest.approx({t: 1 / 3 for t in ("water_dft", "water_ccsdt",
                                                                             "water_dipole")})
    probs = task_probabilities(multi({"water_dft": 1}))
    assert probs == {"water_dft": 1.0, "water_ccsdt": 0.0, "water_dipole": 0.0}


def test_describe_sharing_lists_layers_used_by_several_tasks():
    assert describe_sharing(multi()) == {"shared_layers": "l0:water_dft+water_ccsdt;l2:water_dft+water_ccsdt"}
    spec = multi()
    for fit in spec["model"]["fitting_net_dict"].values():
        fit.pop("layer_name", None)
    assert describe_sharing(spec) == {"shared_layers": "none"}


def test_views_are_copies():
    spec = multi()
    view = task_view(spec)
    view["water_dft"].fitting_net["neuron"].append(1)
    assert spec["model"]["fitting_net_dict"]["water_dft"]["neuron"] == [16, 16, 16]
