"""The README's MD example as shipped (examples/md_water/run_md.py): ASE atoms of the built-in data, NVE with an
mtbench energy head, energy conserved; and conf/experiment/md_water.yaml, the one command that trains the model."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mtbench.data import synthetic
from mtbench.errors import DataError
from mtbench.inference.atoms import system_atoms

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "md_water" / "run_md.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_md", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def tiny_builtin(tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built-in data cache whose data is the tiny set, so ``builtin:`` names resolve without generating."""
    (tmp_path / f"water-v{synthetic.GENERATOR_VERSION}-seed1").symlink_to(tiny_data, target_is_directory=True)
    monkeypatch.setenv("MTBENCH_DATA_DIR", str(tmp_path))
    return tmp_path


def test_system_atoms_is_the_stored_frame(tiny_data: Path, tiny_builtin: Path) -> None:
    sys_dir = tiny_data / "water_tip3p" / "val" / "sys_000"
    coord = np.load(sys_dir / "set.000" / "coord.npy")
    box = np.load(sys_dir / "set.000" / "box.npy")
    atoms = system_atoms("builtin:water_tip3p/val", frame=1)  # a folder of systems: its first one
    assert atoms.get_chemical_symbols() == ["O", "H", "H"] * (coord.shape[1] // 9)
    np.testing.assert_array_equal(atoms.positions, coord[1].reshape(-1, 3))
    np.testing.assert_array_equal(atoms.cell[:], box[1].reshape(3, 3))
    assert atoms.pbc.all()
    assert system_atoms(sys_dir).get_chemical_symbols() == atoms.get_chemical_symbols()
    with pytest.raises(DataError, match="frame 99 out of range: the set has 2 frame"):
        system_atoms(sys_dir, frame=99)


def test_system_atoms_of_a_molecule_without_cell(tmp_path: Path) -> None:
    sys_dir = tmp_path / "mol"
    (sys_dir / "set.000").mkdir(parents=True)
    (sys_dir / "type.raw").write_text("1 0 0\n")
    (sys_dir / "nopbc").write_text("")
    np.save(sys_dir / "set.000" / "coord.npy", np.arange(9.0).reshape(1, 9))
    with pytest.raises(DataError, match="no type_map.raw: pass type_map="):
        system_atoms(sys_dir)
    atoms = system_atoms(sys_dir, type_map=["H", "O"])
    assert atoms.get_chemical_symbols() == ["O", "H", "H"] and not atoms.pbc.any()


def test_md_example_conserves_energy(four_head_run: Path, tiny_builtin: Path, capsys) -> None:
    """The example's own entry point, on the session's MD-fit model (the tests' conftest trains it): 200 steps
    of 0.5 fs at 300 K, drift and fluctuation bounded as in test_calculator's NVE test."""
    run = load_example().main([str(four_head_run), "--head", "water_ener", "--steps", "200"])
    out = capsys.readouterr().out
    assert "24 atoms, 200 steps of 0.5 fs" in out and "std(E_kin)" in out
    assert len(run["total"]) == 201
    assert run["std_total"] < 0.05 * run["std_kinetic"]
    assert run["drift"] < 0.02 * run["std_kinetic"]
    distances = run["atoms"].get_all_distances(mic=True)[np.triu_indices(len(run["atoms"]), 1)]
    print(f"T at the end {run['temperature_K']:.0f} K, closest atoms {distances.min():.3f} Å")
    # no atoms run into each other: the quick-start model on the full box got to 0.045 Å; this crude 4-frame model
    # squeezes an O-H bond to ~0.4 Å at ~2000 K, so the bound only separates "stable" from "blown up"
    assert distances.min() > 0.3


@pytest.mark.slow
def test_md_water_config_trains(tiny_data: Path, tmp_path: Path) -> None:
    """``python -m mtbench experiment=md_water`` composes and trains (here 4 steps on the tiny data); the model it
    writes runs in the example."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"water-v{synthetic.GENERATOR_VERSION}-seed1").symlink_to(tiny_data, target_is_directory=True)
    env = {**os.environ, "MTBENCH_OUTPUT_DIR": str(tmp_path / "outputs"), "MTBENCH_DATA_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-m", "mtbench", "experiment=md_water", "tracking=none",
                           "training.numb_steps=4", "training.disp_freq=2", "training.save_freq=4"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = list((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(run_dirs) == 1 and "water_ener" in proc.stdout
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(run_dirs[0]), "--steps", "2"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "24 atoms, 2 steps of 0.5 fs" in proc.stdout
