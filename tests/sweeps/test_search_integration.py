"""Real searches in subprocesses (``python -m mtbench -m hydra/sweeper=optuna``, tiny runs): the joblib launcher
with 2 jobs at a time and 2 objectives, and a search killed in the middle of a trial then resumed by the same
command. Both run on the tiny set as the built-in data (``tiny_builtin_dir``) and 3 steps per trial."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from mtbench.sweeps.pareto import non_dominated  # noqa: E402
from tests.sweeps.test_sweep_integration import FEW_STEPS  # noqa: E402

pytestmark = pytest.mark.slow

KEY = "training.fitting_weight.water_dipole"
TASKS = ("water_ener", "water_dipole")
# each task's final validation error as the search ranks it (mtbench.train.best.final_ranking_metric)
METRIC = {"water_ener": "final/water_ener/rmse_f", "water_dipole": "final/water_dipole/rmse"}


def env_for(cwd: Path, data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "MTBENCH_OUTPUT_DIR": str(cwd / "outputs"), "MTBENCH_DATA_DIR": str(data_dir),
           "MTBENCH_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def search_args(study: str, n_trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mtbench", "-m", "hydra/sweeper=optuna", f"hydra.sweeper.study_name={study}",
            f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.seed=3", "debug=fast", *FEW_STEPS,
            f"{KEY}=tag(log,interval(0.5,50))", "learning_rate.start_lr=choice(0.001,0.003)", *extra]


@pytest.fixture(scope="module")
def data_dir(tiny_builtin_dir: Path) -> Path:
    return tiny_builtin_dir  # the tiny set as the built-in data: these tests check plumbing, not learning


def runs_of(db: Path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("mtbench").experiment_id])
    parents = [r for r in runs if r.data.tags.get("mtbench.run_type") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    return client, parents, children


def test_search_with_joblib_two_objectives(tmp_path: Path, data_dir: Path) -> None:
    proc = subprocess.run(search_args("s6", 6, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                      "hydra.sweeper.n_jobs=2"),
                          cwd=tmp_path, env=env_for(tmp_path, data_dir), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    check_search(tmp_path / "outputs", proc.stdout + proc.stderr)


def check_search(out: Path, output: str) -> None:
    """The 6-trial search's study, MLflow runs and report (``output``: what the command printed)."""
    sweep_dir = out / "search" / "s6"
    storage = out / "search" / "s6.optuna.db"
    assert storage.is_file() and sweep_dir.is_dir()  # the study beside the sweep folder
    study = optuna.load_study(study_name="s6", storage=f"sqlite:///{storage}")
    trials = study.get_trials()
    assert len(study.directions) == 2
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert output.count("is launching 2 jobs") == 3  # batches of n_jobs through the joblib launcher
    # six child runs of one parent, each the trial of the same number, telling the study its final errors
    _, parents, children = runs_of(out / "mlflow.db")
    assert len(parents) == 1 and len(children) == 6
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.sweeper"] == "OptunaSweeper"
    by_job = {int(c.data.tags["sweep.job"]): c for c in children}
    assert sorted(by_job) == list(range(6))
    values = []
    for t in trials:
        child = by_job[t.number]
        assert child.info.status == "FINISHED"
        assert float(child.data.tags[f"sweep.{KEY}"]) == pytest.approx(t.params[KEY], rel=1e-12)
        mine = [child.data.metrics[METRIC[task]] for task in TASKS]
        assert t.values == pytest.approx(mine, rel=1e-12)
        values.append(mine)
    # the Pareto set of the report is the non-dominated set of the children's metrics, and really is
    expected = {i for i in range(6) if not any(
        all(a <= b for a, b in zip(values[j], values[i])) and values[j] != values[i] for j in range(6))}
    assert set(non_dominated(values)) == expected and expected
    with open(sweep_dir / "compare" / "pareto.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {int(r["job"]) for r in rows if r["non_dominated"] == "1"} == expected
    assert {t.number for t in study.best_trials} == expected  # Optuna agrees
    assert (sweep_dir / "compare" / "pareto.png").stat().st_size > 10_000
    assert "## Pareto front" in (sweep_dir / "compare" / "summary.md").read_text()
    results = json.loads((sweep_dir / "search_results.json").read_text())
    assert {t["number"] for t in results["best_trials"]} == expected


def completed(storage: Path) -> int:
    if not storage.exists():
        return 0
    try:
        with sqlite3.connect(storage, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def trial_started(out: Path, study: str, number: int) -> bool:
    """Trial ``number``'s job has its MLflow child run (RUNNING) and is training: a kill now cuts it short."""
    return (out / "search" / study / str(number) / "tracking_run.json").is_file()


def test_search_resumes_after_a_kill_during_a_trial(tmp_path: Path, data_dir: Path) -> None:
    n_trials = 2
    args = search_args("r", n_trials)
    env = env_for(tmp_path, data_dir)
    out = tmp_path / "outputs"
    storage = out / "search" / "r.optuna.db"
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 1200
    # the first trial done, the second one running (its child run exists): kill in the middle of a trial
    while not (completed(storage) >= 1 and trial_started(out, "r", 1)) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)  # the whole search, as a lost node or `kill -9` would
    proc.wait(timeout=60)
    log.close()
    first = optuna.load_study(study_name="r", storage=f"sqlite:///{storage}").get_trials()
    done_before = [t for t in first if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done_before) >= 1 and len(done_before) < n_trials
    interrupted = [t for t in first if t.state == optuna.trial.TrialState.RUNNING]
    assert [t.number for t in interrupted] == [1]  # killed during trial 1
    client, _, children = runs_of(out / "mlflow.db")
    assert sorted(c.info.status for c in children) == ["FINISHED", "RUNNING"]  # what the resume must clean up

    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert again.returncode == 0, again.stderr[-4000:]
    assert "resuming study 'r'" in again.stdout
    assert "trial 1 was left running by an interrupted search: marked failed" in again.stdout
    trials = optuna.load_study(study_name="r", storage=f"sqlite:///{storage}").get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == n_trials  # the budget counts the trials already done
    for t in done_before:  # kept as they were, not re-run
        same = trials[t.number]
        assert (same.state, same.values, same.params) == (t.state, t.values, t.params)
    for t in interrupted:  # the trial the kill cut short is marked failed, its number not reused
        assert trials[t.number].state == optuna.trial.TrialState.FAIL
    assert len(trials) == n_trials + len(interrupted)
    # every completed trial is a finished child of the one parent run, which the rerun continued
    _, parents, children = runs_of(out / "mlflow.db")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = {int(c.data.tags["sweep.job"]) for c in children if c.info.status == "FINISHED"}
    assert finished == {t.number for t in complete}
    # no run is left RUNNING when its process is gone: the cut-short trial's child is KILLED, tagged stale
    assert not [r.info.run_name for r in client.search_runs([parents[0].info.experiment_id])
                if r.info.status == "RUNNING"]
    by_folder = {Path(c.data.tags["mtbench.run_dir"]).name: c for c in children}  # a killed job has no sweep.job
    for t in interrupted:
        child = by_folder[str(t.number)]
        assert child.info.status == "KILLED"
        assert "marked KILLED by a resumed search" in child.data.tags["mtbench.stale"]
    assert parents[0].data.tags["sweep.killed"] == str(len(interrupted))
