"""Fixtures for the evaluation tests: one small multi-task run trained on the tiny water data (session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_spec_dict

TASKS = ("water_ener", "water_tip4p", "water_dipole", "water_polar")
TRAIN_STEPS = 450


@pytest.fixture(scope="session")
def trained_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run dir (input.json, checkpoints/, summary.json) with two energy heads (TIP3P, TIP4P data), a dipole and a
    polarizability head, trained a few hundred steps, two thirds of them on the TIP3P energy head (the MD tests
    need its molecules to stay bound: ~300 steps at a high learning rate get the force error to about half the
    RMS force)."""
    from mtbench.run import run_training

    spec = tiny_spec_dict(tiny_data, tasks=TASKS, steps=TRAIN_STEPS)
    spec["training"]["fitting_weight"] = {"water_ener": 6.0, "water_tip4p": 1.0, "water_dipole": 1.0,
                                          "water_polar": 1.0}
    spec["training"].update(disp_freq=TRAIN_STEPS, save_freq=TRAIN_STEPS)
    spec["learning_rate"] = {"type": "exp", "start_lr": 1e-2, "stop_lr": 1e-3, "decay_steps": 20}
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run_training(spec, run_dir=run_dir, tracking={"backend": "none"}, output_dir=run_dir.parent, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def trained_model(trained_run: Path):
    from mtbench.export.load import load_model

    return load_model(trained_run)
