"""The commands as plain Python functions, for notebooks and scripts: each takes what its command line takes,
returns a result object and prints nothing (the ``mtbench <cmd>`` commands in :mod:`mtbench.cli` parse, call
these and print). User mistakes raise :class:`mtbench.errors.MtbenchError` with a one-line message.

    from mtbench import api
    run = api.train("examples/ener_dipole/input.json", tracking="none")
    api.freeze(run.run_dir, "frozen/")
    report = api.test("frozen/", system=["builtin:water_tip3p/val"], head="water_ener").report
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CompareResult", "TrainResult", "compare", "freeze", "neighbor_stat", "replay", "test", "train"]


@dataclass
class TrainResult:
    """A finished training: the trainer's summary (``summary.json`` plus where it was tracked) and its run folder."""

    summary: dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return Path(self.summary["run_dir"])

    @property
    def objective(self) -> float:
        return float(self.summary["objective"])


def train(spec: str | Path | Mapping[str, Any], *, run_dir: str | Path | None = None, output_dir: str | Path = "outputs",
          restart: str | Path | None = None, init_frz_model: str | Path | None = None,
          tracking: str | Mapping[str, Any] = "mlflow", experiment: str = "mtbench", run_name: str | None = None,
          tracking_uri: str | None = None, tags: Mapping[str, str] | None = None, progress: bool = False,
          base_dir: str | Path | None = None) -> TrainResult:
    """Train ``spec`` (a DeePMD-style input.json/yaml path, or the spec itself: relative data paths then resolve
    against ``base_dir``, default the current folder). ``restart``: a checkpoint, checkpoint folder or run folder
    (its run folder is continued: same folder, same MLflow run, unless ``run_dir`` says another), or ``"auto"``
    (resume ``run_dir``'s latest checkpoint if there is one, else start fresh). ``tracking``: ``"mlflow"``, ``"none"`` or a tracking dict."""
    from mtbench.runtime import configure_runtime
    from mtbench.spec.io import load_spec
    from mtbench.rundir import new_run_dir
    from mtbench.train.run import run_training

    if isinstance(spec, (str, Path)):
        spec, base = load_spec(spec)
    else:
        spec, base = dict(spec), Path(base_dir) if base_dir is not None else Path.cwd()
    configure_runtime(warm_up=(spec.get("training") or {}).get("distributed") != "multi_worker")
    spec = {**spec, "training": dict(spec.get("training") or {})}
    from mtbench.train.resume import continuation_dir, is_auto

    if restart:
        spec["training"]["restart"] = "auto" if is_auto(restart) else str(Path(restart).resolve())
    if run_dir is None:  # a restart of a run folder continues in it (and in its MLflow run)
        run_dir = continuation_dir(spec["training"].get("restart"), base)
    if init_frz_model:
        spec["training"]["init_frz_model"] = str(Path(init_frz_model).resolve())
    track = dict(tracking) if isinstance(tracking, Mapping) else {
        "backend": tracking, "experiment": experiment, "run_name": run_name, "tracking_uri": tracking_uri}
    summary = run_training(spec, run_dir=Path(run_dir) if run_dir else new_run_dir(output_dir), base_dir=base,
                           tracking=track, output_dir=output_dir, tags=dict(tags or {}), progress=progress)
    return TrainResult(summary)


def freeze(source: str | Path, out: str | Path, *, head: str | None = None, united: bool = False,
           fmt: str | None = None, log_to_mlflow: bool = True) -> Any:
    """Freeze ``source`` (any model form) to ``out``; a :class:`mtbench.export.freeze.FreezeResult`."""
    from mtbench.export.freeze import freeze as _freeze
    from mtbench.runtime import configure_runtime

    configure_runtime()
    return _freeze(source, out, head=head, united=united, fmt=fmt, log_to_mlflow=log_to_mlflow)


def test(model: str | Path, **options: Any) -> Any:
    """``dp test`` per head of ``model`` (any model form); ``options`` are
    :class:`mtbench.evaluation.dp_test.TestOptions` (``system``, ``head``, ``numb_test``, ``json``, ``cross_head``,
    ...). Returns a :class:`mtbench.evaluation.dp_test.TestRun` (``.report`` is the JSON report)."""
    from mtbench.evaluation.dp_test import TestOptions, run_test
    from mtbench.runtime import configure_runtime

    configure_runtime()
    if isinstance(options.get("system"), str):
        options["system"] = [options["system"]]
    return run_test(TestOptions(model=str(model), **options))


test.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported into a test module


@dataclass
class CompareResult:
    """A sweep's comparison: the sweep read, the report files written, and whether they reached its parent run."""

    sweep: Any  # mtbench.sweeps.model.Sweep
    out: Path
    files: list[Path]
    logged: bool

    def markdown(self) -> str:
        from mtbench.sweeps.tables import markdown

        return markdown(self.sweep)


def compare(target: str, *, kind: str | None = None, out: str | Path | None = None, tracking_uri: str | None = None,
            output_dir: str | Path = "outputs", log: bool = True) -> CompareResult:
    """Compare the jobs of a sweep (a sweep folder, a run id or an experiment name; ``kind`` names the form:
    ``"experiment"`` or ``"run"``) and write the report to ``out`` (default ``<sweep dir>/compare/``)."""
    from mtbench.sweeps.report import default_out_dir, log_report, write_report
    from mtbench.sweeps.target import load_target

    from mtbench.rundir import RunDir
    from mtbench.tracking.stale import mark_stale

    sweep = load_target(target, tracking_uri=tracking_uri, output_dir=str(output_dir), kind=kind)
    for job in sweep.jobs:  # a job whose process is gone is not left RUNNING in MLflow
        if job.status == "RUNNING" and job.run_dir and mark_stale(RunDir(job.run_dir), "compare"):
            job.status = "KILLED"
    folder = Path(out) if out is not None else default_out_dir(sweep)
    files = write_report(sweep, folder)
    logged = bool(log and log_report(sweep, files))
    return CompareResult(sweep, folder, list(files), logged)


def neighbor_stat(system: str | Sequence[str], rcut: float, type_map: Sequence[str] | None = None, *,
                  mixed: bool = False, ratio: float = 1.1, json: str | Path | None = None) -> Any:
    """Neighbour statistics and the ``sel`` to use; a :class:`mtbench.evaluation.neighbor_stat.NeighborStat`
    (also written as JSON to ``json`` when given)."""
    import json as _json

    from mtbench.evaluation.neighbor_stat import neighbor_stat as _stat

    stat = _stat(system, rcut, type_map, mixed_types=mixed, ratio=ratio)
    if json:
        Path(json).parent.mkdir(parents=True, exist_ok=True)
        Path(json).write_text(_json.dumps(stat.to_dict(), indent=2) + "\n")
    return stat


def replay(run_dir: str | Path, tracking_uri: str | None = None) -> list[Any]:
    """Send a run's tracking backlog; one :class:`mtbench.tracking.resend.ReplayedRun` per tracked run sent.
    A store that does not answer raises :class:`mtbench.tracking.store.StoreError` (the backlog is kept)."""
    from mtbench.tracking.resend import replay_backlog

    return replay_backlog(run_dir, tracking_uri)
