"""MTBenchCalculator: same numbers as the model, forces and stress as derivatives of the energy, atom order and
periodicity handled, clear errors, and energy conservation in NVE MD next to the labelling potential."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.md.verlet import VelocityVerlet

from mtbench.inference.calculator import CalculatorInputError, MTBenchCalculator
from mtbench.data.requirements import ENERGY, FORCE
from mtbench.data.system import DeepmdSystem
from mtbench.data.water_models import FlexibleWater
from mtbench.errors import MtbenchError


def water_atoms(root: Path, frame: int = 0) -> Atoms:
    """A validation frame of the TIP3P data as ASE atoms, in file order (O, H, H per molecule)."""
    path = root / "water_tip3p" / "val" / "sys_000" / "set.000"
    coord = np.load(path / "coord.npy")[frame].reshape(-1, 3)
    box = np.load(path / "box.npy")[frame].reshape(3, 3)
    return Atoms("OH2" * (len(coord) // 3), positions=coord, cell=box, pbc=True)


@pytest.fixture(scope="module")
def calc(four_head_model) -> MTBenchCalculator:
    return MTBenchCalculator(four_head_model, head="water_ener")


def test_matches_model_predict(calc: MTBenchCalculator, four_head_model, tiny_data: Path) -> None:
    system = DeepmdSystem(tiny_data / "water_tip3p" / "val" / "sys_000", ["O", "H"], [ENERGY, FORCE])
    batch = system.frames([1])
    nlists = {spec: (system.neighbor_data(spec).idx[[1]], system.neighbor_data(spec).shift[[1]])
              for spec in four_head_model.model.neighbor_specs()}
    out = four_head_model.model.predict("water_ener", batch["coord"], batch["box"], batch["atype"], nlists)
    atoms = water_atoms(tiny_data, frame=1)
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(float(out["energy"][0]), rel=1e-12)
    forces_sorted = atoms.get_forces()[system.idx_map]  # the model's order: atoms sorted by type
    np.testing.assert_allclose(forces_sorted, out["force"].numpy()[0], rtol=1e-10, atol=1e-12)
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    virial = out["virial"].numpy()[0].reshape(3, 3)
    stress = -0.5 * (virial + virial.T) / atoms.get_volume()
    np.testing.assert_allclose(atoms.get_stress(voigt=False), stress, rtol=1e-10, atol=1e-14)


def test_atom_order_is_ase_order(calc: MTBenchCalculator, tiny_data: Path) -> None:
    atoms = water_atoms(tiny_data)
    atoms.calc = calc
    e0, f0 = atoms.get_potential_energy(), atoms.get_forces()
    perm = np.random.default_rng(0).permutation(len(atoms))
    shuffled = atoms[perm]
    shuffled.calc = calc
    assert shuffled.get_potential_energy() == pytest.approx(e0, rel=1e-12)
    np.testing.assert_allclose(shuffled.get_forces(), f0[perm], rtol=1e-10, atol=1e-12)


def test_forces_and_stress_are_energy_derivatives(calc: MTBenchCalculator, tiny_data: Path) -> None:
    atoms = water_atoms(tiny_data)
    atoms.rattle(0.02, seed=1)
    atoms.calc = calc
    forces = atoms.get_forces()
    some = [0, 1, 2, 10]
    fd = calculate_numerical_forces(atoms, eps=1e-5, iatoms=some)
    np.testing.assert_allclose(forces[some], fd, rtol=1e-6, atol=1e-7)
    # ASE: stress = (1/V) dE/d(strain); central differences of the scaled cell and positions
    fd_stress = calculate_numerical_stress(atoms, eps=1e-6)
    np.testing.assert_allclose(atoms.get_stress(), fd_stress, rtol=1e-5, atol=1e-8)


def test_non_periodic_molecule(calc: MTBenchCalculator, tiny_data: Path) -> None:
    cluster = water_atoms(tiny_data)[:6]  # two molecules, no cell
    cluster.set_pbc(False)
    cluster.set_cell(np.zeros((3, 3)))
    cluster.calc = calc
    assert np.isfinite(cluster.get_potential_energy())
    fd = calculate_numerical_forces(cluster, eps=1e-5)
    np.testing.assert_allclose(cluster.get_forces(), fd, rtol=1e-6, atol=1e-7)
    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()
    # far apart, the two molecules no longer interact: the energy is the sum of the parts
    apart = cluster.copy()
    apart.positions[3:] += 20.0
    apart.calc = calc
    parts = []
    for sl in (slice(0, 3), slice(3, 6)):
        one = cluster[sl]
        one.calc = calc
        parts.append(one.get_potential_energy())
    assert apart.get_potential_energy() == pytest.approx(sum(parts), rel=1e-12)


def test_clear_errors(four_head_model, calc: MTBenchCalculator, tiny_data: Path) -> None:
    atoms = water_atoms(tiny_data)
    atoms[0].symbol = "C"
    atoms.calc = calc
    with pytest.raises(CalculatorInputError, match=r"element\(s\) C not in the model's type map \['O', 'H'\]"):
        atoms.get_potential_energy()
    slab = water_atoms(tiny_data)
    slab.set_pbc([True, True, False])
    slab.calc = calc
    with pytest.raises(MtbenchError, match="mixed periodicity"):
        slab.get_potential_energy()
    with pytest.raises(CalculatorInputError, match="name the energy head to use .*water_ener, water_tip4p"):
        MTBenchCalculator(four_head_model)
    with pytest.raises(CalculatorInputError, match="'water_dipole' is a dipole head"):
        MTBenchCalculator(four_head_model, head="water_dipole")


def nve(atoms: Atoms, calculator, steps: int, dt_fs: float, keep_every: int = 20) -> dict[str, Any]:
    """Velocity Verlet from the atoms' momenta: total-energy drift and fluctuation next to the kinetic energy's
    fluctuation, and snapshots every ``keep_every`` steps."""
    atoms = atoms.copy()
    atoms.calc = calculator
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    kin, pot, snaps = [], [], []

    def record() -> None:
        kin.append(atoms.get_kinetic_energy())
        pot.append(atoms.get_potential_energy())
        if (len(kin) - 1) % keep_every == 0:
            snaps.append(atoms.positions.copy())

    dyn.attach(record)
    dyn.run(steps)
    kin, pot = np.array(kin), np.array(pot)
    tot = kin + pot
    t = np.arange(len(tot)) * dt_fs
    slope = np.polyfit(t, tot, 1)[0]
    return {"std_tot": float(tot.std()), "std_kin": float(kin.std()), "drift": float(abs(slope) * t[-1]),
            "end_minus_start": float(tot[-1] - tot[0]), "snapshots": snaps}


def test_nve_conserves_energy_like_the_labelling_potential(calc: MTBenchCalculator, tiny_data: Path) -> None:
    """200 steps of 0.5 fs (100 fs, ~11 O-H vibrations) from a validation frame at 300 K.

    Velocity Verlet keeps a smooth conservative energy constant up to an O(dt^2) oscillation with no drift.
    The scale is the exchange between kinetic and potential energy, std(E_kin). The labelling potential itself
    (flexible TIP3P) gives std(E_tot) ~ 0.025 std(E_kin) at this step (set by the stiff O-H stretch), so a
    model is accepted up to 0.05 (twice as stiff) and a linear drift over the run of at most 0.02 std(E_kin)
    (TIP3P: ~1e-3). Forces that are not -dE/dx, or atoms mixed up between the model's and ASE's order, give
    ratios of order one.
    """
    rc = json.loads((tiny_data / "manifest.json").read_text())["rc"]
    atoms = water_atoms(tiny_data)
    rng = np.random.default_rng(0)
    masses = atoms.get_masses()[:, None]
    p = rng.standard_normal((len(atoms), 3)) * np.sqrt(masses * units.kB * 300.0)
    atoms.set_momenta(p - masses * p.sum(axis=0) / masses.sum())
    model = nve(atoms, calc, 200, 0.5)
    reference = nve(atoms, FlexibleWater("tip3p", rc=rc), 200, 0.5)
    for name, run in (("model", model), ("TIP3P", reference)):
        print(f"\nNVE {name}: std(E_tot) {run['std_tot']:.3e} eV, drift {run['drift']:.3e} eV, "
              f"std(E_kin) {run['std_kin']:.3e} eV")
        assert run["std_tot"] < 0.05 * run["std_kin"]
        assert run["drift"] < 0.02 * run["std_kin"]
    # where the model stands: its forces against the labelling potential's along the TIP3P trajectory
    errors, scale = [], []
    for pos in reference["snapshots"]:
        frame = atoms.copy()
        frame.positions = pos
        frame.calc = FlexibleWater("tip3p", rc=rc)
        f_ref = frame.get_forces()
        frame.calc = calc
        errors.append(frame.get_forces() - f_ref)
        scale.append(f_ref)
    f_rmse, f_rms = np.sqrt(np.mean(np.square(errors))), np.sqrt(np.mean(np.square(scale)))
    print(f"force RMSE vs TIP3P on its trajectory: {f_rmse:.3f} eV/Å (RMS TIP3P force {f_rms:.3f} eV/Å)")
    assert f_rmse < 0.8 * f_rms  # the short training has learnt most of the force


def test_nve_catches_a_broken_calculator(calc: MTBenchCalculator, tiny_data: Path) -> None:
    """The criterion above can fail: forces returned in the model's (sorted) order instead of ASE's."""

    class Unsorted(MTBenchCalculator):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):  # type: ignore[override]
            super().calculate(atoms, properties, system_changes)
            order = np.lexsort((np.arange(len(self.atoms)), self._types(self.atoms.get_chemical_symbols())))
            self.results["forces"] = self.results["forces"][order]

    broken = Unsorted.__new__(Unsorted)
    broken.__dict__.update(calc.__dict__)
    broken.reset()
    atoms = water_atoms(tiny_data)
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    run = nve(atoms, broken, 40, 0.5)
    assert run["std_tot"] > 0.05 * run["std_kin"]


def test_a_users_script_gets_no_tensorflow_start_up_lines(four_head_run: Path) -> None:
    """An MD script of the user's own: building the calculator imports TensorFlow quietly (stderr empty)."""
    script = ("from mtbench.inference.calculator import MTBenchCalculator\n"
              f"calc = MTBenchCalculator({str(four_head_run)!r}, head='water_ener')\n"
              "print(calc.head)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "MTBENCH_TF_VERBOSE"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "water_ener"
    assert proc.stderr == ""
