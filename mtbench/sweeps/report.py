"""A sweep's report and its parent run: ``summary.csv``, ``summary.md`` and the plots in a folder;
the parent run's summary (tags, metrics, note) and artifacts; and the end of a sweep
(:func:`finalize_sweep`, called by the Hydra callback)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from mtbench.sweeps.mlflow_reader import load_parent_run
from mtbench.sweeps.model import Sweep, job_title
from mtbench.sweeps.pareto import write_pareto
from mtbench.sweeps.plots import make_plots
from mtbench.sweeps.stats import welch
from mtbench.sweeps.tables import JOBS_CSV, SUMMARY_CSV, SUMMARY_MD, markdown, settings_table, table, write_csv
from mtbench.tracking.mlflow_tracker import clean_tags
from mtbench.tracking.store import Store, StoreError

log = logging.getLogger("mtbench.compare")


def summarize(sweep: Sweep, planned_jobs: int | None = None
              ) -> tuple[dict[str, str], dict[str, list[tuple[float, int]]]]:
    """Parent-run tags and metrics (``{key: [(value, step)]}``) that make the MLflow compare
    view useful without opening the children."""
    jobs = sweep.jobs
    n = max(len(jobs), planned_jobs or 0)
    ok = sum(j.ok for j in jobs)
    running = sum(j.status == "RUNNING" for j in jobs)
    killed = sum(j.status == "KILLED" for j in jobs)  # stopped, or found stale (a search then replaces the trial)
    failed = n - ok - running - killed
    tags = {"sweep.jobs": str(n), "sweep.succeeded": str(ok), "sweep.failed": str(failed)}
    if running:
        tags["sweep.running"] = str(running)
    if killed:
        tags["sweep.killed"] = str(killed)
    metrics: dict[str, list[tuple[float, int]]] = {
        "sweep/jobs": [(n, 0)], "sweep/succeeded": [(ok, 0)], "sweep/failed": [(failed, 0)]}
    for t in sweep.tasks:
        m = sweep.ranking_label(t).replace(" ", "_")
        best = sweep.best_job(t)
        if best is not None:
            v = sweep.ranked_value(best, t)
            tags[f"sweep.best.{t}"] = f"job {job_title(best, sweep.keys)}: {m}={v:.4g}"
            if best.run_id:
                tags[f"sweep.best.{t}.run_id"] = best.run_id
            metrics[f"sweep/best/{t}/{m}"] = [(v, 0)]
        if sweep.replicated:
            _replicate_summary(sweep, t, m, tags, metrics)
        for i, j in enumerate(jobs):
            v = sweep.ranked_value(j, t)
            if j.ok and math.isfinite(v):
                step = int(j.label) if j.label.isdigit() else i
                metrics.setdefault(f"sweep/by_job/{t}/{m}", []).append((v, step))
    return tags, metrics


def _replicate_summary(sweep: Sweep, task: str, metric: str, tags: dict[str, str],
                       metrics: dict[str, list[tuple[float, int]]]) -> None:
    """The best setting of ``task`` by its mean over the seeds (``sweep.best_setting.<task>``), and whether the
    runner-up is distinguishable from it (``sweep.distinguishable.<task>``)."""
    ranked = sweep.best_settings(task)
    if not ranked:
        return
    setting, sp = ranked[0]
    tags[f"sweep.best_setting.{task}"] = (f"{setting.title()}: {metric} mean {sp.mean:.4g} ± {sp.std:.2g} "
                                          f"over {sp.n} seeds")
    metrics[f"sweep/best_setting/{task}/{metric}_mean"] = [(sp.mean, 0)]
    if len(ranked) > 1:
        tags[f"sweep.distinguishable.{task}"] = str(welch(sp, ranked[1][1]).distinguishable).lower()


def parent_note(sweep: Sweep, files: Sequence[Path]) -> str:
    """The parent run's description in the MLflow UI: the table, and where the plots are."""
    pngs = [f.name for f in files if f.suffix == ".png"]
    note = markdown(sweep)
    if pngs:
        note += "\nPlots (artifacts, `compare/`): " + ", ".join(f"`{p}`" for p in pngs) + "\n"
    return note


