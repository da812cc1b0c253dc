"""``python -m mtbench.test``: test a model's heads on labelled data, like DeePMD-kit's ``dp test``.

    python -m mtbench.test -m outputs/runs/DATE/TIME                   # every head on its validation data
    python -m mtbench.test -m RUN_DIR -s builtin:water_tip4p/val --head water_tip3p -d detail
    python -m mtbench.test -m model.dp -s data/ -d detail              # a DeePMD-kit .dp file, dp test's files
    python -m mtbench.test -m RUN_DIR --cross-head --json out/test.json  # + heads on each other's data

Per head it prints RMSE and MAE of every quantity its labels give (DeePMD's weighting across systems), and writes
the same as JSON (``--json``), ``dp test -d`` detail files (``-d``), parity plots (``--plots``, default: next to the
JSON), a cross-head matrix (``--cross-head``: table, CSV, heatmaps) and logs it all to an MLflow run
(``--mlflow-run``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("mtbench")

UNITS = {"energy_per_atom": "eV/atom", "force": "eV/Å", "virial_per_atom": "eV/atom", "atom_energy": "eV"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m mtbench.test",
        description="Test the heads of a trained model on labelled data (DeePMD-kit's `dp test`, per head).",
        epilog="Examples:\n  python -m mtbench.test -m RUN_DIR\n"
               "  python -m mtbench.test -m model.dp -s data/ -n 10 -d detail\n"
               "  python -m mtbench.test -m RUN_DIR --cross-head --json out/test.json --mlflow-run",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", required=True,
                   help="run dir, checkpoint, frozen mtbench model (file or SavedModel dir) or DeePMD-kit .dp file")
    src = p.add_mutually_exclusive_group()
    src.add_argument("-s", "--system", nargs="+", metavar="SYSTEM",
                     help="data systems, folders holding systems, or builtin:NAME (default: each head's "
                          "validation data from the model's spec)")
    src.add_argument("-f", "--datafile", help="a file listing one system path per line")
    src.add_argument("--train-data", metavar="INPUT", help="test each head on its training data in this input.json")
    src.add_argument("--valid-data", metavar="INPUT",
                     help="test each head on its validation data in this input.json")
    p.add_argument("--head", "--model-branch", dest="head", help="test only this head (default: every head)")
    p.add_argument("-n", "--numb-test", type=int, default=0, help="frames per system (0: all)")
    p.add_argument("-r", "--rand-seed", type=int, default=None, help="seed of --shuffle-test")
    p.add_argument("--shuffle-test", action="store_true", help="shuffle the frames before taking -n of them")
    p.add_argument("-d", "--detail-file", metavar="DETAIL",
                   help="write dp test's detail files DETAIL.e.out, .f.out, ... (DETAIL.<head>.* for several heads)")
    p.add_argument("-a", "--atomic", action="store_true",
                   help="tensor heads: per-atom detail files and metrics; energy heads: atom_ener errors")
    p.add_argument("--json", metavar="OUT", help="write the metrics (and cross-head matrix) as JSON")
    p.add_argument("--plots", metavar="DIR", help="parity plots folder (default: the folder of --json)")
    p.add_argument("--no-plots", action="store_true", help="no parity plots or heatmaps")
    p.add_argument("--cross-head", action="store_true",
                   help="evaluate every head on every task's validation data of its kind (matrix, CSV, heatmap)")
    p.add_argument("--mlflow-run", nargs="?", const="auto", metavar="RUN_ID",
                   help="log metrics, table, JSON and plots to this MLflow run (no id: the run dir's summary.json)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (MLFLOW_TRACKING_URI wins)")
    p.add_argument("--output-dir", default="outputs",
                   help="root of the default MLflow store outputs/mlflow.db (default: ./outputs)")
    p.add_argument("-v", "--verbose", action="store_true", help="also print per-system tables")
    return p.parse_args(argv)


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
def test_data(args: argparse.Namespace, heads: Sequence[str], spec: Mapping[str, Any] | None,
              bases: Sequence[Path]) -> dict[str, list[str]]:
    """``{head: systems}``: the systems given (-s/-f) for every head, else each head's data in a spec."""
    from mtbench.errors import DataError, SpecError
    from mtbench.evaluation.metrics import system_paths
    from mtbench.spec.io import load_spec

    if args.system or args.datafile:
        if args.datafile:
            if not Path(args.datafile).is_file():
                raise DataError(args.datafile, "datafile not found")
            given = [ln.strip() for ln in Path(args.datafile).read_text().splitlines() if ln.strip()]
        else:
            given = list(args.system)
        systems = system_paths(given, key="--system")
        return {h: systems for h in heads}
    if args.train_data or args.valid_data:
        src_spec, base = load_spec(args.train_data or args.valid_data)
        data = spec_data(src_spec, [base], "training" if args.train_data else "validation")
    elif spec:
        data = spec_data(spec, bases, "validation")
    else:
        raise SpecError("--system", f"{args.model} carries no training spec: name the test data with -s")
    per_head = {}
    for h in heads:
        if h in data or len(data) == 1:
            per_head[h] = data[h] if h in data else next(iter(data.values()))
        else:
            log.warning("head %s has no data in the spec; not tested", h)
    return per_head


