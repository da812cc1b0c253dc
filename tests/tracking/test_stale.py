"""A run left RUNNING by a process that is gone (its lock names a dead pid) is marked KILLED, with the reason, when
its folder is frozen; a folder a live process holds is left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mtbench.rundir import RunDir
from mtbench.tracking.stale import STALE_TAG, mark_stale
from tests.conftest import tiny_spec_dict


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _running_run(uri: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    eid = client.create_experiment("stale")
    return client.create_run(eid).info.run_id


def test_freeze_marks_a_run_whose_process_is_gone(tmp_path: Path, tiny_data: Path) -> None:
    from mlflow import MlflowClient

    from mtbench import api
    from mtbench.train.run import run_training

    run_dir = tmp_path / "run"
    run_training(tiny_spec_dict(tiny_data, tasks=("water_ener",), steps=2), run_dir=run_dir,
                 tracking={"backend": "none"}, output_dir=tmp_path, progress=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = _running_run(uri)
    run = RunDir(run_dir)
    run.write_tracking_run(run_id, uri, None)
    run.lock_file.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": "now"}))
    assert not mark_stale(run, "freeze")  # a live holder (this process): not stale
    dead = _dead_pid()
    run.lock_file.write_text(json.dumps({"pid": dead, "host": os.uname().nodename, "started": "then"}))

    api.freeze(run_dir, tmp_path / "frozen", log_to_mlflow=False)
    got = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert got.info.status == "KILLED"
    assert got.data.tags[STALE_TAG].startswith(f"pid {dead} on {os.uname().nodename} (started then) ended without "
                                               "closing the run (killed?); marked KILLED by freeze")
    assert not mark_stale(run, "freeze")  # already ended: nothing to mark
