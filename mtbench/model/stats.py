"""Output statistics computed from data before training (DeePMD v2 rules).

- energy bias per type: least squares of per-system mean energies on per-system type counts; ``lstsq`` gives the
  minimum-norm solution when compositions are collinear (all systems with the same stoichiometry);
- polarizability diagonal shift per selected type from atomic labels (one equation per type per batch) or from
  global labels (one equation per batch);
- frame / atomic parameter mean and inverse std (std floored at ``protect``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def energy_bias(mean_energy: Sequence[float], type_counts: Sequence[Sequence[float]], *,
                rcond: float | None = None, atom_ener: Sequence[float | None] | None = None) -> np.ndarray:
    """Per-type energy shift ``b`` minimising ``sum_s (c_s . b - E_s)^2``; ``atom_ener`` types are fixed."""
    counts = np.asarray(type_counts, dtype=np.float64)
    energies = np.asarray(mean_energy, dtype=np.float64).copy()
    ntypes = counts.shape[1]
    fixed = {t: float(v) for t, v in enumerate(atom_ener or []) if v is not None and t < ntypes}
    free = [t for t in range(ntypes) if t not in fixed]
    for t, v in fixed.items():
        energies -= counts[:, t] * v
    bias = np.zeros(ntypes)
    if free:
        sol = np.linalg.lstsq(counts[:, free], energies, rcond=rcond)[0]
        bias[free] = sol
    for t, v in fixed.items():
        bias[t] = v
    return bias


def polar_diag_shift(atomic_rows: Sequence[tuple[np.ndarray, np.ndarray]],
                     global_rows: Sequence[tuple[np.ndarray, np.ndarray]], ntypes: int,
                     sel_type: Sequence[int], rcond: float | None = None) -> np.ndarray:
    """Per-type isotropic shift (mean of the diagonal of the fitted 3x3 constant).

    ``atomic_rows``: (atype [N], atomic polarizability [N, 9]) of one frame per stat batch;
    ``global_rows``: (atype [N], global polarizability [9]) of one frame per stat batch.
    """
    sel = list(sel_type)
    rows, rhs = [], []
    for atype, pol in atomic_rows:
        for t in sel:
            m = atype == t
            if not m.any():
                continue
            coeff = np.zeros(len(sel))
            coeff[sel.index(t)] = m.sum()
            rows.append(coeff)
            rhs.append(pol[m].sum(axis=0))
    for atype, pol in global_rows:
        rows.append(np.array([(atype == t).sum() for t in sel], dtype=np.float64))
        rhs.append(np.asarray(pol, np.float64).reshape(9))
    out = np.zeros(ntypes)
    if not rows:
        return out
    sol = np.linalg.lstsq(np.asarray(rows), np.asarray(rhs), rcond=rcond)[0]  # [nsel, 9]
    for k, t in enumerate(sel):
        out[t] = np.mean(sol[k].reshape(3, 3).diagonal())
    return out


def param_stats(values: np.ndarray, protect: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse std over rows of ``values`` [n, d] (std floored at ``protect``)."""
    values = np.asarray(values, np.float64)
    avg = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std < protect, protect, std)
    return avg, 1.0 / std


def type_counts(atype: np.ndarray, ntypes: int) -> np.ndarray:
    return np.bincount(np.asarray(atype).reshape(-1), minlength=ntypes)[:ntypes].astype(np.float64)


def mean_by_system(samples: Mapping[int, Sequence[float]]) -> dict[int, float]:
    return {k: float(np.mean(v)) for k, v in samples.items()}
