"""Checkpoint files: save -> load round trip of weights, per-task Adam state and restart state; the pointer file;
what a path may name (file, checkpoint folder, run dir); user errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mtbench.errors import DataError
from mtbench.train.checkpoint import POINTER, load_checkpoint, resolve_checkpoint, save_checkpoint


def _contents(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"model": {"type_map": ["O", "H"], "descriptor": {"@variables": {"w": rng.normal(size=(3, 4))}},
                      "rcut": 3.5},
            "optimizers": {"water_ener": {"iterations": np.asarray(7), "m_0": rng.normal(size=5),
                                          "v_0": rng.uniform(size=5)},
                           "water_dipole": {"iterations": np.asarray(3), "m_0": rng.normal(size=5),
                                            "v_0": rng.uniform(size=5)}},
            "state": {"step": 10, "sampler": [1, 2, 3], "cursors": {"water_ener": [0, 4]}},
            "spec": {"training": {"numb_steps": 20}}}


def test_round_trip(tmp_path: Path) -> None:
    c = _contents(0)
    path = save_checkpoint(tmp_path / "checkpoints" / "model.ckpt-10.h5", **c)
    assert (tmp_path / "checkpoints" / POINTER).read_text() == "model.ckpt-10.h5\n"
    back = load_checkpoint(path)
    assert back["path"] == str(path)
    assert back["state"] == c["state"] and back["spec"] == c["spec"]
    assert back["model"]["type_map"] == ["O", "H"] and back["model"]["rcut"] == 3.5
    np.testing.assert_array_equal(back["model"]["descriptor"]["@variables"]["w"],
                                  c["model"]["descriptor"]["@variables"]["w"])
    for task, opt in c["optimizers"].items():
        for key, value in opt.items():
            np.testing.assert_array_equal(back["optimizers"][task][key], value)
    assert int(back["optimizers"]["water_ener"]["iterations"]) == 7


def test_pointer_names_the_latest_and_best_files_leave_it_alone(tmp_path: Path) -> None:
    ck = tmp_path / "run" / "checkpoints"
    save_checkpoint(ck / "model.ckpt-10.h5", **_contents(0))
    save_checkpoint(ck / "model.ckpt-20.h5", **_contents(1))
    save_checkpoint(ck / "best.water_ener.h5", **_contents(2), pointer=False)
    for where in (ck, tmp_path / "run", ck / "model.ckpt-10.h5"):
        expected = ck / ("model.ckpt-10.h5" if where.is_file() else "model.ckpt-20.h5")
        assert resolve_checkpoint(where) == expected
    assert load_checkpoint(tmp_path / "run")["state"] == _contents(1)["state"]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no checkpoint found here"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(DataError, match="checkpoint not found"):
        resolve_checkpoint(tmp_path / "model.ckpt-1.h5")
    from mtbench.model.serialization import save_model_file

    save_model_file(tmp_path / "frozen.dp", {"model": {"type": "standard", "descriptor": {}, "fitting": {}}})
    with pytest.raises(DataError, match="frozen.dp: not an mtbench checkpoint"):
        load_checkpoint(tmp_path / "frozen.dp")
    save_model_file(tmp_path / "other.h5", {"@class": "Model", "model": {}})
    with pytest.raises(DataError, match="other.h5: not a model file mtbench knows"):
        load_checkpoint(tmp_path / "other.h5")
