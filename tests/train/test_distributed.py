"""Data-parallel training (mtbench.train.distributed) against single-process training, with real processes.

2 replicas x batch 1 must train exactly like 1 process x batch 2 on the same frames: the same task sequence
(sampler state and counts), lcurve files and weights. Measured on this machine: max relative weight difference
5e-17 (MirroredStrategy, 2 logical CPUs) after 6 steps in float64; the tests allow 1e-12.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import tiny_spec_dict

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-12
STEPS = 6


def _spec(data: Path, *, batch: int, distributed: str = "none", steps: int = STEPS, **training: Any) -> dict:
    spec = tiny_spec_dict(data, steps=steps)
    spec["learning_rate"]["scale_by_worker"] = "none"
    for d in spec["training"]["data_dict"].values():
        d["training_data"]["batch_size"] = batch
    spec["training"]["distributed"] = distributed
    spec["training"].update(training)
    return spec


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MTBENCH_THREADS": "1", "MTBENCH_INTER_THREADS": "1"}
    env.pop("TF_CONFIG", None)
    return env


def _train_cmd(input_json: Path, run: Path, out: Path, tracking: str = "none") -> list[str]:
    return [sys.executable, "-m", "mtbench.train", str(input_json), "-o", str(run), "--output-dir", str(out),
            "--tracking", tracking, "--no-progress"]


def _write(path: Path, spec: dict) -> Path:
    path.write_text(json.dumps(spec))
    return path


def _flat(d: Any, prefix: str = ""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flat(v, f"{prefix}/{k}")
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            yield from _flat(v, f"{prefix}[{i}]")
    else:
        yield prefix, d


def _assert_same_training(run: Path, ref: Path, steps: int = STEPS) -> None:
    """Same sampler state (hence task sequence), same lcurves, weights equal within RTOL."""
    from mtbench.train.checkpoint import load_checkpoint

    a, b = load_checkpoint(str(run)), load_checkpoint(str(ref))
    assert a["state"]["step"] == b["state"]["step"] == steps
    assert a["state"]["sampler"] == b["state"]["sampler"]
    wa, wb = dict(_flat(a["model"])), dict(_flat(b["model"]))
    assert wa.keys() == wb.keys()
    compared = 0
    for key, va in wa.items():
        if isinstance(va, np.ndarray) and va.dtype.kind == "f":
            vb = wb[key]
            scale = max(float(np.max(np.abs(vb))), 1e-300) if vb.size else 1.0
            assert np.max(np.abs(va - vb), initial=0.0) <= RTOL * scale, key
            compared += 1
    assert compared > 4
    for task in ("water_ener", "water_dipole"):
        la, lb = (np.loadtxt(r / f"lcurve.{task}.out") for r in (run, ref))
        np.testing.assert_allclose(la, lb, rtol=1e-9, atol=1e-12)


def test_scale_by_worker() -> None:
    from mtbench.errors import SpecError
    from mtbench.train.distributed import lr_scale

    assert (lr_scale("linear", 4), lr_scale("sqrt", 4), lr_scale("none", 4), lr_scale(None, 3)) == (4.0, 2.0, 1.0,
                                                                                                    3.0)
    with pytest.raises(SpecError, match="scale_by_worker"):
        lr_scale("cubic", 2)


def test_shares_of_one_batch_are_its_frames(tiny_data: Path) -> None:
    """get_batches(n) splits the one batch get_batch would give (same RNG, same cursor) into n shares."""
    from mtbench.data.dataset import TaskDataset
    from mtbench.data.requirements import ENERGY

    path = [str(tiny_data / "water_tip3p" / "train")]
    one = TaskDataset(path, ["O", "H"], [ENERGY], batch_size=2)
    two = TaskDataset(path, ["O", "H"], [ENERGY], batch_size=1, replicas=2)
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(5):
        whole = one.get_batch(r1)
        parts = two.get_batches(r2, 2)
        np.testing.assert_array_equal(np.concatenate([p["coord"] for p in parts]), whole["coord"])
        assert [p["coord"].shape[0] for p in parts] == [1, 1]


MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mtbench.train.run import run_training
    spec = json.load(open(sys.argv[1]))
    s = run_training(spec, run_dir=sys.argv[2], tracking={"backend": "none"}, output_dir=sys.argv[3],
                     progress=False)
    print("REPLICAS", s["distributed"]["replicas"])
""")


