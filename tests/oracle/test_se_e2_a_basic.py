"""se_e2_a with energy/dipole/polar heads equals DeePMD-kit's NumPy reference (float64, 1e-10 relative)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.oracle.dpmodel_util import build_oracle, mtbench_nlists

FITTINGS = {
    "ener": {"neuron": [8, 8], "seed": 1},
    "dipole": {"type": "dipole", "neuron": [8, 8], "seed": 1},
    "polar": {"type": "polar", "neuron": [8, 8], "seed": 1, "fit_diag": False},
}


def frames(rng: np.random.Generator, nf: int = 2, n: int = 24):
    box = np.tile(np.eye(3) * 7.0, (nf, 1, 1)) + rng.normal(0, 0.3, (nf, 3, 3))
    coord = rng.uniform(0, 1, (nf, n, 3)) @ box
    atype = np.array([[0] * (n // 3) + [1] * (n - n // 3)] * nf)
    return coord, atype, box


@pytest.mark.oracle
@pytest.mark.parametrize("fitting", sorted(FITTINGS))
@pytest.mark.parametrize("one_side", [True, False])
def test_matches_dpmodel(fitting: str, one_side: bool) -> None:
    rng = np.random.default_rng(7)
    cfg = {"type_map": ["O", "H"],
           "descriptor": {"type": "se_e2_a", "sel": [10, 20], "rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8],
                          "axis_neuron": 2, "type_one_side": one_side, "seed": 1, "precision": "float64"},
           "fitting_net": dict(FITTINGS[fitting], precision="float64")}
    ref, mt = build_oracle(cfg, rng)
    coord, atype, box = frames(rng)
    want = ref.call(coord.reshape(len(coord), -1), atype, box.reshape(len(box), 9))
    got = mt.predict("t", coord, box, atype, mtbench_nlists(mt, coord, atype, box))
    if fitting == "ener":
        pairs = [(got["energy"], want["energy"].ravel()), (got["atom_energy"], want["atom_energy"][..., 0])]
    elif fitting == "dipole":
        pairs = [(got["atomic"], want["dipole"]), (got["global"], want["global_dipole"])]
    else:
        nf, n = atype.shape
        pairs = [(got["atomic"], want["polar"].reshape(nf, n, 9)), (got["global"], want["global_polar"].reshape(nf, 9))]
    for g, w in pairs:
        g = np.asarray(g)
        assert g.shape == w.shape
        assert np.max(np.abs(g - w)) <= 1e-10 * np.max(np.abs(w))


@pytest.mark.oracle
@pytest.mark.parametrize("fitting", ["ener", "dipole"])
def test_padding_shortcut_matches_dpmodel(fitting: str) -> None:
    """Per-type (slot-uniform) statistics switch on the shortcut that evaluates the embedding on real neighbours
    only; results must still equal the oracle, forces included (vs the dense path)."""
    from deepmd.dpmodel.model.model import get_model

    from tests.oracle.dpmodel_util import ATOMIC_KEYS
    from mtbench.model.multitask import MultiTaskModel

    rng = np.random.default_rng(11)
    cfg = {"type_map": ["O", "H"],
           "descriptor": {"type": "se_e2_a", "sel": [10, 20], "rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8],
                          "axis_neuron": 2, "type_one_side": True, "seed": 1},
           "fitting_net": dict(FITTINGS[fitting])}
    ref = get_model(cfg)
    data = ref.serialize()
    var = data["descriptor"]["@variables"]
    per_type = rng.uniform(0.5, 1.5, (2, 1, 1))
    var["davg"] = np.zeros_like(var["davg"]) + np.concatenate([rng.normal(0, 0.2, (2, 1, 1)), np.zeros((2, 1, 3))], -1)
    var["dstd"] = np.ones_like(var["dstd"]) * per_type
    ref = type(ref).deserialize(data)
    mt = MultiTaskModel.from_dict({"type_map": data["type_map"], "descriptor": data["descriptor"],
                                   "heads": {"t": {"fitting": data["fitting"], **{k: data[k] for k in ATOMIC_KEYS}}}})
    assert mt.descriptor._uniform_stats
    coord, atype, box = frames(rng)
    nl = mtbench_nlists(mt, coord, atype, box)
    got = mt.predict("t", coord, box, atype, nl)
    want = ref.call(coord.reshape(len(coord), -1), atype, box.reshape(len(box), 9))
    key, wkey = ("energy", "energy") if fitting == "ener" else ("atomic", "dipole")
    w = want[wkey].reshape(np.shape(got[key]))
    assert np.max(np.abs(np.asarray(got[key]) - w)) <= 1e-10 * np.max(np.abs(w))
    if fitting == "ener":
        mt.descriptor.skip_padding = False
        dense = mt.predict("t", coord, box, atype, nl)
        for k in ("force", "virial"):
            np.testing.assert_allclose(np.asarray(got[k]), np.asarray(dense[k]), rtol=1e-10, atol=1e-13)
