"""Real sweeps in subprocesses: the joblib launcher writing one SQLite store in parallel, and the
submitit launcher (local executor) logging to a real ``mlflow server`` that the test then reads
through MLflow's REST API, as the UI does."""

from __future__ import annotations

import csv
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

from mtbench.sweeps.callback import JOB_TAG

KEY = "training.fitting_weight.water_dipole"
TASKS = ("water_ener", "water_dipole")
# 3 steps, one display after step 0: enough for a final evaluation of every task (debug=fast has 6 steps)
FEW_STEPS = ("training.numb_steps=3", "training.disp_freq=3", "training.save_freq=3")


def run_mtbench(args: list[str], cwd: Path, data_dir: Path, env_extra: dict | None = None,
                timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "MTBENCH_OUTPUT_DIR": str(cwd / "outputs"), "MTBENCH_DATA_DIR": str(data_dir),
           "MTBENCH_THREADS": "1", **(env_extra or {})}
    if not (env_extra or {}).get("MLFLOW_TRACKING_URI"):
        env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "mtbench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def sweep_dirs(cwd: Path) -> list[Path]:
    return sorted((cwd / "outputs" / "multirun").glob("*/*"))


@pytest.fixture(scope="module")
def data_dir(tiny_builtin_dir: Path) -> Path:
    return tiny_builtin_dir  # the tiny set as the built-in data: these tests check plumbing, not learning


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``mlflow server`` on 127.0.0.1 (started at once, waited for on first use, stopped by PID)."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(root / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
             "--artifacts-destination", str(root / "server-artifacts")],
            cwd=root, stdout=self.log, stderr=subprocess.STDOUT)
        self._ready = False

    def wait(self, timeout: float = 180.0) -> str:
        deadline = time.monotonic() + timeout
        while not self._ready:
            assert self.proc.poll() is None, "mlflow server exited: " + Path(self.log.name).read_text()[-2000:]
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    self._ready = r.status == 200
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not answer /health"
                time.sleep(1.0)
        return self.url

    def get(self, route: str, **params: str) -> dict:
        with urllib.request.urlopen(f"{self.url}/api/2.0/mlflow/{route}?{urllib.parse.urlencode(params)}",
                                    timeout=30) as r:
            return json.loads(r.read())

    def post(self, route: str, body: dict) -> dict:
        req = urllib.request.Request(f"{self.url}/api/2.0/mlflow/{route}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture()
def server(tmp_path_factory: pytest.TempPathFactory):
    """The test's own server (it boots while the test's sweep gets ready; ``wait`` blocks until it answers)."""
    srv = Server(tmp_path_factory.mktemp("mlflow_server"))
    yield srv
    srv.stop()


def test_joblib_sweep_writes_one_store_without_losses(tmp_path: Path, data_dir: Path) -> None:
    proc = run_mtbench(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "debug=fast",
                        f"{KEY}=1,10", "learning_rate.start_lr=0.001,0.003"], tmp_path, data_dir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    from mlflow import MlflowClient

    db = tmp_path / "outputs" / "mlflow.db"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("mtbench").experiment_id])
    parents = [r for r in runs if r.data.tags.get("mtbench.run_type") == "sweep"]
    assert len(parents) == 1 and len(runs) == 5
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children)
    assert parent.info.status == "FINISHED"
    assert (parent.data.tags["sweep.jobs"], parent.data.tags["sweep.succeeded"]) == ("4", "4")
    assert parent.data.tags["sweep.launcher"] == "JoblibLauncher"
    assert parent.data.params[KEY] == "1,10"  # the sweep's definition, as the parent's params
    grid = {(r.data.tags[f"sweep.{KEY}"], r.data.tags["sweep.learning_rate.start_lr"]) for r in children}
    assert grid == {(w, lr) for w in ("1", "10") for lr in ("0.001", "0.003")}
    for r in children:  # nothing lost: every display point of every task, counts adding up
        assert r.data.params[KEY] == r.data.tags[f"sweep.{KEY}"]
        for t in TASKS:
            assert [m.step for m in client.get_metric_history(r.info.run_id, f"val/{t}/rmse")] == [0, 3, 6]
        assert sum(r.data.metrics[f"sampling/{t}/count"] for t in TASKS) == 6
    # the report, written at the end of the sweep and logged to the parent
    sweep_dir = sweep_dirs(tmp_path)[0]
    with open(sweep_dir / "compare" / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"]
    child_of_job = {r.data.tags[JOB_TAG]: r for r in children}
    for row in rows:  # the fractions are the job's own sampling counts, as its summary.json and MLflow run say
        counts = json.loads((sweep_dir / row["job"] / "summary.json").read_text())["counts"]
        assert sum(counts.values()) == 6
        child = child_of_job[row["job"]]
        for t in TASKS:
            assert child.data.metrics[f"sampling/{t}/count"] == counts[t]
        assert float(row["water_dipole/sampled_fraction"]) == pytest.approx(counts["water_dipole"] / 6, rel=1e-9)
        assert float(row["water_ener/sampled_fraction"]) == pytest.approx(counts["water_ener"] / 6, rel=1e-9)
        w = float(row[KEY])  # water_ener has fitting weight 20 in these jobs
        assert float(row["water_dipole/requested_fraction"]) == pytest.approx(w / (w + 20))
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "compare")}
    assert {"compare/summary.md", "compare/learning_curves.png", "compare/sampling.png"} <= arts
    # and the same report from the files alone
    from mtbench.sweeps.folders import load_sweep_dir
    from mtbench.sweeps.tables import table

    _, file_rows = table(load_sweep_dir(sweep_dir, with_mlflow=False))
    assert [r[KEY] for r in file_rows] == [r[KEY] for r in rows]


