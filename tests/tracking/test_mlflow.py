"""MlflowTracker against real SQLite stores in tmp dirs, read back through MlflowClient.

A fresh MLflow SQLite store costs seconds of schema migrations, so the tests copy one store
built once per session.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mtbench.tracking import (
    MlflowTracker,
    default_tracking_uri,
    finish_run,
    names,
    replay_backlog,
    start_parent_run,
)
from mtbench.tracking.backlog import BACKLOG_NAME, REPLAYED_NAME, read_backlog
from mtbench.tracking.params import TRUNCATION_MARKER
from mtbench.cli.replay import main as replay_main
from mtbench.tracking.store import Store, StoreError, StoreRejected

REPO = Path(__file__).resolve().parents[2]

SPEC = {
    "model": {"type_map": ["O", "H"], "descriptor": {"type": "se_e2_a", "sel": [46, 92],
                                                     "notes": "n" * 7000}},
    "training": {"numb_steps": 10},
}


@pytest.fixture(autouse=True)
def _no_user_store(monkeypatch):
    """A user's MLFLOW_TRACKING_URI must not redirect the tests."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # tests make no network calls


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mlflow-template")
    Store(default_tracking_uri(out), out).connect()
    return out / "mlflow.db"


@pytest.fixture
def outputs(tmp_path, template_db) -> Path:
    out = tmp_path / "outputs"
    out.mkdir()
    shutil.copy(template_db, out / "mlflow.db")
    return out


def _run_dir(outputs: Path, name: str = "r") -> Path:
    run_dir = outputs / "runs" / name
    run_dir.mkdir(parents=True)
    return run_dir


def _tracking_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "mtbench.tracking" and r.levelno >= logging.WARNING]


def test_mlflow_limits_match_ours():
    from mlflow.utils import validation as v

    from mtbench.tracking import params as p

    assert (p.PARAM_VALUE_LIMIT, p.TAG_VALUE_LIMIT, p.KEY_LIMIT) == (
        v.MAX_PARAM_VAL_LENGTH, v.MAX_TAG_VAL_LENGTH, v.MAX_ENTITY_KEY_LENGTH)
    assert (p.PARAMS_PER_BATCH, p.METRICS_PER_BATCH) == (
        v.MAX_PARAMS_TAGS_PER_BATCH, v.MAX_METRICS_PER_BATCH)


