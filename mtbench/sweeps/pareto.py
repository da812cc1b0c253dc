"""The Pareto front of a sweep or search: which jobs no other job beats on every task at once.

One owner for "non-dominated" (all objectives minimized): the report's Pareto section (:func:`write_pareto`, a plot
and a table of the non-dominated jobs on their final validation errors), the trade-off plots
(:mod:`mtbench.sweeps.plots`) and the tests use :func:`non_dominated`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mtbench.sweeps.model import Job, Sweep, job_point_label, short_key

PLOT_NAME = "pareto.png"
CSV_NAME = "pareto.csv"


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` on every objective and better on one (minimizing)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices (in input order) of the points with every coordinate finite that no other such point dominates."""
    idx = [i for i, p in enumerate(points) if len(p) and all(math.isfinite(v) for v in p)]
    return [i for i in idx if not any(dominates(points[j], points[i]) for j in idx if j != i)]


def front_2d(points: Sequence[tuple[float, float]]) -> list[int]:
    """:func:`non_dominated` of 2-D points, sorted by x (the order to draw the front as a line)."""
    return sorted(non_dominated(points), key=lambda i: tuple(points[i]))


def objectives(sweep: Sweep) -> tuple[list[str], list[Job], list[list[float]]]:
    """``(tasks, finished jobs, their per-task values)``: each task's :meth:`Sweep.ranked_value` (the final
    validation on every frame when the runs have it, as the search's objectives)."""
    tasks = sweep.tasks
    jobs = [j for j in sweep.jobs if j.ok]
    return tasks, jobs, [[sweep.ranked_value(j, t) for t in tasks] for j in jobs]


def pareto_jobs(sweep: Sweep) -> list[Job]:
    """The finished jobs no other finished job dominates on the tasks' final validation errors."""
    _, jobs, values = objectives(sweep)
    return [jobs[i] for i in non_dominated(values)]


def plot(sweep: Sweep, out: Path) -> Path | None:
    """``pareto.png``: every finished job on each pair of tasks (up to 3 pairs), colored by job number (a search's
    progress), the non-dominated ones circled in red and labelled with what they set."""
    from mtbench.plotting import annotate_apart, pyplot, save_figure

    tasks, jobs, values = objectives(sweep)
    front = set(non_dominated(values))
    if len(tasks) < 2 or len(front) < 1 or sum(all(map(math.isfinite, v)) for v in values) < 2:
        return None
    pairs = [(a, b) for a in range(len(tasks)) for b in range(a + 1, len(tasks))][:3]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(pairs), figsize=(7.4 * len(pairs), 5.4), squeeze=False)
    order = [int(j.label) if j.label.isdigit() else i for i, j in enumerate(jobs)]
    for ax, (a, b) in zip(axes[0], pairs):
        xs = [v[a] for v in values]
        ys = [v[b] for v in values]
        sc = ax.scatter(xs, ys, c=order, cmap="viridis", s=28, zorder=3, label="trial (color: job number)")
        on = sorted(front, key=lambda i: (xs[i], ys[i]))
        ax.scatter([xs[i] for i in on], [ys[i] for i in on], s=110, facecolor="none", edgecolor="tab:red",
                   lw=1.6, zorder=4, label=f"non-dominated ({len(on)} of {len(jobs)})")
        if len(pairs) == 1 and len(on) > 1:  # with two tasks the front is a staircase
            ax.step([xs[i] for i in on], [ys[i] for i in on], where="post", color="tab:red", lw=1, ls="--",
                    zorder=2)
        ax.set_xlabel(f"{tasks[a]}: {sweep.ranking_label(tasks[a])} (validation)")
        ax.set_ylabel(f"{tasks[b]}: {sweep.ranking_label(tasks[b])} (validation)")
        ax.grid(alpha=0.3)
        ax.margins(x=0.25, y=0.12)
        ax.legend(fontsize=8, loc="upper right")
        fig.colorbar(sc, ax=ax, label="job (trial) number")
    fig.suptitle(f"{sweep.name}: Pareto front of the final validation errors (lower left is better)", fontsize=11)
    for ax, (a, b) in zip(axes[0], pairs):
        on = sorted(front, key=lambda i: (values[i][a], values[i][b]))
        annotate_apart(ax, [(values[i][a], values[i][b]) for i in on], [job_point_label(jobs[i], sweep.keys) for i in on])
    return save_figure(fig, out / PLOT_NAME, dpi=110)


def markdown(sweep: Sweep, plot_path: Path | None = None) -> str:
    """The report's "Pareto front" section: the non-dominated jobs, their settings and per-task errors."""
    tasks, jobs, values = objectives(sweep)
    front = non_dominated(values)
    head = ["job", *[short_key(k, sweep.keys) for k in sweep.keys], *[f"{t} {sweep.ranking_label(t)}" for t in tasks]]
    lines = ["", "## Pareto front", "",
             f"{len(front)} of {len(jobs)} finished jobs are non-dominated: no other job has a lower or equal "
             "error on every task and a lower one on one task.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i in sorted(front, key=lambda i: values[i]):
        job = jobs[i]
        cells = [job.label, *[job.swept.get(k, "") for k in sweep.keys], *[f"{v:.4g}" for v in values[i]]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if plot_path is not None:
        lines += ["", f"![pareto]({plot_path.name})"]
    return "\n".join(lines) + "\n"


def write_csv(sweep: Sweep, out: Path) -> Path:
    """``pareto.csv``: one row per finished job, its per-task values and ``non_dominated`` (1/0)."""
    import csv

    tasks, jobs, values = objectives(sweep)
    front = set(non_dominated(values))
    path = out / CSV_NAME
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["job", *sweep.keys, *[f"{t}/{sweep.ranking_label(t).replace(' ', '_')}" for t in tasks],
                    "non_dominated"])
        for i, job in enumerate(jobs):
            w.writerow([job.label, *[job.swept.get(k, "") for k in sweep.keys], *[repr(v) for v in values[i]],
                        int(i in front)])
    return path


def write_pareto(sweep: Sweep, out: str | Path, summary_md: Path | None = None) -> list[Path]:
    """The report's Pareto section for a sweep with two tasks or more: ``pareto.csv``, ``pareto.png`` and, when
    ``summary_md`` is given, the section appended to it. Returns the files written (none for one task)."""
    out = Path(out)
    if len(sweep.tasks) < 2 or not any(j.ok for j in sweep.jobs):
        return []
    out.mkdir(parents=True, exist_ok=True)
    files = [write_csv(sweep, out)]
    png = plot(sweep, out)
    if png is not None:
        files.append(png)
    if summary_md is not None and summary_md.exists():
        with open(summary_md, "a") as fh:
            fh.write(markdown(sweep, png))
    return files
