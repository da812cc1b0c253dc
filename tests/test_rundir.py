"""The run folder's owner: every file written by its writer and read back by its reader, and what a path is.

No training here (files are written with the real writers and tiny arrays); the training-side checks (rotation
over a long run, ``training.disp_file``) are in tests/train/test_run_folder.py.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from mtbench.errors import DataError
from mtbench.model.serialization import save_model_file
from mtbench.rundir import (
    BACKLOG,
    CHECKPOINT_CLASS,
    MODEL_FILE_CLASS,
    NOT_FOUND,
    SAVEDMODEL_ASSET,
    Kind,
    RunDir,
    Summary,
    best_name,
    lcurve_name,
    locate,
    run_dir_of,
)
from mtbench.train.best import BestTracker
from mtbench.train.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from mtbench.train.lcurve import LcurveWriter, read_lcurve, row_step

# ------------------------------------------------------------------------------------------------ summary.json


def trainer_summary() -> dict:
    """What Trainer.train() + run_training put into summary.json (same keys, same order)."""
    return {"steps": 20, "wall_s": 3.5,
            "final": {"w": {"val": {"rmse": 1.5, "rmse_e": 0.25, "rmse_v": math.nan}, "trn": {"rmse": 2.0}}},
            "counts": {"w": 20}, "fractions": {"w": 1.0}, "requested": {"w": 1.0},
            "best": {"w": {"metric": "rmse_f", "value": 0.5, "step": 10, "checkpoint": "best.w.h5"}},
            "timing": {"steps": [10, 20], "step_s": [0.1, math.inf]}, "run_dir": "/x/run",
            "objective": 1.5, "run_id": "abc", "tracking_uri": "sqlite:///x.db"}


def test_summary_round_trip_keeps_keys_order_and_writes_null_for_nan(tmp_path: Path) -> None:
    data = {**trainer_summary(), "note": {"kept": True}}
    run = RunDir(tmp_path)
    run.write_summary(data)
    raw = json.loads(run.summary_json.read_text())
    assert list(raw) == list(data)  # what readers (and users' scripts) index stays where it was
    assert raw["final"]["w"]["val"]["rmse_v"] is None and raw["timing"]["step_s"] == [0.1, None]
    back = run.read_summary()
    assert back.steps == 20 and back.run_id == "abc" and back.tracking_uri == "sqlite:///x.db"
    assert back.val("w") == {"rmse": 1.5, "rmse_e": 0.25, "rmse_v": None} and back.val("other") is None
    assert back.best["w"]["checkpoint"] == "best.w.h5" and back.extra == {"note": {"kept": True}}
    assert back.to_dict() == raw
    assert not list(tmp_path.glob("*.tmp"))


def test_summary_missing_is_none_and_garbage_is_a_data_error(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.read_summary() is None
    run.summary_json.write_text("{not json")
    with pytest.raises(DataError, match="summary.json: not JSON"):
        run.read_summary()


def test_partial_summary_reads_with_defaults(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.summary_json.write_text(json.dumps({"steps": 3, "final": None}))
    s = run.read_summary()
    assert (s.steps, s.final, s.best, s.run_id) == (3, {}, {}, None)


# ------------------------------------------------------------------------------------------------ lcurve


def test_lcurve_writer_to_reader(tmp_path: Path) -> None:
    path = RunDir(tmp_path).lcurve("water")
    assert path == tmp_path / "lcurve.water.out"
    with LcurveWriter(path, ["rmse", "rmse_f"]) as w:
        w.write(0, {"rmse": 12.5, "rmse_f": 0.875}, {}, 1e-3)
        w.write(10, {"rmse": 2.5}, {"rmse": 3.25, "rmse_f": math.nan}, 5e-4)
    with LcurveWriter(path, ["rmse", "rmse_f"], append=True) as w:  # a restart appends, header once
        w.write(20, {"rmse": 1.25, "rmse_f": 0.5}, {"rmse": 1.5, "rmse_f": 0.625}, 2.5e-4)
    lc = read_lcurve(path)
    assert lc.columns == ["step", "rmse_val", "rmse_trn", "rmse_f_val", "rmse_f_trn", "lr"]
    assert lc.steps == [0, 10, 20] and lc.metrics == ["rmse", "rmse_f"]
    assert lc.val("rmse") == [12.5, 2.5, 1.25] and lc.trn("rmse")[1:] == [3.25, 1.5]
    assert math.isnan(lc.trn("rmse")[0]) and math.isnan(lc.val("rmse_f")[1])
    assert lc.column("lr") == [1e-3, 5e-4, 2.5e-4]
    assert lc.validation(10)[1] == 10 and lc.validation(10)[0]["rmse"] == 2.5
    assert lc.validation()[1] == 20 and lc.validation(99)[1] == 20  # no such step: the last row
    assert path.read_text().count("#") == 1


def test_lcurve_reader_drops_a_torn_row_and_reads_no_header_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "lcurve.w.out"
    with LcurveWriter(path, ["rmse"]) as w:
        w.write(0, {"rmse": 1.0}, {"rmse": 2.0}, 1e-3)
    with path.open("a") as f:
        f.write("      5    5.00e-01")  # crash while writing
    assert read_lcurve(path).steps == [0]
    (tmp_path / "plain").write_text("0 1 2\n")
    assert read_lcurve(tmp_path / "plain").rows == [] and read_lcurve(tmp_path / "plain").validation() is None


def test_deepmd_multitask_lcurve_by_task(tmp_path: Path) -> None:
    text = ("#  step   a_rmse_val a_rmse_trn   a_lr\n"
            "   b_rmse_val b_rmse_trn   b_lr\n"
            "      0      5.0e-01    1.0e+00    1.0e-03\n"
            "      2.0e+01    3.0e+01    1.0e-03\n"
            "     10      4.0e-01    5.0e-01    5.0e-04\n"
            "      4.0e+00    4.5e+00    5.0e-04\n")
    (tmp_path / "lcurve.out").write_text(text)
    parts = read_lcurve(tmp_path / "lcurve.out").by_task(["a", "b"])
    assert set(parts) == {"a", "b"}
    assert parts["b"].steps == [0, 10] and parts["b"].val("rmse") == [20.0, 4.0]
    assert parts["a"].column("lr") == [1e-3, 5e-4]
    assert [row_step(ln) for ln in text.splitlines()] == [None, None, 0, None, 10, None]


@pytest.mark.parametrize("disp_file, name", [("lcurve.out", "lcurve.t.out"), ("curve.txt", "curve.t.txt"),
                                             ("lc", "lc.t"), ("a.b.log", "a.b.t.log"),
                                             ("logs/lc.out", "logs/lc.t.out")])
def test_lcurve_name_puts_the_task_before_the_suffix(disp_file: str, name: str) -> None:
    assert lcurve_name("t", disp_file) == name


def test_lcurves_follow_the_runs_disp_file(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for t in ("water_ener", "water_dipole"):
        LcurveWriter(run.lcurve(t), ["rmse"]).close()  # default: lcurve.<task>.out
    assert list(run.lcurves()) == ["water_dipole", "water_ener"]
    run.input_json.write_text(json.dumps({"training": {"disp_file": "curve.txt"}}))
    assert run.lcurves() == {} and run.lcurve("x") == tmp_path / "curve.x.txt"
    LcurveWriter(run.lcurve("x"), ["rmse"]).close()
    assert run.lcurves() == {"x": tmp_path / "curve.x.txt"}
    assert run.read_lcurve("x").columns == ["step", "rmse_val", "rmse_trn", "lr"]
    assert run.read_lcurve("missing") is None


# ------------------------------------------------------------------------------------------------ checkpoints


def tiny_checkpoint(path: Path, step: int, pointer: bool = True) -> Path:
    return save_checkpoint(path, model={"w": np.arange(3.0)}, optimizers={"t": {"m": np.zeros(2)}},
                           state={"step": step}, spec={"training": {}}, pointer=pointer)


def test_best_json_round_trip(tmp_path: Path) -> None:
    tracker = BestTracker({"a": "rmse_f", "b": "rmse"})
    assert tracker.improves("a", {"rmse_f": 0.5}, 10) and tracker.improves("b", {"rmse": 2.0}, 10)
    assert not tracker.improves("a", {"rmse_f": 0.75}, 20) and tracker.improves("a", {"rmse_f": 0.25}, 30)
    run = RunDir(tmp_path)
    assert run.read_best() == {}
    path = tracker.write(run)
    assert path == tmp_path / "checkpoints" / "best.json"
    assert run.read_best() == {"a": {"metric": "rmse_f", "value": 0.25, "step": 30, "checkpoint": "best.a.h5"},
                               "b": {"metric": "rmse", "value": 2.0, "step": 10, "checkpoint": "best.b.h5"}}
    assert run.best_checkpoint("a") == run.checkpoints / best_name("a") == run.checkpoints / "best.a.h5"


def test_pointer_names_the_latest_and_a_restart_loads_it(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.latest_checkpoint() is None
    for step in (5, 10):
        tiny_checkpoint(run.step_checkpoint(step), step)
    tiny_checkpoint(run.best_checkpoint("a"), 7, pointer=False)
    assert run.pointer.read_text() == "model.ckpt-10.h5\n"
    assert run.latest_checkpoint() == run.checkpoints / "model.ckpt-10.h5"
    for p in (tmp_path, run.checkpoints, run.step_checkpoint(10)):
        assert load_checkpoint(p)["state"]["step"] == 10
    assert load_checkpoint(run.best_checkpoint("a"))["state"]["step"] == 7


@pytest.mark.parametrize("save_ckpt", ["model.ckpt", "my-model"])
@pytest.mark.parametrize("keep", [1, 2, 3])
def test_rotation_keeps_the_newest_step_checkpoints_by_step_and_never_best_files(tmp_path: Path, save_ckpt: str,
                                                                                keep: int) -> None:
    run = RunDir(tmp_path)
    run.checkpoints.mkdir()
    steps = [5, 40, 10, 100, 20]  # 5 < 40 < 100 as numbers, not as text; file times in a different order
    for k, step in enumerate(steps):
        p = run.step_checkpoint(step, save_ckpt)
        p.write_bytes(b"x")
        os.utime(p, (1000 - k, 1000 - k))  # the newest step has the oldest mtime
    others = [run.best_checkpoint("a"), run.best_checkpoint("b"), run.checkpoints / "other-5.h5",
              run.checkpoints / f"{save_ckpt}-5.h5.tmp"]
    for p in others:
        p.write_bytes(b"x")
        os.utime(p, (1, 1))  # the oldest files of all
    removed = run.rotate(keep, save_ckpt)
    left = sorted(steps)[-keep:]
    assert [s for s, _ in run.step_checkpoints(save_ckpt)] == left
    assert sorted(removed) == sorted(run.step_checkpoint(s, save_ckpt) for s in steps if s not in left)
    assert all(p.exists() for p in others)


def test_backlog_path_is_the_run_folders(tmp_path: Path) -> None:
    from mtbench.tracking.backlog import BACKLOG_NAME, Backlog, backlog_path

    assert RunDir(tmp_path).backlog == backlog_path(tmp_path) == tmp_path / BACKLOG == tmp_path / BACKLOG_NAME
    assert Backlog(tmp_path).path == (tmp_path / "tracking_backlog.jsonl").absolute()


def test_hydra_launch_dir_and_artifacts(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.launch_dir() is None and run.artifacts() == []
    run.hydra.mkdir()
    run.hydra_runtime.write_text("hydra:\n  runtime:\n    cwd: /somewhere\n")
    assert run.launch_dir() == Path("/somewhere")
    run.hydra_runtime.write_text("- not: a mapping\n")
    assert run.launch_dir() is None
    LcurveWriter(run.lcurve("t"), ["rmse"]).close()
    run.write_summary(Summary(steps=1))
    BestTracker({}).write(run)
    assert run.artifacts() == [run.lcurve("t"), run.summary_json, run.best_json]


# ------------------------------------------------------------------------------------------------ locate


def model_file(path: Path, doc: dict) -> Path:
    save_model_file(path, doc)
    return path


@pytest.fixture()
def paths(tmp_path: Path) -> dict[str, Path]:
    """One path of every kind."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.input_json.write_text("{}")
    tiny_checkpoint(run.step_checkpoint(3), 3)
    tiny_checkpoint(run.best_checkpoint("a"), 2, pointer=False)
    bare = RunDir(tmp_path / "bare")  # a Trainer run without run_training: checkpoints/ only
    tiny_checkpoint(bare.step_checkpoint(4), 4)
    loose = tmp_path / "loose"
    loose.mkdir()
    out = {"run": run.path, "checkpoints": run.checkpoints, "step_ckpt": run.step_checkpoint(3),
           "best_ckpt": run.best_checkpoint("a"), "bare": bare.path,
           "loose_ckpt": tiny_checkpoint(loose / "x.h5", 1, pointer=False)}
    for name, united in (("savedmodel", False), ("united", True)):
        folder = tmp_path / name
        model_file(folder / "assets" / SAVEDMODEL_ASSET, {"@class": MODEL_FILE_CLASS, "model": {},
                                                          "meta": json.dumps({"united": united})})
        (folder / "saved_model.pb").write_bytes(b"")
        out[name] = folder
    heads = tmp_path / "frozen"
    heads.mkdir()
    (heads / "manifest.json").write_text(json.dumps({"format": "savedmodel", "heads": {"a": {"path": "a"}}}))
    out["frozen_heads"] = heads
    out["mtbench_file"] = model_file(tmp_path / "m.h5", {"@class": MODEL_FILE_CLASS, "model": {}})
    out["dp"] = model_file(tmp_path / "w.dp", {"model": {"type": "standard", "descriptor": {"type": "se_e2_a"}}})
    return out