def mlflow_run_id(args: argparse.Namespace, run_dir: Path | None) -> str | None:
    """The run to log to: as given, or (``--mlflow-run`` without an id) the run dir's ``summary.json``."""
    from mtbench.errors import SpecError
    from mtbench.rundir import RunDir

    if not args.mlflow_run or args.mlflow_run != "auto":
        return args.mlflow_run
    summary = RunDir(run_dir).read_summary() if run_dir else None
    run_id = summary.run_id if summary is not None else None
    if not run_id:
        raise SpecError("--mlflow-run", f"no MLflow run id in the summary.json of {args.model}; give the run id")
    return run_id


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate, print, write and log; returns the JSON report (plus the files written)."""
    from rich.console import Console

    from mtbench.errors import DataError, SpecError
    from mtbench.inference.predictor import HeadPredictor, as_model, check_head
    from mtbench.evaluation.metrics import SystemLoader, cross_head, evaluate
    from mtbench.export.load import load_model
    from mtbench.spec.io import load_spec

    loaded = load_model(args.model, head=args.head)
    model = as_model(loaded)
    heads = [check_head(model, args.head)] if args.head else list(model.heads)
    run_dir = run_dir_of(args.model)
    spec, bases = loaded.spec, base_dirs_of(run_dir)
    if run_dir is not None:
        spec, _ = load_spec(run_dir / "input.json")
    if args.cross_head and not spec:
        raise SpecError("--cross-head", f"{args.model} carries no training spec, so there are no tasks' "
                                        "validation data to cross-evaluate")
    run_id = mlflow_run_id(args, run_dir)
    per_head = test_data(args, heads, spec, bases)

    nframes = args.numb_test or None
    seed = (args.rand_seed if args.rand_seed is not None else 0) if args.shuffle_test else None
    loader = SystemLoader(model.type_map)
    console = Console(record=True)
    if not console.is_terminal:  # pipes and files: wide enough for system paths
        console = Console(record=True, width=max(console.width, 140))
    results, skipped = [], {}
    for h in (h for h in heads if h in per_head):
        res = evaluate(model, h, per_head[h], nframes, atomic=args.atomic, shuffle_seed=seed, loader=loader,
                       predictor=HeadPredictor(model, h, compiled=False))
        if not res.metrics:
            skipped[h] = f"the data have no {res.kind} labels"
            console.print(f"{h} ({res.kind}): not tested, the data have no {res.kind} labels")
            continue
        results.append(res)
        console.print(head_table(res))
        if args.verbose:
            console.print(system_table(res))
        for s in res.systems:
            for note in s.notes:
                console.print(f"  note: {s.path}: {note}")
    if not results and not args.cross_head:
        raise DataError(", ".join(dict.fromkeys(p for v in per_head.values() for p in v)) or args.model,
                        "no head could be tested: the data have none of the heads' labels")

    cross = None
    if args.cross_head:
        own_data = not (args.system or args.datafile or args.train_data or args.valid_data or args.shuffle_test)
        known = {(r.head, r.head): r for r in results} if own_data else {}  # not evaluated twice
        cross = cross_head(model, spec_data(spec, bases, "validation"), data_kinds=spec_kinds(spec), heads=heads,
                           nframes=nframes, known=known)
        for table in cross_tables(cross):
            console.print(table)

    report: dict[str, Any] = {
        "model": str(args.model), "source": loaded.source, "type_map": model.type_map, "numb_test": args.numb_test,
        "heads": {r.head: r.to_dict() for r in results}, **({"skipped": skipped} if skipped else {}),
        **({"cross_head": cross.to_dict()} if cross is not None else {})}
    with tempfile.TemporaryDirectory(prefix="mtbench-test-") as tmp:
        json_path = Path(args.json) if args.json else (Path(tmp) / "test.json" if run_id else None)
        plots_dir = None if args.no_plots else (Path(args.plots) if args.plots else
                                                json_path.parent if json_path else None)
        files = write_outputs(args, results, cross, report, console, json_path, plots_dir)
        if run_id:
            log_to_mlflow(run_id, results=results, files=files, step=int(loaded.meta.get("step", 0) or 0),
                          tracking_uri=args.tracking_uri, output_dir=args.output_dir)
            console.print(f"logged to MLflow run {run_id}")
            report["mlflow_run"] = run_id
        report["files"] = [str(f) for f in files if not str(f).startswith(tmp)]
    return report


def write_outputs(args: argparse.Namespace, results: Sequence[Any], cross: Any, report: dict[str, Any],
                  console: Any, json_path: Path | None, plots_dir: Path | None) -> list[Path]:
    """Detail files, parity plots, cross-head CSV and heatmaps, the JSON report and the printed table."""
    from mtbench.evaluation.metrics import write_detail_files

    files: list[Path] = []
    if args.detail_file:
        for res in results:
            # one head: dp test's names; several: DETAIL.<head>.e.out ... (dp test replaces a suffix of DETAIL,
            # so the head goes in before a placeholder suffix)
            prefix = Path(args.detail_file)
            if len(results) > 1:
                prefix = Path(f"{prefix.with_suffix('')}.{res.head}.out")
            files += write_detail_files(res, prefix, atomic=args.atomic)
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
        table_txt.write_text(console.export_text(), encoding="utf-8")
        files += [json_path, table_txt]
    return files


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from mtbench.errors import exit_on_user_error

    args = parse_args(argv)

    def go() -> dict[str, Any]:
        from mtbench.runtime import configure_logging, configure_runtime

        configure_runtime()
        configure_logging()
        return run(args)

    return exit_on_user_error(go, prog="mtbench.test")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
