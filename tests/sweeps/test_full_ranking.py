"""Jobs are ranked on the full end-of-run validation when they have one, not on the last display."""

from __future__ import annotations

from mtbench.sweeps.model import Job, Sweep
from mtbench.sweeps.tables import markdown, table


def _sweep(with_full: bool) -> Sweep:
    full_a = {"w": {"rmse_f": 3.0, "rmse_ea": 1.0}} if with_full else {}
    full_b = {"w": {"rmse_f": 2.5}} if with_full else {}
    a = Job("0", "FINISHED", swept={"k": "1"}, tasks=["w"], final={"w": {"rmse_f": 1.0}}, full=full_a)
    b = Job("1", "FINISHED", swept={"k": "4"}, tasks=["w"], final={"w": {"rmse_f": 2.0}}, full=full_b)
    return Sweep([a, b], ["k"], "x")


def test_full_validation_ranks_jobs() -> None:
    s = _sweep(True)
    assert s.best_job("w").label == "1"  # last display says job 0; every-frame validation says job 1
    assert s.ranking("w") == ("full", "rmse_f")
    cols, rows = table(s)
    assert "w/final_rmse_f" in cols and rows[1]["w/final_rmse_f"] == 2.5
    assert "w rmse_f all frames" in markdown(s) and "**2.5**" in markdown(s)


def test_old_runs_keep_last_display_ranking() -> None:
    s = _sweep(False)
    assert s.best_job("w").label == "0"
    assert s.ranking("w") == ("val", "rmse_f")
    assert "w rmse_f all frames" not in markdown(s) and "**1**" in markdown(s)