def test_locate_knows_every_kind(paths: dict[str, Path]) -> None:
    run = RunDir(paths["run"])
    want = {"run": (Kind.RUN, run, paths["step_ckpt"]), "checkpoints": (Kind.CHECKPOINT_DIR, run, paths["step_ckpt"]),
            "step_ckpt": (Kind.CHECKPOINT, run, paths["step_ckpt"]),
            "best_ckpt": (Kind.CHECKPOINT, run, paths["best_ckpt"]),
            "bare": (Kind.RUN, RunDir(paths["bare"]), RunDir(paths["bare"]).step_checkpoint(4)),
            "loose_ckpt": (Kind.CHECKPOINT, None, paths["loose_ckpt"]),
            "savedmodel": (Kind.SAVEDMODEL, None, None), "united": (Kind.UNITED, None, None),
            "frozen_heads": (Kind.FROZEN_HEADS, None, None), "mtbench_file": (Kind.MODEL_FILE, None, None),
            "dp": (Kind.DP, None, None)}
    assert set(want) == set(paths)
    for name, (kind, owner, ckpt) in want.items():
        found = locate(paths[name])
        assert (found.kind, found.run, found.checkpoint) == (kind, owner, ckpt), name
        assert run_dir_of(paths[name]) == owner, name
        if ckpt is not None:
            assert resolve_checkpoint(paths[name]) == ckpt
        else:
            with pytest.raises(DataError):
                resolve_checkpoint(paths[name])


