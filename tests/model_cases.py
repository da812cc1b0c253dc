"""Descriptor and fitting cases shared by the oracle (tests/oracle) and physics (tests/physics) suites.

``DESCRIPTOR_CASES`` maps a case name to a :class:`DescriptorCase` (a DeePMD ``model.descriptor`` section plus what
the suites need to know about it); ``FITTING_CASES`` maps a fitting name to a ``fitting_net`` section. Both suites
parametrise over :func:`combinations` (every descriptor with every fitting it supports).

Adding cases: put them in a module ``tests/model_cases_<topic>.py`` that does
``from tests.model_cases import DESCRIPTOR_CASES, DescriptorCase`` and assigns new entries; every such module is
imported at the end of this one, so the cases show up in both suites with no other edit.

Also here: water-like frames, neighbour lists for mtbench (its own data layer), and realistic random statistics.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DescriptorCase:
    """One descriptor configuration under test."""

    config: dict[str, Any]  # DeePMD's ``model.descriptor`` section (``sel`` resolved, small nets)
    type_map: tuple[str, ...] = ("O", "H")
    rot_mat: bool = False  # provides a rotation matrix: dipole/polar fittings apply
    dpmodel: bool = True  # DeePMD-kit's NumPy reference implements it (oracle on outputs, float64 and float32)
    tf_backend: bool = False  # representative: compared with DeePMD-kit's TensorFlow backend (forces, virials)
    smooth: bool = True  # energy and forces continuous as an atom crosses rcut / rcut_smth (physics suite)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, for the module that added the case


SE_A = {"type": "se_e2_a", "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8], "axis_neuron": 2, "type_one_side": True,
        "seed": 1}

DESCRIPTOR_CASES: dict[str, DescriptorCase] = {
    "se_e2_a": DescriptorCase({**SE_A, "sel": [12, 24], "type_one_side": True}, rot_mat=True, tf_backend=True),
    "se_e2_a_two_side": DescriptorCase(
        {**SE_A, "sel": [12, 24], "type_one_side": False, "exclude_types": [[0, 1]], "resnet_dt": True,
         "neuron": [2, 4, 8]}, rot_mat=True, notes="per-pair nets, an excluded pair, residual doubling"),
    "se_e2_r": DescriptorCase(
        {"type": "se_e2_r", "sel": [12, 24], "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8], "type_one_side": True,
         "seed": 1}, tf_backend=True),
    "se_e2_r_excl": DescriptorCase(
        {"type": "se_r", "sel": [12, 24], "rcut": 4.0, "rcut_smth": 0.5, "neuron": [2, 4, 8], "type_one_side": True,
         "exclude_types": [[0, 1]], "resnet_dt": True, "activation_function": "softplus", "seed": 2},
        notes="alias se_r, excluded pair (masked input), residual doubling"),
    "se_e2_r_two_side": DescriptorCase(
        {"type": "se_e2_r", "sel": [12, 24], "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8], "type_one_side": False,
         "exclude_types": [[1, 1]], "seed": 3},
        dpmodel=False, tf_backend=True, notes="not in the NumPy reference: TF backend only"),
    "se_e3": DescriptorCase(
        {"type": "se_e3", "sel": [8, 16], "rcut": 3.0, "rcut_smth": 0.5, "neuron": [4, 8], "seed": 1},
        tf_backend=True),
    "se_e3_excl_3types": DescriptorCase(
        {"type": "se_at", "sel": [8, 16, 6], "rcut": 3.0, "rcut_smth": 1.0, "neuron": [4, 8], "resnet_dt": True,
         "exclude_types": [[0, 2]], "activation_function": "gelu", "seed": 2}, type_map=("O", "H", "C"),
        notes="alias se_at, three types, gelu, an excluded pair (zeroed net used for the third type)"),
    "hybrid": DescriptorCase(
        {"type": "hybrid", "list": [
            {**SE_A, "sel": [16, 20], "rcut": 3.5, "rcut_smth": 0.5},
            {"type": "se_e2_r", "sel": [14, 26], "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8],
             "type_one_side": True, "seed": 4},
            {"type": "se_e3", "sel": [8, 16], "rcut": 3.0, "rcut_smth": 0.5, "neuron": [4, 8], "seed": 5},
        ]}, tf_backend=True, notes="three cutoffs; merged list (4.0, [16, 26]) cut per sub-descriptor"),
    "hybrid_excl": DescriptorCase(
        {"type": "hybrid", "list": [
            {**SE_A, "sel": [10, 12], "rcut": 3.0, "rcut_smth": 0.5, "exclude_types": [[0, 0]]},
            {"type": "se_e2_r", "sel": [14, 26], "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8],
             "type_one_side": True, "seed": 4},
        ]}, notes="excluded pair in a short-range sub-descriptor: far neighbours of the merged list masked to 0"),
}

if importlib.util.find_spec("mtbench.model.descriptor.se_atten") is not None:
    DESCRIPTOR_CASES["hybrid_mixed"] = DescriptorCase(
        {"type": "hybrid", "list": [
            {"type": "se_atten", "sel": 30, "rcut": 3.5, "rcut_smth": 0.5, "neuron": [4, 8], "axis_neuron": 2,
             "attn": 8, "attn_layer": 1, "tebd_dim": 4, "seed": 1},
            {"type": "se_e2_r", "sel": [14, 26], "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8],
             "type_one_side": True, "seed": 4},
            {**SE_A, "sel": [10, 12], "rcut": 3.0, "rcut_smth": 0.5, "exclude_types": [[0, 0]]},
        ]}, smooth=False,
        notes="a mixed-type sub-descriptor: one distance-sorted list, split by type for the others; se_atten's "
              "attention without smooth_type_embedding jumps when a neighbour crosses its rcut (by design)")
    DESCRIPTOR_CASES["hybrid_rot_mat"] = DescriptorCase(
        {"type": "hybrid", "list": [
            {**SE_A, "sel": [10, 12], "rcut": 3.0, "rcut_smth": 0.5},
            {"type": "se_atten_v2", "sel": 30, "rcut": 3.5, "rcut_smth": 0.5, "neuron": [2, 6], "axis_neuron": 2,
             "attn": 8, "attn_layer": 1, "tebd_dim": 4, "seed": 3},
        ]}, rot_mat=True,
        notes="every sub-descriptor has a rotation matrix: concatenated (widths 8 + 6), dipole/polar heads apply")

FITTING_CASES: dict[str, dict[str, Any]] = {
    # neuron[0] = 10 differs from every descriptor width above: DeePMD-kit's TensorFlow fitting never gives its
    # first layer a shortcut while the NumPy reference (and mtbench) do when the widths match.
    "ener": {"type": "ener", "neuron": [10, 10], "seed": 1},
    "dipole": {"type": "dipole", "neuron": [10, 10], "seed": 1},
    "polar": {"type": "polar", "neuron": [10, 10], "seed": 1, "fit_diag": False},
}


def combinations(*, dpmodel_only: bool = False) -> list[tuple[str, str]]:
    """(descriptor case, fitting) pairs: energy for all, dipole and polar where there is a rotation matrix."""
    out = []
    for name, case in DESCRIPTOR_CASES.items():
        if dpmodel_only and not case.dpmodel:
            continue
        for fit in FITTING_CASES:
            if fit == "ener" or case.rot_mat:
                out.append((name, fit))
    return out


def sub_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list(config["list"]) if config["type"] == "hybrid" else [config]


def cutoffs(config: dict[str, Any]) -> list[tuple[float, float]]:
    """(rcut, rcut_smth) of the descriptor or of each sub-descriptor."""
    return [(float(c["rcut"]), float(c.get("rcut_smth", 0.5))) for c in sub_configs(config)]


def with_precision(config: dict[str, Any], precision: str) -> dict[str, Any]:
    config = copy.deepcopy(config)
    for c in sub_configs(config):
        c["precision"] = precision
    return config


def model_config(desc: str, fit: str, precision: str = "float64") -> dict[str, Any]:
    """DeePMD-kit's single-model ``model`` section for one combination."""
    case = DESCRIPTOR_CASES[desc]
    return {"type_map": list(case.type_map), "descriptor": with_precision(case.config, precision),
            "fitting_net": {**FITTING_CASES[fit], "precision": precision}}


