"""Unattended runs, with real processes: progress in log files, kill -9 loses at most one display of metrics, a
full or read-only disk is one line with the previous checkpoint intact, a second signal during shutdown, four
default launches in the same moment."""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtbench.rundir import RunDir, read_pointer
from mtbench.train.lcurve import read_lcurve
from tests.conftest import tiny_spec_dict
from tests.faults.waiting import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROGRESS = re.compile(r"^mtbench: step (\d+)/(\d+)  water_ener trn \S+  val \S+( .* training steps/s, \d+:\d\d left)?$")


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MTBENCH_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _input(tmp_path: Path, tiny_data: Path, *, steps: int, disp_freq: int = 5, save_freq: int = 100000) -> Path:
    spec = tiny_spec_dict(tiny_data, tasks=("water_ener",), steps=steps)
    spec["training"].update(disp_freq=disp_freq, save_freq=save_freq, max_ckpt_keep=1000)
    path = tmp_path / "input.json"
    path.write_text(json.dumps(spec))
    return path


def _train(tmp_path: Path, input_json: Path, run_dir: Path, *args: str, **popen: object) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mtbench.train", str(input_json), "-o", str(run_dir),
           "--output-dir", str(tmp_path / "out"), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), **popen)


def _data_rows(run_dir: Path) -> list[int]:
    lcurves = list(run_dir.glob("lcurve*.out"))
    return [int(r[0]) for r in read_lcurve(lcurves[0]).rows] if lcurves else []


def _wait_rows(proc: subprocess.Popen, run_dir: Path, n: int, timeout: float = 300.0) -> None:
    wait_until(proc, lambda: len(_data_rows(run_dir)) >= n, f"{n} display steps", timeout)


def _loadable(path: Path) -> int:
    from mtbench.train.checkpoint import load_checkpoint

    return int(load_checkpoint(path)["state"]["step"])


def _one_error_line(err: str) -> str:
    """The one line a refused write prints (informational ``mtbench: INFO:`` lines aside)."""
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("mtbench: INFO: ")]
    assert len(lines) == 1 and "Traceback" not in err and "Segmentation" not in err, err[-3000:]
    return lines[0]


# --- log files ----------------------------------------------------------------------------------------------------
def test_progress_lines_reach_a_pipe_while_training(tmp_path: Path, tiny_data: Path) -> None:
    """stdout to a pipe: one plain line per display, readable while the run still goes on."""
    run_dir = tmp_path / "run"
    proc = _train(tmp_path, _input(tmp_path, tiny_data, steps=100000), run_dir, "--tracking", "none")
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    deadline = time.monotonic() + 300
    try:
        while len(lines) < 3 and time.monotonic() < deadline:
            if sel.select(timeout=1.0):
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith("mtbench: step"):
                    lines.append(line.rstrip("\n"))
        assert proc.poll() is None, "the lines must come while training runs, not at its end"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert len(lines) == 3, lines
    steps = []
    for line in lines:
        m = PROGRESS.match(line)
        assert m, line
        steps.append(int(m.group(1)))
        assert m.group(2) == "100000"
    assert steps == [0, 5, 10]
    assert "training steps/s" not in lines[0] and "training steps/s" in lines[1]  # no rate before a step
    assert "\x1b[" not in "".join(lines)  # no terminal escapes in a log file


def test_summary_commands_are_not_wrapped_in_a_log_file(capsys: pytest.CaptureFixture[str]) -> None:
    from mtbench.cli.train import print_summary

    long_dir = "/scratch/" + "/".join(["a-long-folder-name"] * 8) + "/runs/2026-01-01/12-00-00-123456-4242"
    ui = ("mlflow ui --backend-store-uri sqlite:///" + long_dir + "/mlflow.db  ->  "
          "http://127.0.0.1:5000/#/experiments/1/runs/0123456789abcdef0123456789abcdef")
    summary = {"steps": 10, "wall_s": 1.0, "final": {"water_ener": {"val": {"rmse": 0.5, "rmse_e": 0.1}}},
               "counts": {"water_ener": 10}, "fractions": {"water_ener": 1.0}, "run_dir": long_dir,
               "tracking": "MLflow run 0123 in experiment 'mtbench' (sqlite:///x)\n " + ui}
    print_summary(summary)
    out = capsys.readouterr().out.splitlines()
    assert f"run directory: {long_dir}" in out
    assert " " + ui in out
    assert "\x1b[" not in "\n".join(out)