def test_the_test_and_freeze_commands_use_the_same_rule(paths: dict[str, Path]) -> None:
    from mtbench.cli.test import run_dir_of as test_run_dir_of
    from mtbench.export.freeze import run_dir_of as freeze_run_dir_of
    from mtbench.export.load import LoadedModel

    for name in ("run", "checkpoints", "step_ckpt", "best_ckpt"):
        ckpt = locate(paths[name]).checkpoint
        assert freeze_run_dir_of(LoadedModel(None, None, source="checkpoint", path=str(ckpt))) == \
            paths["run"].resolve(), name
        assert Path(test_run_dir_of(paths[name])).resolve() == paths["run"].resolve(), name
    # a bare Trainer folder has no input.json to take test data from; frozen models have no run
    assert test_run_dir_of(paths["bare"]) is None and test_run_dir_of(paths["dp"]) is None
    assert freeze_run_dir_of(LoadedModel(None, None, source="savedmodel", path=str(paths["savedmodel"]))) is None


def test_locate_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"missing: {NOT_FOUND.replace('(', '[(]').replace(')', '[)]')}"):
        locate(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no checkpoint found here"):
        locate(tmp_path / "empty")
    run = tmp_path / "started"  # input.json written, no checkpoint yet
    run.mkdir()
    (run / "input.json").write_text("{}")
    assert locate(run).kind is Kind.RUN
    with pytest.raises(DataError, match="started: no checkpoint found here"):
        locate(run).require_checkpoint()
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a .dp/HDF5 model file"):
        locate(tmp_path / "notes.txt")
    model_file(tmp_path / "other.h5", {"@class": "Something", "x": 1})
    with pytest.raises(DataError, match="not a model file mtbench knows"):
        locate(tmp_path / "other.h5")
    data = tmp_path / "data"  # built-in data folders have a manifest.json too: not a frozen model
    data.mkdir()
    (data / "manifest.json").write_text(json.dumps({"name": "water", "systems": []}))
    with pytest.raises(DataError, match="no checkpoint found here"):
        locate(data)


def test_checkpoint_class_is_what_the_writer_writes(tmp_path: Path) -> None:
    from mtbench.model.serialization import read_header

    assert read_header(tiny_checkpoint(tmp_path / "c.h5", 1))["@class"] == CHECKPOINT_CLASS
