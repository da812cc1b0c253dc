"""``python -m mtbench`` and ``python -m mtbench.train`` in a subprocess, then the MLflow store, as a user sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], tmp: Path, data_dir: Path, timeout: int = 600, env_extra: dict | None = None):
    env = {**os.environ, "MTBENCH_OUTPUT_DIR": str(tmp / "outputs"), "MTBENCH_DATA_DIR": str(data_dir),
           **(env_extra or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def data_dir(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built-in data cache holding the tiny set, so ``builtin:`` names resolve without generating the default
    set in the subprocess (~30 s on 2 cores; tests/data/test_synthetic.py tests that generation)."""
    from mtbench.data.synthetic import GENERATOR_VERSION

    cache = tmp_path_factory.mktemp("builtin_cache")
    (cache / f"water-v{GENERATOR_VERSION}-seed1").symlink_to(tiny_data, target_is_directory=True)
    return cache


def test_hydra_run_logs_to_mlflow(tmp_path: Path, data_dir: Path) -> None:
    proc = run(["mtbench", "debug=default", "training.numb_steps=20"], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mlflow ui" in proc.stdout
    from mlflow.tracking import MlflowClient

    db = tmp_path / "outputs" / "mlflow.db"
    assert db.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("mtbench")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert r.info.status == "FINISHED"
    keys = set(r.data.metrics)
    for task in ("water_ener", "water_dipole"):
        assert f"val/{task}/rmse" in keys and f"train/{task}/rmse" in keys
    assert {"val/water_ener/rmse_e", "val/water_ener/rmse_f", "val/water_dipole/rmse_lc", "lr",
            "time/step_s"} <= keys
    counts = [client.get_metric_history(r.info.run_id, f"sampling/{t}/count")[-1].value
              for t in ("water_ener", "water_dipole")]
    assert sum(counts) == 20
    assert r.data.params["training.numb_steps"] == "20"
    assert r.data.tags["config.descriptor"] == "se_e2_a"
    arts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert "input.json" in arts and "lcurve.water_ener.out" in arts and ".hydra" in arts


def test_mtbench_warnings_reach_the_run_log_file(tmp_path: Path, data_dir: Path) -> None:
    """A job's log file (Hydra's ``hydra_app.log`` in the run folder) holds mtbench's warnings as the terminal showed
    them, once each: here the real one of a machine whose compiler fails (the kernels fall back)."""
    env = {"CXX": "false", "MTBENCH_KERNELS_DIR": str(tmp_path / "kernels"), "MTBENCH_KERNELS": "1"}
    proc = run(["mtbench", "debug=fast", "tracking=none", "hydra.run.dir=outputs/run"], tmp_path, data_dir,
               env_extra=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = "fast CPU kernels unavailable"
    assert proc.stderr.count(said) == 1, proc.stderr[-3000:]
    log = (tmp_path / "outputs" / "run" / "hydra_app.log").read_text()
    assert log.count(said) == 1, log[-3000:]


def test_cfg_job_shows_composition_without_training(tmp_path: Path, data_dir: Path) -> None:
    proc = run(["mtbench", "--cfg", "job", "descriptor=se_e2_a", "fitting=ener_dipole_polar"], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "fitting_net_dict" in proc.stdout and "water_polar" in proc.stdout
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


def test_user_mistake_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    proc = run(["mtbench", "debug=default", "tracking=none", "model.descriptor.rcut_smth=9.0"], tmp_path, data_dir)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    err = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(err) == 1 and "rcut" in err[0], proc.stderr


def test_input_json_route(tmp_path: Path, data_dir: Path) -> None:
    spec = json.loads((ROOT / "examples" / "ener_dipole" / "input.json").read_text())
    spec["training"]["numb_steps"] = 6
    spec["training"]["disp_freq"] = 3
    spec["training"]["save_freq"] = 6
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "input.json").write_text(json.dumps(spec))
    proc = run(["mtbench.train", "in/input.json", "--tracking", "none", "--no-progress", "-o", "run"], tmp_path,
               data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "run"
    assert (run_dir / "input.json").is_file() and (run_dir / "checkpoints" / "checkpoint").is_file()
    assert {p.name for p in run_dir.glob("lcurve.*.out")} == {"lcurve.water_ener.out", "lcurve.water_dipole.out"}


def test_help_helps(tmp_path: Path, data_dir: Path) -> None:
    proc = run(["mtbench", "--help"], tmp_path, data_dir)
    assert proc.returncode == 0
    for text in ("Usage: python -m mtbench", "descriptor: hybrid, hybrid_angular, se_atten", "python -m mtbench.freeze",
                 "conf/README.md"):
        assert text in proc.stdout, text
