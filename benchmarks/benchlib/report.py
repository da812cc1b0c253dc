"""From raw runs to summary rows, rich tables and the results JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median, quartiles and IQR of finite values (None when there are none)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"n": 0, "median": None, "p25": None, "p75": None, "iqr": None, "min": None, "max": None}
    p25, med, p75 = np.percentile(v, [25, 50, 75])
    return {"n": int(v.size), "median": float(med), "p25": float(p25), "p75": float(p75), "iqr": float(p75 - p25),
            "min": float(v.min()), "max": float(v.max())}


def _median(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.median(v)) if v else None


def _max(values: Iterable[float | None]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return max(v) if v else None


METRICS = ("rmse_e_val", "rmse_f_val", "dipole_rmse_val")


def summarize(runs: Sequence[Mapping[str, Any]], keys: Sequence[str], reference_tool: str) -> list[dict[str, Any]]:
    """One row per distinct ``keys`` tuple (e.g. workload, tool): pooled per-step times over repetitions.

    The ratio is to the reference tool's median in the row with the same keys except ``tool``.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    rows = []
    for key, rs in groups.items():
        ok = [r for r in rs if r.get("returncode") == 0 or r.get("killed_at_deadline")]
        row: dict[str, Any] = dict(zip(keys, key))
        row["runs"] = len(rs)
        row["failed"] = len(rs) - len(ok)
        row["s_per_step"] = stats([x for r in ok for x in r.get("s_per_step", [])])
        row["cpu_s_per_step"] = stats([x for r in ok for x in r.get("cpu_s_per_step", [])])
        row["own_train_s_per_step"] = stats([x for r in ok for x in r.get("own_train_s_per_step", [])])
        row["own_wall_s_per_step"] = stats([x for r in ok for x in r.get("own_wall_s_per_step", [])])
        row["startup_s"] = _median(r.get("startup_s") for r in ok)
        row["peak_rss_mb"] = _max(r.get("peak_rss_mb") for r in ok)
        row["steps_done"] = _median(r.get("steps_done") for r in ok)
        for m in METRICS:
            row[m] = _median(r.get("final", {}).get(m) for r in ok)
        rows.append(row)
    by_key = {tuple(row.get(k) for k in keys): row for row in rows}
    for row in rows:
        ref_key = tuple(reference_tool if k == "tool" else row.get(k) for k in keys)
        ref = by_key.get(ref_key)
        for key, out in (("s_per_step", "ratio_to_reference"), ("own_train_s_per_step", "train_ratio_to_reference"),
                         ("cpu_s_per_step", "cpu_ratio_to_reference")):
            a = row[key]["median"]
            b = ref[key]["median"] if ref else None
            row[out] = (a / b) if (a is not None and b) else None
    return rows


def at_reference_mix(runs: Sequence[Mapping[str, Any]], reference_tool: str) -> list[dict[str, Any]]:
    """Multi-task runs draw their heads at random, so two tools' runs of the same input train different mixes (160
    draws at 2:1 land anywhere from ~60% to ~75% energy steps) and their s/step are not comparable as they are.
    For each workload and tool that times its steps per head (``head_step_s``): its s/step at the reference's mix
    (the reference runs' ``head_steps``, pooled), and the ratio to the reference's own training s/step."""
    out = []
    ref_runs = {}
    for r in runs:
        if r.get("tool") == reference_tool and len(r.get("head_steps") or {}) > 1 and r.get("returncode") == 0:
            ref_runs.setdefault(r["workload"], []).append(r)
    for workload, refs in ref_runs.items():
        mix: dict[str, int] = {}
        for r in refs:
            for head, n in r["head_steps"].items():
                mix[head] = mix.get(head, 0) + n
        total = sum(mix.values())
        ref_s = stats([x for r in refs for x in r.get("own_train_s_per_step", [])])["median"]
        tools = sorted({r["tool"] for r in runs if r.get("workload") == workload and r.get("head_step_s")})
        for tool in tools:
            costs: dict[str, list[float]] = {}
            for r in runs:
                if r.get("workload") == workload and r.get("tool") == tool and r.get("returncode") == 0:
                    for head, sec in (r.get("head_step_s") or {}).items():
                        costs.setdefault(head, []).append(sec)
            if set(mix) - set(costs):
                continue
            s_mix = sum(n * _median(costs[h]) for h, n in mix.items()) / total
            out.append({"workload": workload, "tool": tool, "reference_head_steps": mix,
                        "head_step_s": {h: _median(c) for h, c in costs.items()}, "s_per_step_at_reference_mix": s_mix,
                        "reference_own_train_s_per_step": ref_s, "ratio": s_mix / ref_s if ref_s else None})
    return out


def _fmt(x: float | None, spec: str = ".3f", scale: float = 1.0) -> str:
    return "-" if x is None else format(x * scale, spec)


