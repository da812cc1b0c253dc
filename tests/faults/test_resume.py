"""Resume is a continuation, with real processes: SIGTERM / kill -9 at a step, then resume -> the same folder and
MLflow run, weights and metrics of an uninterrupted run with the same seed, every step once in lcurve and in the
metric history; a second process on a folder in use is refused; a run left RUNNING is marked on resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mtbench.rundir import RunDir, RunInUse, RunLock
from tests.conftest import tiny_spec_dict
from tests.faults.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
STEPS = 60
COMPARED = ("train/", "val/", "sampling/", "lr", "grad/")  # what both runs compute (timing and best/ differ)

# api.train in a child process: tracking flushes every point (a kill -9 then leaves points past the checkpoint in
# the store, which the resumed run must not log again)
DRIVER = """
import json, sys
from mtbench import api
a = json.loads(sys.argv[1])
api.train(a["input"], run_dir=a["run_dir"], output_dir=a["out"], restart=a.get("restart"),
          tracking={"backend": "mlflow", "tracking_uri": a["uri"], "flush_every": 1})
"""


def _input(tmp_path: Path, tiny_data: Path) -> Path:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener", "water_dipole"), steps=STEPS)
    spec["training"].update(disp_freq=3, save_freq=9)
    path = tmp_path / "input.json"
    path.write_text(json.dumps(spec))
    return path


def _cli(inp: Path, run_dir: Path, uri: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mtbench.train", str(inp), "-o", str(run_dir), "--tracking", "mlflow",
            "--tracking-uri", uri, "--no-progress", "--output-dir", str(run_dir.parent / "out"), *extra]


def _rows(run_dir: Path) -> int:
    files = sorted(run_dir.glob("lcurve.*.out"))
    return min((sum(1 for ln in f.read_text().splitlines() if ln.strip() and not ln.startswith("#"))
                for f in files), default=0) if files else 0


def _wait(proc: subprocess.Popen, ready, timeout: float = 240.0) -> None:
    wait_until(proc, ready, "the fault point", timeout, poll=0.01)


def _history(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in run.data.metrics}


def _weights(run_dir: Path) -> dict[str, np.ndarray]:
    from mtbench.train.checkpoint import load_checkpoint

    flat: dict[str, np.ndarray] = {}

    def walk(obj, path: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}/{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{path}/{i}")
        elif isinstance(obj, np.ndarray):
            flat[path] = obj

    walk(load_checkpoint(run_dir)["model"], "")
    return flat


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> dict:
    """The uninterrupted run everything is compared with."""
    tmp = tmp_path_factory.mktemp("reference")
    inp = _input(tmp, tiny_data)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    run_dir = tmp / "run"
    done = subprocess.run(_cli(inp, run_dir, uri), capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = RunDir(run_dir).read_tracking_run()["run_id"]
    return {"run_dir": run_dir, "history": _history(uri, run_id), "weights": _weights(run_dir),
            "lcurves": {p.name: p.read_text() for p in run_dir.glob("lcurve.*.out")}}


def _assert_same_as_reference(reference: dict, run_dir: Path, uri: str, exact_up_to: int = 0) -> dict:
    """Weights and lcurve text equal; every metric step once; values equal (steps <= ``exact_up_to`` may come
    from lcurve's rounded values, and sampling/grad points of those steps may be missing)."""
    run_id = RunDir(run_dir).read_tracking_run()["run_id"]
    hist = _history(uri, run_id)
    for key, points in hist.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice: {steps}"
    ref = reference["history"]
    for key, ref_points in ref.items():
        if not key.startswith(COMPARED):
            continue
        got = dict(hist.get(key, []))
        for step, value in ref_points:
            if step <= exact_up_to:
                if key.startswith(("sampling/", "grad/")) and step not in got:
                    continue
                assert got.get(step) == pytest.approx(value, rel=1e-2, nan_ok=True), (key, step)
            else:  # equal up to float noise: TensorFlow's CPU kernels may round a last bit differently under load
                assert got.get(step) == pytest.approx(value, rel=1e-12, abs=1e-300, nan_ok=True), (key, step)
    assert {p.name: p.read_text() for p in run_dir.glob("lcurve.*.out")} == reference["lcurves"]
    weights = _weights(run_dir)
    assert weights.keys() == reference["weights"].keys()
    for k, w in reference["weights"].items():
        np.testing.assert_allclose(weights[k], w, rtol=1e-12, atol=1e-300, err_msg=k)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri).get_run(run_id).data.tags | {"status": MlflowClient(
        tracking_uri=uri).get_run(run_id).info.status, "run_id": run_id}


