"""Shared fixtures: tiny built-in-style water data (one set per session) and a tiny trained run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mtbench.data.synthetic import TINY_SETTINGS, generate_water_dataset

# Reference energies per atom (eV), about those of DFT: a new head's data sits far from zero, as real data does.
DFT_REFERENCE = {0: -432.1, 1: -13.6}


@pytest.fixture(scope="session")
def dft_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = generate_water_dataset(tmp_path_factory.mktemp("water") / "data", seed=1, **TINY_SETTINGS)
    for split in ("train", "val"):  # TIP4P energies shifted by per-element references: a "DFT" data set
        src, dst = root / "water_tip4p" / split / "sys_000", root / "water_dft" / split / "sys_000"
        shutil.copytree(src, dst)
        types = np.loadtxt(dst / "type.raw", dtype=int)
        shift = sum(DFT_REFERENCE[int(t)] for t in types)
        for energy in dst.glob("set.*/energy.npy"):
            np.save(energy, np.load(energy) + shift)
    return root


def data_entry(root: Path, name: str) -> dict[str, Any]:
    """A ``training.data_dict`` entry on the tiny data; validation on the whole validation set at once."""
    systems = {"water_dipole": ["atomic_system", "global_system"]}.get(name, ["sys_000"])
    return {"training_data": {"systems": [str(root / name / "train" / s) for s in systems], "batch_size": 1},
            "validation_data": {"systems": [str(root / name / "val" / s) for s in systems], "batch_size": 64,
                                "numb_btch": 1}}


DESCRIPTOR = {"type": "se_e2_a", "sel": [12, 24], "rcut": 3.5, "rcut_smth": 0.5, "neuron": [4, 8],
              "axis_neuron": 2, "type_one_side": True, "precision": "float64", "seed": 1}
ENER = {"type": "ener", "neuron": [16, 16], "precision": "float64", "seed": 1}
DIPOLE = {"type": "dipole", "neuron": [8, 8], "sel_type": [0], "precision": "float64", "seed": 1}
ENER_LOSS = {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 100, "limit_pref_f": 1}
TENSOR_LOSS = {"type": "tensor", "pref": 1.0, "pref_atomic": 1.0}


def base_spec(root: Path, steps: int = 2) -> dict[str, Any]:
    """Two heads on the tiny data: water_tip3p (energy) and water_dipole."""
    return {"model": {"type_map": ["O", "H"], "descriptor": dict(DESCRIPTOR),
                      "fitting_net_dict": {"water_tip3p": dict(ENER), "water_dipole": dict(DIPOLE)},
                      "data_stat_nbatch": 2},
            "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-4, "decay_steps": 1},
            "loss_dict": {"water_tip3p": dict(ENER_LOSS), "water_dipole": dict(TENSOR_LOSS)},
            "training": {"numb_steps": steps, "disp_freq": steps, "save_freq": steps, "seed": 7,
                         "data_dict": {"water_tip3p": data_entry(root, "water_tip3p"),
                                       "water_dipole": data_entry(root, "water_dipole")},
                         "fitting_weight": {"water_tip3p": 2.0, "water_dipole": 1.0}}}


@pytest.fixture(scope="session")
def two_head_run(dft_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step run of :func:`base_spec` (run folder with checkpoint, lcurves, summary.json)."""
    from mtbench.train.run import run_training

    run_dir = tmp_path_factory.mktemp("outputs") / "runs" / "2026-01-01" / "00-00-00"
    run_training(base_spec(dft_data), run_dir=run_dir, base_dir=None, tracking=None, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def united(two_head_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained run frozen as the united SavedModel."""
    from mtbench.export.freeze import freeze

    out = tmp_path_factory.mktemp("frozen") / "united"
    freeze(two_head_run, out, united=True, log_to_mlflow=False)
    return out
