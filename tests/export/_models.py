"""Tiny multi-task models and frames for the export tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtbench.data.neighbor import build_neighbor_list
from mtbench.model.multitask import MultiTaskModel
from tests.model_cases import randomize_descriptor_stats

TYPE_MAP = ["O", "H"]
DESCRIPTORS: dict[str, dict[str, Any]] = {
    "se_e2_a": {"type": "se_e2_a", "sel": [8, 16], "rcut": 3.5, "rcut_smth": 0.5, "neuron": [4, 8],
                "axis_neuron": 2, "type_one_side": False, "seed": 1, "precision": "float64"},
    "se_atten": {"type": "se_atten", "sel": 24, "rcut": 3.5, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2,
                 "tebd_dim": 4, "attn": 8, "attn_layer": 1, "seed": 1, "precision": "float64"},
    "hybrid": {"type": "hybrid", "list": [
        {"type": "se_e2_a", "sel": [6, 12], "rcut": 3.0, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2,
         "seed": 1},
        {"type": "se_e2_r", "sel": [8, 16], "rcut": 3.5, "rcut_smth": 0.5, "neuron": [4, 8], "seed": 2}]},
}
FITTINGS: dict[str, dict[str, Any]] = {
    "ener": {"type": "ener", "neuron": [8, 8], "seed": 1},
    "ener_fp": {"type": "ener", "neuron": [8, 8], "numb_fparam": 1, "numb_aparam": 1, "seed": 2},
    "dipole": {"type": "dipole", "neuron": [8, 8], "sel_type": [0], "seed": 3},
    "polar": {"type": "polar", "neuron": [8, 8], "sel_type": [0], "fit_diag": False, "seed": 4},
}
SHARED_FITTINGS: dict[str, dict[str, Any]] = {
    "tip3p": {"type": "ener", "neuron": [8, 8, 8], "layer_name": ["l0", None, "l2", None], "seed": 1},
    "tip4p": {"type": "ener", "neuron": [8, 8, 8], "layer_name": ["l0", None, "l2", None], "seed": 2},
}


def randomized(model: MultiTaskModel, seed: int = 0) -> MultiTaskModel:
    """The model with physical (rotation-invariant) nonzero statistics, so that every statistic is exercised."""
    rng = np.random.default_rng(seed)
    data = model.to_dict()

    randomize_descriptor_stats(data["descriptor"], rng)
    for head in data["heads"].values():
        fit = head["fitting"]
        bias = head["@variables"]["out_bias"]
        if fit["type"] == "ener":
            head["@variables"]["out_bias"] = rng.normal(0, 1, bias.shape)
        elif fit["type"] == "polar":  # isotropic shifts, none for the types the head does not fit
            fitted = np.array([t not in fit["exclude_types"] for t in range(bias.shape[1])], float)
            eye = np.eye(3).reshape(1, 1, 9)
            head["@variables"]["out_bias"] = (rng.uniform(0.5, 1.5, bias.shape[1]) * fitted)[None, :, None] * eye
            fit["@variables"]["constant_matrix"] = rng.uniform(0.5, 1.5, bias.shape[1]) * fitted
        var = fit["@variables"]
        for key in ("fparam_avg", "aparam_avg"):
            if var.get(key) is not None:
                var[key] = rng.normal(0, 1, np.shape(var[key]))
        for key in ("fparam_inv_std", "aparam_inv_std"):
            if var.get(key) is not None:
                var[key] = rng.uniform(0.5, 2.0, np.shape(var[key]))
    return MultiTaskModel.from_dict(data)


def tiny_model(descriptor: str = "se_e2_a", fittings: dict[str, dict[str, Any]] | None = None,
               seed: int = 0) -> MultiTaskModel:
    fittings = FITTINGS if fittings is None else fittings
    model = MultiTaskModel.from_config(TYPE_MAP, dict(DESCRIPTORS[descriptor]), fittings, seed=1)
    return randomized(model, seed)


def frames(seed: int = 0, nf: int = 2, nmol: int = 6, periodic: bool = True) -> dict[str, np.ndarray]:
    """Water-like frames: ``nmol`` molecules in a ~6 Å box (triclinic noise), or the same molecules without a box."""
    rng = np.random.default_rng(seed)
    box = np.tile(np.eye(3) * 5.5, (nf, 1, 1)) + rng.normal(0, 0.2, (nf, 3, 3))
    centres = rng.uniform(0, 1, (nf, nmol, 1, 3)) @ box[:, None]
    h = rng.normal(0, 0.6, (nf, nmol, 2, 3))
    coord = np.concatenate([centres, centres + h], axis=2).reshape(nf, 3 * nmol, 3)
    atype = np.tile(np.array([0] * nmol + [1] * (2 * nmol), np.int32), (nf, 1))
    coord = np.concatenate([coord[:, 0::3], coord[:, 1::3], coord[:, 2::3]], axis=1)  # O first, then H
    out = {"coord": coord, "box": box if periodic else np.zeros_like(box), "atype": atype,
           "fparam": rng.normal(0, 1, (nf, 1)), "aparam": rng.normal(0, 1, (nf, 3 * nmol, 1))}
    return out


def nlists(model: MultiTaskModel, f: dict[str, np.ndarray]) -> dict:
    periodic = bool(np.any(f["box"] != 0))
    out = {}
    for spec in model.neighbor_specs():
        built = [build_neighbor_list(f["coord"][k], f["box"][k] if periodic else None, f["atype"][k], spec,
                                     model.ntypes)[:2] for k in range(len(f["coord"]))]
        out[spec] = (np.stack([b[0] for b in built]), np.stack([b[1] for b in built]))
    return out


def predict(model: MultiTaskModel, task: str, f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fit = model.heads[task].fitting
    out = model.predict(task, f["coord"], f["box"], f["atype"], nlists(model, f),
                        f["fparam"] if fit.numb_fparam else None, f["aparam"] if fit.numb_aparam else None)
    return {k: np.asarray(v) for k, v in out.items()}


def assert_close(got: np.ndarray, want: np.ndarray, rtol: float) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(float(np.max(np.abs(want))), 1e-300)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= rtol * scale, f"max abs diff {err:.3e} > {rtol:g} x {scale:.3e}"
