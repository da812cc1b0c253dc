"""PNG plots of a sweep comparison (matplotlib, Agg backend): one function per question.

- ``learning_curves.png``: does a setting learn faster? validation curve per task, one line per job;
- ``error_vs_<key>.png``: what does the swept value buy? final error per task against it;
- ``tradeoff_<a>__<b>.png``: what does task A cost task B? one point per job (per setting, with
  ± std bars over its seeds, when the sweep has replicates), the non-dominated ones (none other
  is better on both tasks) joined as the front;

Values are those jobs are ranked on (the full end-of-run evaluation when the runs have one).
- ``sampling.png``: did each task get the share of steps it asked for?
- ``grad_cosine.png``: do the tasks pull the shared descriptor the same way? (when logged)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtbench.plotting import annotate_apart, pyplot, save_figure
from mtbench.sweeps.model import Job, Sweep, axis_key, job_point_label, job_title, point_label, short_key
from mtbench.sweeps.pareto import front_2d
from mtbench.sweeps.stats import spread

DPI = 110


def _save(fig: Any, path: Path) -> Path:
    return save_figure(fig, path, dpi=DPI)


def _colors(n: int) -> list[Any]:
    cmap = pyplot().get_cmap("tab10" if n <= 10 else "viridis")
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _title(job: Job, sweep: Sweep) -> str:
    return job_title(job, sweep.keys)


def _heading(what: str, sweep: Sweep) -> str:
    """A figure title: what it shows first, then the sweep (``task sampling · sweep fitting_weight``), so the
    sweep's name is not read as a task's."""
    sep = "\n" if len(what) + len(sweep.name) > 60 else " · "  # a long title breaks rather than clips
    return f"{what}{sep}sweep {sweep.name}"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (both coordinates minimized), sorted by x."""
    return front_2d(points)


def numeric_key(sweep: Sweep) -> str | None:
    """The swept key to put on an x axis: a fitting weight if one is swept, else the first
    numeric one; None when nothing numeric is swept."""
    def numeric(k: str) -> bool:
        vals = [j.swept.get(k) for j in sweep.jobs if k in j.swept]
        try:
            return bool(vals) and all(math.isfinite(float(v)) for v in vals)
        except (TypeError, ValueError):
            return False

    candidates = [k for k in sweep.keys if numeric(k)]
    weights = [k for k in candidates if "fitting_weight" in k]
    return (weights or candidates or [None])[0]


def learning_curves(sweep: Sweep, out: Path) -> Path | None:
    tasks = sweep.tasks
    if not tasks or not any(j.curves for j in sweep.jobs):
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4), squeeze=False)
    colors = _colors(len(sweep.jobs))
    for ax, task in zip(axes[0], tasks):
        metric = sweep.primary(task)
        for job, color in zip(sweep.jobs, colors):
            c = job.curves.get(task, {}).get(metric)
            if c is None or not c.steps:
                continue
            pts = [(s, v) for s, v in zip(c.steps, c.values) if math.isfinite(v) and v > 0]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, color=color, label=_title(job, sweep),
                        ls="-" if job.ok else "--")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"validation {metric}")
        ax.set_title(task)
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(_heading("validation learning curves (per display)", sweep))
    return _save(fig, out / "learning_curves.png")


def error_vs_swept(sweep: Sweep, out: Path) -> Path | None:
    """Final error per task (the value jobs are ranked on) against the swept value; lines join jobs that differ
    only in it; with replicate seeds, the mean over the seeds with a ± std bar."""
    tasks = sweep.tasks
    done = [j for j in sweep.jobs if j.ok]
    if not tasks or not done:
        return None
    key = numeric_key(sweep)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    others = [k for k in sweep.setting_keys if k != key]
    for ax, task in zip(axes[0], tasks):
        if key is None:  # categorical: one bar per setting (mean ± std over its seeds)
            settings = [s for s in sweep.settings() if any(j.ok for j in s.jobs)]
            spreads = [sweep.setting_spread(s, task) for s in settings]
            labels = [s.title() if sweep.replicated else _title(s.jobs[0], sweep) for s in settings]
            ax.bar(range(len(settings)), [sp.mean for sp in spreads], color=_colors(len(settings)),
                   yerr=[sp.std if math.isfinite(sp.std) else 0.0 for sp in spreads] if sweep.replicated else None,
                   capsize=4)
            ax.set_xticks(range(len(settings)), labels, rotation=30, ha="right", fontsize=7)
        else:
            groups: dict[tuple[str, ...], list[Job]] = {}
            for j in done:
                groups.setdefault(tuple(j.swept.get(k, "") for k in others), []).append(j)
            for (gkey, jobs), color in zip(groups.items(), _colors(len(groups))):
                by_x: dict[float, list[float]] = {}
                for j in jobs:
                    if key in j.swept:
                        by_x.setdefault(float(j.swept[key]), []).append(sweep.ranked_value(j, task))
                xs = sorted(by_x)
                label = ", ".join(f"{axis_key(k)}={v}" for k, v in zip(others, gkey))
                if sweep.replicated:
                    sps = [spread(by_x[x]) for x in xs]
                    ax.errorbar(xs, [sp.mean for sp in sps], yerr=[sp.std if math.isfinite(sp.std) else 0.0
                                                                   for sp in sps],
                                marker="o", color=color, capsize=4, label=label or None)
                    for x in xs:
                        ax.scatter([x] * len(by_x[x]), by_x[x], s=8, color=color, alpha=0.5, zorder=3)
                else:
                    ax.plot(xs, [by_x[x][0] for x in xs], marker="o", color=color, label=label or None)
            ax.set_xlabel(axis_key(key))
            if others:
                ax.legend(fontsize=7)
        ax.set_ylabel(sweep.ranking_label(task) + (" (mean ± std over seeds)" if sweep.replicated else ""),
                      fontsize=8)
        ax.set_title(task)
        ax.grid(alpha=0.3)
    name = "error_vs_" + (short_key(key, sweep.keys) if key else "job")
    fig.suptitle(_heading("final error per task", sweep))
    return _save(fig, out / f"{name.replace('/', '_').replace('@', '_')}.png")


