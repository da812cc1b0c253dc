"""One list of label names and one ``label_requirements`` for training and evaluation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mtbench
from mtbench.data.requirements import (
    ENERGY_LABELS,
    TENSOR_LABELS,
    head_labels,
    label_requirements,
    standard_requirement,
)
from mtbench.loss import build_loss

PACKAGE = Path(mtbench.__file__).parent


def test_tensor_label_names_are_spelled_in_one_module() -> None:
    """Only data/requirements.py spells the atomic tensor label names as strings (others derive them)."""
    pattern = re.compile(r"[\"'](find_)?atomic_(dipole|polarizability)[\"']")
    hits = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if pattern.search(p.read_text())]
    assert hits == ["data/requirements.py"]


@pytest.mark.parametrize("kind", sorted(TENSOR_LABELS))
def test_tensor_loss_and_test_read_the_same_labels(kind: str) -> None:
    labels = TENSOR_LABELS[kind]
    loss = build_loss({"type": "tensor", "pref": 1.0, "pref_atomic": 1.0}, {"type": kind, "sel_type": [0]}, 2)
    assert loss.requirements() == head_labels(kind, sel_type=[0])
    assert [r.key for r in head_labels(kind, sel_type=[0])] == [labels.global_key, labels.atomic_key]
    assert loss.atomic_key == labels.atomic_key and loss.global_key == labels.global_key
    assert standard_requirement(labels.atomic_key).ndof == labels.ndof == loss.ndof
    only_global = build_loss({"type": "tensor", "pref": 1.0, "pref_atomic": 0.0}, {"type": kind}, 2)
    assert [r.key for r in only_global.requirements()] == [labels.global_key]


def test_energy_loss_and_test_read_the_same_labels() -> None:
    loss = build_loss({"type": "ener", "start_pref_v": 1.0, "limit_pref_v": 1.0}, {"type": "ener"}, 2)
    assert loss.requirements() == list(ENERGY_LABELS) == head_labels("ener")
    assert [r.key for r in head_labels("ener", atom_ener=True)] == ["energy", "force", "virial", "atom_ener"]


def test_label_requirements_adds_frame_and_atomic_parameters() -> None:
    req = label_requirements(list(ENERGY_LABELS), numb_fparam=2, numb_aparam=1)
    assert req[:3] == list(ENERGY_LABELS)
    fparam, aparam = req[3:]
    assert (fparam.key, fparam.ndof, fparam.atomic, fparam.must) == ("fparam", 2, False, True)
    assert (aparam.key, aparam.ndof, aparam.atomic, aparam.must) == ("aparam", 1, True, True)
    assert label_requirements(ENERGY_LABELS) == list(ENERGY_LABELS)


def test_training_and_evaluation_requirements_agree() -> None:
    """The evaluation of a head reads every label its training read, with the same shapes and parameters."""
    from mtbench.evaluation.metrics import head_requirements
    from mtbench.model.multitask import MultiTaskModel

    desc = {"type": "se_e2_a", "sel": [4, 8], "rcut": 3.0, "rcut_smth": 0.5, "neuron": [2, 4], "axis_neuron": 2}
    fittings = {"e": {"type": "ener", "neuron": [4], "numb_fparam": 2},
                "d": {"type": "dipole", "neuron": [4], "sel_type": [0], "numb_aparam": 1}}
    model = MultiTaskModel.from_config(["O", "H"], desc, fittings, seed=1)
    losses = {"e": {"type": "ener", "start_pref_v": 1.0, "limit_pref_v": 1.0},
              "d": {"type": "tensor", "pref": 1.0, "pref_atomic": 1.0}}
    for head, fit in fittings.items():
        trained = label_requirements(build_loss(losses[head], fit, 2).requirements(),
                                     numb_fparam=fit.get("numb_fparam", 0), numb_aparam=fit.get("numb_aparam", 0))
        tested = head_requirements(model, head)
        assert trained == tested, head