def test_run_roundtrip(outputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts must not land in the cwd's ./mlruns
    run_dir = _run_dir(outputs)
    (run_dir / "lcurve.water.out").write_text("# step rmse\n0 1.0\n")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("a: 1\n")
    spec = {**SPEC, "extra": {f"p{i}": i for i in range(150)}}  # > 100 params: several batches

    tracker = MlflowTracker(output_dir=outputs, flush_every=400)
    tracker.start(experiment="mtbench", run_name="roundtrip", params=spec,
                  tags={"descriptor": "se_e2_a", "fitting": "ener"}, run_dir=run_dir)
    rmse = names.train_metric("water", "rmse_e")
    val = names.val_metric("water", "rmse_f")
    for step in range(600):  # 1200 points: auto-flushes at 400 plus the final flush
        tracker.log_metrics({rmse: 1.0 / (step + 1), val: float("nan") if step % 2 else 0.5},
                            step=step)
    tracker.log_artifact(run_dir / "lcurve.water.out")
    tracker.log_artifact(run_dir / ".hydra")
    tracker.set_tags({"sharing": "descriptor"})
    tracker.finish()

    client = MlflowClient(tracker.tracking_uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "roundtrip"
    assert run.data.tags["descriptor"] == "se_e2_a"
    assert run.data.tags["sharing"] == "descriptor"
    assert run.data.tags["mtbench.run_dir"] == str(run_dir.absolute())
    params = run.data.params
    assert params["model.descriptor.sel"] == "[46, 92]"
    assert params["training.numb_steps"] == "10"
    assert params["extra.p149"] == "149"
    assert len(params["model.descriptor.notes"]) == 6000
    assert params["model.descriptor.notes"].endswith(TRUNCATION_MARKER)

    history = client.get_metric_history(tracker.run_id, rmse)
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(600))
    assert history[0].value == pytest.approx(1.0 / (history[0].step + 1))
    val_history = {m.step: m.value for m in client.get_metric_history(tracker.run_id, val)}
    assert len(val_history) == 600
    assert math.isnan(val_history[1]) and val_history[2] == 0.5  # NaN kept, not dropped

    artifacts = {a.path for a in client.list_artifacts(tracker.run_id)}
    assert artifacts == {"input.json", "lcurve.water.out", ".hydra"}
    spec_back = json.loads(Path(client.download_artifacts(tracker.run_id, "input.json",
                                                          str(tmp_path))).read_text())
    assert spec_back["model"]["descriptor"]["notes"] == "n" * 7000  # full value kept
    hydra = [a.path for a in client.list_artifacts(tracker.run_id, ".hydra")]
    assert hydra == [".hydra/config.yaml"]
    assert (outputs / "mlartifacts").is_dir()
    assert not (tmp_path / "mlruns").exists()
    assert not (run_dir / BACKLOG_NAME).exists()

    text = tracker.describe()
    exp_id = run.info.experiment_id
    assert text.splitlines()[0] == (f"MLflow run {tracker.run_id} in experiment 'mtbench' "
                                    f"({default_tracking_uri(outputs)})")
    assert (f"mlflow ui --backend-store-uri {default_tracking_uri(outputs)} --host 127.0.0.1 "
            f"--workers 1 (then http://127.0.0.1:5000/#/experiments/{exp_id}/runs/"
            f"{tracker.run_id})") in text


def test_env_var_wins_over_config(outputs, tmp_path, monkeypatch):
    env_store = tmp_path / "envstore"
    env_store.mkdir()
    shutil.copy(outputs / "mlflow.db", env_store / "env.db")
    env_uri = f"sqlite:///{env_store}/env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_uri)
    tracker = MlflowTracker(tracking_uri=default_tracking_uri(outputs), output_dir=outputs)
    tracker.start(experiment="e", run_name=None, params={}, tags={}, run_dir=_run_dir(outputs))
    tracker.log_metrics({"lr": 0.1}, step=0)
    tracker.finish()
    assert tracker.tracking_uri == env_uri
    assert MlflowClient(env_uri).get_run(tracker.run_id).data.metrics == {"lr": 0.1}
    assert MlflowClient(default_tracking_uri(outputs)).get_experiment_by_name("e") is None
    assert (env_store / "mlartifacts").is_dir()  # artifacts next to that store's file


def test_nested_runs(outputs):
    parent = start_parent_run("sweep", "study-1", {"sweep": "lr"}, output_dir=outputs)
    assert parent is not None
    children = []
    for i in range(2):
        tracker = MlflowTracker(output_dir=outputs)
        tracker.start(experiment="sweep", run_name=f"job{i}", params={"i": i}, tags={},
                      run_dir=_run_dir(outputs, f"job{i}"), parent_run_id=parent)
        tracker.finish("FAILED" if i else "FINISHED")
        children.append(tracker.run_id)
    assert finish_run(parent, output_dir=outputs)

    client = MlflowClient(default_tracking_uri(outputs))
    assert client.get_run(parent).info.status == "FINISHED"
    assert client.get_run(parent).data.tags["sweep"] == "lr"
    found = client.search_runs([client.get_run(parent).info.experiment_id],
                               f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.info.run_id for r in found) == sorted(children)
    assert {r.info.status for r in found} == {"FINISHED", "FAILED"}


def test_sweep_helpers_survive_a_dead_store(tmp_path, caplog):
    assert start_parent_run("s", tracking_uri="http://127.0.0.1:9", output_dir=tmp_path) is None
    assert finish_run(None) is False
    assert len(_tracking_warnings(caplog)) == 1


def _offline_session(tracker: MlflowTracker, run_dir: Path) -> None:
    tracker.start(experiment="mtbench", run_name="offline", params=SPEC, tags={"k": "v"},
                  run_dir=run_dir)
    for step in range(50):
        tracker.log_metrics({"train/w/rmse": 1.0 / (step + 1), "val/w/rmse": float("nan")}, step)
        if step % 10 == 9:
            tracker.flush()
    (run_dir / "lcurve.out").write_text("0 1\n")
    tracker.log_artifact(run_dir / "lcurve.out")
    tracker.set_tags({"late": "tag"})
    tracker.finish("FINISHED")


@pytest.mark.parametrize("bad_uri", ["http://127.0.0.1:9", "unwritable"])
def test_unreachable_store_keeps_training_and_replays(bad_uri, outputs, tmp_path, caplog):
    if bad_uri == "unwritable":
        (tmp_path / "a_file").write_text("")  # a db "inside" a regular file: cannot be created
        bad_uri = f"sqlite:///{tmp_path}/a_file/mlflow.db"
    run_dir = _run_dir(outputs)
    tracker = MlflowTracker(tracking_uri=bad_uri, output_dir=tmp_path / "elsewhere")
    t0 = time.monotonic()
    _offline_session(tracker, run_dir)  # must not raise
    assert time.monotonic() - t0 < 15
    assert tracker.offline and tracker.run_id is None

    warnings = _tracking_warnings(caplog)
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "MLflow tracking failed" in message and str(run_dir / BACKLOG_NAME) in message
    assert "\n" not in message
    assert "python -m mtbench.tracking.replay" in tracker.describe()

    records = read_backlog(run_dir / BACKLOG_NAME)
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert kinds.count("metrics") == 5 and "artifact" in kinds and "tags" in kinds
    assert records[0]["params"]["model.descriptor.sel"] == "[46, 92]"
    assert records[0]["tracking_uri"] == bad_uri

    uri = default_tracking_uri(outputs)
    (replayed,) = replay_backlog(run_dir, uri)
    assert replayed.created and replayed.metrics == 100 and replayed.status == "FINISHED"
    client = MlflowClient(uri)
    run = client.get_run(replayed.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "offline"
    assert run.data.tags["k"] == "v" and run.data.tags["late"] == "tag"
    assert run.data.params["model.type_map"] == '["O", "H"]'
    history = client.get_metric_history(replayed.run_id, "val/w/rmse")
    assert len(history) == 50 and all(math.isnan(m.value) for m in history)
    assert {a.path for a in client.list_artifacts(replayed.run_id)} == {"input.json", "lcurve.out"}
    assert not (run_dir / BACKLOG_NAME).exists() and (run_dir / REPLAYED_NAME).exists()


def test_store_failing_mid_run_replays_into_the_same_run(outputs, caplog, monkeypatch):
    run_dir = _run_dir(outputs)
    tracker = MlflowTracker(output_dir=outputs)
    tracker.start(experiment="mtbench", run_name="mid", params={"a": 1}, tags={}, run_dir=run_dir)
    for step in range(10):
        tracker.log_metrics({"lr": float(step)}, step)
    tracker.flush()

    def down(*args, **kwargs):
        raise StoreError("log metrics on the store failed: ConnectionError: server went away")

    monkeypatch.setattr(tracker._store, "log_metrics", down)
    monkeypatch.setattr(tracker._store, "set_terminated", down)
    for step in range(10, 30):
        tracker.log_metrics({"lr": float(step)}, step)
        tracker.flush()
    tracker.finish()
    assert len(_tracking_warnings(caplog)) == 1
    monkeypatch.undo()

    client = MlflowClient(tracker.tracking_uri)
    assert len(client.get_metric_history(tracker.run_id, "lr")) == 10
    assert client.get_run(tracker.run_id).info.status == "RUNNING"

    assert replay_main([str(run_dir)]) == 0
    history = client.get_metric_history(tracker.run_id, "lr")
    assert sorted(m.step for m in history) == list(range(30))
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    assert len(client.search_runs([tracker.experiment_id])) == 1  # no duplicate run


def test_replay_twice_after_partial_failure_creates_one_run(outputs, tmp_path, monkeypatch):
    run_dir = _run_dir(outputs)
    tracker = MlflowTracker(tracking_uri="http://127.0.0.1:9", output_dir=outputs)
    _offline_session(tracker, run_dir)
    uri = default_tracking_uri(outputs)

    original = Store.set_terminated

    def fail_once(self, run_id, status):
        monkeypatch.setattr(Store, "set_terminated", original)
        raise StoreError("end run failed: database went away")

    monkeypatch.setattr(Store, "set_terminated", fail_once)
    with pytest.raises(StoreError):
        replay_backlog(run_dir, uri)
    assert (run_dir / BACKLOG_NAME).exists()  # kept for the next try
    (again,) = replay_backlog(run_dir, uri)
    client = MlflowClient(uri)
    runs = client.search_runs([again.experiment_id])
    assert [r.info.run_id for r in runs] == [again.run_id]
    assert len(client.get_metric_history(again.run_id, "train/w/rmse")) == 50  # no duplicates


def test_replay_cli_without_backlog_is_a_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        replay_main([str(tmp_path)])
    assert exc.value.code == 2
    assert "no tracking backlog" in capsys.readouterr().err


def test_rejected_data_is_kept_and_run_stays_online(outputs, caplog, monkeypatch):
    run_dir = _run_dir(outputs)
    tracker = MlflowTracker(output_dir=outputs)
    tracker.start(experiment="mtbench", run_name=None, params={}, tags={}, run_dir=run_dir)
    real = tracker._store.log_metrics
    calls = []

    def reject_first(run_id, points):
        calls.append(len(points))
        if len(calls) == 1:
            raise StoreRejected("log metrics failed: INVALID_PARAMETER_VALUE")
        real(run_id, points)

    monkeypatch.setattr(tracker._store, "log_metrics", reject_first)
    tracker.log_metrics({"lr": 1.0}, step=0)
    tracker.flush()
    tracker.log_metrics({"lr": 2.0}, step=1)
    tracker.finish()
    assert not tracker.offline
    history = MlflowClient(tracker.tracking_uri).get_metric_history(tracker.run_id, "lr")
    assert [(m.step, m.value) for m in history] == [(1, 2.0)]
    kinds = [r["kind"] for r in read_backlog(run_dir / BACKLOG_NAME)]
    assert kinds == ["start", "rejected"]
    assert len(_tracking_warnings(caplog)) == 1


def test_lock_errors_are_retried_other_errors_are_not(tmp_path):
    store = Store("sqlite:///unused.db", tmp_path, retries=3, backoff_s=0.001)
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert store._retry(flaky, "log metrics") == "ok" and len(attempts) == 3

    def broken():
        attempts.append(1)
        raise RuntimeError("disk I/O error")

    attempts.clear()
    with pytest.raises(StoreError, match=r"^log metrics on sqlite:///unused.db failed: Runtime"):
        store._retry(broken, "log metrics")
    assert len(attempts) == 1


def test_dead_server_is_detected_before_mlflow_retries_for_minutes(tmp_path):
    store = Store("http://127.0.0.1:9", tmp_path)
    store._client = object()  # as if connected while the server was up
    called = []
    t0 = time.monotonic()
    with pytest.raises(StoreError, match="unreachable"):
        store._retry(lambda: called.append(1), "log metrics")
    assert not called and time.monotonic() - t0 < 5


def test_metrics_are_sent_when_the_flush_interval_passed(outputs):
    tracker = MlflowTracker(output_dir=outputs, flush_every=10**6, flush_interval_s=0.0)
    tracker.start(experiment="e", run_name=None, params={}, tags={}, run_dir=_run_dir(outputs))
    tracker.log_metrics({"lr": 0.5}, step=3)
    client = MlflowClient(tracker.tracking_uri)
    history = client.get_metric_history(tracker.run_id, "lr")
    assert [(m.step, m.value) for m in history] == [(3, 0.5)]
    tracker.finish()


def test_misuse(outputs):
    tracker = MlflowTracker(output_dir=outputs)
    tracker.flush()
    tracker.finish()  # before start: no-op, so a trainer's `finally` can always call it
    with pytest.raises(RuntimeError, match="before start"):
        tracker.log_metrics({"lr": 1.0}, step=0)
    tracker.start(experiment="e", run_name=None, params={}, tags={}, run_dir=_run_dir(outputs))
    with pytest.raises(ValueError, match="SUCCESS"):
        tracker.finish("SUCCESS")
    tracker.log_metrics({"lr": "fast", "bad name*": 1.0}, step=0)  # skipped / renamed
    tracker.log_artifact(outputs / "missing.txt")  # warns, does not raise
    tracker.finish("KILLED")
    tracker.finish("FINISHED")  # second finish: no-op
    run = MlflowClient(tracker.tracking_uri).get_run(tracker.run_id)
    assert run.info.status == "KILLED"
    assert run.data.metrics == {"bad name_": 1.0}


CONCURRENT_SCRIPT = """
import multiprocessing as mp, sys
from pathlib import Path
# Import MLflow's store code once, before forking, so the workers start quickly.
import mlflow.store.tracking.sqlalchemy_store, mlflow.tracking.context.registry, alembic.command
from mtbench.tracking import MlflowTracker

def job(index):
    outputs = Path(sys.argv[1])
    tracker = MlflowTracker(output_dir=outputs, flush_every=30)
    tracker.start(experiment="concurrent", run_name=f"job{index}", params={"job": index},
                  tags={}, run_dir=outputs / "runs" / f"job{index}")
    for step in range(100):
        tracker.log_metrics({"train/w/rmse": float(step), "lr": 1e-3, "val/w/rmse": 1.0}, step)
    tracker.finish()
    return f"{tracker.run_id} {int(tracker.offline)}"

if __name__ == "__main__":
    with mp.get_context("fork").Pool(int(sys.argv[2])) as pool:
        print(" ".join(pool.map(job, range(int(sys.argv[2])))))
"""


@pytest.mark.slow
@pytest.mark.parametrize("fresh", [False, True])
def test_concurrent_processes_share_one_sqlite_store(fresh, tmp_path, template_db):
    """Joblib-style: several processes log runs to one store at once; with ``fresh`` they also
    create the store (schema migrations) and the experiment at once. A fresh interpreter forks
    the workers, so no test-session threads are forked."""
    outputs = tmp_path / "outputs"
    if not fresh:
        outputs.mkdir()
        shutil.copy(template_db, outputs / "mlflow.db")
    jobs = 3
    out = subprocess.run([sys.executable, "-c", CONCURRENT_SCRIPT, str(outputs), str(jobs)],
                         check=False,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO),
                              "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert out.returncode == 0, out.stderr[-3000:]
    words = out.stdout.split()
    run_ids, offline = words[0::2], words[1::2]
    assert offline == ["0"] * jobs  # nobody fell back to the backlog
    client = MlflowClient(default_tracking_uri(outputs))
    experiment = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids)
    for run in runs:
        assert run.info.status == "FINISHED"
        for key in ("train/w/rmse", "lr", "val/w/rmse"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 100
    assert not list(outputs.glob(f"runs/*/{BACKLOG_NAME}"))