# --- statistics ------------------------------------------------------------------------------------------------
def _stat_holders(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, dict):
        var = data.get("@variables")
        if isinstance(var, dict) and "davg" in var and "dstd" in var:
            yield var
        for key, value in data.items():
            if key != "@variables":
                yield from _stat_holders(value)
    elif isinstance(data, list):
        for value in data:
            yield from _stat_holders(value)


def randomize_descriptor_stats(descriptor: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Nonzero davg/dstd in every (sub-)descriptor dict, shaped like real statistics (rotation invariant):
    per centre type and slot a radial mean, zero angular means, one std shared by the three angular columns."""
    for var in _stat_holders(descriptor):
        dtype = np.asarray(var["davg"]).dtype
        davg = np.zeros(np.shape(var["davg"]))
        davg[..., 0] = rng.normal(0, 0.1, davg.shape[:-1])
        dstd = np.ones(np.shape(var["dstd"]))
        dstd[..., 0] = rng.uniform(0.5, 1.5, dstd.shape[:-1])
        if dstd.shape[-1] == 4:
            dstd[..., 1:] = rng.uniform(0.5, 1.5, dstd.shape[:-1])[..., None]
        var["davg"], var["dstd"] = davg.astype(dtype), dstd.astype(dtype)
    return descriptor


def randomize_mtbench_stats(data: dict[str, Any], rng: np.random.Generator, *, per_type: bool = False
                            ) -> dict[str, Any]:
    """The same for mtbench's own model dict (``MultiTaskModel.to_dict``): descriptor stats, every head's bias.

    ``per_type`` gives every slot of a centre type the same values, as real statistics have (DeePMD-kit's
    TensorFlow operators assume it)."""
    randomize_descriptor_stats(data["descriptor"], rng)
    if per_type:
        for var in _stat_holders(data["descriptor"]):
            var["davg"][:] = var["davg"][:, :1]
            var["dstd"][:] = var["dstd"][:, :1]
    for head in data["heads"].values():
        bias = head["@variables"]["out_bias"]
        head["@variables"]["out_bias"] = rng.normal(0, 1, np.shape(bias))
    return data


def mtbench_model(desc: str, fit: str, *, seed: int = 1, precision: str = "float64", per_type: bool = False):
    """A fresh mtbench model built from the DeePMD input keys (``build``), head ``t``, with random statistics."""
    from mtbench.model.multitask import MultiTaskModel

    cfg = model_config(desc, fit, precision)
    model = MultiTaskModel.from_config(cfg["type_map"], cfg["descriptor"], {"t": cfg["fitting_net"]}, seed=seed)
    data = randomize_mtbench_stats(model.to_dict(), np.random.default_rng(seed), per_type=per_type)
    return MultiTaskModel.from_dict(data)


def randomize_model_stats(model: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Random descriptor statistics and output bias in a DeePMD-kit standard model dict (in place)."""
    randomize_descriptor_stats(model["descriptor"], rng)
    bias = model["@variables"]["out_bias"]
    model["@variables"]["out_bias"] = rng.normal(0, 1, np.shape(bias)).astype(np.asarray(bias).dtype)
    return model


# --- frames ----------------------------------------------------------------------------------------------------
OH, HOH = 0.9572, math.radians(104.52)


@dataclass
class Frames:
    """A batch of frames with the same atoms; ``box`` None = not periodic."""

    coord: np.ndarray  # [nf, N, 3]
    atype: np.ndarray  # [nf, N] int
    box: np.ndarray | None  # [nf, 3, 3]

    @property
    def nf(self) -> int:
        return self.coord.shape[0]

    def mt_box(self) -> np.ndarray:
        return np.zeros((self.nf, 3, 3)) if self.box is None else self.box

    def dp_box(self) -> np.ndarray | None:
        return None if self.box is None else self.box.reshape(self.nf, 9)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _molecule(rng: np.random.Generator) -> np.ndarray:
    """O, H, H of one rigid water molecule at the origin, randomly oriented."""
    h1 = np.array([OH, 0.0, 0.0])
    h2 = OH * np.array([math.cos(HOH), math.sin(HOH), 0.0])
    return np.stack([np.zeros(3), h1, h2]) @ _random_rotation(rng).T


def _min_image(d: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    if box is None:
        return d
    frac = d @ np.linalg.inv(box)
    return (frac - np.rint(frac)) @ box


def water(rng: np.random.Generator, nmol: int, box: np.ndarray | None, *, min_oo: float = 2.5,
          extent: float = 4.0, ntypes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``nmol`` water molecules (atoms O, H, H per molecule) with O-O distances above ``min_oo``.

    Periodic when ``box`` is given (positions uniform in the cell), else in a ball of radius ``extent``.
    With three types every third oxygen becomes type 2.
    """
    centres = np.zeros((0, 3))
    for _ in range(100000):
        if len(centres) == nmol:
            break
        if box is not None:
            p = rng.uniform(0, 1, 3) @ box
        else:
            p = rng.normal(size=3)
            p = p / np.linalg.norm(p) * extent * rng.uniform(0, 1) ** (1 / 3)
        if not len(centres) or np.linalg.norm(_min_image(centres - p, box), axis=-1).min() > min_oo:
            centres = np.concatenate([centres, p[None]])
    else:
        raise RuntimeError("could not place the molecules")
    coord = np.concatenate([c + _molecule(rng) for c in centres])
    atype = np.tile([0, 1, 1], nmol)
    if ntypes == 3:
        atype[0::9] = 2
    return coord, atype


def water_frames(rng: np.random.Generator, nf: int, nmol: int, box: np.ndarray | None, ntypes: int = 2,
                 **kw: Any) -> Frames:
    coords, atypes = zip(*(water(rng, nmol, box, ntypes=ntypes, **kw) for _ in range(nf)))
    return Frames(np.stack(coords), np.stack(atypes),
                  None if box is None else np.tile(np.asarray(box, float), (nf, 1, 1)))


TRICLINIC = np.array([[7.4, 0.0, 0.0], [1.6, 7.1, 0.0], [-1.2, 0.9, 7.0]])


def near_cutoff_frame(rng: np.random.Generator, cuts: list[tuple[float, float]], ntypes: int = 2) -> Frames:
    """One molecule-sized cluster plus atoms at ``rcut -/+ 1e-9`` and ``rcut_smth -/+ 1e-9`` from atom 0."""
    coord, atype = water(rng, 3, None, extent=2.0, ntypes=ntypes)
    extra, types = [], []
    radii = sorted({r for rc, rs in cuts for r in (rc, rs) if r > 0})
    for k, r in enumerate(radii):
        for sign in (-1.0, 1.0):
            v = rng.normal(size=3)
            extra.append(coord[0] + v / np.linalg.norm(v) * (r + sign * 1e-9))
            types.append(k % ntypes)
    coord = np.concatenate([coord, np.array(extra)])
    atype = np.concatenate([atype, np.array(types)])
    return Frames(coord[None], atype[None], None)


# --- neighbour lists ---------------------------------------------------------------------------------------------
def mtbench_nlists(specs: list[Any], frames: Frames, ntypes: int) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
    """mtbench's own neighbour lists (its data layer) for every spec: spec -> (idx, shift) over frames."""
    from mtbench.data.neighbor import build_neighbor_list

    out = {}
    for spec in specs:
        idx, shift = [], []
        for f in range(frames.nf):
            i, s, _ = build_neighbor_list(frames.coord[f], None if frames.box is None else frames.box[f],
                                          frames.atype[f], spec, ntypes)
            idx.append(i)
            shift.append(s.astype(np.int32))
        out[spec] = (np.stack(idx), np.stack(shift))
    return out


def predict(model: Any, frames: Frames, task: str = "t", **kw: Any) -> dict[str, np.ndarray]:
    """mtbench predictions on ``frames`` with neighbour lists from mtbench's data layer."""
    nlists = mtbench_nlists(model.neighbor_specs(), frames, model.ntypes)
    out = model.predict(task, frames.coord, frames.mt_box(), frames.atype, nlists, **kw)
    return {k: np.asarray(v) for k, v in out.items()}


def neighbor_counts(spec: Any, frames: Frames, ntypes: int) -> np.ndarray:
    """[nf, N, ntypes] neighbours of each type within ``spec.rcut`` before truncation to ``sel``."""
    from mtbench.data.neighbor import build_neighbor_list

    return np.stack([build_neighbor_list(frames.coord[f], None if frames.box is None else frames.box[f],
                                         frames.atype[f], spec, ntypes)[2] for f in range(frames.nf)])


def overflows(spec: Any, frames: Frames, ntypes: int) -> bool:
    """Whether some atom has more neighbours than the spec's slots (of one type, or in all if mixed)."""
    counts = neighbor_counts(spec, frames, ntypes)
    if spec.mixed_types:
        return bool((counts.sum(-1) > spec.sel[0]).any())
    return bool((counts > np.asarray(spec.sel)).any())


# --- more cases from other modules ---------------------------------------------------------------------------------
for _path in sorted(Path(__file__).parent.glob("model_cases_*.py")):
    importlib.import_module(f"{__package__ or 'tests'}.{_path.stem}")