def log_summary(store: Store, run_id: str, tags: Mapping[str, str],
                metrics: Mapping[str, Sequence[tuple[float, int]]], note: str | None = None) -> None:
    """Tags and metrics on the parent; metric points already there are not sent again, so a
    report re-run does not duplicate them."""
    all_tags = dict(tags)
    if note:
        all_tags["mlflow.note.content"] = note
    store.set_tags(run_id, clean_tags(all_tags))
    known = set(store.get_run(run_id).data.metrics)
    ts = int(time.time() * 1000)
    points = []
    for key, pts in metrics.items():
        have = set()
        if key in known:
            have = {(p.step, p.value) for p in store.metric_history(run_id, key)}
        points += [(key, float(v), int(s), ts) for v, s in pts if (int(s), float(v)) not in have]
    if points:
        store.log_metrics(run_id, points)


def write_report(sweep: Sweep, out_dir: str | Path) -> list[Path]:
    """``summary.csv`` (per setting when the sweep has replicate seeds, else per job), ``summary_jobs.csv`` (per
    job), ``summary.md`` and the plots into ``out_dir``; returns the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols, rows = table(sweep)
    jobs_csv = write_csv(out / JOBS_CSV, cols, rows)
    if sweep.replicated:
        cols, rows = settings_table(sweep)
    files = [write_csv(out / SUMMARY_CSV, cols, rows), jobs_csv]
    plots = make_plots(sweep, out)
    md = out / SUMMARY_MD
    md.write_text(markdown(sweep, plots))
    plots += write_pareto(sweep, out, md)  # the Pareto front section (mtbench.sweeps.pareto)
    return [*files, md, *plots]


def log_report(sweep: Sweep, files: Sequence[Path], planned_jobs: int | None = None) -> bool:
    """Log the report files (artifacts ``compare/``) and the summary to the sweep's parent run
    (False if there is none or the store failed)."""
    if not sweep.parent_run_id or not sweep.tracking_uri:
        return False
    store = Store(sweep.tracking_uri, sweep.sweep_dir or Path("."))
    try:
        store.connect()
        tags, metrics = summarize(sweep, planned_jobs)
        log_summary(store, sweep.parent_run_id, tags, metrics, parent_note(sweep, files))
        for f in files:
            store.log_artifact(sweep.parent_run_id, Path(f).resolve(), "compare")
    except StoreError as exc:
        log.warning("report not logged to parent run %s: %s", sweep.parent_run_id, exc)
        return False
    return True


def default_out_dir(sweep: Sweep) -> Path:
    if sweep.sweep_dir is not None and sweep.sweep_dir.is_dir():
        return sweep.sweep_dir / "compare"
    tag = (sweep.parent_run_id or sweep.name)[:12]
    return Path(f"compare-{tag}")


def finalize_sweep(parent_run_id: str, *, tracking_uri: str, output_dir: str | Path,
                   sweep_dir: Path | None, planned_jobs: int | None, aborted: bool,
                   report: bool = True) -> str:
    """End of a sweep (called by the Hydra callback): write the report (``report``), put the
    summary and the report on the parent run, close it. Returns the parent's final status."""
    store = Store(tracking_uri, output_dir)
    store.connect()
    sweep = load_parent_run(store, parent_run_id, histories=report)
    if sweep.sweep_dir is None:
        sweep.sweep_dir = sweep_dir
    tags, metrics = summarize(sweep, planned_jobs)
    failed = int(tags["sweep.failed"])
    ok = int(tags["sweep.succeeded"])
    # a killed job fails the sweep unless others made up the plan (a resumed search's replacement trials)
    short = bool(tags.get("sweep.killed")) and ok < (planned_jobs or len(sweep.jobs))
    if aborted and any(j.status in ("RUNNING", "KILLED") for j in sweep.jobs):
        status = "KILLED"
    elif aborted or failed or short or not ok:
        status = "FAILED"
    else:
        status = "FINISHED"
    files: list[Path] = []
    if report and sweep.sweep_dir is not None:
        try:
            files = write_report(sweep, sweep.sweep_dir / "compare")
        except Exception as exc:  # noqa: BLE001 - the summary and the status matter more
            log.warning("sweep report not written (%s: %s)", type(exc).__name__, exc)
    md = [f for f in files if f.name == SUMMARY_MD]
    log_summary(store, parent_run_id, tags, metrics, parent_note(sweep, files) if files else None)
    for f in files:
        store.log_artifact(parent_run_id, f.resolve(), "compare")
    store.set_terminated(parent_run_id, status)
    log.info("sweep parent run %s %s: %s of %s jobs succeeded", parent_run_id, status,
             tags["sweep.succeeded"], tags["sweep.jobs"])
    if md:
        print(f"mtbench: sweep report: {md[0]}")
    return status
