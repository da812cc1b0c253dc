"""The comparison report from a sweep directory's files alone (no MLflow, no TensorFlow)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from mtbench.cli.compare import main
from mtbench.sweeps.folders import load_sweep_dir, read_lcurve
from mtbench.sweeps.model import Curve
from mtbench.sweeps.report import write_report
from mtbench.sweeps.tables import markdown, table
from mtbench.sweeps.plots import numeric_key, pareto_front
from tests.sweeps._fake import KEY, WEIGHTS, dipole_err, ener_err, make_sweep_dir


@pytest.fixture()
def sweep_dir(tmp_path: Path) -> Path:
    return make_sweep_dir(tmp_path / "multirun" / "2026-01-01" / "10-00-00")


def test_lcurve_is_read_as_validation_curves(sweep_dir: Path) -> None:
    curves = read_lcurve(sweep_dir / "0" / "lcurve.water_ener.out")
    assert set(curves) == {"rmse", "rmse_e", "rmse_f"}
    assert curves["rmse_f"].steps == [0, 5, 10]
    assert curves["rmse_f"].values[-1] == pytest.approx(ener_err(1), rel=1e-2)


def test_curve_best_skips_the_untrained_step() -> None:
    c = Curve([0, 5, 10], [0.01, 0.5, 0.3])
    assert c.best() == 0.3 and c.last() == 0.3
    assert math.isnan(Curve().best())


def test_sweep_dir_jobs_keys_and_status(sweep_dir: Path) -> None:
    sweep = load_sweep_dir(sweep_dir)
    assert sweep.keys == [KEY]
    assert [j.label for j in sweep.jobs] == ["0", "1", "2"]
    assert [j.swept[KEY] for j in sweep.jobs] == [str(w) for w in WEIGHTS]
    assert [j.status for j in sweep.jobs] == ["FINISHED", "FINISHED", "INCOMPLETE"]
    assert sweep.tasks == ["water_ener", "water_dipole"]
    # the energy task is ranked on forces, the dipole task on its rmse
    assert sweep.primary("water_ener") == "rmse_f" and sweep.primary("water_dipole") == "rmse"
    # requested probabilities come from input.json's fitting_weight
    assert sweep.jobs[1].requested["water_dipole"] == pytest.approx(5 / 15)
    assert sweep.best_job("water_ener").label == "0"  # smallest dipole weight
    assert sweep.best_job("water_dipole").label == "1"  # job 2 failed: not eligible
    assert sweep.name == "fitting_weight.water_dipole"  # titled by what it sweeps, as the live report (no sweep.name)


def test_keys_fall_back_to_what_varies(sweep_dir: Path) -> None:
    (sweep_dir / "multirun.yaml").unlink()
    assert load_sweep_dir(sweep_dir).keys == [KEY]


def test_table_has_final_best_sampling_and_speed(sweep_dir: Path) -> None:
    cols, rows = table(load_sweep_dir(sweep_dir))
    for col in (KEY, "water_ener/val_rmse_f/final", "water_ener/val_rmse_f/best",
                "water_dipole/val_rmse/final", "water_dipole/sampled_fraction",
                "water_dipole/requested_fraction", "steps_per_s", "train_s"):
        assert col in cols, col
    assert "water_ener/val_rmse_v/final" not in cols  # never finite: no column
    assert rows[1]["water_dipole/val_rmse/final"] == pytest.approx(dipole_err(5))
    assert rows[0]["steps_per_s"] == pytest.approx(10 / 5.0)
    # the failed job still shows its last curve point
    assert rows[2]["water_ener/val_rmse_f/final"] == pytest.approx(ener_err(20), rel=1e-2)
    assert math.isnan(rows[2]["water_dipole/sampled_fraction"])


def test_markdown_marks_the_best_job_per_task(sweep_dir: Path) -> None:
    md = markdown(load_sweep_dir(sweep_dir))
    header = next(line for line in md.splitlines() if line.startswith("| job"))
    assert "water_ener rmse_f final" in header and "water_dipole sampled (requested)" in header
    row0 = next(line for line in md.splitlines() if line.startswith("| 0 |"))
    assert f"**{ener_err(1):.3g}**" in row0
    assert "- job 2 INCOMPLETE" in md


def test_report_files_and_csv_round_trip(sweep_dir: Path) -> None:
    files = write_report(load_sweep_dir(sweep_dir), sweep_dir / "compare")
    names = {f.name for f in files}
    assert {"summary.csv", "summary.md", "learning_curves.png", "error_vs_water_dipole.png",
            "tradeoff_water_ener__water_dipole.png", "sampling.png"} <= names
    assert "grad_cosine.png" not in names  # no diagnostics in files
    for f in files:
        assert f.stat().st_size > 0
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(sweep_dir / "compare" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r[KEY] for r in rows] == ["1", "5", "20"]
    assert rows[2]["status"] == "INCOMPLETE" and rows[2]["water_dipole/sampled_fraction"] == ""


def test_cli_writes_default_compare_dir(sweep_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(sweep_dir)]) == 0
    out = capsys.readouterr().out
    assert (sweep_dir / "compare" / "summary.md").is_file()
    assert "| job | status | fitting_weight.water_dipole |" in out and "wrote" in out


def test_cli_bad_target_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "no" / "such")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such directory" in err[0]
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no job directories" in capsys.readouterr().err


def test_pareto_front_keeps_non_dominated_points() -> None:
    pts = [(1.0, 5.0), (2.0, 2.0), (3.0, 3.0), (5.0, 1.0), (math.nan, 0.0), (2.0, 2.0)]
    # (3,3) is dominated by (2,2); duplicates dominate neither other; NaN is ignored
    assert pareto_front(pts) == [0, 1, 5, 3]


def test_numeric_key_prefers_fitting_weights(sweep_dir: Path) -> None:
    sweep = load_sweep_dir(sweep_dir)
    assert numeric_key(sweep) == KEY
    sweep.keys = ["descriptor", "training.numb_steps", KEY]
    for j in sweep.jobs:
        j.swept.update({"descriptor": "se_e2_a", "training.numb_steps": "10"})
    assert numeric_key(sweep) == KEY
    sweep.keys = ["descriptor"]
    assert numeric_key(sweep) is None


def test_only_sweep_and_run_folders_look_like_sweeps(sweep_dir: Path, tmp_path: Path) -> None:
    from mtbench.sweeps.folders import looks_like_sweep_dir

    assert looks_like_sweep_dir(sweep_dir)
    (sweep_dir / "multirun.yaml").unlink()
    assert looks_like_sweep_dir(sweep_dir)  # job folders alone
    assert looks_like_sweep_dir(sweep_dir / "0")  # one run folder
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "x.py").write_text("")
    assert not looks_like_sweep_dir(pkg) and not looks_like_sweep_dir(tmp_path / "missing")
