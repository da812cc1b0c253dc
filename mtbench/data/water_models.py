"""Flexible classical water models (TIP3P / TIP4P + harmonic intramolecular terms).

The built-in data need energies, forces *and* virials for thousands of MD steps in a few
seconds. ASE's own ``TIP3P``/``TIP4P`` calculators are rigid, loop over molecules in Python
and give no stress (and reject the sheared cells a strain derivative needs). This module
evaluates the same intermolecular energy (same parameters, same O-O based smooth cutoff,
same minimum-image rule, equal to ASE's to round-off; see the tests) vectorised over
molecule pairs, with an analytic virial, and adds a harmonic O-H bond and H-O-H angle term
so the water is flexible.

Conventions: atoms ordered O,H,H per molecule; eV, Å; the virial is DeePMD's,
``virial = -dE/d(strain)`` (= ``-stress * volume`` with ASE's stress sign).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import primitive_neighbor_list

#: Coulomb constant in eV Å / e^2 (the value ASE's water models use).
COULOMB = units.Hartree * units.Bohr
_KCAL_MOL = units.kcal / units.mol


@dataclass(frozen=True)
class WaterModel:
    """Point charges and Lennard-Jones O-O parameters of a rigid 3- or 4-site water model.

    The negative charge ``-2 q_h`` sits ``m_site`` Å from O along the H-O-H bisector
    (0: on O, as in TIP3P; 0.15: the TIP4P M site).
    """

    name: str
    q_h: float
    sigma: float
    epsilon: float
    m_site: float


_TIP4P_A = 600e3 * _KCAL_MOL  # eV Å^12
_TIP4P_B = 610.0 * _KCAL_MOL  # eV Å^6

TIP3P = WaterModel("tip3p", q_h=0.417, sigma=3.15061, epsilon=0.1521 * _KCAL_MOL, m_site=0.0)
TIP4P = WaterModel(
    "tip4p",
    q_h=0.52,
    sigma=(_TIP4P_A / _TIP4P_B) ** (1.0 / 6.0),
    epsilon=_TIP4P_B**2 / (4.0 * _TIP4P_A),
    m_site=0.15,
)
MODELS: dict[str, WaterModel] = {"tip3p": TIP3P, "tip4p": TIP4P}


@dataclass(frozen=True)
class IntraParams:
    """Harmonic intramolecular terms: ``k_bond/2 (r - r0)^2`` per O-H, ``k_angle/2 (θ - θ0)^2``.

    Force constants are SPC/Fw's (Wu, Tepper, Voth 2006), the equilibrium geometry TIP3P's.
    """

    k_bond: float = 1059.162 * _KCAL_MOL  # eV / Å^2
    r0: float = 0.9572  # Å
    k_angle: float = 75.90 * _KCAL_MOL  # eV / rad^2
    theta0: float = np.deg2rad(104.52)


@dataclass
class EnergyTerms:
    """Energy (eV), gradient dE/dx (eV/Å, shape [n_atoms, 3]) and virial (eV, [3, 3])."""

    energy: float
    gradient: np.ndarray
    virial: np.ndarray

    def __add__(self, other: EnergyTerms) -> EnergyTerms:
        return EnergyTerms(
            self.energy + other.energy, self.gradient + other.gradient, self.virial + other.virial
        )


def _minimum_image(
    vectors: np.ndarray, cell: np.ndarray, inv_cell: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (vectors - shifts, shifts) with shifts the nearest lattice vectors (via fractions)."""
    frac = vectors @ (np.linalg.inv(cell) if inv_cell is None else inv_cell)
    shifts = np.rint(frac) @ cell
    return vectors - shifts, shifts


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("...a,...a->...", v, v))


def _check_layout(positions: np.ndarray, cell: np.ndarray) -> int:
    if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] % 3:
        raise ValueError(f"positions must be [3 * n_molecules, 3] (O,H,H order), got {positions.shape}")
    if cell.shape != (3, 3):
        raise ValueError(f"cell must be 3x3, got {cell.shape}")
    return positions.shape[0] // 3


def whole_molecules(
    positions: np.ndarray, cell: np.ndarray, inv_cell: np.ndarray | None = None
) -> np.ndarray:
    """Positions [n_mol, 3, 3] with each H moved to the image nearest its O (molecules unbroken)."""
    n_mol = _check_layout(positions, cell)
    x = positions.reshape(n_mol, 3, 3)
    d_h, _ = _minimum_image(x[:, 1:] - x[:, :1], cell, inv_cell)
    return np.concatenate([x[:, :1], x[:, :1] + d_h], axis=1)


