"""``python -m mtbench.test``: tables, JSON, detail files, parity plots, cross-head matrix, MLflow, user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtbench.evaluation.metrics import evaluate
from mtbench.cli.test import main


def test_run_dir_defaults_to_validation_data(four_head_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    report = main(["-m", str(four_head_run), "--json", str(out / "test.json"), "--cross-head",
                   "-d", str(out / "detail")])
    printed = capsys.readouterr().out
    assert "water_ener (ener): 1 system, 2 frames" in printed and "Force" in printed
    assert "cross-head, ener heads (rows) on ener data (columns)" in printed
    data = json.loads((out / "test.json").read_text())
    assert set(data["heads"]) == {"water_ener", "water_tip4p", "water_dipole", "water_polar"}
    spec = json.loads((four_head_run / "input.json").read_text())
    tip4p_val = spec["training"]["data_dict"]["water_tip4p"]["validation_data"]["systems"]
    expected = evaluate(four_head_run, "water_tip4p", tip4p_val)
    assert data["heads"]["water_tip4p"]["metrics"]["rmse_f"] == pytest.approx(expected.metrics["rmse_f"], rel=1e-12)
    assert report["heads"]["water_tip4p"]["metrics"]["rmse_f"] == data["heads"]["water_tip4p"]["metrics"]["rmse_f"]
    # parity plots next to the JSON, one per head and quantity
    for name in ("parity_water_ener_energy_per_atom.png", "parity_water_ener_force.png",
                 "parity_water_ener_virial_per_atom.png", "parity_water_dipole_dipole.png",
                 "parity_water_dipole_atomic_dipole.png", "parity_water_polar_polarizability.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    # cross-head: matrix in JSON and CSV, heatmaps; the diagonal is each head on its own data
    cross = data["cross_head"]["values"]
    assert cross["rmse_f"]["water_tip4p"]["water_tip4p"] == pytest.approx(expected.metrics["rmse_f"], rel=1e-12)
    assert set(cross["rmse_f"]["water_ener"]) == {"water_ener", "water_tip4p"}
    assert (out / "cross_head.csv").read_text().startswith("metric,head,data,value\n")
    assert (out / "cross_head_rmse_f.png").is_file() and (out / "cross_head_rmse.png").is_file()
    # several heads: detail files per head
    assert (out / "detail.water_ener.e.out").is_file() and (out / "detail.water_dipole.out").is_file()
    assert "Energy/atom" in (out / "test_table.txt").read_text()


def test_systems_head_and_nframes(four_head_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    systems = [str(tiny_data / "water_tip3p" / "val"), str(tiny_data / "water_tip4p" / "val")]
    report = main(["-m", str(four_head_run / "checkpoints"), "-s", *systems, "--head", "water_tip4p", "-n", "1",
                   "-d", str(tmp_path / "det"), "--no-plots"])
    assert list(report["heads"]) == ["water_tip4p"]
    head = report["heads"]["water_tip4p"]
    assert [s["nframes"] for s in head["systems"]] == [1, 1]
    assert [s["path"] for s in head["systems"]] == [s + "/sys_000" for s in systems]
    e = np.loadtxt(tmp_path / "det.e.out", ndmin=2)  # one head: dp test's exact names
    assert e.shape == (2, 2)


def test_datafile_and_heads_without_labels(four_head_run: Path, tiny_data: Path, tmp_path: Path, capsys) -> None:
    listing = tmp_path / "systems.txt"
    listing.write_text(f"{tiny_data / 'water_tip3p' / 'val' / 'sys_000'}\n")
    report = main(["-m", str(four_head_run), "-f", str(listing)])
    assert set(report["heads"]) == {"water_ener", "water_tip4p"}
    assert set(report["skipped"]) == {"water_dipole", "water_polar"}
    assert "water_dipole (dipole): not tested" in capsys.readouterr().out


def _error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_user_errors(four_head_run: Path, tiny_data: Path, tmp_path: Path, capsys) -> None:
    err = _error(["-m", str(four_head_run), "--head", "nope"], capsys)
    assert err.startswith("mtbench.test: error: head: model has no head 'nope'; heads: water_ener")
    err = _error(["-m", str(tmp_path / "missing.dp"), "-s", str(tiny_data)], capsys)
    assert "missing.dp: model not found" in err
    # a model file saved without its spec needs -s
    from mtbench.export.load import load_model, save_mtbench_model

    save_mtbench_model(tmp_path / "frozen.h5", load_model(four_head_run).model)
    err = _error(["-m", str(tmp_path / "frozen.h5")], capsys)
    assert "carries no training spec: name the test data with -s" in err
    err = _error(["-m", str(four_head_run), "--mlflow-run"], capsys)  # the run was not tracked
    assert "--mlflow-run: no MLflow run id in the summary.json" in err
    err = _error(["-m", str(four_head_run), "-s", str(tmp_path / "nowhere")], capsys)
    assert "nowhere: does not exist" in err


def test_mlflow_logging(four_head_run: Path, tmp_path: Path, monkeypatch) -> None:
    from mtbench.tracking.store import Store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = Store(uri, tmp_path)
    store.connect()
    run_id = store.create_run(store.experiment_id("evaluation"), "trained", {})
    report = main(["-m", str(four_head_run), "--head", "water_ener", "--mlflow-run", run_id, "--tracking-uri", uri,
                   "--output-dir", str(tmp_path)])
    client = store.client
    metrics = client.get_run(run_id).data.metrics
    # every finite metric of the report, under test/<head>/<metric>, with the value evaluate() gives
    spec = json.loads((four_head_run / "input.json").read_text())
    val = spec["training"]["data_dict"]["water_ener"]["validation_data"]["systems"]
    expected = evaluate(four_head_run, "water_ener", val).metrics
    reported = report["heads"]["water_ener"]["metrics"]
    assert metrics["test/water_ener/rmse_f"] == pytest.approx(expected["rmse_f"], rel=1e-12)
    assert {k: v for k, v in metrics.items() if k.startswith("test/")} == pytest.approx(
        {f"test/water_ener/{k}": v for k, v in reported.items() if np.isfinite(v)}, rel=1e-12)
    names = {a.path for a in client.list_artifacts(run_id, "test")}
    assert {"test/test.json", "test/test_table.txt", "test/plots"} <= names
    plots = {a.path for a in client.list_artifacts(run_id, "test/plots")}
    assert "test/plots/parity_water_ener_force.png" in plots


def test_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "mtbench.test", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and "--cross-head" in proc.stdout and "-d DETAIL" in proc.stdout
