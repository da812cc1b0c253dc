"""Every examples/*/input.json is a valid training spec (no training, no data generation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtbench.spec.io import load_spec
from mtbench.spec.normalize import normalize_spec
from mtbench.spec.tasks import describe_sharing, task_view
from mtbench.spec.validate import validate_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*/input.json"))


def test_the_examples_are_there():
    names = {f.parent.name for f in FILES}
    assert {"single_task_ener", "ener_dipole", "two_level_shared", "ener_dipole_polar"} <= names


@pytest.mark.parametrize("path", FILES, ids=[f.parent.name for f in FILES])
def test_example_validates_without_warnings(path: Path):
    spec, base_dir = load_spec(path)
    assert validate_spec(spec, base_dir=base_dir) == []
    assert normalize_spec(normalize_spec(spec)) == normalize_spec(spec)
    for task in task_view(spec).values():
        for data in (task.training_data, task.validation_data):
            systems = data["systems"] if data else []
            assert all(s.startswith("builtin:") for s in systems), "examples must run anywhere"


def test_ener_dipole_has_deepmd_example_structure():
    spec, _ = load_spec(EXAMPLES / "ener_dipole" / "input.json")
    assert set(spec) == {"_comment", "model", "learning_rate", "loss_dict", "training"}
    assert set(spec["model"]["fitting_net_dict"]) == {"water_ener", "water_dipole"}
    assert spec["model"]["fitting_net_dict"]["water_dipole"]["type"] == "dipole"
    assert spec["training"]["fitting_weight"] == {"water_dipole": 10, "water_ener": 20}


def test_two_level_example_shares_layers():
    spec, _ = load_spec(EXAMPLES / "two_level_shared" / "input.json")
    assert describe_sharing(spec) == {"shared_layers": "l0:water_dft+water_ccsdt;l2:water_dft+water_ccsdt"}
