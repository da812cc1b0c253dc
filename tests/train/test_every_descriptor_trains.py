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