def test_mirrored_on_two_logical_cpus_equals_doubled_batch(tiny_data: Path, tmp_path: Path) -> None:
    """MirroredStrategy over 2 logical CPU devices (the stand-in for 2 GPUs) vs one device with batch 2."""
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    inp = _write(tmp_path / "mirrored.json", _spec(tiny_data, batch=1, distributed="mirrored"))
    ref_inp = _write(tmp_path / "ref.json", _spec(tiny_data, batch=2))
    procs = [subprocess.Popen([sys.executable, str(script), str(inp), str(tmp_path / "run"), str(tmp_path / "o")],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
             subprocess.Popen(_train_cmd(ref_inp, tmp_path / "ref", tmp_path / "o2"), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "REPLICAS 2" in outs[0][0]
    _assert_same_training(tmp_path / "run", tmp_path / "ref")


def test_two_workers_equal_one_process_and_only_the_chief_writes(tiny_data: Path, tmp_path: Path) -> None:
    """python -m mtbench.launch --nproc 2 (MultiWorkerMirroredStrategy on 127.0.0.1), batch 1 each, vs one process
    with batch 2; one MLflow run with distributed/replicas; worker 1 leaves nothing behind."""
    inp = _write(tmp_path / "mw.json", _spec(tiny_data, batch=1, distributed="multi_worker", collective_timeout=120))
    ref_inp = _write(tmp_path / "ref.json", _spec(tiny_data, batch=2))
    run, out = tmp_path / "run", tmp_path / "out"
    env = _env()
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    launch = subprocess.Popen([sys.executable, "-m", "mtbench.launch", "--nproc", "2", "--train", str(inp), "--",
                               *_train_cmd(inp, run, out, "mlflow")[4:]], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    ref = subprocess.Popen(_train_cmd(ref_inp, tmp_path / "ref", tmp_path / "o2"), env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    l_out, l_err = launch.communicate(timeout=900)
    r_out, r_err = ref.communicate(timeout=900)
    assert launch.returncode == 0, (l_out + l_err)[-4000:]
    assert ref.returncode == 0, r_err[-3000:]
    assert "[0] " in l_out and "[1] " in l_out
    _assert_same_training(run, tmp_path / "ref")
    tracked_only = {"tracking_run.json"}  # the MLflow run id: the reference run is not tracked
    assert (sorted(p.name for p in run.iterdir() if p.name not in tracked_only)
            == sorted(p.name for p in (tmp_path / "ref").iterdir()))
    assert list((tmp_path / "tmp").iterdir()) == []  # worker 1's scratch folder and the launcher's are gone

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mtbench").experiment_id])
    assert len(runs) == 1
    metrics = runs[0].data.metrics
    assert metrics["distributed/replicas"] == 2.0
    assert {"train/water_ener/rmse", "val/water_dipole/rmse", "sampling/water_ener/count", "lr"} <= set(metrics)


def test_killed_worker_stops_the_other_with_one_line(tiny_data: Path, tmp_path: Path) -> None:
    """Worker 1 is SIGKILLed mid-run: worker 0 exits 2 within the collective timeout, naming worker 1; its
    latest checkpoint stays loadable."""
    from mtbench.launch import free_ports
    from mtbench.train.distributed import tf_config

    inp = _write(tmp_path / "mw.json", _spec(tiny_data, batch=1, distributed="multi_worker", steps=100000,
                                             collective_timeout=30, save_freq=5, disp_freq=5))
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for rank in range(2):
        env = {**_env(), "TF_CONFIG": tf_config(addresses, rank)}
        procs.append(subprocess.Popen(_train_cmd(inp, tmp_path / "run", tmp_path / "out"), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    lcurve = tmp_path / "run" / "lcurve.water_ener.out"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and (not lcurve.is_file() or len(lcurve.read_text().splitlines()) < 4):
        assert procs[0].poll() is None, procs[0].communicate()[1][-3000:]
        time.sleep(1)
    procs[1].send_signal(signal.SIGKILL)
    procs[1].communicate()
    t0 = time.monotonic()
    out, err = procs[0].communicate(timeout=180)
    took = time.monotonic() - t0
    lines = [ln for ln in err.splitlines() if ln.startswith("mtbench.train: error:")]
    assert procs[0].returncode == 2, err[-3000:]
    assert len(lines) == 1 and "worker 1" in lines[0] and addresses[1] in lines[0], err[-3000:]
    assert took < 120, took
    from mtbench.train.checkpoint import load_checkpoint

    assert load_checkpoint(str(tmp_path / "run"))["state"]["step"] % 5 == 0


@pytest.mark.parametrize("started", [0, 1])
def test_worker_that_never_joins_stops_the_other_with_one_line(tiny_data: Path, tmp_path: Path,
                                                               started: int) -> None:
    """TF_CONFIG lists 2 workers, only one is started (the chief, or worker 1): it exits 2 within the startup
    bound (training.collective_timeout) with one line naming the missing worker and its address, and the run
    folder was never created."""
    from mtbench.launch import free_ports
    from mtbench.train.distributed import tf_config

    timeout = 15
    inp = _write(tmp_path / "mw.json", _spec(tiny_data, batch=1, distributed="multi_worker",
                                             collective_timeout=timeout))
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    env = {**_env(), "TF_CONFIG": tf_config(addresses, started)}
    t0 = time.monotonic()
    proc = subprocess.run(_train_cmd(inp, tmp_path / "run", tmp_path / "out"), env=env, capture_output=True,
                          text=True, timeout=300)
    took = time.monotonic() - t0
    missing = 1 - started
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("mtbench.train: error:")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert f"worker {missing} ({addresses[missing]}) never joined" in lines[0], lines[0]
    assert took < timeout + 90, took  # interpreter and TensorFlow start-up included
    assert not (tmp_path / "run").exists()


def test_resume_two_workers_on_one_process_and_back(tiny_data: Path, tmp_path: Path) -> None:
    """A checkpoint written by 2 workers (batch 1 each) resumes on 1 process (batch 2), and one written by 1
    process resumes on 2 workers, in the same run folder: after K + L steps both equal an uninterrupted run of
    1 process with batch 2 (weights within RTOL, sampler state, every lcurve row once). The first part trains
    numb_steps=K, the resume raises it to K + L; the lr is constant (start_lr == stop_lr), so numb_steps does
    not change the schedule."""
    k, n = 4, 8

    def spec(workers: bool, steps: int) -> dict:
        sp = _spec(tiny_data, batch=1 if workers else 2, distributed="multi_worker" if workers else "none",
                   steps=steps, **({"collective_timeout": 120} if workers else {}))
        sp["learning_rate"]["stop_lr"] = sp["learning_rate"]["start_lr"]
        return sp

    def start(name: str, workers: bool, steps: int, run: Path, restart: bool = False) -> subprocess.Popen:
        inp = _write(tmp_path / f"{name}.json", spec(workers, steps))
        cmd = _train_cmd(inp, run, tmp_path / f"out-{name}") + (["--restart", str(run)] if restart else [])
        if workers:
            cmd = [sys.executable, "-m", "mtbench.launch", "--nproc", "2", "--train", str(inp), "--", *cmd[4:]]
        return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def done(*procs: subprocess.Popen) -> None:
        for p in procs:
            out, err = p.communicate(timeout=900)
            assert p.returncode == 0, (out + err)[-4000:]

    two_one, one_two, ref = tmp_path / "two_then_one", tmp_path / "one_then_two", tmp_path / "ref"
    done(start("a1", True, k, two_one), start("b1", False, k, one_two), start("ref", False, n, ref))
    done(start("a2", False, n, two_one, restart=True), start("b2", True, n, one_two, restart=True))
    for run in (two_one, one_two):
        _assert_same_training(run, ref, steps=n)
        for task in ("water_ener", "water_dipole"):
            steps = np.loadtxt(run / f"lcurve.{task}.out")[:, 0]
            assert list(steps) == list(np.loadtxt(ref / f"lcurve.{task}.out")[:, 0])  # every row once


def test_launcher_stops_on_a_signal_with_one_resume_line(tiny_data: Path, tmp_path: Path) -> None:
    """SIGTERM to mtbench.launch: forwarded to both workers, which stop at the same step with a checkpoint; the
    launcher exits 143 (a stop, not a failure) with one ``resume with:`` line that relaunches through it."""
    inp = _write(tmp_path / "mw.json", _spec(tiny_data, batch=1, distributed="multi_worker", steps=100000,
                                             collective_timeout=60, save_freq=5, disp_freq=5))
    run = tmp_path / "run"
    launch = subprocess.Popen([sys.executable, "-m", "mtbench.launch", "--nproc", "2", "--train", str(inp), "--",
                               *_train_cmd(inp, run, tmp_path / "out")[4:]], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    lcurve = run / "lcurve.water_ener.out"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and (not lcurve.is_file() or len(lcurve.read_text().splitlines()) < 3):
        assert launch.poll() is None, launch.communicate()[1][-3000:]
        time.sleep(0.5)
    launch.send_signal(signal.SIGTERM)
    out, err = launch.communicate(timeout=300)
    assert launch.returncode == 143, (out + err)[-4000:]
    resume = [ln for ln in (out + err).splitlines() if "resume with:" in ln]
    assert len(resume) == 1 and resume[0].startswith("mtbench.launch: stopped by SIGTERM at step"), resume
    assert "-m mtbench.launch --nproc 2 --train" in resume[0] and f"--restart {run.resolve()}" in resume[0]
    assert "error" not in err.lower(), err[-3000:]
    from mtbench.train.checkpoint import load_checkpoint

    step = load_checkpoint(str(run))["state"]["step"]
    assert f"at step {step} " in resume[0]
