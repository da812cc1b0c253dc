"""Every descriptor x fitting equals DeePMD-kit's reference implementations.

* Outputs (atomic and total energy, atomic and global dipole / polarizability) against the NumPy reference
  ``deepmd.dpmodel`` on five frame sets: periodic water in a cubic and a triclinic box, a molecule without periodic
  boundaries, a dense frame where atoms have more neighbours than ``sel``, and atoms within 1e-9 of every cutoff.
  float64: relative difference (to the largest reference value) <= 1e-10. float32 (descriptor and fitting): 1e-5,
  see ``F32_TOL``. Statistics are random per centre type *and slot*, so the slot order of the neighbour lists is
  checked too.
* Layout: mtbench reads DeePMD-kit's serialized dict and writes it back unchanged; DeePMD-kit deserializes a fresh
  mtbench model and computes the same numbers.
* Forces and virials (NaN in the NumPy reference, which has no autodiff): the same model converted to DeePMD-kit's
  TensorFlow backend (``dp convert-backend``'s code path, then ``DeepPot``), one energy model per descriptor, frames
  without overflow (the TF operator selects neighbours per type, the reference the nearest ``sum(sel)`` first).
  Statistics there are per centre type only, like real statistics: DeePMD-kit's TF operators assume one value per
  type (with per-slot values even its own forces disagree with its energies). The conversion runs once per test
  session in a subprocess (the TF backend switches TensorFlow to graph mode), started in the background as soon as
  the first test of this module runs.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("deepmd.dpmodel", reason="deepmd-kit (the oracle) is a test extra")

from deepmd.dpmodel.model.model import get_model
from deepmd.dpmodel.utils.nlist import extend_input_and_build_neighbor_list, nlist_distinguish_types
from deepmd.utils.argcheck import model_args

from mtbench.data.neighbor import NeighborSpec
from mtbench.model.descriptor import descriptor_from_dict
from mtbench.model.descriptor.hybrid import split_by_type
from mtbench.model.env_mat import Neighbors, neighbor_types, pair_vectors
from mtbench.model.multitask import MultiTaskModel
from tests.model_cases import (
    DESCRIPTOR_CASES,
    TRICLINIC,
    Frames,
    combinations,
    cutoffs,
    model_config,
    mtbench_model,
    mtbench_nlists,
    near_cutoff_frame,
    overflows,
    predict,
    randomize_model_stats,
    water_frames,
)

pytestmark = pytest.mark.oracle

F64_TOL = 1e-10
# float32: unit roundoff 6e-8. The reference computes the environment matrix from float32 coordinates, mtbench in
# float64 and rounds once after normalisation (as DeePMD-kit's TF code does); a few layers, sums over up to 40 slots
# and the quadratic form T^T T grow that to a few 1e-6 at most (measured: <= 3e-6, on global dipoles where terms
# cancel). 1e-5 leaves ~3x margin and still flags anything not computed in float32 rounding (a wrong cast or
# layer gives >= 1e-3).
F32_TOL = 1e-5
ATOMIC_KEYS = ("atom_exclude_types", "pair_exclude_types", "rcond", "preset_out_bias", "@variables")


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


# --- frames ----------------------------------------------------------------------------------------------------
FRAME_SETS = ("water", "triclinic", "molecule", "overflow", "near_rcut")
TF_FRAME_SETS = ("water", "triclinic", "molecule")


def frames(name: str, desc: str) -> Frames:
    case = DESCRIPTOR_CASES[desc]
    cuts = tuple(cutoffs(case.config)) if name == "near_rcut" else ()
    return _frames(name, len(case.type_map), cuts)


@functools.cache
def _frames(name: str, ntypes: int, cuts: tuple[tuple[float, float], ...]) -> Frames:
    rng = np.random.default_rng(_seed(name, str(ntypes)))
    if name == "water":
        return water_frames(rng, 2, 12, np.eye(3) * 7.1, ntypes)
    if name == "triclinic":
        return water_frames(rng, 1, 12, TRICLINIC, ntypes)
    if name == "molecule":
        return water_frames(rng, 1, 5, None, ntypes)
    if name == "overflow":
        return water_frames(rng, 1, 12, np.eye(3) * 5.2, ntypes, min_oo=2.0)
    if name == "near_rcut":
        return near_cutoff_frame(rng, list(cuts), ntypes)
    raise KeyError(name)


# --- models ----------------------------------------------------------------------------------------------------
def mtbench_from_dp(data: dict[str, Any]) -> MultiTaskModel:
    return MultiTaskModel.from_dict({"type_map": data["type_map"], "descriptor": data["descriptor"],
                                     "heads": {"t": {"fitting": data["fitting"],
                                                     **{k: data[k] for k in ATOMIC_KEYS}}}})


@functools.cache
def oracle_pair(desc: str, fit: str, precision: str = "float64"):
    """(DeePMD-kit reference model with random statistics, the same model in mtbench)."""
    ref = get_model(model_config(desc, fit, precision))
    data = randomize_model_stats(ref.serialize(), np.random.default_rng(_seed(desc, fit, precision)))
    ref = type(ref).deserialize(data)
    return ref, mtbench_from_dp(data)


def ref_outputs(ref: Any, fit: str, fr: Frames) -> dict[str, np.ndarray]:
    out = ref.call(fr.coord.reshape(fr.nf, -1), fr.atype, fr.dp_box())
    n = fr.atype.shape[1]
    if fit == "ener":
        return {"atomic": out["atom_energy"][..., 0], "global": out["energy"].reshape(fr.nf)}
    if fit == "dipole":
        return {"atomic": out["dipole"], "global": out["global_dipole"]}
    return {"atomic": out["polar"].reshape(fr.nf, n, 9), "global": out["global_polar"].reshape(fr.nf, 9)}


def mt_outputs(mt: MultiTaskModel, fit: str, fr: Frames) -> dict[str, np.ndarray]:
    out = predict(mt, fr, do_force=False)
    if fit == "ener":
        return {"atomic": out["atom_energy"], "global": out["energy"]}
    return {"atomic": out["atomic"], "global": out["global"]}


def neighbors(fr: Frames, specs: list[NeighborSpec], ntypes: int) -> dict[NeighborSpec, Neighbors]:
    """Pair vectors for any neighbour specs (the model's ``_neighbors`` only builds the model's own)."""
    out = {}
    for spec, (idx, shift) in mtbench_nlists(specs, fr, ntypes).items():
        rij, mask = pair_vectors(fr.coord, fr.mt_box(), idx, shift)
        out[spec] = Neighbors(rij, mask, neighbor_types(fr.atype.astype(np.int32), idx, ntypes))
    return out


def rel_diff(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert np.all(np.isfinite(got))
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def assert_outputs_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray], tol: float) -> None:
    diffs = {k: rel_diff(got[k], want[k]) for k in want}
    assert max(diffs.values()) <= tol, diffs


# --- outputs against the NumPy reference -------------------------------------------------------------------------
@pytest.mark.parametrize("frame_set", FRAME_SETS)
@pytest.mark.parametrize(("desc", "fit"), combinations(dpmodel_only=True))
def test_matches_dpmodel(desc: str, fit: str, frame_set: str) -> None:
    ref, mt = oracle_pair(desc, fit)
    fr = frames(frame_set, desc)
    if frame_set == "overflow":
        assert overflows(mt.neighbor_specs()[0], fr, mt.ntypes), "the frame should overflow sel"
    if frame_set in ("water", "triclinic", "molecule"):
        assert not overflows(mt.neighbor_specs()[0], fr, mt.ntypes)
    assert_outputs_close(mt_outputs(mt, fit, fr), ref_outputs(ref, fit, fr), F64_TOL)


@pytest.mark.parametrize("desc", [d for d, c in DESCRIPTOR_CASES.items() if c.dpmodel])
def test_float32_matches_dpmodel(desc: str) -> None:
    fit = "dipole" if DESCRIPTOR_CASES[desc].rot_mat else "ener"
    ref, mt = oracle_pair(desc, fit, "float32")
    fr = frames("water", desc)
    got = mt_outputs(mt, fit, fr)
    assert_outputs_close(got, ref_outputs(ref, fit, fr), F32_TOL)
    # and the arithmetic really is float32: the same weights in float64 give other numbers
    data = mt.to_dict()
    for var in _variables(data):
        for k, v in var.items():
            if isinstance(v, np.ndarray) and v.dtype == np.float32:
                var[k] = v.astype(np.float64)
    as64 = MultiTaskModel.from_dict(_with_precision64(data))
    assert max(rel_diff(got[k], v) for k, v in mt_outputs(as64, fit, fr).items()) > 1e-9


def _variables(data: Any):
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "@variables" and isinstance(v, dict):
                yield v
            else:
                yield from _variables(v)
    elif isinstance(data, list):
        for v in data:
            yield from _variables(v)


def _with_precision64(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ("float64" if k == "precision" else _with_precision64(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_with_precision64(v) for v in data]
    return data


# --- layout: both directions -------------------------------------------------------------------------------------
def assert_same_tree(got: Any, want: Any, path: str = "", *, values: bool = True) -> None:
    """Equal nested dicts/lists, scalars of the same type, arrays with equal dtype, shape and (``values``) values."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (path, sorted(set(got) ^ set(want)))
        for k in want:
            assert_same_tree(got[k], want[k], f"{path}.{k}", values=values)
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_tree(g, w, f"{path}[{i}]", values=values)
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape, path
        assert not values or np.array_equal(got, want), path
    else:
        assert type(got) is type(want) and got == want, (path, got, want)


