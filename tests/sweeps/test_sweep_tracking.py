"""The sweep callback's pieces without training: the plan, job env injection, the parent's summary
from child runs in a real (SQLite) MLflow store, and the report read back from MLflow."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from mtbench.sweeps.callback import SweepTracking
from mtbench.sweeps.plan import (
    ENV_PARENT,
    ENV_SWEEP_KEYS,
    ENV_TRACKING_URI,
    inject_job_env,
    plan_sweep,
    quote_override_value,
    swept_values,
)
from tests.sweeps._fake import KEY, dipole_err, ener_err, make_sweep_dir


def multirun_config(overrides: list[str], job: list[str] | None = None, env: dict | None = None):
    """The master config of ``-m overrides`` (and, with ``job``, that job's config as every
    launcher re-composes it, after ``env`` was injected)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from mtbench.spec.compose import conf_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        cfg = hydra.compose_config("config", overrides, run_mode=RunMode.MULTIRUN,
                                   with_log_configuration=False)
        if job is None:
            return cfg
        inject_job_env(cfg, env or {})
        return cfg, hydra.config_loader.load_sweep_config(cfg, job)


def test_plan_reads_sweeper_params_and_command_line() -> None:
    cfg = multirun_config(["sweep=fitting_weight", "descriptor=se_e2_a,se_atten", "debug=fast"])
    plan = plan_sweep(cfg)
    assert plan.keys == [KEY, "descriptor"]
    assert plan.params == {KEY: "1,10,40", "descriptor": "se_e2_a,se_atten"}
    assert plan.fixed == ["sweep=fitting_weight", "debug=fast"]
    assert len(plan.jobs) == 6  # the basic sweeper's product, in its order
    assert plan.grid_text().splitlines()[1] == f"#1: {KEY}=1 descriptor=se_atten"


