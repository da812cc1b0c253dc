"""Forces and virials equal central finite differences of the energy (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.oracle.dpmodel_util import build_oracle, mtbench_nlists
from tests.physics.fd import assert_force_virial_are_energy_derivatives


@pytest.mark.parametrize("one_side", [True, False])
def test_force_and_virial_are_energy_derivatives(one_side: bool) -> None:
    rng = np.random.default_rng(3)
    cfg = {"type_map": ["O", "H"],
           "descriptor": {"type": "se_e2_a", "sel": [10, 20], "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8],
                          "axis_neuron": 2, "type_one_side": one_side, "seed": 2},
           "fitting_net": {"neuron": [8, 8], "seed": 2}}
    _, mt = build_oracle(cfg, rng)
    box = (np.eye(3) * 7.0 + rng.normal(0, 0.3, (3, 3)))[None]
    coord = (rng.uniform(0, 1, (1, 20, 3)) @ box)
    atype = np.array([[0] * 7 + [1] * 13])
    nl = mtbench_nlists(mt, coord, atype, box)  # held fixed: no atom crosses rcut for h = 1e-5
    assert_force_virial_are_energy_derivatives(mt, coord, box, atype, nl, [(0, 0), (5, 1), (17, 2)])