@pytest.mark.parametrize(("precision", "trainable"), [("float64", True), ("float32", False)])
@pytest.mark.parametrize("desc", [d for d, c in DESCRIPTOR_CASES.items() if c.dpmodel])
def test_build_gives_dpmodel_layout(desc: str, precision: str, trainable: bool) -> None:
    """``build`` from DeePMD input keys gives the dict DeePMD-kit builds from the same keys (up to weights); keys
    left out take DeePMD's input defaults (its argcheck, as ``dp train`` applies them)."""
    cfg = model_config(desc, "ener", precision)
    for sub in cfg["descriptor"]["list"] if cfg["descriptor"]["type"] == "hybrid" else [cfg["descriptor"]]:
        sub["trainable"] = trainable
    mt = MultiTaskModel.from_config(cfg["type_map"], copy.deepcopy(cfg["descriptor"]), {"t": cfg["fitting_net"]},
                                    seed=2)
    want = get_model(model_args().normalize_value(copy.deepcopy(cfg), trim_pattern="_*")).serialize()["descriptor"]
    assert_same_tree(mt.to_dict()["descriptor"], want, values=False)  # weights are random: dtypes and shapes
    subs = getattr(mt.descriptor, "descriptors", [mt.descriptor])
    variables = mt.descriptor.trainable_variables
    if not all(d.type_name in ("se_e2_a", "se_e2_r", "se_e3") for d in subs):
        return  # (se_atten has further trainability switches: trainable_ln)
    if not trainable:
        assert not variables
    else:  # exactly the nets DeePMD-kit evaluates and trains (not the zeroed/unused ones)
        nets = [n for d in subs for n in d.embeddings.networks
                if n is not None and any(np.any(layer.w.numpy()) for layer in n.layers)]
        assert sum(int(np.prod(v.shape)) for v in variables) == sum(
            int(np.prod(v.shape)) for n in nets for v in n.trainable_variables) > 0


