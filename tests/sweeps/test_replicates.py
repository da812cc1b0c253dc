"""Replicate seeds: grouping by setting, mean ± std, the distinguishability verdict, the per-setting CSV, names."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import pytest

from mtbench.sweeps.model import DONE, Job, Sweep

KEY = "training.fitting_weight.water_dipole"
SEED = "training.seed"


def _sweep(ener: dict[str, list[float]], dip: dict[str, list[float]]) -> Sweep:
    jobs = []
    for w in ener:
        for s, (e, d) in enumerate(zip(ener[w], dip[w]), start=1):
            jobs.append(Job(label=str(len(jobs)), status=DONE, swept={KEY: w, SEED: str(s)},
                            tasks=["water_ener", "water_dipole"],
                            full={"water_ener": {"rmse_f": e, "rmse_ea": e / 10}, "water_dipole": {"rmse": d}},
                            final={"water_ener": {"rmse_f": 9.0}, "water_dipole": {"rmse": 9.0}}))
    return Sweep(jobs=jobs, keys=[KEY, SEED], source="test", name="fw")


def test_settings_table_has_mean_and_std_of_the_replicates(tmp_path: Path) -> None:
    from mtbench.sweeps.report import write_report
    from mtbench.sweeps.tables import settings_table

    ener = {"1": [0.10, 0.12, 0.11], "10": [0.20, 0.23, 0.21]}
    dip = {"1": [0.50, 0.40, 0.45], "10": [0.10, 0.12, 0.11]}
    sweep = _sweep(ener, dip)
    assert sweep.replicated and sweep.setting_keys == [KEY]
    assert [s.values for s in sweep.settings()] == [{KEY: "1"}, {KEY: "10"}]
    cols, rows = settings_table(sweep)
    assert len(rows) == 2 and SEED not in cols
    for row, w in zip(rows, ("1", "10")):
        assert row[KEY] == w and row["replicates"] == 3 and row["finished"] == 3 and row["seeds"] == "1 2 3"
        assert row["water_ener/final_rmse_f_mean"] == pytest.approx(statistics.mean(ener[w]), abs=0, rel=1e-15)
        assert row["water_ener/final_rmse_f_std"] == pytest.approx(statistics.stdev(ener[w]), rel=1e-12)
        assert row["water_dipole/final_rmse_std"] == pytest.approx(statistics.stdev(dip[w]), rel=1e-12)
    files = {f.name for f in write_report(sweep, tmp_path)}
    assert {"summary.csv", "summary_jobs.csv", "summary.md", "tradeoff_water_ener__water_dipole.png"} <= files
    with open(tmp_path / "summary.csv") as fh:
        assert [r[KEY] for r in csv.DictReader(fh)] == ["1", "10"]
    with open(tmp_path / "summary_jobs.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 6
    md = (tmp_path / "summary.md").read_text()
    assert "mean ± std" in md and "fitting_weight.water_dipole" in md
    # far apart relative to the seed spread: distinguishable on both tasks
    assert md.count(": distinguishable") == 2 and "not distinguishable" not in md


def test_overlapping_settings_are_not_distinguishable(tmp_path: Path) -> None:
    from mtbench.sweeps.report import summarize
    from mtbench.sweeps.tables import distinguishability_lines

    sweep = _sweep({"1": [0.10, 0.20, 0.15], "10": [0.12, 0.22, 0.16]},
                   {"1": [0.5, 0.6, 0.4], "10": [0.1, 0.11, 0.12]})
    lines = distinguishability_lines(sweep)
    ener = next(line for line in lines if "`water_ener`" in line)
    dip = next(line for line in lines if "`water_dipole`" in line)
    assert "not distinguishable" in ener and "not distinguishable" not in dip
    tags, metrics = summarize(sweep)
    assert tags["sweep.distinguishable.water_ener"] == "false"
    assert tags["sweep.distinguishable.water_dipole"] == "true"
    assert tags["sweep.best_setting.water_dipole"].startswith("fitting_weight.water_dipole=10")
    assert metrics["sweep/best_setting/water_dipole/final_rmse_mean"][0][0] == pytest.approx(0.11)


def test_welch_against_a_known_value() -> None:
    from mtbench.sweeps.stats import spread, t975, welch

    a, b = spread([1.0, 2.0, 3.0]), spread([4.0, 5.0, 6.0])
    assert (a.mean, a.std, a.n) == (2.0, 1.0, 3)
    cmp = welch(a, b)  # equal variances: df = 4, t = 2.776, se = sqrt(2/3)
    assert cmp.half_width == pytest.approx(2.776 * math.sqrt(2 / 3))
    assert cmp.distinguishable
    assert not welch(spread([1.0]), b).distinguishable  # one seed says nothing
    assert t975(1.5) == 12.706 and t975(100) == 1.96
    assert math.isnan(spread([1.0]).std) and spread([]).n == 0


def test_a_sweep_without_seeds_keeps_one_row_per_job(tmp_path: Path) -> None:
    from mtbench.sweeps.report import write_report

    sweep = _sweep({"1": [0.1], "10": [0.2]}, {"1": [0.5], "10": [0.1]})
    for j in sweep.jobs:
        j.swept.pop(SEED)
    sweep.keys = [KEY]
    assert not sweep.replicated and len(sweep.settings()) == 2
    write_report(sweep, tmp_path)
    with open(tmp_path / "summary.csv") as fh:
        assert [r["job"] for r in csv.DictReader(fh)] == ["0", "1"]
    assert "## Settings" not in (tmp_path / "summary.md").read_text()


def test_names_say_what_a_run_varies() -> None:
    from mtbench.sweeps.callback import parent_run_name
    from mtbench.sweeps.plan import display_key, job_note, job_run_name, setting_label, sweep_label

    assert display_key(KEY) == "fitting_weight.water_dipole" and display_key(SEED) == "seed"
    assert display_key("descriptor") == "descriptor"
    overrides = ["debug=fast", f"{KEY}=4", f"{SEED}=2"]
    assert job_run_name(3, overrides, [KEY, SEED]) == "fitting_weight.water_dipole=4, seed=2"
    assert job_run_name(3, overrides, []) == "job3"
    assert "fitting_weight.water_dipole=4" in job_note(3, overrides, [KEY, SEED])
    assert setting_label({KEY: "1"}) == "fitting_weight.water_dipole=1"
    # a sweep's name: sweep.name when set, else what it sweeps, as the live and the rebuilt report title it
    assert sweep_label(None, [KEY, SEED]) == "fitting_weight.water_dipole, seed"
    assert sweep_label("fitting_weight", [KEY]) == "fitting_weight" and sweep_label("", []) == "sweep"
    a, b = parent_run_name("x", 0.0), parent_run_name("x", 3600.0)
    assert a != b and a[:14] != b[:14]  # the time stamp leads: truncated names still differ


def test_replicates_shortcut_adds_the_seed_sweep() -> None:
    from omegaconf import OmegaConf

    from mtbench.sweeps.plan import add_replicates, plan_sweep

    def cfg(task: list[str], replicates: int | None) -> object:
        return OmegaConf.create({
            "sweep": {"name": None, "replicates": replicates}, "training": {"seed": 5},
            "hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                                  "params": None},
                      "overrides": {"task": task, "hydra": []}}})

    c = cfg([f"{KEY}=1,10", "sweep.replicates=3"], 3)
    assert add_replicates(c) == [5, 6, 7]
    plan = plan_sweep(c)
    assert plan.keys == [KEY, SEED] and len(plan.jobs) == 6
    c = cfg([f"{KEY}=1,10", f"{SEED}=1,2"], 3)
    assert add_replicates(c) == []  # a swept seed wins
    assert add_replicates(cfg([f"{KEY}=1,10"], None)) == []
