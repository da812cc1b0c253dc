"""mtbench.evaluation.metrics: metrics, atom order, DeePMD's weighting, dp test detail files, cross-head matrix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mtbench.data.neighbor import build_neighbor_list
from mtbench.errors import SpecError
from mtbench.evaluation.metrics import (
    cross_head,
    evaluate,
    head_sel_type,
    merge_errors,
    system_paths,
    write_detail_files,
)


def raw_system(path: Path) -> dict[str, np.ndarray]:
    """A deepmd/npy system as stored on disk (file atom order, one set)."""
    s = path / "set.000"
    out = {"type": np.loadtxt(path / "type.raw", dtype=np.int32)}
    for f in s.glob("*.npy"):
        out[f.stem] = np.load(f)
    return out


def predict_file_order(model, head: str, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model on the frames exactly as stored (atoms not sorted by type): an independent path to the
    predictions in file order (the model does not need sorted atoms)."""
    nf = raw["coord"].shape[0]
    coord = raw["coord"].reshape(nf, -1, 3)
    box = raw["box"].reshape(nf, 3, 3)
    atype = np.broadcast_to(raw["type"], coord.shape[:2]).astype(np.int32)
    nlists = {}
    for spec in model.neighbor_specs():
        lists = [build_neighbor_list(coord[f], box[f], raw["type"], spec, len(model.type_map)) for f in range(nf)]
        nlists[spec] = (np.stack([x[0] for x in lists]), np.stack([x[1] for x in lists]).astype(np.int32))
    return {k: v.numpy() for k, v in model.predict(head, coord, box, atype, nlists).items()}


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_energy_head_metrics_and_file_order(four_head_model, tiny_data: Path) -> None:
    model = four_head_model.model
    path = tiny_data / "water_tip3p" / "val" / "sys_000"
    raw = raw_system(path)
    assert not np.all(np.diff(raw["type"]) >= 0), "the test needs a system whose atoms are not sorted by type"
    res = evaluate(four_head_model, "water_ener", [str(path)])
    (s,) = res.systems
    nf, n = raw["coord"].shape[0], raw["type"].size
    direct = predict_file_order(model, "water_ener", raw)
    np.testing.assert_array_equal(s.ref["force"], raw["force"].reshape(nf, n, 3))
    np.testing.assert_allclose(s.pred["force"], direct["force"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s.pred["energy"], direct["energy"], rtol=1e-12)
    np.testing.assert_allclose(s.pred["virial"], direct["virial"], rtol=1e-10, atol=1e-12)
    vol = abs(np.linalg.det(raw["box"].reshape(nf, 3, 3)))
    expected = {
        "rmse_e": rmse(direct["energy"], raw["energy"]),
        "rmse_ea": rmse(direct["energy"], raw["energy"]) / n,
        "mae_e": float(np.mean(np.abs(direct["energy"] - raw["energy"]))),
        "rmse_f": rmse(direct["force"].reshape(nf, -1), raw["force"]),
        "rmse_v": rmse(direct["virial"], raw["virial"]),
        "rmse_va": rmse(direct["virial"], raw["virial"]) / n,
        "rmse_s": rmse(-direct["virial"] / vol[:, None], -raw["virial"] / vol[:, None]),
    }
    for key, value in expected.items():
        assert res.metrics[key] == pytest.approx(value, rel=1e-9), key
    assert res.weights["rmse_f"] == nf * n * 3 and res.weights["rmse_e"] == nf


def test_tensor_heads_atomic_and_global(four_head_model, tiny_data: Path) -> None:
    model = four_head_model.model
    assert head_sel_type(model, "water_dipole") == [0]
    atomic_sys = tiny_data / "water_dipole" / "val" / "atomic_system"
    global_sys = tiny_data / "water_dipole" / "val" / "global_system"
    res = evaluate(model, "water_dipole", [str(atomic_sys), str(global_sys)])
    a, g = res.systems
    raw_a, raw_g = raw_system(atomic_sys), raw_system(global_sys)
    nf = raw_a["coord"].shape[0]
    oxygen = raw_a["type"] == 0
    direct = predict_file_order(model, "water_dipole", raw_a)
    ref_atomic = raw_a["atomic_dipole"].reshape(nf, -1, 3)  # stored for the O atoms only, in file order
    np.testing.assert_array_equal(a.ref["atomic_dipole"], ref_atomic)
    np.testing.assert_allclose(a.pred["atomic_dipole"], direct["atomic"][:, oxygen], rtol=1e-10, atol=1e-13)
    assert a.metric("rmse_atomic") == pytest.approx(rmse(direct["atomic"][:, oxygen], ref_atomic), rel=1e-9)
    # without global labels the global reference is the sum of the atomic ones
    assert a.found["dipole_from_atomic"] and not a.found["dipole"]
    np.testing.assert_allclose(a.ref["dipole"], ref_atomic.sum(axis=1))
    np.testing.assert_array_equal(g.ref["dipole"], raw_g["dipole"])
    assert "rmse_atomic" not in g.errors
    assert g.metric("rmse_n") == pytest.approx(g.metric("rmse") / oxygen.sum())
    assert "rmse_n" not in res.metrics  # per system only, as dp test
    both = np.concatenate([a.pred["dipole"] - a.ref["dipole"], g.pred["dipole"] - g.ref["dipole"]])
    assert res.metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean(both**2))), rel=1e-12)