@pytest.mark.parametrize("desc", [d for d, c in DESCRIPTOR_CASES.items() if c.dpmodel])
def test_reads_and_writes_dpmodel_layout(desc: str) -> None:
    """DeePMD-kit's serialized descriptor -> mtbench -> dict: identical, key for key and bit for bit."""
    ref, _ = oracle_pair(desc, "ener")
    want = ref.serialize()["descriptor"]
    assert_same_tree(descriptor_from_dict(copy.deepcopy(want)).to_dict(), want)


def _zero_unused_se_a_nets(desc: dict[str, Any]) -> dict[str, Any]:
    """se_e2_a with per-pair nets never evaluates the nets of excluded pairs; DeePMD-kit writes them zeroed,
    mtbench's se_e2_a keeps its random initial values. Zero them on both sides (they cannot change outputs)."""
    for sub in desc["list"] if desc["type"] == "hybrid" else [desc]:
        if sub["type"] in ("se_e2_a", "se_a") and not sub["type_one_side"] and sub["exclude_types"]:
            nt = sub["embeddings"]["ntypes"]
            for a, b in sub["exclude_types"]:
                for k in (a + b * nt, b + a * nt):
                    for layer in sub["embeddings"]["networks"][k]["layers"]:
                        layer["@variables"] = {n: None if v is None else np.zeros_like(v)
                                               for n, v in layer["@variables"].items()}
    return desc