def preset_job_specs(preset: str) -> list[tuple[list[str], dict]]:
    """Every job of a sweep preset as the launcher composes it, turned into a validated spec."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import open_dict

    from mtbench.train.run import prepare_spec
    from mtbench.spec.compose import cfg_to_spec, conf_dir

    out = []
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        cfg = hydra.compose_config("config", [f"sweep={preset}"], run_mode=RunMode.MULTIRUN,
                                   with_log_configuration=False)
        for job in plan_sweep(cfg).jobs:
            job_cfg = hydra.config_loader.load_sweep_config(cfg, job)
            with open_dict(job_cfg):
                del job_cfg["hydra"]
            out.append((job, prepare_spec(cfg_to_spec(job_cfg), Path("."))))
    return out


def test_sharing_preset_goes_from_no_sharing_to_every_hidden_layer() -> None:
    from mtbench.spec.tasks import describe_sharing

    shared = [describe_sharing(spec)["shared_layers"] for _, spec in preset_job_specs("sharing")]
    pair = "water_tip3p+water_tip4p"
    assert shared == ["none", f"l0:{pair}", f"l0:{pair};l2:{pair}", f"l0:{pair};l1:{pair};l2:{pair}"]


@pytest.mark.parametrize("preset,key,values", [
    ("fitting_weight", KEY, [1, 10, 40]),
    ("descriptor", "descriptor", ["se_e2_a", "se_atten", "se_atten_v2"])])
def test_presets_compose_valid_jobs(preset: str, key: str, values: list) -> None:
    jobs = preset_job_specs(preset)
    got = [spec["training"]["fitting_weight"]["water_dipole"] if key == KEY
           else spec["model"]["descriptor"]["type"] for _, spec in jobs]
    assert got == values


def test_swept_values_of_one_job_keep_package_keys() -> None:
    job = ["debug=fast", f"{KEY}=5", "data@training.data_dict.water_ener=water_tip4p"]
    keys = [KEY, "data@training.data_dict.water_ener", "descriptor"]
    assert swept_values(job, keys) == {KEY: "5", "data@training.data_dict.water_ener": "water_tip4p"}


@pytest.mark.parametrize("uri", ["sqlite:////tmp/a b/it's ${x}.db", "postgresql://u:p$w\\d@h/db",
                                 "file:///c/dir\\"])
def test_injected_env_reaches_every_job_config_literally(uri: str) -> None:
    env = {ENV_PARENT: "abc123", ENV_TRACKING_URI: uri, ENV_SWEEP_KEYS: f"{KEY},descriptor"}
    master, job = multirun_config([f"{KEY}=1,5"], job=[f"{KEY}=5"], env=env)
    assert dict(job.hydra.job.env_set) == env
    assert dict(master.hydra.job.env_set) == env
    assert list(job.hydra.overrides.task) == [f"{KEY}=5"]  # the job's own overrides stay clean
    assert quote_override_value("a'b") == "'a\\'b'"


def test_callback_does_nothing_without_tracking() -> None:
    cfg = multirun_config([f"{KEY}=1,5", "tracking=none"])
    before = list(cfg.hydra.overrides.hydra)
    cb = SweepTracking()
    cb.on_multirun_start(cfg)
    assert cb.parent_run_id is None and list(cfg.hydra.overrides.hydra) == before
    cb.on_multirun_end(cfg)  # nothing to close, nothing raised


# --------------------------------------------------------------------- against an MLflow store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    from mtbench.tracking.store import Store, default_tracking_uri

    out = tmp_path_factory.mktemp("store")
    s = Store(default_tracking_uri(out), out)
    s.connect()
    return s


def fake_sweep_runs(store, root: Path) -> tuple[str, Path]:
    """A parent and the children a 3-job sweep leaves in MLflow (job 2 failed)."""
    import time

    from mtbench.sweeps.plan import JOB_TAG, KEYS_TAG, RUN_TYPE_TAG, SWEEP_DIR_TAG
    from mtbench.tracking.mlflow_tracker import start_parent_run

    sweep_dir = make_sweep_dir(root)
    parent = start_parent_run("sweeps-test", "sweep-x", {KEYS_TAG: KEY, SWEEP_DIR_TAG: str(sweep_dir), RUN_TYPE_TAG: "sweep"},
                              tracking_uri=store.uri, output_dir=store.output_dir)
    eid = store.experiment_of(parent)
    ts = int(time.time() * 1000)
    for num, w in enumerate((1, 5, 20)):
        tags = {"mlflow.parentRunId": parent, JOB_TAG: str(num), f"sweep.{KEY}": str(w),
                "mtbench.tasks": "water_ener,water_dipole", "mtbench.run_dir": str(sweep_dir / str(num))}
        run = store.create_run(eid, f"job{num}", tags)
        store.log_params(run, {"training.fitting_weight.water_ener": "10",
                               "training.fitting_weight.water_dipole": str(w)})
        pts = []
        for i, step in enumerate((0, 5, 10)):
            pts += [("val/water_ener/rmse_f", ener_err(w) * (3 - i), step, ts),
                    ("val/water_dipole/rmse", dipole_err(w) * (3 - i), step, ts),
                    ("grad/cos/water_dipole__water_ener", -0.2 + 0.1 * i, step, ts)]
            if step:
                pts.append(("time/step_s", 0.5, step, ts))
        p = w / (10 + w)
        pts += [("sampling/water_dipole/fraction", p, 10, ts), ("sampling/water_ener/fraction", 1 - p, 10, ts),
                ("sampling/water_dipole/count", 10 * p, 10, ts), ("sampling/water_ener/count", 10 * (1 - p), 10, ts)]
        store.log_metrics(run, pts)
        store.set_terminated(run, "FAILED" if num == 2 else "FINISHED")
    return parent, sweep_dir


def test_finalize_summarizes_parent_and_logs_report(store, tmp_path: Path) -> None:
    from mtbench.sweeps.report import finalize_sweep

    parent, sweep_dir = fake_sweep_runs(store, tmp_path / "sweep")
    status = finalize_sweep(parent, tracking_uri=store.uri, output_dir=store.output_dir,
                            sweep_dir=sweep_dir, planned_jobs=3, aborted=True, report=True)
    assert status == "FAILED"
    run = store.client.get_run(parent)
    assert run.info.status == "FAILED"
    tags, metrics = run.data.tags, run.data.metrics
    assert (tags["sweep.jobs"], tags["sweep.succeeded"], tags["sweep.failed"]) == ("3", "2", "1")
    assert metrics["sweep/succeeded"] == 2 and metrics["sweep/failed"] == 1
    assert tags["sweep.best.water_ener"].startswith("job #0 fitting_weight.water_dipole=1: rmse_f=")
    assert metrics["sweep/best/water_dipole/rmse"] == pytest.approx(dipole_err(5))
    per_job = store.client.get_metric_history(parent, "sweep/by_job/water_ener/rmse_f")
    assert sorted(p.step for p in per_job) == [0, 1]  # finished jobs only, step = job number
    assert "| job | status |" in tags["mlflow.note.content"]
    assert "`learning_curves.png`" in tags["mlflow.note.content"] and "](" not in tags["mlflow.note.content"]
    arts = {a.path for a in store.client.list_artifacts(parent, "compare")}
    assert {"compare/summary.csv", "compare/summary.md", "compare/grad_cosine.png"} <= arts
    assert (sweep_dir / "compare" / "learning_curves.png").is_file()


def test_report_from_mlflow_alone(store, tmp_path: Path) -> None:
    from mtbench.sweeps.tables import table
    from mtbench.sweeps.target import load_target

    parent, _ = fake_sweep_runs(store, tmp_path / "sweep")
    for target in (parent, "sweeps-test"):  # a parent run id, or the experiment's latest sweep
        sweep = load_target(target, tracking_uri=store.uri, output_dir=store.output_dir)
        assert sweep.parent_run_id == parent and sweep.keys == [KEY]
        assert [j.label for j in sweep.jobs] == ["0", "1", "2"]
        _, rows = table(sweep)
        assert rows[1]["water_dipole/val_rmse/best"] == pytest.approx(dipole_err(5))
        assert rows[0]["water_dipole/requested_fraction"] == pytest.approx(1 / 11)  # from params
        assert rows[0]["steps"] == 10 and rows[0]["train_s"] == pytest.approx(5.0)
        assert rows[0]["grad_cos/water_dipole__water_ener/mean"] == pytest.approx(-0.05)
        assert rows[2]["status"] == "FAILED"


def test_job_end_tags_the_child_and_records_jobs_that_never_made_a_run(store, tmp_path: Path) -> None:
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from mtbench.tracking.mlflow_tracker import start_parent_run

    parent = start_parent_run("sweeps-test", "sweep-y", {}, tracking_uri=store.uri,
                              output_dir=store.output_dir)
    eid = store.experiment_of(parent)
    ok_dir = tmp_path / "0"
    child = store.create_run(eid, None, {"mlflow.parentRunId": parent, "mtbench.run_dir": str(ok_dir)})

    def job(num: int, run_dir: Path, status: JobStatus, value) -> tuple:
        cfg = OmegaConf.create({
            "tracking": {"backend": "mlflow"}, "paths": {"output_dir": str(tmp_path)},
            "hydra": {"runtime": {"output_dir": str(run_dir)}, "job": {"num": num, "env_set": {
                ENV_PARENT: parent, ENV_TRACKING_URI: store.uri, ENV_SWEEP_KEYS: KEY}}}})
        ret = JobReturn(overrides=["debug=fast", f"{KEY}={num + 1}"], status=status)
        ret.return_value = value
        return cfg, ret

    cb = SweepTracking()
    cb.on_job_end(*job(0, ok_dir, JobStatus.COMPLETED, 0.5))
    tags = store.client.get_run(child).data.tags
    assert tags[f"sweep.{KEY}"] == "1" and tags["sweep.job"] == "0"
    cb.on_job_end(*job(1, tmp_path / "1", JobStatus.FAILED, ValueError("bad sel")))
    runs = store.client.search_runs([eid], f"tags.mlflow.parentRunId = '{parent}'")
    failed = [r for r in runs if r.info.run_id != child]
    assert len(failed) == 1 and failed[0].info.status == "FAILED"
    assert failed[0].data.tags["mtbench.error"] == "ValueError: bad sel"
    assert failed[0].data.tags[f"sweep.{KEY}"] == "2"


def test_compare_files_add_mlflow_diagnostics(store, tmp_path: Path) -> None:
    """A sweep dir whose jobs were tracked: the report gains the gradient curves from MLflow."""
    import json

    from mtbench.sweeps.folders import load_sweep_dir

    parent, sweep_dir = fake_sweep_runs(store, tmp_path / "sweep")
    runs = {r.data.tags["sweep.job"]: r.info.run_id for r in store.client.search_runs(
        [store.experiment_of(parent)], f"tags.mlflow.parentRunId = '{parent}'")}
    for num in ("0", "1"):
        s = json.loads((sweep_dir / num / "summary.json").read_text())
        s["run_id"] = runs[num]
        (sweep_dir / num / "summary.json").write_text(json.dumps(s))
        (sweep_dir / num / ".hydra" / "hydra.yaml").write_text(
            f"hydra:\n  job:\n    env_set:\n      {ENV_PARENT}: {parent}\n      {ENV_TRACKING_URI}: '{store.uri}'\n")
    sweep = load_sweep_dir(sweep_dir)
    assert sweep.parent_run_id == parent
    assert sweep.jobs[0].grad_cos["water_dipole__water_ener"].values == pytest.approx([-0.2, -0.1, 0.0])
    assert not sweep.jobs[2].grad_cos and math.isnan(sweep.jobs[2].steps_per_s)


def test_failed_summary_never_raises(store) -> None:
    cb = SweepTracking()
    cb.parent_run_id, cb._pid, cb._uri = "0" * 32, os.getpid(), store.uri
    cb._close(aborted=False)  # the store has no such run: a warning, no exception
    assert cb._closed


def test_failures_that_cannot_travel_back_are_made_picklable() -> None:
    import pickle

    from hydra.core.utils import JobReturn, JobStatus

    from mtbench.errors import SpecError
    from mtbench.sweeps.callback import keep_failure_picklable

    def failed(exc: Exception) -> JobReturn:
        ret = JobReturn(status=JobStatus.FAILED)
        ret.return_value = exc
        return ret

    plain = failed(ValueError("x"))
    keep_failure_picklable(plain)
    assert isinstance(plain._return_value, ValueError)
    # our own errors travel back as themselves (they define __reduce__) ...
    ours = failed(SpecError("training.fitting_weight.a", "must be >= 0, got -1"))
    keep_failure_picklable(ours)
    back = pickle.loads(pickle.dumps(ours))._return_value
    assert isinstance(back, SpecError) and back.key == "training.fitting_weight.a"

    # ... one from a library whose __init__ cannot be rebuilt from its args becomes a RuntimeError
    class Unrebuildable(Exception):
        def __init__(self, key: str, message: str) -> None:
            super().__init__(f"{key}: {message}")

    custom = failed(Unrebuildable("training.fitting_weight.a", "must be >= 0, got -1"))
    with pytest.raises(Exception):
        pickle.loads(pickle.dumps(custom._return_value))
    keep_failure_picklable(custom)
    back = pickle.loads(pickle.dumps(custom))._return_value
    assert isinstance(back, RuntimeError)
    assert str(back) == "Unrebuildable: training.fitting_weight.a: must be >= 0, got -1"


# ------------------------------------------------------------- which form a compare target is


@pytest.fixture()
def compare_log(caplog: pytest.LogCaptureFixture):
    """What ``mtbench.compare`` logs (its logger may not propagate once mtbench's logging is set up)."""
    import logging

    logger = logging.getLogger("mtbench.compare")
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def test_a_bare_name_is_a_folder_only_when_it_looks_like_a_sweep(store, tmp_path: Path, monkeypatch,
                                                                  compare_log) -> None:
    """``compare mtbench`` in a checkout: the ./mtbench package is not a sweep, the experiment is."""
    from mtbench.cli.compare import main
    from mtbench.sweeps.target import load_target

    parent, _ = fake_sweep_runs(store, tmp_path / "elsewhere")
    cwd = tmp_path / "checkout"
    (cwd / "sweeps-test" / "sub").mkdir(parents=True)  # a package folder named like the experiment
    (cwd / "sweeps-test" / "__init__.py").write_text("")
    monkeypatch.chdir(cwd)
    common = ["--tracking-uri", store.uri, "--no-log"]
    assert main(["sweeps-test", "-o", str(tmp_path / "a"), *common]) == 0
    assert f"Source: `{store.uri}` · parent run `{parent}`" in (tmp_path / "a" / "summary.md").read_text()
    assert f"sweeps-test: MLflow experiment in {store.uri}" in compare_log.text  # what it understood
    assert not (cwd / "sweeps-test" / "compare").exists()

    cwd = tmp_path / "with-sweep"  # a real sweep folder of that name wins over the store
    make_sweep_dir(cwd / "sweeps-test")
    monkeypatch.chdir(cwd)
    sweep = load_target("sweeps-test", tracking_uri=store.uri, output_dir=store.output_dir)
    assert sweep.sweep_dir == (cwd / "sweeps-test").resolve() and sweep.parent_run_id is None
    assert f"sweeps-test: sweep folder {cwd / 'sweeps-test'}" in compare_log.text

    # the explicit forms read one source only, whatever lies in the current folder
    assert main(["--experiment", "sweeps-test", "-o", str(tmp_path / "b"), *common]) == 0
    assert f"parent run `{parent}`" in (tmp_path / "b" / "summary.md").read_text()
    child = store.children(parent)[0].info.run_id
    for run_id in (parent, child):  # a job's run id names its sweep too
        sweep = load_target(run_id, tracking_uri=store.uri, output_dir=store.output_dir, kind="run")
        assert sweep.parent_run_id == parent and [j.label for j in sweep.jobs] == ["0", "1", "2"]


def test_a_name_that_is_nothing_says_what_was_tried(store, tmp_path: Path, monkeypatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    from mtbench.cli.compare import main

    (tmp_path / "mtbench").mkdir()
    (tmp_path / "mtbench" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path)
    common = ["--tracking-uri", store.uri, "--no-log"]
    assert main(["mtbench", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtbench.compare: error: mtbench: ")
    assert "./mtbench is a folder but not a sweep" in err[0]
    assert f"no MLflow experiment of that name in {store.uri}" in err[0]
    assert "--experiment NAME" in err[0]

    assert main(["nothing-here", *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such directory; no MLflow experiment of that name" in err[0]

    assert main(["0123456789abcdef0123456789abcdef", *common]) == 2  # a run id's shape, no run
    assert "no run with that id, no MLflow experiment" in capsys.readouterr().err

    assert main(["./mtbench", *common]) == 2  # written as a path: the folder or nothing
    assert "no job directories" in capsys.readouterr().err

    assert main(["--experiment", "mtbench", *common]) == 2
    assert "mtbench: no such MLflow experiment in" in capsys.readouterr().err
    assert main(["--parent", "0123456789abcdef0123456789abcdef", *common]) == 2
    assert "no such MLflow run in" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exc:  # both forms at once: argparse's usage error
        main(["mtbench", "--experiment", "mtbench"])
    assert exc.value.code == 2 and "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2 and "a sweep is needed" in capsys.readouterr().err


def test_killed_jobs_are_counted_apart_from_failed_ones() -> None:
    """A resumed search's cut-short trial (KILLED, then replaced) is not a failed job of the sweep."""
    from mtbench.sweeps.model import DONE, Job, Sweep
    from mtbench.sweeps.report import summarize

    jobs = [Job(label=str(i), status=s) for i, s in enumerate((DONE, "KILLED", DONE, "FAILED", DONE))]
    tags, metrics = summarize(Sweep(jobs=jobs, keys=[], source="test"), planned_jobs=3)
    assert (tags["sweep.jobs"], tags["sweep.succeeded"], tags["sweep.failed"], tags["sweep.killed"]) == \
        ("5", "3", "1", "1")
    assert metrics["sweep/failed"] == [(1, 0)]
    tags, _ = summarize(Sweep(jobs=jobs[:3], keys=[], source="test"), planned_jobs=3)
    assert (tags["sweep.failed"], tags["sweep.killed"]) == ("0", "1")
