"""``dp test`` per head: which data each head is tested on, running the heads (and each on the others' data),
and the files it writes (JSON report, detail files, parity plots, cross-head CSV and heatmaps, MLflow).

:func:`run_test` is what ``python -m mtbench.test`` (:mod:`mtbench.cli.test`) and :func:`mtbench.api.test` call;
it prints nothing: the tables it returns (:attr:`TestRun.renderables`) are for the caller to print.
"""

from __future__ import annotations

import io
import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("mtbench")

UNITS = {"energy_per_atom": "eV/atom", "force": "eV/Å", "virial_per_atom": "eV/atom", "atom_energy": "eV"}
TABLE_WIDTH = 140  # the least width of the printed tables and of <json>_table.txt (system paths are long)


@dataclass
class TestOptions:
    """What to test on and what to write (the flags of ``python -m mtbench.test``; defaults as there)."""

    __test__ = False  # not a pytest class

    model: str
    system: list[str] | None = None  # data systems / folders / builtin:NAME for every head
    datafile: str | None = None  # a file listing one system per line
    train_data: str | None = None  # an input.json: each head on its training data
    valid_data: str | None = None  # an input.json: each head on its validation data
    head: str | None = None
    numb_test: int = 0
    rand_seed: int | None = None
    shuffle_test: bool = False
    detail_file: str | None = None
    atomic: bool = False
    json: str | None = None
    plots: str | None = None
    no_plots: bool = False
    cross_head: bool = False
    mlflow_run: str | None = None  # a run id, or "auto": the run dir's summary.json
    tracking_uri: str | None = None
    output_dir: str = "outputs"
    verbose: bool = False


@dataclass
class TestRun:
    """What :func:`run_test` found: the JSON report, the per-head results, the cross-head matrix, the tables."""

    __test__ = False

    report: dict[str, Any]
    results: list[Any] = field(default_factory=list)  # mtbench.evaluation.metrics.HeadResult per head tested
    cross: Any = None
    renderables: list[Any] = field(default_factory=list)  # rich tables and lines, in the order to print


# ------------------------------------------------------------------------------------------------ data sources
def run_dir_of(model_path: str | Path) -> Path | None:
    """The run folder behind a model path (:func:`mtbench.rundir.locate`'s rule: the run folder itself, its
    ``checkpoints/`` or a checkpoint in it), when it has the ``input.json`` whose data the heads are tested on."""
    from mtbench.rundir import run_dir_of as located_run

    run = located_run(model_path)
    return run.path if run is not None and run.input_json.is_file() else None


def base_dirs_of(run_dir: Path | None) -> list[Path]:
    """Where relative data paths of a run's spec may live: the launch folder (Hydra), the run dir, the cwd."""
    from mtbench.rundir import RunDir

    out: list[Path] = []
    if run_dir is not None:
        launch = RunDir(run_dir).launch_dir()
        if launch is not None:
            out.append(launch)
        out.append(run_dir)
    out.append(Path.cwd())
    return out


def resolve_spec_systems(systems: str | Sequence[str], bases: Sequence[Path], key: str) -> list[str]:
    """A spec's system entries as paths: ``builtin:`` resolved, relative ones against the first base that has them."""
    from mtbench.errors import DataError
    from mtbench.spec.paths import is_builtin, resolve_system_path, system_list

    out = []
    for entry in system_list(systems):
        if is_builtin(entry) or Path(entry).is_absolute():
            out.append(resolve_system_path(entry, None))
            continue
        for base in bases:
            cand = resolve_system_path(entry, base)
            if Path(cand.partition("#")[0]).exists():
                out.append(cand)
                break
        else:
            raise DataError(entry, f"data system of {key} not found (looked in {', '.join(map(str, bases))})")
    return out


def spec_data(spec: Mapping[str, Any], bases: Sequence[Path], which: str = "validation") -> dict[str, list[str]]:
    """``{task: systems}`` of a spec: validation data (training data where a task has none), or training data."""
    from mtbench.spec.tasks import task_view

    out = {}
    for name, task in task_view(spec).items():
        section = task.validation_data if which == "validation" and task.validation_data else task.training_data
        part = "validation_data" if section is task.validation_data else "training_data"
        out[name] = resolve_spec_systems(section["systems"], bases, f"training.data_dict.{name}.{part}")
    return out


