"""Gradient diagnostics and best checkpoints from a real (tiny) training run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mtbench.train.run import prepare_spec
from mtbench.train.diagnostics import GradientWindow, gradient_diagnostics
from mtbench.train.trainer import Trainer


def test_cosine_of_aligned_and_opposed_gradients() -> None:
    a, b, c = GradientWindow(), GradientWindow(), GradientWindow()
    a.add(np.array([1.0, 0.0]))
    a.add(np.array([3.0, 0.0]))
    b.add(np.array([2.0, 0.0]))
    c.add(np.array([-1.0, 0.0]))
    out = gradient_diagnostics({"a": a, "b": b, "c": c})
    assert out["grad/a/norm"] == 2.0
    assert out["grad/cos/a__b"] == 1.0 and out["grad/cos/a__c"] == -1.0


def test_training_logs_diagnostics_and_keeps_best_checkpoints(tiny_spec, tmp_path: Path) -> None:
    logged: list[dict] = []

    class Recorder:
        def log_metrics(self, metrics, step):
            logged.append({"step": step, **metrics})

        def set_tags(self, tags):
            logged.append({"tags": dict(tags)})

    spec = prepare_spec(tiny_spec(steps=8), None)
    tr = Trainer(spec, tmp_path, tracker=Recorder(), progress=False)
    summary = tr.train()
    keys = set().union(*[set(d) for d in logged])
    assert "grad/water_ener/norm" in keys and "grad/water_dipole/norm" in keys
    assert "grad/cos/water_dipole__water_ener" in keys
    cos = [d["grad/cos/water_dipole__water_ener"] for d in logged if "grad/cos/water_dipole__water_ener" in d]
    assert all(-1.0 <= c <= 1.0 for c in cos)
    best = json.loads((tmp_path / "checkpoints" / "best.json").read_text())
    assert set(best) == {"water_ener", "water_dipole"} and best["water_ener"]["metric"] == "rmse_f"
    for task, b in best.items():
        assert (tmp_path / "checkpoints" / b["checkpoint"]).is_file()
        assert b == summary["best"][task]
        history = [h[f"val_{b['metric']}"] for h in tr.history[task] if h["step"] > 0]
        assert b["value"] == min(history)