@pytest.mark.parametrize(("desc", "fit"), combinations(dpmodel_only=True))
def test_dpmodel_reads_fresh_mtbench_model(desc: str, fit: str) -> None:
    """A model built by mtbench from DeePMD input keys, handed to DeePMD-kit: same outputs, same dict back."""
    mt = mtbench_model(desc, fit, seed=_seed("fresh", desc, fit))
    head = mt.head_model_dict("t")
    ref = type(get_model(model_config(desc, fit))).deserialize(copy.deepcopy(head))
    fr = frames("water", desc)
    got = mt_outputs(mt, fit, fr)
    assert_outputs_close(got, ref_outputs(ref, fit, fr), F64_TOL)
    assert_same_tree(_zero_unused_se_a_nets(ref.serialize()["descriptor"]),
                     _zero_unused_se_a_nets(head["descriptor"]))
    again = MultiTaskModel.from_dict(mt.to_dict())
    for k, v in mt_outputs(again, fit, fr).items():
        np.testing.assert_array_equal(v, got[k])


def test_two_side_se_r_round_trip() -> None:
    """se_e2_r with one net per type pair (no NumPy reference): mtbench's own dict round trip is exact."""
    mt = mtbench_model("se_e2_r_two_side", "ener", seed=3)
    data = mt.to_dict()
    nets = data["descriptor"]["embeddings"]
    assert nets["ndim"] == 2 and len(nets["networks"]) == 4
    excluded = nets["networks"][1 + 1 * 2]  # (centre H, neighbour H), excluded: stored zeroed
    assert all(not np.any(layer["@variables"]["w"]) for layer in excluded["layers"])
    again = MultiTaskModel.from_dict(data)
    assert_same_tree(again.to_dict(), data)
    fr = frames("water", "se_e2_r_two_side")
    np.testing.assert_array_equal(predict(again, fr, do_force=False)["energy"],
                                  predict(mt, fr, do_force=False)["energy"])


# --- statistics ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("set_davg_zero", [False, True])
@pytest.mark.parametrize("desc", [d for d, c in DESCRIPTOR_CASES.items() if c.dpmodel])
def test_input_stats_match_dpmodel(desc: str, set_davg_zero: bool) -> None:
    """davg/dstd from data as DeePMD-kit v3 computes them (three systems; in the 3-type case no atom has type 2,
    which v3 gives mean 0 and std 0.1)."""
    cfg = model_config(desc, "ener")
    for sub in cfg["descriptor"]["list"] if cfg["descriptor"]["type"] == "hybrid" else [cfg["descriptor"]]:
        sub["set_davg_zero"] = set_davg_zero
    ref = get_model(cfg).atomic_model.descriptor
    mt = MultiTaskModel.from_config(cfg["type_map"], cfg["descriptor"], {"t": cfg["fitting_net"]}, seed=5)
    ntypes = len(cfg["type_map"])
    systems = [_frames(name, min(ntypes, 2), ()) for name in ("water", "triclinic", "molecule")]
    ref.compute_input_stats([{"coord": f.coord.reshape(f.nf, -1), "atype": f.atype, "box": f.dp_box()}
                             for f in systems])
    specs = getattr(mt.descriptor, "stat_neighbor_specs", mt.descriptor.neighbor_specs)()
    mt.descriptor.compute_input_stats([(neighbors(f, specs, ntypes), f.atype.astype(np.int32)) for f in systems])
    got, want = mt.descriptor.to_dict(), ref.serialize()
    pairs = zip(got["list"], want["list"]) if got["type"] == "hybrid" else [(got, want)]
    for g, w in pairs:
        for key in ("davg", "dstd"):
            np.testing.assert_allclose(g["@variables"][key], w["@variables"][key], rtol=1e-12, atol=1e-14)
        assert np.any(g["@variables"]["dstd"] != 1.0)
        assert np.any(g["@variables"]["davg"] != 0.0) != set_davg_zero
    if ntypes == 3:
        np.testing.assert_array_equal(got["@variables"]["dstd"][2], 0.1)


