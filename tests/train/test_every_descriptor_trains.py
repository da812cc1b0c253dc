"""Every descriptor config in conf/descriptor/ trains in multi-task mode (with a dipole head where it can)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from mtbench.train.run import prepare_spec
from mtbench.spec.compose import conf_dir
from mtbench.spec.validate import descriptor_has_rot_mat
from mtbench.train.trainer import Trainer

CONFIGS = sorted((conf_dir() / "descriptor").glob("*.yaml"))


def shrink(desc: dict) -> dict:
    """Keep the user's options, make the networks tiny so the test is about plumbing, not speed."""
    if desc["type"] == "hybrid":
        return {**desc, "list": [shrink(d) for d in desc["list"]]}
    out = dict(desc, neuron=[4, 8])
    if "axis_neuron" in out:
        out["axis_neuron"] = 4
    if "attn" in out:
        out["attn"] = 8
        out["attn_layer"] = 1
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_descriptor_trains(path: Path, tiny_spec, tmp_path: Path) -> None:
    desc = shrink(yaml.safe_load(path.read_text()))
    with_rot = descriptor_has_rot_mat(desc)
    spec = tiny_spec(tasks=("water_ener", "water_dipole") if with_rot else ("water_ener",), steps=4)
    spec["model"]["descriptor"] = desc
    tr = Trainer(prepare_spec(spec, None), tmp_path, progress=False)
    before = [v.numpy().copy() for v in tr.model.descriptor.trainable_variables]
    summary = tr.train()
    assert summary["steps"] == 4
    after = [v.numpy() for v in tr.model.descriptor.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    for task, res in summary["final"].items():
        assert np.isfinite(res["val"]["rmse"]), task


def test_dpa1_alias_trains(tiny_spec, tmp_path: Path) -> None:
    """``type: dpa1`` (DeePMD-kit's alias of se_atten) passes the spec and trains an se_atten model."""
    spec = tiny_spec(tasks=("water_ener",), steps=3)
    spec["model"]["descriptor"] = {"type": "dpa1", "sel": 30, "rcut": 3.5, "rcut_smth": 0.5, "neuron": [4, 8],
                                   "axis_neuron": 4, "attn": 8, "attn_layer": 1, "seed": 1}
    tr = Trainer(prepare_spec(spec, None), tmp_path, progress=False)
    assert tr.spec["model"]["descriptor"]["type"] == "se_atten"
    assert type(tr.model.descriptor).type_name == "se_atten"
    before = [v.numpy().copy() for v in tr.model.descriptor.trainable_variables]
    summary = tr.train()
    assert summary["steps"] == 3
    assert any(not np.array_equal(v.numpy(), b) for v, b in zip(tr.model.descriptor.trainable_variables, before))
    assert np.isfinite(summary["final"]["water_ener"]["val"]["rmse"])