def _tradeoff_points(sweep: Sweep, task_a: str, task_b: str
                     ) -> list[tuple[str, float, float, float, float]]:
    """``(label, x, y, x_std, y_std)``: one point per finished job, or per setting (means ± std over its seeds)
    when the sweep has replicates."""
    if not sweep.replicated:
        return [(job_point_label(j, sweep.keys), sweep.ranked_value(j, task_a), sweep.ranked_value(j, task_b), 0.0,
                 0.0) for j in sweep.jobs if j.ok]
    pts = []
    for s in sweep.settings():
        a, b = sweep.setting_spread(s, task_a), sweep.setting_spread(s, task_b)
        if a.n:
            pts.append((point_label(s.values, sweep.keys) or s.title(), a.mean, b.mean,
                        a.std if math.isfinite(a.std) else 0.0, b.std if math.isfinite(b.std) else 0.0))
    return pts


def tradeoff(sweep: Sweep, out: Path, task_a: str, task_b: str) -> Path | None:
    pts = _tradeoff_points(sweep, task_a, task_b)
    xy = [(x, y) for _, x, y, _, _ in pts]
    if sum(1 for x, y in xy if math.isfinite(x) and math.isfinite(y)) < 2:
        return None
    front = pareto_front(xy)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    for i, (label, x, y, dx, dy) in enumerate(pts):
        on = i in front
        if sweep.replicated:
            ax.errorbar([x], [y], xerr=[dx], yerr=[dy], fmt="none", ecolor="tab:red" if on else "tab:gray",
                        capsize=3, lw=1, zorder=2)
        ax.scatter([x], [y], s=60 if on else 30, color="tab:red" if on else "tab:gray",
                   edgecolor="black" if on else "none", zorder=3)
    unit = "setting" if sweep.replicated else "job"
    if len(front) > 1:
        ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], color="tab:red", lw=1,
                ls="--", label=f"non-dominated {unit}s", zorder=2)
        ax.legend(fontsize=8)
    ax.set_xlabel(f"{task_a}: {sweep.ranking_label(task_a)}")
    ax.set_ylabel(f"{task_b}: {sweep.ranking_label(task_b)}")
    per = "setting, mean ± std over its seeds" if sweep.replicated else "job"
    ax.set_title(_heading(f"trade-off, one point per {per} (lower left is better)", sweep), fontsize=10)
    ax.margins(x=0.35, y=0.12)  # room for the labels
    ax.grid(alpha=0.3)
    annotate_apart(ax, [(x, y) for _, x, y, _, _ in pts], [label for label, *_ in pts])
    return _save(fig, out / f"tradeoff_{task_a}__{task_b}.png")


def sampling(sweep: Sweep, out: Path) -> Path | None:
    tasks = sweep.tasks
    if not any(j.fractions for j in sweep.jobs):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    markers = "osD^vP*X"
    for (task, color), marker in zip(zip(tasks, _colors(len(tasks))), markers * 4):
        xs, ys = [], []
        for j in sweep.jobs:
            x, y = j.requested.get(task, math.nan), j.fractions.get(task, math.nan)
            if math.isfinite(y):
                xs.append(x if math.isfinite(x) else math.nan)
                ys.append(y)
                if math.isfinite(x):
                    ax.annotate(f"#{j.label}", (x, y), textcoords="offset points", xytext=(4, -9),
                                fontsize=6, color=color)
        ax.scatter(xs, ys, color=color, marker=marker, label=task, zorder=3)
    ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls=":", label="realised = requested")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("requested sampling probability")
    ax.set_ylabel("realised fraction of steps")
    ax.set_title(_heading("task sampling", sweep))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out / "sampling.png")


def grad_cosine(sweep: Sweep, out: Path) -> Path | None:
    pairs = sweep.pairs()
    if not pairs:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.4 * len(pairs), 4.2), squeeze=False)
    colors = _colors(len(sweep.jobs))
    for ax, pair in zip(axes[0], pairs):
        for job, color in zip(sweep.jobs, colors):
            c = job.grad_cos.get(pair)
            if c is not None and c.steps:
                ax.plot(c.steps, c.values, marker="o", ms=3, color=color, label=_title(job, sweep))
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("training step")
        ax.set_ylabel("cosine of descriptor gradients")
        ax.set_title(pair.replace("__", " vs "))
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(_heading("cosine between the tasks' descriptor gradients", sweep)
                 + "\n(> 0: they pull the same way, < 0: they conflict)", fontsize=10)
    return _save(fig, out / "grad_cosine.png")


def make_plots(sweep: Sweep, out: Path) -> list[Path]:
    """Every plot that has data, in reading order."""
    out.mkdir(parents=True, exist_ok=True)
    plots = [learning_curves(sweep, out), error_vs_swept(sweep, out)]
    tasks = sweep.tasks
    pairs = [(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]][:3]
    plots += [tradeoff(sweep, out, a, b) for a, b in pairs]
    plots += [sampling(sweep, out), grad_cosine(sweep, out)]
    return [p for p in plots if p is not None]