# --- tracking after kill -9 ---------------------------------------------------------------------------------------
def test_kill_9_loses_at_most_the_last_display(tmp_path: Path, tiny_data: Path) -> None:
    """SIGKILL mid-run: every display step but the last one written to lcurve is already in the SQLite store."""
    run_dir = tmp_path / "run"
    proc = _train(tmp_path, _input(tmp_path, tiny_data, steps=100000), run_dir, "--no-progress")
    _wait_rows(proc, run_dir, 6)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    lcurve_steps = _data_rows(run_dir)
    con = sqlite3.connect(tmp_path / "out" / "mlflow.db")
    try:
        (run_id,), = con.execute("SELECT run_uuid FROM runs").fetchall()
        stored = {s for (s,) in con.execute("SELECT step FROM metrics WHERE run_uuid = ? AND key = ?",
                                            (run_id, "val/water_ener/rmse"))}
    finally:
        con.close()
    assert len(lcurve_steps) >= 6
    assert set(lcurve_steps[:-1]) <= stored, (lcurve_steps, sorted(stored))
    assert stored <= set(lcurve_steps)


# --- full or read-only disk ---------------------------------------------------------------------------------------
def _limit_file_size(nbytes: int):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit then fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


def test_file_size_limit_is_one_line_and_leaves_no_tmp(tmp_path: Path, tiny_data: Path) -> None:
    """``ulimit -f`` below a checkpoint's size: the write fails inside HDF5's file, cleanly (no h5py traceback, no
    segfault); a stale ``.tmp`` of an earlier crash is removed at start."""
    run_dir = tmp_path / "run"
    stale = run_dir / "checkpoints" / "model.ckpt-3.h5.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    proc = _train(tmp_path, _input(tmp_path, tiny_data, steps=20), run_dir, "--tracking", "none", "--no-progress",
                  preexec_fn=_limit_file_size(60_000))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    line = _one_error_line(err)
    assert re.fullmatch(rf"mtbench\.train: error: cannot write checkpoint {re.escape(str(run_dir.resolve()))}/"
                        r"checkpoints/\S+\.h5: File too large \(\S+ \S+ free on that disk\)", line), line
    assert f"INFO: removed {stale.resolve()}, left by an interrupted write" in err
    assert not list(run_dir.rglob("*.tmp"))
    assert not list((run_dir / "checkpoints").glob("*.h5"))  # none fits: none pretends to be there


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, tiny_data: Path) -> None:
    """A 300 kB tmpfs: a few checkpoints fit, then one line (path, free space), exit 1, the latest checkpoint still
    the previous valid one, no ``.tmp``, the MLflow run FAILED with the reason."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "300k")
    try:
        run_dir = disk / "run"
        proc = _train(tmp_path, _input(tmp_path, tiny_data, steps=200, save_freq=5), run_dir, "--no-progress")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err[-3000:]
        line = _one_error_line(err)
        assert re.fullmatch(rf"mtbench\.train: error: cannot write checkpoint {re.escape(str(run_dir))}/checkpoints/"
                            r"\S+\.h5: .* \(\S+ \S+ free on that disk\)", line), line
        assert not list(run_dir.rglob("*.tmp"))
        latest = read_pointer(run_dir / "checkpoints")
        assert latest is not None and _loadable(latest) >= 5
        assert all(_loadable(p) == s for s, p in RunDir(run_dir).step_checkpoints())
        con = sqlite3.connect(tmp_path / "out" / "mlflow.db")
        try:
            (run_id, status), = con.execute("SELECT run_uuid, status FROM runs").fetchall()
            (error,), = con.execute("SELECT value FROM tags WHERE run_uuid = ? AND key = 'mtbench.error'", (run_id,))
        finally:
            con.close()
        assert status == "FAILED" and "cannot write checkpoint" in error and "free on that disk" in error
    finally:
        subprocess.run(["umount", str(disk)], check=False, timeout=60)


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_read_only_checkpoint_folder_is_one_line(tmp_path: Path, tiny_data: Path) -> None:
    """``checkpoints/`` not writable (mode 555; as root, whom modes do not stop, a read-only bind mount)."""
    run_dir = tmp_path / "run"
    ckpts = run_dir / "checkpoints"
    ckpts.mkdir(parents=True)
    ckpts.chmod(0o555)
    mounted = False
    try:
        if _writable(ckpts):  # root: try a read-only bind mount instead
            ckpts.chmod(0o755)
            bind = subprocess.run(["mount", "--bind", str(ckpts), str(ckpts)], capture_output=True, timeout=30)
            mounted = bind.returncode == 0
            if mounted:
                subprocess.run(["mount", "-o", "remount,ro,bind", str(ckpts)], capture_output=True, timeout=30)
            if not mounted or _writable(ckpts):
                pytest.skip("cannot make a read-only folder here (root, and no read-only bind mount)")
        proc = _train(tmp_path, _input(tmp_path, tiny_data, steps=20), run_dir, "--tracking", "none",
                      "--no-progress")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, err[-3000:]
        line = _one_error_line(err)
        assert re.fullmatch(rf"mtbench\.train: error: cannot write checkpoint {re.escape(str(ckpts.resolve()))}/\S+\.h5: "
                            r"(Permission denied|Read-only file system) \(\S+ \S+ free on that disk\)", line), line
        assert len(_data_rows(run_dir)) >= 2  # lcurve (elsewhere in the run folder) was written up to there
    finally:
        if mounted:
            subprocess.run(["umount", str(ckpts)], check=False, timeout=60)
        ckpts.chmod(0o755)


def test_full_tracking_store_is_one_warning_and_training_goes_on(tmp_path: Path, tiny_data: Path) -> None:
    """The SQLite store's disk is full, the run folder is elsewhere: one warning line, the backlog holds the
    metrics, training finishes (no SQLAlchemy tracebacks)."""
    disk = tmp_path / "store"
    _mount_tmpfs(disk, "1600k")
    try:
        uri = f"sqlite:///{disk}/mlflow.db"
        subprocess.run([sys.executable, "-c", "from mtbench.tracking.store import Store; Store(%r).connect()" % uri],
                       check=True, env=_env(), capture_output=True, timeout=300, cwd=tmp_path)
        with open(disk / "filler", "wb", buffering=0) as fh:  # fill what is left
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        run_dir = tmp_path / "run"
        proc = _train(tmp_path, _input(tmp_path, tiny_data, steps=10), run_dir, "--no-progress",
                      "--tracking-uri", uri)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "WARNING: MLflow tracking failed" in lines[0], err[-3000:]
        assert "Traceback" not in err and "sqlalchemy" not in err.lower().replace("sqlalche.me", "")
        backlog = [json.loads(ln) for ln in (run_dir / "tracking_backlog.jsonl").read_text().splitlines()]
        steps = {p[2] for r in backlog if r["kind"] == "metrics" for p in r["metrics"]
                 if p[0] == "val/water_ener/rmse"}
        assert steps == {0, 5, 10}
    finally:
        subprocess.run(["umount", str(disk)], check=False, timeout=60)


# --- signals ------------------------------------------------------------------------------------------------------
def test_second_signal_during_shutdown_exits_at_once_and_corrupts_nothing(tmp_path: Path, tiny_data: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _train(tmp_path, _input(tmp_path, tiny_data, steps=100000), run_dir, "--tracking", "none",
                  "--no-progress")
    _wait_rows(proc, run_dir, 3)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 143), err[-3000:]
    assert "Traceback" not in err
    for step, path in RunDir(run_dir).step_checkpoints():
        assert _loadable(path) == step
    latest = read_pointer(run_dir / "checkpoints")
    assert latest is None or latest.exists()
    assert len(_data_rows(run_dir)) >= 3  # lcurve rows stay whole


# --- default Hydra run folders ------------------------------------------------------------------------------------
def test_four_concurrent_default_launches_get_four_folders(tmp_path: Path, tiny_data: Path) -> None:
    """Four ``python -m mtbench`` started together from one folder (the tiny data standing in for the built-in
    set): four run folders, four FINISHED runs on one SQLite store, each folder with its own seed."""
    from mtbench.data.synthetic import GENERATOR_VERSION

    cache = tmp_path / "data"
    cache.mkdir()
    (cache / f"water-v{GENERATOR_VERSION}-seed1").symlink_to(tiny_data, target_is_directory=True)
    env = _env(MTBENCH_OUTPUT_DIR=str(tmp_path / "outputs"), MTBENCH_DATA_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-m", "mtbench", "debug=fast", "training.numb_steps=2",
                               "training.disp_freq=1", "training.save_freq=2", f"training.seed={i}"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    try:
        results = [(p.communicate(timeout=600), p.returncode) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for (out, err), rc in results:
        assert rc == 0, err[-3000:]
    folders = sorted((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(folders) == 4, folders
    seeds = sorted(json.loads((f / "input.json").read_text())["training"]["seed"] for f in folders)
    assert seeds == [0, 1, 2, 3]
    con = sqlite3.connect(tmp_path / "outputs" / "mlflow.db")
    try:
        runs = con.execute("SELECT r.status, t.value FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                           "WHERE t.key = 'mtbench.run_dir'").fetchall()
    finally:
        con.close()
    assert sorted(runs) == sorted(("FINISHED", str(f.resolve())) for f in folders)
