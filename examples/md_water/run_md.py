"""NVE molecular dynamics of the built-in water box with one energy head of an mtbench model.

    python -m mtbench experiment=md_water                      # an energy model fit for MD (~3 min on 2 cores)
    python examples/md_water/run_md.py outputs/runs/DATE/HH-MM-SS-US-PID  # 1000 steps of 0.5 fs from a 300 K start

The model may be a run folder, a checkpoint, a frozen model or a DeePMD-kit ``.dp`` file; ``--head`` names the
energy head when it has several. The printout ends with the energy conservation: the drift of the total energy
and its fluctuation, each next to the kinetic energy's fluctuation (the energy exchanged between kinetic and
potential, the natural scale).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import units
from ase.md.verlet import VelocityVerlet

from mtbench.inference.atoms import system_atoms
from mtbench.inference.calculator import MTBenchCalculator
from mtbench.runtime import import_tensorflow_quietly


def run_md(model: Any, head: str | None = None, *, system: str = "builtin:water_tip3p/val", steps: int = 1000,
           dt_fs: float = 0.5, temperature_K: float = 300.0, seed: int = 0) -> dict[str, Any]:
    """Velocity Verlet from frame 0 of ``system`` with Maxwell-Boltzmann velocities; energies at every step."""
    atoms = system_atoms(system)
    atoms.calc = MTBenchCalculator(model, head=head)
    masses = atoms.get_masses()[:, None]  # Maxwell-Boltzmann momenta, no centre-of-mass motion
    momenta = np.random.default_rng(seed).standard_normal((len(atoms), 3)) * np.sqrt(masses * units.kB * temperature_K)
    atoms.set_momenta(momenta - masses * momenta.sum(axis=0) / masses.sum())
    kinetic, potential = [], []

    def record() -> None:
        kinetic.append(atoms.get_kinetic_energy())
        potential.append(atoms.get_potential_energy())

    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    dyn.attach(record)
    dyn.run(steps)
    kin, pot = np.array(kinetic), np.array(potential)
    total = kin + pot
    t_fs = np.arange(len(total)) * dt_fs
    return {"atoms": atoms, "t_fs": t_fs, "kinetic": kin, "potential": pot, "total": total,
            "drift": float(abs(np.polyfit(t_fs, total, 1)[0]) * t_fs[-1]),  # linear trend over the run, eV
            "std_total": float(total.std()), "std_kinetic": float(kin.std()),
            "temperature_K": float(kin[-1] / (1.5 * units.kB * len(atoms)))}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="run folder, checkpoint, frozen model or .dp file")
    parser.add_argument("--head", default=None, help="energy head (needed when the model has several)")
    parser.add_argument("--system", default="builtin:water_tip3p/val",
                        help="deepmd/npy system or builtin:NAME to start from (frame 0)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--dt-fs", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=300.0, help="initial temperature, K")
    args = parser.parse_args(argv)
    import_tensorflow_quietly()  # as mtbench's commands do: no TensorFlow start-up notices among the output
    run = run_md(args.model, args.head, system=args.system, steps=args.steps, dt_fs=args.dt_fs,
                 temperature_K=args.temperature)
    print(f"{len(run['atoms'])} atoms, {args.steps} steps of {args.dt_fs} fs: "
          f"E_tot {run['total'][0]:.4f} -> {run['total'][-1]:.4f} eV, T at the end {run['temperature_K']:.0f} K")
    print(f"drift {run['drift']:.2e} eV = {run['drift'] / run['std_kinetic']:.3f} std(E_kin); "
          f"std(E_tot) = {run['std_total'] / run['std_kinetic']:.3f} std(E_kin)")
    return run


if __name__ == "__main__":
    main()