def test_weighting_across_systems_equals_one_big_set(four_head_model, tiny_data: Path) -> None:
    paths = [tiny_data / "water_tip3p" / "val" / "sys_000", tiny_data / "water_tip4p" / "val" / "sys_000"]
    res = evaluate(four_head_model, "water_ener", paths)
    df = np.concatenate([(s.pred["force"] - s.ref["force"]).ravel() for s in res.systems])
    de = np.concatenate([(s.pred["energy"] - s.ref["energy"]) / s.natoms for s in res.systems])
    assert res.metrics["rmse_f"] == pytest.approx(float(np.sqrt(np.mean(df**2))), rel=1e-12)
    assert res.metrics["mae_f"] == pytest.approx(float(np.mean(np.abs(df))), rel=1e-12)
    assert res.metrics["rmse_ea"] == pytest.approx(float(np.sqrt(np.mean(de**2))), rel=1e-12)
    merged = merge_errors([{"rmse_x": (1.0, 1.0), "mae_x": (1.0, 1.0)}, {"rmse_x": (3.0, 3.0), "mae_x": (3.0, 3.0)}])
    assert merged["rmse_x"] == (pytest.approx(math.sqrt(7.0)), 4.0)
    assert merged["mae_x"] == (pytest.approx(2.5), 4.0)


def test_nframes_and_shuffle(four_head_model, tiny_data: Path) -> None:
    path = tiny_data / "water_tip3p" / "val" / "sys_000"
    full = evaluate(four_head_model, "water_ener", path)
    one = evaluate(four_head_model, "water_ener", path, nframes=1)
    assert one.systems[0].nframes == 1 and full.systems[0].nframes == 2
    np.testing.assert_allclose(one.systems[0].pred["energy"], full.systems[0].pred["energy"][:1], rtol=1e-12)
    shuffled = evaluate(four_head_model, "water_ener", path, shuffle_seed=3)
    assert sorted(shuffled.systems[0].ref["energy"]) == sorted(full.systems[0].ref["energy"])


def test_system_paths_expand_folders_and_builtin_names(tiny_data: Path, monkeypatch) -> None:
    from mtbench.data import synthetic

    monkeypatch.setattr(synthetic, "builtin_path", lambda name: str(tiny_data / name))  # no generation here
    val = tiny_data / "water_dipole" / "val"
    assert system_paths(["builtin:water_dipole/val"]) == [str(val / "atomic_system"), str(val / "global_system")]
    given = str(tiny_data / "water_tip3p" / "val" / "sys_000")
    assert system_paths(given) == [given]  # spelled as given, as dp test prints it


def test_unknown_head_is_a_spec_error(four_head_model, tiny_data: Path) -> None:
    with pytest.raises(SpecError, match="no head 'nope'.*water_ener"):
        evaluate(four_head_model, "nope", tiny_data / "water_tip3p" / "val")