def intramolecular(
    positions: np.ndarray, cell: np.ndarray, params: IntraParams = IntraParams()
) -> EnergyTerms:
    """Harmonic O-H stretch and H-O-H bend energy of every molecule (no PBC needed beyond MIC)."""
    x = whole_molecules(positions, cell)
    n_mol = x.shape[0]
    d = x[:, 1:] - x[:, :1]  # [n_mol, 2, 3] O->H vectors
    r = _norm(d)  # [n_mol, 2]
    u = d / r[..., None]
    cos_t = np.clip(np.sum(u[:, 0] * u[:, 1], axis=-1), -1.0, 1.0)
    theta = np.arccos(cos_t)
    sin_t = np.sqrt(np.maximum(1.0 - cos_t**2, 1e-300))

    e_bond = 0.5 * params.k_bond * np.sum((r - params.r0) ** 2)
    e_angle = 0.5 * params.k_angle * np.sum((theta - params.theta0) ** 2)

    g_d = (params.k_bond * (r - params.r0))[..., None] * u  # dE_bond / d(d_k)
    de_dcos = -params.k_angle * (theta - params.theta0) / sin_t  # dE/dθ * dθ/dcos
    # d cos / d d1 = (u2 - cos u1) / r1, and symmetrically.
    g_d[:, 0] += de_dcos[:, None] * (u[:, 1] - cos_t[:, None] * u[:, 0]) / r[:, :1]
    g_d[:, 1] += de_dcos[:, None] * (u[:, 0] - cos_t[:, None] * u[:, 1]) / r[:, 1:]

    grad = np.zeros((n_mol, 3, 3))
    grad[:, 1:] = g_d
    grad[:, 0] = -g_d.sum(axis=1)
    virial = -np.einsum("mka,mkb->ab", d, g_d)
    return EnergyTerms(float(e_bond + e_angle), grad.reshape(-1, 3), virial)


