"""Shared fixtures: tiny built-in-style water data and a tiny multi-task spec that trains in seconds."""

from __future__ import annotations

import copy
import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _builtin_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in data cache of this test run: one for all pytest-xdist workers (the default set takes ~30 s to
    generate on 2 cores; mtbench.data.synthetic generates it once under its own file lock for parallel processes)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp("builtin_data")
    shared = tmp_path_factory.getbasetemp().parent / "builtin_data"  # pytest-N/, above each worker's popen-gwK/
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session", autouse=True)
def _hermetic_caches(tmp_path_factory: pytest.TempPathFactory):
    """Built-in data and outputs of the test session go to temporary folders, not to the user's cache/cwd."""
    saved = {k: os.environ.get(k) for k in ("MTBENCH_DATA_DIR", "MTBENCH_OUTPUT_DIR", "MLFLOW_DISABLE_TELEMETRY")}
    os.environ.setdefault("MTBENCH_DATA_DIR", str(_builtin_cache(tmp_path_factory)))
    os.environ.setdefault("MTBENCH_OUTPUT_DIR", str(tmp_path_factory.mktemp("outputs")))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session", autouse=True)
def _kernels_built(_hermetic_caches) -> None:  # noqa: ANN001
    """Build mtbench's compiled kernel (~40 s, once per machine kind; xdist workers wait on its lock) before any
    test, so no subprocess test pays for it inside its timeout."""
    from mtbench.model.kernels.library import compiled

    compiled()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 water molecules, 4 training + 2 validation frames per set (energy TIP3P/TIP4P, dipole, polar)."""
    from mtbench.data.synthetic import TINY_SETTINGS, generate_water_dataset

    return generate_water_dataset(tmp_path_factory.mktemp("tiny_water"), **TINY_SETTINGS)


@pytest.fixture(scope="session")
def tiny_builtin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for ``MTBENCH_DATA_DIR`` whose built-in data (``builtin:water_tip3p/train``...) is the tiny set:
    for subprocess runs of ``python -m mtbench`` with its default config (sweeps, searches) that test plumbing,
    not learning. Generated in well under a second instead of the default set's half minute, and 8 molecules
    with 2 validation frames per system keep every job's training and end-of-run evaluation short."""
    from mtbench.data.synthetic import TINY_SETTINGS, builtin_root_path, generate_water_dataset

    base = tmp_path_factory.mktemp("tiny_builtin")
    generate_water_dataset(builtin_root_path(1, cache_dir=base), progress=False, **TINY_SETTINGS)
    return base


def tiny_spec_dict(root: Path, *, tasks: tuple[str, ...] = ("water_ener", "water_dipole"), steps: int = 6,
                   seed: int = 1) -> dict[str, Any]:
    """A small DeePMD v2 multi-task spec on ``root`` (tiny data); energy and/or dipole/polar heads."""
    data = {"water_ener": "water_tip3p", "water_tip4p": "water_tip4p", "water_dipole": "water_dipole",
            "water_polar": "water_polar"}
    fit = {"water_ener": {"type": "ener", "neuron": [16, 16], "seed": 1},
           "water_tip4p": {"type": "ener", "neuron": [16, 16], "seed": 2},
           "water_dipole": {"type": "dipole", "sel_type": [0], "neuron": [8, 8], "seed": 1},
           "water_polar": {"type": "polar", "sel_type": [0], "neuron": [8, 8], "seed": 1}}
    loss = {"water_ener": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000,
                           "limit_pref_f": 1, "start_pref_v": 0, "limit_pref_v": 0},
            "water_dipole": {"type": "tensor", "pref": 1.0, "pref_atomic": 1.0}}
    loss["water_tip4p"] = loss["water_ener"]
    loss["water_polar"] = loss["water_dipole"]
    return {
        "model": {"type_map": ["O", "H"],
                  "descriptor": {"type": "se_e2_a", "sel": [12, 24], "rcut": 3.5, "rcut_smth": 0.5,
                                 "neuron": [4, 8], "axis_neuron": 4, "type_one_side": True, "seed": 1},
                  "fitting_net_dict": {t: copy.deepcopy(fit[t]) for t in tasks},
                  "data_stat_nbatch": 2},
        "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-4, "decay_steps": 2},
        "loss_dict": {t: copy.deepcopy(loss[t]) for t in tasks},
        "training": {
            "data_dict": {t: {"training_data": {"systems": [str(root / data[t] / "train")], "batch_size": 1},
                              "validation_data": {"systems": [str(root / data[t] / "val")], "batch_size": 1,
                                                  "numb_btch": 1}}
                          for t in tasks},
            "fitting_weight": {t: 1.0 for t in tasks},
            "numb_steps": steps, "disp_freq": 2, "save_freq": 3, "seed": seed,
        },
    }


@pytest.fixture()
def tiny_spec(tiny_data: Path):
    def make(**kw: Any) -> dict[str, Any]:
        return tiny_spec_dict(tiny_data, **kw)

    return make


def shared_across_workers(tmp_path_factory: pytest.TempPathFactory, name: str,
                          build: Callable[[Path], None]) -> Path:
    """A folder ``build`` fills once per test run, not once per pytest-xdist worker: each worker is its own session,
    so a session fixture alone trains the same model on every worker (a minute each on 2 cores). The first worker
    builds under a file lock, the others wait on it and read the finished folder (read-only use only)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent  # pytest-N/, shared by the popen-gwK/ of this run's workers
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half way leaves a partial folder
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


FOUR_HEAD_TASKS = ("water_ener", "water_tip4p", "water_dipole", "water_polar")
TRAIN_STEPS = 600


@pytest.fixture(scope="session")
def four_head_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run dir (input.json, checkpoints/, summary.json) with two energy heads (TIP3P, TIP4P data), a dipole and a
    polarizability head, trained a few hundred steps, two thirds of them on the TIP3P energy head (the MD tests
    need its molecules to stay bound: ~300 steps at a high learning rate get the force error to about half the
    RMS force)."""
    from mtbench.train.run import run_training

    spec = tiny_spec_dict(tiny_data, tasks=FOUR_HEAD_TASKS, steps=TRAIN_STEPS)
    spec["training"]["fitting_weight"] = {"water_ener": 6.0, "water_tip4p": 1.0, "water_dipole": 1.0,
                                          "water_polar": 1.0}
    spec["training"].update(disp_freq=TRAIN_STEPS, save_freq=TRAIN_STEPS)
    spec["learning_rate"] = {"type": "exp", "start_lr": 1e-2, "stop_lr": 1e-3, "decay_steps": 20}

    def build(folder: Path) -> None:
        run_training(spec, run_dir=folder / "run", tracking={"backend": "none"}, output_dir=folder, progress=False)

    return shared_across_workers(tmp_path_factory, "trained", build) / "run"


@pytest.fixture(scope="session")
def four_head_model(four_head_run: Path):
    from mtbench.export.load import load_model

    return load_model(four_head_run)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with a ``slow`` test first, each module's tests kept together and in order: pytest-xdist hands out
    tests in this order, so the minute-long ones no longer start last and keep one worker busy while the other
    idles (a module kept whole sets its module fixtures up once per worker, as before)."""
    slow_modules = {item.module.__name__ for item in items
                    if item.get_closest_marker("slow") and getattr(item, "module", None) is not None}
    items.sort(key=lambda item: getattr(item, "module", None) is None or item.module.__name__ not in slow_modules)