def spec_kinds(spec: Mapping[str, Any]) -> dict[str, str]:
    from mtbench.spec.tasks import task_view

    return {name: task.fitting_net.get("type", "ener") for name, task in task_view(spec).items()}


# ------------------------------------------------------------------------------------------------ output
def head_table(result: Any) -> Any:
    """A rich table of one head's RMSE/MAE per quantity."""
    from rich.table import Table

    from mtbench.evaluation.metrics import QUANTITIES, metric_key

    nsys = len(result.systems)
    table = Table(title=f"{result.head} ({result.kind}): {nsys} system{'s' * (nsys != 1)}, {result.nframes} frames",
                  title_justify="left")
    for col, just in (("quantity", "left"), ("RMSE", "right"), ("MAE", "right"), ("unit", "left"), ("n", "right")):
        table.add_column(col, justify=just)
    for suffix, label, unit in QUANTITIES[result.kind]:
        rk, mk = metric_key("rmse", suffix), metric_key("mae", suffix)
        if rk in result.metrics:
            table.add_row(label, f"{result.metrics[rk]:.4e}", f"{result.metrics.get(mk, math.nan):.4e}", unit,
                          f"{int(result.weights[rk])}")
    return table


def system_table(result: Any) -> Any:
    from rich.table import Table

    keys = [k for k in dict.fromkeys(k for s in result.systems for k in s.errors) if k.startswith("rmse")]
    table = Table(title=f"{result.head}: per system", title_justify="left")
    table.add_column("system")
    table.add_column("frames", justify="right")
    for k in keys:
        table.add_column(k, justify="right")
    for s in result.systems:
        table.add_row(s.path, str(s.nframes), *[f"{s.metric(k):.3e}" if k in s.errors else "-" for k in keys])
    return table


def cross_tables(cross: Any) -> list[Any]:
    """One table per head kind: a row per (head, metric), a column per data set."""
    from rich.table import Table

    from mtbench.evaluation.metrics import CROSS_METRICS

    tables = []
    for kind, metrics in CROSS_METRICS.items():
        present = [m for m in metrics if m in cross.values and any(cross.kinds.get(h) == kind
                                                                    for h in cross.values[m])]
        if not present:
            continue
        heads = [h for h in cross.heads if cross.kinds.get(h) == kind]
        cols = [d for d in cross.data if cross.kinds.get(d) == kind]
        table = Table(title=f"cross-head, {kind} heads (rows) on {kind} data (columns)", title_justify="left")
        table.add_column("head")
        table.add_column("metric")
        for c in cols:
            table.add_column(c, justify="right")
        for h in heads:
            for k, m in enumerate(present):
                row = cross.values[m].get(h, {})
                table.add_row(h if k == 0 else "", m, *[f"{row[c]:.4g}" if math.isfinite(row.get(c, math.nan))
                                                        else "-" for c in cols],
                              end_section=k == len(present) - 1)
        tables.append(table)
    return tables


def write_parity_plots(results: Sequence[Any], folder: Path) -> list[Path]:
    from mtbench.evaluation.plots import parity_plot

    paths = []
    for res in results:
        for quantity, (ref, pred) in res.parity_data().items():
            unit = UNITS.get(quantity, "")
            paths.append(parity_plot(ref, pred, folder / f"parity_{res.head}_{quantity}.png",
                                     title=f"{res.head}: {quantity}", quantity=quantity.replace("_", " "),
                                     unit=unit))
    return paths


def write_heatmaps(cross: Any, folder: Path) -> list[Path]:
    from mtbench.evaluation.plots import heatmap

    paths = []
    for metric in cross.values:
        rows, cols, mat = cross.matrix(metric)
        if mat.size:
            paths.append(heatmap(mat, rows, cols, folder / f"cross_head_{metric}.png",
                                 title=f"cross-head {metric}: head (row) on data (column)"))
    return paths