def _switch(d: np.ndarray, rc: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """ASE's water cutoff: 1 below rc - width, 1 - y^2 (3 - 2y) across the width, 0 beyond rc."""
    y = np.clip((d - rc + width) / width, 0.0, 1.0)
    t = 1.0 - y * y * (3.0 - 2.0 * y)
    dt = -6.0 / width * y * (1.0 - y)
    return t, dt


def charge_sites(x: np.ndarray, model: WaterModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Charged sites [n_mol, 3, 3] (H1, H2, negative site), their charges, and the bisector data.

    Returns (sites, charges, (u_hat, gamma)) where the negative site is ``O + m_site * u_hat``
    with ``u = (H1 + H2)/2 - O`` and ``gamma = m_site / |u|`` (needed to pass its force on).
    """
    u = 0.5 * (x[:, 1] + x[:, 2]) - x[:, 0]
    u_norm = _norm(u)
    u_hat = u / u_norm[:, None]
    neg = x[:, 0] + model.m_site * u_hat
    sites = np.stack([x[:, 1], x[:, 2], neg], axis=1)
    charges = np.array([model.q_h, model.q_h, -2.0 * model.q_h])
    return sites, charges, (u_hat, model.m_site / u_norm)


def intermolecular(
    positions: np.ndarray, cell: np.ndarray, model: WaterModel, rc: float, width: float = 1.0
) -> EnergyTerms:
    """Intermolecular energy of a periodic water box, as ASE's TIP3P/TIP4P define it.

    Each molecule pair interacts once, through the image of the second molecule whose O is
    nearest to the first's O, scaled by a smooth function of that O-O distance that vanishes
    at ``rc``; so ``rc`` must not exceed half the shortest box width.
    """
    n_mol = _check_layout(positions, cell)
    inv_cell = np.linalg.inv(cell)
    half_width = 0.5 / _norm(inv_cell.T).max()  # plane spacing along a_i is 1 / |column i of inv|
    if rc > half_width + 1e-12:
        raise ValueError(f"cutoff rc={rc} Å exceeds half the box width ({half_width:.4f} Å)")
    x = whole_molecules(positions, cell, inv_cell)
    grad = np.zeros((n_mol, 3, 3))
    virial = np.zeros((3, 3))
    if n_mol < 2:
        return EnergyTerms(0.0, grad.reshape(-1, 3), virial)

    m, n = np.triu_indices(n_mol, 1)
    d_oo, shift = _minimum_image(x[n, 0] - x[m, 0], cell, inv_cell)
    r_oo = _norm(d_oo)
    keep = r_oo < rc
    m, n, d_oo, shift, r_oo = m[keep], n[keep], d_oo[keep], shift[keep], r_oo[keep]
    t, dt = _switch(r_oo, rc, width)

    s6 = (model.sigma / r_oo) ** 6
    e_lj = 4.0 * model.epsilon * (s6 * s6 - s6)
    de_lj = -24.0 * model.epsilon * (2.0 * s6 * s6 - s6) / r_oo

    sites, q, (u_hat, gamma) = charge_sites(x, model)
    # r_ab: from site a of molecule m to site b of the image of molecule n.
    r_vec = (sites[n] - shift[:, None, :])[:, None, :, :] - sites[m][:, :, None, :]
    r = _norm(r_vec)  # [P, 3, 3]
    e_c = COULOMB * (q[:, None] * q[None, :]) / r
    e_pair = e_lj + e_c.sum(axis=(1, 2))
    energy = float(np.dot(t, e_pair))

    g_c = (-(t[:, None, None] * e_c) / (r * r))[..., None] * r_vec  # dE / d r_ab
    g_oo = ((dt * e_pair + t * de_lj) / r_oo)[:, None] * d_oo  # dE / d d_oo

    g_sites_m = -g_c.sum(axis=2)  # [P, 3 sites, 3]
    g_sites_n = g_c.sum(axis=1)
    # Scatter pair terms onto molecules with incidence matrices (much faster than np.add.at).
    incidence = np.zeros((n_mol, 2 * len(m)))
    incidence[np.concatenate([m, n]), np.arange(2 * len(m))] = 1.0
    per_pair = np.concatenate(
        [
            np.concatenate([g_sites_m.reshape(-1, 9), -g_oo], axis=1),
            np.concatenate([g_sites_n.reshape(-1, 9), g_oo], axis=1),
        ]
    )
    per_mol = incidence @ per_pair
    g_site = per_mol[:, :9].reshape(n_mol, 3, 3)
    grad[:, 0] += per_mol[:, 9:]

    # Pass the negative site's gradient on to O, H, H (it is a function of their positions).
    g_neg = g_site[:, 2]
    g_perp = gamma[:, None] * (g_neg - np.sum(g_neg * u_hat, axis=-1, keepdims=True) * u_hat)
    grad[:, 0] += g_neg - g_perp
    grad[:, 1] += g_site[:, 0] + 0.5 * g_perp
    grad[:, 2] += g_site[:, 1] + 0.5 * g_perp

    # virial = -dE/dε: atoms move affinely with the strain, and so do the image shifts.
    g_n_total = g_sites_n.sum(axis=1) + g_oo
    virial = -np.einsum("mka,mkb->ab", x, grad) + np.einsum("pa,pb->ab", shift, g_n_total)
    return EnergyTerms(energy, grad.reshape(-1, 3), virial)


def water_terms(
    positions: np.ndarray,
    cell: np.ndarray,
    model: WaterModel,
    rc: float,
    width: float = 1.0,
    intra: IntraParams | None = IntraParams(),
) -> EnergyTerms:
    """Total flexible-water energy terms: intermolecular model plus (optional) intramolecular part."""
    terms = intermolecular(positions, cell, model, rc, width)
    if intra is not None:
        terms = terms + intramolecular(positions, cell, intra)
    return terms


class FlexibleWater(Calculator):
    """ASE calculator for flexible TIP3P/TIP4P water (energy, forces, stress) in a periodic box.

    ``intra=None`` gives the rigid model's intermolecular energy only (as ASE's TIP3P/TIP4P).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    nolabel = True

    def __init__(
        self,
        model: str | WaterModel = "tip3p",
        rc: float = 4.9,
        width: float = 1.0,
        intra: IntraParams | None = IntraParams(),
    ) -> None:
        super().__init__()
        self.model = MODELS[model] if isinstance(model, str) else model
        self.rc = rc
        self.width = width
        self.intra = intra

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """Exact comparison of what the energy depends on (ASE's generic check costs as much as the model)."""
        if self.atoms is None:
            return list(all_changes)
        changes = []
        if not np.array_equal(self.atoms.positions, atoms.positions):
            changes.append("positions")
        if not np.array_equal(self.atoms.cell.array, atoms.cell.array):
            changes.append("cell")
        if not np.array_equal(self.atoms.numbers, atoms.numbers):
            changes.append("numbers")
        if not np.array_equal(self.atoms.pbc, atoms.pbc):
            changes.append("pbc")
        return changes

    def calculate(
        self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        numbers = self.atoms.numbers
        if len(numbers) % 3 or not (
            np.all(numbers[0::3] == 8) and np.all(numbers[1::3] == 1) and np.all(numbers[2::3] == 1)
        ):
            raise ValueError("FlexibleWater needs atoms ordered O,H,H per molecule")
        if not self.atoms.pbc.all():
            raise ValueError("FlexibleWater needs a fully periodic cell")
        cell = np.asarray(self.atoms.cell.array, dtype=float)
        terms = water_terms(self.atoms.positions, cell, self.model, self.rc, self.width, self.intra)
        stress = -terms.virial / abs(np.linalg.det(cell))
        self.results["energy"] = terms.energy
        self.results["free_energy"] = terms.energy
        self.results["forces"] = -terms.gradient
        self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]


# ---------------------------------------------------------------------------------------------
# Tensor labels: molecular dipole and polarizability, both placed on the O atom.

#: Gas-phase water polarizability (Å^3) along the molecular axes: in-plane perpendicular to
#: the bisector, out of plane, along the bisector; close to the measured components
#: (Murphy, J. Chem. Phys. 67, 5877 (1977)).
WATER_POLARIZABILITY = (1.5284, 1.4146, 1.4679)
#: Isotropic polarizability added per O neighbour within the first hydration shell (Å^3).
POLARIZABILITY_PER_NEIGHBOUR = 0.02
#: Smooth first-shell O-O coordination: full weight below 3.0 Å, none beyond 3.5 Å.
SHELL_INNER, SHELL_OUTER = 3.0, 3.5


def molecular_dipoles(positions: np.ndarray, cell: np.ndarray, model: WaterModel = TIP3P) -> np.ndarray:
    """Point-charge dipole of each molecule relative to its O (e Å), shape [n_mol, 3].

    Molecules are neutral, so ``sum_s q_s (x_s - x_O)`` is the dipole and is unchanged by
    translations and by moving a molecule to another periodic image.
    """
    x = whole_molecules(positions, cell)
    sites, q, _ = charge_sites(x, model)
    return np.einsum("s,msa->ma", q, sites - x[:, :1])


def molecular_frames(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Rotation matrices [n_mol, 3, 3] whose columns are the molecular axes.

    Column 0: in-plane, perpendicular to the bisector (H1 side); 1: out of plane; 2: the
    bisector. Swapping the two H flips columns 0 and 1 only, which leaves R diag(a) R^T as is.
    """
    x = whole_molecules(positions, cell)
    d1, d2 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 0]
    e_z = d1 + d2
    e_z /= np.linalg.norm(e_z, axis=-1, keepdims=True)
    e_x = d1 - d2
    e_x -= np.sum(e_x * e_z, axis=-1, keepdims=True) * e_z
    e_x /= np.linalg.norm(e_x, axis=-1, keepdims=True)
    e_y = np.cross(e_z, e_x)
    return np.stack([e_x, e_y, e_z], axis=-1)


def oxygen_coordination(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Smooth count of O neighbours within the first shell of each molecule's O, shape [n_mol]."""
    oxygens = positions[0::3]
    i, d = primitive_neighbor_list("id", [True] * 3, cell, oxygens, SHELL_OUTER, self_interaction=False)
    t, _ = _switch(d, SHELL_OUTER, SHELL_OUTER - SHELL_INNER)
    return np.bincount(i, weights=t, minlength=len(oxygens))


def molecular_polarizabilities(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Polarizability tensor of each molecule (Å^3), shape [n_mol, 3, 3].

    ``R diag(WATER_POLARIZABILITY) R^T`` in the molecular frame plus a small isotropic term
    that grows with the first-shell coordination, so the label depends on the environment
    while rotating with the molecule.
    """
    frames = molecular_frames(positions, cell)
    alpha = np.einsum("mai,i,mbi->mab", frames, np.asarray(WATER_POLARIZABILITY), frames)
    iso = POLARIZABILITY_PER_NEIGHBOUR * oxygen_coordination(positions, cell)
    return alpha + iso[:, None, None] * np.eye(3)
