#!/usr/bin/env python
"""Quick checks of the benchmark's parsing and data helpers (seconds, no training, no TensorFlow).

    python benchmarks/selftest.py        # or: python -m pytest benchmarks/selftest.py

Kept out of the project's test suite on purpose (benchmarks are not tests); run it after changing benchlib/.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.data import fill_input, replicate_system
from benchlib.monitor import process_cpu_s, run_monitored
from benchlib.report import stats, summarize
from benchlib.tools import MtbenchTool, Tool, lcurve_step, parse_dp_log, parse_mtbench_timing, read_lcurve

# DeePMD-kit 2.2.11 multi-task: header and every row span one physical line per task
DP2_MULTI_LCURVE = """\
#  step   water_dipole_rmse_val water_dipole_rmse_trn   water_dipole_lr
   water_ener_rmse_val water_ener_rmse_trn   water_ener_rmse_e_val water_ener_rmse_e_trn   water_ener_rmse_f_val water_ener_rmse_f_trn   water_ener_lr
# If there is no available reference data, rmse_*_{val,trn} will print nan
      0      5.67e-01    1.10e+00    1.0e-03
      2.65e+01    3.09e+01      6.65e-01    6.74e-01      8.36e-01    9.77e-01    1.0e-03
     10      5.43e-01    5.30e-01    5.9e-06
      4.90e+00    4.92e+00      3.21e-01    3.20e-01      7.88e-01    8.16e-01    5.9e-06
"""

SINGLE_LCURVE = """\
#  step    rmse_val    rmse_trn  rmse_e_val  rmse_e_trn  rmse_f_val  rmse_f_trn       lr
      0    2.63e+01         nan    3.12e-01         nan    8.30e-01         nan  1.0e-03
     10    2.34e+00    1.07e+01    6.76e-02    1.12e-01    8.18e-01    8.08e-01  5.9e-06
"""

DP2_LOG = """\
DEEPMD INFO    batch      10 training time 8.98 s, testing time 1.63 s, total wall time 13.22 s
DEEPMD INFO    batch      20 training time 7.23 s, testing time 1.43 s, total wall time 8.67 s
"""

DP3_LOG = """\
[2026-11-27 08:00:00,000] DEEPMD INFO    Batch       0: total wall time = 1.00 s
[2026-11-27 08:00:10,000] DEEPMD INFO    Batch      10: total wall time = 9.50 s, eta = 0:00:09 at 2026-11-27 08:00
[2026-11-27 08:00:20,000] DEEPMD INFO    Batch      20: total wall time = 9.00 s
"""


def _write(text: str) -> Path:
    f = Path(tempfile.mkdtemp()) / "lcurve.out"
    f.write_text(text)
    return f


def test_multitask_lcurve_rows_span_lines() -> None:
    out = read_lcurve(_write(DP2_MULTI_LCURVE), ("water_dipole", "water_ener"))
    assert set(out) == {"water_dipole", "water_ener"}
    assert [r["step"] for r in out["water_ener"]] == [0, 10]
    assert out["water_ener"][-1]["rmse_f_val"] == 7.88e-01
    assert out["water_dipole"][-1]["rmse_val"] == 5.43e-01
    # only lines starting with the integer step start a row (continuations like '4.90e+00' do not)
    steps = [lcurve_step(ln) for ln in DP2_MULTI_LCURVE.splitlines()]
    assert [s for s in steps if s is not None] == [0, 10]


def test_single_lcurve() -> None:
    out = read_lcurve(_write(SINGLE_LCURVE))
    assert list(out) == ["default"]
    assert out["default"][-1]["rmse_e_val"] == 6.76e-02
    assert np.isnan(out["default"][0]["rmse_trn"])


def test_dp_logs() -> None:
    b2 = parse_dp_log(DP2_LOG, 10)
    assert [(b.step, b.steps, b.train_s, b.wall_s) for b in b2] == [(10, 10, 8.98, 13.22), (20, 10, 7.23, 8.67)]
    b3 = parse_dp_log(DP3_LOG, 10)
    assert [(b.step, b.steps, b.train_s, b.wall_s) for b in b3] == [(10, 10, None, 9.5), (20, 10, None, 9.0)]


def test_mtbench_timing() -> None:
    blocks = parse_mtbench_timing({"timing": {"steps": [0, 10, 20], "step_s": [None, 0.5, 0.25]}})
    assert [(b.step, b.steps, b.train_s) for b in blocks] == [(10, 10, 5.0), (20, 10, 2.5)]
    assert parse_mtbench_timing({"steps": 20}) == []


def test_fill_input() -> None:
    template = {"_comment": "x", "training": {"data_dict": {"a": {
        "training_data": {"systems": "@T", "batch_size": 1},
        "validation_data": {"systems": "@V", "batch_size": 1, "numb_btch": 3}}}}}
    spec = fill_input(template, {"T": ["/t"], "V": ["/v"]}, numb_steps=50, disp_freq=10, batch_size=4,
                      val_batches=5)
    block = spec["training"]["data_dict"]["a"]
    assert block["training_data"] == {"systems": ["/t"], "batch_size": 4}
    assert block["validation_data"]["numb_btch"] == 5
    assert spec["training"]["save_freq"] == 50 and "_comment" not in spec
    assert template["training"]["data_dict"]["a"]["training_data"]["systems"] == "@T"  # template untouched


def test_mtbench_input_caps_final_evaluation() -> None:
    single = {"training": {"validation_data": {"systems": ["v"]}}}
    multi = {"training": {"data_dict": {"a": {"validation_data": {"systems": ["v"]}}, "b": {"training_data": {}}}}}
    out = MtbenchTool().input_for(single)
    assert out["training"]["validation_data"]["final_nframes"] == MtbenchTool.FINAL_NFRAMES
    assert "final_nframes" not in single["training"]["validation_data"]  # the shared input is not changed
    out = MtbenchTool().input_for(multi)["training"]["data_dict"]
    assert out["a"]["validation_data"]["final_nframes"] == MtbenchTool.FINAL_NFRAMES and "validation_data" not in out["b"]
    assert Tool().input_for(single) is single  # DeePMD-kit gets the input as it is


def test_replicate_system() -> None:
    rng = np.random.default_rng(0)
    src = Path(tempfile.mkdtemp()) / "sys"
    (src / "set.000").mkdir(parents=True)
    nf, n = 3, 4
    box = np.tile(np.diag([3.0, 4.0, 5.0]).reshape(1, 9), (nf, 1))
    np.save(src / "set.000" / "box.npy", box)
    np.save(src / "set.000" / "coord.npy", rng.uniform(0, 3, (nf, n * 3)))
    np.save(src / "set.000" / "energy.npy", rng.normal(size=nf))
    np.save(src / "set.000" / "force.npy", rng.normal(size=(nf, n * 3)))
    (src / "type.raw").write_text("0\n1\n1\n0\n")
    (src / "type_map.raw").write_text("O\nH\n")
    dst = replicate_system(src, src.parent / "big", (2, 2, 2), max_frames=2)
    c = np.load(dst / "set.000" / "coord.npy").reshape(2, 8 * n, 3)
    assert c.shape == (2, 32, 3)
    np.testing.assert_allclose(np.load(dst / "set.000" / "box.npy")[0].reshape(3, 3), np.diag([6.0, 8.0, 10.0]))
    np.testing.assert_allclose(np.load(dst / "set.000" / "energy.npy"),
                               8 * np.load(src / "set.000" / "energy.npy")[:2])
    # copy (1,1,1) is the original shifted by a+b+c
    np.testing.assert_allclose(c[:, 7 * n:] - c[:, :n], np.broadcast_to([3.0, 4.0, 5.0], (2, n, 3)))
    assert (dst / "type.raw").read_text().split() == ["0", "1", "1", "0"] * 8


FAKE_TRAINER = """
import sys, time
with open("lcurve.out", "w") as f:
    f.write("#  step rmse_val lr\\n")
    for step in range(0, 1000, 10):
        f.write(f"{step:7d} 1.0e+00 1.0e-03\\n")
        f.flush()
        t = time.process_time() + 0.05
        while time.process_time() < t:  # burn CPU so the CPU time per block is > 0
            pass