# --- hybrid neighbour lists ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("desc", [d for d, c in DESCRIPTOR_CASES.items()
                                  if c.config["type"] == "hybrid" and c.dpmodel])
def test_hybrid_cuts_one_merged_list(desc: str) -> None:
    """The reference feeds each sub-descriptor a cut of one merged list; own lists would differ on overflow."""
    ref, mt = oracle_pair(desc, "ener")
    hybrid = mt.descriptor
    assert len(mt.neighbor_specs()) == 1
    fr = frames("overflow", desc)
    merged = neighbors(fr, mt.neighbor_specs(), mt.ntypes)
    atype = fr.atype.astype(np.int32)
    own_specs = [d.neighbor_specs()[0] for d in hybrid.descriptors]
    own = neighbors(fr, own_specs, mt.ntypes)
    cut = np.concatenate([d(v, atype).descriptor for d, v in zip(hybrid.descriptors,
                                                                 hybrid.sub_neighbors(merged[mt.neighbor_specs()[0]]))],
                         axis=-1)
    by_own = np.concatenate([d({s: own[s]}, atype).descriptor for d, s in zip(hybrid.descriptors, own_specs)], axis=-1)
    ext, eat, _, nl = extend_input_and_build_neighbor_list(fr.coord.reshape(fr.nf, -1), fr.atype, ref.get_rcut(),
                                                           ref.get_sel(), mixed_types=ref.mixed_types(),
                                                           box=fr.dp_box())
    want = ref.atomic_model.descriptor.call(ext, eat, nl)[0]
    assert rel_diff(cut, want) <= F64_TOL
    assert rel_diff(by_own, want) > 1e-6


def test_split_by_type_matches_reference() -> None:
    """A distance-sorted mixed list split into per-type blocks: slot for slot DeePMD-kit's nlist_distinguish_types."""
    fr = frames("overflow", "se_e2_a")
    sel, spec = [9, 15], NeighborSpec(4.0, (30,), True)
    ext, eat, _, nl = extend_input_and_build_neighbor_list(fr.coord.reshape(1, -1), fr.atype, 4.0, [30],
                                                           mixed_types=True, box=fr.dp_box())
    want_nl = nlist_distinguish_types(nl, eat, sel)
    ext = ext.reshape(1, -1, 3)
    want = np.where((want_nl >= 0)[..., None], ext[0][np.maximum(want_nl, 0)] - ext[0, : fr.coord.shape[1], None], 0.0)
    nb = neighbors(fr, [spec], 2)[spec]
    split = split_by_type(nb, sel, 2)
    assert overflows(NeighborSpec(4.0, tuple(sel), False), fr, 2)
    np.testing.assert_allclose(np.asarray(split.rij), want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(split.mask), want_nl >= 0)


# --- forces and virials against DeePMD-kit's TensorFlow backend ----------------------------------------------------
TF_CASES = [d for d, c in DESCRIPTOR_CASES.items() if c.tf_backend]
TF_WORKER = r"""
import json, os, sys
import numpy as np
try:
    import deepmd.tf  # noqa: F401
except Exception as exc:  # the TF backend (compiled operators) is optional
    print(f"no TF backend: {exc}")
    sys.exit(3)
from deepmd.entrypoints.convert_backend import convert_backend
from deepmd.infer import DeepPot

root = sys.argv[1]
for job in json.load(open(os.path.join(root, "jobs.json"))):
    pb = os.path.join(root, job["name"] + ".pb")
    convert_backend(INPUT=os.path.join(root, job["name"] + ".dp"), OUTPUT=pb)
    pot = DeepPot(pb)
    out = {}
    for fs in job["frames"]:
        fr = np.load(os.path.join(root, fs + ".npz"))
        nf = len(fr["coord"])
        box = fr["box"].reshape(nf, 9) if "box" in fr else None
        e, f, v, ae, _ = pot.eval(fr["coord"].reshape(nf, -1), box, fr["atype"][0], atomic=True)
        out.update({fs + "/energy": e, fs + "/force": f, fs + "/virial": v, fs + "/atom_energy": ae})
    np.savez(os.path.join(root, job["name"] + ".out.npz"), **out)
"""