def log_to_mlflow(run_id: str, *, results: Sequence[Any], files: Sequence[Path], step: int,
                  tracking_uri: str | None, output_dir: str | Path) -> None:
    """Metrics ``test/<head>/<metric>`` and the files under the run's ``test/`` artifacts."""
    import time

    from mtbench.errors import SpecError
    from mtbench.tracking import names
    from mtbench.tracking.store import Store, StoreError, resolve_tracking_uri

    store = Store(resolve_tracking_uri(tracking_uri, output_dir), output_dir)
    try:
        if not store.run_exists(run_id):
            raise SpecError("--mlflow-run", f"no MLflow run {run_id!r} in {store.uri}")
        now = int(time.time() * 1000)
        points = [(names.metric_on_test(r.head, k), float(v), step, now) for r in results
                  for k, v in r.metrics.items() if math.isfinite(v)]
        store.log_metrics(run_id, points)
        for f in files:
            sub = "test/plots" if f.suffix == ".png" else "test"
            store.log_artifact(run_id, f, sub)
    except StoreError as exc:
        from mtbench.errors import MtbenchError

        raise MtbenchError(f"MLflow logging failed: {exc}") from None


# ------------------------------------------------------------------------------------------------ main
def test_data(opts: TestOptions, heads: Sequence[str], spec: Mapping[str, Any] | None,
              bases: Sequence[Path]) -> dict[str, list[str]]:
    """``{head: systems}``: the systems given (-s/-f) for every head, else each head's data in a spec."""
    from mtbench.errors import DataError, SpecError
    from mtbench.evaluation.metrics import system_paths
    from mtbench.spec.io import load_spec

    if opts.system or opts.datafile:
        if opts.datafile:
            if not Path(opts.datafile).is_file():
                raise DataError(opts.datafile, "datafile not found")
            given = [ln.strip() for ln in Path(opts.datafile).read_text().splitlines() if ln.strip()]
        else:
            given = list(opts.system)
        systems = system_paths(given, key="--system")
        return {h: systems for h in heads}
    if opts.train_data or opts.valid_data:
        src_spec, base = load_spec(opts.train_data or opts.valid_data)
        data = spec_data(src_spec, [base], "training" if opts.train_data else "validation")
    elif spec:
        data = spec_data(spec, bases, "validation")
    else:
        raise SpecError("--system", f"{opts.model} carries no training spec: name the test data with -s")
    per_head = {}
    for h in heads:
        if h in data or len(data) == 1:
            per_head[h] = data[h] if h in data else next(iter(data.values()))
        else:
            log.warning("head %s has no data in the spec; not tested", h)
    return per_head


def mlflow_run_id(opts: TestOptions, run_dir: Path | None) -> str | None:
    """The run to log to: as given, or (``--mlflow-run`` without an id) the run dir's ``summary.json``."""
    from mtbench.errors import SpecError
    from mtbench.rundir import RunDir

    if not opts.mlflow_run or opts.mlflow_run != "auto":
        return opts.mlflow_run
    summary = RunDir(run_dir).read_summary() if run_dir else None
    run_id = summary.run_id if summary is not None else None
    if not run_id:
        raise SpecError("--mlflow-run", f"no MLflow run id in the summary.json of {opts.model}; give the run id")
    return run_id


