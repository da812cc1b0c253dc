#!/usr/bin/env python
"""Benchmark mtbench against DeePMD-kit on the same input.json: speed, memory, start-up, accuracy.

    python benchmarks/run.py --quick                      # ~2 min: single-task energy, 1 repetition
    python benchmarks/run.py -o benchmarks/results/x.json # ~10 min: both workloads, 2 alternating repetitions
    python benchmarks/run.py --time-budget 300            # time to accuracy: same wall-clock budget per tool
    python benchmarks/run.py --scaling                    # mtbench s/step vs atoms per frame and batch size

DeePMD-kit 2.2.11 (the reference: the last release with TensorFlow multi-task training) is installed into its own
virtual environment on first use. See benchmarks/README.md for how to read the output. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.data import BenchData, fill_input, replicate_system, resolve_data
from benchlib.envs import default_venv_root
from benchlib.monitor import run_monitored
from benchlib.report import at_reference_mix, print_tables, stats, summarize, write_json
from benchlib.tools import REFERENCE_TOOL, REPO_ROOT, Tool, lcurve_step, make_tools

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Workload:
    """One input template and where its energy (and dipole) metrics live in the learning curves."""

    name: str
    template: Path
    energy_task: str
    dipole_task: str | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t for t in (self.dipole_task, self.energy_task) if t and t != "default")

    def load(self) -> dict[str, Any]:
        return json.loads(self.template.read_text())


WORKLOADS = {
    "single": Workload("single", HERE / "inputs" / "single_ener.json", energy_task="default"),
    "multi": Workload("multi", HERE / "inputs" / "multi_ener_dipole.json", energy_task="water_ener",
                      dipole_task="water_dipole"),
    # DeePMD-kit v2.2.11's examples/water/se_atten/input.json (DPA-1: sel 120, attn 128, 2 layers, attn_dotr)
    "se_atten": Workload("se_atten", HERE / "inputs" / "se_atten.json", energy_task="default"),
    "se_atten_v2": Workload("se_atten_v2", HERE / "inputs" / "se_atten_v2.json", energy_task="default"),
}

# (steps, disp_freq, reps) per mode; --quick values second
DEFAULTS = {
    "timing": ((160, 20, 2), (60, 10, 1)),
    "budget": ((10**6, 50, 1), (10**6, 50, 1)),
    "scaling": ((40, 10, 1), (20, 10, 1)),
}


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------------------------
# One run


def run_one(tool: Tool, workload: Workload, spec: dict[str, Any], run_dir: Path, *, threads: int,
            deadline_s: float | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Train ``spec`` with ``tool`` in ``run_dir``; returns the raw record (timings, RSS, learning curves)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = tool.input_for(spec)
    (run_dir / "input.json").write_text(json.dumps(spec, indent=1))
    disp_freq = int(spec["training"]["disp_freq"])
    load_before = os.getloadavg()[0]
    rec = run_monitored(tool.command("input.json"), cwd=run_dir, env=tool.env(threads), log_path=run_dir / "log.txt",
                        watch=lambda: tool.lcurve_path(run_dir, workload.energy_task), deadline_s=deadline_s,
                        timeout_s=timeout_s)
    log_text = Path(rec.log_path).read_text(errors="replace")

    # learning-curve timestamps -> wall time per block (same method for every tool)
    stamps = [(step, st) for st in rec.stamps if (step := lcurve_step(st.text)) is not None]
    points = [(step, st.t) for step, st in stamps]
    blocks = []
    for (s0, a), (s1, b) in itertools.pairwise(stamps):
        if s1 > s0:
            cpu = (b.cpu_s - a.cpu_s) if (a.cpu_s is not None and b.cpu_s is not None) else None
            blocks.append({"step": s1, "steps": s1 - s0, "lcurve_wall_s": b.t - a.t, "cpu_s": cpu})
    own = {b.step: b for b in tool.own_timing(run_dir, log_text, disp_freq)}
    for b in blocks:
        ob = own.get(b["step"])
        b["own_train_s"] = ob.train_s if ob else None
        b["own_wall_s"] = ob.wall_s if ob else None
    timed = [b for b in blocks if b["step"] > disp_freq]  # the first block carries graph building / tracing

    def per_step(key: str) -> list[float]:
        return [b[key] / b["steps"] for b in timed if b.get(key) is not None]

    lcurves = tool.lcurves(run_dir, workload.tasks)
    final, last3 = final_metrics(lcurves, workload)
    ok = rec.returncode == 0 or rec.killed_at_deadline
    record = {
        "tool": tool.name,
        "workload": workload.name,
        "returncode": rec.returncode,
        "killed_at_deadline": rec.killed_at_deadline,
        "wall_s": rec.wall_s,
        "startup_s": points[0][1] if points and points[0][0] == 0 else None,
        "first_block_s": blocks[0]["lcurve_wall_s"] if blocks else None,
        # saving and (mtbench) the capped end-of-run evaluation: not in s/step, reported apart
        "after_last_line_s": rec.wall_s - points[-1][1] if points else None,
        "peak_rss_mb": rec.peak_rss_mb,
        "maxrss_mb": rec.maxrss_mb,
        "tree_rss_mb": rec.tree_rss_mb,
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": os.getloadavg()[0],
        "numb_steps": spec["training"]["numb_steps"],
        "disp_freq": disp_freq,
        "steps_done": points[-1][0] if points else 0,
        "s_per_step": per_step("lcurve_wall_s"),
        "cpu_s_per_step": per_step("cpu_s"),
        "own_train_s_per_step": per_step("own_train_s"),
        "own_wall_s_per_step": per_step("own_wall_s"),
        "blocks": blocks,
        "head_steps": tool.head_steps(run_dir),  # the mix of a multi-task run: compare only like mixes
        "head_step_s": tool.head_step_s(run_dir),
        "final": final,
        "final_last3_mean": last3,
        "lcurves": lcurves,
        "run_dir": str(run_dir),
        "log": rec.log_path,
    }
    if not ok:
        record["error_tail"] = log_text[-3000:]
    return record


def final_metrics(lcurves: dict[str, list[dict[str, float]]], workload: Workload) -> tuple[dict, dict]:
    """Last validation values (and the mean of the last three lines) of the energy and dipole tasks."""
    def pick(task: str | None, metric: str) -> tuple[float | None, float | None]:
        rows = lcurves.get(task or "", [])
        if not rows and task == "default" and len(lcurves) == 1:
            rows = next(iter(lcurves.values()))
        vals = [r.get(metric) for r in rows if r.get(metric) is not None]
        if not vals:
            return None, None
        tail = [v for v in vals[-3:] if math.isfinite(v)]
        return vals[-1], (sum(tail) / len(tail) if tail else None)

    final, last3 = {}, {}
    for key, task, metric in (("rmse_e_val", workload.energy_task, "rmse_e_val"),
                              ("rmse_f_val", workload.energy_task, "rmse_f_val"),
                              ("dipole_rmse_val", workload.dipole_task, "rmse_val")):
        if task is None:
            continue
        final[key], last3[key] = pick(task, metric)
    return final, last3


def describe_run(label: str, r: dict[str, Any]) -> str:
    s = stats(r["s_per_step"])
    own = stats(r["own_train_s_per_step"])
    status = "ok" if r["returncode"] == 0 else ("stopped at budget" if r["killed_at_deadline"] else
                                                  f"FAILED rc={r['returncode']} (log: {r['log']})")
    fmt = lambda x, f: "-" if x is None else format(x, f)
    return (f"[bench] {label} {r['tool']:<14s} {status}: {r['steps_done']} steps, "
            f"{fmt(s['median'], '.4f')} s/step (IQR {fmt(s['iqr'], '.4f')}; own {fmt(own['median'], '.4f')}; "
            f"CPU {fmt(stats(r['cpu_s_per_step'])['median'], '.3f')} s/step), "
            f"start-up {fmt(r['startup_s'], '.1f')} s, end {fmt(r.get('after_last_line_s'), '.1f')} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
            f"val rmse_e {fmt(r['final'].get('rmse_e_val'), '.3e')}, rmse_f {fmt(r['final'].get('rmse_f_val'), '.3e')}"
            + (f", steps per head {r['head_steps']}" if len(r.get("head_steps") or {}) > 1 else ""))


# --------------------------------------------------------------------------------------------------------------
# Modes


def timeout_for(steps: int, natoms: int, batch: int) -> float:
    """Generous per-run limit so a hung tool cannot stall the whole benchmark."""
    return 300.0 + steps * 2.0 * max(1.0, natoms * batch / 192.0)


def mode_runs(mode: str, args: argparse.Namespace, tools: list[Tool], workloads: list[Workload], data: BenchData,
              work: Path) -> list[dict[str, Any]]:
    """Timing or time-budget runs: repetitions x workloads x tools, tools alternating (A B A B ...)."""
    steps, disp_freq, reps = mode_params(mode, args)
    runs = []
    for rep in range(reps):
        for wl in workloads:
            for tool in tools:
                if wl.name == "multi" and not tool.multitask:
                    if rep == 0:
                        log(f"[bench] {tool.name}: no v2-style multi-task training; skipping workload 'multi'")
                    continue
                spec = fill_input(wl.load(), data.systems, numb_steps=steps, disp_freq=disp_freq,
                                  save_freq=steps if mode == "timing" else 10**9, val_batches=args.val_batches,
                                  precision=args.precision)
                run_dir = work / mode / f"{wl.name}-{tool.name}-rep{rep}"
                deadline = args.time_budget if mode == "budget" else None
                timeout = (args.time_budget + 120) if mode == "budget" else timeout_for(steps, data.natoms, 1)
                r = run_one(tool, wl, spec, run_dir, threads=args.threads, deadline_s=deadline, timeout_s=timeout)
                r.update(mode=mode, rep=rep, natoms=data.natoms, batch_size=1)
                runs.append(r)
                log(describe_run(f"{mode} rep {rep + 1}/{reps} {wl.name:<6s}", r))
    return runs


def scaling_runs(args: argparse.Namespace, tools: list[Tool], data: BenchData, work: Path) -> list[dict[str, Any]]:
    """s/step vs atoms per frame (box replicated 2x2x2) and vs batch size, single-task energy workload."""
    steps, disp_freq, reps = mode_params("scaling", args)
    big = work / "data" / "replicated-2x2x2"
    train = replicate_system(data.systems["WATER_TRAIN"][0], big / "train", (2, 2, 2), max_frames=20)
    val = replicate_system(data.systems["WATER_VAL"][0], big / "val", (2, 2, 2), max_frames=5)
    big_systems = {"WATER_TRAIN": [str(train)], "WATER_VAL": [str(val)]}
    natoms_big = data.natoms * 8
    configs = [(data.natoms, 1, data.systems), (natoms_big, 1, big_systems)] + \
              [(data.natoms, b, data.systems) for b in args.batch_sizes if b != 1]
    wl = WORKLOADS["single"]
    runs = []
    for rep in range(reps):
        for natoms, batch, systems in configs:
            for tool in tools:
                spec = fill_input(wl.load(), systems, numb_steps=steps, disp_freq=disp_freq, save_freq=steps,
                                  batch_size=batch, val_batches=args.val_batches, precision=args.precision)
                run_dir = work / "scaling" / f"{tool.name}-n{natoms}-b{batch}-rep{rep}"
                r = run_one(tool, wl, spec, run_dir, threads=args.threads,
                            timeout_s=timeout_for(steps, natoms, batch))
                r.update(mode="scaling", rep=rep, natoms=natoms, batch_size=batch)
                runs.append(r)
                log(describe_run(f"scaling rep {rep + 1}/{reps} n={natoms} b={batch}", r))
    return runs


def scaling_summary(runs: list[dict[str, Any]], base_natoms: int) -> list[dict[str, Any]]:
    rows = summarize(runs, ("tool", "natoms", "batch_size"), REFERENCE_TOOL)
    base = {r["tool"]: r["s_per_step"]["median"] for r in rows if r["natoms"] == base_natoms and r["batch_size"] == 1}
    for r in rows:
        med = r["s_per_step"]["median"]
        frames = r["batch_size"]
        r["s_per_frame"] = med / frames if med is not None else None
        r["us_per_atom_frame"] = med / frames / r["natoms"] * 1e6 if med is not None else None
        b = base.get(r["tool"])
        r["relative_to_base"] = med / b if (med is not None and b) else None
    return sorted(rows, key=lambda r: (r["tool"], r["natoms"], r["batch_size"]))


def mode_params(mode: str, args: argparse.Namespace) -> tuple[int, int, int]:
    steps, disp_freq, reps = DEFAULTS[mode][1 if args.quick else 0]
    if args.steps is not None and mode != "budget":
        steps = args.steps
    if args.disp_freq is not None:
        disp_freq = args.disp_freq
    if args.reps is not None:
        reps = args.reps
    return steps, min(disp_freq, steps), reps


# --------------------------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Modes: timing (default), --time-budget S, --scaling (may be combined).")
    p.add_argument("--quick", action="store_true", help="short runs (~2 min for the default tools)")
    p.add_argument("--steps", type=int, help="training steps per run (timing: 160, quick 60; scaling: 40, quick 20)")
    p.add_argument("--reps", type=int, help="repetitions; tools alternate within each (timing default 2, quick 1)")
    p.add_argument("--disp-freq", type=int, help="steps per timed block = lcurve line (timing 20, quick 10)")
    p.add_argument("--workload", choices=[*WORKLOADS, "both", "all"],
                   help="single: se_e2_a energy; multi: energy + dipole; se_atten / se_atten_v2: DPA-1 energy; "
                        "both: single + multi (default; --quick/--time-budget: single); all: every workload")
    p.add_argument("--tools", default=None,
                   help=f"comma-separated, from: {', '.join(make_tools())} "
                        f"(default: {REFERENCE_TOOL},mtbench; --scaling alone: mtbench)")
    p.add_argument("--time-budget", type=float, metavar="S",
                   help="time to accuracy: each tool trains S seconds of wall time from launch, then compare "
                        "validation RMSE")
    p.add_argument("--scaling", action="store_true",
                   help="s/step vs atoms per frame (2x2x2 box) and batch size (1, 2, 4)")
    p.add_argument("--batch-sizes", default="1,2,4", help="batch sizes of --scaling (default 1,2,4)")
    p.add_argument("--val-batches", type=int, default=None,
                   help="validation batches per lcurve line (default: the input's numb_btch, 3)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for every tool")
    p.add_argument("--precision", choices=["float64", "float32"], default=None,
                   help="override the precision of the descriptor and every fitting net, for every tool")
    p.add_argument("--inter-threads", type=int, default=1,
                   help="inter-op threads for every tool (default 1, as DeePMD-kit's docs recommend)")
    p.add_argument("--water-data", default=None,
                   help="folder with data_0..data_3 (default ../shared/data/water, else built-in data)")
    p.add_argument("--venv-dir", default=None,
                   help="where tool venvs live (default $MTBENCH_BENCH_VENVS or ~/.cache/mtbench/venvs)")
    p.add_argument("--work-dir", default=None, help="run folders (default: a new temporary folder, kept)")
    p.add_argument("-o", "--output", default=None, help="results JSON (default <work-dir>/results.json)")
    args = p.parse_args(argv)
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",") if b.strip()]
    return args


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO_ROOT), *cmd], capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:
            return ""

    commit = git("rev-parse", "HEAD")
    uncommitted = len(git("status", "--porcelain", "--", "mtbench").splitlines())
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu, "cpus": os.cpu_count(),
            "loadavg_at_start": list(os.getloadavg()), "python": platform.python_version(),
            "platform": platform.platform(), "mtbench_commit": commit,
            "mtbench_uncommitted_files": uncommitted}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["MTBENCH_BENCH_INTER"] = str(args.inter_threads)  # read by benchlib.tools.thread_env
    modes = [m for m, on in (("budget", args.time_budget is not None), ("scaling", args.scaling)) if on] or ["timing"]
    all_tools = make_tools()
    default_tools = "mtbench" if modes == ["scaling"] else f"{REFERENCE_TOOL},mtbench"
    names = [t.strip() for t in (args.tools or default_tools).split(",") if t.strip()]
    unknown = [n for n in names if n not in all_tools]
    if unknown:
        log(f"run.py: error: unknown tool(s) {', '.join(unknown)}; choose from {', '.join(all_tools)}")
        return 2
    tools = [all_tools[n] for n in names]
    workload = args.workload or ("both" if modes == ["timing"] and not args.quick else "single")
    names_wl = {"both": ("single", "multi"), "all": tuple(WORKLOADS)}.get(workload, (workload,))
    workloads = [WORKLOADS[w] for w in names_wl]

    venv_root = Path(args.venv_dir).expanduser() if args.venv_dir else default_venv_root()
    for tool in tools:
        tool.prepare(venv_root, log=log)
    data = resolve_data(args.water_data, need_dipole=any(w.name == "multi" for w in workloads), log=log)
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="mtbench-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.output).resolve() if args.output else work / "results.json"
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cpus:
        log(f"[bench] warning: load average {load:.1f} on {cpus} CPUs before starting; other work on this machine "
            "inflates and spreads the timings (the JSON keeps the load before and after each run)")
    log(f"[bench] tools: {', '.join(t.name for t in tools)}; workloads: {', '.join(w.name for w in workloads)}; "
        f"modes: {', '.join(modes)}; data: {data.source}; run folders: {work}")

    results: dict[str, Any] = {
        "config": {"argv": sys.argv[1:] if argv is None else argv, "modes": modes, "tools": names,
                   "workloads": [w.name for w in workloads], "threads": args.threads, "inter_threads": args.inter_threads,
                   "precision": args.precision, "quick": args.quick,
                   "time_budget_s": args.time_budget, "batch_sizes": args.batch_sizes,
                   "params": {m: dict(zip(("steps", "disp_freq", "reps"), mode_params(m, args))) for m in modes},
                   "reference_tool": REFERENCE_TOOL},
        "machine": machine_info(),
        "versions": {t.name: t.versions() for t in tools},
        "data": data.describe(),
        "runs": [],
        "summary": {},
    }
    try:
        for mode in modes:
            if mode == "scaling":
                runs = scaling_runs(args, tools, data, work)
                results["summary"]["scaling"] = scaling_summary(runs, data.natoms)
            else:
                runs = mode_runs(mode, args, tools, workloads, data, work)
                results["summary"][mode] = summarize(runs, ("workload", "tool"), REFERENCE_TOOL)
                results["summary"][f"{mode}_at_reference_mix"] = at_reference_mix(runs, REFERENCE_TOOL)
            results["runs"].extend(runs)
            write_json(out, results)
    except KeyboardInterrupt:
        log("[bench] interrupted: writing what was measured")
        write_json(out, results)
        raise
    print_tables(results, REFERENCE_TOOL)
    log(f"[bench] results: {out}")
    failed = [r for r in results["runs"] if r["returncode"] != 0 and not r["killed_at_deadline"]]
    for r in failed:
        log(f"[bench] FAILED: {r['mode']} {r['workload']} {r['tool']} rc={r['returncode']}: see {r['log']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