@functools.cache
def _tf_model(desc: str) -> MultiTaskModel:
    return mtbench_model(desc, "ener", seed=_seed("tf", desc), per_type=True)


class TFBackendRun:
    """The session's conversion + evaluation subprocess (started once, awaited by the tests that need it)."""

    def __init__(self, root: Path) -> None:
        from deepmd.dpmodel.utils.serialization import save_dp_model

        self.root = root
        jobs = []
        for desc in TF_CASES:
            mt = _tf_model(desc)
            # DeePMD-kit's TF fitting never short-cuts its first layer; equal widths would differ by design
            assert mt.descriptor.dim_out != mt.heads["t"].fitting.neuron[0]
            save_dp_model(str(root / f"{desc}.dp"), {"model": mt.head_model_dict("t"),
                                                     "model_def_script": model_config(desc, "ener"),
                                                     "backend": "DP"})
            used = []
            for fs in TF_FRAME_SETS:
                fr = frames(fs, desc)
                name = f"{fs}_{len(DESCRIPTOR_CASES[desc].type_map)}"
                arrays = {"coord": fr.coord, "atype": fr.atype}
                if fr.box is not None:
                    arrays["box"] = fr.box
                np.savez(root / f"{name}.npz", **arrays)
                used.append(name)
            jobs.append({"name": desc, "frames": used})
        (root / "jobs.json").write_text(json.dumps(jobs))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1",
               "DP_INTRA_OP_PARALLELISM_THREADS": "1", "DP_INTER_OP_PARALLELISM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", TF_WORKER, str(root)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self._log: str | None = None

    def result(self, desc: str) -> dict[str, np.ndarray]:
        if self._log is None:
            self._log = self.proc.communicate(timeout=600)[0]
        if self.proc.returncode == 3:
            pytest.skip(f"DeePMD-kit's TensorFlow backend is unavailable: {self._log.strip().splitlines()[-1]}")
        assert self.proc.returncode == 0, self._log[-4000:]
        return dict(np.load(self.root / f"{desc}.out.npz"))


@pytest.fixture(scope="session")
def tf_backend(tmp_path_factory: pytest.TempPathFactory) -> TFBackendRun:
    return TFBackendRun(tmp_path_factory.mktemp("tf_backend"))


@pytest.fixture(autouse=True, scope="module")
def _start_tf_backend_early(request: pytest.FixtureRequest) -> None:
    """Start the conversion in the background when the first test of this module runs, if any TF test is selected."""
    if any(getattr(item, "originalname", "") == "test_forces_match_tf_backend" for item in request.session.items):
        request.getfixturevalue("tf_backend")


@pytest.mark.slow
@pytest.mark.parametrize("frame_set", TF_FRAME_SETS)
@pytest.mark.parametrize("desc", TF_CASES)
def test_forces_match_tf_backend(desc: str, frame_set: str, tf_backend: TFBackendRun) -> None:
    mt = _tf_model(desc)
    fr = frames(frame_set, desc)
    for spec in [mt.neighbor_specs()[0]] + [d.neighbor_specs()[0] for d in getattr(mt.descriptor, "descriptors", [])]:
        assert not overflows(spec, fr, mt.ntypes)
    got = predict(mt, fr)
    res = tf_backend.result(desc)
    key = f"{frame_set}_{mt.ntypes}"
    nf, n = fr.atype.shape
    want = {"energy": res[f"{key}/energy"].reshape(nf), "atom_energy": res[f"{key}/atom_energy"].reshape(nf, n),
            "force": res[f"{key}/force"].reshape(nf, n, 3), "virial": res[f"{key}/virial"].reshape(nf, 9)}
    assert_outputs_close(got, want, F64_TOL)