def run_test(opts: TestOptions) -> TestRun:
    """Evaluate, write and log (prints nothing); the tables come back in :attr:`TestRun.renderables`."""
    from mtbench.errors import DataError, SpecError
    from mtbench.inference.predictor import as_model, check_head
    from mtbench.evaluation.metrics import SystemLoader, cross_head, evaluate
    from mtbench.export.load import load_model
    from mtbench.spec.io import load_spec

    loaded = load_model(opts.model, head=opts.head)
    model = as_model(loaded)
    heads = [check_head(model, opts.head)] if opts.head else list(model.heads)
    run_dir = run_dir_of(opts.model)
    spec, bases = loaded.spec, base_dirs_of(run_dir)
    if run_dir is not None:
        spec, _ = load_spec(run_dir / "input.json")
    if opts.cross_head and not spec:
        raise SpecError("--cross-head", f"{opts.model} carries no training spec, so there are no tasks' "
                                        "validation data to cross-evaluate")
    run_id = mlflow_run_id(opts, run_dir)
    per_head = test_data(opts, heads, spec, bases)

    nframes = opts.numb_test or None
    seed = (opts.rand_seed if opts.rand_seed is not None else 0) if opts.shuffle_test else None
    loader = SystemLoader(model.type_map)
    show: list[Any] = []
    results, skipped = [], {}
    for h in (h for h in heads if h in per_head):
        res = evaluate(model, h, per_head[h], nframes, atomic=opts.atomic, shuffle_seed=seed, loader=loader)
        if not res.metrics:
            skipped[h] = f"the data have no {res.kind} labels"
            show.append(f"{h} ({res.kind}): not tested, the data have no {res.kind} labels")
            continue
        results.append(res)
        show.append(head_table(res))
        if opts.verbose:
            show.append(system_table(res))
        for s in res.systems:
            for note in s.notes:
                show.append(f"  note: {s.path}: {note}")
    if not results and not opts.cross_head:
        raise DataError(", ".join(dict.fromkeys(p for v in per_head.values() for p in v)) or opts.model,
                        "no head could be tested: the data have none of the heads' labels")

    cross = None
    if opts.cross_head:
        own_data = not (opts.system or opts.datafile or opts.train_data or opts.valid_data or opts.shuffle_test)
        known = {(r.head, r.head): r for r in results} if own_data else {}  # not evaluated twice
        cross = cross_head(model, spec_data(spec, bases, "validation"), data_kinds=spec_kinds(spec), heads=heads,
                           nframes=nframes, known=known)
        show.extend(cross_tables(cross))

    report: dict[str, Any] = {
        "model": str(opts.model), "source": loaded.source, "type_map": model.type_map, "numb_test": opts.numb_test,
        "heads": {r.head: r.to_dict() for r in results}, **({"skipped": skipped} if skipped else {}),
        **({"cross_head": cross.to_dict()} if cross is not None else {})}
    with tempfile.TemporaryDirectory(prefix="mtbench-test-") as tmp:
        json_path = Path(opts.json) if opts.json else (Path(tmp) / "test.json" if run_id else None)
        plots_dir = None if opts.no_plots else (Path(opts.plots) if opts.plots else
                                                json_path.parent if json_path else None)
        files = write_outputs(opts, results, cross, report, render_text(show), json_path, plots_dir)
        if run_id:
            log_to_mlflow(run_id, results=results, files=files, step=int(loaded.meta.get("step", 0) or 0),
                          tracking_uri=opts.tracking_uri, output_dir=opts.output_dir)
            report["mlflow_run"] = run_id
        report["files"] = [str(f) for f in files if not str(f).startswith(tmp)]
    return TestRun(report, results, cross, show)


def render_text(renderables: Sequence[Any], width: int = TABLE_WIDTH) -> str:
    """The tables as plain text (what ``<json>_table.txt`` holds): as printed to a pipe."""
    from rich.console import Console

    console = Console(record=True, file=io.StringIO(), width=width)
    for r in renderables:
        console.print(r)
    return console.export_text()


def write_outputs(opts: TestOptions, results: Sequence[Any], cross: Any, report: dict[str, Any],
                  table_text: str, json_path: Path | None, plots_dir: Path | None) -> list[Path]:
    """Detail files, parity plots, cross-head CSV and heatmaps, the JSON report and the printed table."""
    from mtbench.evaluation.metrics import write_detail_files

    files: list[Path] = []
    if opts.detail_file:
        for res in results:
            # one head: dp test's names; several: DETAIL.<head>.e.out ... (dp test replaces a suffix of DETAIL,
            # so the head goes in before a placeholder suffix)
            prefix = Path(opts.detail_file)
            if len(results) > 1:
                prefix = Path(f"{prefix.with_suffix('')}.{res.head}.out")
            files += write_detail_files(res, prefix, atomic=opts.atomic)
    if plots_dir is not None:
        files += write_parity_plots(results, plots_dir)
        if cross is not None:
            files += write_heatmaps(cross, plots_dir)
    folder = plots_dir or (json_path.parent if json_path else None)
    if cross is not None and folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        files.append(cross.to_csv(folder / "cross_head.csv"))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        table_txt = json_path.with_name(json_path.stem + "_table.txt")
        table_txt.write_text(table_text, encoding="utf-8")
        files += [json_path, table_txt]
    return files