def _read_detail(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    return [ln for ln in lines if ln.startswith("#")], np.loadtxt(path, ndmin=2)


def test_detail_files_energy_layout(four_head_model, tiny_data: Path, tmp_path: Path) -> None:
    paths = [str(tiny_data / "water_tip3p" / "val" / "sys_000"), str(tiny_data / "water_tip4p" / "val" / "sys_000")]
    res = evaluate(four_head_model, "water_ener", paths)
    files = write_detail_files(res, tmp_path / "out" / "detail.txt")  # with_suffix, as dp test
    names = sorted(p.name for p in files)
    assert names == ["detail.e.out", "detail.e_peratom.out", "detail.f.out", "detail.s.out", "detail.v.out",
                     "detail.v_peratom.out"]
    n, nf = res.systems[0].natoms, res.systems[0].nframes
    headers, e = _read_detail(tmp_path / "out" / "detail.e.out")
    assert headers == [f"# {paths[0]}: data_e pred_e"]  # one header: later systems append below it
    np.testing.assert_array_equal(e[:, 0], np.concatenate([s.ref["energy"] for s in res.systems]))
    headers, f = _read_detail(tmp_path / "out" / "detail.f.out")
    assert headers == [f"# {paths[0]}: data_fx data_fy data_fz pred_fx pred_fy pred_fz"]
    assert f.shape == (2 * nf * n, 6)
    np.testing.assert_array_equal(f[: nf * n, 3:], res.systems[0].pred["force"].reshape(-1, 3))
    _, v = _read_detail(tmp_path / "out" / "detail.v.out")
    _, va = _read_detail(tmp_path / "out" / "detail.v_peratom.out")
    assert v.shape == (2 * nf, 18)
    np.testing.assert_allclose(va, v / n, rtol=1e-15)
    headers, _ = _read_detail(tmp_path / "out" / "detail.s.out")
    assert headers[0].startswith(f"# {paths[0]} (eV/Å³): data_sxx")


def test_detail_files_tensor_layout(four_head_model, tiny_data: Path, tmp_path: Path) -> None:
    root = tiny_data / "water_polar" / "val"
    res = evaluate(four_head_model, "water_polar", [str(root / "atomic_system"), str(root / "global_system")])
    files = write_detail_files(res, tmp_path / "pol")
    assert [p.name for p in files] == ["pol.out", "pol.out.1"]  # one file per system, as dp test
    headers, g = _read_detail(tmp_path / "pol.out.1")
    comps = ("pxx", "pxy", "pxz", "pyx", "pyy", "pyz", "pzx", "pzy", "pzz")
    assert headers == ["# " + " ".join([f"data_{c}" for c in comps] + [f"pred_{c}" for c in comps])]
    np.testing.assert_array_equal(g[:, :9], res.systems[1].ref["polarizability"])
    files = write_detail_files(res, tmp_path / "pola", atomic=True)
    assert [p.name for p in files] == ["pola.out"]  # the global-only system has no atomic labels
    headers, a = _read_detail(tmp_path / "pola.out")
    nsel = res.systems[0].nsel
    assert nsel == 8 and a.shape[1] == 2 * 9 * nsel
    assert headers[0].startswith("# data_pxx1 data_pxy1") and headers[0].endswith(f"pred_pzz{nsel}")
    np.testing.assert_array_equal(a[:, 9 * nsel:], res.systems[0].pred["atomic_polarizability"].reshape(2, -1))


def test_cross_head_matrix(four_head_model, tiny_data: Path, tmp_path: Path) -> None:
    data = {"water_ener": [tiny_data / "water_tip3p" / "val"], "water_tip4p": [tiny_data / "water_tip4p" / "val"],
            "water_dipole": [tiny_data / "water_dipole" / "val"]}
    cross = cross_head(four_head_model, data)
    rows, cols, mat = cross.matrix("rmse_f")
    assert rows == ["water_ener", "water_tip4p"] and cols == ["water_ener", "water_tip4p"]
    assert np.isfinite(mat).all()
    own = evaluate(four_head_model, "water_tip4p", data["water_tip4p"])
    assert mat[1, 1] == pytest.approx(own.metrics["rmse_f"], rel=1e-12)
    other = evaluate(four_head_model, "water_ener", data["water_tip4p"])
    assert mat[0, 1] == pytest.approx(other.metrics["rmse_f"], rel=1e-12)
    # removing the mean offset can only lower the energy error
    assert cross.values["rmse_ea_centered"]["water_ener"]["water_tip4p"] <= \
        cross.values["rmse_ea"]["water_ener"]["water_tip4p"] + 1e-15
    rows, cols, mat = cross.matrix("rmse")
    assert rows == ["water_dipole"] and cols == ["water_dipole"]  # polar head: no polar data given
    assert "water_dipole" not in cross.values["rmse_f"].get("water_ener", {})
    lines = cross.to_csv(tmp_path / "cross.csv").read_text().splitlines()
    assert lines[0] == "metric,head,data,value"
    assert "rmse_f,water_ener,water_tip4p," + repr(float(other.metrics["rmse_f"])) in lines


def test_many_calls_run_compiled_traced_once_and_agree_with_eager(four_head_model, tiny_data: Path,
                                                                   monkeypatch) -> None:
    """Past COMPILE_MIN_CALLS model calls evaluate() traces the head once (no retrace per call), same numbers."""
    from mtbench.evaluation import metrics
    from mtbench.inference.predictor import HeadPredictor

    path = sorted((tiny_data / "water_tip3p" / "val").iterdir())[0]
    built: list[HeadPredictor] = []

    class Recording(HeadPredictor):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(metrics, "HeadPredictor", Recording)
    monkeypatch.setattr(metrics, "DEFAULT_CHUNK_SLOTS", 1)  # one frame per call
    eager = evaluate(four_head_model, "water_ener", path)
    system = eager.systems[0]
    assert system.nframes >= 2 and not hasattr(built[-1]._fn, "experimental_get_tracing_count")  # few calls: eager
    monkeypatch.setattr(metrics, "COMPILE_MIN_CALLS", system.nframes)
    compiled = evaluate(four_head_model, "water_ener", path)
    assert built[-1]._fn.experimental_get_tracing_count() == 1  # nframes calls, one trace
    assert compiled.metrics.keys() == eager.metrics.keys()
    for key, value in eager.metrics.items():
        assert compiled.metrics[key] == pytest.approx(value, rel=1e-10, abs=1e-12)
