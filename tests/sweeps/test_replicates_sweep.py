"""A real 2-setting x 3-seed sweep (subprocess, the tiny set as the built-in data, 3 steps): the report's two rows hold the mean and std of the
children's own final metrics; the experiment opens in the UI's model-training mode; runs are named by what they
vary."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from tests.sweeps.test_sweep_integration import FEW_STEPS, KEY, TASKS, run_mtbench, sweep_dirs

pytestmark = pytest.mark.slow


def test_replicate_sweep_reports_mean_and_std_per_setting(tmp_path: Path, tiny_builtin_dir: Path) -> None:
    from mlflow import MlflowClient

    from mtbench.tracking.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    proc = run_mtbench(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "debug=fast", *FEW_STEPS,
                        f"{KEY}=1,10", "sweep.replicates=3"], tmp_path, tiny_builtin_dir,
                       timeout=1800)  # 6 jobs: room for a loaded machine
    assert proc.returncode == 0, proc.stderr[-4000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mtbench")
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("mtbench.run_type") == "sweep")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6
    assert "fitting_weight.water_dipole, seed" in parent.info.run_name
    names = {r.info.run_name for r in children}
    assert names == {f"fitting_weight.water_dipole={w}, seed={s}" for w in (1, 10) for s in (1, 2, 3)}
    assert all(r.data.tags["mlflow.note.content"].startswith("**Sweep job") for r in children)
    with open(sweep_dirs(tmp_path)[0] / "compare" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r[KEY] for r in rows] == ["1", "10"]
    for row in rows:
        kids = [r for r in children if r.data.tags[f"sweep.{KEY}"] == row[KEY]]
        assert row["replicates"] == "3" and sorted(r.data.tags["sweep.training.seed"] for r in kids) == ["1", "2", "3"]
        for task, metric in ((TASKS[0], "rmse_f"), (TASKS[1], "rmse")):
            values = [r.data.metrics[f"final/{task}/{metric}"] for r in kids]
            assert float(row[f"{task}/final_{metric}_mean"]) == pytest.approx(statistics.mean(values), rel=1e-12)
            assert float(row[f"{task}/final_{metric}_std"]) == pytest.approx(statistics.stdev(values), rel=1e-12)
    with open(sweep_dirs(tmp_path)[0] / "compare" / "summary_jobs.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 6
    # the report rebuilt from the folders alone carries the live report's title (what is swept)
    from mtbench.sweeps.folders import load_sweep_dir
    from mtbench.sweeps.report import write_report

    live = (sweep_dirs(tmp_path)[0] / "compare" / "summary.md").read_text().splitlines()[0]
    assert live == "# Sweep comparison: fitting_weight.water_dipole, seed"
    assert parent.data.tags["sweep.name"] == "fitting_weight.water_dipole, seed"
    rebuilt = load_sweep_dir(sweep_dirs(tmp_path)[0], with_mlflow=False)
    assert rebuilt.name == parent.data.tags["sweep.name"]
    write_report(rebuilt, tmp_path / "rebuilt")
    assert (tmp_path / "rebuilt" / "summary.md").read_text().splitlines()[0] == live
