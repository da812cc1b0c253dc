"""A sweep as tables: every number (``summary.csv``: one row per setting with ``_mean``/``_std`` columns over its
replicate seeds when the sweep varies ``training.seed``, else one row per job; ``summary_jobs.csv``: always one
row per job) and the table a person reads (``summary.md``, also the parent run's note in the MLflow UI)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtbench.sweeps.model import Curve, Sweep, axis_key, job_title
from mtbench.sweeps.stats import CONFIDENCE, spread, welch

SUMMARY_CSV = "summary.csv"
JOBS_CSV = "summary_jobs.csv"
SUMMARY_MD = "summary.md"


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
    head = ["job", "status", *[axis_key(k) for k in sweep.keys]]
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
    if sweep.replicated:
        lines += ["", *settings_markdown(sweep)]
    if plots:
        lines.append("")
        lines += [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


# -- replicates: one row per setting ------------------------------------------------------------------------------

def _aggregated(cols: Sequence[str], keys: Sequence[str]) -> list[str]:
    """The per-job columns a setting row averages: every metric, sampling share, objective and speed."""
    skip = {"job", "status", "run_id", "run_dir", "error", "steps", *keys}
    return [c for c in cols if c not in skip]


def settings_table(sweep: Sweep) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per setting: its swept values, the replicate count and seeds, and ``<column>_mean`` /
    ``<column>_std`` (sample std, n - 1) over its finished jobs of every numeric column of :func:`table`."""
    job_cols, job_rows = table(sweep)
    by_label = {r["job"]: r for r in job_rows}
    numeric = _aggregated(job_cols, sweep.keys)
    cols = [*sweep.setting_keys, "replicates", "finished", "seeds"]
    for c in numeric:
        cols += [f"{c}_mean", f"{c}_std"]
    rows = []
    for setting in sweep.settings():
        ok = [by_label[j.label] for j in setting.jobs if j.ok]
        row: dict[str, Any] = {**setting.values, "replicates": len(setting.jobs), "finished": len(ok),
                               "seeds": " ".join(x for x in setting.seeds if x)}
        for c in numeric:
            sp = spread(_float(r.get(c)) for r in ok)
            row[f"{c}_mean"], row[f"{c}_std"] = sp.mean, sp.std
        rows.append(row)
    return cols, rows


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{_fmt(mean)} ± {_fmt(std, 2)}" if math.isfinite(std) else _fmt(mean)


def settings_markdown(sweep: Sweep) -> list[str]:
    """The settings table (mean ± std of each task's ranking value over the seeds) and, per task, whether the
    best two settings are distinguishable at the report's confidence (Welch)."""
    tasks = sweep.tasks
    settings = sweep.settings()
    head = [*[axis_key(k) for k in sweep.setting_keys], "seeds"]
    head += [f"{t} {sweep.ranking_label(t)}" for t in tasks]
    lines = ["## Settings: mean ± std over the replicate seeds", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    best = {t: (sweep.best_settings(t) or [(None, None)])[0][0] for t in tasks}
    for setting in settings:
        cells = [*[setting.values.get(k, "") for k in sweep.setting_keys],
                 f"{sum(j.ok for j in setting.jobs)}/{len(setting.jobs)}"]
        for t in tasks:
            sp = sweep.setting_spread(setting, t)
            text = _pm(sp.mean, sp.std)
            cells.append(f"**{text}**" if best[t] is setting else text)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", *distinguishability_lines(sweep)]
    return lines


def distinguishability_lines(sweep: Sweep) -> list[str]:
    """Per task: the best two settings and whether their means differ beyond the seed-to-seed spread."""
    out = []
    pct = f"{CONFIDENCE:.0%}"
    for t in sweep.tasks:
        ranked = sweep.best_settings(t)
        if len(ranked) < 2:
            continue
        (a, sa), (b, sb) = ranked[0], ranked[1]
        cmp = welch(sa, sb)
        verdict = ("distinguishable" if cmp.distinguishable else
                   "**not distinguishable** (the seeds move it as much; more replicates or steps needed)")
        width = f"{_fmt(cmp.half_width, 2)}" if math.isfinite(cmp.half_width) else "∞ (one seed)"
        out.append(f"- `{t}` ({sweep.ranking_label(t)}): best `{a.title()}` {_pm(sa.mean, sa.std)}, next "
                   f"`{b.title()}` {_pm(sb.mean, sb.std)}: difference {_fmt(cmp.diff)} ± {width} ({pct}, Welch): "
                   f"{verdict}")
    return out
