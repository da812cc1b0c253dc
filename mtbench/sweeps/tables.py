"""A sweep as tables: every number (one row per job, ``summary.csv``) and the table a person
reads (``summary.md``, also the parent run's note in the MLflow UI)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtbench.sweeps.model import Curve, Sweep, job_title, short_key


def table(sweep: Sweep) -> tuple[list[str], list[dict[str, Any]]]:
    """Every number of the report: one row per job (CSV columns, rows)."""
    cols = ["job", "status", *sweep.keys]
    metric_cols: list[tuple[str, str]] = [(t, m) for t in sweep.tasks for m in sweep.metrics_of(t)]
    for t, m in metric_cols:
        cols.append(f"{t}/val_{m}/final")
    for t, m in metric_cols:
        cols.append(f"{t}/val_{m}/best")
    full_cols = [(t, m) for t in sweep.tasks for m in dict.fromkeys(m for j in sweep.jobs for m in j.full.get(t, {}))]
    for t, m in full_cols:
        cols.append(f"{t}/final_{m}")
    for t in sweep.tasks:
        cols += [f"{t}/sampled_fraction", f"{t}/requested_fraction", f"{t}/steps_trained"]
    pairs = sweep.pairs()
    norms = sorted({t for j in sweep.jobs for t in j.grad_norm})
    for p in pairs:
        cols += [f"grad_cos/{p}/mean", f"grad_cos/{p}/last"]
    for t in norms:
        cols.append(f"grad_norm/{t}/mean")
    cols += ["steps", "train_s", "steps_per_s", "run_s", "objective", "run_id", "run_dir", "error"]
    rows = []
    for job in sweep.jobs:
        row: dict[str, Any] = {"job": job.label, "status": job.status}
        for k in sweep.keys:
            row[k] = job.swept.get(k, "")
        for t, m in metric_cols:
            row[f"{t}/val_{m}/final"] = job.final_value(t, m)
            row[f"{t}/val_{m}/best"] = job.best_value(t, m)
        for t, m in full_cols:
            row[f"{t}/final_{m}"] = job.full_value(t, m)
        for t in sweep.tasks:
            row[f"{t}/sampled_fraction"] = job.fractions.get(t, math.nan)
            row[f"{t}/requested_fraction"] = job.requested.get(t, math.nan)
            row[f"{t}/steps_trained"] = job.counts.get(t, math.nan)
        for p in pairs:
            c = job.grad_cos.get(p, Curve())
            row[f"grad_cos/{p}/mean"] = c.mean()
            row[f"grad_cos/{p}/last"] = c.last()
        for t in norms:
            row[f"grad_norm/{t}/mean"] = job.grad_norm.get(t, Curve()).mean()
        row.update(steps=job.steps if job.steps is not None else "", train_s=_or_nan(job.train_s),
                   steps_per_s=job.steps_per_s, run_s=_or_nan(job.run_s),
                   objective=_or_nan(job.objective), run_id=job.run_id or "",
                   run_dir=job.run_dir or "", error=job.error or "")
        rows.append(row)
    return cols, rows


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.{digits}g}"
    return str(v)


def write_csv(path: Path, cols: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(cols))
        w.writeheader()
        for row in rows:
            w.writerow({c: ("" if isinstance(row.get(c), float) and not math.isfinite(row[c])
                            else row.get(c, "")) for c in cols})
    return path


def markdown(sweep: Sweep, plots: Sequence[Path] = ()) -> str:
    """The table a person reads: per task the ranking metric (final, best), sampling, speed."""
    tasks = sweep.tasks
    best = {t: sweep.best_job(t) for t in tasks}
    head = ["job", "status", *[short_key(k, sweep.keys) for k in sweep.keys]]
    full = {t: sweep.full_primary(t) for t in tasks}
    for t in tasks:
        m = sweep.primary(t)
        head += [f"{t} {m} final", f"{t} {m} best"] + ([f"{t} {full[t]} all frames"] if full[t] else [])
    head += [f"{t} sampled (requested)" for t in tasks]
    pairs = sweep.pairs()
    head += [f"cos {p.replace('__', ' vs ')} (mean)" for p in pairs]
    head += ["steps/s", "train s"]
    lines = [f"# Sweep comparison: {sweep.name}", "",
             f"Source: `{sweep.source}`" + (f" · parent run `{sweep.parent_run_id}`"
                                            if sweep.parent_run_id else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for job in sweep.jobs:
        cells = [job.label, job.status, *[job.swept.get(k, "") for k in sweep.keys]]
        for t in tasks:
            m = sweep.primary(t)
            last = _fmt(job.final_value(t, m))
            if full[t]:
                value = _fmt(job.full_value(t, full[t]))
                cells += [last, _fmt(job.best_value(t, m)), f"**{value}**" if best[t] is job else value]
            else:
                cells += [f"**{last}**" if best[t] is job else last, _fmt(job.best_value(t, m))]
        for t in tasks:
            cells.append(f"{_fmt(job.fractions.get(t, math.nan), 2)} "
                         f"({_fmt(job.requested.get(t, math.nan), 2)})")
        cells += [_fmt(job.grad_cos.get(p, Curve()).mean(), 2) for p in pairs]
        cells += [_fmt(job.steps_per_s), _fmt(_or_nan(job.train_s))]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    n_ok = sum(j.ok for j in sweep.jobs)
    lines.append(f"{len(sweep.jobs)} jobs, {n_ok} finished, {len(sweep.jobs) - n_ok} not. "
                 "Bold: best value per task (lowest): the final evaluation on every validation frame when the "
                 "runs have one (all frames), else the last display. Validation RMSEs; final/best: the per-display "
                 "validation (random batches) at the last display, and its lowest after step 0.")
    for t in tasks:
        j = best[t]
        if j is not None:
            lines.append(f"- best for `{t}` ({sweep.ranking_label(t)}): job {job_title(j, sweep.keys)}")
    failed = [j for j in sweep.jobs if not j.ok]
    for j in failed:
        lines.append(f"- job {j.label} {j.status}" + (f": {j.error}" if j.error else ""))
    if plots:
        lines.append("")
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"