def test_submitit_sweep_to_mlflow_server_with_a_failing_job(tmp_path: Path, data_dir: Path,
                                                             server: Server) -> None:
    url = server.wait()
    proc = run_mtbench(["-m", "hydra/launcher=submitit_local", "debug=fast", f"{KEY}=5,-1"], tmp_path,
                       data_dir, env_extra={"MLFLOW_TRACKING_URI": url})
    # Hydra reports the failed job after every job ran (exit status 1); the other job finished
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert "must be >= 0" in proc.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # everything went to the server

    # read it back as the MLflow UI does: REST API
    exp = server.get("experiments/get-by-name", experiment_name="mtbench")["experiment"]
    runs = server.post("runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    parents = [r for r, t in zip(runs, tags) if t.get("mtbench.run_type") == "sweep"]
    assert len(parents) == 1
    pid = parents[0]["info"]["run_id"]
    ptags = {t["key"]: t["value"] for t in parents[0]["data"]["tags"]}
    assert parents[0]["info"]["status"] == "FAILED"
    assert (ptags["sweep.jobs"], ptags["sweep.succeeded"], ptags["sweep.failed"]) == ("2", "1", "1")
    assert ptags["sweep.launcher"] == "LocalLauncher"
    children = server.post("runs/search", {"experiment_ids": [exp["experiment_id"]],
                                           "filter": f"tags.mlflow.parentRunId = '{pid}'"})["runs"]
    by_value = {}
    for r in children:
        t = {x["key"]: x["value"] for x in r["data"]["tags"]}
        by_value[t[f"sweep.{KEY}"]] = (r, t)
    assert set(by_value) == {"5", "-1"}
    failed, ftags = by_value["-1"]
    assert failed["info"]["status"] == "FAILED" and "must be >= 0" in ftags["mtbench.error"]
    ok, otags = by_value["5"]
    assert ok["info"]["status"] == "FINISHED" and otags["shared_layers"] == "none"
    names = {m["key"] for m in ok["data"]["metrics"]}
    for t in TASKS:
        assert {f"val/{t}/rmse", f"train/{t}/rmse", f"sampling/{t}/count", f"sampling/{t}/fraction"} <= names
    counts = [server.get("metrics/get-history", run_id=ok["info"]["run_id"],
                         metric_key=f"sampling/{t}/count")["metrics"] for t in TASKS]
    assert sum(max(counts_t, key=lambda m: int(m["step"]))["value"] for counts_t in counts) == 6
    arts = server.get("artifacts/list", run_id=pid, path="compare")
    assert "compare/summary.csv" in {f["path"] for f in arts.get("files", [])}

    # the report again, from MLflow alone (the parent's id) into a directory of our choice
    from mtbench.cli.compare import main

    assert main([pid, "--tracking-uri", url, "-o", str(tmp_path / "cmp"), "--no-log"]) == 0
    with open(tmp_path / "cmp" / "summary.csv") as fh:
        rows = {r[KEY]: r for r in csv.DictReader(fh)}
    assert rows["5"]["status"] == "FINISHED" and rows["-1"]["status"] == "FAILED"
    assert float(rows["5"]["water_dipole/requested_fraction"]) == pytest.approx(5 / 25)
