"""What training leaves in its run folder: checkpoint rotation over a long run, best files, ``training.disp_file``."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mtbench.export.load import load_model
from mtbench.rundir import RunDir
from mtbench.train.checkpoint import load_checkpoint
from mtbench.train.run import prepare_spec, run_training
from mtbench.train.trainer import Trainer


@pytest.mark.parametrize("keep", [1, 2])
def test_rotation_never_deletes_best_files(tiny_spec, tmp_path: Path, keep: int) -> None:
    """60 steps, a checkpoint every 5: rotation runs 12 times; every best file best.json names must still load
    (rotating ``checkpoints/*.h5`` by mtime deleted them), and exactly ``keep`` step checkpoints are left."""
    spec = tiny_spec(steps=60)
    spec["training"].update(save_freq=5, disp_freq=5, max_ckpt_keep=keep)
    tr = Trainer(prepare_spec(spec, None), tmp_path, progress=False)
    summary = tr.train()
    run = RunDir(tmp_path)
    best = run.read_best()
    assert set(best) == {"water_ener", "water_dipole"} and best == summary["best"]
    for task, b in best.items():
        path = run.checkpoints / b["checkpoint"]
        assert path == run.best_checkpoint(task)
        ckpt = load_checkpoint(path)
        assert ckpt["state"]["step"] == b["step"]
        assert set(load_model(path).model.heads) == {"water_ener", "water_dipole"}
    assert [s for s, _ in run.step_checkpoints()] == list(range(60 - 5 * (keep - 1), 61, 5))
    assert run.latest_checkpoint() == run.step_checkpoint(60)
    assert sorted(p.name for p in run.checkpoints.glob("*.h5")) == sorted(
        [f"model.ckpt-{s}.h5" for s in range(60 - 5 * (keep - 1), 61, 5)] + ["best.water_dipole.h5",
                                                                            "best.water_ener.h5"])


def single_task(spec: dict) -> dict:
    """The energy task of a tiny multi-task spec as a single-task (``fitting_net``) spec."""
    out = copy.deepcopy(spec)
    out["model"]["fitting_net"] = out["model"].pop("fitting_net_dict")["water_ener"]
    out["loss"] = out.pop("loss_dict")["water_ener"]
    train = out["training"]
    train.update(train.pop("data_dict")["water_ener"])
    train.pop("fitting_weight")
    return out


def test_disp_file_names_the_lcurve_files(tiny_spec, tmp_path: Path) -> None:
    spec = tiny_spec(steps=2)
    spec["training"].update(disp_file="curve.txt", save_ckpt="net", disp_freq=1)
    run_dir = tmp_path / "multi"
    summary = run_training(spec, run_dir=run_dir, tracking={"backend": "none"}, output_dir=tmp_path,
                           progress=False)
    run = RunDir(run_dir)
    assert sorted(p.name for p in run_dir.glob("curve.*")) == ["curve.water_dipole.txt", "curve.water_ener.txt"]
    assert not list(run_dir.glob("lcurve*"))
    assert list(run.lcurves()) == ["water_dipole", "water_ener"]  # found through input.json's disp_file
    assert run.read_lcurve("water_ener").steps == [0, 1, 2]
    assert run.latest_checkpoint() == run.checkpoints / "net-2.h5"
    assert run.read_summary().steps == summary["steps"] == 2


def test_default_lcurve_names_stay(tiny_spec, tmp_path: Path) -> None:
    """DeePMD's default disp_file ``lcurve.out``: ``lcurve.<task>.out``, single-task too (task ``default``)."""
    tr = Trainer(prepare_spec(single_task(tiny_spec(steps=2)), None), tmp_path, progress=False)
    tr.train()
    assert sorted(p.name for p in tmp_path.glob("lcurve*")) == ["lcurve.default.out"]
    assert RunDir(tmp_path).read_lcurve("default").metrics[0] == "rmse"
