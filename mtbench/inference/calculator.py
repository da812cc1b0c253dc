"""ASE calculator for one energy head of an mtbench model: energy, forces, stress for MD and relaxations.

    from mtbench.inference.calculator import MTBenchCalculator
    atoms.calc = MTBenchCalculator("outputs/runs/DATE/TIME", head="water_ener")
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()

The neighbour list is rebuilt on every call (atoms move), with the model's own (DeePMD's) rules. Atoms are
handed to the model sorted by type, as the model expects, and results come back in ASE's order. A fully periodic
``Atoms`` uses its cell; a fully non-periodic one has no cell (and no stress); mixed periodicity is refused because
DeePMD-style models know only "all periodic" or "none".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from mtbench.errors import MtbenchError

_VOIGT = (0, 4, 8, 5, 2, 1)  # xx yy zz yz xz xy of a flattened 3x3


class CalculatorInputError(MtbenchError, ValueError):
    """Atoms the model cannot evaluate (an element outside its type map, mixed periodicity, a flat cell)."""


def _energy_heads(model: Any) -> list[str]:
    return [name for name, head in model.heads.items() if head.kind == "ener"]


class MTBenchCalculator(Calculator):
    """Energy (``energy``, ``free_energy``, per-atom ``energies``), ``forces`` and ``stress`` of one energy head.

    ``model``: anything :func:`mtbench.export.load.load_model` accepts (run dir, checkpoint, any frozen form:
    united or one-head SavedModel, the per-head folder with ``manifest.json``, DeePMD ``.dp``), a ``LoadedModel`` or a ``MultiTaskModel``. ``head``: the energy head (needed when there are several).
    ``fparam``/``aparam``: frame/atomic parameters for heads trained with them (aparam in ASE's atom order).
    Units: eV, Å; ``stress = -virial / volume`` in eV/Å³, Voigt order (xx, yy, zz, yz, xz, xy), ASE's sign.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "energies", "forces", "stress"]
    nolabel = True

    def __init__(self, model: Any, head: str | None = None, *, fparam: Sequence[float] | None = None,
                 aparam: np.ndarray | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from mtbench.inference.predictor import HeadPredictor, as_model
        from mtbench.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()  # a user's MD script gets no TensorFlow start-up lines

        self.model = as_model(model, head)
        energy_heads = _energy_heads(self.model)
        if head is None:
            if len(energy_heads) != 1:
                raise CalculatorInputError(
                    f"head: name the energy head to use ({', '.join(energy_heads) or 'the model has none'})")
            head = energy_heads[0]
        if head not in self.model.heads:
            raise CalculatorInputError(f"head: model has no head {head!r}; heads: {', '.join(self.model.heads)}")
        if head not in energy_heads:
            raise CalculatorInputError(f"head: {head!r} is a {self.model.heads[head].kind} head; the calculator "
                                       f"needs an energy head ({', '.join(energy_heads) or 'none in this model'})")
        self.head = head
        self.type_map = list(self.model.type_map)
        self.fparam = None if fparam is None else np.asarray(fparam, np.float64).reshape(1, -1)
        self.aparam = None if aparam is None else np.asarray(aparam, np.float64)
        self._predict = HeadPredictor(self.model, head)

    def _types(self, symbols: Sequence[str]) -> np.ndarray:
        index = {name: k for k, name in enumerate(self.type_map)}
        unknown = sorted(set(symbols) - set(index))
        if unknown:
            raise CalculatorInputError(f"atoms: element(s) {', '.join(unknown)} not in the model's type map "
                                       f"{self.type_map}")
        return np.array([index[s] for s in symbols], dtype=np.int32)

    def calculate(self, atoms: Any = None, properties: Sequence[str] = ("energy",),
                  system_changes: Sequence[str] = all_changes) -> None:
        from mtbench.data.neighbor import build_neighbor_list

        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        types = self._types(atoms.get_chemical_symbols())
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise CalculatorInputError(f"atoms: mixed periodicity pbc={pbc.tolist()} is not supported; make the "
                                       "cell fully periodic (with vacuum) or not periodic at all")
        periodic = bool(pbc.all())
        cell = np.asarray(atoms.cell.array, np.float64)
        volume = abs(float(np.linalg.det(cell))) if periodic else 0.0
        if periodic and volume < 1e-10:
            raise CalculatorInputError("atoms: periodic atoms need a cell with a nonzero volume")
        order = np.lexsort((np.arange(len(types)), types))  # by type, stable: the model's atom order
        coord = np.asarray(atoms.positions, np.float64)[order]
        atype = types[order]
        box = cell if periodic else None
        nlists = {}
        for spec in self._predict.nspecs:
            idx, shift, _ = build_neighbor_list(coord, box, atype, spec, len(self.type_map))
            nlists[spec] = (idx[None], shift[None])
        aparam = None if self.aparam is None else self.aparam.reshape(len(types), -1)[order][None]
        out = self._predict(coord[None], (cell if periodic else np.zeros((3, 3)))[None], atype[None], nlists,
                            self.fparam, aparam)
        forces = np.empty_like(coord)
        forces[order] = out["force"][0]
        energies = np.empty(len(types))
        energies[order] = out["atom_energy"][0]
        energy = float(out["energy"][0])
        self.results = {"energy": energy, "free_energy": energy, "energies": energies, "forces": forces}
        if periodic:
            virial = out["virial"][0].reshape(3, 3)
            virial = 0.5 * (virial + virial.T)  # symmetric for a rotation-invariant model, up to rounding
            self.results["stress"] = -virial.reshape(9)[list(_VOIGT)] / volume
        elif "stress" in properties:
            raise PropertyNotImplementedError("stress: the atoms are not periodic")
