"""End-of-run evaluation: every task on its whole validation data, equal to ``python -m mtbench.test``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import tiny_spec_dict


@pytest.fixture(scope="module")
def short_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mtbench.train.run import run_training

    spec = tiny_spec_dict(tiny_data, steps=4)
    spec["training"].update(disp_freq=2, save_freq=2)
    run_dir = tmp_path_factory.mktemp("final_eval") / "run"
    run_training(spec, run_dir=run_dir, tracking={"backend": "none"}, output_dir=run_dir.parent, progress=False)
    return run_dir


def test_summary_has_full_evaluation_equal_to_mtbench_test(short_run: Path, tmp_path: Path) -> None:
    from mtbench.cli.test import main
    from mtbench.rundir import RunDir

    summary = RunDir(short_run).read_summary()
    assert summary is not None
    evaluation = summary.extra["final_eval"]
    assert set(evaluation["final"]) == {"water_ener", "water_dipole"}
    for task in ("water_ener", "water_dipole"):
        ckpt = RunDir(short_run).latest_checkpoint()
        report = main(["-m", str(ckpt), "--head", task, "--json", str(tmp_path / f"{task}.json"), "--no-plots"])
        expected = {k: v for k, v in report["heads"][task]["metrics"].items() if v is not None and math.isfinite(v)}
        got = evaluation["final"][task]["metrics"]
        assert got == expected  # exact: same code, float64, every frame
        assert evaluation["final"][task]["nframes"] == report["heads"][task]["nframes"]
    assert {"rmse_f", "rmse_ea"} <= set(evaluation["final"]["water_ener"]["metrics"])
    assert "rmse" in evaluation["final"]["water_dipole"]["metrics"]
    best = RunDir(short_run).read_best()
    assert set(evaluation["final_best"]) == set(best)
    for task in best:
        report = main(["-m", str(RunDir(short_run).best_checkpoint(task)), "--head", task, "--no-plots"])
        expected = {k: v for k, v in report["heads"][task]["metrics"].items() if v is not None and math.isfinite(v)}
        assert evaluation["final_best"][task]["metrics"] == expected


def test_same_checkpoint_gives_identical_evaluation(short_run: Path) -> None:
    from mtbench.rundir import RunDir
    from mtbench.spec.io import load_spec
    from mtbench.train.final_eval import final_evaluation

    spec, base = load_spec(short_run / "input.json")
    first = final_evaluation(short_run, spec, [base, short_run])
    second = final_evaluation(short_run, spec, [base, short_run])
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["final"] == RunDir(short_run).read_summary().extra["final_eval"]["final"]


def test_metric_names_and_objective() -> None:
    from mtbench.tracking import names
    from mtbench.train.final_eval import metrics_to_log
    from mtbench.train.run import objective

    evaluation = {"final": {"a": {"kind": "ener", "metrics": {"rmse_f": 2.0, "rmse_ea": 9.0}},
                            "b": {"kind": "dipole", "metrics": {"rmse": 4.0}}},
                  "final_best": {"a": {"kind": "ener", "metrics": {"rmse_f": 1.5}}}}
    logged = metrics_to_log(evaluation)
    assert logged == {"final/a/rmse_f": 2.0, "final/a/rmse_ea": 9.0, "final/b/rmse": 4.0,
                      "final_best/a/rmse_f": 1.5}
    assert names.parse_metric_name("final_best/a/rmse_f") == ("final_best", "a", "rmse_f")
    # the objective ranks on the full evaluation, not on the last display's random batches
    summary = {"final_eval": evaluation, "final": {"a": {"val": {"rmse": 100.0}}, "b": {"val": {"rmse": 100.0}}}}
    assert objective(summary, {"a": 3.0, "b": 1.0}) == pytest.approx((3 * 2.0 + 4.0) / 4)
    assert objective({"final": {"a": {"val": {"rmse": 5.0}}}}, {}) == 5.0


def test_final_ranking_metric() -> None:
    from mtbench.train.best import final_ranking_metric

    assert final_ranking_metric({"rmse_e": 1.0, "rmse_ea": 0.1, "rmse_f": 0.5}) == "rmse_f"
    assert final_ranking_metric({"rmse_e": 1.0, "rmse_ea": 0.1, "rmse_f": float("nan")}) == "rmse_ea"
    assert final_ranking_metric({"rmse_atomic": 0.2, "rmse": 0.3, "mae": 0.1}) == "rmse"
    assert final_ranking_metric({"rmse_atomic": 0.2, "mae": 0.1}) == "rmse_atomic"
    assert final_ranking_metric({"mae": 0.1}) is None