"""


def test_monitor_stamps_and_deadline() -> None:
    run_dir = Path(tempfile.mkdtemp())
    rec = run_monitored([sys.executable, "-c", FAKE_TRAINER], cwd=run_dir, env={"PATH": "/usr/bin:/bin"},
                        log_path=run_dir / "log.txt", watch=lambda: run_dir / "lcurve.out", deadline_s=1.0,
                        poll_s=0.01)
    assert rec.killed_at_deadline and rec.returncode != 0
    steps = [lcurve_step(st.text) for st in rec.stamps]
    assert steps[:3] == [0, 10, 20] and len(steps) < 100
    assert all(b.t >= a.t for a, b in zip(rec.stamps, rec.stamps[1:]))
    cpu = [st.cpu_s for st in rec.stamps if st.cpu_s is not None]
    assert cpu and cpu[-1] > cpu[0]
    assert rec.maxrss_mb > 1.0 and rec.peak_rss_mb == rec.maxrss_mb
    assert process_cpu_s(2**22 + 12345) is None  # no such process


def test_summary_ratio() -> None:
    runs = [{"workload": "w", "tool": "ref", "returncode": 0, "s_per_step": [1.0, 1.0, 1.0]},
            {"workload": "w", "tool": "new", "returncode": 0, "s_per_step": [2.0, 2.0, 3.0]},
            {"workload": "w", "tool": "bad", "returncode": 1, "s_per_step": [9.0]}]
    rows = {r["tool"]: r for r in summarize(runs, ("workload", "tool"), "ref")}
    assert rows["new"]["ratio_to_reference"] == 2.0
    assert rows["bad"]["failed"] == 1 and rows["bad"]["s_per_step"]["n"] == 0
    assert stats([1.0, 2.0, 3.0, 4.0])["iqr"] == 1.5


def test_dp_head_steps_follow_its_loop() -> None:
    """DeePMD-kit 2.2.11 draws before step 0 and once per step; steps 0 and 1 run the first draw's head."""
    from benchlib.dp_head_steps import executed

    assert executed([1, 0, 0, 1]) == [1, 1, 0]  # 3 steps from 4 draws
    assert executed([0, 1]) == [0] and executed([]) == []


def test_at_reference_mix() -> None:
    from benchlib.report import at_reference_mix

    runs = [{"workload": "m", "tool": "ref", "returncode": 0, "head_steps": {"e": 3, "d": 1},
             "own_train_s_per_step": [1.0, 1.0]},
            {"workload": "m", "tool": "new", "returncode": 0, "head_steps": {"e": 1, "d": 3},
             "head_step_s": {"e": 0.8, "d": 0.4}}]
    (row,) = at_reference_mix(runs, "ref")
    assert abs(row["s_per_step_at_reference_mix"] - (3 * 0.8 + 0.4) / 4) < 1e-12 and abs(row["ratio"] - 0.7) < 1e-12


def main() -> int:
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    failed = 0
    for t in tests:
        try:
            t()
        except Exception as exc:  # noqa: BLE001 - report every failure, not just the first
            failed += 1
            print(f"FAIL {t.__name__}: {type(exc).__name__}: {exc}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