def print_tables(results: Mapping[str, Any], reference_tool: str) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 220)
    timing = results.get("summary", {}).get("timing") or []
    if timing:
        t = Table(title=f"Training speed (s/step: wall time per disp_freq block / steps, warm-up block excluded; "
                        f"ratio to {reference_tool})")
        for col, just in (("workload", "left"), ("tool", "left"), ("median s/step", "right"), ("IQR", "right"),
                          ("ratio", "right"), ("train s/step", "right"), ("train IQR", "right"),
                          ("train ratio", "right"), ("CPU s/step", "right"), ("CPU ratio", "right"),
                          ("start-up s", "right"),
                          ("peak RSS MB", "right"), ("val rmse_e/atom", "right"), ("val rmse_f", "right"),
                          ("val rmse dipole", "right"), ("n", "right")):
            t.add_column(col, justify=just)
        for row in timing:
            s = row["s_per_step"]
            t.add_row(row["workload"], row["tool"], _fmt(s["median"], ".4f"), _fmt(s["iqr"], ".4f"),
                      _fmt(row["ratio_to_reference"], ".2f"), _fmt(row["own_train_s_per_step"]["median"], ".4f"),
                      _fmt(row["own_train_s_per_step"]["iqr"], ".4f"), _fmt(row["train_ratio_to_reference"], ".2f"),
                      _fmt(row["cpu_s_per_step"]["median"], ".4f"), _fmt(row["cpu_ratio_to_reference"], ".2f"),
                      _fmt(row["startup_s"], ".1f"), _fmt(row["peak_rss_mb"], ".0f"),
                      _fmt(row["rmse_e_val"], ".3e"), _fmt(row["rmse_f_val"], ".3e"),
                      _fmt(row["dipole_rmse_val"], ".3e"), str(s["n"]) + (f" ({row['failed']} failed)"
                                                                           if row["failed"] else ""))
        console.print(t)
        console.print("s/step: wall time between learning-curve lines / steps (training + validation, measured "
                      "alike for every tool). train s/step: the tool's own training-only timer (DeePMD-kit 2.2 "
                      "'training time', mtbench time/step_s when its summary.json has it); '-' where the tool "
                      "reports none. CPU s/step: user+system CPU time of the training process per step "
                      "(same blocks as s/step; less disturbed by other load than wall time). Peak RSS: the kernel's ru_maxrss of the training "
                      "process.")
    for row in results.get("summary", {}).get("timing_at_reference_mix") or []:
        mix = ", ".join(f"{h} {n}" for h, n in row["reference_head_steps"].items())
        costs = ", ".join(f"{h} {s:.4f}" for h, s in row["head_step_s"].items())
        console.print(f"{row['workload']}: {row['tool']} at {reference_tool}'s mix of heads ({mix} steps), from its "
                      f"own s per step of each head ({costs}): {_fmt(row['s_per_step_at_reference_mix'], '.4f')} "
                      f"s/step, train ratio {_fmt(row['ratio'], '.2f')}")
    budget = results.get("summary", {}).get("budget") or []
    if budget:
        t = Table(title=f"Time to accuracy: same wall-clock budget ({results['config'].get('time_budget_s')} s "
                        "from launch, start-up included)")
        for col in ("workload", "tool", "steps done", "median s/step", "val rmse_e/atom", "val rmse_f",
                    "val rmse dipole", "peak RSS MB"):
            t.add_column(col, justify="left" if col in ("workload", "tool") else "right")
        for row in budget:
            t.add_row(row["workload"], row["tool"], _fmt(row["steps_done"], ".0f"),
                      _fmt(row["s_per_step"]["median"], ".4f"), _fmt(row["rmse_e_val"], ".3e"),
                      _fmt(row["rmse_f_val"], ".3e"), _fmt(row["dipole_rmse_val"], ".3e"),
                      _fmt(row["peak_rss_mb"], ".0f"))
        console.print(t)
    scaling = results.get("summary", {}).get("scaling") or []
    if scaling:
        t = Table(title="Scaling (single-task energy workload)")
        for col in ("tool", "atoms/frame", "batch", "median s/step", "IQR", "s/frame", "us/(atom*frame)",
                    "vs 1 frame of base size", "peak RSS MB", "n"):
            t.add_column(col, justify="left" if col == "tool" else "right")
        for row in scaling:
            s = row["s_per_step"]
            t.add_row(row["tool"], str(row["natoms"]), str(row["batch_size"]), _fmt(s["median"], ".4f"),
                      _fmt(s["iqr"], ".4f"), _fmt(row.get("s_per_frame"), ".4f"),
                      _fmt(row.get("us_per_atom_frame"), ".1f"), _fmt(row.get("relative_to_base"), ".2f"),
                      _fmt(row["peak_rss_mb"], ".0f"), str(s["n"]))
        console.print(t)


def write_json(path: Path, results: Mapping[str, Any]) -> None:
    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, (np.floating, np.integer)):
            return clean(obj.item())
        return obj

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(results), indent=1))
