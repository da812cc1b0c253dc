"""Central finite differences of one frame's energy, for the force and virial checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def assert_force_virial_are_energy_derivatives(mt: Any, coord: np.ndarray, box: np.ndarray, atype: np.ndarray,
                                                nl: Any, atoms: Sequence[tuple[int, int]], h: float = 1e-5) -> None:
    """F = -dE/dx on the (atom, axis) pairs ``atoms`` and virial = -dE/d(strain), with the neighbour list ``nl``
    held fixed (no atom may cross rcut for this ``h``)."""
    out = mt.predict("t", coord, box, atype, nl)

    def energy(c: np.ndarray, b: np.ndarray) -> float:
        return float(mt.predict("t", c, b, atype, nl, do_force=False)["energy"][0])

    for i, a in atoms:
        cp, cm = coord.copy(), coord.copy()
        cp[0, i, a] += h
        cm[0, i, a] -= h
        fd = -(energy(cp, box) - energy(cm, box)) / (2 * h)
        assert abs(fd - float(out["force"][0, i, a])) < 1e-7 * max(1.0, abs(fd))
    vfd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = h
            vfd[a, b] = -(energy(coord @ (np.eye(3) + e), box @ (np.eye(3) + e))
                          - energy(coord @ (np.eye(3) - e), box @ (np.eye(3) - e))) / (2 * h)
    np.testing.assert_allclose(np.asarray(out["virial"][0]), vfd.ravel(), atol=1e-7)