def test_sigterm_then_resume_auto_is_the_uninterrupted_run(tmp_path: Path, tiny_data: Path, reference: dict) -> None:
    inp = _input(tmp_path, tiny_data)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "job"  # a SLURM job's stable folder: the same command starts and resumes it
    cmd = _cli(inp, run_dir, uri, "--restart", "auto")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    _wait(proc, lambda: _rows(run_dir) >= 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    first_id = RunDir(run_dir).read_tracking_run()["run_id"]
    stopped = RunDir(run_dir).step_checkpoints()[-1][0]
    assert stopped < STEPS
    assert not RunDir(run_dir).lock_file.exists()

    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{STEPS - stopped} steps in this process (resumed at {stopped}, {STEPS} in total)" in done.stdout
    tags = _assert_same_as_reference(reference, run_dir, uri)
    assert tags["run_id"] == first_id and tags["status"] == "FINISHED"
    assert tags["mtbench.resumed"].startswith(f"at step {stopped}")
    assert "mtbench.stale" not in tags  # the SIGTERM'd run ended as KILLED: nothing stale
    # "stopped by SIGTERM" no longer describes the FINISHED run: only its history keeps it
    assert "mtbench.stopped" not in tags
    assert tags["mtbench.previous_ends"] == f"stopped: SIGTERM at step {stopped}"


def test_kill9_then_resume_continues_the_run_and_marks_it(tmp_path: Path, tiny_data: Path, reference: dict) -> None:
    inp = _input(tmp_path, tiny_data)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    args = {"input": str(inp), "run_dir": str(run_dir), "out": str(tmp_path / "out"), "uri": uri}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    run = RunDir(run_dir)
    # killed after a checkpoint, with displays (lcurve rows, flushed metric points) past it
    _wait(proc, lambda: bool(run.step_checkpoints()) and _rows(run_dir) > run.step_checkpoints()[-1][0] // 3 + 2)
    proc.kill()
    proc.communicate(timeout=60)
    ckpt = run.step_checkpoints()[-1][0]
    assert ckpt < STEPS and run.lock_file.exists()  # the dead process's lock stays behind
    first_id = run.read_tracking_run()["run_id"]
    sent = _history(uri, first_id)
    assert any(s > ckpt for pts in sent.values() for s, _ in pts)  # the store holds steps past the checkpoint

    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps({**args, "restart": str(run_dir)})],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the resumed training computed" not in done.stderr  # the held points agree with the recomputed ones
    tags = _assert_same_as_reference(reference, run_dir, uri, exact_up_to=ckpt)
    assert tags["run_id"] == first_id and tags["status"] == "FINISHED"
    assert "mtbench.stale" not in tags  # marked stale by the resume, then continued: history only
    ends = tags["mtbench.previous_ends"]
    assert ends.startswith("stale: ") and "ended without closing the run" in ends and "by a resume" in ends
    assert not run.lock_file.exists()


def test_a_second_process_on_a_folder_in_use_is_refused(tmp_path: Path, tiny_data: Path) -> None:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener",), steps=100000)
    spec["training"].update(disp_freq=5, save_freq=100000)
    inp = tmp_path / "input.json"
    inp.write_text(json.dumps(spec))
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "mtbench.train", str(inp), "-o", str(run_dir), "--tracking", "none",
           "--no-progress"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        _wait(first, lambda: _rows(run_dir) >= 1)
        input_before = (run_dir / "input.json").read_text()
        second = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
        assert second.returncode == 2
        lines = [ln for ln in second.stderr.splitlines() if "error" in ln]
        assert lines == [f"mtbench.train: error: run folder {run_dir.resolve()} is in use by pid {first.pid} on "
                         f"{os.uname().nodename} (started {json.loads((run_dir / 'run.lock').read_text())['started']})"
                         f" (lock {run_dir.resolve() / 'run.lock'}); wait for it to end or stop it first"]
        assert "Traceback" not in second.stderr
        assert (run_dir / "input.json").read_text() == input_before and first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143


def test_a_dead_process_lock_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "run.lock"
    lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": "then"}))
    with RunLock(tmp_path) as taken:
        assert taken.taken_over == {"pid": dead.pid, "host": os.uname().nodename, "started": "then"}
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(RunInUse, match=f"in use by pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not lock.exists()
    other = {"pid": os.getpid(), "host": "another-node", "started": "now"}
    lock.write_text(json.dumps(other))  # another host's holder cannot be checked: never taken over
    with pytest.raises(RunInUse, match="on another-node"):
        RunLock(tmp_path).acquire()
