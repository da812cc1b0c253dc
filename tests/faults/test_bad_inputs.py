"""Catalogue of bad inputs a user hits: each is one line ``mtbench.train: error: ...`` naming the file or key, exit
code 2, no traceback, and an earlier checkpoint / MLflow run left consistent (or an explicit, logged opt-in).

Every case runs ``python -m mtbench.train input.json`` as a real process on a copy of the tiny water data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import tiny_spec_dict

ROOT = Path(__file__).resolve().parents[2]
PROG = "mtbench.train: error: "
SET = Path("water_tip3p/train/sys_000/set.000")


def _data(tiny_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for name in ("water_tip3p", "water_dipole"):
        shutil.copytree(tiny_data / name, root / name)
    return root


def _spec(root: Path, tasks: tuple[str, ...] = ("water_ener",), steps: int = 2) -> dict[str, Any]:
    spec = tiny_spec_dict(root, tasks=tasks, steps=steps)
    spec["training"]["save_freq"] = 2
    return spec


def _train(tmp_path: Path, spec: dict[str, Any], *extra: str, mlflow: bool = False,
           run_dir: str = "run") -> subprocess.CompletedProcess:
    path = tmp_path / f"input_{run_dir}.json"
    path.write_text(json.dumps(spec))
    tracking = ["--tracking", "mlflow", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"] if mlflow \
        else ["--tracking", "none"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "mtbench.train", str(path), "-o", str(tmp_path / run_dir),
                           "--no-progress", *tracking, *extra], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)


def _one_error(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(PROG)]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert proc.returncode == 2, proc.stderr[-3000:]
    return lines[0][len(PROG):]


def _edit(root: Path, rel: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    p = root / SET / rel
    np.save(p, fn(np.load(p)))


def _set_value(index: tuple, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def fn(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[index] = value
        return a
    return fn


def _nan_energy(root, spec):
    _edit(root, "energy.npy", _set_value((3,), np.nan))


def _inf_coord(root, spec):
    _edit(root, "coord.npy", _set_value((1, 4), np.inf))


def _nan_force(root, spec):
    _edit(root, "force.npy", _set_value((2, 0), np.nan))


def _nan_box(root, spec):
    _edit(root, "box.npy", _set_value((0, 0), np.nan))


def _random_bytes(root, spec):
    (root / SET / "energy.npy").write_bytes(np.random.default_rng(0).bytes(200))


def _truncated(root, spec):
    p = root / SET / "force.npy"
    p.write_bytes(p.read_bytes()[:150])


def _empty_set(root, spec):
    _edit(root, "coord.npy", lambda a: a[:0])


def _zero_box(root, spec):
    _edit(root, "box.npy", lambda a: np.zeros_like(a))


def _force_wrong_atoms(root, spec):
    _edit(root, "force.npy", lambda a: a.reshape(a.shape[0], -1)[:, :-3])


def _energy_few_frames(root, spec):
    _edit(root, "energy.npy", lambda a: a[:-1])


def _box_few_frames(root, spec):
    _edit(root, "box.npy", lambda a: a[:-1])


def _missing_box(root, spec):
    (root / SET / "box.npy").unlink()


def _type_beyond_map(root, spec):
    p = root / SET.parent / "type.raw"
    types = p.read_text().split()
    (root / SET.parent / "type_map.raw").unlink()
    p.write_text("\n".join(["7", *types[1:]]) + "\n")


def _sel_wrong_length(root, spec):
    spec["model"]["descriptor"]["sel"] = [12]


def _dipole_without_labels(root, spec):
    for p in (root / "water_dipole").rglob("*dipole*.npy"):
        p.unlink()


def _on_nonfinite_typo(root, spec):
    spec["training"]["on_nonfinite"] = "ignore"


def _system_missing(root, spec):
    spec["training"]["data_dict"]["water_ener"]["training_data"]["systems"] = [str(root / "nowhere")]


CASES = {  # name: (edit, tasks, what the one line must contain)
    "energy NaN": (_nan_energy, ("water_ener",), ["set.000/energy.npy", "frame 3 is NaN"]),
    "coordinate inf": (_inf_coord, ("water_ener",), ["set.000/coord.npy", "frame 1 is inf"]),
    "force NaN": (_nan_force, ("water_ener",), ["set.000/force.npy", "frame 2 is NaN"]),
    "box NaN": (_nan_box, ("water_ener",), ["set.000/box.npy", "frame 0 is NaN"]),
    "random bytes as energy.npy": (_random_bytes, ("water_ener",), ["energy.npy", "not a valid .npy array (random bytes?)"]),
    "truncated force.npy": (_truncated, ("water_ener",), ["force.npy", "cannot read the array"]),
    "set with 0 frames": (_empty_set, ("water_ener",), ["set.000/coord.npy", "0 frames"]),
    "box of zero volume": (_zero_box, ("water_ener",), ["set.000/box.npy", "frame 0", "zero volume"]),
    "force of the wrong atom count": (_force_wrong_atoms, ("water_ener",), ["set.000/force.npy", "expected shape"]),
    "energy.npy with a frame less than coord.npy": (_energy_few_frames, ("water_ener",), ["energy.npy", "expected shape"]),
    "box.npy with a frame less than coord.npy": (_box_few_frames, ("water_ener",), ["box.npy", "to match coord.npy"]),
    "missing box.npy": (_missing_box, ("water_ener",), ["box.npy", "missing"]),
    "type index beyond type_map": (_type_beyond_map, ("water_ener",), ["type.raw", "atom type 7"]),
    "sel of the wrong length": (_sel_wrong_length, ("water_ener",), ["sel"]),
    "dipole task without dipole labels": (_dipole_without_labels, ("water_dipole",), ["dipole"]),
    "on_nonfinite typo": (_on_nonfinite_typo, ("water_ener",), ["training.on_nonfinite", "'ignore'"]),
    "system path missing": (_system_missing, ("water_ener",), ["nowhere", "not found"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line(case: str, tiny_data: Path, tmp_path: Path) -> None:
    edit, tasks, expected = CASES[case]
    root = _data(tiny_data, tmp_path)
    spec = _spec(root, tasks)
    edit(root, spec)
    message = _one_error(_train(tmp_path, spec))
    for part in expected:
        assert part in message, message
    assert not list((tmp_path / "run").glob("checkpoints/*.h5")), "nothing is trained on bad input"


def _mlflow_run(tmp_path: Path) -> Any:
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mtbench")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    return client, runs


def _latest(run: Path) -> str:
    return (run / "checkpoints" / "checkpoint").read_text().strip()


@pytest.fixture(scope="module")
def _finished_template(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/, a finished 2-step run/ of ``_spec`` and its mlflow.db: the starting point of the restart tests,
    trained once (a training process is ~25 s on 2 cores) instead of once per test."""
    tmp = tmp_path_factory.mktemp("finished")
    root = _data(tiny_data, tmp)
    proc = _train(tmp, _spec(root), mlflow=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp


@pytest.fixture()
def finished(_finished_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the template (data/, run/, mlflow.db) in ``tmp_path``; returns the data root."""
    shutil.copytree(_finished_template, tmp_path, dirs_exist_ok=True)
    return tmp_path / "data"


def test_bad_frames_dropped_on_request(tiny_data: Path, tmp_path: Path) -> None:
    root = _data(tiny_data, tmp_path)
    _nan_energy(root, None)
    spec = _spec(root)
    spec["training"]["data_dict"]["water_ener"]["training_data"]["drop_bad_frames"] = True
    proc = _train(tmp_path, spec, mlflow=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dropped 1 bad frames" in proc.stderr + proc.stdout
    client, runs = _mlflow_run(tmp_path)
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["data/water_ener/dropped_frames"] == 1.0


def test_all_frames_bad_with_drop_is_one_line(tiny_data: Path, tmp_path: Path) -> None:
    root = _data(tiny_data, tmp_path)
    _edit(root, "energy.npy", lambda a: np.full_like(a, np.nan))
    spec = _spec(root)
    spec["training"]["data_dict"]["water_ener"]["training_data"]["drop_bad_frames"] = True
    message = _one_error(_train(tmp_path, spec))
    assert "sys_000" in message and "0 frames left after dropping 4 bad frames" in message


def _huge_energy(root: Path) -> None:
    for p in (root / "water_tip3p").rglob("energy.npy"):
        np.save(p, np.full_like(np.load(p), 1e200))  # finite data, but its squared error overflows


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(finished: Path, tmp_path: Path) -> None:
    good = finished  # trained 2 steps with MLflow
    latest = _latest(tmp_path / "run")
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    _huge_energy(bad)
    spec = _spec(bad, steps=6)  # data paths may change on restart
    message = _one_error(_train(tmp_path, spec, "--restart", str(tmp_path / "run"), mlflow=True, run_dir="run2"))
    assert message.startswith("task water_ener: non-finite loss or gradient at step 2 (lr ")
    assert "last finite loss" in message and "training.on_nonfinite: skip" in message
    assert _latest(tmp_path / "run") == latest
    assert not list((tmp_path / "run2").glob("checkpoints/*.h5"))
    client, runs = _mlflow_run(tmp_path)
    assert runs[0].info.status == "FAILED"
    assert "non-finite loss" in runs[0].data.tags["mtbench.error"]
    assert runs[1].info.status == "FINISHED"


def test_nonfinite_steps_skipped_on_request(tiny_data: Path, tmp_path: Path) -> None:
    root = _data(tiny_data, tmp_path)
    spec = _spec(root, steps=3)
    for p in (root / "water_tip3p").rglob("energy.npy"):  # +-1e200: the fitted energy bias cannot absorb it
        e = np.load(p)
        np.save(p, np.where(np.arange(e.shape[0]).reshape(-1, *[1] * (e.ndim - 1)) % 2 == 0, 1e200, -1e200)
                * np.ones_like(e))
    spec["training"]["on_nonfinite"] = "skip"
    spec["model"]["data_stat_nbatch"] = 1
    proc = _train(tmp_path, spec, mlflow=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "update skipped" in out
    client, runs = _mlflow_run(tmp_path)
    skipped = out.count("update skipped")  # one warning per skipped step (a frame the fitted bias absorbs trains)
    assert skipped >= 2
    assert runs[0].data.metrics["train/water_ener/skipped_steps"] == float(skipped)


def test_restart_into_another_model_is_refused(finished: Path, tmp_path: Path) -> None:
    root = finished  # trained 2 steps with MLflow
    latest = _latest(tmp_path / "run")
    recorded = (tmp_path / "run" / "input.json").read_text()
    spec = _spec(root, steps=4)
    spec["model"]["fitting_net_dict"]["water_ener"]["neuron"] = [32, 32]
    for run_dir in ("run2", "run"):  # into a new folder, and continuing the run's own folder
        message = _one_error(_train(tmp_path, spec, "--restart", str(tmp_path / "run"), mlflow=True, run_dir=run_dir))
        assert "neuron" in message and "[16, 16]" in message and "[32, 32]" in message, message
    assert _latest(tmp_path / "run") == latest
    assert (tmp_path / "run" / "input.json").read_text() == recorded  # refused before anything is written
    assert not (tmp_path / "run2" / "input.json").exists()
    client, runs = _mlflow_run(tmp_path)
    assert [r.info.status for r in runs] == ["FINISHED"]  # refused before a run is opened; the first run untouched


def test_restart_may_change_the_schedule(finished: Path, tmp_path: Path) -> None:
    root = finished  # trained 2 steps (with MLflow; the restart runs without)
    spec = _spec(root, steps=4)
    spec["learning_rate"]["start_lr"] = 5e-4
    proc = _train(tmp_path, spec, "--restart", str(tmp_path / "run"), run_dir="run2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "restart changes training.numb_steps: 2 -> 4" in proc.stdout + proc.stderr


def test_diverging_learning_rate_is_never_best(tiny_data: Path, tmp_path: Path) -> None:
    root = _data(tiny_data, tmp_path)
    spec = _spec(root, steps=8)
    spec["learning_rate"] = {"type": "exp", "start_lr": 1e3, "stop_lr": 1e2, "decay_steps": 4}
    proc = _train(tmp_path, spec, mlflow=True)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    if proc.returncode == 2:  # the loss overflowed: the non-finite stop, one line
        assert "non-finite loss" in _one_error(proc)
        return
    assert proc.returncode == 0, out[-3000:]
    best = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text()) \
        if (tmp_path / "run" / "checkpoints" / "best.json").exists() else {}
    client, runs = _mlflow_run(tmp_path)
    history = {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id, "val/water_ener/rmse_e")}
    floor = history[0]
    for task, entry in best.items():
        assert history[entry["step"]] <= 1e3 * floor
    if any(v > 1e3 * floor for v in history.values()):
        assert "diverging" in out
        assert any(k.startswith("mtbench.diverged.") for k in runs[0].data.tags)
